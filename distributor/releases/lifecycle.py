"""A release's life in the database: created from a checked draft (``source.py``), updated
while a draft, published now or scheduled (never before its embargo, never in the past),
unscheduled, corrected (same id and address), withdrawn. Each function changes the session
it is given; the caller commits and only then wakes the workers (``actions``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.core.config import Settings
from distributor.core.errors import Conflict, NotFound, ReleaseInputError, StaleEdit
from distributor.core.models import MAX_NOTE, Correction, Release, ReleaseState, Topic, utcnow
from distributor.core.sanitize import single_line
from distributor.core.slugs import SLUG_MAX, slugify

if TYPE_CHECKING:  # a draft comes checked from source.py, which `releases status` never needs
    from distributor.releases.source import ReleaseDraft

# How far in the past a publish time may be and still mean "now": clocks of hosts kept by
# NTP agree within this, and a client that computed "now" sends it a moment later. Only
# that: a time further back is a typo (a wrong day, a wrong month), and sending a release
# early cannot be undone — it is refused, and "now" must be said (--at now, null).
PAST_TOLERANCE = timedelta(seconds=5)


def create_release(session: Session, settings: Settings, draft: ReleaseDraft) -> Release:
    """Store ``draft`` as a draft release and return it (flushed, with its id).

    Raises ReleaseInputError for an unknown topic or translation, Conflict for a taken slug.
    """
    topics, translation_of = _references(session, draft)
    slug = _free_slug(session, draft, None)
    now = utcnow()
    release = Release(
        slug=slug,
        state=ReleaseState.DRAFT,
        topics=topics,
        translation_of=translation_of,
        corrections=[],  # none yet: known without asking the database, once detached too
        created_at=now,
    )
    _fill(release, draft, now)
    session.add(release)
    session.flush()
    return release


def update_draft(
    session: Session,
    settings: Settings,
    release_id: int,
    draft: ReleaseDraft,
    seen: datetime | None = None,
) -> Release:
    """Replace every field of draft release ``release_id`` with ``draft``'s (its slug too,
    when the draft gives one); returns it, flushed. With ``seen`` (its ``updated_at`` when
    the edit began), raises StaleEdit if it was saved since, changing nothing. Raises
    NotFound, Conflict unless it is a draft (a scheduled one is unscheduled first, a
    published one corrected) or when the new slug is taken, ReleaseInputError as
    ``create_release``."""
    release = get_release(session, release_id, for_update=seen is not None)
    if seen is not None and release.updated_at != seen:
        raise StaleEdit(
            f"release {release_id} was saved by someone else since you opened it "
            f"(at {release.updated_at:%Y-%m-%d %H:%M:%S} UTC): nothing was overwritten"
        )
    if release.state != ReleaseState.DRAFT:
        raise Conflict(
            f"release {release_id} is {release.state}: only a draft is edited "
            "(unschedule a scheduled release first; correct a published one)"
        )
    topics, translation_of = _references(session, draft)
    if translation_of is not None and translation_of.id == release.id:
        raise ReleaseInputError(
            f"{draft.source}: field 'translation_of': names this release", field="translation_of"
        )
    release.slug = _free_slug(session, draft, release.id)
    release.topics = topics
    release.translation_of = translation_of
    _fill(release, draft, utcnow())
    session.flush()
    return release


def unsaved(session: Session, draft: ReleaseDraft, release_id: int | None = None) -> Release:
    """The release ``draft`` would be once stored — as a new draft (``release_id`` None; its
    id 0, which no row has), or as draft ``release_id``'s new text — for a preview of what
    is typed before it is saved. It is not added to the session: nothing is written, and
    it is gone with the request. Raises as ``create_release`` / ``update_draft`` would
    (ReleaseInputError for an unknown topic or translation, Conflict for a taken slug or a
    release that is no longer a draft, NotFound), so a preview tells what a save would."""
    topics, translation_of = _references(session, draft)
    now = utcnow()
    release = Release(
        id=release_id or 0,
        slug=_free_slug(session, draft, release_id),
        state=ReleaseState.DRAFT,
        topics=topics,
        translation_of=translation_of,
        # Set by hand: a transient object's foreign key follows its relationship only at a
        # flush, which never comes (the audience count reads it).
        translation_of_id=translation_of.id if translation_of is not None else None,
        created_at=now,
    )
    if release_id is not None:
        stored = get_release(session, release_id)
        if stored.state != ReleaseState.DRAFT:
            raise Conflict(f"release {release_id} is {stored.state}: only a draft is edited")
        release.created_at = stored.created_at
    _fill(release, draft, now)
    return release


def duplicate(session: Session, release_id: int, language: str | None = None) -> Release:
    """A new draft with release ``release_id``'s text, topics, contacts, images and
    documents; returns it, flushed. Raises NotFound.

    Without ``language``: a copy to start the next release from (from a release in any
    state), in its language, dated now, with no embargo, not a translation of anything,
    under the first free slug of ``SLUG-copy``, ``SLUG-copy-2``, ….

    With ``language`` ("Add French version"): its version in that language, to be
    translated, linked to the release's original (``translation_of``: the release itself,
    or the one it translates) and keeping the original's date and embargo, so that both go
    out together; under the first free of ``SLUG-LANG``, ``SLUG-LANG-2``, … (SLUG the
    original's). Conflict when the release is withdrawn, or when one of its versions is in
    that language already."""
    source = get_release(session, release_id)
    now = utcnow()
    original, date, embargo = None, now, None
    if language is not None:
        original = source.translation_of or source
        if source.state == ReleaseState.WITHDRAWN:
            raise Conflict(f"release {release_id} is withdrawn: it has no new version")
        versions = session.scalars(
            select(Release).where(
                (Release.id == original.id) | (Release.translation_of_id == original.id)
            )
        )
        taken = next((v for v in versions if v.language == language), None)
        if taken is not None:
            raise Conflict(
                f"release {release_id} has a version in {language} already: "
                f"release {taken.id} ({taken.slug})"
            )
        date, embargo = original.date, original.embargo_at
    base = original.slug if original is not None else source.slug
    copy = Release(
        slug=_free_variant(session, base, language or "copy"),
        state=ReleaseState.DRAFT,
        topics=list(source.topics),
        translation_of=original,
        title=source.title,
        language=language or source.language,
        dateline=source.dateline,
        lead=source.lead,
        body_html=source.body_html,
        body_text=source.body_text,
        contacts=[dict(c) for c in source.contacts],
        images=[dict(i) for i in source.images],
        attachments=[dict(a) for a in source.attachments],
        date=date,
        embargo_at=embargo,
        corrections=[],  # a copy is not corrected: its source's corrections stay its own
        created_at=now,
        updated_at=now,
    )
    session.add(copy)
    session.flush()
    return copy


def _free_variant(session: Session, slug: str, word: str) -> str:
    """The first of ``SLUG-WORD``, ``SLUG-WORD-2``, … no release has (``slug`` cut to
    leave room for the suffix within SLUG_MAX)."""
    taken = set(session.scalars(select(Release.slug).where(Release.slug.startswith(slug[:40]))))
    number = 1
    while True:
        suffix = f"-{word}" if number == 1 else f"-{word}-{number}"
        candidate = slug[: SLUG_MAX - len(suffix)].rstrip("-") + suffix
        if candidate not in taken:
            return candidate
        number += 1


def delete_draft(session: Session, release_id: int) -> tuple[Release, list[int]]:
    """Delete draft ``release_id``: its row and what hangs on it (its topics' links; a draft
    has no deliveries or notices). Its slug is free again; its id is never given again
    (the table counts on). Releases that were its translations stay, unlinked: each is its
    own original from now on. Returns the release as it was (detached) and the ids of the
    translations unlinked. Raises NotFound, Conflict unless it is a draft (a scheduled one
    is unscheduled first, a published one withdrawn: what was sent stays on record)."""
    release = get_release(session, release_id)
    if release.state != ReleaseState.DRAFT:
        advice = {
            ReleaseState.SCHEDULED: "unschedule it first",
            ReleaseState.PUBLISHED: "withdraw a published release instead",
        }.get(ReleaseState(release.state), "a withdrawn release stays on record")
        raise Conflict(
            f"release {release_id} is {release.state}: only a draft is deleted ({advice})"
        )
    unlinked = list(
        session.scalars(
            select(Release.id).where(Release.translation_of_id == release_id).order_by(Release.id)
        )
    )
    if unlinked:
        session.execute(
            update(Release)
            .where(Release.translation_of_id == release_id)
            .values(translation_of_id=None)
        )
    session.delete(release)
    session.flush()
    return release, unlinked


def _references(session: Session, draft: ReleaseDraft) -> tuple[list[Topic], Release | None]:
    """The draft's topics and the release it translates; ReleaseInputError for unknowns."""
    meta = draft.meta
    topics = list(session.scalars(select(Topic).where(Topic.slug.in_(meta.topics))))
    missing = sorted(set(meta.topics) - {t.slug for t in topics})
    if missing:
        raise ReleaseInputError(
            f"{draft.source}: field 'topics': unknown topic(s) {', '.join(missing)} "
            "(add them with `distributor topics add SLUG --name NAME`)",
            field="topics",
        )
    translation_of = None
    if meta.translation_of:
        translation_of = session.scalar(select(Release).where(Release.slug == meta.translation_of))
        if translation_of is None:
            raise ReleaseInputError(
                f"{draft.source}: field 'translation_of': no release with slug "
                f"{meta.translation_of!r}",
                field="translation_of",
            )
    return topics, translation_of


def _free_slug(session: Session, draft: ReleaseDraft, own_id: int | None) -> str:
    """The draft's slug (given, or made from its title); Conflict if another release has
    it."""
    slug = draft.meta.slug or slugify(draft.meta.title)
    existing = session.scalar(select(Release.id).where(Release.slug == slug))
    if existing is not None and existing != own_id:
        raise Conflict(
            f"{draft.source}: a release with slug {slug!r} already exists (id {existing}); "
            "set another 'slug' in the front matter"
        )
    return slug


def _fill(release: Release, draft: ReleaseDraft, now: datetime) -> None:
    """Copy the draft's language, dates and text onto ``release``."""
    release.language = draft.meta.lang
    release.date = draft.meta.date
    release.embargo_at = draft.meta.embargo
    _fill_text(release, draft, now)


def _fill_text(release: Release, draft: ReleaseDraft, now: datetime) -> None:
    """Copy the draft's text (title, dateline, lead, body, contacts, images, documents)
    onto ``release``: what a correction may change."""
    meta = draft.meta
    release.title = meta.title
    release.dateline = meta.dateline
    release.lead = draft.lead
    release.body_html = draft.body_html
    release.body_text = draft.body_text
    release.contacts = [c.model_dump() for c in meta.contacts]
    release.images = [i.model_dump() for i in meta.images]
    release.attachments = [a.model_dump() for a in meta.attachments]
    release.updated_at = now


def get_release(session: Session, release_id: int, for_update: bool = False) -> Release:
    """The release with ``release_id`` (its row locked until the transaction ends, with
    ``for_update``, on PostgreSQL; SQLite's writing transactions are serial already);
    raises NotFound."""
    release = session.get(Release, release_id, with_for_update=for_update or None)
    if release is None:
        raise NotFound(f"no release with id {release_id}")
    return release


def check_publish_time(source: str, at: datetime | None, now: datetime | None = None) -> None:
    """Refuse (ReleaseInputError naming ``source``, the release, and the field ``at``) a
    publish time without a time zone or more than ``PAST_TOLERANCE`` before ``now`` (an
    injectable clock, UTC): a time in the past would publish at once, which a scheduled time
    never means. ``None`` is "now"."""
    if at is None:
        return
    if at.tzinfo is None:
        raise ReleaseInputError(
            f"{source}: field 'at': {at.isoformat()} has no time zone; write e.g. "
            "2026-11-20T09:00+01:00",
            field="at",
        )
    now = now or utcnow()
    if at < now - PAST_TOLERANCE:
        raise ReleaseInputError(
            f"{source}: field 'at': {at.isoformat()} is in the past (it is "
            f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC); nothing was published or "
            "scheduled. Give a later time, or now to publish at once",
            field="at",
        )


def mark_published(
    session: Session,
    release_id: int,
    at: datetime | None = None,
    now: datetime | None = None,
    advance: datetime | None = None,
) -> Release:
    """Publish the release now, or schedule it for ``at`` (or its embargo) if that is later.

    ``at`` earlier than the release's embargo is refused: the embargo, from its front
    matter, is a promise to journalists. A scheduled release is rescheduled by publishing it
    again with another ``at`` (earlier or later), or at once without one when its embargo
    allows. The caller commits, then wakes the workers (see ``actions.publish``).
    Publishing an already published release changes nothing; a withdrawn one raises
    Conflict. ``at`` in the past is refused (``check_publish_time``): publishing at once is
    asked for with ``at=None``. ``now`` is an injectable clock (UTC, aware). ``advance``
    (``now`` for at once) is when accredited journalists get it before it is public
    (:func:`set_advance`).
    """
    release = get_release(session, release_id)
    if release.state == ReleaseState.WITHDRAWN:
        raise Conflict(f"release {release_id} was withdrawn; it cannot be published")
    if release.state == ReleaseState.PUBLISHED:
        if at is not None:
            raise Conflict(f"release {release_id} is already published; it cannot be scheduled")
        return release
    now = now or utcnow()
    check_publish_time(f"release {release_id}", at, now)
    if at is not None and release.embargo_at is not None and at < release.embargo_at:
        raise ReleaseInputError(
            f"publish time {at.isoformat()} is before the release's embargo "
            f"{release.embargo_at.isoformat()}; choose a later time or change the embargo"
        )
    when = max(d for d in (at, release.embargo_at, now) if d is not None)
    told = release.state == ReleaseState.SCHEDULED and release.advance_planned_at is not None
    if told and (when <= now or when != release.scheduled_at):
        release.embargo_moved_at = now  # the advance copies' recipients are to be told
    if when > now:
        release.state = ReleaseState.SCHEDULED
        release.scheduled_at = when
    else:
        release.state = ReleaseState.PUBLISHED
        release.published_at = now
        release.scheduled_at = None
    set_advance(release, advance, now)
    release.updated_at = now
    return release


def set_advance(release: Release, advance: datetime | None, now: datetime) -> None:
    """Give scheduled ``release`` its advance copies' time (``now`` or later, before it goes
    public), or check the one it has against a new publication time (``advance`` None).

    Raises ReleaseInputError (field ``advance``) for advance copies of a release going out
    at once (there is no "before"), a time in the past or not before the publication, and a
    publication moved to before advance copies not sent yet; Conflict for a new advance
    time once advance copies have gone out."""
    source = f"release {release.id}"
    if advance is None:
        pending = release.advance_at is not None and release.advance_planned_at is None
        if pending and release.state == ReleaseState.SCHEDULED:
            assert release.advance_at is not None and release.scheduled_at is not None
            if release.advance_at >= release.scheduled_at:
                raise ReleaseInputError(
                    f"{source}: its advance copies ({release.advance_at.isoformat()}) would no "
                    f"longer go before it is public ({release.scheduled_at.isoformat()}); "
                    "give an earlier advance time with the new one, or now",
                    field="advance",
                )
        return
    if release.state != ReleaseState.SCHEDULED:
        raise ReleaseInputError(
            f"{source}: field 'advance': advance copies go to accredited journalists before "
            "a release is public, and this one goes out now; schedule it (or give it an "
            "embargo) to send them",
            field="advance",
        )
    if release.advance_planned_at is not None:
        raise Conflict(f"{source}: its advance copies went out already")
    if advance.tzinfo is None or advance < now - PAST_TOLERANCE:
        raise ReleaseInputError(
            f"{source}: field 'advance': {advance.isoformat()} is in the past or has no time "
            "zone; give a later time with its zone, or now",
            field="advance",
        )
    assert release.scheduled_at is not None
    when = max(advance, now)
    if when >= release.scheduled_at:
        raise ReleaseInputError(
            f"{source}: field 'advance': {when.isoformat()} is not before it goes public "
            f"({release.scheduled_at.isoformat()}): advance copies go before",
            field="advance",
        )
    release.advance_at = when


def advance_due(session: Session, now: datetime | None = None) -> list[int]:
    """The scheduled releases whose advance copies are due (by ``now``, an injectable
    clock) and not planned yet, by id."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Release.id)
            .where(
                Release.state == ReleaseState.SCHEDULED,
                Release.advance_at <= now,
                Release.advance_planned_at.is_(None),
            )
            .order_by(Release.id)
        )
    )


def unsent_versions(session: Session, release: Release) -> list[Release]:
    """The other language versions of ``release`` (its original and the original's
    translations, never itself) that are not sent yet: drafts and scheduled ones, by id.
    They are what publishing "with its versions" publishes or schedules along."""
    root = release.translation_of_id or release.id
    return list(
        session.scalars(
            select(Release)
            .where(
                (Release.id == root) | (Release.translation_of_id == root),
                Release.id != release.id,
                Release.state.in_((ReleaseState.DRAFT, ReleaseState.SCHEDULED)),
            )
            .order_by(Release.id)
        )
    )


def unschedule(session: Session, release_id: int, now: datetime | None = None) -> Release:
    """Cancel a scheduled publication: the release goes back to draft, nothing more will be
    sent (advance copies sent stay sent: their recipients are to be told, ``embargo_moved_at``).
    Raises Conflict unless it is scheduled (a published release is withdrawn instead)."""
    release = get_release(session, release_id)
    if release.state != ReleaseState.SCHEDULED:
        raise Conflict(f"release {release_id} is {release.state}, not scheduled")
    release.state = ReleaseState.DRAFT
    release.scheduled_at = None
    if release.advance_planned_at is None:
        release.advance_at = None  # a time for a schedule that no longer exists
    else:
        release.embargo_moved_at = now or utcnow()  # postponed: their recipients are told
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


MAX_REASON = 500  # characters of a withdrawal's reason: a line on the 410 page


def withdraw(
    session: Session, release_id: int, by: str, now: datetime | None = None, reason: str = ""
) -> Release:
    """Withdraw a release, whatever its state: it leaves the pages and feeds (its permanent
    page answers 410 Gone, with ``reason`` when one is given) and is never sent again; ``by``
    records who did it. Raises ReleaseInputError for a reason of several lines or more than
    ``MAX_REASON`` characters (nothing is changed). The caller
    cancels its open deliveries in the same transaction (``delivery.cancel_release``) and
    regenerates the site after the commit (``actions.withdraw``). Raises Conflict if it was
    withdrawn already."""
    release = get_release(session, release_id)
    if release.state == ReleaseState.WITHDRAWN:
        raise Conflict(f"release {release_id} was already withdrawn")
    who = _single_line_or_error(by, "withdrawn by")
    why = _reason(reason)
    now = now or utcnow()
    release.state = ReleaseState.WITHDRAWN
    release.scheduled_at = None
    release.withdrawn_at = now
    release.withdrawn_by = who
    release.withdrawn_reason = why
    release.updated_at = now
    return release


def _reason(value: str) -> str:
    """A withdrawal's reason as stored: one line, at most ``MAX_REASON`` characters."""
    return _line_of_the_page(value, "reason", MAX_REASON)


def _line_of_the_page(value: str, field: str, limit: int) -> str:
    """``value`` as one line a page shows (``single_line``: no control character, no line
    break, no bidi override) of at most ``limit`` characters; ReleaseInputError naming
    ``field`` otherwise."""
    try:
        cleaned = single_line(value)
    except ValueError as exc:
        raise ReleaseInputError(f"{field}: {exc}", field=field) from exc
    if len(cleaned) > limit:
        raise ReleaseInputError(
            f"{field}: {len(cleaned)} characters, at most {limit} (a line on the page)",
            field=field,
        )
    return cleaned


def _single_line_or_error(value: str, field: str) -> str:
    try:
        cleaned = single_line(value)
    except ValueError as exc:
        raise ReleaseInputError(f"{field}: {exc}") from exc
    if not cleaned:
        raise ReleaseInputError(f"{field}: say who (a name)")
    return cleaned[:200]


def correct_release(
    session: Session,
    release_id: int,
    draft: ReleaseDraft,
    now: datetime | None = None,
    note: str = "",
    by: str = "",
) -> Release:
    """Replace a published release's text (title, lead, body, images, attachments,
    contacts, dateline) with ``draft``'s and mark it corrected now, recording the
    correction — when, ``by`` whom, and ``note``, what changed (one line, at most
    ``MAX_NOTE`` characters; may be empty: the CLI and the API keep working without one).
    Its id, slug, language, date and topics stay: feed readers keep the same item (a new
    updated date), and the audience the email went to is not redrawn. Raises Conflict
    unless it is published, ReleaseInputError if the draft's language or slug differ or the
    note is not one line (nothing is changed)."""
    release = get_release(session, release_id)
    if release.state != ReleaseState.PUBLISHED:
        raise Conflict(
            f"release {release_id} is {release.state}: only a published release is "
            "corrected (edit a draft by creating it again)"
        )
    meta = draft.meta
    if meta.lang != release.language:
        raise ReleaseInputError(
            f"{draft.source}: field 'lang': a correction keeps the language "
            f"({release.language}); publish a translation instead",
            field="lang",
        )
    if meta.slug is not None and meta.slug != release.slug:
        raise ReleaseInputError(
            f"{draft.source}: field 'slug': a correction keeps the address ({release.slug})",
            field="slug",
        )
    what = correction_note(note)
    now = now or utcnow()
    _fill_text(release, draft, now)
    release.corrected_at = now
    release.corrections.append(Correction(corrected_at=now, corrected_by=by[:200], note=what))
    return release


def correction_note(value: str) -> str:
    """A correction's note as stored: one line (``single_line``: no control character, no
    line break, no bidi override), at most ``MAX_NOTE`` characters; "" for none.
    ReleaseInputError (field ``note``) saying what is wrong otherwise."""
    return _line_of_the_page(value, "note", MAX_NOTE)
