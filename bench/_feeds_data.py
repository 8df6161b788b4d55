"""Data for bench/feeds.py: N published releases of realistic size, inserted fast.

Ten topics (English and French names); releases in English and French (about a third
French, half of those translations of an English release), 1–3 topics each, 3–5 KB of
body HTML, one or two press contacts, an image on one in three and a PDF on one in five.
Rows are written with SQLAlchemy Core bulk inserts (seconds for 10,000, about a minute for
100,000, where the domain's ``create_release`` would take minutes for 10,000): benchmark
set-up only; the rows have the shape ``create_release`` + ``mark_published`` store. Body
paragraphs are drawn from a pool of 2,000 a language.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy import insert, inspect, text

from distributor.core.config import Settings
from distributor.core.db import get_engine
from distributor.core.models import Release, ReleaseState, Topic, release_topics
from distributor.releases.contact import Contact
from distributor.releases.source import Attachment, Image

TOPICS = {
    "climate": ("Climate", "Climat"),
    "international": ("International", "International"),
    "science": ("Science", "Science"),
    "space": ("Space", "Espace"),
    "oceans": ("Oceans", "Océans"),
    "energy": ("Energy", "Énergie"),
    "health": ("Health", "Santé"),
    "education": ("Education", "Éducation"),
    "agriculture": ("Agriculture", "Agriculture"),
    "budget": ("Budget and finance", "Budget et finances"),
}
_WORDS = {
    "en": (
        "agency agreement satellite observation data climate record monitoring programme "
        "member states scientists calibration network station ocean temperature emissions "
        "report findings partners research mission launch budget training open licence "
        "publication ministers council director general cooperation results measurements"
    ).split(),
    "fr": (
        "agence accord satellite observation données climat relevé surveillance programme "
        "États membres scientifiques étalonnage réseau station océan température émissions "
        "rapport résultats partenaires recherche mission lancement budget formation licence "
        "ouverte publication ministres conseil directeur général coopération mesures"
    ).split(),
}
_FIRST_DATE = datetime(2021, 1, 4, 9, 0, tzinfo=UTC)
_CHUNK = 1000


@dataclass(frozen=True)
class Populated:
    """What was inserted: release counts by language, translations, and body sizes."""

    releases: int
    by_language: dict[str, int]
    translations: int
    mean_body_bytes: float
    newest: datetime


def _sentence(rng: random.Random, lang: str) -> str:
    # choices(k=…), not a choice() a word: 100,000 releases in a minute, not five.
    words = rng.choices(_WORDS[lang], k=rng.randint(12, 24))
    return " ".join(words).capitalize() + "."


def _paragraph(rng: random.Random, lang: str) -> str:
    return " ".join(_sentence(rng, lang) for _ in range(rng.randint(3, 5)))


# Checked once (the model validates each address: a third of the time it took).
_CONTACTS = [
    Contact(
        name="Jane Doe", role="Press officer", phone="+33 1 00 00 00 00", email="press@example.org"
    ).model_dump(),
    Contact(
        name="Marc Lefèvre",
        role="Head of media relations",
        phone="+33 1 00 00 00 01",
        email="media@example.org",
    ).model_dump(),
]
_POOL = 2_000  # paragraphs a language: drawn from, not written anew for every release


def _pools(rng: random.Random) -> dict[str, list[str]]:
    return {lang: [_paragraph(rng, lang) for _ in range(_POOL)] for lang in _WORDS}


def _body(rng: random.Random, lang: str, slug: str, pool: list[str]) -> tuple[str, str, str]:
    """(lead, body_html, body_text) with a body of 3–5 KB of HTML, of ``pool``'s paragraphs."""
    lead = rng.choice(pool)
    target = rng.randint(3000, 5000)
    html: list[str] = []
    text: list[str] = []
    size = 0
    while size < target:
        kind = rng.random()
        para = rng.choice(pool)
        if kind < 0.1:
            html.append(f"<blockquote><p>“{escape(para)}”</p></blockquote>")
            text.append(f"> “{para}”")
        elif kind < 0.2:
            items = [_sentence(rng, lang) for _ in range(3)]
            html.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
            text.append("\n".join(f"- {i}" for i in items))
        elif kind < 0.25:
            heading = _sentence(rng, lang)[:60].rstrip(".")
            html.append(f"<h2>{escape(heading)}</h2>")
            text.append(f"## {heading}")
        else:
            link = f' <a href="/releases/{slug}">{escape(rng.choice(_WORDS[lang]))}</a>.'
            html.append(f"<p>{escape(para)}{link if kind > 0.9 else ''}</p>")
            text.append(para)
        size += len(html[-1].encode())
    return lead, "\n".join(html), "\n\n".join(text)


def _release_row(
    rng: random.Random, i: int, lang: str, date: datetime, pool: list[str]
) -> dict[str, Any]:
    slug = f"release-{i:05d}-{rng.choice(_WORDS[lang]).lower()}"
    lead, body_html, body_text = _body(rng, lang, slug, pool)
    contacts = list(_CONTACTS[: 2 if i % 2 else 1])
    images = []
    if i % 3 == 0:
        images.append(
            Image(
                src=f"https://media.example.org/{slug}/preview.jpg",
                alt=_sentence(rng, lang),
                credit="Photo: A. Photographer",
                href=f"https://media.example.org/{slug}/hd.jpg",
                type="image/jpeg",
                length=2_400_000 + i,
            ).model_dump()
        )
    attachments = []
    if i % 5 == 0:
        attachments.append(
            Attachment(
                href=f"https://media.example.org/{slug}/backgrounder.pdf",
                title="Backgrounder",
                type="application/pdf",
                length=480_000 + i,
            ).model_dump()
        )
    return {
        "id": i,
        "slug": slug,
        "title": _sentence(rng, lang)[:120].rstrip("."),
        "language": lang,
        "dateline": "PARIS",
        "lead": lead,
        "body_html": body_html,
        "body_text": body_text,
        "date": date,
        "embargo_at": None,
        "contacts": contacts,
        "images": images,
        "attachments": attachments,
        "state": ReleaseState.PUBLISHED.value,
        "translation_of_id": None,
        "created_at": date - timedelta(hours=2),
        "updated_at": date,
        "published_at": date,
        "planned_at": date,
    }


def populate_releases(settings: Settings, count: int, seed: int = 2026) -> Populated:
    """Insert the ten topics and ``count`` published releases into the (migrated, empty)
    database of ``settings``; deterministic for a given ``seed``."""
    rng = random.Random(seed)
    pools = _pools(rng)
    engine = get_engine(settings)
    topic_ids = {slug: n for n, slug in enumerate(TOPICS, start=1)}
    with engine.begin() as conn:
        conn.execute(
            insert(Topic),
            [
                {
                    "id": topic_ids[slug],
                    "slug": slug,
                    "names": {"en": en, "fr": fr},
                    "created_at": _FIRST_DATE,
                }
                for slug, (en, fr) in TOPICS.items()
            ],
        )
    by_language = {"en": 0, "fr": 0}
    translations, body_bytes = 0, 0
    date = _FIRST_DATE
    # Releases 1–6 hours apart (10,000 span four years); more, closer, so that the newest is
    # still in the past and a release published now goes on top, as it does in an office.
    spacing = min(1.0, 10_000 / max(count, 1))
    untranslated: list[tuple[int, list[int]]] = []  # English releases a French one may follow
    for start in range(1, count + 1, _CHUNK):
        rows, links = [], []
        for i in range(start, min(start + _CHUNK, count + 1)):
            date += timedelta(minutes=rng.randint(60, 360) * spacing)
            lang = "fr" if rng.random() < 0.33 else "en"
            row = _release_row(rng, i, lang, date, pools[lang])
            topics = rng.sample(sorted(topic_ids.values()), rng.randint(1, 3))
            if lang == "fr" and untranslated and rng.random() < 0.5:
                original, topics = untranslated.pop()
                row["translation_of_id"] = original
                translations += 1
            elif lang == "en":
                untranslated = [*untranslated[-20:], (i, topics)]
            rows.append(row)
            links += [{"release_id": i, "topic_id": t} for t in topics]
            by_language[lang] += 1
            body_bytes += len(row["body_html"].encode())
        with engine.begin() as conn:
            conn.execute(insert(Release), rows)
            conn.execute(insert(release_topics), links)
    with engine.begin() as conn:
        # The site's change log (migration 0026) of a bulk insert is of no use: the first
        # build reads the catalogue whole. Emptied, as a long-running site's log is kept short.
        if "site_changes" in inspect(conn).get_table_names():
            conn.execute(text("DELETE FROM site_changes"))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # ids were given explicitly: move the sequences on
            for table in ("releases", "topics"):
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
            conn.exec_driver_sql("ANALYZE")
    return Populated(count, by_language, translations, body_bytes / max(count, 1), date)
