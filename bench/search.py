"""The search benchmark: how long the newsroom's search (``releases.search.search``, and the
whole ``GET /search`` page) takes with 10,000 published releases, on SQLite and PostgreSQL.

Run: ``.venv/bin/python bench/search.py [--releases 10000] [--runs 3] [--repeat 15]
[--backend sqlite|postgresql|both]``. Prints figures; asserts nothing. About 2 minutes.

Data: bench/_feeds_data.py's releases (3–5 KB bodies, a third French, 1–3 of ten topics
each), indexed by the migration's triggers as they are inserted. Their vocabulary is small
(about 35 words a language), so a common word is in most releases of its language: the
worst case for ranking, which scores every match. A rare word is then written into one
release in 500 (``UPDATE``: the triggers index it again).

Each run asks every query kind ``--repeat`` times after one warm-up; a kind's figures are
its median and 95th percentile within a run, then the median of the runs' medians with
their min and max. Goal: under 50 ms a search.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _feeds_data import populate_releases
from _fixture import fresh_database
from _report import code_state, say, table
from fastapi.testclient import TestClient
from sqlalchemy import update

from distributor.core.config import Settings
from distributor.core.db import get_engine, read_scope
from distributor.core.models import Release
from distributor.releases.search import search
from distributor.web.app import create_app

GOAL_MS = 50.0
RARE = "zeppelin"
RARE_EVERY = 500


@dataclass(frozen=True)
class Kind:
    """One kind of query: its name, and the search() arguments."""

    name: str
    query: str
    lang: str | None = None
    topic: str | None = None
    page: int = 1


KINDS = (
    Kind("common word", "agency"),
    Kind("common word, French only", "satellite", lang="fr"),
    Kind("rare word", RARE),
    Kind("two words", "satellite calibration"),
    Kind("common word, one topic", "mission", topic="oceans"),
    Kind("common word, lang + topic", "budget", lang="en", topic="energy"),
    Kind("common word, page 5", "mission", page=5),
    Kind("accents folded (étalonnage)", "etalonnage"),
    Kind("no match", "unicorn"),
)
PAGE = "GET /search page, common word"


def add_rare_word(settings: Settings) -> int:
    """Write ``RARE`` into the body of one release in ``RARE_EVERY``; how many."""
    with get_engine(settings).begin() as conn:
        done = conn.execute(
            update(Release)
            .where(Release.id % RARE_EVERY == 0)
            .values(body_text=Release.body_text + f" The {RARE} is back.")
        )
    return done.rowcount


def timings(settings: Settings, kind: Kind, repeat: int) -> tuple[list[float], int]:
    """``repeat`` timings of ``kind`` in ms (after a warm-up), and how many it found."""
    with read_scope(settings) as session:
        total = search(session, kind.query, kind.lang, kind.topic, kind.page).total
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            search(session, kind.query, kind.lang, kind.topic, kind.page)
            times.append((time.perf_counter() - started) * 1000)
    return times, total


def page_timings(client: TestClient, repeat: int) -> list[float]:
    """``repeat`` timings in ms of the whole search page (in process, no network)."""
    client.get("/search", params={"q": "agency"})
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get("/search", params={"q": "agency", "lang": "en"})
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200
    return times


def p95(values: list[float]) -> float:
    return sorted(values)[max(round(0.95 * len(values)) - 1, 0)]


def bench(backend: str, releases: int, runs: int, repeat: int) -> None:
    with fresh_database(backend, "smtp://127.0.0.1:9", f"search-{backend}") as settings:
        say(f"{backend}: inserting {releases:,} published releases (indexed by the triggers)")
        started = time.perf_counter()
        populate_releases(settings, releases)
        rare = add_rare_word(settings)
        say(f"{backend}: inserted and indexed in {time.perf_counter() - started:.1f} s")
        medians: dict[str, list[float]] = {k.name: [] for k in KINDS}
        medians[PAGE] = []
        p95s: dict[str, list[float]] = {name: [] for name in medians}
        found: dict[str, int] = {}
        with TestClient(create_app(settings)) as client:
            for run in range(1, runs + 1):
                for kind in KINDS:
                    times, found[kind.name] = timings(settings, kind, repeat)
                    medians[kind.name].append(statistics.median(times))
                    p95s[kind.name].append(p95(times))
                times = page_timings(client, repeat)
                medians[PAGE].append(statistics.median(times))
                p95s[PAGE].append(p95(times))
                say(f"{backend}: run {run} of {runs} done")
        found[PAGE] = found["common word"]
        rows = []
        for name, values in medians.items():
            median = statistics.median(values)
            rows.append(
                [
                    name,
                    f"{found[name]:,}",
                    f"{median:.1f}",
                    f"{min(values):.1f}–{max(values):.1f}",
                    f"{statistics.median(p95s[name]):.1f}",
                    "✓" if median < GOAL_MS else "✗",
                ]
            )
        print(
            f"\n{backend}: {releases:,} releases ({rare} with the rare word), "
            f"{runs} runs × {repeat} searches a kind; ms"
        )
        headers = ["query kind", "found", "median", "min–max of runs", "p95", "< 50"]
        print(table(headers, rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    print(f"code: {code_state()}; {time.strftime('%Y-%m-%d %H:%M')}")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    for backend in backends:
        bench(backend, args.releases, args.runs, args.repeat)


if __name__ == "__main__":
    main()
