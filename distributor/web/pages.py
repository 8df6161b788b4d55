"""Rendering the dynamic public pages (subscribe, confirm, preferences, unsubscribe,
messages) with the newsroom's templates and Jinja2 environment (one environment, in
:mod:`distributor.site.newsroom`), in the page's language."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import SQLAlchemyError

from distributor.core.config import Settings
from distributor.core.db import read_scope
from distributor.core.i18n import negotiate
from distributor.core.identity import Identity
from distributor.core.models import Release
from distributor.office.identity import environment_identity, identity
from distributor.site.newsroom import Newsroom

log = logging.getLogger(__name__)

# Reached by a personal link: they speak the subscriber's language (no switch), and no
# search engine should keep them (the preview of a release says so itself).
PERSONAL_PAGES = {"confirm.html", "preferences.html", "unsubscribe.html"}
UNINDEXED_PAGES = PERSONAL_PAGES | {"message.html", "subscribed.html"}


class Pages:
    """Renders pages for one Settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.newsroom = Newsroom(settings, environment_identity(settings))

    def _identity(self) -> Identity:
        """The office's identity as set now on the settings page; the environment's when
        the database cannot say (down, or not migrated yet): a 404 or an error page must
        not need the database."""
        try:
            # Read only: a page is often rendered inside its route's transaction.
            with read_scope(self.settings) as session:
                return identity(session, self.settings)
        except SQLAlchemyError:
            log.warning("the office's identity could not be read: the environment's is shown")
            return self.newsroom.identity

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
        self,
        name: str,
        lang: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> HTMLResponse:
        """The page ``name`` in ``lang``, with a switch to the same page in the other
        languages (``?lang=``) unless it is a personal page."""
        context.setdefault("hide_language_switch", name in PERSONAL_PAGES)
        context.setdefault("noindex", name in UNINDEXED_PAGES)
        # A query-only reference keeps the page's own path (the form, or the page a form
        # answered with) whatever the Host; the path itself is not known here.
        context.setdefault(
            "language_links",
            [(code, f"?lang={code}") for code in self.settings.languages if code != lang],
        )
        html = self.newsroom.render(name, lang, self._identity(), **context)
        return HTMLResponse(html, status_code=status, headers=headers)

    def release_preview(self, release: Release, embargo: str = "") -> HTMLResponse:
        """The page of ``release``, not public yet, as it will read once published, marked
        as a preview, or as an advance copy under ``embargo`` (``Newsroom.release_page``)."""
        html = self.newsroom.release_page(
            release, [], self._identity(), preview=True, embargo=embargo
        )
        return HTMLResponse(html)
