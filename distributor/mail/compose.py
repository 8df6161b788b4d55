"""Render once, personalise cheaply.

:func:`render_release` renders a release's email once (Jinja2, CSS inlined, text part) and
pre-builds the whole MIME message around it, already encoded (List-Id, one-click
List-Unsubscribe-Post, Feedback-ID…). Per recipient, :meth:`RenderedRelease.message_for`
only writes the To, Message-ID and List-Unsubscribe fields and encodes the few body lines
that hold the recipient's own links: hundreds of times cheaper than building an
``email.message.EmailMessage`` per recipient (``bench/compose.py``).

The bodies are quoted-printable: readable French text, lines of at most 76 octets, and since
quoted-printable encodes each line on its own, the lines without personal links are encoded
once, at render time.
"""

from __future__ import annotations

import binascii
import html
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol, Self

from distributor.core.config import Settings, a_label_address
from distributor.core.errors import ConfigError, ReleaseInputError, SubscriberInputError
from distributor.core.formats import embargo_time
from distributor.core.identity import Identity
from distributor.core.models import Release
from distributor.mail import headers
from distributor.mail.labels import labels_for
from distributor.mail.render import render_bodies
from distributor.mail.smtpdata import DotFree, dot_free
from distributor.mail.verp import BounceAddresses

MAX_NAME = 200  # as stored; it also keeps every header line far below 998 octets
MAX_ADDRESS = 254  # octets: RFC 5321's limit on a path, less the angle brackets
MAX_URL = 900  # so that "List-Unsubscribe: <url>" stays below 998 octets
# A dot-atom address with an ASCII domain (IDN domains as A-labels: see
# subscribers.normalise_email): nothing that could end a header field or an angle-addr.
# The local part may hold non-ASCII characters (RFC 6531/6532: sent with SMTPUTF8), but no
# control character (C0, C1), white space or lone surrogate.
_ADDRESS = re.compile(
    r"(?:[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]|[^\x00-\x9f\s\ud800-\udfff])+"
    r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
)
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*")  # a BCP 47 tag, roughly
# An http(s) URL of printable ASCII without space, quote or angle bracket.
_URL = re.compile(r"https?://[!#-;=?-~]+")


@dataclass(frozen=True)
class Recipient:
    """One subscriber as an email needs them. Refused (:class:`SubscriberInputError`, naming
    the field) when a value could not be written safely: a control character (CR, LF…) in
    the name, a name over 200 characters, an address that is not a dot-atom with an ASCII
    domain, or a link that is not plain ASCII (or too long for a header line). An address
    with a non-ASCII local part is written as UTF-8 (RFC 6532) and needs SMTPUTF8."""

    subscriber_id: int
    email: str
    name: str
    unsubscribe_url: str
    preferences_url: str
    delivery_id: int | None = None  # the ledger row: names the VERP envelope sender
    # Where this recipient reads the release online when that is personal (an embargoed
    # advance copy's page: urls.advance_url); None: the release's own page, as rendered.
    page_url: str | None = None

    def __post_init__(self) -> None:
        if len(self.name) > MAX_NAME:
            raise SubscriberInputError(
                f"subscriber {self.subscriber_id}: name is longer than {MAX_NAME} characters"
            )
        if headers.has_controls(self.name):
            raise SubscriberInputError(
                f"subscriber {self.subscriber_id}: name contains a control character "
                f"(line break?): {self.name!r}"
            )
        if len(self.email.encode()) > MAX_ADDRESS or not _ADDRESS.fullmatch(self.email):
            raise SubscriberInputError(
                f"subscriber {self.subscriber_id}: email {self.email!r} is not an address "
                f"that can be sent to (a dot-atom local part, an ASCII or A-label domain, at "
                f"most {MAX_ADDRESS} octets)"
            )
        for field in ("unsubscribe_url", "preferences_url", "page_url"):
            url = getattr(self, field)
            if url is None:
                continue
            if len(url) > MAX_URL or not _URL.fullmatch(url):
                raise SubscriberInputError(
                    f"subscriber {self.subscriber_id}: {field} is not an http(s) URL of "
                    f"plain ASCII and at most {MAX_URL} characters: {url!r}"
                )


@dataclass(frozen=True)
class _Body:
    """A body part, quoted-printable, as chunks: ``bytes`` already encoded, ``str`` lines that
    hold a placeholder and are substituted and encoded per recipient."""

    chunks: tuple[bytes | str, ...]

    @classmethod
    def build(cls, text: str, placeholders: Sequence[str]) -> _Body:
        """Split ``text`` (any newline convention) into CRLF lines and pre-encode every run of
        lines without a placeholder."""
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        if lines[-1] == "":
            lines.pop()
        chunks: list[bytes | str] = []
        static: list[str] = []
        for line in lines:
            if any(p in line for p in placeholders):
                if static:
                    chunks.append(_qp("\r\n".join(static) + "\r\n"))
                    static = []
                chunks.append(line + "\r\n")
            else:
                static.append(line)
        if static:
            chunks.append(_qp("\r\n".join(static) + "\r\n"))
        return cls(tuple(chunks))

    def encode_into(self, out: list[bytes], replacements: Sequence[tuple[str, str]]) -> None:
        """Append the encoded body to ``out`` with each (placeholder, value) substituted:
        every chunk is :func:`_qp`'s, so no line of it starts with "." (smtpdata.DotFree)."""
        for chunk in self.chunks:
            if isinstance(chunk, bytes):
                out.append(chunk)
            else:
                for placeholder, value in replacements:
                    chunk = chunk.replace(placeholder, value)
                out.append(_qp(chunk))

    def decoded(self, replacements: Sequence[tuple[str, str]]) -> str:
        """The body as text (CRLF line ends), personalised: for previews and tests."""
        out: list[bytes] = []
        self.encode_into(out, replacements)
        return binascii.a2b_qp(b"".join(out)).decode()


def _qp(text: str) -> bytes:
    """``text`` (CRLF lines, ending in CRLF) as quoted-printable UTF-8 with CRLF soft breaks,
    lines of at most 76 octets, none starting with "." (:func:`_no_leading_dot`).

    ``b2a_qp`` uses CRLF for its soft breaks when the data's first line ends in CRLF, which
    every chunk here does."""
    encoded = binascii.b2a_qp(text.encode(), istext=True)
    if encoded.startswith(b".") or b"\n." in encoded:
        return _no_leading_dot(encoded)
    return encoded


_QP_LINE = 76  # RFC 2045 §6.7 (5): encoded lines are at most 76 characters


def _no_leading_dot(encoded: bytes) -> bytes:
    """Quoted-printable ``encoded`` with a "." that starts a line written "=2E" (RFC 2045
    lets any octet be encoded), soft-breaking a line that grows past 76 octets: the same
    text once decoded. A soft break often lands before a dot in long HTML lines; without
    one at a line's start the message needs no SMTP dot-stuffing (smtpdata.DotFree)."""
    lines: list[bytes] = []
    for line in encoded.split(b"\r\n"):
        while line.startswith(b"."):
            line = b"=2E" + line[1:]
            if len(line) <= _QP_LINE:
                break
            # Cut where no "=XX" escape straddles the cut ("=" only ever starts an escape
            # or is the final soft break), leaving room for the soft break's "=".
            cut = _QP_LINE - 1
            while b"=" in line[cut - 2 : cut]:
                cut -= 1
            lines.append(line[:cut] + b"=")
            line = line[cut:]
        lines.append(line)
    return b"\r\n".join(lines)


@dataclass(frozen=True)
class _Placeholders:
    """The strings rendered in place of one recipient's links (unique to each rendering)."""

    unsubscribe: str
    preferences: str
    page: str  # used only by an email whose "read online" page is personal

    @classmethod
    def new(cls) -> _Placeholders:
        nonce = secrets.token_hex(8)
        return cls(
            f"https://x-unsubscribe-{nonce}.invalid/",
            f"https://x-preferences-{nonce}.invalid/",
            f"https://x-page-{nonce}.invalid/",
        )


def _frame(
    identity: Identity, subject: str, language: str, tag: str, fields: str
) -> tuple[bytes, bytes, bytes, bytes]:
    """What every message of one email is made in, already encoded: the head (From and
    Reply-To, the identity's; Subject, Date), the end of the header (MIME,
    Content-Language, then ``fields``) up to the text part's, the boundary between the parts, and
    the end. A message is ``head``, its own fields (To, Message-ID…), ``head_end``, the text part,
    ``between``, the HTML part, ``end``. ``tag`` starts the MIME boundary."""
    boundary = f"=_{tag}-{secrets.token_hex(8)}"  # "=_" never occurs in quoted-printable
    sender_name, sender_address = parseaddr(identity.sender)
    reply_to = ""
    if identity.reply_to:
        reply_to = headers.address("Reply-To", *parseaddr(identity.reply_to))
    head = (
        # The sender's domain as an A-label: UTF-8 only for a non-ASCII local part.
        headers.address("From", sender_name, a_label_address(sender_address))
        + reply_to
        + headers.unstructured("Subject", subject)
        + f"Date: {format_datetime(datetime.now(UTC))}\r\n"
    ).encode()
    head_end = (
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        f"Content-Language: {language}\r\n" + fields + "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
    ).encode()
    between = (
        f"\r\n--{boundary}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
    ).encode("ascii")
    return head, head_end, between, f"\r\n--{boundary}--\r\n".encode("ascii")


def one_message(
    identity: Identity,
    *,
    to: str,
    subject: str,
    language: str,
    message_id: str,
    text: str,
    html_body: str,
    fields: str = "",
) -> bytes:
    """A message rendered for one recipient only (the confirmation email), built as every release
    email is: the same From and Reply-To (``identity``'s), Subject, Date and MIME layout,
    quoted-printable parts, the address alone in To (UTF-8 only for a non-ASCII local part: RFC
    6532), then ``message_id`` and ``fields`` (complete header lines)."""
    head, head_end, between, end = _frame(identity, subject, language, "one", fields)
    out = [head, headers.address("To", "", to).encode(), f"Message-ID: {message_id}\r\n".encode()]
    out.append(head_end)
    _Body.build(text, ()).encode_into(out, ())
    out.append(between)
    _Body.build(html_body, ()).encode_into(out, ())
    out.append(end)
    return b"".join(out)


class Emailed(Protocol):
    """What an email rendered once is about, as its frame needs it: a release, or a digest's
    period in one language (mail/digest.py)."""

    @property
    def id(self) -> int: ...
    @property
    def language(self) -> str: ...
    @property
    def title(self) -> str: ...


class RenderedRelease:
    """A release's email, rendered once; :meth:`message_for` personalises it per recipient."""

    # What it is, in its MIME boundary and its Feedback-ID: "release", "digest".
    kind = "release"

    def __init__(
        self,
        release: Emailed,
        settings: Settings,
        identity: Identity,
        placeholders: _Placeholders,
        text: _Body,
        html_body: _Body,
        *,
        subject: str | None = None,
        personal_page: bool = False,
    ) -> None:
        self.release_id = release.id
        # Every recipient's "read online" is their own link (Recipient.page_url).
        self.personal_page = personal_page
        self.language = release.language
        self.subject = " ".join((subject or release.title).split())
        self.envelope_from = settings.sender_address
        self._bounces = BounceAddresses(settings)
        self._domain = settings.sender_domain
        # Gmail's feedback loop (CampaignId:CustomerId:MailTypeId:SenderId): complaints are
        # counted per release and language, for this sender. No field may hold a colon.
        self.feedback_id = f"{self.kind}-{release.id}:{release.language}:press:{self._domain}"
        self._placeholders = placeholders
        self._text = text
        self._html = html_body
        list_name = labels_for(release.language)["list_name"].format(
            organisation=identity.name(release.language)
        )
        self._head, self._head_end, self._between, self._end = _frame(
            identity,
            self.subject,
            release.language,
            f"{self.kind}-{release.id}",
            headers.address("List-Id", list_name, f"releases.{self._domain}")
            + "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f"Feedback-ID: {self.feedback_id}\r\n",
        )
        self._frame_dot_free = dot_free((self._head, self._head_end, self._between, self._end))

    def message_id(self, subscriber_id: int) -> str:
        """The Message-ID of this release's email to ``subscriber_id``: the same every time, so
        a message sent twice is recognisably the same message."""
        return f"<release-{self.release_id}.{subscriber_id}@{self._domain}>"

    def envelope_for(self, rcpt: Recipient) -> str:
        """The envelope sender (Return-Path) of ``rcpt``'s message: the VERP address of its
        delivery (``bounces+TOKEN@domain``, see :mod:`.verp`) so a bounce names the ledger
        row, or the plain sender address when ``rcpt`` has no delivery id (tests, previews)."""
        if rcpt.delivery_id is None:
            return self.envelope_from
        return self._bounces.address(rcpt.delivery_id)

    @classmethod
    def from_templates(
        cls,
        release: Emailed,
        settings: Settings,
        identity: Identity,
        names: tuple[str, str],
        render: Callable[..., tuple[str, str]],
        *,
        personal_page: bool = False,
        **options: Any,
    ) -> Self:
        """The email whose text and HTML parts ``render(unsubscribe_url, preferences_url)``
        (and ``page_url``, the recipient's own "read online" link, when ``personal_page``)
        makes from the templates ``names`` (text, HTML), with placeholders for the links,
        personalised later per recipient. ``options`` go to the constructor. Raises
        :class:`ConfigError` when a part never uses one of the links (every email must
        carry the unsubscribe and preferences links, a personal page its own)."""
        marks = _Placeholders.new()
        needed = [("unsubscribe", marks.unsubscribe), ("preferences", marks.preferences)]
        if personal_page:
            needed.append(("page", marks.page))
        parts = render(*(mark for _, mark in needed))
        for name, body in zip(names, parts, strict=True):
            for what, mark in needed:
                if mark not in body:
                    raise ConfigError(
                        f"{settings.templates_dir}/email/{name} has no {what} link "
                        f"(it never uses {what}_url)"
                    )
        used = [mark for _, mark in needed]
        text, html_body = (_Body.build(body, used) for body in parts)
        return cls(
            release, settings, identity, marks, text, html_body,
            personal_page=personal_page, **options,
        )  # fmt: skip

    def thread_headers(self, rcpt: Recipient) -> bytes:
        """Header fields placing ``rcpt``'s message in a conversation (In-Reply-To,
        References): none for a release email."""
        return b""

    def message_for(self, rcpt: Recipient) -> bytes:
        """The complete message for ``rcpt``, ready for SMTP DATA: ASCII (but for an address
        with a non-ASCII local part, in UTF-8 per RFC 6532, to be sent with SMTPUTF8), CRLF
        line ends, header lines folded to 78 columns (longer only for a long link or
        address), body lines of at most 76."""
        personal = (
            # UTF-8 only for an internationalised address (RFC 6532); else plain ASCII.
            headers.address("To", rcpt.name, rcpt.email).encode(),
            self.thread_headers(rcpt),
            f"Message-ID: {self.message_id(rcpt.subscriber_id)}\r\n".encode("ascii"),
            f"List-Unsubscribe: <{rcpt.unsubscribe_url}>\r\n".encode("ascii"),
        )
        out = [self._head, *personal, self._head_end]
        self._text.encode_into(out, self._replacements(rcpt, escape=False))
        out.append(self._between)
        self._html.encode_into(out, self._replacements(rcpt, escape=True))
        out.append(self._end)
        # The bodies never start a line with "." (_qp); the header fields are checked.
        if self._frame_dot_free and dot_free(personal):
            return DotFree(b"".join(out))  # the transport need not scan it (smtpdata)
        return b"".join(out)

    def text_for(self, rcpt: Recipient) -> str:
        """The text part ``rcpt`` receives, decoded (for previews)."""
        return self._text.decoded(self._replacements(rcpt, escape=False))

    def html_for(self, rcpt: Recipient) -> str:
        """The HTML part ``rcpt`` receives, decoded (for previews)."""
        return self._html.decoded(self._replacements(rcpt, escape=True))

    def _replacements(self, rcpt: Recipient, *, escape: bool) -> tuple[tuple[str, str], ...]:
        # Runs twice per recipient (text, HTML): the public email's two links, as before the
        # personal page existed; the page only for an email that has one.
        unsubscribe, preferences = rcpt.unsubscribe_url, rcpt.preferences_url
        if escape:
            unsubscribe, preferences = html.escape(unsubscribe), html.escape(preferences)
        links = (
            (self._placeholders.unsubscribe, unsubscribe),
            (self._placeholders.preferences, preferences),
        )
        if not self.personal_page:
            return links
        if rcpt.page_url is None:
            raise ValueError(f"subscriber {rcpt.subscriber_id}: this email needs a page_url")
        page = html.escape(rcpt.page_url) if escape else rcpt.page_url
        return (*links, (self._placeholders.page, page))


def _check_renderable(release: Release) -> None:
    if release.id is None:
        raise ReleaseInputError(f"release {release.slug!r} has no id yet: store it first")
    if not _LANGUAGE.fullmatch(release.language or ""):
        raise ReleaseInputError(f"release {release.slug!r}: bad language {release.language!r}")


def render_release(
    release: Release, settings: Settings, identity: Identity, page_url: str | None = None
) -> RenderedRelease:
    """Render ``release``'s email as from ``identity``, once (both parts, CSS inlined,
    relative links made absolute; "read online" at ``page_url``, default its public page)
    and pre-build its MIME message. Raises :class:`ReleaseInputError`
    for a release without id or with a malformed language tag, and :class:`ConfigError` when a
    template lacks the unsubscribe or preferences link (every email must carry both)."""
    _check_renderable(release)
    return RenderedRelease.from_templates(
        release,
        settings,
        identity,
        ("release.txt", "release.html"),
        lambda unsubscribe, preferences: render_bodies(
            release, settings, identity, unsubscribe, preferences, page_url
        ),
    )


def render_advance_copy(
    release: Release, settings: Settings, identity: Identity
) -> RenderedRelease:
    """Render scheduled ``release``'s embargoed advance copy as :func:`render_release` does,
    once: the subject and a banner on top say when the embargo lifts (its publication time,
    in the press office's time zone with the UTC offset, in the release's language), and
    "read online" is each recipient's own link (``Recipient.page_url``: urls.advance_url).
    Raises as :func:`render_release` does, and ReleaseInputError for a release that is not
    scheduled (no lift to announce)."""
    _check_renderable(release)
    if release.scheduled_at is None:
        raise ReleaseInputError(f"release {release.slug!r} is not scheduled: no embargo to state")
    when = embargo_time(release.scheduled_at, release.language, settings.zone)
    labels = labels_for(release.language)
    title = " ".join(release.title.split())
    return RenderedRelease.from_templates(
        release,
        settings,
        identity,
        ("release.txt", "release.html"),
        lambda unsubscribe, preferences, page: render_bodies(
            release, settings, identity, unsubscribe, preferences, page, when
        ),
        personal_page=True,
        subject=labels["embargoed_subject"].format(when=when, title=title),
    )
