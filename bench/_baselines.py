"""Baselines for bench/pipeline.py, with no queue and no database:

(a) the sink's ceiling — pre-built messages pushed straight into the sink over smtplib (one
    connection, then several processes), and over a raw socket with RFC 2920 pipelining;
(b) the naive pipeline — Jinja2 render + css-inline + stdlib ``EmailMessage`` + ``as_bytes``
    for every message, sent with ``smtplib.SMTP.sendmail``.
"""

from __future__ import annotations

import multiprocessing
import smtplib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

from compose import naive as naive_message  # bench/compose.py: the naive path, timed there too

from distributor.core.config import Settings
from distributor.core.models import Release, Topic
from distributor.core.urls import preferences_url, unsubscribe_url
from distributor.mail.compose import Recipient, render_release
from distributor.mail.smtpdata import dot_stuffed
from distributor.office.identity import environment_identity
from distributor.releases.source import parse_release

SAMPLE = (
    Path(__file__).resolve().parent.parent / "distributor" / "samples" / "climate-agreement.en.md"
)


def sample_release(settings: Settings, body_copies: int = 1) -> Release:
    """The English sample release as an unsaved Release (id 1); ``body_copies`` > 1 repeats
    its body to make a bigger message."""
    draft = parse_release(SAMPLE.read_text(), str(SAMPLE), settings)
    meta = draft.meta
    return Release(
        id=1,
        slug=meta.slug or "sample",
        title=meta.title,
        language=meta.lang,
        dateline=meta.dateline,
        lead=draft.lead,
        body_html="\n".join([draft.body_html] * body_copies),
        body_text="\n\n".join([draft.body_text] * body_copies),
        date=meta.date,
        contacts=[c.model_dump() for c in meta.contacts],
        images=[],
        topics=[Topic(slug=s, names={"en": s.title()}) for s in meta.topics],
        updated_at=datetime.now(UTC),
    )


def recipient(settings: Settings, i: int) -> Recipient:
    return Recipient(
        subscriber_id=i,
        email=f"journalist{i}@newsroom{i % 97}.example.com",
        name=f"Journalist {i}",
        unsubscribe_url=unsubscribe_url(settings, i, "bench-link-nonce"),
        preferences_url=preferences_url(settings, i, "bench-link-nonce"),
    )


def prebuilt_messages(settings: Settings, count: int, body_copies: int) -> list[tuple[str, bytes]]:
    """``count`` distinct (recipient, DATA) pairs made by the real composer."""
    rendered = render_release(
        sample_release(settings, body_copies), settings, environment_identity(settings)
    )
    out = []
    for i in range(count):
        rcpt = recipient(settings, i)
        out.append((rcpt.email, dot_stuffed(rendered.message_for(rcpt))))
    return out


# --- senders: each sends ``count`` messages (cycling through ``messages``) on one connection


def send_smtplib(port: int, messages: list[tuple[str, bytes]], count: int) -> None:
    """smtplib, one command and reply at a time (what distributor's SMTPTransport does):
    MAIL, RCPT, DATA, then the pre-stuffed data."""
    smtp = smtplib.SMTP("127.0.0.1", port)
    smtp.ehlo()
    for i in range(count):
        rcpt, data = messages[i % len(messages)]
        smtp.mail("press@example.org")
        smtp.rcpt(rcpt)
        code, _ = smtp.docmd("DATA")
        assert code == 354, code
        smtp.send(data)
        code, _ = smtp.getreply()
        assert code == 250, code
    smtp.quit()


def _replies(f: socket.SocketIO | object, n: int) -> list[int]:
    codes = []
    read = f.readline  # type: ignore[union-attr]
    for _ in range(n):
        line = read()
        while line[3:4] == b"-":
            line = read()
        codes.append(int(line[:3]))
    return codes


def send_pipelined(port: int, messages: list[tuple[str, bytes]], count: int) -> None:
    """RFC 2920 pipelining over a raw socket: the end of one message's data, and the next
    MAIL, RCPT and DATA, go out in one write — one round trip per message."""
    sock = socket.create_connection(("127.0.0.1", port))
    f = sock.makefile("rb")
    _replies(f, 1)
    sock.sendall(b"EHLO bench\r\n")
    _replies(f, 1)
    envelope = [
        b"MAIL FROM:<press@example.org>\r\nRCPT TO:<%s>\r\nDATA\r\n" % r.encode()
        for r, _ in messages
    ]
    sock.sendall(envelope[0])
    for i in range(count):
        expect = [250, 250, 354]
        got = _replies(f, 3)
        assert got == expect, got
        data = messages[i % len(messages)][1]
        following = envelope[(i + 1) % len(messages)] if i + 1 < count else b"QUIT\r\n"
        sock.sendall(data + following)
        code = _replies(f, 1)[0]
        assert code == 250, code
    _replies(f, 1)
    f.close()
    sock.close()


Sender = Callable[[int, list[tuple[str, bytes]], int], None]


def _child(
    sender: Sender,
    port: int,
    messages: list[tuple[str, bytes]],
    count: int,
    gate: object,
    results: object,
) -> None:
    gate.wait()  # type: ignore[attr-defined]
    start, cpu = time.time(), time.process_time()
    sender(port, messages, count)
    results.put((start, time.time(), time.process_time() - cpu))  # type: ignore[attr-defined]


class Trial(NamedTuple):
    """One trial: messages per second, and the client's CPU seconds per message (its
    processes' user + system time: what the pipelined ceiling costs the sending side)."""

    rate: float
    client_cpu: float


def rate(
    sender: Sender, port: int, messages: list[tuple[str, bytes]], total: int, procs: int
) -> Trial:
    """Messages per second for ``total`` messages split over ``procs`` processes (each with
    its own connection), wall time from the first start to the last finish, and the
    client's CPU per message."""
    if procs == 1:
        start, cpu = time.perf_counter(), time.process_time()
        sender(port, messages, total)
        elapsed, used = time.perf_counter() - start, time.process_time() - cpu
        return Trial(total / elapsed, used / total)
    ctx = multiprocessing.get_context("fork")
    gate, results = ctx.Event(), ctx.Queue()
    children = [
        ctx.Process(target=_child, args=(sender, port, messages, total // procs, gate, results))
        for _ in range(procs)
    ]
    for child in children:
        child.start()
    time.sleep(0.2)
    gate.set()
    spans = [results.get(timeout=600) for _ in children]
    for child in children:
        child.join()
        if child.exitcode:
            raise RuntimeError(f"a sending process failed (exit {child.exitcode})")
    elapsed = max(end for _, end, _ in spans) - min(start for start, _, _ in spans)
    sent = (total // procs) * procs
    return Trial(sent / elapsed, sum(cpu for _, _, cpu in spans) / sent)


@dataclass
class NaiveResult:
    messages: int
    rate: float
    compose_ms: float
    send_ms: float
    size: int


def naive(settings: Settings, port: int, count: int) -> NaiveResult:
    """Everything redone per recipient with the stdlib, sent with smtplib's sendmail."""
    release = sample_release(settings)
    smtp = smtplib.SMTP("127.0.0.1", port)
    compose = send = 0.0
    size = 0
    start = time.perf_counter()
    for i in range(count):
        t0 = time.perf_counter()
        rcpt = recipient(settings, i)
        data = naive_message(release, settings, rcpt)  # the same code bench/compose.py times
        t1 = time.perf_counter()
        smtp.sendmail(settings.sender_address, [rcpt.email], data)
        t2 = time.perf_counter()
        compose += t1 - t0
        send += t2 - t1
        size += len(data)
    elapsed = time.perf_counter() - start
    smtp.quit()
    return NaiveResult(
        count, count / elapsed, compose / count * 1000, send / count * 1000, size // count
    )
