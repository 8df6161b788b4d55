"""The feeds benchmark: how long the static site (newsroom pages and feeds) takes to
regenerate with 10,000 published releases, and how many feed polls a second
``distributor serve`` answers against nginx serving the same file with the production config.

Run: ``.venv/bin/python bench/feeds.py [--releases 10000] [--duration 10] [--skip-wrk]
[--postgresql | --database-url URL]``. Prints figures; asserts nothing. About 3 minutes on 2 cores.

(a) Regeneration: the releases are bulk-inserted into a fresh SQLite database in a temp data
directory (``--postgresql``: a throwaway ``distributor_bench_*`` database on 127.0.0.1,
trust auth for ``postgres``; ``--database-url``: an empty database of yours, left filled).
Then: a full build (``site.builder.build_site(force=True)``); the English sample published
(``create_release`` + ``mark_published``) and the regeneration a worker runs after a publish
(``site.builder.regenerate_site``, incremental, in this process that has built before: it
kept the catalogue and the plan); the same for its French translation; one more regeneration
with nothing new (the fixed cost of finding out there is nothing to do); then the same two
as the first regeneration of a process (``forget_builds``: the catalogue read whole). Then
``distributor site build --force`` as its own process, ``--builds`` times (3): the full
build as a user runs it, rendered on every core (this process's own full build renders in it
alone: it runs a thread), every file written. Peak memory (max RSS) of the processes after
them. ``--releases 100000`` inserts in about a minute.

(b) Polls a second: the live ``feeds/en/releases.atom`` of that site when it weighs
150–300 KB (else a synthetic 200 KB Atom file), served by ``distributor serve`` (its feed poll
limit off: ``DISTRIBUTOR_FEED_RATE_LIMIT=0``) and by ``/usr/sbin/nginx`` running the config
of docker-compose.yml, adapted as tests/test_nginx.py adapts it, without its poll limit
(one client polling as fast as it can is exactly what it refuses; a limit_req rate high
enough never to refuse does not exist: nginx counts requests within one millisecond as
simultaneous) and without an access log. ``wrk -t2 -c32`` for plain GETs (200) and for GETs
with the ETag (304), one server at a time, on this same machine (wrk competes with the server
for the cores).

(c) What counting fetches for the statistics costs (``reporting.counting``): the web app
built twice on the same site, ``DISTRIBUTOR_STATISTICS`` on and off, answers conditional
GETs of the live feed (304) in this process, called as an ASGI app (no network, no client:
the server's own cost), in turn, ``--rounds`` times each (1 s a run); with counting on, its
thread pushes to the run's Redis every second meanwhile. Always run (wrk or not); the
figure to read is the median of the rounds' ratios (each pair measured under one load).

Goals (design, issue 16): the regeneration after a publish in a worker that has built
before under 150 ms at 10,000 releases, under 300 ms at 100,000; the app answers at least 25% of
nginx's rate for 200 and 15% for 304; with counting on, at least 90% of its 304 rate off.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # tests.nginx_conf: the compose nginx config, run locally

import httpx  # noqa: E402
from _feeds_data import Populated, populate_releases  # noqa: E402
from _fixture import SAMPLE, fresh_database, settings_for  # noqa: E402
from _report import children_cpu, code_state, say, table  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from distributor.core.config import Settings, environment_for  # noqa: E402
from distributor.core.db import dispose_engines, session_scope, upgrade  # noqa: E402
from distributor.core.models import Release  # noqa: E402
from distributor.releases.lifecycle import create_release, mark_published  # noqa: E402
from distributor.releases.source import parse_release  # noqa: E402
from distributor.site.builder import (  # noqa: E402
    BuildReport,
    build_site,
    forget_builds,
    regenerate_site,
)
from tests.nginx_conf import NGINX, free_port, running_nginx  # noqa: E402

WRK = Path("/usr/bin/wrk")
DISTRIBUTOR = Path(sys.executable).parent / "distributor"
LIVE_FEED = "feeds/en/releases.atom"
SYNTHETIC_FEED = "feeds/en/synthetic-200k.atom"
SAMPLE_FR = SAMPLE.with_name("climate-agreement.fr.md")  # translates SAMPLE
FEED_SIZE_RANGE = (150 * 1024, 300 * 1024)
# Issue 16: a regeneration after a publish, in a worker that has built before.
GOAL_INCREMENTAL_S = {10_000: 0.150, 100_000: 0.300}
GOAL_FULL_S, GOAL_FULL_RELEASES = 5.0, 10_000  # a full build (issue 16): the command's time
GOAL_200, GOAL_304 = 0.25, 0.15
GOAL_COUNTING = 0.90  # the 304 rate with counting on, as a share of the rate with it off


# --- (a) regeneration ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One timed regeneration: what preceded it, the call, seconds (wall clock, and the
    CPU time of this process and its children: what the load of a shared machine blurs
    least), and what it wrote."""

    name: str
    call: str
    seconds: float
    cpu: float
    files: str
    goal: str = "—"


def _describe(report: BuildReport) -> str:
    return (
        f"{len(report.written):,} written, {report.unchanged:,} unchanged, "
        f"{len(report.removed):,} removed"
    )


def _timed(name: str, call: str, build: Callable[[], BuildReport], goal: float = 0) -> Step:
    # CPU: this process's and its children's (a full build renders in forked children).
    started, cpu_started = time.perf_counter(), time.process_time() + children_cpu()
    report = build()
    seconds = time.perf_counter() - started
    cpu = time.process_time() + children_cpu() - cpu_started
    mark = f"< {goal:g} s {'✓' if seconds < goal else '✗'}" if goal else "—"
    say(f"{name}: {seconds:.2f} s, {cpu:.2f} s CPU ({_describe(report)})")
    return Step(name, call, seconds, cpu, _describe(report), mark)


def _publish(settings: Settings, sample: Path, n: int = 0) -> None:
    """Create and publish a sample release, as ``distributor publish FILE.md`` does (minus
    waking the workers: the benchmark runs their regeneration itself); the ``n``-th time
    (after the first), its slug ends with ``-n``."""
    text = sample.read_text()
    if n:
        text = re.sub(r"(?m)^slug: (.*)$", rf"slug: \1-{n}", text, count=1)
    draft = parse_release(text, str(sample), settings)
    with session_scope(settings) as session:
        release_id = create_release(session, settings, draft).id
    with session_scope(settings) as session:
        mark_published(session, release_id)


def _command_builds(settings: Settings, runs: int, releases: int) -> Step:
    """``distributor site build --force`` run ``runs`` times as its own process, as a user
    runs it (the build this process runs renders in it alone: its Redis claim is a thread,
    and a process running other threads never forks renderers). Every run writes every file:
    the runs alternate between the site URL and the same with the next port, so every page
    and feed changes (as after a template change), and the site is left as it was. Seconds
    and CPU are the medians of the whole processes (start-up included); the build's own
    time, printed by the command, is in the files column with how many processes rendered."""
    parts = urlsplit(settings.site_url)
    port = (parts.port or (443 if parts.scheme == "https" else 80)) + 1
    moved = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{port}"))
    env = {**environment_for(settings, os.environ), "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "distributor.cli", "site", "build", "--force"]
    walls, cpus, builds, said = [], [], [], ""
    for n in range(runs + runs % 2):  # an even number: the last puts the site URL back
        site_url = moved if n % 2 == 0 else settings.site_url
        cpu_started, started = children_cpu(), time.perf_counter()
        done = subprocess.run(argv, env={**env, "DISTRIBUTOR_SITE_URL": site_url},
                              capture_output=True, text=True, check=True)  # fmt: skip
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu_started
        found = re.search(r"(\d[\d,]*) written.*\(([\d.]+) s(?:, (\d+) processes)?", done.stdout)
        if found is None:
            raise RuntimeError(f"unexpected output of {' '.join(argv)}: {done.stdout!r}")
        if n == runs:
            break  # the site URL put back: not timed
        walls.append(wall)
        cpus.append(cpu)
        builds.append(float(found.group(2)))
        said = f"{found.group(1)} written by {found.group(3) or 1} process(es)"
        say(f"site build --force, run {n + 1} of {runs}: {wall:.2f} s, build {builds[-1]:.2f} s")
    build = f"{statistics.median(builds):.2f} s ({min(builds):.2f}–{max(builds):.2f})"
    mark = "—"
    if releases <= GOAL_FULL_RELEASES:
        mark = f"< {GOAL_FULL_S:g} s {'✓' if statistics.median(builds) < GOAL_FULL_S else '✗'}"
    return Step(
        f"full build, the command (median of {runs})",
        "distributor site build --force",
        statistics.median(walls),
        statistics.median(cpus),
        f"build {build}, {said}",
        mark if mark == "—" else f"build {mark}",
    )


def regeneration(
    settings: Settings, releases: int, command_runs: int = 3
) -> tuple[Populated, float, list[Step]]:
    """Fill the database with ``releases`` published releases, then time a full build, the
    regeneration a worker runs after each of two publishes (the English sample, then its
    French translation), and one with nothing new. Returns what was inserted, the seconds
    inserting took, and the timed steps."""
    with session_scope(settings) as session:
        existing = session.scalar(select(func.count()).select_from(Release))
    if existing:
        raise SystemExit(f"the database already holds {existing:,} releases; give an empty one")
    say(f"inserting {releases:,} published releases")
    started = time.perf_counter()
    populated = populate_releases(settings, releases)
    insert_s = time.perf_counter() - started
    worker = "builder.regenerate_site"
    at_most = [n for n in GOAL_INCREMENTAL_S if n >= releases]
    goal = GOAL_INCREMENTAL_S[min(at_most)] if at_most else 0
    steps = [
        _timed("full build", "build_site(force=True)", lambda: build_site(settings, force=True))
    ]
    for sample in (SAMPLE, SAMPLE_FR):
        _publish(settings, sample)
        lang = "English" if sample is SAMPLE else "its French translation"
        steps.append(
            _timed(
                f"after publishing {lang}",
                worker,
                lambda: regenerate_site(settings),
                goal,
            )
        )
    steps.append(_timed("nothing new", worker, lambda: regenerate_site(settings)))
    # The same in a worker that has not built before (it reads the catalogue whole).
    forget_builds()
    steps.append(
        _timed("nothing new, first in its process", worker, lambda: regenerate_site(settings))
    )
    forget_builds()
    _publish(settings, SAMPLE, 1)
    steps.append(
        _timed("after publishing, first in its process", worker, lambda: regenerate_site(settings))
    )
    if command_runs:  # last: another process's build would make this one's state stale
        steps.append(_command_builds(settings, command_runs, releases))
    return populated, insert_s, steps


def regeneration_table(
    populated: Populated, insert_s: float, steps: list[Step], backend: str
) -> str:
    """The regeneration figures, with the goal for the incremental ones."""
    p = populated
    intro = (
        f"{p.releases:,} published releases on {backend} ({p.by_language['en']:,} English, "
        f"{p.by_language['fr']:,} French of which {p.translations:,} translations; body HTML "
        f"{p.mean_body_bytes / 1024:.1f} KB on average), inserted in {insert_s:.1f} s"
    )
    rows = [[s.name, s.call, f"{s.seconds:.3f}", f"{s.cpu:.3f}", s.files, s.goal] for s in steps]
    figures = table(["regeneration", "call", "seconds", "CPU s", "files", "goal"], rows)
    full, publishes = steps[0].seconds, [s.seconds for s in steps[1:3]]
    ratios = ", ".join(f"{full / s:,.0f}×" for s in publishes)
    return f"{intro}\n\n{figures}\n\n  full build ÷ regeneration after one publish: {ratios}"


# --- (b) polls a second ----------------------------------------------------------------------


def feed_to_poll(settings: Settings) -> tuple[str, int, str]:
    """(path below public/, size, what it is): the live English Atom feed if it weighs
    150–300 KB, else a synthetic 200 KB Atom file written next to it."""
    live = settings.public_dir / LIVE_FEED
    if live.is_file() and FEED_SIZE_RANGE[0] <= live.stat().st_size <= FEED_SIZE_RANGE[1]:
        return LIVE_FEED, live.stat().st_size, "the live feed"
    entry = (
        "<entry><id>tag:news.example.org,2026:{n}</id><title>Release {n}</title>"
        '<updated>2026-11-20T09:00:00Z</updated><content type="html">{body}</content></entry>'
    )
    body = "&lt;p&gt;" + "Agency data climate record monitoring programme. " * 80 + "&lt;/p&gt;"
    entries: list[str] = []
    while sum(len(e) for e in entries) < 200 * 1024:
        entries.append(entry.format(n=len(entries), body=body))
    data = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        + "".join(entries)
        + "</feed>\n"
    ).encode()
    path = settings.public_dir / SYNTHETIC_FEED
    path.write_bytes(data)
    why = "not built" if not live.is_file() else f"{live.stat().st_size / 1024:.0f} KB"
    return SYNTHETIC_FEED, len(data), f"a synthetic Atom file (the live feed: {why})"


def serve_options() -> set[str]:
    """The long options ``distributor serve`` accepts today."""
    out = subprocess.run(
        [str(DISTRIBUTOR), "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    return set(re.findall(r"--[a-z][a-z-]+", out.stdout))


@contextmanager
def running_app(settings: Settings, log: Path, workers: int | None) -> Iterator[str]:
    """``distributor serve`` on a free port (``--workers`` when given), its feed poll limit
    off; yields its base URL once it answers."""
    port = free_port()
    env = {**environment_for(settings, os.environ), "DISTRIBUTOR_FEED_RATE_LIMIT": "0"}
    args = [str(DISTRIBUTOR), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers is not None:
        args += ["--workers", str(workers)]
    base = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"distributor serve exited:\n{log.read_text()[-2000:]}")
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise SystemExit("distributor serve did not answer within 60 s") from None
                time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: requests a second, and what went wrong (if anything)."""

    rate: float
    latency: str
    problems: str


def run_wrk(url: str, duration: int, headers: dict[str, str]) -> WrkResult:
    """``wrk -t2 -c32 -dDURATIONs`` on ``url`` with ``headers``."""
    args = [str(WRK), "-t2", "-c32", f"-d{duration}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    latency = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    problems = [
        f"{m.group(1)} non-2xx/3xx" for m in re.finditer(r"Non-2xx or 3xx responses: (\d+)", out)
    ]
    problems += [f"socket errors ({m.group(1)})" for m in re.finditer(r"Socket errors: (.*)", out)]
    return WrkResult(
        float(rate.group(1)) if rate else float("nan"),
        latency.group(1) if latency else "?",
        "; ".join(problems) or "none",
    )


@dataclass(frozen=True)
class Served:
    """What one server answered for the feed: its ETag and the rates for 200 and 304."""

    name: str
    etag: str
    ok: WrkResult
    not_modified: WrkResult


def measure(name: str, url: str, size: int, duration: int) -> Served:
    """Check that ``url`` answers the whole file and a 304 for its ETag, then run wrk for
    plain GETs and for conditional ones."""
    plain = httpx.get(url, headers={"Accept-Encoding": "identity"}, timeout=10)
    if plain.status_code != 200 or len(plain.content) != size:
        raise SystemExit(f"{name}: {plain.status_code}, {len(plain.content):,} bytes, not the feed")
    etag = plain.headers["etag"]
    again = httpx.get(url, headers={"If-None-Match": etag, "Accept-Encoding": "identity"})
    if again.status_code != 304:
        raise SystemExit(f"{name}: If-None-Match with its own ETag gave {again.status_code}")
    say(f"{name}: wrk 200 for {duration} s")
    ok = run_wrk(url, duration, {})
    say(f"{name}: wrk 304 for {duration} s")
    not_modified = run_wrk(url, duration, {"If-None-Match": etag})
    say(f"{name}: {ok.rate:,.0f}/s (200), {not_modified.rate:,.0f}/s (304)")
    return Served(name, etag, ok, not_modified)


def polls_table(app: Served, nginx: Served, feed: str, size: int, how: str) -> str:
    """Requests a second for both servers and the app's share of nginx's rate."""
    rows = [
        [
            s.name,
            f"{s.ok.rate:,.0f}",
            s.ok.latency,
            f"{s.not_modified.rate:,.0f}",
            s.not_modified.latency,
            s.ok.problems
            if s.ok.problems == s.not_modified.problems
            else f"{s.ok.problems} / {s.not_modified.problems}",
        ]
        for s in (app, nginx)
    ]
    share_200 = app.ok.rate / nginx.ok.rate
    share_304 = app.not_modified.rate / nginx.not_modified.rate
    rows.append(
        [
            "app ÷ nginx",
            f"{share_200:.2f} {'✓' if share_200 >= GOAL_200 else '✗'}",
            "",
            f"{share_304:.2f} {'✓' if share_304 >= GOAL_304 else '✗'}",
            "",
            "",
        ]
    )
    rows.append(["goal", f"≥ {GOAL_200:.2f}", "", f"≥ {GOAL_304:.2f}", "", ""])
    intro = f"/{feed}: {size / 1024:.0f} KB, {how}; wrk -t2 -c32, no Accept-Encoding"
    headers = ["server", "200 req/s", "p50", "304 req/s", "p50", "errors"]
    return f"{intro}\n\n{table(headers, rows)}"


def polls(settings: Settings, work: Path, duration: int, workers: int | None) -> str:
    """Part (b): both servers on the same file, one after the other."""
    feed, size, what = feed_to_poll(settings)
    options = serve_options()
    if "--workers" not in options:
        workers = None
    how = f"distributor serve --workers {workers}" if workers else "distributor serve (1 process)"
    say(f"polls: /{feed} ({size / 1024:.0f} KB, {what}); app: {how}")
    with ExitStack() as stack:
        app_base = stack.enter_context(running_app(settings, work / "serve.log", workers))
        app = measure("distributor serve", f"{app_base}/{feed}", size, duration)
        nginx_server = stack.enter_context(
            running_nginx(
                work / "nginx",
                public_dir=settings.public_dir,
                upstream=app_base.removeprefix("http://"),
                site_url=settings.site_url,
                poll_limit=False,
            )
        )
        nginx = measure("nginx", f"{nginx_server.base_url}/{feed}", size, duration)
    version = subprocess.run([str(NGINX), "-v"], capture_output=True, text=True).stderr.strip()
    note = (
        f"  app: {how}, DISTRIBUTOR_FEED_RATE_LIMIT=0; nginx: {version.split(': ')[-1]}, "
        "the compose config (worker_processes auto) without its poll limit and access log"
    )
    return f"{polls_table(app, nginx, feed, size, what)}\n\n{note}"


# --- (c) the cost of counting ------------------------------------------------------------


async def _asgi_rate(app: Callable[..., object], path: str, etag: str, seconds: float) -> float:
    """304s a second ``app`` answers for ``path`` with ``etag``, called for ``seconds``."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"news.example.org"), (b"if-none-match", etag.encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    statuses: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(int(str(message["status"])))

    n, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(1000):
            await app(dict(scope), receive, send)  # type: ignore[misc]
        n += 1000
        if time.perf_counter() >= deadline:
            break
    rate = n / (time.perf_counter() - started)
    if set(statuses) != {304}:
        raise SystemExit(f"counting cost: statuses {sorted(set(statuses))}, not only 304")
    return rate


def counting_cost(settings: Settings, rounds: int, seconds: float) -> str:
    """Part (c): the 304 rate in this process with counting off and on, in turn."""
    from distributor.core.broker import broker_url, redis_client
    from distributor.reporting.counting import KEY_PREFIX
    from distributor.web import create_app

    feed, _size, _what = feed_to_poll(settings)
    path = "/" + feed
    apps = {
        "off": create_app(settings.model_copy(update={"statistics": False, "feed_rate_limit": 0})),
        "on": create_app(settings.model_copy(update={"statistics": True, "feed_rate_limit": 0})),
    }
    rates: dict[str, list[float]] = {"off": [], "on": []}
    client = redis_client(broker_url(settings))
    for key in client.scan_iter(match=KEY_PREFIX + "*"):  # an earlier run's
        client.delete(key)

    async def run() -> None:
        probe = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps["off"]))
        async with probe:
            got = await probe.get(f"http://news.example.org{path}")
        etag = got.headers["etag"]
        for name in ("off", "on"):  # warm: the file cached, the pushing thread started
            await _asgi_rate(apps[name], path, etag, 0.5)
        for i in range(rounds):
            for name in ("off", "on") if i % 2 == 0 else ("on", "off"):
                rates[name].append(await _asgi_rate(apps[name], path, etag, seconds))
                say(f"counting {name}: {rates[name][-1]:,.0f} 304/s")

    asyncio.run(run())
    counter = apps["on"].state.counter
    counter.close()
    pushed = 0
    try:
        for key in list(client.scan_iter(match=KEY_PREFIX + "*")):
            pushed += sum(int(v) for v in client.hgetall(key).values())
            client.delete(key)  # the claimed database is left as found
    finally:
        client.close()
    # Each round's on ÷ off: the two measured a second apart, under the same load from
    # the rest of the machine (which moves the rates themselves by 2x within a minute).
    ratios = [on / off for on, off in zip(rates["on"], rates["off"], strict=True)]
    share = statistics.median(ratios)
    rows = [
        [name, f"{statistics.median(r):,.0f}", f"{min(r):,.0f}", f"{max(r):,.0f}"]
        for name, r in (("counting off", rates["off"]), ("counting on", rates["on"]))
    ]
    rows.append(
        [
            "on ÷ off, per round",
            f"{share:.2f} {'✓' if share >= GOAL_COUNTING else '✗'}",
            f"{min(ratios):.2f}",
            f"{max(ratios):.2f}",
        ]
    )
    rows.append(["goal", f"≥ {GOAL_COUNTING:.2f}", "", ""])
    intro = (
        f"{path}: 304s a second in this process (ASGI calls, no network), {rounds} rounds of "
        f"{seconds:.1f} s each way, in turn; {pushed:,} fetches counted in Redis"
    )
    headers = ["", "median 304/s", "min", "max"]
    return f"{intro}\n\n{table(headers, rows)}"


# --- main --------------------------------------------------------------------------------------


@contextmanager
def database(args: argparse.Namespace) -> Iterator[tuple[Settings, str]]:
    """Settings for the database the run fills, and a name for it."""
    if args.database_url:
        work = Path(tempfile.mkdtemp(prefix="distributor-bench-feeds-"))
        try:
            settings = settings_for(work / "var", args.database_url, "smtp://127.0.0.1:2525")
            upgrade(settings)
            yield settings, args.database_url.split("://", 1)[0]
        finally:
            dispose_engines()
            shutil.rmtree(work, ignore_errors=True)
        return
    backend = "postgresql" if args.postgresql else "sqlite"
    with fresh_database(backend, "smtp://127.0.0.1:2525", "feeds") as settings:
        yield settings, backend


def _on_sigterm(_signo: int, _frame: object) -> NoReturn:
    raise SystemExit(143)  # run the finally blocks: stop every process, drop the database


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=10_000, help="published releases")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--skip-wrk", action="store_true", help="no wrk runs (b)")
    parser.add_argument("--rounds", type=int, default=15, help="rounds of (c), on and off")
    parser.add_argument(
        "--builds", type=int, default=3, help="runs of `distributor site build --force` (a)"
    )
    parser.add_argument(
        "--app-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="distributor serve --workers (default: one per core, like nginx's)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgresql", action="store_true", help="a throwaway PostgreSQL db")
    where.add_argument("--database-url", help="an empty database to fill (left filled)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    if not args.skip_wrk and not (WRK.exists() and NGINX.exists()):
        parser.error(f"{WRK} and {NGINX} are needed (Debian: wrk, nginx-light); or --skip-wrk")

    started, load_before = time.perf_counter(), os.getloadavg()[0]
    code_before = code_state()
    out = []
    with database(args) as (settings, backend):
        populated, insert_s, steps = regeneration(settings, args.releases, args.builds)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # The commands' full builds (their processes, and the renderers they fork).
        forked_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        out += ["(a) regeneration", "", regeneration_table(populated, insert_s, steps, backend)]
        out += [
            f"  peak memory (max RSS) after the regenerations: {peak:,.0f} MB in this process, "
            f"{forked_peak:,.0f} MB in the largest child process (`site build`'s and its renderers)"
        ]
        if not args.skip_wrk:
            work = Path(tempfile.mkdtemp(prefix="distributor-bench-feeds-run-"))
            try:
                out += [
                    "",
                    "(b) feed polls a second",
                    "",
                    polls(settings, work, args.duration, args.app_workers),
                ]
            finally:
                shutil.rmtree(work, ignore_errors=True)
        out += [
            "",
            "(c) the cost of counting fetches (statistics)",
            "",
            counting_cost(settings, args.rounds, 1.0),
        ]
    print(
        f"distributor feeds benchmark — {os.cpu_count()} cores, "
        f"{time.perf_counter() - started:.0f} s in all, load average {load_before:.1f} at the "
        f"start and {os.getloadavg()[0]:.1f} at the end (other work on the machine skews both "
        "servers' rates; the ratios hold better)"
    )
    print(f"code under test: {code_before}")
    if code_state() != code_before:
        print(f"WARNING: the code changed during the run; now {code_state()}")
    print()
    print("\n".join(out))


if __name__ == "__main__":
    main()
