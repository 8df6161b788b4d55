"""Fuzzing release ingest (issue 6): for any text, ``parse_release`` returns a draft whose
HTML is sanitised, whose single-line fields hold nothing a single line refuses (issue 11:
bidi controls, noncharacters…) and whose links stay on the site or are http(s) URLs, or
raises ReleaseInputError naming the file — never another exception, never a hang.
Hypothesis runs derandomised (the same examples every run) and without an example
database.

Front matter comes three ways: a valid release's fields with random values swapped in
(through ``yaml.safe_dump``), YAML written from hostile fragments (anchors and aliases,
tags, escapes, CRLF, flow and block styles), and raw text. Bodies mix Markdown and raw HTML
meant to slip script past the sanitiser."""

from __future__ import annotations

import re
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import event, example, given
from hypothesis import strategies as st

from distributor.core.config import Settings, load_settings
from distributor.core.errors import ReleaseInputError
from distributor.core.sanitize import MAX_HTML_DEPTH, line_problem
from distributor.core.urls import link_problem
from distributor.releases.source import (
    MAX_FRONT_MATTER_BYTES,
    MAX_SOURCE_BYTES,
    MAX_YAML_DEPTH,
    ReleaseDraft,
    parse_release,
)
from tests.fuzzing import assert_sanitised, fuzz

SOURCE = "fuzz.md"
VALID = {
    "title": "Agency signs agreement",
    "lang": "en",
    "topics": ["climate"],
    "date": "2026-11-20T09:00:00+01:00",
    "contacts": [{"name": "Jane Doe", "role": "Press officer", "email": "press@example.org"}],
}
LINE_BREAK = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


@pytest.fixture(scope="module")
def release_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # parse_release reads only the languages (no database, no file without base_dir).
    return load_settings(data_dir=tmp_path_factory.mktemp("fuzz") / "var", secret_key="k")


# -- checking a draft ----------------------------------------------------------------------


def assert_valid_draft(draft: ReleaseDraft) -> None:
    meta = draft.meta
    assert_sanitised(draft.body_html)
    for text in (meta.title, draft.lead):
        assert text and text == text.strip()
        assert not LINE_BREAK.search(text), text
        assert not re.search(r"[\x00-\x08\x0e-\x1f]", text), text
    assert not re.search(r"[\x00-\x1f\x7f\x85\u2028\u2029]", meta.title)
    for value in (draft.lead, draft.body_html, draft.body_text, meta.model_dump_json()):
        value.encode("utf-8")  # no lone surrogate: stored, sent and served as UTF-8
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]", draft.body_html)
    assert "\u202e" not in draft.body_text and "\u202d" not in draft.body_text
    lines = [meta.title, meta.dateline, draft.lead]
    lines += [text for c in meta.contacts for text in (c.name, c.role, c.phone, c.email)]
    lines += [text for i in meta.images for text in (i.alt, i.credit)]
    lines += [a.title for a in meta.attachments]
    for text in lines:
        assert line_problem(text) is None, text
    links = [link for i in meta.images for link in (i.src, i.href, i.email_src) if link]
    for link in links + [a.href for a in meta.attachments]:
        assert link_problem(link) is None, link
    assert meta.date.utcoffset() is not None
    meta.date.astimezone(UTC)  # representable in UTC (stored so)


def check(text: str, settings: Settings) -> ReleaseDraft | None:
    started = time.thread_time()  # CPU time: a loaded machine does not make it a hang
    try:
        draft = parse_release(text, SOURCE, settings)
    except ReleaseInputError as exc:
        assert str(exc).startswith(f"{SOURCE}: "), exc
        assert len(str(exc)) < 5000, "an error message a person can read"
        event("refused")
        return None
    finally:
        assert time.thread_time() - started < 10, "no hang"
    assert_valid_draft(draft)
    event("accepted")
    return draft


# -- strategies ------------------------------------------------------------------------------

HOSTILE_TEXT = st.sampled_from(
    [
        "", " ", "\r\n", "\n", "\r", "\t", "\x00", "\x07", "\x1b[31m", "\x7f", "\x85", "\u2028",
        "\u2029", "\ufeff", "\ufffe", "\uffff", "\ud800", "\udfff", "\U0001f600", "é", "=?utf-8?b?",
        "]]>", "<![CDATA[", "<script>alert(1)</script>", "javascript:alert(1)", "&", "&amp;",
        "'", '"', "\\", "{", "}", "[", "]", ":", "- ", "# ", "*", "&a", "!!binary", "%YAML",
        "---", "...", "x" * 600, "9" * 5000, "\u202e", "\u2066", "\u202b", "\u200f",
        "\ufdd0", "\U0010fffe", "\x9b", "//evil.example/a", "/\\evil", "/%2Fevil",
    ]
)  # fmt: skip
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8"), max_size=40),
    st.lists(st.one_of(HOSTILE_TEXT, st.text(max_size=5)), max_size=6).map("".join),
)
SCALAR = st.one_of(
    TEXT,
    st.integers(),
    st.floats(),
    st.booleans(),
    st.none(),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.sampled_from(
        ["2026-11-20T09:00:00+01:00", "2026-11-20", "2026-11-20T09:00:00",
         "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1", "climate", "en",
         "fr", "http://x", "/a.png", "javascript:alert(1)", "photos/a.jpg", "//evil/a.png",
         "/\\evil/a.png", "/%2fevil/a.png", "https://user@evil/a.png", "x@y.org?cc=z@w.org",
         "../../etc/passwd", "~/.ssh/id_rsa"]
    ),
)  # fmt: skip
VALUE = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT | SCALAR, inner, max_size=4),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["title", "lang", "topics", "date", "embargo", "translation_of", "slug", "dateline", "lead",
     "contacts", "images", "attachments", "extra", "Title", "<<"]
)  # fmt: skip
MEDIA_ITEM = st.dictionaries(
    st.sampled_from(["src", "alt", "credit", "href", "email_src", "type", "length", "width",
                     "height", "title", "name", "role", "phone", "email", "x"]),
    SCALAR, max_size=6,
)  # fmt: skip


def _dump(data: dict[Any, Any], unicode: bool, flow: bool | None) -> str | None:
    try:
        return yaml.safe_dump(data, allow_unicode=unicode, default_flow_style=flow)
    except (yaml.YAMLError, ValueError, TypeError):
        return None  # not representable in YAML by PyYAML: nothing to test


@st.composite
def dumped_front_matter(draw: st.DrawFn) -> str:
    """A valid release's fields, some replaced or added, written out by PyYAML."""
    data: dict[Any, Any] = dict(VALID)
    for _ in range(draw(st.integers(0, 4))):
        key = draw(FIELDS)
        if key in ("contacts", "images", "attachments"):
            data[key] = draw(st.lists(MEDIA_ITEM, max_size=3) | VALUE)
        else:
            data[key] = draw(VALUE)
    for key in draw(st.lists(st.sampled_from(sorted(VALID)), max_size=2)):
        data.pop(key, None)
    text = _dump(data, draw(st.booleans()), draw(st.sampled_from([None, True, False])))
    return text if text is not None else yaml.safe_dump(VALID)


YAML_FRAGMENTS = st.sampled_from(
    [
        "title: T\n", "lang: en\n", "lang: fr\n", "topics: [climate]\n", "topics: climate\n",
        "date: 2026-11-20T09:00:00+01:00\n", "date: 2026-11-20\n", "date: 2026-02-30T09:00:00Z\n",
        "date: 2026-11-20T25:00:00+01:00\n", "date: 1\n", "embargo: 2026-11-20 09:00:00 +99\n",
        "title: &t T\n", "lead: *t\n", "a: &a [x, x]\n", "b: &b [*a, *a, *a]\n",
        "c: [*b, *b, *b]\n",
        "m: &m {title: M}\n", "<<: *m\n", "<<: [*m, *m]\n", "self: &s [*s]\n", "x: *undefined\n",
        "title: !!binary aGVsbG8=\n", "title: !!binary '////'\n", "topics: !!set {a, b}\n",
        "x: !!python/object/apply:os.system [ls]\n", "x: !!omap [{a: 1}]\n",
        "x: !!pairs [{a: 1}]\n", "x: !!timestamp [1]\n", "x: !!int {a: 1}\n",
        "date: !!timestamp '1935-01-01 00:00:00+02:00:16'\n",
        "x: !custom 1\n", 'title: "\\x00\\x07\\u2028\\ud800\\U0001F600"\n', "title: 'it''s'\n",
        "title: |\n  two\n  lines\n", "lead: >\n  folded\n  lead\n", "title: T\r\n",
        "title:\ttab\n", "  indented: 1\n", "- list\n", "? complex\n: key\n", "[1, 2]: 3\n",
        "{a: 1}: 2\n", "x: [[[[[[[[[[]]]]]]]]]]\n", "x: {a: {b: {c: {d: {e: 1}}}}}\n",
        "images: [{src: photos/a.jpg, alt: A}]\n", "images: [{src: /a.png, alt: A, length: -1}]\n",
        "images: [{src: 'javascript:alert(1)', alt: A}]\n",
        "attachments: [{href: /a.pdf, title: A, type: application/pdf}]\n",
        "contacts: [{name: J, email: \"a@b\\r\\nBcc: x@y\"}]\n", "slug: Not A Slug\n",
        "slug: ok-slug\n", "length: 0x" + "f" * 200 + "\n", "n: 1" + ":59" * 60 + "\n",
        "n: " + "9" * 200 + "\n", "f: 1e999\n", "f: .nan\n", "%TAG ! tag:x,2000:\n",
        "# comment\n", "\n", "\ufeff", "...\n", "title: \x85\n",
    ]
)  # fmt: skip


@st.composite
def written_front_matter(draw: st.DrawFn) -> str:
    """YAML text assembled from fragments, some of them hostile, maybe with CRLF."""
    parts = draw(st.lists(st.one_of(YAML_FRAGMENTS, TEXT.map(lambda t: f"k: {t}\n")), max_size=8))
    text = "".join(draw(st.permutations(list(VALID_LINES))) + parts)
    if draw(st.booleans()):
        text = text.replace("\n", "\r\n")
    return text


VALID_LINES = (
    "title: T\n",
    "lang: en\n",
    "topics: [climate]\n",
    "date: 2026-11-20T09:00:00+01:00\n",
)

BODY_FRAGMENTS = st.sampled_from(
    [
        "The lead paragraph.\n\n", "Another paragraph.\n", "\n\n", "> quote\n", "- item\n",
        "1. item\n", "    code\n", "```\n<script>x</script>\n```\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
        "<script>alert(1)</script>", "<SCRIPT SRC=//x.js></SCRIPT>", "<img src=x onerror=alert(1)>",
        "<svg/onload=alert(1)>", "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\"JaVaScRiPt:x\">",
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>", "<a href=\"&#106;avascript:x\">x</a>",
        "<a href=\" javascript:x\">", "<a href=\"data:text/html;base64,PHNjcmlwdD4=\">d</a>",
        "<a href='vbscript:x'>v</a>", "[link](javascript:alert(1))", "[l](JAVASCRIPT:x)",
        "![img](javascript:alert(1))", "<javascript:alert(1)>", "[x]: javascript:y\n\n[x]\n",
        "<iframe src=//x></iframe>", "<style>*{}</style>", "<p style=\"x\" onclick=\"y\">p</p>",
        "<div onmouseover=x>d</div>", "<!-- <script>x</script> -->", "<![CDATA[<script>]]>",
        "<math><mtext><table><mglyph><style><img src=x onerror=y>",
        "<noscript><p title=\"</noscript><img src=x onerror=y>\">",
        "<form action=javascript:x><button>b</button></form>", "<object data=x>", "<embed src=x>",
        "<base href=javascript:/>", "<meta http-equiv=refresh content=0;url=javascript:x>",
        "<a href=\"http://ok.example\" onclick=\"x\" target=_blank>ok</a>",
        "<blockquote cite=javascript:x>q</blockquote>",
        "<q cite=\"java\nscript:x\">q</q>", "<b>unclosed", "</p></div></body>", "&lt;script&gt;",
        "&#0;&#xd800;&#x1F600;", "&#11;&#x1b;&#xfffe;", "<a title=\"&#x1b;\" href=/>t</a>",
        "\x00\x01\x0b\ufffe", "\ud800", "]]>", "*emph* __strong__ `code`",
        "\\<script>", "<" * 50, "[" * 50, "> " * 30 + "deep\n", "- " * 30 + "deep\n",
    ]
)  # fmt: skip
BODY = st.lists(st.one_of(BODY_FRAGMENTS, TEXT), max_size=10).map("".join)


def release(front_matter: str, body: str) -> str:
    return f"---\n{front_matter.rstrip(chr(10))}\n---\n{body}"


# -- the properties ------------------------------------------------------------------------


@fuzz(300)
@given(front_matter=dumped_front_matter(), body=BODY)
@example(front_matter="title: T\nlang: en\ntopics: [a]\ndate: 1\n", body="x")  # a Unix time
@example(  # no UTC time for it: stored in UTC, the date overflowed later
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 9999-12-31T23:59:59-23:59\n", body="x"
)
@example(
    front_matter='title: "a\\u2028b"\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n', body="x"
)
@example(
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n"
    'lead: "two\\nlines"\n',
    body="x",
)
def test_dumped_front_matter_is_accepted_clean_or_refused(
    release_settings: Settings, front_matter: str, body: str
) -> None:
    check(release(front_matter, body), release_settings)


@fuzz(300)
@given(front_matter=written_front_matter(), body=BODY)
@example(
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n"
    "x: " + "[" * 5000 + "]" * 5000 + "\n",
    body="x",
)  # was RecursionError
@example(
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n"
    "x: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n",
    body="x",
)  # RecursionError
@example(
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n"
    "images: [{src: /a, alt: b, length: " + "9" * 5000 + "}]\n",
    body="x",
)
@example(
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n"
    "images: [{src: /a, alt: b, length: 0x" + "f" * 5000 + "}]\n",
    body="x",
)
@example(
    front_matter="title: T\nlang: en\ntopics: [a]\ndate: 2026-02-30T09:00:00Z\n", body="x"
)  # a YAML timestamp Python refuses: was ValueError
@example(
    front_matter='title: "\\ud800"\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n', body="x"
)  # a lone surrogate: cannot be stored as UTF-8
@example(
    front_matter="title: T\ntitle: U\nlang: en\ntopics: [a]\ndate: 2026-11-20T09:00:00Z\n", body="x"
)  # which title? refused, not the last one silently
@example(
    front_matter="title: T\nlang: en\ntopics: &a [*a]\ndate: 2026-11-20T09:00:00Z\n", body="x"
)  # a recursive value
def test_written_front_matter_is_accepted_clean_or_refused(
    release_settings: Settings, front_matter: str, body: str
) -> None:
    check(release(front_matter, body), release_settings)


@fuzz(200)
@given(
    text=st.one_of(
        st.text(max_size=300),
        BODY,
        st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape")),
    )
)
@example(text="---\n---\n")
@example(text="\ufeff---\r\n---\r\n")
@example(text="---\n" + "x\n" * 10)
def test_any_text_is_accepted_clean_or_refused(release_settings: Settings, text: str) -> None:
    check(text, release_settings)
    check("---\n" + text, release_settings)


@fuzz(300)
@given(body=BODY)
@example(body="<div>" * 100_000 + "x")  # 30 s in html5ever (quadratic in the depth)
@example(body="<ul><li>" * 20_000 + "x")  # 3.5 s
@example(body="<p>" * 10_000 + "x")  # optional end tags: not nested, accepted
@example(body="<blockquote cite=javascript:x>q</blockquote>")  # nh3 checks href and src only
@example(body='<q cite="java\nscript:alert(1)">q</q>')
@example(body="a&#11;b&#x1b;c&#xfffe;d")  # nh3 turned the references into the characters
@example(body="lead\n\n" + "> " * 10_000 + "x")
@example(body="lead\n\n" + "- " * 10_000 + "x")
@example(body="lead\n\n" + "".join("  " * i + "- x\n" for i in range(300)))
def test_bodies_are_sanitised(release_settings: Settings, body: str) -> None:
    fields = yaml.safe_dump(VALID)
    draft = check(release(fields, "The lead.\n\n" + body), release_settings)
    if draft is None:  # only a body nested too deep, or with a bidi override, is refused
        refusal = f"nested more than {MAX_HTML_DEPTH} levels|U\\+202[DE]"
        with pytest.raises(ReleaseInputError, match=refusal):
            parse_release(release(fields, "The lead.\n\n" + body), SOURCE, release_settings)


# -- limits: billion laughs, oversized, deeply nested ----------------------------------------


def cpu_seconds(text: str, settings: Settings) -> float:
    """The CPU time this thread spends in ``parse_release(text)`` (refused or not)."""
    started = time.thread_time()
    try:
        parse_release(text, SOURCE, settings)
    except ReleaseInputError:
        pass
    return time.thread_time() - started


@pytest.fixture(scope="module")
def budget(release_settings: Settings) -> float:
    """What a hostile release may cost: five times the CPU time of the largest ordinary
    release the parser accepts (2 MiB of paragraphs), the least of three runs.

    Not seconds on the wall: on a loaded machine those measure the other processes. CPU
    time of this thread counts only the parser's own work, and is compared with the same
    parser's work on an ordinary input, so a slower machine moves both. Every limit below
    costs a fraction of this budget (the heaviest, ``*a `` and ``[`` 20,000 times, about
    1.5 ordinary releases: a third of it); a parse quadratic in these inputs' length costs
    tens to hundreds of times more (html_depth made quadratic: 10 s against 0.7), an
    exponential one never ends."""
    paragraph = "An ordinary sentence of a press release, and another one after it. " * 8
    body = "\n\n".join([paragraph.strip()] * (MAX_SOURCE_BYTES // (len(paragraph) + 2) - 20))
    ordinary = release(yaml.safe_dump(VALID), "The lead.\n\n" + body)
    assert len(ordinary.encode()) <= MAX_SOURCE_BYTES
    assert parse_release(ordinary, SOURCE, release_settings)  # accepted
    return 5 * min(cpu_seconds(ordinary, release_settings) for _ in range(3))


def timed(
    text: str, settings: Settings, *, memory: bool = False
) -> tuple[float, int, ReleaseInputError | None]:
    """CPU seconds taken by ``parse_release(text)`` (the least of two runs), with
    ``memory`` the peak of bytes it allocated (in a third run: tracemalloc slows allocation
    down many times), and its error."""
    error = None
    try:
        parse_release(text, SOURCE, settings)
    except ReleaseInputError as exc:
        error = exc
    seconds = min(cpu_seconds(text, settings) for _ in range(2))
    peak = 0
    if memory:
        tracemalloc.start()
        cpu_seconds(text, settings)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return seconds, peak, error


def laughs(levels: int, width: int, key: str) -> str:
    lines = ["a0: &a0 lol"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
    lines.append(f"{key}: *a{levels}")
    return "\n".join(lines)


@pytest.mark.parametrize("key", ["topics", "title", "contacts", "extra"])
def test_billion_laughs_are_refused_fast_in_bounded_memory(
    release_settings: Settings, budget: float, key: str
) -> None:
    text = release(f"lang: en\ndate: 2026-11-20T09:00:00Z\n{laughs(9, 10, key)}", "x")
    elapsed, peak, error = timed(text, release_settings, memory=True)
    assert error is not None and "front matter refused (line" in str(error)
    assert "values (anchors and aliases counted" in str(error)
    assert elapsed < budget
    assert peak < 20_000_000


def test_merge_key_laughs_are_refused(release_settings: Settings, budget: float) -> None:
    lines = ["a0: &a0 {k: v}"] + [
        f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}]}}" for i in range(1, 10)
    ]
    text = release("title: T\nlang: en\ntopics: [a]\n" + "\n".join(lines), "x")
    elapsed, peak, error = timed(text, release_settings, memory=True)
    assert error is not None and "front matter refused" in str(error)
    assert elapsed < budget and peak < 20_000_000


def test_deep_front_matter_is_refused_with_its_line(
    release_settings: Settings, budget: float
) -> None:
    deep = "x: " + "[" * 100_000 + "]" * 100_000
    text = release(f"title: T\nlang: en\ntopics: [a]\n{deep}", "x")
    elapsed, _, error = timed(text, release_settings)
    assert error is not None
    assert str(error) == (
        f"{SOURCE}: front matter refused (line 5): values nested more than "
        f"{MAX_YAML_DEPTH} levels deep"
    )
    assert elapsed < budget


def test_oversized_file_and_front_matter_are_refused(
    release_settings: Settings, budget: float
) -> None:
    big = release(yaml.safe_dump(VALID), "The lead.\n\n" + "x" * MAX_SOURCE_BYTES)
    elapsed, _, error = timed(big, release_settings)
    assert error is not None and str(error) == f"{SOURCE}: larger than 2048 KiB"
    assert elapsed < budget
    fat = release(yaml.safe_dump(VALID) + "lead: " + "x" * MAX_FRONT_MATTER_BYTES, "x")
    elapsed, _, error = timed(fat, release_settings)
    assert error is not None and "front matter larger than 256 KiB" in str(error)
    assert elapsed < budget
    # Not a single multi-byte character more than the limit (bytes, not characters).
    assert len(("é" * (MAX_SOURCE_BYTES // 2 + 1)).encode()) > MAX_SOURCE_BYTES
    error = timed(
        release(yaml.safe_dump(VALID), "é" * (MAX_SOURCE_BYTES // 2 + 1)), release_settings
    )[2]
    assert error is not None and "larger than" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        "> " * 10_000 + "x",
        "- " * 10_000 + "x",
        "".join("  " * i + "- x\n" for i in range(1_000)),
        "1. " * 10_000 + "x",
        "<div>" * 100_000 + "x",
        "<blockquote>" * 20_000 + "x",
        "<ul><li>" * 20_000 + "x",
        "*a " * 20_000 + "x",
        "[" * 20_000 + "x",
    ],
    ids=[
        "blockquotes",
        "list",
        "indented-list",
        "ordered",
        "div",
        "html-blockquote",
        "html-list",
        "emphasis",
        "brackets",
    ],
)
def test_deeply_nested_bodies_stay_within_the_budget(
    release_settings: Settings, budget: float, body: str
) -> None:
    text = release(yaml.safe_dump(VALID), "The lead.\n\n" + body)
    elapsed, _, error = timed(text, release_settings)
    assert elapsed < budget
    if error is not None:
        assert f"nested more than {MAX_HTML_DEPTH} levels deep" in str(error)


def test_too_many_problems_are_summed_up(release_settings: Settings) -> None:
    keys = "".join(f"k{i}: 1\n" for i in range(2_000))
    error = timed(release(yaml.safe_dump(VALID) + keys, "x"), release_settings)[2]
    assert error is not None
    assert str(error).count("Extra inputs are not permitted") == 10
    assert str(error).endswith("and 1990 more problem(s)")


def test_an_alias_within_limits_is_still_fine(release_settings: Settings) -> None:
    text = release(
        "title: &t Agency signs\nlang: en\ntopics: [climate]\n"
        "date: &d 2026-11-20T09:00:00+01:00\nembargo: *d\ndateline: *t",
        "The lead.",
    )
    draft = parse_release(text, SOURCE, release_settings)
    assert (
        draft.meta.embargo == draft.meta.date == datetime.fromisoformat("2026-11-20T09:00:00+01:00")
    )
    assert draft.meta.dateline == "Agency signs"


def test_sample_releases_still_parse(release_settings: Settings) -> None:
    for path in sorted((Path(__file__).parent.parent / "distributor/samples").glob("*.md")):
        assert_valid_draft(parse_release(path.read_text(), str(path), release_settings))
