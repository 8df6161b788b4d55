"""Where the worker's time goes, for bench/pipeline.py: cProfile of ``sending.send_batch``
in-process, and the reading of a py-spy raw profile of a real worker."""

from __future__ import annotations

import collections
import cProfile
import io
import pstats
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _fixture import fresh_database, populate

from distributor.office.identity import environment_identity
from distributor.outbox import sending

_REPO = str(Path(__file__).resolve().parent.parent) + "/"
# A frame of ours: py-spy names files relative to sys.path unless given --full-filenames.
_OURS = re.compile(rf"\((?:{re.escape(_REPO)})?(?:distributor|worker)/")
# (area, pattern on "function (file:line)" of the innermost Python frame); first match wins.
# py-spy sees Python frames only: time in C (the SQLite library, a socket call, hashing) is
# charged to the Python line that called it.
AREAS = [
    (
        "DB driver call (execute/commit/fetch, C)",
        r"\((?:do_execute|do_commit|do_begin|_exec_driver|fetchall|fetchone|execute)\b[^)]*\) "
        r"|sqlite3|psycopg/(?:cursor|connection|_conn|generators|waiting)",
    ),
    ("SQLAlchemy Python (compile, cache, results, pool)", r"sqlalchemy/"),
    ("psycopg Python", r"psycopg"),
    ("SMTP: smtplib + socket I/O", r"smtplib|socket\.py|ssl\.py"),
    ("compose (message_for, headers, QP)", r"distributor/mail/|binascii|/email/"),
    ("signed links (itsdangerous, hmac, json)", r"itsdangerous|hmac\.py|hashlib|json/|base64"),
    ("Celery / kombu / billiard / redis-py", r"celery/|kombu/|billiard/|vine/|redis/"),
    ("dataclasses / typing / uuid / datetime", r"dataclasses|typing|uuid|datetime|<string>"),
    ("distributor (other)", r"distributor/"),
]


def read_pyspy_raw(
    path: Path,
) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    """Samples, then (area, samples), (innermost function, samples) and (distributor function,
    samples including callees), each biggest first."""
    area: collections.Counter[str] = collections.Counter()
    leaf: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        inner = frames[-1]
        leaf[_short(inner)] += n
        area[next((a for a, pattern in AREAS if re.search(pattern, inner)), "other")] += n
        # by function (not line), each function once per sample however deep it recurses
        mine = {re.sub(r":\d+\)$", ")", _short(f)) for f in frames if _OURS.search(f)}
        for name in mine:
            inclusive[name] += n
    return total, area.most_common(), leaf.most_common(15), inclusive.most_common(20)


def _short(frame: str) -> str:
    """``func (…/site-packages/pkg/mod.py:12)`` → ``func (pkg/mod.py:12)``."""
    m = re.match(r"(.*) \((.*)\)$", frame)
    if not m:
        return frame
    func, where = m.groups()
    where = re.sub(rf"^.*/site-packages/|^{re.escape(_REPO)}|^.*/lib/python3\.\d+/", "", where)
    return f"{func} ({where})"


class _NoQueue:
    """Stands in for TaskQueue: the profile calls send_batch itself."""

    def send(self, task: str, *args: int) -> bool:
        return True


def cprofile_send_batch(smtp_url: str, subscribers: int) -> str:
    """cProfile of sending.send_batch run in this process until the release is sent (SQLite,
    ``subscribers`` rows); returns the report."""
    with fresh_database("sqlite", smtp_url, "cprofile") as settings:
        dataset = populate(settings, subscribers)
        from distributor.core.db import session_scope
        from distributor.releases.lifecycle import mark_published

        with session_scope(settings) as session:
            mark_published(session, dataset.release_id)
        sending.distribute_release(settings, _NoQueue(), dataset.release_id)  # type: ignore[arg-type]
        sending.send_batch(settings, dataset.release_id)  # warm: render, connect, compile
        profile = cProfile.Profile()
        sent = 0
        start = time.perf_counter()
        profile.enable()
        while report := sending.send_batch(settings, dataset.release_id):
            if not report.claimed:
                break
            sent += report.claimed
        profile.disable()
        elapsed = time.perf_counter() - start
    out = io.StringIO()
    out.write(
        f"{sent:,} messages in {elapsed:.2f} s under cProfile "
        f"({elapsed / max(sent, 1) * 1000:.3f} ms/message, profiler overhead included)\n"
    )
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(22)
    stats.sort_stats("cumulative").print_stats(r"distributor|smtplib|sqlalchemy/engine/base", 20)
    return out.getvalue()


PHASES = [
    ("release", "look up the release (per batch; the render is cached)"),
    ("claim", "claim a batch of rows with a lease (per batch)"),
    ("links", "unsubscribe + preferences links (two signed tokens)"),
    ("compose", "Recipient checks + RenderedRelease.message_for"),
    ("connect", "SMTP connect + EHLO + the batch's first message"),
    ("smtp", "SMTP MAIL, RCPT, DATA, data (each other message)"),
    ("record", "record the outcome (one transaction)"),
    ("quit", "SMTP QUIT (per batch)"),
]


class _Clock:
    """Adds up wall and CPU time per step: ``with clock("step"): ...``."""

    def __init__(self) -> None:
        self.wall: collections.defaultdict[str, float] = collections.defaultdict(float)
        self.cpu: collections.defaultdict[str, float] = collections.defaultdict(float)

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        yield
        self.wall[step] += time.perf_counter() - w
        self.cpu[step] += time.process_time() - c


def breakdown(backend: str, smtp_url: str, subscribers: int, messages: int) -> str:
    """Wall and CPU time of each step of ``sending.send_batch``, per message, in this
    process: the same calls in the same order as ``send_batch`` (kept in step with
    distributor/outbox/sending.py by hand; no DKIM, no pacing), each one timed. The data set has
    ``subscribers`` rows and ``messages`` of them are sent: the start of a big release."""
    from distributor.core.db import get_engine, session_scope
    from distributor.core.models import Release
    from distributor.core.urls import preferences_url, unsubscribe_url
    from distributor.mail.compose import Recipient, render_release
    from distributor.mail.relays import open_transport
    from distributor.outbox.ledger import OutcomeWriter, claim
    from distributor.releases.lifecycle import mark_published

    clock = _Clock()
    sent = 0
    with fresh_database(backend, smtp_url, "breakdown") as settings:
        dataset = populate(settings, subscribers)
        release_id = dataset.release_id
        with session_scope(settings) as session:
            mark_published(session, release_id)
        sending.distribute_release(settings, _NoQueue(), release_id)  # type: ignore[arg-type]
        sending.send_batch(settings, release_id)  # warm: connect, compile, caches
        engine = get_engine(settings)
        with session_scope(settings) as session:
            release = session.get(Release, release_id)
            assert release is not None
            rendered = render_release(release, settings, environment_identity(settings))
        while sent < messages:
            with clock("release"), session_scope(settings) as session:
                session.get(Release, release_id)
            with clock("claim"):
                batch = claim(engine, settings, release_id, settings.batch_size)
            if not batch.rows:
                break
            transport = open_transport(settings)
            with OutcomeWriter(engine, settings) as ledger:
                for i, row in enumerate(batch.rows):
                    with clock("links"):
                        unsubscribe = unsubscribe_url(settings, row.subscriber_id, row.link_nonce)
                        preferences = preferences_url(settings, row.subscriber_id, row.link_nonce)
                    with clock("compose"):
                        rcpt = Recipient(
                            row.subscriber_id, row.email, row.name, unsubscribe, preferences
                        )
                        message = rendered.message_for(rcpt)
                    with clock("connect" if i == 0 else "smtp"):
                        result = transport.send(rendered.envelope_from, row.email, message)
                    with clock("record"):
                        ledger.record(batch.token, row, result.outcome, result.code, result.message)
                    sent += 1
            with clock("quit"):
                transport.close()
    total_wall, total_cpu = sum(clock.wall.values()), sum(clock.cpu.values())
    rows = [
        [
            f"{name}: {what}",
            f"{clock.wall[name] / sent * 1000:.3f}",
            f"{clock.cpu[name] / sent * 1000:.3f}",
            f"{clock.wall[name] / total_wall:.0%}",
        ]
        for name, what in PHASES
    ]
    rows.append(
        [
            f"total ({sent:,} messages; one process alone: {sent / total_wall:,.0f}/s)",
            f"{total_wall / sent * 1000:.3f}",
            f"{total_cpu / sent * 1000:.3f}",
            "100%",
        ]
    )
    return _table(["step", "wall ms/msg", "CPU ms/msg", "of wall"], rows)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *rows]
    return "\n".join(
        "  "
        + "  ".join(
            [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))]
        )
        for r in lines
    )
