"""The send path's hot loop alone: personalise (``message_for``) and send over the configured
transport (``open_transport(settings).send_stream``) into Postfix's ``smtp-sink``, with no
database and no queue — what a change to the composer or the transport costs per message.

Run: ``.venv/bin/python bench/transport.py [--messages 20000] [--runs 3] [--relays N]``.
``--relays 2`` lists a closed port before the sink, so each run goes through the failover
transport and pays for one failover. Prints the median of ``--runs`` runs with min and max,
in messages per second and in this process's CPU time per message (what a loaded machine
blurs least); asserts nothing. Only needs ``/usr/sbin/smtp-sink`` (no Redis, no database).
(smtp-sink does not offer SMTPUTF8, so it cannot time internationalised addresses.)
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _baselines import sample_release
from _sinks import SmtpSink, free_port

from distributor.core.config import load_settings
from distributor.core.urls import preferences_url, unsubscribe_url
from distributor.mail.compose import Recipient, render_release
from distributor.mail.relays import open_transport
from distributor.mail.transport import Outgoing
from distributor.office.identity import environment_identity


def run(sink_port: int, count: int, relays: int) -> tuple[float, float]:
    """Messages per second for ``count`` messages through the transport into the sink, and
    this process's CPU time per message in µs (the figure a loaded machine blurs least)."""
    urls = [f"smtp://127.0.0.1:{sink_port}"]
    if relays > 1:  # a dead relay first: the run also pays for failing over
        urls = [f"smtp://127.0.0.1:{free_port()}"] * (relays - 1) + urls
    settings = load_settings(
        data_dir=Path(tempfile.mkdtemp(prefix="bench-transport-")),
        smtp_url=",".join(urls),
        site_url="https://news.example.org",
        secret_key="bench-secret-key",  # noqa: S106 - a throwaway key
        sender="Agency Press Office <press@example.org>",
    )
    rendered = render_release(sample_release(settings), settings, environment_identity(settings))
    recipients = [
        Recipient(
            i,
            f"journalist{i}@newsroom{i % 97}.example.com",
            f"Journalist {i}",
            unsubscribe_url(settings, i, None),  # None: a subscriber without a link nonce
            preferences_url(settings, i, None),
        )
        for i in range(count)
    ]

    def items() -> Iterator[Outgoing]:
        for rcpt in recipients:
            yield Outgoing(rcpt, rendered.envelope_from, rcpt.email, rendered.message_for(rcpt))

    sent = 0
    cpu = time.process_time()
    started = time.perf_counter()
    with open_transport(settings) as transport:
        for _item, result in transport.send_stream(items()):
            sent += result.code == 250
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    if sent != count:
        print(f"  only {sent} of {count} accepted", file=sys.stderr)
    return count / elapsed, cpu / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--relays", type=int, default=1)
    args = parser.parse_args()
    sink = SmtpSink()
    try:
        runs = [run(sink.port, args.messages, args.relays) for _ in range(args.runs)]
    finally:
        sink.stop()
    rates, cpu = [r for r, _ in runs], [c for _, c in runs]
    print(f"relays={args.relays} messages={args.messages}: "
          f"median {statistics.median(rates):,.0f}/s (min {min(rates):,.0f}, "
          f"max {max(rates):,.0f}); client CPU median {statistics.median(cpu):.1f} µs/message "
          f"(min {min(cpu):.1f}, max {max(cpu):.1f}) over {args.runs} runs")  # fmt: skip


if __name__ == "__main__":
    main()
