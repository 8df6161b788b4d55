"""End-to-end delivery throughput: publish → distribute_release → send_batch → ledger, with real
``distributor worker`` processes, Redis, SQLite or PostgreSQL, and an SMTP sink — against the
sink's own ceiling and a naive per-message pipeline, measured in the same run.

Run: ``.venv/bin/python bench/pipeline.py [--subscribers 100000] [--quick]``. Prints figures;
asserts nothing. ``--quick`` (10,000 subscribers, four configurations) takes 1–2 minutes;
the default (100,000 subscribers, seven configurations) 8–12 minutes on 2 cores. Extras:
``--cprofile N`` (send_batch under cProfile, in-process) and ``--py-spy PATH`` (an extra,
profiled run of one configuration; ``pip install --target /tmp/pyspy py-spy`` provides one).

Needs Redis at 127.0.0.1:6379 (a database of its own, claimed as the tests claim theirs:
tests/redis_db.py; emptied before and after every run),
PostgreSQL at 127.0.0.1:5432 with trust auth for ``postgres`` (creates and drops its own
``distributor_bench_*`` databases) and Postfix's ``/usr/sbin/smtp-sink``. Worker CPU and memory
are read with psutil (installed in the project's .venv).

A configuration is ``ledger/procs/sink``, with ``/dkim`` appended for a run whose worker
DKIM-signs every message (RSA-2048, a key made for the bench); into aiosmtpd, such a run
also checks every signature at the sink with dkimpy's verifier (on at most 5,000 messages:
it is slow).

Goals checked (design): at least 2,000 messages/s end to end (1,000 signed), at least half
the sink's ceiling, the first message within 2 s of publishing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import NoReturn

for _name in list(os.environ):  # the developer's own configuration must not leak in
    if _name.startswith("DISTRIBUTOR_"):
        del os.environ[_name]

import _baselines  # noqa: E402
import psutil  # noqa: E402
from _fixture import broker_url, fresh_database, populate, settings_for  # noqa: E402
from _profile import breakdown, cprofile_send_batch, read_pyspy_raw  # noqa: E402
from _report import code_state, say, table  # noqa: E402
from _run import RunResult, Worker, measure  # noqa: E402
from _sinks import AioSink, Sink, SmtpSink  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from distributor.core.config import Settings  # noqa: E402
from distributor.mail.dkim import Signer  # noqa: E402
from tests.redis_db import empty  # noqa: E402

GOAL_RATE = 2000.0
GOAL_SIGNED_RATE = 1000.0
GOAL_SHARE = 0.5
GOAL_FIRST_S = 2.0
FULL_CONFIGS = [
    "sqlite/2/smtp-sink",
    "sqlite/2/smtp-sink/dkim",
    "sqlite/4/smtp-sink",
    "postgresql/2/smtp-sink",
    "postgresql/4/smtp-sink",
    "sqlite/2/aiosmtpd",
    "sqlite/2/aiosmtpd/dkim",
]
QUICK_CONFIGS = [
    "sqlite/2/smtp-sink",
    "sqlite/2/smtp-sink/dkim",
    "postgresql/2/smtp-sink",
    "sqlite/2/aiosmtpd",
]
DKIM_SELECTOR, DKIM_DOMAIN = "bench", "example.org"
DKIM_CHECKED = 5_000  # at most this many messages into the sink that verifies each signature


def split_config(config: str) -> tuple[str, str, str, bool]:
    """``ledger/procs/sink[/dkim]`` as (ledger, procs, sink, signed)."""
    backend, procs, sink_name, *rest = config.split("/")
    return backend, procs, sink_name, rest == ["dkim"]


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


def ceilings(
    sinks: dict[str, Sink], count: int, aio_count: int, trials: int
) -> tuple[str, dict[str, float]]:
    """The ceiling table and the best smtplib figure for each sink. Each variant is run
    ``trials`` times: on a shared 2-core machine single figures scatter widely."""
    settings = settings_for(Path(tempfile.gettempdir()), None, "smtp://127.0.0.1:25")
    big = _baselines.prebuilt_messages(settings, 500, body_copies=3)
    real = _baselines.prebuilt_messages(settings, 500, body_copies=1)
    size = {id(big): len(big[0][1]), id(real): len(real[0][1])}
    lean, piped = _baselines.send_smtplib, _baselines.send_pipelined
    how = {lean: "smtplib: MAIL, RCPT, DATA, data", piped: "raw socket, RFC 2920 pipelining"}
    plan = [
        ("smtp-sink", big, lean, 1),
        ("smtp-sink", big, lean, 2),
        ("smtp-sink", big, lean, 4),
        ("smtp-sink", real, lean, 1),
        ("smtp-sink", real, lean, 2),
        ("smtp-sink", big, piped, 1),
        ("smtp-sink", big, piped, 2),
        ("aiosmtpd", real, lean, 1),
    ]
    rows: list[list[str]] = []
    best: dict[str, float] = {}
    for sink_name, messages, sender, procs in plan:
        if sink_name not in sinks:
            continue
        sink = sinks[sink_name]
        n = aio_count if sink_name == "aiosmtpd" else count
        say(f"ceiling: {sink_name}, {how[sender]}, {procs} process(es), {trials} × {n:,}")
        before = sink.count()
        rates = sorted(
            _baselines.rate(sender, sink.port, messages, n, procs) for _ in range(trials)
        )
        arrived = sink.count() - before
        if sender is lean:
            best[sink_name] = max(best.get(sink_name, 0.0), rates[-1])
        rows.append(
            [
                sink_name,
                f"{size[id(messages)] / 1024:.1f} KB",
                how[sender],
                str(procs),
                f"{arrived:,}",
                _n(rates[0]),
                _n(statistics.median(rates)),
                _n(rates[-1]),
                f"{1000 / statistics.median(rates):.3f}",
            ]
        )
    headers = ["sink", "message", "client", "procs", "arrived", "worst/s", "median/s", "best/s"]
    return table([*headers, "ms/msg (median)"], rows), best


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


def results_tables(results: list[RunResult]) -> str:
    timing = table(
        [
            "ledger/procs/sink",
            "msgs",
            "first s",
            "sink 1st s",
            "last s",
            "msgs/s",
            "steady/s",
            "distribute s",
            "batches",
            "batch mean s",
            "batch max s",
            "set-up s",
            "check",
        ],
        [
            [
                r.label,
                f"{r.sent:,}",
                _n(r.first_s, 2),
                _n(r.first_sink_s, 2),
                _n(r.last_s, 1),
                _n(r.rate),
                _n(r.steady_rate),
                _n(r.distribute_s, 2),
                str(r.batches),
                _n(r.batch_mean_s, 3),
                _n(r.batch_max_s, 3),
                _n(r.setup_s, 1),
                _check(r),
            ]
            for r in results
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
            "peak PSS MB",
        ],
        [
            [
                r.label,
                f"{r.worker_cpu_per_1k:.3f}",
                f"{r.db_cpu_per_1k:.3f}" if r.label.startswith("postgresql") else "in worker",
                f"{r.sink_cpu_per_1k:.3f}",
                f"{r.redis_cpu_per_1k:.3f}",
                f"{r.bench_cpu_per_1k:.3f}",
                f"{r.machine_busy:.0%}",
                f"{r.foreign:.0%}",
                _n(r.peak_rss_mb),
                _n(r.peak_pss_mb),
            ]
            for r in results
        ],
    )
    return timing + "\n\n" + cost


def goals_table(results: list[RunResult], ceiling: dict[str, float]) -> str:
    rows = []
    for r in results:
        sink = split_config(r.label)[2]
        top = ceiling.get(sink, float("nan"))
        share = r.rate / top if top else float("nan")
        goal = GOAL_SIGNED_RATE if r.signed else GOAL_RATE
        rows.append(
            [
                r.label,
                _n(r.rate),
                f"{r.rate / goal:.2f} of {goal:,.0f}" + (" ✓" if r.rate >= goal else " ✗"),
                _n(top),
                "–" if share != share else f"{share:.2f}" + (" ✓" if share >= GOAL_SHARE else " ✗"),
                f"{r.first_s:.2f} s" + (" ✓" if r.first_s <= GOAL_FIRST_S else " ✗"),
                "yes" if r.complete and not r.duplicates else "NO",
            ]
        )
    return table(
        [
            "ledger/procs/sink",
            "msgs/s",
            "÷ goal (≥1)",
            "ceiling/s",
            "÷ ceiling (≥0.5)",
            "first msg (≤2 s)",
            "all sent once",
        ],
        rows,
    )


def signing_table(results: list[RunResult]) -> str:
    """Each signed run against the unsigned run of the same ledger, processes and sink."""
    unsigned = {r.label: r for r in results if not r.signed}
    rows = []
    for r in results:
        base = unsigned.get(r.label.removesuffix("/dkim")) if r.signed else None
        if base is None:
            continue
        checked = "–"
        if r.signatures is not None:
            verified, failed = r.signatures
            checked = f"{verified:,} of {verified + failed:,} verify"
        rows.append(
            [
                base.label,
                _n(base.rate),
                _n(r.rate),
                f"{r.rate / base.rate:.2f}" if base.rate else "–",
                f"{r.rate / GOAL_SIGNED_RATE:.2f}" + (" ✓" if r.rate >= GOAL_SIGNED_RATE else " ✗"),
                f"{base.worker_cpu_per_1k:.3f}",
                f"{r.worker_cpu_per_1k:.3f}",
                f"{r.worker_cpu_per_1k - base.worker_cpu_per_1k:+.3f}",
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
            "signed ÷ unsigned",
            "÷ 1,000 (≥1)",
            "worker CPU s/1k",
            "signed",
            "signing",
            "signatures at the sink",
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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, help="per run (default 100,000; quick 10,000)")
    parser.add_argument("--quick", action="store_true", help="fewer, smaller runs (~2 minutes)")
    parser.add_argument(
        "--configs",
        help="comma-separated ledger/procs/sink[/dkim], e.g. "
        "sqlite/2/smtp-sink,sqlite/2/smtp-sink/dkim",
    )
    parser.add_argument(
        "--aiosmtpd-subscribers",
        type=int,
        help="cap for runs into aiosmtpd (default 20,000; quick 5,000)",
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
    aio_subscribers = min(
        subscribers, args.aiosmtpd_subscribers or (5_000 if args.quick else 20_000)
    )
    configs = (
        args.configs.split(",") if args.configs else (QUICK_CONFIGS if args.quick else FULL_CONFIGS)
    )
    ceiling_count, naive_count = (3_000, 1_000) if args.quick else (10_000, 2_000)
    breakdown_count = 2_500 if args.quick else 5_000
    for config in configs:
        parts = config.split("/")
        if (
            len(parts) not in (3, 4)
            or parts[0] not in ("sqlite", "postgresql")
            or not parts[1].isdigit()
            or parts[2] not in ("smtp-sink", "aiosmtpd")
            or parts[3:] not in ([], ["dkim"])
        ):
            parser.error(f"bad configuration {config!r}")
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

        ceiling_table, best = ceilings(sinks, ceiling_count, min(ceiling_count, 3_000), trials=3)
        out += [
            "(a) The sink's ceiling: pre-built messages made by the real composer (the sample "
            "release; the bigger one has its body three times), no queue, no database; "
            f"{ceiling_count:,} messages a trial, 3 trials",
            ceiling_table,
            "",
            "  ceiling used for the goal: the best smtplib figure above — "
            + ", ".join(f"{k} {v:,.0f}/s" for k, v in best.items()),
            "",
        ]
        out += [
            "(b) Naive pipeline: everything per message with the stdlib, one smtplib "
            "connection to smtp-sink",
            naive_baseline(sinks["smtp-sink"], naive_count),
            "",
        ]

        results: list[RunResult] = []
        for config in configs:
            n = aio_subscribers if split_config(config)[2] == "aiosmtpd" else subscribers
            if sink_key(config) == "aiosmtpd/dkim":
                n = min(n, DKIM_CHECKED)
            results.append(real_run(config, n, sinks, log_dir, dkim_key=dkim_key))
        out += [
            f"(c) Real path: distributor worker (prefork, Redis db 12), fresh database "
            f"each run, {subscribers:,} subscribers ({aio_subscribers:,} into aiosmtpd)",
            "  first s / last s: publish → first / last ledger row with sent_at; sink 1st s: "
            "polled at the sink (50 ms); msgs/s = sent ÷ last s; steady/s = between first "
            "and last",
            results_tables(results),
            "",
        ]
        out += ["Goals, as ratios measured in this run", goals_table(results, best), ""]
        if any(r.signed for r in results):
            out += [
                "DKIM signing (RSA-2048, relaxed/relaxed) end to end: each signed run against "
                "its unsigned twin of this run; signing = the worker CPU it adds",
                signing_table(results),
                "",
            ]

        for backend in ("sqlite", "postgresql"):
            say(
                f"step by step: send_batch in this process, {backend}, {breakdown_count:,} messages"
            )
            out += [
                f"(d) Where a worker's time goes — send_batch step by step, {backend}, one process "
                f"(this one) into smtp-sink, the first {breakdown_count:,} messages of a release "
                f"to {subscribers:,}",
                breakdown(backend, sinks["smtp-sink"].url, subscribers, breakdown_count),
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
            n = aio_subscribers if split_config(config)[2] == "aiosmtpd" else subscribers
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
