"""What the fuzz tests share: hypothesis settings that are the same every run, and the
checks that HTML is sanitised and that text fields of a feed hold no element however a
reader decodes them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

from hypothesis import HealthCheck, settings
from lxml import etree

from distributor.core.sanitize import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, URL_SCHEMES


def fuzz(max_examples: int) -> settings:
    """Deterministic (the same examples every run), no example database, no deadline (a
    slow CI machine): each fuzz module catches hangs in its own way instead."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))


def assert_sanitised(html: str) -> None:
    """No script, no event handler, no style, no URL of a scheme we do not allow — as an
    HTML parser reads it (entities decoded), not as a substring."""
    parser = _Collect()
    parser.feed(html)
    parser.close()
    for tag, attrs in parser.tags:
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name, html)
            # nh3 keeps lang and title on every element (its generic attributes): harmless.
            allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | {"rel", "lang", "title"}
            assert name in allowed, (tag, name, html)
            if name in ("href", "src", "cite") and value:
                url = re.sub(r"[\x00-\x20\x7f]", "", value).lower()
                scheme = re.match(r"([a-z][a-z0-9+.-]*):", url)
                if scheme:
                    assert scheme.group(1) in URL_SCHEMES, (tag, name, value, html)
    assert "<script" not in html.lower()  # not even as text: the parser saw every tag


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)

    def handle_startendtag(self, tag: str, attrs: Any) -> None:
        self.tags.append(tag)


def live_tags(value: str) -> list[str]:
    """The elements an HTML parser finds in ``value``, and in ``value`` decoded once more
    (a reader that unescapes twice); an unclosed ``<img …`` at the end counts too (a
    reader that puts the text inside its own markup closes it)."""
    found = []
    for text in (value, html.unescape(value)):
        parser = _Tags()
        parser.feed(text + ">")
        parser.close()
        found += parser.tags
    return found


# Fields that are URLs, identifiers, types or dates, and the full content (HTML on purpose).
NOT_TEXT = {"href", "link", "url", "id", "guid", "base", "image", "feed_url", "home_page_url",
            "scheme", "type", "mime_type", "language", "rel", "hreflang", "length", "version",
            "content", "content_html", "published", "updated", "date_published",
            "date_modified", "size_in_bytes", "guidislink", "generator", "generator_detail",
            "namespaces", "encoding", "bozo", "headers"}  # fmt: skip


def text_fields(doc: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a parsed feed (feedparser's dictionaries, or JSON Feed) that readers
    show as text — titles, summaries, names, categories — with its path."""
    if isinstance(doc, str):
        yield path, doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            if key not in NOT_TEXT:
                yield from text_fields(value, f"{path}.{key}")
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from text_fields(value, f"{path}.{index}")


def assert_plain_text(doc: Any) -> None:
    """No field of ``doc`` but the full content holds an element, however it is read."""
    for path, value in text_fields(doc):
        assert live_tags(value) == [], (path, value)


def assert_plain_xml(data: bytes) -> None:
    """Read raw too (feedparser sanitises what it takes for HTML): titles, descriptions,
    summaries, names and categories as a reader that renders them as HTML gets them, after
    one XML decoding, hold no element."""
    tree = etree.fromstring(data, parser=etree.XMLParser(resolve_entities=False))
    for element in tree.iter():
        if etree.QName(element).localname in ("title", "description", "summary", "name",
                                              "category", "creator") and element.text:  # fmt: skip
            assert live_tags(element.text) == [], (element.tag, element.text)
