"""What the personal links cost on the send path: claiming a batch of ledger rows (the
query that fetches who each row goes to, and since the link nonce, that nonce) and making
each message's two signed links (unsubscribe, preferences), in-process on a real database —
no SMTP, no worker. Then the token alone, id-only against id + nonce, alternating in the
same process (the ratio is what to read on a shared machine).

Run: ``.venv/bin/python bench/links.py [--subscribers 20000] [--db sqlite|postgresql]``.
Prints the median of 5 rounds with min and max; asserts nothing. ~30 s on SQLite.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import statistics
import time
from collections.abc import Callable

from _fixture import fresh_database, populate
from _report import code_state, say, table
from sqlalchemy import text

from distributor.core.db import get_engine, session_scope
from distributor.core.models import Release
from distributor.core.tokens import Purpose, make_token
from distributor.outbox.ledger import Claimed, claim, plan, recipient
from distributor.releases.lifecycle import mark_published

ROUNDS = 5
BATCH = 500


def recipients(settings: object, rows: list[Claimed]) -> None:
    """The send loop's per-message link work (ledger.recipient for every row)."""
    for row in rows:
        recipient(settings, row)  # type: ignore[arg-type]


def spread(samples: list[float], unit: float) -> list[str]:
    return [f"{statistics.median(samples) * unit:.2f}", f"{min(samples) * unit:.2f}",
            f"{max(samples) * unit:.2f}"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=20_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with fresh_database(args.db, "smtp://127.0.0.1:1", "links") as settings:
        data = populate(settings, args.subscribers)
        with session_scope(settings) as session:
            mark_published(session, data.release_id)
            release = session.get_one(Release, data.release_id)
            plan(session, release)
        engine = get_engine(settings)
        claims: list[float] = []
        links: list[float] = []
        for n in range(ROUNDS):
            say(f"round {n + 1}/{ROUNDS}")
            with engine.begin() as conn:  # every row due and unleased again
                conn.execute(text("UPDATE deliveries SET lease_until = NULL, lease_token = NULL"))
            took, count, batches = 0.0, 0, []
            while True:
                start = time.perf_counter()
                batch = claim(engine, settings, data.release_id, BATCH)
                took += time.perf_counter() - start
                if not batch.rows:
                    break
                batches.append(batch.rows)
                count += len(batch.rows)
            claims.append(took / count)
            timer: Callable[[], float] = time.perf_counter
            start = timer()
            for rows in batches:
                recipients(settings, rows)
            links.append((timer() - start) / count)
        plain, nonced = token_rounds(settings)
        print(f"{args.subscribers} rows on {args.db}, batches of {BATCH}, code {code_state()}")
        print(table(["per message", "median µs", "min", "max"], [
            ["claim (lease + who)", *spread(claims, 1e6)],
            ["two signed links", *spread(links, 1e6)],
            ["one token, id only", *spread(plain, 1e6)],
            ["one token, id + nonce", *spread(nonced, 1e6)],
        ]))  # fmt: skip
        ratio = statistics.median(n / p for n, p in zip(nonced, plain, strict=True))
        print(f"  id + nonce / id only, same rounds: {ratio:.2f}")


def token_rounds(settings: object, rounds: int = 20, n: int = 20_000) -> tuple[list[float], ...]:
    """Seconds per token, id-only and with a nonce, in alternating rounds."""
    plain: list[float] = []
    nonced: list[float] = []
    nonce = "kF3dQ0vX7pYcZ2aB"  # 16 characters, as models.new_nonce makes them
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(n):
            make_token(settings, Purpose.UNSUBSCRIBE, i)  # type: ignore[arg-type]
        plain.append((time.perf_counter() - start) / n)
        start = time.perf_counter()
        for i in range(n):
            make_token(settings, Purpose.UNSUBSCRIBE, i, nonce=nonce)  # type: ignore[arg-type]
        nonced.append((time.perf_counter() - start) / n)
    return plain, nonced


if __name__ == "__main__":
    main()
