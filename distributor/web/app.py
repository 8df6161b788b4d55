"""Routes of the public site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import select

from ..config import Settings
from ..db import session_scope
from ..errors import InputError, NotFound
from ..models import Release, ReleaseState, Subscriber
from ..sanitize import absolute_urls
from ..subscribers import unsubscribe
from ..tokens import Purpose, read_token
from ..urls import FeedFormat, feed_relpath
from . import api, subscribe
from .conditional import file_response
from .pages import Pages
from .queueing import LazyQueue

FEED_TYPES = {
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
}


def create_app(settings: Settings) -> FastAPI:
    """The web app for ``settings``: newsroom, release pages, feeds, unsubscribe, and the
    admin API under ``/api`` (OpenAPI schema at ``/api/openapi.json``)."""
    queue = LazyQueue(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            queue.close()

    app = FastAPI(title="distributor", docs_url="/api/docs", redoc_url=None,
                  openapi_url="/api/openapi.json", lifespan=lifespan)  # fmt: skip
    app.include_router(api.router(settings, queue), prefix=api.PREFIX)
    pages = Pages(settings)
    app.include_router(subscribe.router(settings, pages, queue))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> HTMLResponse:
        lang = pages.language(request)
        with session_scope(settings) as session:
            releases = list(
                session.scalars(
                    select(Release)
                    .where(Release.state == ReleaseState.PUBLISHED)
                    .order_by(Release.date.desc(), Release.id.desc())
                    .limit(100)
                )
            )
        return pages.render("index.html", lang, releases=releases)

    @app.get("/releases/{slug}", response_class=HTMLResponse, include_in_schema=False)
    def release_page(slug: str) -> HTMLResponse:
        with session_scope(settings) as session:
            release = session.scalar(
                select(Release).where(Release.slug == slug, Release.state == ReleaseState.PUBLISHED)
            )
            if release is None:
                raise HTTPException(404, "no such release")
            body = absolute_urls(release.body_html, settings.site_url)
            return pages.render("release.html", release.language, release=release, body=body)

    @app.get("/feeds/{lang}/{name:path}", include_in_schema=False)
    def feed(request: Request, lang: str, name: str) -> Response:
        suffix = Path(name).suffix
        relpath = f"feeds/{lang}/{name}"
        if lang not in settings.languages or suffix not in FEED_TYPES or ".." in name:
            raise HTTPException(404, "no such feed")
        stem = name.removesuffix(suffix)
        topic = stem.removeprefix("topics/") if stem.startswith("topics/") else None
        fmt: FeedFormat = "rss" if suffix == ".rss" else "atom"
        if relpath != feed_relpath(lang, fmt, topic):
            raise HTTPException(404, "no such feed")
        path = settings.public_dir / relpath
        if not path.is_file():
            raise HTTPException(404, "no such feed")
        return file_response(request, path, FEED_TYPES[suffix])

    def _subscriber(token: str) -> int:
        try:
            return read_token(settings, Purpose.UNSUBSCRIBE, token)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse, include_in_schema=False)
    def unsubscribe_page(token: str) -> HTMLResponse:
        subscriber_id = _subscriber(token)
        with session_scope(settings) as session:
            sub = session.get(Subscriber, subscriber_id)
            lang = sub.language if sub else settings.languages[0]
            email = sub.email if sub else ""
        return pages.render("unsubscribe.html", lang, token=token, email=email, done=False)

    @app.post("/unsubscribe/{token}", include_in_schema=False)
    def unsubscribe_post(
        token: str, list_unsubscribe: Annotated[str, Form(alias="List-Unsubscribe")] = ""
    ) -> Response:
        # RFC 8058: no cookie, no CSRF token, no redirect; 200 every time.
        subscriber_id = _subscriber(token)
        with session_scope(settings) as session:
            try:
                sub = unsubscribe(session, subscriber_id)
                lang = sub.language
            except NotFound:
                lang = settings.languages[0]  # erased already: nothing left to do
        if list_unsubscribe == "One-Click":
            return PlainTextResponse("unsubscribed\n")
        return pages.render("unsubscribe.html", lang, token=token, email="", done=True)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    api.add_error_handlers(app)  # last: it keeps the handlers added before it off /api
    return app
