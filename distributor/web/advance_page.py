"""The page an embargoed advance copy links to (``core.urls.advance_url``): the release as it
will read, marked with its embargo, for the accredited subscriber the link was made for and
nobody else: it opens only while they are accredited and subscribed and were sent that copy.
A personal page for the headers (``web/headers.py``: never cached, no referrer, ``noindex``)
with no canonical address, alternate or feed. Once the embargo lifts the link leads to the
public page; once the release is withdrawn, it says so."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from distributor.audience.accreditation import accreditation_of, receives_advance_copies
from distributor.audience.subscribers import subscriber_for
from distributor.core.db import session_scope
from distributor.core.formats import embargo_time
from distributor.core.models import (
    Delivery,
    Release,
)
from distributor.core.tokens import InvalidToken, Purpose, read_link
from distributor.web.apibase import MAX_ID
from distributor.web.deps import part, settings_of
from distributor.web.pages import Pages
from distributor.web.preview_page import link_not_valid, no_longer_a_preview

router = APIRouter(include_in_schema=False)


@router.get("/advance/{token}/{release_id}", response_class=HTMLResponse)
def advance_copy(request: Request, token: str, release_id: str) -> Response:
    """The release marked "embargoed until …" for the link's subscriber; 303 to its public
    page once published; 410 once withdrawn, 404 once deleted; 403 for a subscriber who is
    no longer accredited or subscribed, or was never sent this copy; 400 for a link not
    ours."""
    settings, pages = settings_of(request), part(request, Pages)
    lang = pages.language(request)
    # A page, never a validation error in JSON, for a link cut or altered by hand.
    if not release_id.isdigit() or not 1 <= int(release_id) <= MAX_ID:
        return link_not_valid(pages, lang)
    try:
        link = read_link(settings, Purpose.ADVANCE, token)
    except InvalidToken:
        return link_not_valid(pages, lang)
    with session_scope(settings) as session:
        sub = subscriber_for(session, link)
        if sub is None:
            return link_not_valid(pages, lang)
        release = session.get(Release, int(release_id))
        if (answer := no_longer_a_preview(pages, settings, release, sub.language)) is not None:
            return answer
        assert release is not None  # a deleted one was answered for
        sent = session.scalar(
            select(Delivery.id).where(
                Delivery.release_id == release.id,
                Delivery.subscriber_id == sub.id,
                Delivery.advance.is_(True),
            )
        )
        accredited = accreditation_of(session, sub.id)
        still = receives_advance_copies(sub.status, accredited.status if accredited else None)
        if sent is None or not still or release.scheduled_at is None:
            return pages.render(
                "message.html", sub.language, 403,
                title="This advance copy is not available to you",
                text="Advance copies are for accredited journalists while they are "
                "subscribed. The release will be on our newsroom once its embargo lifts.",
            )  # fmt: skip
        when = embargo_time(release.scheduled_at, release.language, settings.zone)
        return pages.release_preview(release, embargo=when)
