"""Rendering the public pages: Jinja2 templates in ``templates/pages`` with the page's
language and its ``_`` (gettext) function."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..config import Settings
from ..i18n import gettext_for, negotiate
from ..urls import feed_url, release_path

LANGUAGE_NAMES = {"en": "English", "fr": "Français"}
PERSONAL_PAGES = {"confirm.html", "preferences.html", "unsubscribe.html"}


class Pages:
    """Renders pages for one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.env = Environment(
            loader=FileSystemLoader(settings.templates_dir / "pages"),
            autoescape=select_autoescape(default=True),
        )
        self.env.globals.update(
            site_url=settings.site_url,
            organisation=settings.organisation,
            feed_url=feed_url,
            settings=settings,
            release_path=release_path,
            language_names=LANGUAGE_NAMES,
        )

    def language(self, request: Request) -> str:
        """The page language: ``?lang=`` if we have it, else the browser's preference."""
        asked = request.query_params.get("lang", "")
        if asked in self.settings.languages:
            return asked
        return negotiate(
            request.headers.get("accept-language"),
            self.settings.languages,
            self.settings.languages[0],
        )

    def render(
        self, name: str, lang: str, status: int = 200, headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:  # fmt: skip
        """The page ``name`` in ``lang``."""
        # Pages reached by a personal link speak the subscriber's language: no switch.
        context.setdefault("hide_language_switch", name in PERSONAL_PAGES)
        html = self.env.get_template(name).render(lang=lang, _=gettext_for(lang), **context)
        return HTMLResponse(html, status_code=status, headers=headers)
