"""The newsroom's search in a real browser (Chromium, axe-core), on a phone and a desktop, in
English and French: from the header's box on a newsroom page to the results, then the
release itself."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.releases.lifecycle import mark_published
from tests.browser import DESKTOP, PHONE, accessibility_problems, chromium, visit
from tests.helpers import add_topics, free_port, make_release
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")

TITLES = {"en": "Agency signs agreement", "fr": "L'Agence signe un accord"}


@pytest.fixture
def served(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[Settings, str]]:
    """The web app over SQLite with one published release in each language."""
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={
            "site_url": f"http://127.0.0.1:{port}",
            "broker_url": redis_url,
            "rate_limit_requests": 1000,  # other runs on this Redis share the IP 127.0.0.1
        }
    )
    add_topics(settings, "climate")
    for lang, title in TITLES.items():
        made = make_release(settings, title=title, lang=lang, slug=f"agreement-{lang}")
        with session_scope(settings) as session:
            mark_published(session, made.id)
    with running_server(settings, port) as base:
        yield settings, base


@pytest.mark.parametrize("lang", ["en", "fr"])
def test_search_from_the_header_in_a_real_browser(served: tuple[Settings, str], lang: str) -> None:
    _, base = served
    with chromium() as context:
        page = context.new_page()
        for size in (PHONE, DESKTOP):
            page.set_viewport_size(size)
            visit(page, f"{base}/{lang}/")
            box = page.locator("header form[role=search] input[name=q]")
            box.fill("agreement" if lang == "en" else "accord")
            box.press("Enter")
            page.wait_for_url("**/search?**")
            assert page.locator("html").get_attribute("lang") == lang
            hits = page.locator("li.hit h2 a")
            assert hits.all_text_contents() == [TITLES[lang]], size
            if lang == "en":  # the word, in the lead, is marked
                assert page.locator("li.hit mark").all_text_contents() == ["agreement"]
            assert accessibility_problems(page) == [], (lang, size["width"])
            # Nothing found: said so, and the page is as usable.
            page.locator("#search-words").fill("unicorn")
            page.locator("form.search-form button").click()
            page.wait_for_url("**q=unicorn**")
            assert page.locator("li.hit").count() == 0
            assert accessibility_problems(page) == [], (lang, size["width"], "no results")
        page.go_back()
        page.locator("li.hit h2 a").click()
        page.wait_for_url(f"**/releases/agreement-{lang}")
        assert page.locator("h1").text_content() == TITLES[lang]
