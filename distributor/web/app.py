"""Routes of the public site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select

from ..config import Settings
from ..db import session_scope
from ..errors import InputError, NotFound
from ..models import Release, ReleaseState, Subscriber
from ..sanitize import absolute_urls
from ..subscribers import unsubscribe
from ..tokens import Purpose, read_token
from ..urls import FeedFormat, feed_relpath, feed_url, release_path, unsubscribe_url
from .conditional import file_response

FEED_TYPES = {
    ".rss": "application/rss+xml; charset=utf-8",
    ".atom": "application/atom+xml; charset=utf-8",
}


def create_app(settings: Settings) -> FastAPI:
    """The web app for ``settings``: newsroom, release pages, feeds, unsubscribe."""
    app = FastAPI(title="distributor", docs_url=None, redoc_url=None, openapi_url=None)
    env = Environment(
        loader=FileSystemLoader(settings.templates_dir / "pages"),
        autoescape=select_autoescape(default=True),
    )
    env.globals.update(site_url=settings.site_url, organisation=settings.organisation,
                       feed_url=feed_url, settings=settings, release_path=release_path)  # fmt: skip

    def page(name: str, status: int = 200, **context: object) -> HTMLResponse:
        html = env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    def index(lang: str = "en") -> HTMLResponse:
        lang = lang if lang in settings.languages else settings.languages[0]
        with session_scope(settings) as session:
            releases = list(
                session.scalars(
                    select(Release)
                    .where(Release.state == ReleaseState.PUBLISHED)
                    .order_by(Release.date.desc(), Release.id.desc())
                    .limit(100)
                )
            )
        return page("index.html", releases=releases, lang=lang)

    @app.get("/releases/{slug}", response_class=HTMLResponse)
    def release_page(slug: str) -> HTMLResponse:
        with session_scope(settings) as session:
            release = session.scalar(
                select(Release).where(Release.slug == slug, Release.state == ReleaseState.PUBLISHED)
            )
            if release is None:
                raise HTTPException(404, "no such release")
            body = absolute_urls(release.body_html, settings.site_url)
            return page("release.html", release=release, body=body, lang=release.language)

    @app.get("/feeds/{lang}/{name:path}")
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

    @app.get("/unsubscribe/{token}", response_class=HTMLResponse)
    def unsubscribe_page(token: str) -> HTMLResponse:
        subscriber_id = _subscriber(token)
        with session_scope(settings) as session:
            sub = session.get(Subscriber, subscriber_id)
            lang = sub.language if sub else settings.languages[0]
            email = sub.email if sub else ""
        return page("unsubscribe.html", token=token, email=email, lang=lang, done=False)

    @app.post("/unsubscribe/{token}")
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
        return page("unsubscribe.html", token=token, email="", lang=lang, done=True)

    @app.get("/preferences/{token}", response_class=HTMLResponse)
    def preferences_page(token: str) -> HTMLResponse:
        try:
            subscriber_id = read_token(settings, Purpose.PREFERENCES, token)
        except InputError as exc:
            raise HTTPException(400, str(exc)) from exc
        with session_scope(settings) as session:
            sub = session.get(Subscriber, subscriber_id)
            if sub is None:
                raise HTTPException(404, "this subscription no longer exists")
            topics = sorted(t.name(sub.language) for t in sub.topics)
            return page(
                "preferences.html",
                sub=sub,
                topics=topics,
                lang=sub.language,
                unsubscribe_url=unsubscribe_url(settings, sub.id),
            )

    @app.get("/healthz")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    return app
