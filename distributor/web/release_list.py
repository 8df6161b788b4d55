"""The workspace's list of releases (``/admin/releases``): every release, newest first,
searched by words of the title and filtered by state, language and topic, with how many are
in each state; "Duplicate", which starts a new draft from any release, and "Add French
version", which starts its version in another language.

The filters are a plain GET form (a search is a link one can keep or send); "Duplicate"
and "Delete" are POST forms with the CSRF value, as every action is.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError
from distributor.core.models import ReleaseState
from distributor.core.roles import Can
from distributor.releases.topics import list_topics
from distributor.reporting.releases import count_by_state, find_releases
from distributor.web.admin import (
    DONE,
    MAX_ID,
    PREFIX,
    Admin,
    AdminRoute,
    Csrf,
    Dash,
    Dashboard,
    allowed,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)
Writer = Annotated[Admin, Depends(allowed(Can.DRAFT))]
ReleaseId = Annotated[int, Path(ge=1, le=MAX_ID)]
PAGE_SIZE = 50
SEARCH_MAX = 200  # characters: more is not a title's words


@router.get("/releases", response_class=HTMLResponse)
def release_list(
    request: Request,
    admin: Writer,
    dash: Dash,
    q: Annotated[str, Query(max_length=SEARCH_MAX)] = "",
    state: Annotated[str, Query(max_length=20)] = "",
    lang: Annotated[str, Query(max_length=20)] = "",
    topic: Annotated[str, Query(max_length=200)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> HTMLResponse:
    """The releases matching the form's search and filters, ``PAGE_SIZE`` a page, newest
    first, with the count in each state for the same search. A filter with a value the
    form does not offer (an old link) is ignored and shown as "any"."""
    settings = dash.settings
    with session_scope(settings) as session:
        shown_in = dash.translator(request).lang  # topics named in the page's language
        topics = [(t.slug, t.name(shown_in)) for t in list_topics(session)]
        chosen_state = ReleaseState(state) if state in set(ReleaseState) else None
        chosen_lang = lang if lang in settings.languages else ""
        chosen_topic = topic if topic in {slug for slug, _ in topics} else ""
        counts = count_by_state(session, chosen_lang, chosen_topic, q)
        found = find_releases(
            session, chosen_state, chosen_lang, PAGE_SIZE, (page - 1) * PAGE_SIZE,
            topic=chosen_topic, search=q,
        )  # fmt: skip
    filters = {"q": q.strip(), "state": chosen_state or "", "lang": chosen_lang,
               "topic": chosen_topic}  # fmt: skip
    pages = max(1, -(-found.total // PAGE_SIZE))
    return dash.render(
        request,
        "releases.html",
        admin=admin,
        found=found,
        counts=counts,
        all_count=sum(counts.values()),
        filters=filters,
        topics=topics,
        languages=settings.languages,
        states=list(ReleaseState),
        page=min(page, pages),
        pages=pages,
        done=DONE.get(request.query_params.get("done", ""), ""),  # fixed texts only
    )


@router.post("/releases/{release_id}/duplicate", response_class=HTMLResponse)
def duplicate(
    request: Request, release_id: ReleaseId, admin: Writer, dash: Dash, csrf: Csrf = ""
) -> Response:
    """A new draft copied from the release (``actions.duplicate``); the copy's form, to
    change what differs. The release's page saying why when it cannot be copied."""
    return _new_draft(request, release_id, admin, dash, csrf, None)


@router.post("/releases/{release_id}/translate", response_class=HTMLResponse)
def translate(
    request: Request,
    release_id: ReleaseId,
    admin: Writer,
    dash: Dash,
    language: Annotated[str, Form(max_length=20)] = "",
    csrf: Csrf = "",
) -> Response:
    """ "Add French version": the release's version in ``language``, a draft prefilled with
    its text to translate, linked to it (``actions.duplicate`` with a language); that
    draft's form. The release's page saying why when it cannot be made (a version in that
    language exists, the release is withdrawn, the language is not the site's)."""
    return _new_draft(request, release_id, admin, dash, csrf, language)


def _new_draft(
    request: Request, release_id: int, admin: Admin, dash: Dashboard, csrf: str,
    language: str | None,
) -> Response:  # fmt: skip
    dash.check_csrf(request, csrf)
    try:
        made = actions.duplicate(dash.settings, release_id, admin.actor, language)
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    done = "duplicated" if language is None else "translated"
    return RedirectResponse(f"{PREFIX}/releases/{made.id}/edit?done={done}", status_code=303)
