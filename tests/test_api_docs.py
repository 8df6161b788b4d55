"""The API's documentation (``/api/docs``) works with no network but this site's: Swagger UI's
script, style sheet and icon are served by the app (cached a year, in the right types), the
page's policy allows scripts and styles from the site only — the inline starter by its
hash, no 'unsafe-inline' — and in Chromium, every other host blocked, the operations show
with no console error."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import brotli
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Route
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from distributor.core.config import Settings
from distributor.web import create_app
from distributor.web.swagger import ASSET_DIR
from tests.browser import DESKTOP, chromium
from tests.helpers import free_port
from tests.processes import NO_BROKER
from tests.web_server import running_server

YEAR = "public, max-age=31536000, immutable"


@pytest.fixture
def client(sqlite_settings: Settings) -> Iterator[TestClient]:
    s = sqlite_settings.model_copy(update={"broker_url": NO_BROKER})
    with TestClient(create_app(s)) as c:
        yield c


def directives(csp: str) -> dict[str, list[str]]:
    """A Content-Security-Policy as {directive: its sources}."""
    found = {}
    for part in csp.split(";"):
        name, *sources = part.split()
        found[name] = sources
    return found


def test_the_page_loads_swagger_ui_from_this_site_and_its_files_answer(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert len(urls) == 3 and all(u.startswith("/api/docs/") for u in urls), urls
    wanted = {
        "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
        "swagger-ui.css": "text/css; charset=utf-8",
        "favicon-32x32.png": "image/png",
    }
    for url in urls:
        name = urlsplit(url).path.rsplit("/", 1)[1]
        answer = client.get(url, headers={"Accept-Encoding": "identity"})
        assert answer.status_code == 200, url
        assert answer.headers["content-type"] == wanted.pop(name), url
        assert answer.headers["cache-control"] == YEAR, url
        assert answer.headers["x-content-type-options"] == "nosniff", url
        assert answer.content == (ASSET_DIR / name).read_bytes(), url
    assert wanted == {}  # the script, the style sheet and the icon, each once
    # Compressed for a client that takes it, and the same bytes once decoded.
    script = (ASSET_DIR / "swagger-ui-bundle.js").read_bytes()
    for coding, decode in (("br", brotli.decompress), ("gzip", gzip.decompress)):
        raw = client.stream("GET", "/api/docs/swagger-ui-bundle.js", headers={
            "Accept-Encoding": coding})  # fmt: skip
        with raw as answer:
            assert answer.headers["content-encoding"] == coding
            assert answer.headers["vary"] == "Accept-Encoding"
            body = b"".join(answer.iter_raw())
        assert len(body) < len(script) / 3 and decode(body) == script, coding
    # Nothing else under /api/docs/: a JSON 404 like the rest of the API.
    for path in ("/api/docs/index.html", "/api/docs/..%2Fswagger.py", "/api/docs/LICENSE"):
        missing = client.get(path)
        assert missing.status_code == 404 and "error" in missing.json(), path


def test_the_docs_policy_names_no_cdn_and_allows_only_the_pages_own_inline_script(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/api/docs")
    csp = directives(page.headers["content-security-policy"])
    for name in ("script-src", "style-src", "img-src", "connect-src"):
        assert not any("//" in s or s in ("https:", "http:", "*") for s in csp[name]), csp
    assert "'unsafe-inline'" not in csp["script-src"] + csp["style-src"], csp
    assert "'unsafe-eval'" not in csp["script-src"], csp
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]
    # The one hash allowed is that of the page's one inline script, as served.
    inline = re.findall(r"<script>(.*?)</script>", page.text, flags=re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert csp["script-src"] == ["'self'", f"'sha256-{digest}'"]
    assert csp["style-src"] == ["'self'"]
    assert page.headers["x-frame-options"] == "DENY"


@pytest.mark.needs("chromium")
def test_the_docs_work_in_a_browser_with_no_other_host_reachable(
    sqlite_settings: Settings, redis_url: str
) -> None:
    port = free_port()
    # The test Redis: the server answers its health check (and so starts) with a broker.
    s = sqlite_settings.model_copy(
        update={"site_url": f"http://127.0.0.1:{port}", "broker_url": redis_url}
    )
    with (
        running_server(s, port) as base,
        chromium(viewport=DESKTOP) as browser,
    ):
        elsewhere: list[str] = []

        def only_this_site(route: Route) -> None:
            if route.request.url.startswith(base + "/"):
                route.continue_()
            else:
                elsewhere.append(route.request.url)
                route.abort()

        browser.route("**/*", only_this_site)
        page = browser.new_page()
        problems: list[str] = []
        page.on("console", lambda m: problems.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning") else None)  # fmt: skip
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
        answer = page.goto(base + "/api/docs")
        assert answer is not None and answer.status == 200
        heading = page.locator("#operations-tag-releases")
        try:
            heading.wait_for()
        except PlaywrightTimeout:
            raise AssertionError(f"no releases section; {problems}, {elsewhere}") from None
        assert heading.is_visible() and heading.inner_text().strip() == "releases"
        section = page.locator(".opblock-tag-section").filter(has=heading)
        operation = section.locator(".opblock-get").filter(
            has=page.locator('[data-path="/api/releases"]')
        )
        assert operation.is_visible()
        assert operation.locator(".opblock-summary-method").inner_text() == "GET"
        assert operation.locator(".opblock-summary-path").inner_text() == "/api/releases"
        # The style sheet applied: a GET's badge is Swagger UI's blue.
        colour = operation.locator(".opblock-summary-method").evaluate(
            "e => getComputedStyle(e).backgroundColor"
        )
        assert colour == "rgb(97, 175, 254)", colour
        assert elsewhere == [] and problems == [], (elsewhere, problems)
        # "Try it out" asks this site (connect-src 'self'): a 401 without a token (which
        # Chromium logs as an error: only a policy violation counts from here).
        operation.locator(".opblock-summary").click()
        page.get_by_role("button", name="Try it out").click()
        with page.expect_response(lambda r: "/api/releases" in r.url) as sent:
            page.get_by_role("button", name="Execute").click()
        assert sent.value.status == 401
        status = page.locator(".live-responses-table tbody .response-col_status")
        assert status.inner_text().split()[0] == "401"  # shown on the page
        violations = [p for p in problems if "Content Security Policy" in p]
        assert elsewhere == [] and violations == [], (elsewhere, problems)
