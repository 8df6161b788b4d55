"""The newsroom's search (``releases/search.py``, migration 0024, ``GET /search``), on
SQLite and PostgreSQL: words found in title, lead and body, ranked, filtered, paged; only
published releases, the index following every change by itself; any input a query."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import delete, inspect

from distributor.core.config import Settings
from distributor.core.db import alembic_config, get_engine, session_scope, upgrade
from distributor.core.errors import InputError
from distributor.core.models import Release, utcnow
from distributor.releases.lifecycle import (
    correct_release,
    create_release,
    mark_published,
    withdraw,
)
from distributor.releases.search import SEARCH_TABLE, SearchResults, search
from distributor.releases.source import parse_release
from distributor.web.app import create_app
from tests.helpers import add_topics

SOURCE = textwrap.dedent(
    """\
    ---
    title: {title}
    lang: {lang}
    topics: [{topics}]
    date: {date}
    slug: {slug}
    ---
    {lead}

    {body}
    """
)


def draft(settings: Settings, slug: str, **fields: str) -> object:
    values = {
        "title": "Agency news",
        "lang": "en",
        "topics": "climate",
        "date": "2026-11-20T09:00:00+01:00",
        "slug": slug,
        "lead": "The Agency announced something today.",
        "body": "A second paragraph with details.",
    }
    values.update(fields)
    return parse_release(SOURCE.format(**values), f"{slug}.md", settings)


def release(settings: Settings, slug: str, publish: bool = True, **fields: str) -> int:
    """A release ``slug`` (``fields`` over a plain one), published unless told not to."""
    with session_scope(settings) as session:
        made = create_release(session, settings, draft(settings, slug, **fields))  # type: ignore[arg-type]
        if publish:
            mark_published(session, made.id)
        return made.id


def found(settings: Settings, query: str, **filters: object) -> SearchResults:
    with session_scope(settings) as session:
        return search(session, query, **filters)  # type: ignore[arg-type]


def slugs(settings: Settings, query: str, **filters: object) -> list[str]:
    return [hit.slug for hit in found(settings, query, **filters).hits]


@pytest.fixture
def topics(settings: Settings) -> Settings:
    add_topics(settings, "climate", "space")
    return settings


def test_a_word_in_the_title_ranks_above_one_in_the_lead_above_one_in_the_body(
    topics: Settings,
) -> None:
    s = topics
    # Created body first: newest-first among equals would put them in the wrong order.
    release(s, "in-body", body="Talks on glaciers continued through the night.")
    release(s, "in-lead", lead="Glaciers are retreating faster than expected.")
    release(s, "in-title", title="Glaciers under watch")
    release(s, "elsewhere", body="Nothing about ice at all.")
    results = found(s, "glaciers")
    assert [h.slug for h in results.hits] == ["in-title", "in-lead", "in-body"]
    assert results.total == 3 and results.pages == 1
    body_hit = results.hits[2]
    assert "<mark>glaciers</mark>" in body_hit.snippet
    assert results.hits[1].snippet.startswith("<mark>Glaciers</mark> are retreating")
    assert results.hits[0].snippet == ""  # a title hit: the page shows the lead
    assert body_hit.title == "Agency news" and body_hit.lead.startswith("The Agency")


def test_every_word_must_be_found_in_any_case(topics: Settings) -> None:
    release(topics, "both", title="Solar Storm warning", body="The storm reaches Earth.")
    release(topics, "one", title="Solar panels", body="Cheaper every year.")
    assert slugs(topics, "SOLAR storm") == ["both"]
    assert set(slugs(topics, "solar")) == {"both", "one"}


def test_language_and_topic_filters(topics: Settings) -> None:
    s = topics
    release(s, "en-climate", title="Comet seen", lang="en", topics="climate")
    release(s, "fr-space", title="Comet vue", lang="fr", topics="space")
    release(s, "en-space", title="Comet again", lang="en", topics="space, climate")
    assert set(slugs(s, "comet")) == {"en-climate", "fr-space", "en-space"}
    assert set(slugs(s, "comet", lang="en")) == {"en-climate", "en-space"}
    assert slugs(s, "comet", lang="fr") == ["fr-space"]
    assert set(slugs(s, "comet", topic="space")) == {"fr-space", "en-space"}
    assert slugs(s, "comet", lang="en", topic="space") == ["en-space"]
    assert found(s, "comet", topic="no-such-topic").total == 0


def test_a_language_code_is_a_word_like_any_other(topics: Settings) -> None:
    """ "en" is a French word: it finds the releases that say it, not every English one."""
    release(topics, "fr-en", lang="fr", title="Rencontre", body="Une rencontre en Bretagne.")
    release(topics, "en-plain", lang="en", title="Meeting", body="A meeting in Brittany.")
    assert slugs(topics, "en") == ["fr-en"]
    assert slugs(topics, "fr") == []
    assert slugs(topics, "en rencontre", lang="fr") == ["fr-en"]
    assert slugs(topics, "meeting", lang="fr") == []


def test_results_come_a_page_at_a_time(topics: Settings) -> None:
    for number in range(7):
        release(topics, f"r{number}", title=f"Harbour report {number}")
    pages = [found(topics, "harbour", page=n, per_page=3) for n in (1, 2, 3)]
    assert [len(p.hits) for p in pages] == [3, 3, 1]
    assert {p.total for p in pages} == {7} and {p.pages for p in pages} == {3}
    seen = [hit.slug for p in pages for hit in p.hits]
    assert sorted(seen) == [f"r{n}" for n in range(7)]  # each once
    past = found(topics, "harbour", page=9, per_page=3)
    assert past.hits == () and past.total == 7


def test_only_published_releases_are_ever_found(topics: Settings) -> None:
    s = topics
    release(s, "draft", publish=False, title="Secret zeppelin plan")
    later = utcnow() + timedelta(days=2)
    scheduled = release(s, "scheduled", publish=False, title="Embargoed zeppelin plan")
    withdrawn = release(s, "withdrawn", title="Withdrawn zeppelin plan")
    release(s, "public", title="Public zeppelin plan")
    with session_scope(s) as session:
        mark_published(session, scheduled, at=later)
        withdraw(session, withdrawn, "editor@example.org")
    assert slugs(s, "zeppelin") == ["public"]
    assert found(s, "embargoed").total == 0 and found(s, "secret").total == 0
    # Published at last: found from then on.
    with session_scope(s) as session:
        mark_published(session, scheduled, now=later)
    assert set(slugs(s, "zeppelin")) == {"public", "scheduled"}


def test_a_correction_is_searched_as_corrected(topics: Settings) -> None:
    s = topics
    made = release(s, "corrected", title="Bridge opens", body="The bridge opens in Lyon.")
    assert slugs(s, "lyon") == ["corrected"]
    fixed = draft(s, "corrected", title="Bridge opens", body="The bridge opens in Grenoble.")
    with session_scope(s) as session:
        correct_release(session, made, fixed, note="The city was wrong")  # type: ignore[arg-type]
    assert slugs(s, "grenoble") == ["corrected"]
    assert slugs(s, "lyon") == []


def test_a_deleted_release_is_no_longer_found(topics: Settings) -> None:
    made = release(topics, "deleted", title="Lighthouse restored")
    assert slugs(topics, "lighthouse") == ["deleted"]
    with session_scope(topics) as session:
        session.execute(delete(Release).where(Release.id == made))
    assert found(topics, "lighthouse").total == 0


@pytest.mark.parametrize(
    "query",
    [
        '"',
        '"unbalanced',
        "AND",
        "OR NOT",
        "*",
        "climate*",
        "NEAR(",
        "NEAR(a b",
        "a:b",
        "title:secret",
        "-climate",
        "^",
        "()",
        "&|!<->",
        "'; DROP TABLE releases; --",
        "\x00",
        "日本語 ☃ 🙂",
        "é" * 200,
        "x " * 100,
    ],
)
def test_nothing_typed_makes_the_search_fail(topics: Settings, query: str) -> None:
    release(topics, "plain", title="AND OR NOT near secret")
    results = found(topics, query)
    assert results.total == len(results.hits)  # an answer, whatever it is
    assert results.total in (0, 1)


def test_operator_words_are_searched_as_words(topics: Settings) -> None:
    release(topics, "operators", title="Cooperation NEAR the border AND beyond")
    release(topics, "other", title="Border talks")
    assert slugs(topics, "near AND") == ["operators"]
    assert slugs(topics, "NEAR(border") == ["operators"]
    assert set(slugs(topics, '"border"*')) == {"operators", "other"}


def test_no_words_find_nothing_and_a_long_query_is_refused(topics: Settings) -> None:
    release(topics, "any", title="Anything")
    for empty in ("", "   ", "!!! ?"):
        results = found(topics, empty)
        assert (results.words, results.total, results.hits, results.pages) == ((), 0, (), 0)
    with pytest.raises(InputError, match="200 characters") as refused:
        found(topics, "a" * 201)
    assert refused.value.field == "q"


def test_accents_do_not_count(topics: Settings) -> None:
    release(topics, "accents", lang="fr", title="Plan éco pour la région", body="Crème brûlée.")
    assert slugs(topics, "eco") == ["accents"]
    assert slugs(topics, "ÉCO REGION") == ["accents"]
    assert slugs(topics, "creme brulee") == ["accents"]
    # Decomposed (e + combining acute), as some keyboards and pastes give it.
    assert slugs(topics, "e\u0301co") == ["accents"]
    hit = found(topics, "creme")
    assert "<mark>Crème</mark>" in hit.hits[0].snippet


def test_the_snippet_is_escaped_markup(topics: Settings) -> None:
    release(topics, "markup", body="Use <script>alert(1)</script> rarely & carefully.")
    snippet = found(topics, "alert").hits[0].snippet
    assert "<script>" not in snippet
    assert "&lt;script&gt;<mark>alert</mark>" in snippet or "<mark>alert</mark>" in snippet
    assert "&amp;" in snippet


def test_the_migration_indexes_what_was_published_before_it(settings: Settings) -> None:
    """0024 down and up again: the index goes, and comes back holding the releases already
    published (and only them)."""
    add_topics(settings, "climate")
    release(settings, "before", title="Observatory opens")
    release(settings, "draft-before", publish=False, title="Observatory closes")
    config = alembic_config(settings)
    try:
        command.downgrade(config, "0022")
        assert SEARCH_TABLE not in inspect(get_engine(settings)).get_table_names()
    finally:
        upgrade(settings)
    assert slugs(settings, "observatory") == ["before"]


# The page


def test_the_search_page(topics: Settings) -> None:
    release(topics, "volcano", title="Volcano monitored", body="Ash <b>clouds</b> tracked.")
    with TestClient(create_app(topics)) as client:
        page = client.get("/search", params={"q": "clouds", "lang": "en"})
        assert page.status_code == 200
        assert "<title>Search: clouds — " in page.text
        assert '<meta name="robots" content="noindex">' in page.text
        assert "1 release found" in page.text
        assert 'href="https://news.example.org/releases/volcano"' in page.text
        assert "<mark>clouds</mark>" in page.text
        assert 'value="clouds"' in page.text  # the box keeps the words
        nothing = client.get("/search", params={"q": "unicorn", "lang": "en"})
        assert nothing.status_code == 200
        assert "No release matches" in nothing.text
        empty = client.get("/search", params={"lang": "en"})
        assert empty.status_code == 200 and "<title>Search — " in empty.text
        too_long = client.get("/search", params={"q": "a" * 201, "lang": "en"})
        assert too_long.status_code == 400
        assert "at most 200 characters" in too_long.text
        # Any page of the newsroom has the search box.
        home = client.get("/en/")
        assert re.search(r'<form[^>]+role="search"[^>]+action="[^"]*/search"', home.text)


def test_the_search_page_in_french(topics: Settings) -> None:
    release(topics, "volcan", lang="fr", title="Volcan surveillé")
    with TestClient(create_app(topics)) as client:
        page = client.get("/search", params={"q": "volcan"}, headers={"accept-language": "fr"})
        assert '<html lang="fr">' in page.text
        assert "<title>Recherche\u00a0: volcan — " in page.text
        assert "1 communiqué trouvé" in page.text
        none = client.get("/search", params={"q": "licorne", "lang": "fr"})
        assert "Aucun communiqué ne correspond" in none.text


def test_the_search_page_goes_page_by_page(topics: Settings) -> None:
    for number in range(23):
        release(topics, f"tide-{number}", title=f"Tide tables {number}")
    with TestClient(create_app(topics)) as client:
        first = client.get("/search", params={"q": "tide", "lang": "en"})
        assert "23 releases found" in first.text
        assert first.text.count('<li class="hit">') == 20
        assert 'rel="next"' in first.text and 'rel="prev"' not in first.text
        second = client.get("/search", params={"q": "tide", "lang": "en", "page": "2"})
        assert second.text.count('<li class="hit">') == 3
        assert 'rel="prev"' in second.text and 'rel="next"' not in second.text
        assert "<title>Search: tide (page 2) — " in second.text
        for bad in ("0", "-1", "x", "99999999999999999999"):
            answer = client.get("/search", params={"q": "tide", "page": bad})
            assert answer.status_code in (200, 400), bad
