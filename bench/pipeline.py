"""End-to-end delivery throughput: publish → distribute_release → send_batch → ledger, with real
``distributor worker`` processes, Redis, SQLite or PostgreSQL, and an SMTP sink or a real
Postfix relay — against the sink's own pipelined ceiling, Postfix's own ceiling and a naive
per-message pipeline, measured in the same run.

Run: ``.venv/bin/python bench/pipeline.py [--subscribers 100000] [--repeat 3] [--quick]``.
Prints figures; asserts nothing. Each configuration runs ``--repeat`` times (default 3; 1 with
``--quick``), the configurations alternating (A B A B …, so a slow spell of the shared machine
falls on all of them), and every table gives median (min–max) over the runs, one row per
configuration. ``--quick`` (10,000 subscribers, five configurations, one run each) takes 2–3
minutes; the default (100,000 subscribers, nine configurations, three runs each) about 40
minutes on 2 cores. Extras: ``--cprofile N`` (send_batch under cProfile, in-process),
``--py-spy PATH`` (an extra, profiled run of one configuration; ``pip install --target
/tmp/pyspy py-spy`` provides one), ``--postfix-setting NAME=VALUE`` (main.cf of the private
Postfix, repeatable). A million subscribers: ``--subscribers 1000000 --configs
postgresql/2/smtp-sink --repeat 1`` (the population is a COPY; ~15 minutes).

Needs Redis at 127.0.0.1:6379 (a database of its own, claimed as the tests claim theirs:
tests/redis_db.py; emptied before and after every run),
PostgreSQL at 127.0.0.1:5432 with trust auth for ``postgres`` (creates and drops its own
``distributor_bench_*`` databases) and Debian's postfix package: ``/usr/sbin/smtp-sink``; for
the ``postfix`` kind also ``postfix`` and ``smtp-source``, and root. Worker CPU and memory
are read with psutil (installed in the project's .venv).

A configuration is ``ledger/procs/sink``, with ``/dkim`` appended for a run whose worker
DKIM-signs every message (RSA-2048, a key made for the bench). Sinks: ``smtp-sink``
(Postfix's, the fastest), ``aiosmtpd`` (counts copies per recipient; into it, a signed run
also checks every signature with dkimpy's verifier, on at most 5,000 messages: it is slow),
``postfix`` (a private Postfix on loopback, bench/_relay.py, relaying to an smtp-sink: the
count is what reached that smtp-sink, so a run ends when Postfix's queue has drained).

Goals checked (design, issue 16), as ratios measured in the same run:
- into smtp-sink, at least 0.8 of the sink's pipelined ceiling (RFC 2920 over a raw socket,
  release-sized messages: the best median of 1 and 2 connections);
- through Postfix, at least 0.9 of Postfix's own ceiling (``smtp-source`` into the same
  private instance, release-sized messages, 2/8/32 sessions: the best median, as received by
  the smtp-sink behind it);
- worker CPU at most 0.2 s per 1,000 messages;
- DKIM-signed at least 0.85 of the unsigned rate (its twin of the same repetition);
- the first message within 2 s of publishing.
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import shutil
import signal
import statistics
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import _baselines
import psutil
from _fixture import broker_url, fresh_database, populate, settings_for
from _profile import breakdown, cprofile_send_batch, read_pyspy_raw
from _relay import PostfixRelay, smtp_source
from _report import code_state, say, spread, table
from _run import RunResult, Worker, cpu_seconds, measure
from _sinks import AioSink, Sink, SmtpSink
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from distributor.core.config import Settings
from distributor.mail.dkim import Signer
from tests.postfix import unavailable
from tests.redis_db import empty

GOAL_PIPELINED_SHARE = 0.8  # of smtp-sink's pipelined ceiling
GOAL_POSTFIX_SHARE = 0.9  # of Postfix's own ceiling (smtp-source)
GOAL_WORKER_CPU = 0.2  # seconds per 1,000 messages
GOAL_SIGNED_SHARE = 0.85  # signed ÷ unsigned
GOAL_FIRST_S = 2.0
FULL_CONFIGS = [
    "sqlite/2/smtp-sink",
    "sqlite/2/smtp-sink/dkim",
    "sqlite/4/smtp-sink",
    "postgresql/2/smtp-sink",
    "postgresql/4/smtp-sink",
    "sqlite/2/aiosmtpd",
    "sqlite/2/aiosmtpd/dkim",
    "sqlite/2/postfix",
    "postgresql/2/postfix",
]
QUICK_CONFIGS = [
    "sqlite/2/smtp-sink",
    "sqlite/2/smtp-sink/dkim",
    "postgresql/2/smtp-sink",
    "sqlite/2/aiosmtpd",
    "sqlite/2/postfix",
]
SINK_KINDS = ("smtp-sink", "aiosmtpd", "postfix")
DKIM_SELECTOR, DKIM_DOMAIN = "bench", "example.org"
DKIM_CHECKED = 5_000  # at most this many messages into the sink that verifies each signature
BREAKDOWN_SUBSCRIBERS = 100_000  # at most: (d) plans the whole release in this process


def split_config(config: str) -> tuple[str, str, str, bool]:
    """``ledger/procs/sink[/dkim]`` as (ledger, procs, sink, signed)."""
    backend, procs, sink_name, *rest = config.split("/")
    return backend, procs, sink_name, rest == ["dkim"]


def schedule(configs: list[str], repeat: int) -> list[str]:
    """The order of the runs: every configuration once, then again, ``repeat`` times (A B A B,
    never A A B B), so that a slow spell of the shared machine falls on all of them."""
    return [config for _ in range(repeat) for config in configs]


def sink_key(config: str) -> str:
    """The entry of the sinks table a configuration sends to: the aiosmtpd sink that checks
    signatures for signed runs into aiosmtpd."""
    _, _, sink_name, signed = split_config(config)
    return "aiosmtpd/dkim" if signed and sink_name == "aiosmtpd" else sink_name


def _n(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "–"
    return f"{value:,.{digits}f}"


# --- (a) and (b): baselines -------------------------------------------------------------


@dataclass(frozen=True)
class Ceiling:
    """A sink's ceiling measured in this run: messages per second and how it was made."""

    rate: float
    how: str


def ceilings(
    sinks: dict[str, Sink], count: int, aio_count: int, trials: int
) -> tuple[str, dict[str, Ceiling], dict[str, float]]:
    """The ceiling table; each sink's ceiling for the goals (the best median of the pipelined
    rows with release-sized messages); and its best smtplib median, for comparison. Each
    variant is run ``trials`` times: on a shared 2-core machine single figures scatter."""
    settings = settings_for(Path(tempfile.gettempdir()), None, "smtp://127.0.0.1:25")
    big = _baselines.prebuilt_messages(settings, 500, body_copies=3)
    real = _baselines.prebuilt_messages(settings, 500, body_copies=1)
    size = {id(big): len(big[0][1]), id(real): len(real[0][1])}
    lean, piped = _baselines.send_smtplib, _baselines.send_pipelined
    how = {lean: "smtplib: MAIL, RCPT, DATA, data", piped: "raw socket, RFC 2920 pipelining"}
    plan = [
        ("smtp-sink", big, lean, 1),
        ("smtp-sink", big, lean, 2),
        ("smtp-sink", real, lean, 1),
        ("smtp-sink", real, lean, 2),
        ("smtp-sink", big, piped, 1),
        ("smtp-sink", real, piped, 1),
        ("smtp-sink", real, piped, 2),
        ("aiosmtpd", real, lean, 1),
        ("aiosmtpd", real, piped, 1),
    ]
    rows: list[list[str]] = []
    best: dict[str, float] = {}
    ceiling: dict[str, Ceiling] = {}
    for sink_name, messages, sender, procs in plan:
        if sink_name not in sinks:
            continue
        sink = sinks[sink_name]
        n = aio_count if sink_name == "aiosmtpd" else count
        say(f"ceiling: {sink_name}, {how[sender]}, {procs} process(es), {trials} × {n:,}")
        before, sink_cpu = sink.count(), cpu_seconds(sink.processes())
        trials_run = [_baselines.rate(sender, sink.port, messages, n, procs) for _ in range(trials)]
        arrived = sink.count() - before
        sink_per_msg = (cpu_seconds(sink.processes()) - sink_cpu) / max(arrived, 1)
        rates = [t.rate for t in trials_run]
        median = statistics.median(rates)
        if sender is lean:
            best[sink_name] = max(best.get(sink_name, 0.0), median)
        elif messages is real and median > ceiling.get(sink_name, Ceiling(0.0, "")).rate:
            ceiling[sink_name] = Ceiling(median, f"pipelined, {procs} connection(s)")
        rows.append(
            [
                sink_name,
                f"{size[id(messages)] / 1024:.1f} KB",
                how[sender],
                str(procs),
                f"{arrived:,}",
                spread(rates),
                f"{1000 / median:.3f}",
                f"{statistics.median(t.client_cpu for t in trials_run) * 1000:.3f}",
                f"{sink_per_msg * 1000:.3f}",
            ]
        )
    headers = [
        "sink",
        "message",
        "client",
        "procs",
        "arrived",
        "msgs/s",
        "ms/msg (median)",
        "client CPU s/1k",
        "sink CPU s/1k",
    ]
    return table(headers, rows), ceiling, best


def release_size(settings: Settings) -> int:
    """The bytes of one message of the sample release, as the composer makes it."""
    return len(_baselines.prebuilt_messages(settings, 1, body_copies=1)[0][1])


def postfix_ceiling(
    relay: PostfixRelay, sessions: list[int], count: int, trials: int
) -> tuple[str, Ceiling]:
    """Postfix's own ceiling: ``smtp-source`` into the private instance with release-sized
    messages, at each number of parallel sessions, ``trials`` times; the rate as received by
    the smtp-sink behind Postfix. The ceiling is the best median."""
    size = release_size(settings_for(Path(tempfile.gettempdir()), None, relay.url))
    rows = []
    top = Ceiling(0.0, "")
    for n in sessions:
        say(f"ceiling: smtp-source → Postfix → smtp-sink, {n} sessions, {trials} × {count:,}")
        runs = [smtp_source(relay, n, count, size) for _ in range(trials)]
        median = statistics.median(r.rate for r in runs)
        if median > top.rate:
            top = Ceiling(median, f"smtp-source, {n} sessions")
        rows.append(
            [
                f"smtp-source -d -N -s {n} -m {count:,} -l {size:,}",
                f"{sum(r.arrived for r in runs):,} of {count * trials:,}",
                spread([r.accept_rate for r in runs]),
                spread([r.rate for r in runs]),
                spread([r.relay_cpu_s * 1000 / r.messages for r in runs], 3),
                spread([r.source_cpu_s * 1000 / r.messages for r in runs], 3),
            ]
        )
    headers = [
        "client",
        "arrived",
        "accepted by Postfix/s",
        "at smtp-sink/s",
        "Postfix + sink s/1k",
        "smtp-source s/1k",
    ]
    return table(headers, rows), top


def naive_baseline(sink: Sink, count: int) -> str:
    settings = settings_for(Path(tempfile.gettempdir()), None, sink.url)
    say(f"naive pipeline: {count:,} messages into {sink.name}")
    _baselines.naive(settings, sink.port, 50)  # warm: compile the templates
    before = sink.count()
    r = _baselines.naive(settings, sink.port, count)
    arrived = sink.count() - before
    return table(
        ["pipeline", "messages", "arrived", "msgs/s", "compose ms/msg", "send ms/msg", "size"],
        [
            [
                "Jinja2 + css-inline + EmailMessage.as_bytes + sendmail",
                f"{r.messages:,}",
                f"{arrived:,}",
                _n(r.rate),
                f"{r.compose_ms:.2f}",
                f"{r.send_ms:.2f}",
                f"{r.size / 1024:.1f} KB",
            ]
        ],
    )


# --- (c): the real path ------------------------------------------------------------------


def real_run(
    config: str,
    subscribers: int,
    sinks: dict[str, Sink],
    log_dir: Path,
    profiler: list[str] | None = None,
    dkim_key: Path | None = None,
) -> RunResult:
    backend, procs, _, signed = split_config(config)
    sink = sinks[sink_key(config)]
    tag = config.replace("/", "_").replace("-", "")
    started = time.perf_counter()
    with fresh_database(backend, sink.url, tag) as unsigned:
        settings: Settings = unsigned
        if signed:
            assert dkim_key is not None
            settings = unsigned.model_copy(
                update={
                    "dkim_key_file": dkim_key,
                    "dkim_selector": DKIM_SELECTOR,
                    "dkim_domain": DKIM_DOMAIN,
                }
            )
        say(f"{config}: {subscribers:,} subscribers: set-up")
        dataset = populate(settings, subscribers)
        worker = Worker(dataset, int(procs), log_dir / f"{tag}{'-pyspy' if profiler else ''}.log")
        setup = time.perf_counter() - started
        say(f"{config}: worker ready, publishing")
        try:
            result = measure(config, dataset, worker, sink, profiler)
        finally:
            worker.stop()
    result.setup_s = setup
    say(
        f"{config}: {result.sent:,} sent in {result.last_s:.1f} s ({result.rate:,.0f}/s), "
        f"first after {result.first_s:.2f} s, {'complete' if result.complete else 'INCOMPLETE'}"
    )
    return result


def _check(r: RunResult) -> str:
    other = {k: v for k, v in r.statuses.items() if v and k != "sent"}
    parts = []
    if r.complete and not r.duplicates:
        parts.append("ok")
    if r.lost:
        parts.append(f"lost {r.lost:,}")
    if r.duplicates:
        parts.append(f"dup {r.duplicates:,}")
    if r.planned != r.subscribers:
        parts.append(f"planned {r.planned:,}≠{r.subscribers:,}")
    parts += [f"{k} {v:,}" for k, v in other.items()]
    if r.signatures is not None:
        verified, failed = r.signatures
        parts.append(f"DKIM FAILED {failed:,}" if failed else f"dkim ok {verified:,}")
    return ", ".join(parts + r.notes) or "?"


def by_config(results: list[RunResult]) -> dict[str, list[RunResult]]:
    """The runs of each configuration, in the order the configurations were given."""
    out: dict[str, list[RunResult]] = {}
    for r in results:
        out.setdefault(r.label, []).append(r)
    return out


def _runs_check(runs: list[RunResult]) -> str:
    """Each run's check, once for the runs that agree: "ok", or "ok ×2; lost 3"."""
    found: dict[str, int] = {}
    for r in runs:
        found[_check(r)] = found.get(_check(r), 0) + 1
    if len(found) == 1:
        return next(iter(found))
    return "; ".join(f"{k} ×{v}" for k, v in found.items())


def results_tables(results: list[RunResult]) -> str:
    groups = by_config(results)

    def col(runs: list[RunResult], field: str, digits: int = 0, percent: bool = False) -> str:
        return spread([float(getattr(r, field)) for r in runs], digits, percent)

    timing = table(
        [
            "ledger/procs/sink",
            "runs",
            "msgs",
            "first s",
            "sink 1st s",
            "last s",
            "sink last s",
            "msgs/s",
            "steady/s",
            "distribute s",
            "planned s",
            "batch mean s",
            "set-up s",
            "check",
        ],
        [
            [
                label,
                str(len(runs)),
                col(runs, "sent"),
                col(runs, "first_s", 2),
                col(runs, "first_sink_s", 2),
                col(runs, "last_s", 1),
                col(runs, "last_sink_s", 1),
                col(runs, "rate"),
                col(runs, "steady_rate"),
                col(runs, "distribute_s", 2),
                col(runs, "planned_s", 2),
                col(runs, "batch_mean_s", 3),
                col(runs, "setup_s", 1),
                _runs_check(runs),
            ]
            for label, runs in groups.items()
        ],
    )
    cost = table(
        [
            "ledger/procs/sink",
            "worker CPU s/1k",
            "DB server s/1k",
            "sink s/1k",
            "redis s/1k",
            "bench s/1k",
            "machine busy",
            "of it others",
            "peak RSS MB",
            "per process",
            "peak PSS MB",
        ],
        [
            [
                label,
                col(runs, "worker_cpu_per_1k", 3),
                col(runs, "db_cpu_per_1k", 3) if label.startswith("postgresql") else "in worker",
                col(runs, "sink_cpu_per_1k", 3),
                col(runs, "redis_cpu_per_1k", 3),
                col(runs, "bench_cpu_per_1k", 3),
                col(runs, "machine_busy", 0, percent=True),
                col(runs, "foreign", 0, percent=True),
                col(runs, "peak_rss_mb"),
                col(runs, "peak_rss_proc_mb"),
                col(runs, "peak_pss_mb"),
            ]
            for label, runs in groups.items()
        ],
    )
    return timing + "\n\n" + cost


def _mark(ok: bool) -> str:
    return " ✓" if ok else " ✗"


def goals_table(results: list[RunResult], ceiling: dict[str, Ceiling]) -> str:
    """Each configuration's median against the goals; the ratio's spread over the runs."""
    goal_share = {"smtp-sink": GOAL_PIPELINED_SHARE, "postfix": GOAL_POSTFIX_SHARE}
    rows = []
    for label, runs in by_config(results).items():
        sink = split_config(label)[2]
        top = ceiling.get(sink)
        share_cell = "–"
        if top is not None and top.rate:
            shares = [r.rate / top.rate for r in runs]
            share_cell = spread(shares, 2)
            if sink in goal_share:
                share_cell += f" ≥{goal_share[sink]}" + _mark(
                    statistics.median(shares) >= goal_share[sink]
                )
        cpu = statistics.median(r.worker_cpu_per_1k for r in runs)
        first = statistics.median(r.first_s for r in runs)
        rows.append(
            [
                label,
                spread([r.rate for r in runs]),
                f"{top.rate:,.0f} ({top.how})" if top else "–",
                share_cell,
                spread([r.worker_cpu_per_1k for r in runs], 3) + _mark(cpu <= GOAL_WORKER_CPU),
                spread([r.first_s for r in runs], 2) + _mark(first <= GOAL_FIRST_S),
                "yes" if all(r.complete and not r.duplicates for r in runs) else "NO",
            ]
        )
    return table(
        [
            "ledger/procs/sink",
            "msgs/s",
            "ceiling/s (this run)",
            "÷ ceiling",
            f"worker CPU s/1k (≤{GOAL_WORKER_CPU})",
            f"first msg s (≤{GOAL_FIRST_S:.0f})",
            "all sent once",
        ],
        rows,
    )


def signing_table(results: list[RunResult]) -> str:
    """Each signed configuration against its unsigned twin (same ledger, processes and sink),
    run by run: the n-th signed run beside the n-th unsigned one (the same repetition)."""
    groups = by_config(results)
    rows = []
    for label, signed in groups.items():
        unsigned = groups.get(label.removesuffix("/dkim")) if label.endswith("/dkim") else None
        if not unsigned:
            continue
        pairs = list(zip(signed, unsigned, strict=False))
        shares = [s.rate / u.rate for s, u in pairs if u.rate]
        checked = "–"
        if all(r.signatures is not None for r in signed):
            verified = sum(r.signatures[0] for r in signed if r.signatures)
            failed = sum(r.signatures[1] for r in signed if r.signatures)
            checked = f"{verified:,} of {verified + failed:,} verify"
        rows.append(
            [
                label.removesuffix("/dkim"),
                spread([u.rate for _, u in pairs]),
                spread([s.rate for s, _ in pairs]),
                spread(shares, 2)
                + _mark(bool(shares) and statistics.median(shares) >= GOAL_SIGNED_SHARE),
                spread([s.worker_cpu_per_1k - u.worker_cpu_per_1k for s, u in pairs], 3),
                checked,
            ]
        )
    if not rows:
        return "  (no signed run with an unsigned twin in this run)"
    return table(
        [
            "ledger/procs/sink",
            "unsigned/s",
            "signed/s",
            f"signed ÷ unsigned (≥{GOAL_SIGNED_SHARE})",
            "signing: worker CPU s/1k",
            "signatures at the sink",
        ],
        rows,
    )


def postfix_table(results: list[RunResult], ceiling: Ceiling) -> str:
    """The runs through Postfix: accepted by Postfix (the ledger) and arrived behind it,
    each against smtp-source's rate at the sink."""
    rows = []
    for label, runs in by_config(results).items():
        if split_config(label)[2] != "postfix":
            continue
        at_sink = [r.sent / r.last_sink_s for r in runs if r.last_sink_s == r.last_sink_s]
        rows.append(
            [
                label,
                spread([r.last_s for r in runs], 1),
                spread([r.last_sink_s for r in runs], 1),
                spread([r.rate for r in runs]),
                spread(at_sink),
                spread([r.rate / ceiling.rate for r in runs], 2),
                spread([v / ceiling.rate for v in at_sink], 2),
            ]
        )
    return table(
        [
            "ledger/procs/sink",
            "last accepted s",
            "last at sink s",
            "accepted/s",
            "at sink/s",
            "accepted ÷ smtp-source",
            "at sink ÷ smtp-source",
        ],
        rows,
    )


def bench_key(directory: Path) -> tuple[Path, str]:
    """A fresh RSA-2048 key for signed runs, written to ``directory``, and its DNS record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = directory / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)  # load_signer refuses a key others can read
    return path, Signer(key, DKIM_SELECTOR, DKIM_DOMAIN).dns_record


def pyspy_report(path: Path, label: str) -> str:
    total, areas, leaves, inclusive = read_pyspy_raw(path)
    if not total:
        return f"py-spy: no samples in {path}"
    lines = [
        f"py-spy, {label}: {total:,} samples of the worker's processes when not idle (py-spy "
        "still counts short waits for SMTP and database replies; time in C is charged to the "
        "calling Python line)",
        "",
        "  by area of the innermost Python frame:",
    ]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in areas]
    lines += ["", "  innermost functions:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in leaves]
    lines += ["", "  distributor/worker functions, callees included:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in inclusive]
    return "\n".join(lines)


def _on_sigterm(_signo: int, _frame: object) -> NoReturn:
    raise SystemExit(143)  # run the finally blocks: stop every process, drop every database


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, help="per run (default 100,000; quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs (~3 minutes)")
    parser.add_argument(
        "--repeat",
        type=int,
        help="runs of each configuration, alternating (default 3; quick 1)",
    )
    parser.add_argument(
        "--configs",
        help="comma-separated ledger/procs/sink[/dkim], sink one of "
        f"{', '.join(SINK_KINDS)}; e.g. sqlite/2/smtp-sink,sqlite/2/smtp-sink/dkim",
    )
    parser.add_argument(
        "--aiosmtpd-subscribers",
        type=int,
        help="cap for runs into aiosmtpd (default 20,000; quick 5,000)",
    )
    parser.add_argument(
        "--postfix-subscribers",
        type=int,
        help="cap for runs through Postfix (default 20,000; quick 5,000)",
    )
    parser.add_argument(
        "--postfix-setting",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a main.cf parameter of the private Postfix (repeatable), e.g. in_flow_delay=0",
    )
    parser.add_argument(
        "--postfix-dir",
        type=Path,
        metavar="DIR",
        help="make the private Postfix's directory (and queue) in DIR, e.g. /dev/shm",
    )
    parser.add_argument(
        "--cprofile",
        type=int,
        default=0,
        metavar="N",
        help="also cProfile send_batch in-process on N subscribers",
    )
    parser.add_argument(
        "--py-spy",
        metavar="PATH",
        help="also profile the first configuration's worker with this py-spy",
    )
    parser.add_argument(
        "--profile-config", help="the configuration --py-spy profiles (default: the first)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the worker logs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)

    subscribers = args.subscribers or (10_000 if args.quick else 100_000)
    repeat = args.repeat or (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    aio_subscribers = min(
        subscribers, args.aiosmtpd_subscribers or (5_000 if args.quick else 20_000)
    )
    postfix_subscribers = min(
        subscribers, args.postfix_subscribers or (5_000 if args.quick else 20_000)
    )
    configs = (
        args.configs.split(",") if args.configs else (QUICK_CONFIGS if args.quick else FULL_CONFIGS)
    )
    for config in configs:
        parts = config.split("/")
        if (
            len(parts) not in (3, 4)
            or parts[0] not in ("sqlite", "postgresql")
            or not parts[1].isdigit()
            or parts[2] not in SINK_KINDS
            or parts[3:] not in ([], ["dkim"])
        ):
            parser.error(f"bad configuration {config!r}")
    skipped = ""
    postfix_missing = unavailable()
    if postfix_missing and any(split_config(c)[2] == "postfix" for c in configs):
        if args.configs:
            parser.error(f"the postfix sink kind needs a private Postfix: {postfix_missing}")
        configs = [c for c in configs if split_config(c)[2] != "postfix"]
        skipped = f"  (no runs through Postfix: {postfix_missing})"
    ceiling_count, naive_count = (3_000, 1_000) if args.quick else (10_000, 2_000)
    source_count, source_sessions = (2_000, [2, 8]) if args.quick else (5_000, [2, 8, 32])
    breakdown_count = 2_500 if args.quick else 5_000
    started = time.perf_counter()
    code_before = code_state()
    log_dir = Path(tempfile.mkdtemp(prefix="distributor-bench-logs-"))
    out: list[str] = []
    with ExitStack() as stack:
        stack.callback(lambda: empty(broker_url()))
        if not args.keep_logs:
            stack.callback(shutil.rmtree, log_dir, ignore_errors=True)
        sinks: dict[str, Sink] = {"smtp-sink": SmtpSink()}
        stack.callback(sinks["smtp-sink"].stop)
        dkim_key, dkim_record = None, None
        if any(split_config(c)[3] for c in configs):
            key_dir = Path(tempfile.mkdtemp(prefix="distributor-bench-dkim-"))
            stack.callback(shutil.rmtree, key_dir, ignore_errors=True)
            dkim_key, dkim_record = bench_key(key_dir)
        if any(sink_key(c) == "aiosmtpd" for c in configs):
            sinks["aiosmtpd"] = AioSink()
            stack.callback(sinks["aiosmtpd"].stop)
        if any(sink_key(c) == "aiosmtpd/dkim" for c in configs):
            sinks["aiosmtpd/dkim"] = AioSink(dkim_record)
            stack.callback(sinks["aiosmtpd/dkim"].stop)
        relay: PostfixRelay | None = None
        if any(sink_key(c) == "postfix" for c in configs):
            say("starting a private Postfix on loopback")
            relay = PostfixRelay(dict(args.postfix_setting), args.postfix_dir)
            stack.callback(relay.stop)
            sinks["postfix"] = relay

        ceiling_table, ceiling, best = ceilings(
            sinks, ceiling_count, 1_000 if args.quick else 3_000, trials=3
        )
        out += [
            "(a) The sink's ceiling: pre-built messages made by the real composer (the sample "
            "release; the bigger one has its body three times), no queue, no database; "
            f"{ceiling_count:,} messages a trial, 3 trials, median (min–max)",
            ceiling_table,
            "",
            "  ceiling used for the goals: the best median of the pipelined rows with the "
            "release's size — "
            + ", ".join(f"{k} {v.rate:,.0f}/s ({v.how})" for k, v in ceiling.items())
            + "; the best smtplib median, for comparison: "
            + ", ".join(f"{k} {v:,.0f}/s" for k, v in best.items()),
            "",
        ]
        if relay is not None:
            source_table, ceiling["postfix"] = postfix_ceiling(
                relay, source_sessions, source_count, trials=3 if not args.quick else 1
            )
            out += [
                "(a') Postfix's own ceiling: Postfix's smtp-source into the private Postfix "
                "(the compose relay's main.cf on loopback, bench/_relay.py), relaying to an "
                "smtp-sink; rate as received there, median (min–max)",
                source_table,
                "",
                f"  ceiling used for the goal: {ceiling['postfix'].rate:,.0f}/s "
                f"({ceiling['postfix'].how}); its queue in {relay.postfix.queue_dir}; "
                "Postfix's settings: "
                + ", ".join(f"{k} = {v}" for k, v in relay.settings().items()),
                "",
            ]
        out += [
            "(b) Naive pipeline: everything per message with the stdlib, one smtplib "
            "connection to smtp-sink",
            naive_baseline(sinks["smtp-sink"], naive_count),
            "",
        ]

        results: list[RunResult] = []
        for i, config in enumerate(schedule(configs, repeat)):
            sink_name = split_config(config)[2]
            n = {"aiosmtpd": aio_subscribers, "postfix": postfix_subscribers}.get(
                sink_name, subscribers
            )
            if sink_key(config) == "aiosmtpd/dkim":
                n = min(n, DKIM_CHECKED)
            if repeat > 1:
                say(f"repetition {i // len(configs) + 1} of {repeat}")
            results.append(real_run(config, n, sinks, log_dir, dkim_key=dkim_key))
        out += [
            f"(c) Real path: distributor worker (prefork, its own Redis database), fresh "
            f"database each run, {subscribers:,} subscribers ({aio_subscribers:,} into "
            f"aiosmtpd, {postfix_subscribers:,} through Postfix); {repeat} run(s) of each "
            "configuration, alternating; median (min–max)",
            "  first s / last s: publish → first / last ledger row with sent_at (through "
            "Postfix: accepted by Postfix); sink 1st / last s: polled at the sink (50 ms; "
            "through Postfix: the smtp-sink behind it); msgs/s = sent ÷ last s; steady/s = "
            "between first and last; distribute s: the distribute_release task (worker log); "
            "planned s: publish → the release's planned_at; peak RSS: the worker's processes "
            "together, and the biggest one alone",
            results_tables(results),
            *([skipped] if skipped else []),
            "",
        ]
        out += ["Goals, as ratios measured in this run", goals_table(results, ceiling), ""]
        if any(r.signed for r in results):
            out += [
                "DKIM signing (RSA-2048, relaxed/relaxed) end to end: each signed run against "
                "its unsigned twin of the same repetition; signing = the worker CPU it adds",
                signing_table(results),
                "",
            ]
        if "postfix" in ceiling:
            out += [
                "(e) Through Postfix: the worker's rate as Postfix accepted it (the ledger's "
                "last sent row) and as the smtp-sink behind it received it, against "
                f"smtp-source's {ceiling['postfix'].rate:,.0f}/s at that smtp-sink",
                postfix_table(results, ceiling["postfix"]),
                "",
            ]

        breakdown_subscribers = min(subscribers, BREAKDOWN_SUBSCRIBERS)
        for backend in ("sqlite", "postgresql"):
            say(
                f"step by step: send_batch in this process, {backend}, {breakdown_count:,} messages"
            )
            out += [
                f"(d) Where a worker's time goes — send_batch step by step, {backend}, one process "
                f"(this one) into smtp-sink, the first {breakdown_count:,} messages of a release "
                f"to {breakdown_subscribers:,}",
                breakdown(backend, sinks["smtp-sink"].url, breakdown_subscribers, breakdown_count),
                "",
            ]
        if args.cprofile:
            say(f"cProfile of send_batch in-process, {args.cprofile:,} subscribers")
            out += [
                "cProfile: sending.send_batch in this process, SQLite, smtp-sink",
                cprofile_send_batch(sinks["smtp-sink"].url, args.cprofile),
            ]
        if args.py_spy:
            raw = log_dir / "pyspy.raw"
            cmd = [
                args.py_spy,
                "record",
                "--subprocesses",
                "--nonblocking",
                "--format",
                "raw",
                "--rate",
                "250",
                "--output",
                str(raw),
            ]
            config = args.profile_config or configs[0]
            n = {"aiosmtpd": aio_subscribers, "postfix": postfix_subscribers}.get(
                split_config(config)[2], subscribers
            )
            say(f"py-spy: profiled extra run of {config} (not in the tables above)")
            profiled = real_run(config, n, sinks, log_dir, cmd, dkim_key)
            out += [pyspy_report(raw, f"{config}, {profiled.rate:,.0f} msgs/s under the profiler")]

    cpus = psutil.cpu_count()
    code_after = code_state()
    print(
        f"distributor pipeline benchmark — {cpus} cores, "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    print(f"code under test: {code_before}")
    if code_after != code_before:
        print(f"WARNING: the code changed during the run; now {code_after}")
    print()
    print("\n".join(out))
    if args.keep_logs:
        print(f"worker logs: {log_dir}")


if __name__ == "__main__":
    main()
