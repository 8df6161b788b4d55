"""What the press office checks before publishing: a release's email as a subscriber gets
it (:func:`render_preview`), and the same email sent to a few colleagues (:func:`send_test`).

Both render through :func:`distributor.mail.compose.render_release`, the code path of the
real sends, for a stand-in recipient: subscriber id 0, which no row ever has (ids start at
1). Its unsubscribe and preferences links are real signed links of the same shape as a
subscriber's, but they name nobody: both pages say the link comes from a test email and
what it does in a subscriber's copy, and a one-click POST unsubscribes nobody. A test email
of a release not public yet says "read online" at its signed preview page
(``core.urls.preview_url``), not at its public address, a 404 until it is published.

Neither function writes anything: no ledger row, no site regeneration, no change of the
release's state.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from distributor.audience.addresses import normalise_email
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, InputError, NotFound, ServiceError
from distributor.core.models import Release, ReleaseState
from distributor.core.urls import preferences_url, preview_url, unsubscribe_url
from distributor.mail import headers
from distributor.mail.compose import Recipient, RenderedRelease, render_release
from distributor.mail.dkim import load_signer
from distributor.mail.relays import open_transport
from distributor.mail.transport import Outgoing
from distributor.office.identity import identity
from distributor.releases.lifecycle import get_release

PLACEHOLDER_ID = 0  # the subscriber id of the stand-in recipient: no subscriber has it
PLACEHOLDER_EMAIL = "subscriber@example.invalid"  # RFC 2606: can never be delivered
MAX_TEST_ADDRESSES = 20
TEST_SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = "X-Distributor-Test: yes\r\n"
# The header fields a preview shows, in this order.
SHOWN_HEADERS = (
    "From",
    "To",
    "Subject",
    "Message-ID",
    "Content-Language",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)
# Replaced or dropped in a test message (lowercase field names).
_TEST_DROPPED = {b"subject", b"message-id", b"list-unsubscribe", b"list-unsubscribe-post"}


@dataclass(frozen=True)
class Preview:
    """A release's email as a subscriber in ``language`` receives it: the decoded subject,
    both body parts (``\\n`` line ends) and the header fields of :data:`SHOWN_HEADERS`, for
    the stand-in recipient. ``release_id`` is the release rendered: the translation in
    ``language`` when one was asked for."""

    release_id: int
    language: str
    subject: str
    html: str
    text: str
    headers: dict[str, str]
    envelope_from: str


@dataclass(frozen=True)
class TestOutcome:
    """What the mail server (or the outbox) answered for one test address: ``code`` 250
    when it took the message, its refusal (4xx, 5xx) with ``message``, or 0 when no answer
    was had (``message`` says why)."""

    __test__ = False  # not a pytest test class, despite the name

    address: str
    code: int
    message: str

    @property
    def sent(self) -> bool:
        return 200 <= self.code < 300

    def describe(self) -> str:
        """One line: ``ann@example.org: sent (250 …)`` or ``… refused (550 …)``."""
        verdict = "sent" if self.sent else "not sent" if self.code == 0 else "refused"
        return f"{self.address}: {verdict} ({self.code} {self.message})"


def placeholder(settings: Settings, email: str = PLACEHOLDER_EMAIL) -> Recipient:
    """The stand-in recipient at ``email``: subscriber id 0, no name, real signed links that
    name no subscriber, no delivery (so the plain sender address is the envelope sender)."""
    return Recipient(
        subscriber_id=PLACEHOLDER_ID,
        email=email,
        name="",
        unsubscribe_url=unsubscribe_url(settings, PLACEHOLDER_ID, None),
        preferences_url=preferences_url(settings, PLACEHOLDER_ID, None),
    )


def _previewable(session: Session, release_id: int, lang: str | None) -> Release:
    """The release to render: ``release_id`` itself, or its version in ``lang`` (the release
    subscribers reading ``lang`` get). Raises NotFound (no such release, no version in
    ``lang``) or Conflict (withdrawn)."""
    release = get_release(session, release_id)
    if lang is not None and lang.strip().lower() != release.language.lower():
        wanted = lang.strip().lower()
        root = release.translation_of_id or release.id
        version = session.scalar(
            select(Release)
            .where(or_(Release.id == root, Release.translation_of_id == root))
            .where(Release.language == wanted)
            .order_by(Release.id)
        )
        if version is None:
            raise NotFound(f"release {release_id} ({release.language}) has no {wanted} version")
        release = version
    if release.state == ReleaseState.WITHDRAWN:
        raise Conflict(f"release {release.id} was withdrawn; there is no email to preview")
    return release


def _render(
    settings: Settings, release_id: int, lang: str | None, *, test: bool = False
) -> RenderedRelease:
    """The email of the release (its version in ``lang``); for a ``test`` send of one not
    public yet, its "read online" link is the signed preview page (its public page would be
    a 404 until then)."""
    with session_scope(settings) as session:
        release = _previewable(session, release_id, lang)
        page = None
        if test and release.state != ReleaseState.PUBLISHED:
            page = preview_url(settings, release.id)
        return render_release(release, settings, identity(session, settings), page)


def render_preview(settings: Settings, release_id: int, lang: str | None = None) -> Preview:
    """The email of release ``release_id`` (draft, scheduled or published) exactly as a
    subscriber reading ``lang`` (default: the release's language) would receive it, for the
    stand-in recipient (see the module docstring). Raises NotFound for an unknown id or no
    version in ``lang``, Conflict for a withdrawn release."""
    return preview_of(settings, _render(settings, release_id, lang))


def preview_of(settings: Settings, rendered: RenderedRelease) -> Preview:
    """``rendered`` (``compose.render_release``'s output: of a stored release, or of one
    not saved yet) as the stand-in recipient receives it: see :class:`Preview`."""
    rcpt = placeholder(settings)
    message = rendered.message_for(rcpt)
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(message)
    shown = {name: str(parsed[name]) for name in SHOWN_HEADERS if parsed[name] is not None}
    return Preview(
        release_id=rendered.release_id,
        language=rendered.language,
        subject=str(parsed["Subject"]),
        html=rendered.html_for(rcpt).replace("\r\n", "\n"),
        text=rendered.text_for(rcpt).replace("\r\n", "\n"),
        headers=shown,
        envelope_from=rendered.envelope_for(rcpt),
    )


def check_test_addresses(settings: Settings, addresses: Sequence[str]) -> list[Recipient]:
    """The stand-in recipients for ``addresses`` (normalised, duplicates dropped), or
    InputError naming every address refused, or saying there are none or more than 20."""
    if not addresses:
        raise InputError("test: no address given", field="test")
    if len(addresses) > MAX_TEST_ADDRESSES:
        raise InputError(
            f"test: {len(addresses)} addresses; at most {MAX_TEST_ADDRESSES} (nothing sent)",
            field="test",
        )
    recipients: dict[str, Recipient] = {}
    refused: list[str] = []
    for address in addresses:
        try:
            email = normalise_email(address)
            recipients.setdefault(email, placeholder(settings, email))
        except InputError as exc:
            refused.append(str(exc))  # names the address
    if refused:
        raise InputError(
            "test: address(es) refused, nothing sent: " + "; ".join(refused), field="test"
        )
    return list(recipients.values())


def as_test_message(settings: Settings, rendered: RenderedRelease, rcpt: Recipient) -> bytes:
    """``rendered``'s message for ``rcpt`` marked as a test: the subject prefixed with
    ``[TEST]``, an ``X-Distributor-Test: yes`` field, a Message-ID of its own (mail programs
    drop a second message with a Message-ID they have seen), and no List-Unsubscribe
    fields (a colleague is on no list). Everything else, both bodies included, is the
    subscriber's message byte for byte."""
    head, separator, body = rendered.message_for(rcpt).partition(b"\r\n\r\n")
    fields: list[bytes] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):  # a folded continuation of the previous field
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    marks = (
        headers.unstructured("Subject", TEST_SUBJECT_PREFIX + rendered.subject)
        + f"Message-ID: <release-{rendered.release_id}.test-{secrets.token_hex(8)}"
        f"@{settings.sender_domain}>\r\n" + TEST_HEADER
    ).encode("ascii")
    kept = [f + b"\r\n" for f in fields if f.split(b":", 1)[0].strip().lower() not in _TEST_DROPPED]
    return b"".join(kept) + marks + separator[2:] + body


def send_test(settings: Settings, release_id: int, addresses: Sequence[str]) -> list[TestOutcome]:
    """Send release ``release_id``'s email as a test (see :func:`as_test_message`) to each of
    ``addresses`` and nobody else, over the configured transport (SMTP, or the Maildir
    outbox), DKIM-signed when signing is configured; returns one outcome per distinct
    address, in order.

    All or nothing on input: InputError (naming each bad address, or too many) before
    anything is sent. NotFound / Conflict as :func:`render_preview`. ServiceError when no
    message reached the server (unreachable, or the outbox cannot be written).
    """
    recipients = check_test_addresses(settings, addresses)
    rendered = _render(settings, release_id, None, test=True)
    signer = load_signer(settings)
    items = []
    for rcpt in recipients:
        message = as_test_message(settings, rendered, rcpt)
        if signer is not None:
            message = signer.sign(message)
        items.append(Outgoing(rcpt.email, rendered.envelope_for(rcpt), rcpt.email, message))
    with open_transport(settings) as transport:
        results = {item.key: result for item, result in transport.send_stream(items)}
    outcomes = [
        TestOutcome(r.email, results[r.email].code, results[r.email].message) for r in recipients
    ]
    if all(o.code == 0 for o in outcomes):
        raise ServiceError(f"test not sent: {outcomes[0].message}")
    return outcomes
