"""Releases: read from Markdown with YAML front matter, create, publish (now or later).

Ingest is strict: a broken front matter, a missing title, an unknown topic or a date without a
time zone is refused with a ReleaseInputError naming the source and the field, and nothing
is stored. The body is Markdown rendered to sanitised HTML; the Markdown source is kept as
the text part of the email.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from .config import Settings
from .errors import Conflict, NotFound, ReleaseInputError
from .models import Release, ReleaseState, Topic, utcnow
from .sanitize import markdown_to_html, strip_xml_invalid

MAX_SOURCE_BYTES = 2 * 1024 * 1024
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)
_NO_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _single_line(value: str) -> str:
    if _NO_CONTROL.search(value):
        raise ValueError("must be a single line without control characters")
    return value.strip()


def _http_only(value: str) -> str:
    if value and not re.match(r"^(https?://|/)", value):
        raise ValueError("must be an http(s) URL or a site path starting with /")
    return value


class Contact(BaseModel):
    """A press contact printed on every release."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=50)
    email: str = Field(default="", max_length=320)

    _lines = field_validator("name", "role", "phone", "email")(_single_line)


class Image(BaseModel):
    """An image shown as a small preview, linking to its high-resolution version."""

    model_config = ConfigDict(extra="forbid")
    src: str = Field(min_length=1, max_length=2000)
    alt: str = Field(min_length=1, max_length=500)
    credit: str = Field(default="", max_length=200)
    href: str = Field(default="", max_length=2000)
    # For the feeds' enclosure; a site path's file under public/ is measured when absent.
    type: str = Field(default="", max_length=100, pattern=r"^$|^image/[\w.+-]+$")
    length: int = Field(default=0, ge=0)

    _lines = field_validator("src", "alt", "credit", "href")(_single_line)
    _urls = field_validator("src", "href")(_http_only)


class Attachment(BaseModel):
    """A document offered for download (a PDF backgrounder, a fact sheet)."""

    model_config = ConfigDict(extra="forbid")
    href: str = Field(min_length=1, max_length=2000)
    title: str = Field(min_length=1, max_length=300)
    type: str = Field(default="", max_length=100, pattern=r"^$|^[\w.+-]+/[\w.+-]+$")
    length: int = Field(default=0, ge=0)

    _lines = field_validator("href", "title")(_single_line)
    _urls = field_validator("href")(_http_only)


def _aware(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError("needs a time and a time zone, e.g. 2026-11-20T09:00:00+01:00")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("is not an ISO 8601 date-time") from exc
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError("has no time zone; write e.g. 2026-11-20T09:00:00+01:00")
    return value


class FrontMatter(BaseModel):
    """The fields a release file may carry in its front matter."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    lang: str = Field(min_length=2, max_length=8)
    topics: list[str] = Field(min_length=1)
    date: datetime
    embargo: datetime | None = None
    translation_of: str | None = None
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=200)
    dateline: str = Field(default="", max_length=200)
    lead: str | None = Field(default=None, max_length=5000)
    contacts: list[Contact] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)

    _lines = field_validator("title", "lang", "dateline")(_single_line)
    _dates = field_validator("date", "embargo", mode="before")(_aware)


@dataclass(frozen=True)
class ReleaseDraft:
    """A release read and checked, not yet stored."""

    meta: FrontMatter
    lead: str
    body_html: str
    body_text: str
    source: str


def slugify(text: str) -> str:
    """A URL slug of ``text``: ASCII, lowercase, words joined by hyphens, at most 80 chars."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:80].rstrip("-") or "release"


def _split_lead(body: str) -> tuple[str, str]:
    """The first paragraph of a Markdown body (the lead) and the rest."""
    parts = re.split(r"\n[ \t]*\n", body.strip(), maxsplit=1)
    lead = " ".join(line.strip() for line in parts[0].splitlines())
    return lead, parts[1] if len(parts) > 1 else ""


def parse_release(text: str, source: str, settings: Settings) -> ReleaseDraft:
    """Read a release from Markdown with YAML front matter.

    Raises ReleaseInputError naming ``source`` and the field at fault.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise ReleaseInputError(f"{source}: larger than {MAX_SOURCE_BYTES // 1024} KiB")
    match = _FRONT_MATTER.match(text)
    if not match:
        raise ReleaseInputError(
            f"{source}: no front matter: the file must start with a line '---', "
            "the YAML fields, and a closing line '---'"
        )
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise ReleaseInputError(f"{source}: front matter is not valid YAML{where}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReleaseInputError(f"{source}: front matter must be a mapping of fields")
    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field '{'.'.join(str(p) for p in e['loc']) or '?'}': "
            + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise ReleaseInputError(f"{source}: {problems}") from exc
    if meta.lang not in settings.languages:
        raise ReleaseInputError(
            f"{source}: field 'lang': {meta.lang!r} is not one of {', '.join(settings.languages)}"
        )
    body = strip_xml_invalid(match.group(2)).strip()
    if meta.lead is not None:
        lead, rest = strip_xml_invalid(meta.lead).strip(), body
    else:
        lead, rest = _split_lead(body)
    if not lead:
        raise ReleaseInputError(f"{source}: field 'lead': the release has no lead paragraph")
    return ReleaseDraft(meta, lead, markdown_to_html(rest), rest, source)


def create_release(session: Session, settings: Settings, draft: ReleaseDraft) -> Release:
    """Store ``draft`` as a draft release and return it (flushed, with its id).

    Raises ReleaseInputError for an unknown topic or translation, Conflict for a taken slug.
    """
    meta = draft.meta
    topics = list(session.scalars(select(Topic).where(Topic.slug.in_(meta.topics))))
    missing = sorted(set(meta.topics) - {t.slug for t in topics})
    if missing:
        raise ReleaseInputError(
            f"{draft.source}: field 'topics': unknown topic(s) {', '.join(missing)} "
            "(add them with `distributor topics add SLUG --name NAME`)"
        )
    translation_of = None
    if meta.translation_of:
        translation_of = session.scalar(select(Release).where(Release.slug == meta.translation_of))
        if translation_of is None:
            raise ReleaseInputError(
                f"{draft.source}: field 'translation_of': no release with slug "
                f"{meta.translation_of!r}"
            )
    slug = meta.slug or slugify(meta.title)
    existing = session.scalar(select(Release.id).where(Release.slug == slug))
    if existing is not None:
        raise Conflict(
            f"{draft.source}: a release with slug {slug!r} already exists (id {existing}); "
            "set another 'slug' in the front matter"
        )
    now = utcnow()
    release = Release(
        slug=slug,
        title=meta.title,
        language=meta.lang,
        dateline=meta.dateline,
        lead=draft.lead,
        body_html=draft.body_html,
        body_text=draft.body_text,
        date=meta.date,
        embargo_at=meta.embargo,
        contacts=[c.model_dump() for c in meta.contacts],
        images=[i.model_dump() for i in meta.images],
        attachments=[a.model_dump() for a in meta.attachments],
        state=ReleaseState.DRAFT,
        translation_of=translation_of,
        topics=topics,
        created_at=now,
        updated_at=now,
    )
    session.add(release)
    session.flush()
    return release


def get_release(session: Session, release_id: int) -> Release:
    """The release with ``release_id``; raises NotFound."""
    release = session.get(Release, release_id)
    if release is None:
        raise NotFound(f"no release with id {release_id}")
    return release


def mark_published(
    session: Session, release_id: int, at: datetime | None = None, now: datetime | None = None
) -> Release:
    """Publish the release now, or schedule it for ``at`` (or its embargo) if that is later.

    ``at`` earlier than the release's embargo is refused: the embargo, from its front
    matter, is a promise to journalists. A scheduled release is rescheduled by publishing it
    again with another ``at`` (earlier or later), or at once without one when its embargo
    allows. The caller commits, then wakes the workers (see ``dispatch.publish``).
    Publishing an already published release changes nothing; a withdrawn one raises
    Conflict. ``now`` is an injectable clock (UTC, aware).
    """
    if at is not None and at.tzinfo is None:
        raise ReleaseInputError("publish time: has no time zone; write e.g. 2026-11-20T09:00+01:00")
    release = get_release(session, release_id)
    if release.state == ReleaseState.WITHDRAWN:
        raise Conflict(f"release {release_id} was withdrawn; it cannot be published")
    if release.state == ReleaseState.PUBLISHED:
        if at is not None:
            raise Conflict(f"release {release_id} is already published; it cannot be scheduled")
        return release
    now = now or utcnow()
    if at is not None and release.embargo_at is not None and at < release.embargo_at:
        raise ReleaseInputError(
            f"publish time {at.isoformat()} is before the release's embargo "
            f"{release.embargo_at.isoformat()}; choose a later time or change the embargo"
        )
    when = max(d for d in (at, release.embargo_at, now) if d is not None)
    if when > now:
        release.state = ReleaseState.SCHEDULED
        release.scheduled_at = when
    else:
        release.state = ReleaseState.PUBLISHED
        release.published_at = now
        release.scheduled_at = None
    release.updated_at = now
    return release


def unschedule(session: Session, release_id: int, now: datetime | None = None) -> Release:
    """Cancel a scheduled publication: the release goes back to draft, nothing was or will
    be sent. Raises Conflict unless it is scheduled (a published release is withdrawn
    instead)."""
    release = get_release(session, release_id)
    if release.state != ReleaseState.SCHEDULED:
        raise Conflict(f"release {release_id} is {release.state}, not scheduled")
    release.state = ReleaseState.DRAFT
    release.scheduled_at = None
    release.updated_at = now or utcnow()
    return release


def publish_due(session: Session, now: datetime | None = None) -> list[int]:
    """Publish every scheduled release whose time has come (by ``now``, an injectable
    clock); return their ids."""
    now = now or utcnow()
    due = list(
        session.scalars(
            select(Release).where(
                Release.state == ReleaseState.SCHEDULED, Release.scheduled_at <= now
            )
        )
    )
    for release in due:
        release.state = ReleaseState.PUBLISHED
        release.published_at = now
        release.updated_at = now
        release.scheduled_at = None
    return [r.id for r in due]


def withdraw(session: Session, release_id: int, by: str, now: datetime | None = None) -> Release:
    """Withdraw a release, whatever its state: it leaves the pages and feeds (its permanent
    page answers 410 Gone) and is never sent again; ``by`` records who did it. The caller
    cancels its open deliveries in the same transaction (``delivery.cancel_release``) and
    regenerates the site after the commit (``dispatch.withdraw``). Raises Conflict if it was
    withdrawn already."""
    release = get_release(session, release_id)
    if release.state == ReleaseState.WITHDRAWN:
        raise Conflict(f"release {release_id} was already withdrawn")
    who = _single_line_or_error(by, "withdrawn by")
    now = now or utcnow()
    release.state = ReleaseState.WITHDRAWN
    release.scheduled_at = None
    release.withdrawn_at = now
    release.withdrawn_by = who
    release.updated_at = now
    return release


def _single_line_or_error(value: str, field: str) -> str:
    try:
        cleaned = _single_line(value)
    except ValueError as exc:
        raise ReleaseInputError(f"{field}: {exc}") from exc
    if not cleaned:
        raise ReleaseInputError(f"{field}: say who (a name)")
    return cleaned[:200]


def correct_release(
    session: Session, release_id: int, draft: ReleaseDraft, now: datetime | None = None
) -> Release:
    """Replace a published release's text (title, lead, body, images, attachments,
    contacts, dateline) with ``draft``'s and mark it corrected now. Its id, slug, language,
    date and topics stay: feed readers keep the same item (a new updated date), and the
    audience the email went to is not redrawn. Raises Conflict unless it is published,
    ReleaseInputError if the draft's language or slug differ."""
    release = get_release(session, release_id)
    if release.state != ReleaseState.PUBLISHED:
        raise Conflict(f"release {release_id} is {release.state}: only a published release is "
                       "corrected (edit a draft by creating it again)")  # fmt: skip
    meta = draft.meta
    if meta.lang != release.language:
        raise ReleaseInputError(
            f"{draft.source}: field 'lang': a correction keeps the language "
            f"({release.language}); publish a translation instead"
        )
    if meta.slug is not None and meta.slug != release.slug:
        raise ReleaseInputError(
            f"{draft.source}: field 'slug': a correction keeps the address ({release.slug})"
        )
    now = now or utcnow()
    release.title = meta.title
    release.dateline = meta.dateline
    release.lead = draft.lead
    release.body_html = draft.body_html
    release.body_text = draft.body_text
    release.contacts = [c.model_dump() for c in meta.contacts]
    release.images = [i.model_dump() for i in meta.images]
    release.attachments = [a.model_dump() for a in meta.attachments]
    release.corrected_at = now
    release.updated_at = now
    return release
