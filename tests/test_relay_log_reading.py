"""How the relay's record is read before a row in doubt is sent again: a Postfix log in
blocks that end at line ends (each byte once, however long the log), several relays' logs
with a warning only when one cannot be read, and a Maildir whose ``new/`` is gone. (Found
by ``make mutate``: a log read whole, or block after block read again, and a warning on
every look-up left every test green.)"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from distributor.mail.reconcile import (
    AnyLogReconciler,
    MaildirReconciler,
    PostfixLogReconciler,
    _blocks,
    maildir_tag,
)


def accepted_lines(queue_id: str, message_id: str) -> str:
    """The two lines Postfix writes for a message it took whole."""
    return (
        f"Dec  5 10:00:00 relay postfix/cleanup[12]: {queue_id}: message-id={message_id}\n"
        f"Dec  5 10:00:00 relay postfix/qmgr[9]: {queue_id}: from=<press@example.org>, "
        "size=900, nrcpt=1 (queue active)\n"
    )


def test_a_log_is_read_in_blocks_that_end_at_line_ends() -> None:
    """Every byte comes once, in blocks of about the size asked (a longer line makes a
    longer block), each ending at a line's end."""
    lines = [f"line {i} {'x' * (i % 30)}\n".encode() for i in range(200)]
    lines.insert(50, b"y" * 300 + b"\n")  # longer than a block
    data = b"".join(lines)
    size, longest = 64, max(map(len, lines))
    blocks = list(_blocks(io.BytesIO(data), size))
    assert b"".join(blocks) == data
    assert all(block.endswith(b"\n") for block in blocks)
    assert max(map(len, blocks)) <= size + longest
    assert len(blocks) >= len(data) // (size + longest)


def test_several_logs_warn_only_when_one_cannot_be_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two readable logs that do not show a message: it is simply not accepted, no warning.
    One log missing: what the other shows is accepted, and a warning says the rest is sent
    again."""
    first, second = tmp_path / "relay1.log", tmp_path / "relay2.log"
    first.write_text(accepted_lines("4Fh2x0abcz1", "<a@example.org>"))
    second.write_text(accepted_lines("7Gq3y1bcda2", "<b@example.org>"))
    both = AnyLogReconciler([PostfixLogReconciler(first), PostfixLogReconciler(second)])
    with caplog.at_level(logging.WARNING, logger="distributor.mail.reconcile"):
        assert both.accepted(["<a@example.org>", "<c@example.org>"]) == {"<a@example.org>"}
    assert caplog.records == []
    one = AnyLogReconciler([PostfixLogReconciler(tmp_path / "gone.log"),
                            PostfixLogReconciler(second)])  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="distributor.mail.reconcile"):
        assert one.accepted(["<b@example.org>", "<c@example.org>"]) == {"<b@example.org>"}
    assert "cannot read 1 of the relays' logs" in caplog.text


def test_a_maildir_message_already_read_counts_when_new_is_gone(tmp_path: Path) -> None:
    """A message a mail program moved to ``cur/`` was delivered, even when ``new/`` has been
    removed: it is not sent again."""
    (tmp_path / "cur").mkdir()
    (tmp_path / "cur" / f"1700000000.{maildir_tag('<a@example.org>')}.host:2,S").touch()
    assert MaildirReconciler(tmp_path).accepted(["<a@example.org>"]) == {"<a@example.org>"}


def test_a_log_being_compressed_never_hides_the_rotated_log(tmp_path: Path) -> None:
    """``NAME.1.gz`` beside ``NAME.1`` (gzip still writing) is passed over, and ``NAME.1`` is
    the rotated log read, whatever order the directory lists them in: twelve logs, twelve
    orders (a directory's order is a set's here, so one log alone would catch a mistake
    only half the time)."""
    for i in range(12):
        folder = tmp_path / str(i)
        folder.mkdir()
        name = f"maillog{i}"
        (folder / f"{name}.1").write_text(accepted_lines("4Fh2x0abcz1", f"<m{i}@example.org>"))
        (folder / f"{name}.1.gz").write_bytes(b"\x1f\x8b")  # the first bytes gzip writes
        assert PostfixLogReconciler(folder / name).rotated() == folder / f"{name}.1"
        accepted = PostfixLogReconciler(folder / name).accepted([f"<m{i}@example.org>"])
        assert accepted == {f"<m{i}@example.org>"}
