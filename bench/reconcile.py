"""Cost of asking a Postfix log which messages in doubt the relay already took: what a
batch with rows in doubt pays after a crash (``DISTRIBUTOR_RECONCILE_LOG``).

Writes a log of N messages as a busy relay writes them (smtpd, cleanup, qmgr, smtp,
removed: five lines each, queue ids reused as Postfix's short ones are), asks for 100
Message-IDs (half of them taken, a quarter cut before the final dot, a quarter never
there; the ones there are in the log's last 5 %: rows in doubt are those of the last
lease), and times, in the same run:

- the floor: reading the file in blocks without looking at it;
- the line-by-line reader ``PostfixLogReconciler`` was before (a regex per line, every
  queued id kept in a set);
- ``PostfixLogReconciler`` (8 MB blocks; a block is searched closely only if it names a
  Message-ID asked about or follows one; only the ids asked about kept).

Each reader's answer is checked: the line-by-line one counted a message cut before its dot
as taken whenever its (reused) queue id had been queued earlier in the log. Run:
``.venv/bin/python bench/reconcile.py [--messages 500000]`` (a 277 MB log, about 10 s).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _report import code_state, say, table

from distributor.mail.reconcile import _POSTFIX, PostfixLogReconciler


def line_by_line(path: Path, message_ids: list[str]) -> set[str]:
    """The reader before this benchmark: a regex per line, every queued id remembered."""
    wanted = {m.encode() for m in message_ids}
    named: dict[bytes, bytes] = {}
    queued: set[bytes] = set()
    with path.open("rb") as lines:
        for line in lines:
            match = _POSTFIX.search(line)
            if match is None:
                continue
            service, queue_id, message_id = match.groups()
            if service == b"qmgr":
                queued.add(queue_id)
            elif message_id in wanted:
                named[queue_id] = message_id
    return {m.decode() for q, m in named.items() if q in queued}


def floor(path: Path, _message_ids: list[str]) -> set[str]:
    """Reading the file in the same blocks, looking at nothing."""
    with path.open("rb") as stream:
        while stream.read(PostfixLogReconciler.BLOCK):
            pass
    return set()


def write_log(path: Path, messages: int, asked: dict[str, str]) -> None:
    """``messages`` messages' worth of a relay's log; the ones in ``asked`` (Message-ID →
    "taken" or "cut") placed at random among them."""
    rng = random.Random(7)
    placed = [(m, fate) for m, fate in asked.items() if fate != "absent"]
    recent = range(messages - messages // 20, messages)  # in doubt: within the last lease
    at = dict(zip(rng.sample(recent, len(placed)), placed, strict=True))
    with path.open("w") as log:
        for n in range(messages):
            qid = f"4F{n % 40000:06X}"  # short queue ids come round again
            stamp = f"Nov 29 0{n * 9 // messages}:{n // 1000 % 60:02d}:{n % 60:02d}"
            message_id, fate = at.get(n, (f"<{n}.{rng.getrandbits(40):x}@news.example.org>", ""))
            log.write(
                f"{stamp} relay postfix/smtpd[4{n % 97}]: {qid}: client=w{n % 7}[10.0.0.{n % 7}]\n"
                f"{stamp} relay postfix/cleanup[3{n % 89}]: {qid}: message-id={message_id}\n"
            )
            if fate == "cut":
                continue
            log.write(
                f"{stamp} relay postfix/qmgr[99]: {qid}: from=<bounces+{n}@news.example.org>,"
                f" size={5000 + n % 3000}, nrcpt=1 (queue active)\n"
                f"{stamp} relay postfix/smtp[5{n % 83}]: {qid}: to=<p{n}@mail{n % 50}.example>,"
                f" relay=mx.mail{n % 50}.example[192.0.2.{n % 200}]:25, delay=0.4,"
                f" delays=0.01/0/0.2/0.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued)\n"
                f"{stamp} relay postfix/qmgr[99]: {qid}: removed\n"
            )


def _judge(found: set[str], expected: set[str]) -> str:
    if found == expected:
        return "right"
    return f"wrong: {len(found - expected)} too many, {len(expected - found)} missing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500_000)
    args = parser.parse_args()
    fates = ["taken"] * 50 + ["cut"] * 25 + ["absent"] * 25
    asked = {f"<release-9.{n}@news.example.org>": fate for n, fate in enumerate(fates)}
    expected = {m for m, fate in asked.items() if fate == "taken"}
    with tempfile.TemporaryDirectory(prefix="reconcile-bench-") as tmp:
        path = Path(tmp) / "mail.log"
        say(f"writing a log of {args.messages:,} messages")
        write_log(path, args.messages, asked)
        size = path.stat().st_size
        readers: list[tuple[str, Callable[[Path, list[str]], set[str]]]] = [
            ("floor: read only", floor),
            ("line by line (before)", line_by_line),
            ("PostfixLogReconciler", lambda p, ids: PostfixLogReconciler(p).accepted(ids)),
        ]
        rows, seconds = [], {}
        for name, reader in readers:
            floor(path, [])  # the file in the page cache for each of them
            say(name)
            best = float("inf")
            for _ in range(3):
                start = time.perf_counter()
                found = reader(path, list(asked))
                best = min(best, time.perf_counter() - start)
            answer = "-" if reader is floor else _judge(found, expected)
            seconds[name] = best
            rows.append([name, f"{best:.2f}", f"{size / best / 1e6:,.0f}", answer])
    before = seconds["line by line (before)"]
    for row in rows:
        row.append(f"{before / seconds[row[0]]:.1f}×")
    print(f"Postfix log: {args.messages:,} messages, {size / 1e6:,.0f} MB; 100 Message-IDs"
          " asked (50 taken, 25 cut before the dot, 25 absent); best of 3, warm cache")  # fmt: skip
    print(table(["reader", "s", "MB/s", "answer", "vs before"], rows))
    print(f"code: {code_state()}")


if __name__ == "__main__":
    main()
