"""bench/pipeline.py's own promises (issue 16): runs repeated in alternation and reported as
median (min–max), goals as ratios to ceilings measured in the same run, the private Postfix
it sends through (a real one: Debian's package) leaving the machine's own alone, and the
population of a million subscribers by COPY giving the rows a CSV import would store."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Subscriber

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))
from _report import spread  # noqa: E402

with mock.patch.dict(os.environ):  # pipeline.py drops every DISTRIBUTOR_* variable it sees
    import pipeline
from _run import RunResult  # noqa: E402


def test_configurations_alternate_run_by_run() -> None:
    assert pipeline.schedule(["A", "B"], 3) == ["A", "B", "A", "B", "A", "B"]
    assert pipeline.schedule(["A", "B"], 1) == ["A", "B"]


def test_repeated_figures_read_as_median_min_max() -> None:
    assert spread([1200.0, 900.0, 1000.0]) == "1,000 (900–1,200)"
    assert spread([0.25, 0.5], 2) == "0.38 (0.25–0.50)"
    assert spread([7.0]) == "7"
    assert spread([float("nan"), 3.0, 1.0]) == "2 (1–3)"  # a run that could not measure it
    assert spread([float("nan")]) == "–"


def _result(label: str, rate: float, cpu: float = 0.1) -> RunResult:
    r = RunResult(label, 1000, planned=1000, statuses={"sent": 1000}, at_sink=1000)
    r.complete, r.rate, r.worker_cpu_per_1k, r.first_s = True, rate, cpu, 0.5
    r.signed = label.endswith("/dkim")
    return r


def _row(text: str, label: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(label + " "))


def test_goals_are_ratios_to_this_runs_ceilings_one_row_per_configuration() -> None:
    results = [
        _result("sqlite/2/smtp-sink", 9_000),
        _result("sqlite/2/postfix", 450),
        _result("sqlite/2/smtp-sink", 8_000, cpu=0.3),
        _result("sqlite/2/postfix", 400),
        _result("sqlite/2/smtp-sink", 11_000),
        _result("sqlite/2/postfix", 500),
    ]
    ceiling = {
        "smtp-sink": pipeline.Ceiling(10_000, "pipelined, 2 connection(s)"),
        "postfix": pipeline.Ceiling(500, "smtp-source, 2 sessions"),
    }
    text = pipeline.goals_table(results, ceiling)
    assert len(text.splitlines()) == 4  # headers, rule, one row per configuration
    sink = _row(text, "sqlite/2/smtp-sink")
    assert "9,000 (8,000–11,000)" in sink and "10,000 (pipelined" in sink
    assert "0.90 (0.80–1.10) ≥0.8 ✓" in sink
    assert "0.100 (0.100–0.300) ✓" in sink  # the median: one slow run does not fail it
    postfix = _row(text, "sqlite/2/postfix")
    assert "0.90 (0.80–1.00) ≥0.9 ✓" in postfix
    text = pipeline.goals_table(results[:2], {**ceiling, "postfix": pipeline.Ceiling(600, "")})
    assert "0.75 ≥0.9 ✗" in _row(text, "sqlite/2/postfix")


def test_signed_runs_are_compared_with_their_twin_of_the_same_repetition() -> None:
    results = [
        _result("sqlite/2/smtp-sink", 2_000),
        _result("sqlite/2/smtp-sink/dkim", 1_800),
        _result("sqlite/2/smtp-sink", 1_000),  # a slow spell: both of this repetition slow
        _result("sqlite/2/smtp-sink/dkim", 900),
    ]
    row = _row(pipeline.signing_table(results), "sqlite/2/smtp-sink")
    assert "0.90 ✓" in row  # 1,800 ÷ 2,000 and 900 ÷ 1,000, not 900 ÷ 2,000
    results[3].rate = 800
    row = _row(pipeline.signing_table(results), "sqlite/2/smtp-sink")
    assert "0.85 (0.80–0.90) ✓" in row


@pytest.mark.needs("postfix")
def test_the_private_postfix_relays_everything_to_its_sink_and_goes_away() -> None:
    """What smtp-source hands the bench's Postfix all reaches the smtp-sink behind it; the
    instance's files live in a directory of its own, gone after stop(), with its processes;
    the system's Postfix configuration is never written."""
    from _relay import PostfixRelay, smtp_source

    system_main_cf = Path("/etc/postfix/main.cf")
    before = system_main_cf.stat().st_mtime if system_main_cf.exists() else None
    relay = PostfixRelay({"in_flow_delay": "0"})
    try:
        root = relay.postfix.root
        assert not root.is_relative_to("/etc") and relay.port != 25
        assert relay.settings()["in_flow_delay"] == "0"
        master = [p for p in relay.processes() if p.name() == "master"]
        assert master, "Postfix's master is counted as the sink's CPU"
        run = smtp_source(relay, sessions=2, count=200, size=10_000)
        assert run.arrived == 200 and relay.count() == 200
        assert run.rate > 0 and run.accepted_s <= run.arrived_s + 0.1
    finally:
        relay.stop()
    assert not root.exists()
    assert not any(p.is_running() for p in master)
    after = system_main_cf.stat().st_mtime if system_main_cf.exists() else None
    assert after == before


@pytest.fixture
def bench_database(request: pytest.FixtureRequest) -> Iterator[Settings]:
    from _fixture import fresh_database

    with fresh_database(request.param, "smtp://127.0.0.1:25", "test") as settings:
        yield settings


@pytest.mark.parametrize("bench_database", ["sqlite", "postgresql"], indirect=True)
def test_the_bench_population_is_what_a_confirmed_import_stores(
    bench_database: Settings,
) -> None:
    """The same subscribers whichever way they are written (COPY on PostgreSQL, an insert
    on SQLite), with every default the ORM would give them: a distinct link nonce each."""
    from _fixture import populate

    populate(bench_database, 25)
    with session_scope(bench_database) as session:
        rows = session.scalars(select(Subscriber).order_by(Subscriber.id)).all()
        assert [r.email for r in rows] == [
            f"journalist{i}@newsroom{i % 97}.example.com" for i in range(25)
        ]
        assert rows[10].name == "Jérôme Journalist 10" and rows[11].name == "Journalist 11"
        assert {(r.status, r.language, r.digest, r.soft_bounces) for r in rows} == {
            ("confirmed", "en", "immediate", 0)
        }
        assert len({r.link_nonce for r in rows}) == 25 and all(r.link_nonce for r in rows)
        assert all(r.confirmed_at and r.confirmed_at.tzinfo for r in rows)
        assert all([t.slug for t in r.topics] == ["climate"] for r in rows)
