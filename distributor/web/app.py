"""Routes of the public site."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from distributor.core.config import Settings, configured_secrets, load_settings
from distributor.core.errors import DistributorError
from distributor.core.logs import redact_handlers
from distributor.reporting import metrics
from distributor.reporting.counting import Counter
from distributor.site.builder import build_site, built_before, forget_builds
from distributor.web import (
    accounts,
    accreditations_api,
    accreditations_page,
    admin,
    advance_page,
    api,
    apibase,
    apidocs,
    contacts_api,
    contacts_page,
    corrections,
    deps,
    documents_api,
    editor,
    editor_live,
    editor_media,
    language_switch,
    media_api,
    preview_page,
    release_list,
    releases_api,
    search_page,
    settings_api,
    settings_page,
    subscribe,
    swagger,
    topics_api,
    twofactor,
    users_api,
)
from distributor.web.bodies import BodyGuard
from distributor.web.errors import DEFAULT_STATUS, status_of
from distributor.web.headers import SecurityHeaders
from distributor.web.health import Health
from distributor.web.pages import Pages
from distributor.web.queueing import LazyQueue
from distributor.web.static import PublicFiles

log = logging.getLogger(__name__)


class _SiteApp(FastAPI):
    """A FastAPI app with ``PublicFiles`` in front of everything FastAPI does per request,
    then ``SecurityHeaders`` (each answer's policy) and ``BodyGuard`` (each route's body
    limit, types and token, before a byte is read).

    Not ``add_middleware``: that places them inside FastAPI's own layers (telemetry checks
    that read the environment, error and body-limit middleware), which cost more per
    request than answering a feed from memory does (measured in-process, a 304: 21 µs a
    request behind those layers, 7 µs in front of them), and which read nothing before
    the route's dependencies run."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        guard = BodyGuard(super().__call__, settings, lambda: self.router.routes)
        self._public_files = PublicFiles(SecurityHeaders(guard, settings.site_url), settings)
        self.counter = self._public_files.counter  # pushed once more at shutdown (lifespan)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # As Starlette does once inside: the layers in front see the app too (the
        # dashboard's session check, run by BodyGuard, reads its settings from it).
        scope["app"] = self
        await self._public_files(scope, receive, send)


def redirect_slashes(router: Router, site_url: str) -> None:
    """Make ``router`` redirect ``/path/`` to ``/path`` (or the other way), when only the
    other has a route, to ``site_url`` + that path. Starlette's own redirect builds its
    Location from the Host header, which the client chooses: an open redirect, and behind a
    caching proxy a poisoned cache."""
    router.redirect_slashes = False
    not_found: ASGIApp = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "http" and path != "/":
            other = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
            if any(route.matches(other)[0] != Match.NONE for route in router.routes):
                query = scope["query_string"].decode("latin-1")
                target = site_url + quote(other["path"]) + (f"?{query}" if query else "")
                await RedirectResponse(target)(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = default


def _build_at_start(settings: Settings) -> None:
    try:
        build_site(settings)
    except Exception:
        log.exception("the site could not be built at start; serving what is there")
    finally:
        # The web process builds once: what the build kept for the next (the catalogue,
        # the plan, the live releases: hundreds of MB at 100,000 releases) would be held
        # for the process's life for nothing. The workers regenerate.
        forget_builds()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Bring the site up to date at start without making anyone wait for it where there is
    a site to serve; close the app's task queue at shutdown."""
    settings: Settings = app.state.settings  # deps.install's
    queue: LazyQueue = app.state.queue
    # The pages and feeds are files the workers keep current; bring them up to date once at
    # start (after a deploy changed the templates, say: every page, 35 s at 10,000 releases).
    # Where a build has been committed before, the app answers at once, serving that site
    # while a thread rebuilds it (each file is replaced atomically, the manifest last); the
    # first start of a new install builds before answering, having nothing else to serve.
    building: threading.Thread | None = None
    if built_before(settings):
        building = threading.Thread(
            target=_build_at_start, args=(settings,), name="site-build-at-start", daemon=True
        )
        building.start()
    else:
        await anyio.to_thread.run_sync(_build_at_start, settings)
    try:
        yield
    finally:
        if building is not None:
            # Never stop mid-build on purpose (a killed one is safe: the next build finishes
            # it); a graceful stop waits for it, so no thread outlives the app.
            await anyio.to_thread.run_sync(building.join)
        queue.close()
        # The fetches counted since the last push (at most a second's) go to Redis.
        counter: Counter | None = getattr(app.state, "counter", None)
        if counter is not None:
            await anyio.to_thread.run_sync(counter.close)


async def not_found_page(request: Request, exc: StarletteHTTPException) -> Response:
    """A 404 outside the API as a page of the newsroom (a reader who follows a dead link
    gets a page, not JSON); any other HTTP error as FastAPI answers it."""
    if exc.status_code != 404 or request.url.path.startswith(apibase.PREFIX):
        return await http_exception_handler(request, exc)
    pages = deps.part(request, Pages)
    lang = pages.language(request)
    text = "There is no page at this address."
    return pages.render("message.html", lang, 404, title="Page not found", text=text)


async def refused_page(request: Request, exc: DistributorError) -> Response:
    """A domain error no route answered itself: the one table's status, on a page of the
    newsroom (apibase keeps this handler off /api, which answers JSON). An error not meant
    for users is raised again: a server error, logged."""
    status = status_of(exc)
    if status == DEFAULT_STATUS:
        raise exc
    text = str(exc) if status < 500 else "Please try again in a few minutes."
    title = HTTPStatus(status).phrase
    pages = deps.part(request, Pages)
    return pages.render("message.html", pages.language(request), status, title=title, text=text)


# What the machine asks: health and metrics.
machine = APIRouter(include_in_schema=False)


@machine.get("/healthz")
async def healthz(request: Request) -> PlainTextResponse:
    """Whether this process reaches the database and Redis (see ``health``)."""
    return await deps.part(request, Health).answer()


@machine.get("/metrics")
def prometheus_metrics(request: Request) -> Response:
    """The Prometheus metrics, computed from the shared record; 403 unless the request
    comes straight from this machine."""
    # Not public data: served to this machine only, until a token scope (apitokens)
    # or an allow-list setting replaces this guard.
    host = request.client.host if request.client else None
    if not metrics.from_this_machine(host, request.headers):
        return PlainTextResponse("forbidden\n", status_code=403)
    registry = deps.part(request, CollectorRegistry)
    return Response(metrics.exposition(registry), media_type=metrics.CONTENT_TYPE)


@functools.cache
def _routes() -> tuple[BaseRoute, ...]:
    """Every app's routes, in the order they match, built once per process."""
    table = APIRouter()
    for router in (
        api.router,
        accreditations_api.router,
        releases_api.router,
        topics_api.router,
        contacts_api.router,
        settings_api.router,
        media_api.router,
        documents_api.router,
        users_api.router,
        apidocs.router,
    ):
        table.include_router(router, prefix=apibase.PREFIX)
    for router in (
        editor.router,  # before admin's /releases/{release_id}
        editor_live.router,
        editor_media.router,
        corrections.router,
        release_list.router,
        contacts_page.router,
        accreditations_page.router,
        settings_page.router,
        admin.router,
        accounts.router,
        twofactor.router,
        language_switch.router,
        subscribe.router,
        search_page.router,
        preview_page.router,
        advance_page.router,
        machine,
    ):
        table.include_router(router)
    return tuple(table.routes)


def create_app(settings: Settings) -> FastAPI:
    """The web app for ``settings``: the generated site below ``settings.public_dir``
    (newsroom pages, release pages, feeds) served from memory by ``PublicFiles``, then the
    subscription and unsubscribe pages, and the admin API under ``/api`` (OpenAPI schema at
    ``/api/openapi.json``)."""
    app = _SiteApp(
        settings,
        title="distributor",
        docs_url=None,  # apidocs: Swagger UI from this site, not a CDN
        redoc_url=None,
        openapi_url=swagger.OPENAPI_URL,
        lifespan=lifespan,
    )
    # What the module-level routers read, per app (web/deps.py).
    pages = Pages(settings)
    forms = subscribe.PublicForms(settings, pages)
    parts = (admin.Dashboard(settings), pages, forms, Health(settings), metrics.registry(settings))
    deps.install(app.state, settings, LazyQueue(settings), *parts)
    app.state.counter = app.counter
    # The same route objects in every app: FastAPI builds a route's state (its
    # dependencies, validators, response fields) on its first request and keeps it in
    # the object, 0.2-0.5 s for an app's 114 routes; a process that makes many apps (the
    # test suite makes hundreds) builds them once. Nothing in a route is per app: what
    # an app holds is in app.state (deps.install).
    app.router.routes.extend(_routes())
    app.add_exception_handler(StarletteHTTPException, not_found_page)  # type: ignore[arg-type]
    app.add_exception_handler(DistributorError, refused_page)  # type: ignore[arg-type]
    apibase.add_error_handlers(app)  # last: it keeps the handlers added before it off /api
    redirect_slashes(app.router, settings.site_url)
    return app


def app_from_environment() -> FastAPI:
    """The web app for the Settings of the environment: the factory ``distributor serve``
    gives uvicorn (by import string, so that ``--workers`` can start more processes)."""
    # uvicorn has configured its loggers by now, in this process: the access log (with
    # --access-log) would show the personal links' tokens, and an error a URL's password.
    settings = load_settings()
    secrets = configured_secrets(settings)  # a `serve --workers N` child ran no main()
    redact_handlers("uvicorn.access", "uvicorn.error", "uvicorn", secrets=secrets)
    return create_app(settings)
