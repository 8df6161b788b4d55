"""Every shell example of the README, run.

Each command line of a ``sh`` block is either in ``RUN`` — run here as written, in order, in a
temporary directory with a fresh data directory, against real services (SQLite, the test
Redis, the Maildir outbox, a real ``distributor serve``, real workers and beat) and checked
for its exit status and for what the README says it prints or does — or in ``NOT_HERE`` with
the reason it cannot run here. A new example that is in neither fails
``test_every_shell_example_is_run_or_listed_with_why``; an entry whose line left the README
fails it too. A README example that is wrong is fixed in the README.

What the test changes in a line before running it, and nothing else (``SUBSTITUTIONS``):
``localhost:8000`` is the port of the test's own ``distributor serve``, which is started with
``--port``; ``/var/mail/bounces`` is a Maildir the test fills; ``$TOKEN`` is a token it
creates, ``$PASSWORD`` a password it chooses. ``curl`` is wrapped to add ``-sS`` and print
the status after the body. A plain ``distributor …`` line (nothing for a shell to do but
split its words: ``IN_PROCESS``) runs its ``main()`` in this process, with the same
environment and directory (``tests/processes.py: invoke_main``), except the first, which
runs through bash like the rest: a process costs 1.2-2 s to start and there are dozens of
them. The files the examples name (release.md, fr.md, fixed.md,
people.csv, minister.jpg, photos/…) are made from the README's own release example where
there is one. ``DISTRIBUTOR_SWEEP_SECONDS`` is 2 so that beat's first sweep comes within
seconds, not 30.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
import redis
from PIL import Image
from sqlalchemy import select

from distributor.core import heartbeat
from distributor.core.config import Settings, check_secret_key, load_settings
from distributor.core.db import dispose_engines, session_scope
from distributor.core.models import Delivery, Release, Subscriber
from distributor.mail.verp import BounceAddresses
from tests.bounce_mail import postfix_dsn
from tests.helpers import free_port, make_release
from tests.processes import invoke_main, running_shell, settings_env, wait_until
from tests.redis_db import empty

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SHELL_BLOCKS = {"sh", "shell", "bash", "console", "zsh"}
# A line in a block that is not marked as shell, yet would be one: it must be in a sh block.
LOOKS_LIKE_SHELL = re.compile(r"^\s*(distributor|curl|docker|make|pip|python3?|cp|\$EDITOR)\s")
# The README's scheduled time, in the examples of the CLI and the API: in the future, since a
# past one is refused. Once it has passed, the test says to move it forward (both places).
SCHEDULED = "2028-01-14T09:00+01:00"

NOT_HERE: dict[str, str] = {
    "make demo": "runs a 1,000-subscriber demo with its own worker until it is done (minutes); "
    "every command it stands for is run below",
    "make test": "the test suite this test is part of",
    "$EDITOR .env": "an editor, interactive",
    "docker compose up -d": "needs a Docker daemon, which this machine has not; "
    "tests/test_deployment.py checks the compose file and every command it runs",
    "docker compose ps": "needs a Docker daemon (see docker compose up -d)",
    "docker compose exec nginx sh -c 'cd /var/log/distributor-stats && mv access.log "
    "access.log.1 && nginx -s reopen'": "needs a Docker daemon; tests/test_statistics_nginx.py "
    "renames the log and reopens a real nginx the same way",
    "docker compose exec web distributor topics add climate --name Climate": "needs a Docker "
    "daemon; the same command runs below without Docker",
    'docker compose run --rm -v "$PWD/releases:/releases:ro" web distributor publish '
    "/releases/launch.md": "needs a Docker daemon; `distributor publish` runs below",
    "make install": "makes the .venv this test runs in (pip from the package registry)",
    'distributor users create camille@example.org --role admin --name "Camille Martin"': "asks "
    "for the password on a terminal, twice; the line after it makes an account the same way "
    "with the password on standard input",
    "distributor users password jo@example.org": "asks for the new password on a terminal, "
    "twice; tests/test_cli_users.py gives it on standard input",
    "pip install -e '.[embedded]'": "installs into the environment running this test (pip from "
    "the package registry); make install, which made it, installs the same extra",
}

SUBSTITUTIONS = (
    (r"localhost:8000", "127.0.0.1:{port}"),
    (r"^distributor serve$", "distributor serve --port {port}"),
    (r"/var/mail/bounces", "{home}/bounces"),
)
# A line with nothing for a shell to do but split words: no variable, pipe, redirection,
# list, background job, substitution or glob.
IN_PROCESS = re.compile(r"^distributor (?!serve|worker|beat)[^$|<>;&`*?()\\]*$")
CURL = "curl() { command curl -sS -w '\\n%{http_code}\\n' \"$@\"; }"


@dataclass(frozen=True)
class Example:
    """One command line of a shell block: as the README writes it (its comment cut off)."""

    command: str
    line: int  # in README.md
    block: int  # which shell block, counted from 0


def cut_comment(line: str) -> str:
    """``line`` without a ``#`` comment: one outside quotes, at the start or after a blank."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def fenced_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """Each fenced block: its language (empty when none), the README line its first line is
    on, and its lines."""
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,})\s*([\w-]*)", lines[i])
        if opening is None:
            i += 1
            continue
        fence, body = opening.group(2), []
        start = i + 2
        i += 1
        while i < len(lines) and not lines[i].strip().startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        yield opening.group(3).lower(), start, body


def shell_examples(text: str) -> list[Example]:
    """Every command line of the README's shell blocks, in order (continued lines joined)."""
    found: list[Example] = []
    shell_block = -1
    for lang, start, body in fenced_blocks(text):
        if lang not in SHELL_BLOCKS:
            for n, line in enumerate(body):
                assert not LOOKS_LIKE_SHELL.match(line), (
                    f"README.md:{start + n}: {line!r} looks like a shell command in a "
                    f"```{lang} block: put it in a ```sh block (tests/test_readme.py runs those)"
                )
            continue
        shell_block += 1
        pending = ""
        for n, line in enumerate(body):
            command = cut_comment(pending + line)
            if command.endswith("\\"):
                pending = command[:-1] + " "
                continue
            pending = ""
            if command.strip():
                found.append(Example(command.strip(), start + n, shell_block))
    return found


# --- what the examples need, and what they do ----------------------------------------------


@dataclass
class Scene:
    """The directory the examples run in, its services and what the checks need."""

    home: Path  # where the examples run, and the data directory's parent
    settings: Settings
    env: dict[str, str]
    port: int
    processes: ExitStack
    release_text: str
    dir: Path = Path()  # the current block's directory: home, unless a block needs its own
    answers: dict[str, dict[str, object]] = field(default_factory=dict)  # for later lines
    assignments: list[str] = field(default_factory=list)  # shell variables set by a line
    shown_as_process: bool = False  # a `distributor` line has run as a real process

    def line(self, command: str) -> str:
        for pattern, new in SUBSTITUTIONS:
            command = re.sub(pattern, new.format(port=self.port, home=self.home), command)
        return command

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        line = self.line(command)
        if IN_PROCESS.match(line) and self.shown_as_process:
            # A plain `distributor …` line, nothing for the shell to do but split it: its
            # main() in this process, with this environment and directory (a process costs
            # 1.2-2 s to start, and the README has dozens of these). The first one ran as a
            # real process through bash, as a user's shell runs them all.
            return invoke_main(self.env, *shlex.split(line)[1:], cwd=self.dir)
        self.shown_as_process = self.shown_as_process or line.startswith("distributor ")
        script = "\n".join([CURL, *self.assignments, line])
        return subprocess.run(
            ["bash", "-c", script], env=self.env, cwd=self.dir, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip

    def outbox(self) -> list[bytes]:
        new = self.settings.outbox_dir / "new"
        return [p.read_bytes() for p in new.iterdir()] if new.exists() else []

    def deliveries(self, release_id: int) -> list[Delivery]:
        with session_scope(self.settings) as session:
            rows = session.scalars(select(Delivery).where(Delivery.release_id == release_id))
            return list(rows)

    def api(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", headers=headers, timeout=10)


Check = Callable[[Scene, subprocess.CompletedProcess[str]], None]


@dataclass(frozen=True)
class Step:
    """How a README line is run and what must hold after it: ``check`` (on the finished
    command), or for a long-running line ``ready``, polled until true (``keep``: left running
    for the lines after it, else stopped once ready)."""

    check: Check | None = None
    status: int = 0
    before: Callable[[Scene], None] | None = None
    ready: Callable[[Scene, Path], bool] | None = None
    keep: bool = True
    assigns: bool = False  # a line setting shell variables for the rest of its block


def has(*patterns: str, where: str = "both") -> Check:
    """A check that each regex is found in the command's stdout (or stderr, or both)."""

    def check(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
        text = {"out": result.stdout, "err": result.stderr}.get(
            where, result.stdout + result.stderr
        )
        for pattern in patterns:
            assert re.search(pattern, text, re.M), f"{pattern!r} not in:\n{text}"

    return check


def both(*checks: Check) -> Check:
    def check(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
        for one in checks:
            one(scene, result)

    return check


def http(status: int, *patterns: str) -> Check:
    """A check of a curl example: the status it answered (the wrapper's last line), and
    what its body holds."""

    def check(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
        body, _, code = result.stdout.rstrip("\n").rpartition("\n")
        assert code == str(status), f"HTTP {code}, not {status}: {body}\n{result.stderr}"
        for pattern in patterns:
            assert re.search(pattern, body), f"{pattern!r} not in {body}"

    return check


def json_body(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    body = result.stdout.rstrip("\n").rpartition("\n")[0]
    value = json.loads(body)
    assert isinstance(value, dict)
    return value


# --- the files the examples name -------------------------------------------------------------


def readme_release(text: str) -> str:
    """The README's release example (the block that opens with front matter)."""
    for lang, _, body in fenced_blocks(text):
        if not lang and body and body[0] == "---" and any(b.startswith("title:") for b in body):
            return "\n".join(body) + "\n"
    raise AssertionError("the README has no release example")


def variant(release: str, **fields: str) -> str:
    """The release with front matter ``fields`` replaced (each must be in it, so that a
    change of the README's example that this no longer fits is loud)."""
    for name, value in fields.items():
        release, n = re.subn(rf"^{name}: .*$", f"{name}: {value}", release, count=1, flags=re.M)
        assert n == 1, f"the README's release example has no {name}:"
    return release


def image(path: Path, size: tuple[int, int] = (320, 240)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (30, 90, 160)).save(path, "JPEG")


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def make_files(scene: Scene) -> None:
    d, text = scene.home, scene.release_text
    (d / "release.md").write_text(text)
    for src in re.findall(r"src: ([^,\s]+\.(?:jpe?g|png))", text):
        if "://" not in src and not src.startswith("/"):
            image(d / src)
    for href in re.findall(r"href: ([^,\s]+\.pdf)", text):  # a document next to the release
        if "://" not in href and not href.startswith("/"):
            (d / href).parent.mkdir(parents=True, exist_ok=True)
            (d / href).write_bytes(b"%PDF-1.4\n% the README's backgrounder\n%%EOF\n")
    (d / "fr.md").write_text(variant(
        text, title="L'Agence signe un accord de coopération sur la surveillance du climat",
        lang="fr", slug="accord-climat", translation_of="climate-agreement",
    ))  # fmt: skip
    (d / "fixed.md").write_text(text.replace("The lead paragraph…", "The lead paragraph, fixed."))
    assert (d / "fixed.md").read_text() != text
    (d / "people.csv").write_text(
        "email,name,language,topics\n"
        "ann@example.com,Ann,en,climate\nbob@example.com,Bob,en,climate\n"
        "josé@example.org,José,fr,climate\n",
        encoding="utf-8",
    )
    shutil.copy(ROOT / ".env.example", d / ".env.example")  # as in a checkout


# --- the steps -------------------------------------------------------------------------------


def workers_ready(scene: Scene, log: Path) -> bool:
    """The worker consumes and beat's sweep keeps the heartbeat (looked at anew)."""
    return "ready." in log.read_text() and heartbeat.health(scene.settings).alive


def forget_heartbeat(scene: Scene) -> None:
    redis.Redis.from_url(str(scene.settings.broker_url)).delete(heartbeat.KEY)


def one_host_ready(scene: Scene, log: Path) -> bool:
    text = log.read_text()
    return "beat: Starting" in text and "ready." in text and heartbeat.health(scene.settings).alive


def published_and_sent(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert result.stdout.splitlines() == [
        "release 1 created: /releases/climate-agreement",
        "release 1 published; the workers are sending it",
        "sending: 2 recipients; no earlier send of 1,000 or more to time it by",
    ], result.stdout + result.stderr
    # Every English subscriber of the topic gets it, once, in the outbox.
    wait_until(lambda: {d.status for d in scene.deliveries(1)} == {"sent"}, 60, "release 1 sent")
    assert len(scene.deliveries(1)) == 2
    assert len([m for m in scene.outbox() if b"climate-agreement" in m]) >= 2


def draft_made(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert result.stdout == "2\n", result.stdout  # the id alone, for ID=$(…)
    assert "release 2 created: /releases/accord-climat" in result.stderr


def preview_written(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    files = [Path(p) for p in result.stdout.split()]
    assert [f.name for f in files] == ["release-2-fr.html", "release-2-fr.txt"]
    assert all((scene.dir / f).stat().st_size > 0 for f in files)


def sent_as_tests(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert result.stdout.count(": sent (250") == 2, result.stdout
    subjects = {str(m["To"]): str(m["Subject"]) for m in map(parse, scene.outbox())}
    for address in ("a@example.org", "b@example.org"):
        assert subjects[address].startswith("[TEST] L'Agence signe"), subjects
    assert not scene.deliveries(2)  # nothing recorded


def scheduled(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert re.search(r"^release 2 scheduled for 2028-01-14 09:00 CET \(08:00 UTC\);", result.stdout)


def sent_in_french(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert result.stdout.splitlines() == [
        "release 2 published; the workers are sending it",
        "sending: 1 recipient; no earlier send of 1,000 or more to time it by",
    ]
    wait_until(lambda: [d.status for d in scene.deliveries(2)] == ["sent"], 60, "release 2 sent")
    assert any("josé@example.org".encode() in m and b"accord-climat" in m for m in scene.outbox())


def bounce_waiting(scene: Scene) -> None:
    """A real report (as Postfix writes them) of a hard bounce for bob's copy of release 1,
    sent to its VERP address, in the Maildir the example reads."""
    with session_scope(scene.settings) as session:
        bob = session.scalar(select(Subscriber).where(Subscriber.email == "bob@example.com"))
        assert bob is not None
        delivery = session.scalar(
            select(Delivery).where(Delivery.release_id == 1, Delivery.subscriber_id == bob.id)
        )
        assert delivery is not None
        verp = BounceAddresses(scene.settings).address(delivery.id)
    for sub in ("tmp", "new", "cur"):
        (scene.home / "bounces" / sub).mkdir(parents=True, exist_ok=True)
    report = postfix_dsn(verp, "bob@example.com", "5.1.1")
    (scene.home / "bounces" / "new" / "1764921600.M1P1.mail").write_bytes(report)


def bounce_recorded(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert "1 message(s): 1 hard bounce(s), 0 soft, 1 subscriber(s) now bounced" in result.stdout
    assert not list((scene.home / "bounces" / "new").iterdir())  # moved, marked seen
    assert [p.name[-4:] for p in (scene.home / "bounces" / "cur").iterdir()] == [":2,S"]


def newsroom_served(scene: Scene, log: Path) -> bool:
    try:
        english = scene.api("/")
    except httpx.TransportError:
        return False
    french = scene.api("/", **{"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert english.status_code == french.status_code == 200, log.read_text()
    assert '<html lang="en"' in english.text and '<html lang="fr"' in french.text
    return True


def api_directory(scene: Scene) -> None:
    """The README's API example makes release 7, so drafts 3 to 6 come first; it runs in a
    directory of its own, with its minister.jpg."""
    with session_scope(scene.settings) as session:
        last = session.scalar(select(Release.id).order_by(Release.id.desc()).limit(1))
    for n in range((last or 0) + 1, 7):
        make_release(scene.settings, title=f"Padding {n}", slug=f"padding-{n}")
    scene.dir = scene.home / "api"
    scene.dir.mkdir()
    image(scene.dir / "minister.jpg", (1600, 1200))


def media_stored(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    http(201, r'"src": ?"/media/[0-9a-f]{64}/for-pages.jpg"')(scene, result)
    scene.answers["media"] = json_body(result)


def api_release(scene: Scene) -> None:
    """The README's release, a release of its own (title, slug), whose image is the one
    /api/media answered for minister.jpg (a release sent over HTTP names no local file)."""
    fields = scene.answers["media"]["image"]
    assert isinstance(fields, dict)
    entry = json.dumps({**fields, "alt": "The minister", "credit": "Photo: Press Office"})
    text = variant(scene.release_text, title="Agency opens its climate data", slug="climate-data")
    text, n = re.subn(r"^  - \{src: (?!\"?https?:)[^\n]*$", f"  - {entry}", text, flags=re.M)
    assert n == 1, "the README's release example has no local image"
    text = re.sub(r"\{href: (?!/|\"?https?:)", "{href: /", text)  # its document: a site path
    (scene.dir / "release.md").write_text(text)


def corrected(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert "release 1 corrected; the site is being regenerated (no email sent)" in result.stdout
    page = scene.settings.public_dir / "releases" / "climate-agreement.html"
    wait_until(lambda: "Corrected on" in page.read_text(), 30, "the page marked corrected")
    assert "The lead paragraph, fixed." in page.read_text()


def report_written(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert result.stderr.strip() == "2 deliveries written to deliveries.csv"
    path = scene.dir / "deliveries.csv"
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert sorted(r["email"] for r in rows) == ["ann@example.com", "bob@example.com"]
    assert {r["status"] for r in rows} == {"sent"}
    assert path.stat().st_mode & 0o077 == 0  # addresses: the owner's only


def api_test_sent(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    http(200, r"me@example.org")(scene, result)
    subjects = [
        str(m["Subject"]) for m in map(parse, scene.outbox()) if m["To"] == "me@example.org"
    ]
    assert subjects == ["[TEST] Agency opens its climate data"], subjects


def env_copied(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    assert (scene.dir / ".env").read_bytes() == (ROOT / ".env.example").read_bytes()


def key_is_strong(scene: Scene, result: subprocess.CompletedProcess[str]) -> None:
    key = result.stdout.strip()
    assert len(key) >= 43 and "\n" not in key
    check_secret_key(load_settings(secret_key=key, data_dir=scene.home / "unused"))


RUN: dict[str, Step] = {
    # The two commands: both in NOT_HERE.
    # Using it
    "distributor db upgrade": Step(has(r"^database is up to date \(sqlite:")),
    "distributor topics add climate --name Climate --name fr:Climat": Step(
        has(r"^topic climate added \(Climate, Climat\)$")
    ),
    "distributor subscribers import people.csv --confirmed "
    '--consent-source "press list 2026"': Step(has(r"^3 added, 0 updated, 0 left unchanged")),
    "distributor worker &  distributor beat &": Step(ready=workers_ready, keep=False),
    "distributor worker --with-beat": Step(before=forget_heartbeat, ready=one_host_ready),
    "distributor publish release.md": Step(published_and_sent),
    "distributor releases create fr.md": Step(draft_made),
    "distributor releases list --state draft": Step(
        has(
            r"^id\tstate\tlanguage\tdate\tslug\ttitle$",
            r"^2\tdraft\tfr\t2026-11-20 09:00 CET\taccord-climat\tL'Agence signe un accord",
        )
    ),
    'distributor releases list --search "climate agreement" --topic climate': Step(
        has(r"^id\tstate\tlanguage\tdate\tslug\ttitle$", r"^1\tpublished\ten\t")
    ),
    "distributor releases duplicate 1": Step(
        has(r"^3$", r"^release 3 created from release 1: /releases/climate-agreement-copy$")
    ),
    "distributor releases translate 3 --lang fr": Step(
        has(r"^4$", r"^release 4 \(fr\) created from release 3: /releases/climate-agreement-co")
    ),
    "distributor releases show 2": Step(
        has(
            r"^state: +draft$",
            r"^slug: +accord-climat$",
            r"^translation of: +1$",
            r"^deliveries: +planned 0 · pending 0 · sent 0",
        )
    ),
    "distributor releases update 2 fr.md": Step(
        has(r"^release 2 updated: /releases/accord-climat$")
    ),
    "distributor releases preview 2 --out preview": Step(preview_written),
    "distributor releases test 2 --to a@example.org,b@example.org": Step(sent_as_tests),
    f"distributor releases publish 2 --at {SCHEDULED}": Step(scheduled),
    f"distributor releases publish 2 --at {SCHEDULED} --advance now": Step(
        has(r"^release 2 scheduled for ", r"^advance copies to accredited journalists: ")
    ),
    "distributor releases unschedule 2": Step(has(r"^release 2 is a draft again; nothing was")),
    "distributor releases publish 2 --at now": Step(sent_in_french),
    "distributor releases status 1 --watch": Step(
        has(r"planned 2 · sent 2 · deferred 0 · failed 0", r"^the sweep runs \(last \d+ s ago\)$")
    ),
    "distributor releases correct 1 fixed.md": Step(corrected),
    'distributor releases withdraw 1 --by "Jane Doe" --reason "Figures were wrong"': Step(
        has(r"^release 1 withdrawn; 0 deliveries not sent were cancelled$")
    ),
    "distributor releases report 1 --csv --out deliveries.csv": Step(report_written),
    "distributor audit --action withdraw": Step(
        has(r"^\S+ \S+ \S+  Jane Doe  withdraw  release 1  cancelled=0 reason=Figures were wrong$")
    ),
    "distributor ledger fold --dry-run": Step(
        has(r"^DISTRIBUTOR_LEDGER_RETENTION_DAYS is unset or 0: every ledger row is kept$")
    ),
    "distributor serve": Step(ready=newsroom_served),
    "distributor site build": Step(has(r"^\d+ files in \S+/var/public: \d+ written")),
    "distributor bounces ingest /var/mail/bounces": Step(bounce_recorded, before=bounce_waiting),
    "distributor subscribers export --email ann@example.com": Step(
        has(r'"email": "ann@example.com"', r'"topics": \[\s*"climate"')
    ),
    'distributor subscribers accredit ann@example.com --outlet "The Daily" --role '
    '"Science editor"': Step(
        has(r"^granted: ann@example.com \(Science editor, The Daily\) receives embargoed ")
    ),
    "distributor subscribers accreditations": Step(
        has(r"^email\tstatus\toutlet\trole\t", r"^ann@example.com\tgranted\tThe Daily\tScience")
    ),
    "distributor subscribers erase --email ann@example.com": Step(
        has(r"^erased ann@example.com: subscriber 1, 1 topic subscription\(s\), 1 delivery")
    ),
    # The press office API
    "distributor tokens create press-desk": Step(has(r"^\S{30,}$", where="out")),
    "distributor tokens list": Step(
        has(r"^name\tscopes\tcreated\tlast used\trevoked$", r"^press-desk\treleases,subscribers\t")
    ),
    "distributor tokens revoke press-desk": Step(has(r"^token press-desk revoked$")),
    'curl -H "Authorization: Bearer $TOKEN" '
    "'http://localhost:8000/api/subscribers?q=ann&topic=climate'": Step(
        http(200, r'^\{"total": ?0,')  # ann was erased above
    ),
    'H="Authorization: Bearer $TOKEN"; API=http://localhost:8000/api': Step(assigns=True),
    'curl -H "$H" -F file=@minister.jpg $API/media': Step(media_stored, before=api_directory),
    "curl -H \"$H\" -H 'Content-Type: text/markdown' --data-binary @release.md $API/releases": Step(
        http(201, r'"id": ?7,', r'"state": ?"draft"'), before=api_release
    ),
    'curl -H "$H" $API/releases/7/preview': Step(http(200, r'"subject"', r'"html"', r'"text"')),
    'curl -H "$H" --json \'{"to": ["me@example.org"]}\' $API/releases/7/test': Step(api_test_sent),
    "curl -H \"$H\" -H 'Idempotency-Key: 3f6c1e9a-8d2b-4c1e-9b7a-2f4d6e8a0c11' --json "
    f'\'{{"at": "{SCHEDULED}"}}\' $API/releases/7/publish': Step(
        http(200, r'"state": ?"scheduled"')
    ),
    'curl -H "$H" $API/releases/7': Step(
        http(200, r'"state": ?"scheduled"', r'"scheduled_at": ?"2028-01-14T08:00:00')
    ),
    # The dashboard
    "printf '%s\\n' \"$PASSWORD\" | distributor users create jo@example.org --role writer": Step(
        has(r"^writer jo@example.org created$")
    ),
    "distributor users list": Step(
        has(r"^email\trole\tname\tlast login\tdisabled$", r"^jo@example.org\twriter\t-\t-\t-$")
    ),
    "distributor users role jo@example.org publisher": Step(
        has(r"^jo@example.org is now publisher$")
    ),
    "distributor users disable jo@example.org": Step(
        has(r"^jo@example.org disabled; its sessions have ended$")
    ),
    "distributor users enable jo@example.org": Step(has(r"^jo@example.org enabled$")),
    'distributor users invite sam@example.org --role writer --name "Sam Lee"': Step(
        has(r"^sam@example.org invited as writer: the link goes by email, valid 7 days$")
    ),
    "distributor users reset-2fa jo@example.org": Step(
        has(r"^two-factor login of jo@example.org is off$")
    ),
    'distributor contacts add "Ann Lee" --role Spokesperson --phone "+33 1 23 45 67 89" '
    "--email ann.lee@example.org": Step(has(r"^press contact 1 added \(Ann Lee\)$")),
    "distributor contacts list": Step(
        has(
            r"^id\tname\trole\tphone\temail$",
            r"^1\tAnn Lee\tSpokesperson\t\+33 1 23 45 67 89\tann.lee@example.org$",
        )
    ),
    'distributor settings set postal_address "1 rue de la Paix, 75002 Paris"': Step(
        has(r"^settings changed: postal_address$")
    ),
    "distributor settings show": Step(has(r"^postal_address\s+1 rue de la Paix, 75002 Paris$")),
    # Production
    "cp .env.example .env": Step(env_copied),
    'python3 -c "import secrets; print(secrets.token_urlsafe(32))"': Step(key_is_strong),
    'python3 -c "import secrets; print(secrets.token_urlsafe(24))"': Step(
        has(r"^[A-Za-z0-9_-]{32}$", where="out")  # what goes into a URL as it is
    ),
    # Security
    "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'": Step(key_is_strong),
}


def test_every_shell_example_is_run_or_listed_with_why() -> None:
    examples = shell_examples(README.read_text())
    commands = [e.command for e in examples]
    unhandled = [f"README.md:{e.line}: {e.command}" for e in examples
                 if e.command not in RUN and e.command not in NOT_HERE]  # fmt: skip
    assert not unhandled, (
        "shell examples neither run by tests/test_readme.py (RUN) nor listed as not runnable "
        "here with why (NOT_HERE):\n" + "\n".join(unhandled)
    )
    gone = [c for c in [*RUN, *NOT_HERE] if c not in commands]
    assert not gone, "tests/test_readme.py handles lines the README no longer has:\n" + "\n".join(
        gone
    )
    assert not set(RUN) & set(NOT_HERE)
    assert all(reason.strip() for reason in NOT_HERE.values())


def test_a_comment_is_cut_only_outside_quotes() -> None:
    assert cut_comment("distributor serve   # newsroom") == "distributor serve"
    assert cut_comment("curl -H 'X: #1' $API  # a") == "curl -H 'X: #1' $API"
    assert cut_comment('echo "a # b"') == 'echo "a # b"'
    assert cut_comment("# only a comment") == ""


@pytest.fixture
def scene(tmp_path: Path, redis_url: str) -> Iterator[Scene]:
    empty(redis_url)
    settings = load_settings(data_dir=tmp_path / "var", broker_url=redis_url, sweep_seconds=2)
    env = settings_env(settings)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # distributor, python3
    with ExitStack() as processes:
        yield Scene(tmp_path, settings, env, free_port(), processes, readme_release(
            README.read_text()), dir=tmp_path)  # fmt: skip
    dispose_engines()


def test_the_readme_shell_examples_do_what_it_says(scene: Scene) -> None:
    assert datetime.fromisoformat(SCHEDULED) > datetime.now(UTC), (
        f"the README's examples schedule a release for {SCHEDULED}, now past (and refused as "
        "such): move that time forward in README.md and in tests/test_readme.py's SCHEDULED"
    )
    make_files(scene)
    block = -1
    for example in shell_examples(README.read_text()):
        if example.command in NOT_HERE:
            continue
        step = RUN[example.command]
        where = f"README.md:{example.line}: {example.command}"
        if example.block != block:  # shell variables and directories live as long as a block
            block, scene.assignments, scene.dir = example.block, [], scene.home
        if "$PASSWORD" in example.command:
            scene.env.setdefault("PASSWORD", "a pass phrase for the README")
        if "$TOKEN" in example.command and "TOKEN" not in scene.env:
            made = scene.run("distributor tokens create readme-test")
            assert made.returncode == 0, made.stderr
            scene.env["TOKEN"] = made.stdout.strip()
        if step.before is not None:
            step.before(scene)
        if step.ready is not None:
            name = re.sub(r"\W+", "-", example.command)[:40]
            with ExitStack() as held:
                log = scene.home / "logs" / f"{name}.log"
                held.enter_context(running_shell(scene.line(example.command), scene.env,
                                                 scene.dir, log))  # fmt: skip
                ready = step.ready
                wait_until(lambda: ready(scene, log), 60, where)  # noqa: B023 - called here
                if step.keep:
                    scene.processes.enter_context(held.pop_all())
            continue
        result = scene.run(example.command)
        assert result.returncode == step.status, (
            f"{where}\nexit {result.returncode}, not {step.status}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}"
        )
        if step.assigns:
            scene.assignments.append(scene.line(example.command))
        if step.check is not None:
            try:
                step.check(scene, result)
            except AssertionError as exc:
                raise AssertionError(f"{where}\n{exc}") from exc
    assert os.environ.get("DISTRIBUTOR_DATA_DIR") is None  # nothing leaked into this process
