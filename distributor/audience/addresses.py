"""An email address as stored and compared (:func:`normalise_email`): checked by
email-validator (syntax only), its domain as an IDNA A-label, its local part in Unicode NFC,
within SMTP's limits. Every address that comes in goes through here."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from distributor.core.errors import (
    SubscriberInputError,
)

MAX_LOCAL_OCTETS = 64  # RFC 5321 §4.5.3.1.1, in octets of UTF-8 (RFC 6531 §3.3)
MAX_ADDRESS_OCTETS = 254  # a path (256) less its angle brackets


def normalise_email(address: str) -> str:
    """The address as stored and compared: its domain as an IDNA A-label (``bücher.example``
    → ``xn--bcher-kva.example``), its local part in Unicode NFC, both lowercased. Accepts
    internationalised addresses (RFC 6531: ``josé@example.org``, ``用户@例子.广告``), which
    are sent with SMTPUTF8. Raises SubscriberInputError saying why an address is not valid.

    The domain is kept as an A-label because that is its one canonical form (every Unicode
    spelling of a domain maps to it, and so did the addresses stored before), and because
    an address whose local part is ASCII then stays ASCII and needs no SMTPUTF8 to be sent.
    """
    if any(ch in address for ch in "\r\n\x00"):
        raise SubscriberInputError(
            "email: must not contain line breaks or NUL characters", field="email"
        )
    shown = address if len(address) <= 80 else address[:79] + "…"
    try:
        # Syntax only (no DNS); SMTPUTF8 allowed: a relay that cannot carry it defers them.
        checked = validate_email(address.strip(), check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        raise SubscriberInputError(f"email {shown!r}: {exc}", field="email") from exc
    local = unicodedata.normalize("NFC", checked.local_part.lower())
    email = f"{local}@{checked.ascii_domain.lower()}"
    # RFC 5321's limits count octets, and a UTF-8 character takes up to four.
    if len(local.encode()) > MAX_LOCAL_OCTETS or len(email.encode()) > MAX_ADDRESS_OCTETS:
        raise SubscriberInputError(
            f"email {shown!r}: longer than SMTP allows ({MAX_LOCAL_OCTETS} octets before the @, "
            f"{MAX_ADDRESS_OCTETS} in all, a non-ASCII character counting for 2 to 4)",
            field="email",
        )
    return email
