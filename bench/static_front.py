"""What one feed request costs in the web app's front (``PublicFiles``), in-process: no
HTTP parsing, no socket, so a change of a microsecond shows, where ``bench/feeds.py``'s
wrk rates vary twofold from run to run on a shared machine.

Run: ``.venv/bin/python bench/static_front.py [--rounds 5] [--requests 20000]``; to compare
with other code, run it with ``PYTHONPATH=<a checkout of it>``. A 200 KB Atom file in a
temp site; the app from ``create_app`` called directly as ASGI, a GET with the file's ETag
(304) and a plain GET (200, identity), ``--requests`` each per round; prints the median of
the rounds with their min and max, in µs a request, and what one ``os.stat`` costs here.
Asserts nothing.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from _report import code_state

from distributor.core.config import load_settings
from distributor.web import create_app

FEED = "feeds/en/releases.atom"


def _scope(etag: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"news.example.org"), (b"accept-encoding", b"identity")]
    if etag is not None:
        headers.append((b"if-none-match", etag))
    return {
        "type": "http", "method": "GET", "path": "/" + FEED, "raw_path": ("/" + FEED).encode(),
        "query_string": b"", "headers": headers, "client": ("127.0.0.1", 50000),
        "scheme": "http", "root_path": "", "http_version": "1.1",
    }  # fmt: skip


async def _measure(rounds: int, requests: int) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="distributor-bench-front-"))
    settings = load_settings(data_dir=work / "var", site_url="https://news.example.org",
                             secret_key="bench-" + "k" * 40, feed_rate_limit=0)  # fmt: skip
    path = settings.public_dir / FEED
    path.parent.mkdir(parents=True)
    path.write_bytes(b"<feed>" + b"<entry>x</entry>" * 12800 + b"</feed>")
    app = create_app(settings)
    seen: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"], seen["headers"] = message["status"], dict(message["headers"])

    await app(_scope(None), receive, send)
    etag = seen["headers"][b"etag"]
    results: dict[str, list[float]] = {"304": [], "200": []}
    for name, scope in (("304", _scope(etag)), ("200", _scope(None))):
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(requests):
                await app(scope, receive, send)
            results[name].append((time.perf_counter() - started) / requests * 1e6)
        assert seen["status"] == int(name), seen["status"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    results = asyncio.run(_measure(args.rounds, args.requests))
    started = time.perf_counter()
    for _ in range(100_000):
        os.stat(sys.executable)
    stat_us = (time.perf_counter() - started) / 100_000 * 1e6
    print(f"code under test: {code_state()}")
    for name, rounds in results.items():
        print(f"{name}: {statistics.median(rounds):.2f} µs a request "
              f"(min {min(rounds):.2f}, max {max(rounds):.2f}; {len(rounds)} rounds)")  # fmt: skip
    print(f"one os.stat here: {stat_us:.2f} µs")


if __name__ == "__main__":
    main()
