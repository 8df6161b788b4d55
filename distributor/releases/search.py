"""Searching the published releases by words (the newsroom's ``/search``): ranked, title
above lead above body, filtered by language and topic, a page at a time.

The index is the database's own and is kept by triggers (migration 0024), so no code path
can forget it: SQLite's FTS5 table ``release_search`` (``unicode61 remove_diacritics 2``,
ranked by ``bm25``), PostgreSQL's tsvector table ``release_search`` (configuration
``distributor_search``: ``simple`` after ``unaccent``, ranked by ``ts_rank_cd``). Only
published releases are in it; the query checks the state again besides.

What a reader types is words, never syntax: the words are taken out of it (letters and
digits) and each is quoted, so ``"``, ``AND``, ``*`` or ``NEAR(`` are searched for as the
words they hold, and nothing typed can make the query fail.
"""

from __future__ import annotations

import functools
import html
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from distributor.core.errors import InputError
from distributor.core.models import Release, ReleaseState, Topic

SEARCH_TABLE = "release_search"  # on either database (migration 0024)
MAX_QUERY = 200  # characters: a search is a few words, never a pasted page
MAX_WORDS = 16  # more words than this are dropped: every one must match anyway
PER_PAGE = 20
SNIPPET_WORDS = 30  # words of body around the first match

# A word as both indexes see one: a run of letters and digits (an underscore separates).
_WORD = re.compile(r"[^\W_]+")

# Weights of title, lead and body (and the language column, never ranked): a title hit
# counts the most. PostgreSQL ranks on title (A) and lead (B) only (ts_rank_cd's weights
# are for D, C, B, A): a release found by its body alone comes after, newest first.
_SQLITE_RANK = "bm25(release_search, 10.0, 4.0, 1.0, 0.0)"
_PG_WEIGHTS = "'{0, 0, 0.4, 1.0}'::float4[]"


@dataclass(frozen=True)
class Hit:
    """One release found: what the results page shows of it."""

    id: int
    slug: str
    title: str
    language: str
    date: datetime
    lead: str
    # A short passage of the body around the first word found, else of the lead, the words
    # marked with <mark> (escaped HTML); "" when neither has them (a title hit).
    snippet: Markup


@dataclass(frozen=True)
class SearchResults:
    """One page of the releases a query found, best first."""

    words: tuple[str, ...]  # the words searched for (none: nothing was searched)
    total: int  # releases found, on every page
    page: int  # this page's number, from 1
    per_page: int
    hits: tuple[Hit, ...]

    @property
    def pages(self) -> int:
        """How many pages the results fill (0 when none was found)."""
        return math.ceil(self.total / self.per_page)


def query_words(query: str) -> tuple[str, ...]:
    """The words of ``query`` (letters and digits; Unicode NFKC, so a decomposed "é" is one
    letter), lower case, each once, at most ``MAX_WORDS``. Raises InputError (field ``q``)
    when the query is longer than ``MAX_QUERY`` characters."""
    if len(query) > MAX_QUERY:
        raise InputError(f"A search is at most {MAX_QUERY} characters: use fewer words.", field="q")
    found = _WORD.findall(unicodedata.normalize("NFKC", query).lower())
    return tuple(dict.fromkeys(found))[:MAX_WORDS]


def search(
    session: Session,
    query: str,
    lang: str | None = None,
    topic: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> SearchResults:
    """Page ``page`` of the published releases holding every word of ``query`` (accents
    and case aside), best ranked first (a word in the title counts more than in the lead,
    more than in the body; newer first among equals); only those in language ``lang`` and
    on topic ``topic`` (its slug) when given. No words (an empty query, punctuation only)
    and an unknown topic find nothing; a page past the last has no hits but the total.
    Raises InputError (field ``q``) for a query over ``MAX_QUERY`` characters."""
    words = query_words(query)
    page = max(page, 1)
    if not words:
        return SearchResults((), 0, page, per_page, ())
    topic_id = None
    if topic:
        topic_id = session.scalar(select(Topic.id).where(Topic.slug == topic))
        if topic_id is None:
            return SearchResults(words, 0, page, per_page, ())
    params: dict[str, object] = {"limit": per_page, "offset": (page - 1) * per_page}
    if session.get_bind().dialect.name == "sqlite":
        sql, params["match"] = _sqlite_query(words, lang, topic_id)
    else:
        sql, params["words"] = _pg_query(lang, topic_id), " ".join(words)
    params.update(lang=lang, topic=topic_id)
    ranked = session.execute(text(sql), params).all()
    if ranked:
        total = ranked[0][1]
    elif page > 1:  # past the last page: still say how many there are
        total = search(session, query, lang, topic, 1, per_page).total
    else:
        total = 0
    hits = _hits(session, [row[0] for row in ranked], words)
    return SearchResults(words, total, page, per_page, hits)


def _sqlite_query(words: Sequence[str], lang: str | None, topic_id: int | None) -> tuple[str, str]:
    """The query of a page's ranked ids (and the total) on SQLite, and its MATCH expression:
    every word quoted (a phrase of one word: never an operator), the language a lookup in
    the index. A word short enough to be a language code ("en" is a French word) is looked
    for in the text columns only; the others everywhere, which is faster, as no word but a
    language code is ever in the language column."""
    phrases = [f'({{title lead body}} : "{w}")' if len(w) <= 3 else f'"{w}"' for w in words]
    if lang:
        code = " ".join(_WORD.findall(lang.lower())) or "-"
        phrases.append(f'(language : "{code}")')
    where = ["release_search MATCH :match"]
    if topic_id is not None:
        where.append(
            "EXISTS (SELECT 1 FROM release_topics rt"
            " WHERE rt.release_id = release_search.rowid AND rt.topic_id = :topic)"
        )
    # bm25() is refused beside a window function: it is ranked inside, counted outside.
    sql = (
        "SELECT id, count(*) OVER () FROM ("
        f" SELECT rowid AS id, {_SQLITE_RANK} AS rank FROM release_search"
        f" WHERE {' AND '.join(where)})"
        " ORDER BY rank, id DESC LIMIT :limit OFFSET :offset"
    )
    return sql, " AND ".join(phrases)


def _pg_query(lang: str | None, topic_id: int | None) -> str:
    """The query of a page's ranked ids (and the total) on PostgreSQL: matched on the whole
    text, ranked on title and lead (``head``), newest first among equals; the index table
    alone, never the releases' rows."""
    where = ["s.document @@ q.query"]
    if lang:
        where.append("s.language = :lang")
    if topic_id is not None:
        where.append(
            "EXISTS (SELECT 1 FROM release_topics rt"
            " WHERE rt.release_id = s.release_id AND rt.topic_id = :topic)"
        )
    # Ranked inside, counted outside, and OFFSET 0 keeps the two apart: flattened, the
    # count's window held every match's head and spilled to disk (20 ms at 10,000).
    return (
        "SELECT id, count(*) OVER () FROM ("
        " SELECT s.release_id AS id, s.date,"
        f" ts_rank_cd({_PG_WEIGHTS}, s.head, q.query) AS rank"
        " FROM release_search s, plainto_tsquery('distributor_search', :words) AS q(query)"
        f" WHERE {' AND '.join(where)} OFFSET 0) AS m"
        " ORDER BY rank DESC, date DESC, id DESC LIMIT :limit OFFSET :offset"
    )


def _hits(session: Session, ids: Sequence[int], words: Sequence[str]) -> tuple[Hit, ...]:
    """The hits of ``ids``, in that order: only releases published now (the index is the
    triggers' and this is the last word), each with its snippet."""
    if not ids:
        return ()
    columns = (
        Release.id,
        Release.slug,
        Release.title,
        Release.language,
        Release.date,
        Release.lead,
        Release.body_text,
    )
    rows = session.execute(
        select(*columns).where(Release.id.in_(ids), Release.state == ReleaseState.PUBLISHED)
    ).all()
    by_id = {row.id: row for row in rows}
    folded = {_fold(word) for word in words}
    return tuple(
        Hit(
            row.id,
            row.slug,
            row.title,
            row.language,
            row.date,
            row.lead,
            snippet(row.body_text, folded) or snippet(row.lead, folded),
        )
        for row in (by_id[i] for i in ids if i in by_id)
    )


def _fold(word: str) -> str:
    """``word`` as the indexes compare it: lower case, without its accents."""
    lowered = word.lower()
    if lowered.isascii():  # most words: nothing to take off
        return lowered
    return _fold_accents(lowered)


@functools.lru_cache(maxsize=4096)
def _fold_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def snippet(body: str, folded_words: set[str], length: int = SNIPPET_WORDS) -> Markup:
    """About ``length`` words of ``body`` around its first word in ``folded_words`` (as
    ``_fold`` gives them), each such word in ``<mark>``, "…" where the text was cut;
    escaped HTML. "" when no word of the body is one of them."""
    tokens = list(_WORD.finditer(body))
    first = next((i for i, t in enumerate(tokens) if _fold(t.group()) in folded_words), None)
    if first is None:
        return Markup("")
    start = max(first - length // 3, 0)
    end = min(start + length, len(tokens))
    begin = 0 if start == 0 else tokens[start].start()
    stop = len(body) if end == len(tokens) else tokens[end - 1].end()
    parts: list[str] = ["…" if begin else ""]
    position = begin
    for token in tokens[start:end]:
        if _fold(token.group()) in folded_words:
            parts.append(html.escape(body[position : token.start()]))
            parts.append(f"<mark>{html.escape(token.group())}</mark>")
            position = token.end()
    parts.append(html.escape(body[position:stop]))
    if stop < len(body):
        parts.append("…")
    return Markup(" ".join("".join(parts).split()))  # noqa: S704 - escaped above
