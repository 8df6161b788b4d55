"""The API's documentation page (``/api/docs``): Swagger UI, served by this site alone.

Swagger UI's script, style sheet and icon are the files of the npm package ``swagger-ui-dist``
copied into ``swagger_ui/`` beside this module, with its licence (Apache-2.0: ``LICENSE``,
``NOTICE``, and ``swagger-ui-bundle.js.LICENSE.txt`` for what the bundle contains) and its
``package.json``, whose version is in the assets' URLs (``?v=5.36.0``): a browser keeps them
a year, and a newer copy has new URLs. The page is FastAPI's own (``get_swagger_ui_html``),
rendered once; its one inline script, which starts Swagger UI, is allowed by its hash
(``SCRIPT_SOURCE``, in the page's Content-Security-Policy, ``headers.DOCS_CSP``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Final

from fastapi.openapi.docs import get_swagger_ui_html

DOCS_PATH: Final = "/api/docs"
OPENAPI_URL: Final = "/api/openapi.json"
TITLE: Final = "distributor - Swagger UI"
ASSET_DIR: Final = Path(__file__).with_name("swagger_ui")
# The files served under DOCS_PATH + "/", and their types.
ASSETS: Final = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
VERSION: Final[str] = json.loads((ASSET_DIR / "package.json").read_text(encoding="utf-8"))[
    "version"
]


def asset_url(name: str) -> str:
    """Where the page loads the asset ``name`` from (its version in the query)."""
    return f"{DOCS_PATH}/{name}?v={VERSION}"


def _page() -> str:
    html = get_swagger_ui_html(
        openapi_url=OPENAPI_URL,
        title=TITLE,
        swagger_js_url=asset_url("swagger-ui-bundle.js"),
        swagger_css_url=asset_url("swagger-ui.css"),
        swagger_favicon_url=asset_url("favicon-32x32.png"),
        oauth2_redirect_url=None,  # the API takes bearer tokens, no OAuth2 flow
    ).body
    return bytes(html).decode("utf-8")


def inline_scripts(html: str) -> list[str]:
    """The text of each ``<script>`` of ``html`` that has no ``src``."""
    return re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)


def _script_source(html: str) -> str:
    scripts = inline_scripts(html)
    if len(scripts) != 1:  # FastAPI's page changed: the policy below would not cover it
        raise RuntimeError(f"expected one inline script in Swagger UI's page, found {scripts}")
    digest = hashlib.sha256(scripts[0].encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"


PAGE: Final = _page()
# The CSP source allowing the page's inline script, and nothing else inline.
SCRIPT_SOURCE: Final = _script_source(PAGE)
