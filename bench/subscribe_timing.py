"""Can the subscribe form's timing tell who is subscribed? POSTs to ``/subscribe`` against a
real ``create_app`` served by uvicorn on a loopback port (HTTP keep-alive, as a browser or a
script would), for addresses in every state, and prints per state the median and spread of
the answer time and how often an attacker tells each state from "confirmed" with ten
requests.

Run: ``.venv/bin/python bench/subscribe_timing.py [--posts 300] [--db sqlite|postgresql]``.
Prints figures; asserts nothing. About a minute for 300 posts per state.

States: ``confirmed`` (a confirmed subscriber), ``pending`` (an address that asked before
and was sent its confirmation), ``unknown`` (a fresh address every time), ``unsubscribed``,
``bounced``. The posts of all states are interleaved in a random order, so a drift of the
shared machine's load falls on every state alike.

Distinguishability: the posts of each state are split in two halves. The attacker learns
the median time of each state from the first halves; then, 4,000 times, takes ten posts of
either "confirmed" or the other state from the second halves (each with probability 1/2)
and guesses the one whose learned median is nearer to the ten's median. 50 % is a coin toss
(nothing learned); 100 % tells them apart every time.

Needs Redis at 127.0.0.1:6379 (a database of its own, claimed as the tests claim theirs,
emptied before and after: the tasks the form enqueues pile up there, no worker runs) and,
for ``--db postgresql``, PostgreSQL at 127.0.0.1:5432 with trust auth for ``postgres``.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import os
import random
import re
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from _fixture import broker_url
from _report import code_state, say, table
from _sinks import free_port
from sqlalchemy import create_engine, text

from distributor.audience.subscribers import import_csv
from distributor.core.config import load_settings
from distributor.core.db import dispose_engines, session_scope, upgrade
from distributor.core.models import Subscriber, SubscriberStatus
from distributor.releases.topics import add_topic
from distributor.web import create_app
from tests.redis_db import empty

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
STATES = ("confirmed", "pending", "unknown", "unsubscribed", "bounced")
GROUP = 10  # requests the attacker may send per guess
TRIALS = 4000


def _pg(sql: str) -> None:
    admin = create_engine(PG_SERVER + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def _import(settings: object, rows: list[str], confirmed: bool) -> None:
    import io

    data = "email,name,language,topics\n" + "".join(f"{e},X,en,climate\n" for e in rows)
    with session_scope(settings) as session:  # type: ignore[arg-type]
        import_csv(session, settings, io.StringIO(data), "bench.csv",  # type: ignore[arg-type]
                   confirmed=confirmed, consent_source="bench" if confirmed else "")  # fmt: skip


def prepare(settings: object) -> None:
    """One address per state (the "unknown" ones are made up as the posts go)."""
    with session_scope(settings) as session:  # type: ignore[arg-type]
        add_topic(session, "climate", {"en": "Climate", "fr": "Climat"})
        add_topic(session, "science", {"en": "Science", "fr": "Science"})
    _import(settings, ["confirmed@example.com", "gone@example.com", "bad@example.com"], True)
    with session_scope(settings) as session:  # type: ignore[arg-type]
        for email, status in (("gone@example.com", SubscriberStatus.UNSUBSCRIBED),
                              ("bad@example.com", SubscriberStatus.BOUNCED)):  # fmt: skip
            sub = session.query(Subscriber).filter_by(email=email).one()
            sub.status = status


def address(state: str, n: int) -> str:
    return {
        "confirmed": "confirmed@example.com",
        "pending": "pending@example.com",
        "unknown": f"new{n}@example.com",
        "unsubscribed": "gone@example.com",
        "bounced": "bad@example.com",
    }[state]


def serve(app: object, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                            access_log=False, lifespan="on")  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    return server, thread


def distinguishability(times: dict[str, list[float]], state: str, rng: random.Random) -> float:
    """How often ten posts tell ``state`` from "confirmed" (see the module docstring)."""
    a, b = times["confirmed"], times[state]
    learn_a, test_a = a[: len(a) // 2], a[len(a) // 2 :]
    learn_b, test_b = b[: len(b) // 2], b[len(b) // 2 :]
    med_a, med_b = statistics.median(learn_a), statistics.median(learn_b)
    right = 0
    for _ in range(TRIALS):
        truth = rng.random() < 0.5
        pool = test_a if truth else test_b
        seen = statistics.median(rng.sample(pool, GROUP))
        guess = abs(seen - med_a) <= abs(seen - med_b)
        right += guess == truth
    return right / TRIALS


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=300, help="posts per state")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    broker = broker_url()  # this run's own Redis database (tests/redis_db.py)
    empty(broker)
    data_dir = Path(tempfile.mkdtemp(prefix="distributor-bench-subscribe-"))
    pg_name = f"distributor_bench_{os.getpid()}_subscribe" if args.db == "postgresql" else None
    server = None
    try:
        url, port = None, free_port()  # the site URL is http: the CSRF cookie comes back
        if pg_name:
            _pg(f'CREATE DATABASE "{pg_name}"')
            url = f"{PG_SERVER}/{pg_name}"
        settings = load_settings(
            data_dir=data_dir / "var", database_url=url, broker_url=broker,
            site_url=f"http://127.0.0.1:{port}", sender="Press <press@example.org>",
            secret_key="bench-subscribe-timing-key-0123456789abcdef",  # noqa: S106
            rate_limit_requests=10**9,
        )  # fmt: skip
        upgrade(settings)
        prepare(settings)
        server, thread = serve(create_app(settings), port)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as client:
            form = client.get("/subscribe")
            match = re.search(r'name="csrf" value="([^"]+)"', form.text)
            if match is None:
                raise SystemExit("the subscribe page has no form (no topic?)")
            csrf = match.group(1)

            def post(email: str) -> tuple[float, int, str]:
                data = {"email": email, "name": "Bench", "language": "en",
                        "topics": ["climate"], "csrf": csrf}  # fmt: skip
                start = time.perf_counter()
                answer = client.post("/subscribe", data=data)
                return time.perf_counter() - start, answer.status_code, answer.text

            # pending: asked once, its confirmation claimed; then every path warmed up
            for n, state in enumerate(["pending", *STATES * 6]):
                if post(address(state, 10**6 + n))[1] != 200:
                    raise SystemExit(f"warm-up: {state} refused")
            order = [s for s in STATES for _ in range(args.posts)]
            rng.shuffle(order)
            times: dict[str, list[float]] = {s: [] for s in STATES}
            pages: dict[str, set[str]] = {s: set() for s in STATES}
            say(f"{len(order)} posts, {args.posts} per state, {args.db}, port {port}")
            for n, state in enumerate(order):
                elapsed, status, body = post(address(state, n))
                if status != 200:
                    error = re.findall(r'class="error"[^<]*', body)
                    raise SystemExit(f"{state}: HTTP {status}: {error}")
                times[state].append(elapsed * 1000)
                pages[state].add(body)
        rows = []
        for state in STATES:
            t = sorted(times[state])
            q1, q3 = t[len(t) // 4], t[3 * len(t) // 4]
            told = "—" if state == "confirmed" else f"{distinguishability(times, state, rng):.0%}"
            rows.append([state, f"{statistics.median(t):.2f}", f"{q1:.2f}–{q3:.2f}",
                         f"{statistics.pstdev(t):.2f}", told])  # fmt: skip
        print(f"POST /subscribe on {args.db}, {args.posts} posts per state, code {code_state()}")
        print(table(["state", "median ms", "p25–p75 ms", "stdev ms",
                     f"told from confirmed by {GROUP} posts"], rows))  # fmt: skip
        same = len(set().union(*pages.values())) == 1
        print(f"  answer pages: {'identical for every state' if same else 'DIFFER by state'}")
    finally:
        if server is not None:
            server.should_exit = True
            thread.join(10)
        dispose_engines()
        empty(broker)
        if pg_name:
            _pg(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
