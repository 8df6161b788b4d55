"""The whole life of one release through the `distributor` command, as a press officer runs it (its
main(), in this process): create, preview, test, schedule, unschedule, publish, watch it go out
through a real worker into a real SMTP server, correct with a notice, report, withdraw, and read the
audit trail."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from distributor.core.config import Settings
from tests.helpers import release_text
from tests.processes import invoke_cli, running_worker, wait_until
from tests.smtp_server import SMTPServer

PEOPLE = ["ann@example.com", "bob@example.org", "cat@example.net"]


def test_a_release_from_draft_to_withdrawal_through_the_cli(
    sqlite_settings: Settings, redis_url: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    live = sqlite_settings.model_copy(update={"broker_url": redis_url, "smtp_url": smtp_server.url})

    def run(*args: str) -> str:
        done = invoke_cli(live, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    run("db", "upgrade")
    run("topics", "add", "climate", "--name", "Climate", "--name", "fr:Climat")
    people = tmp_path / "people.csv"
    rows = "".join(f"{email},,en,climate\n" for email in PEOPLE)
    people.write_text("email,name,language,topics\n" + rows)
    run("subscribers", "import", str(people), "--confirmed", "--consent-source", "press list")
    release = tmp_path / "release.md"
    release.write_text(release_text())
    rid = run("releases", "create", str(release)).strip()

    run("releases", "preview", rid, "--out", str(tmp_path / "preview"))
    assert "Agency signs agreement" in (tmp_path / "preview" / f"release-{rid}-en.txt").read_text()
    run("releases", "test", rid, "--to", "desk@example.org")
    (test_message,) = smtp_server.handler.messages
    assert test_message.parsed()["Subject"] == "[TEST] Agency signs agreement"

    scheduled = run("releases", "publish", rid, "--at", "2031-01-05T09:00+01:00")
    assert "scheduled" in scheduled and "09:00" in scheduled
    assert "a draft again" in run("releases", "unschedule", rid)

    with running_worker(live, tmp_path):
        assert "published" in run("releases", "publish", rid)
        status = run("releases", "status", rid, "--watch")
        assert "sent 3" in status and "failed 0" in status
        wait_until(lambda: len(smtp_server.handler.messages) == 1 + len(PEOPLE), 30, "the release")

        fixed = tmp_path / "fixed.md"
        fixed.write_text(release_text().replace("The Agency today signed", "The Agency signed"))
        corrected = run("releases", "correct", rid, str(fixed), "--notify")
        assert "3 correction notices planned" in corrected
        wait_until(
            lambda: len(smtp_server.handler.messages) == 1 + 2 * len(PEOPLE), 30, "the notices"
        )
    notices = smtp_server.handler.messages[1 + len(PEOPLE) :]
    assert sorted(m.rcpt for m in notices) == PEOPLE
    assert all(str(m.parsed()["Subject"]).startswith("Correction: ") for m in notices)

    rows = list(csv.DictReader(io.StringIO(run("releases", "report", rid, "--csv"))))
    assert sorted(r["email"] for r in rows) == PEOPLE and {r["status"] for r in rows} == {"sent"}
    assert "cancelled" in run("releases", "withdraw", rid, "--by", "Jane Doe")

    trail = run("audit", "--limit", "20")
    for action in ("import", "schedule", "unschedule", "publish", "correct", "withdraw"):
        assert action in trail, (action, trail)
    assert "Jane Doe" in trail
