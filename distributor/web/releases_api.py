"""The admin API's releases (under ``/api``): the whole life of a release — create (JSON or
Markdown), read, update or delete a draft, preview, test-send, publish (now or at a time),
unschedule, correct, withdraw — and its delivery status, report and statistics.

Every call needs a bearer token with the ``releases`` scope; a token made for a user can
also do no more than the user's role: a writer's reads, writes, previews and tests drafts,
a publisher's also publishes, schedules, corrects and withdraws (``core/roles.py``). What
a call changes is recorded in the audit trail as ``token:NAME``, or ``user:EMAIL
(token:NAME)`` for a user's token. Creating and publishing honour an
``Idempotency-Key`` header (see ``idempotency``): the same key twice makes one release and
one distribution, and answers the same.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy.orm import Session

from distributor import actions
from distributor.core import idempotency
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import MAX_NOTE, Release, ReleaseState
from distributor.core.roles import Caller, Can
from distributor.mail.preview import MAX_TEST_ADDRESSES, render_preview
from distributor.releases.lifecycle import MAX_REASON, get_release
from distributor.releases.source import (
    MAX_SOURCE_BYTES,
    FrontMatter,
    ReleaseDraft,
    draft_from_fields,
    parse_release,
)
from distributor.reporting.releases import (
    ReleaseOut,
    ReleasePage,
    find_releases,
    release_out,
)
from distributor.reporting.report import fold_note
from distributor.reporting.report_csv import report_csv
from distributor.reporting.statistics import ReleaseStatistics, release_statistics
from distributor.web.apibase import (
    MAX_ID,
    PRINTABLE,
    ErrorOut,
    IdempotencyKey,
    Refused,
    conflict,
    error_responses,
    not_found,
    refusal,
    replayed,
    token_dependency,
    token_of,
)
from distributor.web.bodies import JSON, MARKDOWN, takes
from distributor.web.deps import AppQueue, AppSettings
from distributor.web.rights import requiring

SCOPE = "releases"
# JSON escapes and the other fields add to the Markdown's own limit.
MAX_BODY_BYTES = 2 * MAX_SOURCE_BYTES
ReleaseId = Annotated[int, Path(ge=1, le=MAX_ID)]


class ReleaseIn(FrontMatter):
    """A release as JSON: the fields of a release file's front matter, and its Markdown
    ``body`` (the first paragraph is the lead unless ``lead`` is given)."""

    model_config = ConfigDict(extra="forbid")
    body: Annotated[str, Field(max_length=MAX_SOURCE_BYTES)] = ""


class WithdrawnOut(ReleaseOut):
    """A release just withdrawn, and how many withdrawal notices that planned."""

    notices_planned: int = Field(
        description="Withdrawal notices planned: one for each who received it and is still "
        "subscribed when ``notify`` was true, else 0"
    )


class PreviewOut(BaseModel):
    """The email as a subscriber reading ``language`` receives it (for a stand-in
    recipient: its links name nobody)."""

    release_id: int = Field(description="The version rendered (a translation when asked)")
    language: str
    subject: str
    headers: dict[str, str]
    html: str
    text: str


class TestIn(BaseModel):
    """Where to send a test: a few addresses, nobody else."""

    model_config = ConfigDict(extra="forbid")
    to: Annotated[
        list[Annotated[str, Field(max_length=320, pattern=PRINTABLE)]],
        Field(min_length=1, max_length=MAX_TEST_ADDRESSES),
    ]


class TranslationIn(BaseModel):
    """The language of a release's new version."""

    model_config = ConfigDict(extra="forbid")
    language: Annotated[str, Field(min_length=2, max_length=8, pattern=PRINTABLE)]


class TestResult(BaseModel):
    """What the mail server answered for one test address (code 0: no answer)."""

    __test__ = False
    address: str
    sent: bool
    code: int
    message: str


class PublishIn(BaseModel):
    """When to publish: now (``at`` absent, null or ``"now"``), or at ``at`` (never before
    the release's embargo; a time in the past is refused with 422, field ``at``)."""

    model_config = ConfigDict(extra="forbid")
    at: AwareDatetime | None = Field(
        default=None, description='A time with its zone; null or "now" to publish at once'
    )
    with_versions: bool = Field(
        default=False,
        description="Also publish or schedule, at the same time and in one transaction, "
        "its other language versions not sent yet (drafts and scheduled ones): each must "
        "pass the same checks, and one that may not (not approved, a later embargo) refuses "
        "the whole, naming it",
    )

    advance: AwareDatetime | Literal["now"] | None = Field(
        default=None,
        description="When accredited journalists get an embargoed advance copy (a time with "
        'its zone, or "now"): the release must go public later (`at` or its embargo). They '
        "get no second copy when it does",
    )

    @field_validator("at", mode="before")
    @classmethod
    def _now(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() == "now" else value

    @field_validator("advance", mode="before")
    @classmethod
    def _advance_now(cls, value: object) -> object:
        return "now" if isinstance(value, str) and value.strip().lower() == "now" else value


class WithdrawIn(BaseModel):
    """Who withdraws it, recorded with the token's name; why, shown on its 410 page."""

    model_config = ConfigDict(extra="forbid")
    by: Annotated[str, Field(max_length=150, pattern=PRINTABLE)] = ""
    reason: Annotated[str, Field(max_length=MAX_REASON, pattern=PRINTABLE)] = ""
    notify: bool = Field(
        default=False,
        description="Also email a short withdrawal notice, with the reason, to those who "
        "received it and are still subscribed",
    )


# ---- the release body: JSON or Markdown ------------------------------------------------


async def raw_body(request: Request) -> bytes:
    """The request's body: of at most ``MAX_BODY_BYTES``, JSON or Markdown, from a known
    token (the routes that take it are declared with ``release_body``: ``BodyGuard``)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(raw_body)]
release_body = takes(MAX_BODY_BYTES, JSON, MARKDOWN)


def read_draft(settings: Settings, content_type: str, raw: bytes) -> ReleaseDraft:
    """The release a request body holds: ``application/json`` (``ReleaseIn``) or
    ``text/markdown`` (a release file: YAML front matter, then the body). Refused with
    400 (unreadable), 415 (another type) or 422 (a field, named)."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == MARKDOWN:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Refused(400, f"the body is not UTF-8 (byte {exc.start})") from exc
        return parse_release(text, "body", settings)
    if media_type != JSON:
        raise Refused(415, f"send the release as {JSON} or {MARKDOWN}")
    try:
        data = ReleaseIn.model_validate_json(raw)
    except ValidationError as exc:
        raise refusal([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    meta = FrontMatter.model_validate(data.model_dump(exclude={"body"}))
    return draft_from_fields(meta, data.body, "body", settings)


_RELEASE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": None},  # filled in by _release_body_schema()
            MARKDOWN: {
                "schema": {"type": "string", "maxLength": MAX_SOURCE_BYTES},
                "example": "---\ntitle: Agency signs agreement\nlang: en\ntopics: [climate]\n"
                "date: 2026-11-20T09:00:00+01:00\n---\nThe lead paragraph.\n\nThe body.\n",
            },
        },
    }
}


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """``schema`` with every local ``$ref`` replaced by its definition (the models of a
    release body are not recursive), so it stands alone in an operation."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline(v, defs) for v in schema]
    return schema


def _release_body() -> dict[str, Any]:
    schema = ReleaseIn.model_json_schema()
    extra = {"requestBody": {**_RELEASE_BODY["requestBody"]}}
    content = dict(extra["requestBody"]["content"])
    content["application/json"] = {"schema": _inline(schema, schema.get("$defs", {}))}
    extra["requestBody"]["content"] = content
    return extra


# ---- the routes --------------------------------------------------------------------------


token_caller = token_dependency(SCOPE)
writer = requiring(token_caller, Can.DRAFT)  # read, write, preview and test drafts
publisher = requiring(token_caller, Can.PUBLISH)  # publish, schedule, correct, withdraw
Writer = Annotated[Caller, Depends(writer)]
Publisher = Annotated[Caller, Depends(publisher)]
READS = [Depends(writer)]
router = APIRouter(
    tags=["releases"], responses=error_responses(SCOPE), dependencies=[Depends(token_caller)]
)
BODY_DOC = _release_body()
FOUND = not_found("release")


def out(settings: Settings, release_id: int) -> dict[str, Any]:
    """The release ``release_id`` as the API answers it, as JSON data."""
    with session_scope(settings) as session:
        release = get_release(session, release_id)
        return release_out(session, settings, release).model_dump(mode="json")


def current(settings: Settings, release_id: int) -> ReleaseOut:
    """The release ``release_id`` as the API answers it, read now (after an action)."""
    with session_scope(settings) as session:
        return release_out(session, settings, get_release(session, release_id))


def once(
    settings: Settings,
    token: str,
    key: str | None,
    request: Request,
    body: bytes,
    act: Callable[[], tuple[int, dict[str, Any]]],
) -> JSONResponse:
    """Run ``act`` (which commits on its own) at most once per idempotency key."""
    if key is None:
        status, answer = act()
        return JSONResponse(answer, status)
    request_id = idempotency.fingerprint(request.method, request.url.path, body)
    with session_scope(settings) as session:
        replay = idempotency.claim(session, token, key, request_id)
    if replay is not None:
        return replayed(replay)
    try:
        status, answer = act()
    except BaseException:
        with session_scope(settings) as session:
            idempotency.release(session, token, key)
        raise
    with session_scope(settings) as session:
        idempotency.complete(session, token, key, status, answer)
    return JSONResponse(answer, status)


@router.get("/releases", summary="List releases", dependencies=READS)
def list_releases(
    settings: AppSettings,
    state: ReleaseState | None = None,
    language: Annotated[str | None, Query(max_length=8, pattern=PRINTABLE)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    topic: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    search: Annotated[
        str | None,
        Query(max_length=200, description="Words that must all be in the title (any case)"),
    ] = None,
) -> ReleasePage:
    """Releases in any state (drafts and scheduled ones included), newest first."""
    with session_scope(settings) as session:
        return find_releases(session, state, language, limit, offset, topic, search)


@router.post(
    "/releases",
    status_code=201,
    summary="Create a draft release",
    openapi_extra=BODY_DOC,
    responses={
        201: {"model": ReleaseOut, "description": "The draft, as stored"},
        **conflict("The slug is taken, or the idempotency key is in use"),
        413: {"model": ErrorOut, "description": "The body is too large"},
        415: {"model": ErrorOut, "description": "Neither JSON nor Markdown"},
    },
)
@release_body
def create(
    request: Request,
    raw: RawBody,
    who: Writer,
    settings: AppSettings,
    key: IdempotencyKey = None,
) -> JSONResponse:
    """Create a draft from JSON (the front matter's fields and ``body``) or from a
    release file (``Content-Type: text/markdown``). Nothing is sent or shown until it
    is published. With an ``Idempotency-Key``, a repeat creates nothing and answers
    as the first did."""
    draft = read_draft(settings, request.headers.get("content-type", ""), raw)
    request_id = idempotency.fingerprint(request.method, request.url.path, raw)
    claim = None if key is None else idempotency.KeyClaim(token_of(who), key, request_id)

    def answer(session: Session, release: Release) -> dict[str, Any]:
        return release_out(session, settings, release).model_dump(mode="json")

    created = actions.create_release(settings, draft, who.actor, answer, claim)
    if isinstance(created, idempotency.Replay):
        return replayed(created)
    return JSONResponse(created, 201)


@router.get(
    "/releases/{release_id}",
    summary="One release and its counts",
    responses=FOUND,
    dependencies=READS,
)
def read(release_id: ReleaseId, settings: AppSettings) -> ReleaseOut:
    """The release in any state, with planned / sent / deferred / failed / bounced /
    unsubscribed-since counts and the time to send."""
    return current(settings, release_id)


@router.put(
    "/releases/{release_id}",
    summary="Replace a draft",
    openapi_extra=BODY_DOC,
    responses={
        **FOUND,
        **conflict("It is not a draft (unschedule it first, or correct a published one)"),
    },
)
@release_body
def update(
    request: Request, release_id: ReleaseId, raw: RawBody, who: Writer, settings: AppSettings
) -> ReleaseOut:
    """Replace a draft's every field with the body's (JSON or Markdown, as when
    creating). Only a draft changes this way."""
    draft = read_draft(settings, request.headers.get("content-type", ""), raw)
    actions.update_draft(settings, release_id, draft, who.actor)
    return current(settings, release_id)


@router.delete(
    "/releases/{release_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a draft",
    responses={
        **FOUND,
        **conflict("It is not a draft (unschedule it first; withdraw a published one)"),
    },
)
def delete(release_id: ReleaseId, who: Writer, settings: AppSettings) -> Response:
    """Delete a draft: its slug is free again, its id is never reused, and releases that
    translated it stay as their own originals. Only a draft is deleted: a published
    release is withdrawn instead (what was sent stays on record). Stored images stay."""
    actions.delete_draft(settings, release_id, who.actor)
    return Response(status_code=204)


@router.post(
    "/releases/{release_id}/duplicate",
    status_code=201,
    summary="Start a new draft from a release",
    responses=FOUND,
)
def duplicate(release_id: ReleaseId, who: Writer, settings: AppSettings) -> ReleaseOut:
    """A new draft with the release's text, language, topics, contacts, images and
    documents (from a release in any state), dated now, without embargo, under the first
    free slug of ``SLUG-copy``, ``SLUG-copy-2``, …; the new draft."""
    copy = actions.duplicate(settings, release_id, who.actor)
    return current(settings, copy.id)


@router.post(
    "/releases/{release_id}/translations",
    status_code=201,
    summary="Start the release's version in another language",
    responses={
        **FOUND,
        **conflict("It has a version in that language already, or it is withdrawn"),
    },
)
def translate(
    release_id: ReleaseId, body: TranslationIn, who: Writer, settings: AppSettings
) -> ReleaseOut:
    """A new draft in ``language`` (one of the site's languages) with the release's text to
    translate, its topics, contacts, images and documents, linked to the release's original
    (``translation_of``) with the original's date and embargo, under the first free slug of
    ``SLUG-LANG``, ``SLUG-LANG-2``, …; the new draft."""
    made = actions.duplicate(settings, release_id, who.actor, body.language)
    return current(settings, made.id)


@router.get(
    "/releases/{release_id}/preview",
    summary="Preview the email",
    responses=FOUND,
    dependencies=READS,
)
def preview(
    release_id: ReleaseId,
    settings: AppSettings,
    lang: Annotated[
        str | None,
        Query(
            max_length=8,
            pattern=PRINTABLE,
            description="A language of its translations (default: its own)",
        ),
    ] = None,
) -> PreviewOut:
    """The email exactly as subscribers reading ``lang`` will get it: subject,
    headers, HTML and text. Nothing is sent or recorded."""
    p = render_preview(settings, release_id, lang)
    return PreviewOut(
        release_id=p.release_id,
        language=p.language,
        subject=p.subject,
        headers=p.headers,
        html=p.html,
        text=p.text,
    )


@router.post("/releases/{release_id}/test", summary="Send a test email", responses=FOUND)
def test_send(
    release_id: ReleaseId, body: TestIn, who: Writer, settings: AppSettings
) -> list[TestResult]:
    """Send the email to these addresses only, marked as a test ("[TEST]" subject,
    ``X-Distributor-Test``). The ledger, the feeds and the release's state are not
    touched."""
    outcomes = actions.send_test(settings, release_id, body.to, who.actor)
    return [
        TestResult(address=o.address, sent=o.sent, code=o.code, message=o.message) for o in outcomes
    ]


@router.post(
    "/releases/{release_id}/publish",
    summary="Publish now or at a time",
    responses={
        200: {"model": ReleaseOut, "description": "Published or scheduled"},
        **FOUND,
        **conflict("Withdrawn, or already published and `at` given"),
    },
)
def publish(
    request: Request,
    release_id: ReleaseId,
    who: Publisher,
    settings: AppSettings,
    queue: AppQueue,
    key: IdempotencyKey = None,
    body: PublishIn | None = None,
) -> JSONResponse:
    """Publish the release now (its embargo permitting), or schedule it for ``at``:
    a scheduled release goes out within 30 seconds of its time. Publishing a
    scheduled release again reschedules it. Publishing twice sends once; with an
    ``Idempotency-Key`` a repeat also answers as the first did."""
    at = body.at if body is not None else None
    asked = body.advance if body is not None else None

    def act() -> tuple[int, dict[str, Any]]:
        early = datetime.now(UTC) if asked == "now" else asked
        actions.publish(
            settings, queue.get(), release_id, at, by=who.actor, with_versions=along,
            advance=early,
        )  # fmt: skip
        return 200, out(settings, release_id)

    along = body.with_versions if body is not None else False
    # Without the fields added since, the same bytes as before they existed: keys recorded
    # then still match.
    left_out = {"with_versions"} if not along else set()
    if asked is None:
        left_out.add("advance")
    canonical = (body or PublishIn()).model_dump_json(exclude=left_out or None).encode()
    return once(settings, token_of(who), key, request, canonical, act)


@router.post(
    "/releases/{release_id}/approval-request",
    summary="Ask for approval (two-person rule)",
    responses={**FOUND, **conflict("It is not a draft")},
)
def ask_approval(release_id: ReleaseId, who: Writer, settings: AppSettings) -> ReleaseOut:
    """Record that its approval is asked for (``DISTRIBUTOR_REQUIRE_APPROVAL``: a release
    is published or scheduled only once someone other than its last editor approved it)."""
    actions.request_approval(settings, release_id, who.actor)
    return current(settings, release_id)


@router.post(
    "/releases/{release_id}/approve",
    summary="Approve (two-person rule)",
    responses={**FOUND, **conflict("You are its last editor, or it is not a draft or scheduled")},
)
def approve(release_id: ReleaseId, who: Publisher, settings: AppSettings) -> ReleaseOut:
    """Approve the release as it is now; refused to its last editor. A later change of
    its text withdraws the approval."""
    actions.approve(settings, release_id, who.actor)
    return current(settings, release_id)


@router.post(
    "/releases/{release_id}/unschedule",
    summary="Cancel a scheduled publication",
    responses={**FOUND, **conflict("It is not scheduled")},
)
def cancel_schedule(release_id: ReleaseId, who: Publisher, settings: AppSettings) -> ReleaseOut:
    """Back to draft: nothing was or will be sent. Publish again to reschedule."""
    actions.unschedule(settings, release_id, who.actor)
    return current(settings, release_id)


@router.post(
    "/releases/{release_id}/correct",
    summary="Correct a published release",
    openapi_extra=BODY_DOC,
    responses={**FOUND, **conflict("It is not published")},
)
@release_body
def correct(
    request: Request,
    release_id: ReleaseId,
    raw: RawBody,
    who: Publisher,
    settings: AppSettings,
    queue: AppQueue,
    notify: Annotated[
        bool,
        Query(description="Also send a short correction email to those who received it"),
    ] = False,
    note: Annotated[
        str,
        Query(
            max_length=MAX_NOTE,
            description="What changed, in one line (e.g. `time of the launch was 17:42, now "
            '17:40`): shown after "Corrected on …" on the page, in the feed item and in the '
            "correction email. Optional here (the workspace's form requires it)",
        ),
    ] = "",
) -> ReleaseOut:
    """Replace the text of a published release (same id, address and feed item, a new
    updated date and a "Corrected on …" line, with ``note`` saying what changed). No email
    unless ``notify``."""
    draft = read_draft(settings, request.headers.get("content-type", ""), raw)
    actions.correct(
        settings, queue.get(), release_id, draft, by=who.actor, notify=notify, note=note
    )
    return current(settings, release_id)


@router.post(
    "/releases/{release_id}/withdraw",
    summary="Withdraw a release",
    responses={**FOUND, **conflict("It was withdrawn already")},
)
def withdraw(
    release_id: ReleaseId,
    caller: Publisher,
    settings: AppSettings,
    queue: AppQueue,
    body: WithdrawIn | None = None,
) -> WithdrawnOut:
    """Take it off the pages and feeds (its page answers 410 Gone, with ``reason`` when
    one is given) and cancel every email not sent yet. Recorded as withdrawn by ``by``
    and the token. No email unless ``notify``: then a withdrawal notice goes to those who
    received it (``notices_planned`` says how many)."""
    body = body or WithdrawIn()
    who = caller.actor
    if body.by.strip():
        who = f"{body.by.strip()} ({who})"
    done = actions.withdraw(settings, queue.get(), release_id, who, body.reason, body.notify)
    release = current(settings, release_id)
    return WithdrawnOut(**release.model_dump(), notices_planned=done.notices)


@router.get(
    "/releases/{release_id}/deliveries.csv",
    summary="Every delivery, as CSV",
    response_class=Response,
    responses={
        200: {
            "description": "One row per delivery, by address",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        **FOUND,
    },
    dependencies=READS,
)
def report(release_id: ReleaseId, settings: AppSettings) -> Response:
    """The columns of `distributor releases report ID --csv`."""
    buffer = io.StringIO()
    report_csv(settings, release_id)(buffer)
    headers = {"Content-Disposition": f'attachment; filename="release-{release_id}-deliveries.csv"'}
    note = fold_note(settings, release_id)
    if note:  # rows folded after the retention period: the CSV lists only those kept
        headers["X-Distributor-Folded"] = note
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


@router.get(
    "/releases/{release_id}/stats",
    summary="Its statistics: deliveries, page views, feed fetches, downloads",
    responses=FOUND,
    dependencies=READS,
)
def stats(release_id: ReleaseId, settings: AppSettings) -> ReleaseStatistics:
    """Counts only, none about a person: delivered / deferred / bounced from the ledger,
    unsubscribed in the 7 days after publication, views of its page and downloads of its
    full-size images and documents (counted per hour, moved to the database every minute),
    fetches of the feeds in its language in those 7 days, and the same per day."""
    with session_scope(settings) as session:
        return release_statistics(session, release_id, settings.timezone)
