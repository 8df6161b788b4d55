"""The page of a release not public yet, behind the signed link a test email carries as its
"read online" (``core.urls.preview_url``): the newsroom page as it will read, marked as a
preview, with no canonical address, alternate or feed; a personal page for the headers
(``web/headers.py``: never cached, no referrer, ``noindex``). Once the release is
published the link leads to its public page; once withdrawn or deleted, it says so."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, ReleaseState
from distributor.core.tokens import ExpiredToken, InvalidToken, Purpose, read_token
from distributor.core.urls import PREVIEW_MAX_AGE_DAYS, release_url
from distributor.web.deps import part, settings_of
from distributor.web.pages import Pages

router = APIRouter(include_in_schema=False)


def link_not_valid(pages: Pages, lang: str) -> HTMLResponse:
    """The page of a personal link that is not ours (cut, altered, made for another row)."""
    return pages.render(
        "message.html",
        lang,
        400,
        title="This link is not valid",
        text="The link may have been cut or altered. Please use the whole link from the email.",
    )


def no_longer_a_preview(
    pages: Pages, settings: Settings, release: Release | None, lang: str
) -> Response | None:
    """What a link to a release not public yet answers once it no longer is one: 404 for a
    deleted release, 303 to the public page once published, 410 once withdrawn; None while
    it is still to be published (the caller shows its preview)."""
    if release is None:
        return pages.render(
            "message.html",
            lang,
            404,
            title="This release no longer exists",
            text="It was deleted before it was published.",
        )
    if release.state == ReleaseState.PUBLISHED:
        return RedirectResponse(release_url(settings, release.slug), 303)
    if release.state == ReleaseState.WITHDRAWN:
        return pages.render(
            "message.html",
            release.language,
            410,
            title="Release withdrawn",
            text="The press office withdrew this release.",
        )
    return None


@router.get("/preview/{token}", response_class=HTMLResponse)
def release_preview(request: Request, token: str) -> Response:
    """The release's page marked as a preview; 303 to its public page once published;
    410 once withdrawn, 404 once deleted; 400 for a link not ours or past its
    ``PREVIEW_MAX_AGE_DAYS``."""
    settings, pages = settings_of(request), part(request, Pages)
    lang = pages.language(request)
    try:
        release_id = read_token(settings, Purpose.PREVIEW, token, PREVIEW_MAX_AGE_DAYS * 86400)
    except ExpiredToken:
        return pages.render(
            "message.html",
            lang,
            400,
            title="This link has expired",
            text="Preview links open for a limited time. Send yourself a new test email.",
        )
    except InvalidToken:
        return link_not_valid(pages, lang)
    with session_scope(settings) as session:
        release = session.get(Release, release_id)
        if (answer := no_longer_a_preview(pages, settings, release, lang)) is not None:
            return answer
        assert release is not None  # a deleted one was answered for
        return pages.release_preview(release)
