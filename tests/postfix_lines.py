"""Postfix log lines as the real Postfix wrote them (the samples in tests/data/postfix/,
written by tests/postfix_samples.py), for tests that need a relay's log of their own
messages: each line is a sample's line with only its queue id, its Message-ID (and, for a
multi-instance relay, its service name) replaced, so the timestamps, host, process ids,
field order and punctuation stay exactly what Postfix and rsyslog write. A parser change
that stops reading real Postfix lines fails the tests built on these."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from tests.postfix_samples import OUT, TAKEN

MAILLOG = OUT / "maillog.log"
SAMPLES = sorted(OUT.glob("*.log"))


@dataclass(frozen=True)
class _Lines:
    """One message's lines in one sample: ``client`` (smtpd), ``cleanup`` (its Message-ID)
    and ``qmgr`` (queued: the end of its data was taken), and the queue id they carry."""

    queue_id: str
    client: str
    cleanup: str
    qmgr: str


def _message_lines(sample: Path, message_id: str) -> _Lines:
    """The lines Postfix wrote in ``sample`` for the message ``message_id``."""
    text = sample.read_text()
    found = re.search(rf"postfix/cleanup\[\d+\]: (\w+): message-id={re.escape(message_id)}$",
                      text, re.MULTILINE)  # fmt: skip
    assert found, f"{sample.name} has no cleanup line for {message_id}"
    qid = found.group(1)
    mine = [line for line in text.splitlines() if f"]: {qid}: " in line]

    def one(marker: str) -> str:
        [line] = [line for line in mine if f"]: {qid}: {marker}" in line]
        return line

    return _Lines(qid, one("client="), one("message-id="), one("from=<"))


def queue_id(n: int, message_id: str, sample: Path = MAILLOG) -> str:
    """A queue id in the sample's own format (short hexadecimal, or long with its ``z``),
    made from ``n`` and the length of ``message_id``: the same ``n`` and length give the
    same id, as Postfix's short ids come round again."""
    real = _message_lines(sample, TAKEN[0]).queue_id
    if "z" in real:  # long: time, "z", the inode number in an alphabet without vowels
        return real.split("z", 1)[0] + f"z{n:03d}{len(message_id):03d}"
    tail = f"{n:03X}{len(message_id):03X}"  # short: hexadecimal
    return real[: len(real) - len(tail)] + tail


def _as(line: str, real: _Lines, qid: str, message_id: str | None, service: str) -> str:
    """``line`` with the queue id, the Message-ID and the service name replaced."""
    line = line.replace(f": {real.queue_id}: ", f": {qid}: ").replace(" postfix/", f" {service}/")
    if message_id is not None:
        line = re.sub(r"message-id=<[^>]*>$", f"message-id={message_id}", line)
    return line


def lines(
    message_id: str, *, qid: str, queued: bool = True, sample: Path = MAILLOG,
    service: str = "postfix", only: tuple[str, ...] = ("client", "cleanup", "qmgr"),
) -> list[str]:  # fmt: skip
    """What Postfix logs for a message it takes (``queued``: smtpd's client line, cleanup's
    message-id line, the queue manager's line) or whose data ends before its final dot (no
    queue manager line), under queue id ``qid``; ``only`` picks some of those lines, and
    ``service`` is the syslog name (``postfix-out`` for a second instance)."""
    real = _message_lines(sample, TAKEN[0])
    wanted = [kind for kind in only if queued or kind != "qmgr"]
    return [_as(getattr(real, kind), real, qid, message_id, service) for kind in wanted]


def postfix_log(
    path: Path, message_ids: list[str], queued: bool = True, sample: Path = MAILLOG
) -> None:
    """Append what Postfix logs for each message it takes (``queued``) or drops before the
    end of its data (a cleanup line, no queue manager line); the n-th message of a call
    gets ``queue_id(n, its Message-ID)``."""
    with path.open("a") as log:
        for n, message_id in enumerate(message_ids):
            qid = queue_id(n, message_id, sample)
            log.writelines(f"{line}\n" for line in lines(message_id, qid=qid, queued=queued,
                                                         sample=sample))  # fmt: skip
