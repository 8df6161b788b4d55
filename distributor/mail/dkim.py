"""DKIM signatures (RFC 6376): rsa-sha256, relaxed/relaxed.

The RSA signature is made by OpenSSL (``cryptography``) with the key parsed once per key
file, because dkimpy's pure-Python RSA costs ~13 ms a message against ~0.35 ms. A message
composed here (CRLF lines only) is canonicalised by a few ``bytes`` passes and only the
signed header fields are touched, which leaves the RSA step most of the cost (about 0.4 ms
a message in all against dkimpy's 8 ms, ``bench/compose.py``); anything else goes through
dkimpy's parser and canonicalisation. The tests and the benchmark check the signatures with
dkimpy's verifier.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import os
import re
import stat
import time
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from distributor.core.config import Settings
from distributor.core.errors import ConfigError
from distributor.mail.smtpdata import DotFree, dot_free

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

#: The header fields signed, each listed twice: the second mention signs the field's absence,
#: so nobody can add a second From, Subject or List-Unsubscribe without breaking the signature
#: (RFC 6376 §8.15). Fields a message lacks (In-Reply-To on a release email, List-* on a
#: confirmation) are signed as absent, so none can be added either.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"mime-version",
    b"content-type",
    b"content-language",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
    b"in-reply-to",
    b"references",
)
_WIDTH = 76
# A header field ends at a CRLF not followed by white space (a folded line continues it).
_FIELD_END = re.compile(rb"\r\n(?![ \t])")
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")  # printable ASCII but ":" (RFC 5322 §3.6.8)
_WSP = re.compile(rb"[ \t]+")
_SPACES = re.compile(rb"  +")
# The signers loaded so far: (key file, selector, domain) → (the file's bytes, signer).
log = logging.getLogger(__name__)
_SIGNERS: dict[tuple[str, str, str], tuple[bytes, Signer]] = {}


class Signer:
    """Signs messages for one domain and selector with one RSA key."""

    def __init__(self, key: rsa.RSAPrivateKey, selector: str, domain: str) -> None:
        self.key, self.selector, self.domain = key, selector, domain
        names = SIGNED_HEADERS + SIGNED_HEADERS
        self._names = names
        # The tags that are the same in every signature, folded once; t=, bh= and b= follow.
        self._fixed = _fold(
            [
                [b"v=1;"],
                [b"a=rsa-sha256;"],
                [b"c=relaxed/relaxed;"],
                [b"d=" + domain.encode() + b";"],
                [b"s=" + selector.encode() + b";"],
                [b"h=" + names[0] + b":", *(n + b":" for n in names[1:-1]), names[-1] + b";"],
            ]
        )
        self._fixed_column = len(self._fixed) - self._fixed.rfind(b"\n") - 1

    @property
    def dns_name(self) -> str:
        """Where the public key must be published: ``{selector}._domainkey.{domain}``."""
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_record(self) -> str:
        """The TXT record to publish at :attr:`dns_name`."""
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"

    def sign(self, message: bytes) -> bytes:
        """``message`` with a DKIM-Signature field prepended, covering :data:`SIGNED_HEADERS`
        and the whole body. The message itself is unchanged."""
        fast = _parse_crlf(message)
        if fast is not None:
            fields, body = fast
            digest = hashlib.sha256()
            for name in self._names:  # RFC 6376 §5.4.2: the last instance not yet taken
                values = fields.get(name)
                if values:
                    digest.update(_relaxed_field(name, values.pop()))
        else:
            headers, body = _parse_any(message)
            digest = hashlib.sha256()
            for name, value in _select(headers, self._names):
                digest.update(name + b":" + value)
        body_hash = base64.b64encode(hashlib.sha256(body).digest())
        field = [self._fixed]
        column = _append(field, self._fixed_column, b"t=%d;" % int(time.time()), b"")
        column = _append(field, column, b"bh=", body_hash + b";")
        column = _append(field, column, b"b=", b"")
        # The signature field is hashed as it will be sent (relaxed), with an empty b= and
        # without a final CRLF (RFC 6376 §3.7).
        unsigned = b"".join(field)
        digest.update(_relaxed_field(b"dkim-signature", unsigned[15:]).rstrip(b"\r\n"))
        signature = self.key.sign(digest.digest(), padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        _append(field, column, b"", base64.b64encode(signature))
        field.append(b"\r\n")
        signature_field = b"".join(field)
        if type(message) is DotFree and dot_free((signature_field,)):
            return DotFree(signature_field + message)  # still no line starting with "."
        return signature_field + message


def _relaxed_field(name: bytes, value: bytes) -> bytes:
    """``name: value`` in relaxed canonical form (RFC 6376 §3.4.2) for a CRLF-only field:
    ``name`` lowercase, unfolded, runs of white space made one space, none at either end."""
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = _WSP.sub(b" ", value)
    return name + b":" + value.strip(b" ") + b"\r\n"


def _parse_crlf(message: bytes) -> tuple[dict[bytes, list[bytes]], bytes] | None:
    """For a message whose every line ends in CRLF, as composed here: its header fields
    (lowercase name → raw values, in order) and its relaxed-canonical body (§3.4.4), by a
    few ``bytes`` passes instead of dkimpy's regular expressions over the whole message.
    None for anything else (bare CR or LF, no body, an odd header line): see :func:`_parse_any`.
    """
    crlf = message.count(b"\r\n")
    if message.count(b"\r") != crlf or message.count(b"\n") != crlf:
        return None
    head, separator, body = message.partition(b"\r\n\r\n")
    if not separator or not body.endswith(b"\r\n") or head[:1] in (b"", b" ", b"\t"):
        return None
    fields: dict[bytes, list[bytes]] = {}
    for field in _FIELD_END.split(head):
        name, colon, value = field.partition(b":")
        if not colon or not _FIELD_NAME.fullmatch(name):
            return None
        fields.setdefault(name.lower(), []).append(value)
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = _SPACES.sub(b" ", body)
    if b" \r\n" in body:  # runs are single spaces now
        body = body.replace(b" \r\n", b"\r\n")
    body = body.rstrip(b"\r\n")
    return fields, body + b"\r\n" if body else b""


def _parse_any(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Any message, through dkimpy: its relaxed-canonical header fields and body."""
    # Imported here, for the rare message the fast path declines: dkimpy brings dnspython,
    # which costs every command's start-up 50 ms otherwise.
    from dkim import rfc822_parse
    from dkim.canonicalization import CanonicalizationPolicy

    policy = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
    headers, body = rfc822_parse(message)
    return policy.canonicalize_headers(headers), policy.canonicalize_body(body)


def _select(
    headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...]
) -> list[tuple[bytes, bytes]]:
    """The fields named in ``h=``, in its order, each name taking the last instance not yet
    taken (RFC 6376 §5.4.2); a name with no instance left contributes nothing."""
    taken: dict[bytes, int] = {}
    selected = []
    for wanted in names:
        index = taken.get(wanted, len(headers))
        while index > 0:
            index -= 1
            if headers[index][0].lower() == wanted:
                selected.append(headers[index])
                break
        taken[wanted] = index
    return selected


def _pieces(value: bytes, size: int = 8) -> list[bytes]:
    """``value`` cut in pieces that may be separated by folding (base64 allows it, §3.5)."""
    return [value[i : i + size] for i in range(0, len(value), size)]


def _fold(tags: list[list[bytes]]) -> bytes:
    """The start of a DKIM-Signature field, folded to 76 columns: tags are separated by a
    space and may start a line; a tag's pieces are joined without one but may be split
    across lines where its syntax allows folding white space."""
    out = b"DKIM-Signature:"
    column = len(out)
    for pieces in tags:
        for index, piece in enumerate(pieces):
            space = b" " if index == 0 else b""
            if column + len(space) + len(piece) > _WIDTH:
                out += b"\r\n"
                space = b" "
                column = 0
            out += space + piece
            column += len(space) + len(piece)
    return out


def _append(out: list[bytes], column: int, tag: bytes, value: bytes) -> int:
    """Append `` tag`` (a new tag, kept whole, after a space) then ``value`` (base64, which
    may be folded anywhere: §3.5) to the field in ``out``, whose last line is ``column``
    long, folding at 76 columns; returns the length of the last line."""
    if tag:
        if column + 1 + len(tag) > _WIDTH:
            out.append(b"\r\n")
            column = 0
        out.append(b" " + tag)
        column += 1 + len(tag)
    while value:
        room = _WIDTH - column
        if room <= 0:
            out.append(b"\r\n ")
            column, room = 1, _WIDTH - 1
        out.append(value[:room])
        column += min(room, len(value))
        value = value[room:]
    return column


def load_signer(settings: Settings) -> Signer | None:
    """The signer ``settings`` configure, or None when none of the three DKIM variables is
    set. Raises :class:`ConfigError` naming the variable when only some are set, or when the
    key file is missing, unreadable, readable or writable by anyone but its owner, or not an
    RSA private key of at least 1,024 bits."""
    values = {
        "DISTRIBUTOR_DKIM_KEY_FILE": settings.dkim_key_file,
        "DISTRIBUTOR_DKIM_SELECTOR": settings.dkim_selector,
        "DISTRIBUTOR_DKIM_DOMAIN": settings.dkim_domain,
    }
    missing = [name for name, value in values.items() if not value]
    if len(missing) == len(values):
        return None
    if missing:
        raise ConfigError(f"DKIM signing needs {', '.join(missing)} too (or none of them)")
    assert settings.dkim_key_file and settings.dkim_selector and settings.dkim_domain
    path = settings.dkim_key_file
    try:
        with path.open("rb") as stream:
            mode = stat.S_IMODE(os.fstat(stream.fileno()).st_mode)  # of the file read
            pem = stream.read()
    except OSError as exc:
        raise ConfigError(f"DISTRIBUTOR_DKIM_KEY_FILE: cannot read {path}: {exc}") from None
    if mode & 0o077:  # whoever reads the key signs mail as the press office
        raise ConfigError(
            f"DISTRIBUTOR_DKIM_KEY_FILE: {path} is mode {mode:04o}: other users can read or "
            f"change the private key. Let only its owner read it: chmod 600 {path}"
        )
    # Parsing and checking an RSA key costs ~45 ms, and every batch asks for the signer:
    # keep it while the file holds the same key (a rotated key is read at the next batch).
    known = (str(path), settings.dkim_selector, settings.dkim_domain)
    cached = _SIGNERS.get(known)
    if cached is not None and cached[0] == pem:
        return cached[1]
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(
            f"DISTRIBUTOR_DKIM_KEY_FILE: {path} is not an unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < 1024:
        raise ConfigError(
            f"DISTRIBUTOR_DKIM_KEY_FILE: {path} must be an RSA key of at least 1024 bits "
            "(2048 recommended)"
        )
    signer = Signer(key, settings.dkim_selector, settings.dkim_domain)
    if not aligned(settings.dkim_domain, settings.sender_domain):
        log.warning(
            "DISTRIBUTOR_DKIM_DOMAIN %s and the sender's domain %s have different "
            "organisational domains: DMARC does not count this signature, and a DMARC "
            "policy on %s may reject the mail",
            settings.dkim_domain,
            settings.sender_domain,
            settings.sender_domain,
        )
    _SIGNERS[known] = (pem, signer)
    return signer


def aligned(dkim_domain: str, from_domain: str) -> bool:
    """Whether a signature by ``dkim_domain`` is aligned with the From domain in DMARC's
    relaxed mode (RFC 7489 3.1.1): both have the same organisational domain, the one just
    under a public suffix by the public suffix list (``news.example.org`` and
    ``mail.example.org``; not ``a.github.io`` and ``b.github.io``). A domain that is itself
    a public suffix, or under none the list knows, is its own organisational domain."""
    return _organisational(dkim_domain) == _organisational(from_domain)


@functools.cache
def _suffixes() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList  # only when asked: it is a large module

    return PublicSuffixList()  # parses the bundled list: once


def _organisational(domain: str) -> str:
    name = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(name) or name
