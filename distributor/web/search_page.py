"""The newsroom's search page, ``GET /search?q=…&lang=…&topic=…&page=N``: a live route (the
rest of the newsroom is files the builder writes), in the newsroom's look, never indexed by
search engines.

``lang`` is both the page's language and the language of the releases searched, as a
newsroom listing in a language lists that language's releases; without it every language
is searched and the page speaks the browser's (Accept-Language)."""

from __future__ import annotations

from urllib.parse import urlencode

from babel.numbers import format_decimal
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import read_scope
from distributor.core.errors import InputError
from distributor.core.i18n import gettext_for, ngettext_for
from distributor.core.models import Topic
from distributor.releases.search import MAX_QUERY, SearchResults, search
from distributor.web.deps import part, settings_of
from distributor.web.pages import Pages

router = APIRouter(include_in_schema=False)

# Deeper than anyone pages by hand; an offset without bound would make the database count
# its way through every match for nothing (and overflow SQLite's integers).
MAX_PAGE = 500


def search_url(settings: Settings, q: str, lang: str, topic: str, page: int = 1) -> str:
    """The address of a search page: its words, language and topic filters, page number;
    an empty filter (and page 1) left out."""
    params = {"q": q, "lang": lang, "topic": topic, "page": str(page) if page > 1 else ""}
    return f"{settings.site_url}/search?" + urlencode({k: v for k, v in params.items() if v})


def page_number(value: str) -> int:
    """``?page=`` as a page number: 1 for anything but a number from 1, at most
    ``MAX_PAGE``."""
    return min(int(value), MAX_PAGE) if value.isdigit() and int(value) >= 1 else 1


@router.get("/search", response_class=HTMLResponse)
def search_page(request: Request) -> HTMLResponse:
    """The search form, and under it one page of the releases found, best first: each
    with its title (a link to its page), date and the passage that holds the words (else
    its lead); the count, and links to the previous and next pages. 400, with the form,
    for words longer than ``MAX_QUERY`` characters."""
    settings, pages = settings_of(request), part(request, Pages)
    params = request.query_params
    q = params.get("q", "").strip()
    chosen = params.get("lang", "")
    lang_filter = chosen if chosen in settings.languages else ""
    lang = lang_filter or pages.language(request)
    topic = params.get("topic", "")[:64]
    number = page_number(params.get("page", ""))
    _ = gettext_for(lang)
    error = ""
    with read_scope(settings) as session:
        topics = list(session.scalars(select(Topic).order_by(Topic.slug)))
        try:
            results = search(session, q, lang_filter or None, topic or None, number)
        except InputError:
            error = _("A search is at most %(count)s characters: use fewer words.") % {
                "count": MAX_QUERY
            }
            results = SearchResults((), 0, 1, 1, ())
    if results.words:
        heading = _("Search: %(words)s") % {"words": q}
        if number > 1:
            heading += " " + _("(page %(number)s)") % {"number": number}
    else:
        heading = _("Search")
    count = ngettext_for(lang)(
        "{count} release found", "{count} releases found", results.total
    ).format(count=format_decimal(results.total, locale=lang))
    return pages.render(
        "search.html",
        lang,
        400 if error else 200,
        heading=heading,
        q=q,
        max_query=MAX_QUERY,
        lang_filter=lang_filter,
        topic=topic,
        topics=topics,
        results=results,
        count=count,
        error=error,
        noindex=True,
        hide_search=True,  # the page's own form is the search box
        language_links=[
            (code, search_url(settings, q, code, topic))
            for code in settings.languages
            if code != lang
        ],
        newer_url=search_url(settings, q, lang_filter, topic, number - 1)
        if number > 1 and results.total
        else None,
        older_url=search_url(settings, q, lang_filter, topic, number + 1)
        if number < min(results.pages, MAX_PAGE)
        else None,
    )
