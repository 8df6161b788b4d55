"""The press office's view of its releases, one place for every face: the list (any state,
newest first, filtered by state, language, topic and words of the title, with counts per
state) and one release with its delivery counts.
``GET /api/releases[/ID]`` answers these models, and ``distributor releases list|show``
prints them (``--json``: the same fields)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, load_only, selectinload

from distributor.core.config import Settings
from distributor.core.db import is_sqlite
from distributor.core.models import Release, ReleaseState, Topic
from distributor.core.urls import release_url
from distributor.reporting.status import ReleaseStatus, release_status


class Counts(BaseModel):
    """Where a release's deliveries stand."""

    planned: int = Field(description="Deliveries in the ledger, in any status")
    pending: int
    sent: int
    deferred: int = Field(description="Refused for now; tried again later")
    failed: int
    cancelled: int = Field(description="Not sent: the person left, or the release was withdrawn")
    bounced: int = Field(description="Sent, then reported back as undeliverable")
    hard_bounces: int
    soft_bounces: int
    unsubscribed_since: int = Field(description="Recipients who unsubscribed after receiving it")
    first_sent_at: datetime | None
    last_sent_at: datetime | None
    time_to_send: float | None = Field(
        description="Seconds from publication to the last message, once nothing is left to send"
    )
    without_version: dict[str, int] = Field(
        description="Per language: confirmed followers of its topics who read a language it "
        "has no version in (they get nothing)"
    )
    advance: dict[str, int] | None = Field(
        default=None,
        description="Its embargoed advance copies by status (counted in the totals too: each "
        "is its recipient's one copy); null when it has none",
    )


class CorrectionOut(BaseModel):
    """One correction of a published release."""

    corrected_at: datetime
    corrected_by: str = Field(description="Who made it (empty: before this was recorded)")
    note: str = Field(description="What changed, in a line (empty: none given)")


class ReleaseOut(BaseModel):
    """A release, its state, and its delivery counts."""

    id: int
    slug: str
    url: str = Field(description="Its permanent page (live once published)")
    title: str
    language: str
    state: ReleaseState
    topics: list[str]
    translation_of: int | None = Field(description="The id of the release it translates")
    translations: list[int] = Field(description="The ids of its other language versions")
    date: datetime
    dateline: str
    lead: str
    body_html: str
    body_text: str
    contacts: list[dict[str, Any]]
    images: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    embargo_at: datetime | None
    scheduled_at: datetime | None
    advance_at: datetime | None = Field(
        description="When accredited journalists get it before it is public (null: never)"
    )
    published_at: datetime | None
    corrected_at: datetime | None
    corrections: list[CorrectionOut] = Field(
        description="Every correction, oldest first, with what changed"
    )
    withdrawn_at: datetime | None
    withdrawn_by: str
    withdrawn_reason: str
    last_edited_by: str
    approval_requested_by: str
    approved_by: str
    approved_at: datetime | None
    created_at: datetime
    updated_at: datetime
    counts: Counts


class ReleaseSummary(BaseModel):
    """A release in a list."""

    id: int
    slug: str
    title: str
    language: str
    state: ReleaseState
    topics: list[str]
    date: datetime
    scheduled_at: datetime | None
    published_at: datetime | None
    updated_at: datetime


class ReleasePage(BaseModel):
    """One page of releases, newest first: the number of matches, and this page."""

    total: int
    items: list[ReleaseSummary]


def _counts(st: ReleaseStatus) -> Counts:
    c = st.counts
    return Counts(
        planned=st.planned,
        pending=c["pending"],
        sent=c["sent"],
        deferred=c["deferred"],
        failed=c["failed"],
        cancelled=c["cancelled"],
        bounced=st.bounced,
        hard_bounces=st.hard_bounces,
        soft_bounces=st.soft_bounces,
        unsubscribed_since=st.unsubscribed_since,
        first_sent_at=st.first_sent_at,
        last_sent_at=st.last_sent_at,
        time_to_send=st.time_to_send,
        without_version=st.without_version,
        advance=st.advance_counts,
    )


def release_out(session: Session, settings: Settings, release: Release) -> ReleaseOut:
    """``release`` (flushed) as the API answers it and `releases show` prints it, with its
    counts read now."""
    root = release.translation_of_id or release.id
    versions = session.scalars(
        select(Release.id).where((Release.id == root) | (Release.translation_of_id == root))
    )
    return ReleaseOut(
        id=release.id,
        slug=release.slug,
        url=release_url(settings, release.slug),
        title=release.title,
        language=release.language,
        state=ReleaseState(release.state),
        topics=sorted(t.slug for t in release.topics),
        translation_of=release.translation_of_id,
        translations=sorted(i for i in versions if i != release.id),
        date=release.date,
        dateline=release.dateline,
        lead=release.lead,
        body_html=release.body_html,
        body_text=release.body_text,
        contacts=list(release.contacts),
        images=list(release.images),
        attachments=list(release.attachments),
        embargo_at=release.embargo_at,
        scheduled_at=release.scheduled_at,
        advance_at=release.advance_at,
        published_at=release.published_at,
        corrected_at=release.corrected_at,
        corrections=[
            CorrectionOut(corrected_at=c.corrected_at, corrected_by=c.corrected_by, note=c.note)
            for c in release.corrections
        ],
        withdrawn_at=release.withdrawn_at,
        withdrawn_by=release.withdrawn_by,
        withdrawn_reason=release.withdrawn_reason,
        last_edited_by=release.last_edited_by,
        approval_requested_by=release.approval_requested_by,
        approved_by=release.approved_by,
        approved_at=release.approved_at,
        created_at=release.created_at,
        updated_at=release.updated_at,
        counts=_counts(release_status(session, release.id)),
    )


def _matching(
    session: Session,
    language: str | None,
    topic: str | None,
    search: str | None,
) -> Select[Any]:
    """The releases in ``language``, on ``topic``, with ``search`` in their title (any,
    where None or empty); the search ignores case, accents' case too (SQLite's own lower()
    knows only ASCII: its connections have ``casefold``, core.db)."""
    stmt = select(Release)
    if language:
        stmt = stmt.where(Release.language == language)
    if topic:
        stmt = stmt.where(Release.topics.any(Topic.slug == topic))
    words = (search or "").split()
    if words:
        fold = func.casefold if is_sqlite(session.get_bind()) else func.lower
        for word in words:  # every word, anywhere in the title
            stmt = stmt.where(fold(Release.title).contains(word.casefold(), autoescape=True))
    return stmt


def find_releases(
    session: Session,
    state: ReleaseState | None = None,
    language: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    topic: str | None = None,
    search: str | None = None,
) -> ReleasePage:
    """The releases in ``state``, ``language``, on ``topic`` and with every word of
    ``search`` in their title (any, when None), newest first (by date, then id): the number
    of matches and ``limit`` of them (all when None) after ``offset``. Reads only the
    columns a summary shows (not the bodies)."""
    stmt = _matching(session, language, topic, search)
    if state is not None:
        stmt = stmt.where(Release.state == state)
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(
        stmt.options(load_only(*_SUMMARY_COLUMNS), selectinload(Release.topics))
        .order_by(Release.date.desc(), Release.id.desc())
        .limit(limit)
        .offset(offset)
    )
    items = [
        ReleaseSummary(
            id=r.id,
            slug=r.slug,
            title=r.title,
            language=r.language,
            state=ReleaseState(r.state),
            topics=sorted(t.slug for t in r.topics),
            date=r.date,
            scheduled_at=r.scheduled_at,
            published_at=r.published_at,
            updated_at=r.updated_at,
        )
        for r in rows
    ]
    return ReleasePage(total=total, items=items)


_SUMMARY_COLUMNS = (
    Release.id,
    Release.slug,
    Release.title,
    Release.language,
    Release.state,
    Release.date,
    Release.scheduled_at,
    Release.published_at,
    Release.updated_at,
)


def count_by_state(
    session: Session,
    language: str | None = None,
    topic: str | None = None,
    search: str | None = None,
) -> dict[ReleaseState, int]:
    """How many of the releases ``find_releases`` would find with these filters are in
    each state (every state named, 0 included)."""
    matching = _matching(session, language, topic, search).subquery()
    rows = session.execute(select(matching.c.state, func.count()).group_by(matching.c.state))
    found: dict[str, int] = {state: count for state, count in rows}
    return {state: found.get(state.value, 0) for state in ReleaseState}
