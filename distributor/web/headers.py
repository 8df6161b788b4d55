"""The security headers of every answer, in one place: which policy an address gets, and
what each policy says.

- Every page of the newsroom and its forms (the generated files ``PublicFiles`` serves,
  and the dynamic pages): ``page_csp`` — no script at all, the pages' own inline ``<style>``
  (the templates have one; a hash would break a deployment's own templates, and nginx
  serves the same files with the same header), images from anywhere over http(s) (a
  release may show a remote one), forms posting only to this site, never framed; with
  ``X-Frame-Options: DENY`` for older browsers, ``nosniff`` and
  ``Referrer-Policy: strict-origin-when-cross-origin``.
- A personal page (``/confirm/…``, ``/preferences/…``, ``/unsubscribe/…``, ``/preview/…``:
  the URL carries a token) besides: ``Cache-Control: private, no-store``,
  ``Referrer-Policy: no-referrer`` and ``X-Robots-Tag: noindex``, whatever the route said, so
  neither a cache, another site's logs nor a search engine keeps the token or the page.
- The dashboard (``/admin``): ``ADMIN_CSP`` (its script and style sheet, from itself only),
  ``Referrer-Policy: same-origin``; its email previews set their own (``EMAIL_PREVIEW_CSP``).
- ``/api/docs``: ``DOCS_CSP`` (Swagger UI's script and style sheet from this site only, and
  the page's one inline script by its hash: ``swagger.py``).
- Every dynamic answer: ``Cache-Control: no-store`` unless the route chose otherwise (they
  carry a CSRF cookie, a subscriber's data, or an error).

``SecurityHeaders`` adds them to the dynamic answers (a route's own header wins, except on a
personal page); ``PublicFiles`` adds ``static_page_headers`` to the generated pages when it
loads them, so the feed path does no work per request for this.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distributor.core.logs import PERSONAL_LINK_PATHS
from distributor.web.swagger import DOCS_PATH, SCRIPT_SOURCE

Headers = tuple[tuple[bytes, bytes], ...]

ADMIN_PREFIX: Final = "/admin"
ADMIN_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# An email's HTML: its own inline styles and remote images, no script, no form, no
# navigation of the dashboard (sandbox), shown only in a frame of the dashboard.
EMAIL_PREVIEW_CSP: Final = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline'; "
    "font-src https: data:; base-uri 'none'; form-action 'none'; sandbox; "
    "frame-ancestors 'self'"
)
# Swagger UI: its script, style sheet and icon from this site (/api/docs/…), the inline
# script that starts it by its hash, the icons of its style sheet (data: URLs), the schema
# and "Try it out" requests to this site.
DOCS_CSP: Final = (
    f"default-src 'none'; script-src 'self' {SCRIPT_SOURCE}; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PUBLIC_REFERRER: Final = "strict-origin-when-cross-origin"


def site_origin(site_url: str) -> str:
    """``scheme://host[:port]`` of ``site_url`` (a CSP source names an origin)."""
    parts = urlsplit(site_url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp(site_url: str) -> str:
    """The Content-Security-Policy of every newsroom page and public form. The forms post to
    ``DISTRIBUTOR_SITE_URL`` (absolute URLs), which is also allowed when the page is read
    at another address (``127.0.0.1`` for ``localhost``, say)."""
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: http: data:; "
        f"form-action 'self' {site_origin(site_url)}; base-uri 'none'; frame-ancestors 'none'"
    )


def static_page_headers(site_url: str) -> Headers:
    """What every generated HTML page is served with (besides ``nosniff``, which every
    generated file has)."""
    return (
        (b"content-security-policy", page_csp(site_url).encode("latin-1")),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", PUBLIC_REFERRER.encode("latin-1")),
    )


def is_personal(path: str) -> bool:
    """Whether ``path`` is below a personal link's path (any case: the token is as
    personal whatever the spelling)."""
    first = path.lstrip("/").split("/", 1)[0].lower()
    return first in PERSONAL_LINK_PATHS


_Policy = tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]


def policies(site_url: str) -> dict[str, _Policy]:
    """Per kind of address (public, personal, admin, docs): the headers a route may have
    set otherwise, and the headers forced."""
    public = (
        ("content-security-policy", page_csp(site_url)),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", PUBLIC_REFERRER),
        ("cache-control", "no-store"),
    )
    admin = tuple(
        (
            name,
            {"content-security-policy": ADMIN_CSP, "referrer-policy": "same-origin"}.get(
                name, value
            ),
        )
        for name, value in public
    )
    docs = tuple(
        (name, DOCS_CSP if name == "content-security-policy" else value) for name, value in public
    )
    return {
        "public": (public, ()),
        "personal": (
            public,
            (
                ("cache-control", "private, no-store"),
                ("referrer-policy", "no-referrer"),
                ("x-robots-tag", "noindex"),
            ),
        ),
        "admin": (admin, (("cache-control", "no-store"),)),
        "docs": (docs, ()),
    }


def kind_of(path: str) -> str:
    """Which policy an answer at ``path`` gets."""
    if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
        return "admin"
    if path == DOCS_PATH:
        return "docs"
    return "personal" if is_personal(path) else "public"


class SecurityHeaders:
    """ASGI middleware giving each dynamic answer the headers of its address's policy."""

    def __init__(self, app: ASGIApp, site_url: str) -> None:
        self.app = app
        self.policies = policies(site_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults, forced = self.policies[kind_of(scope["path"])]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in defaults:
                    headers.setdefault(name, value)
                for name, value in forced:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
