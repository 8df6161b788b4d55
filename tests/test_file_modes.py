"""Private files stay private, the public site stays public (issue 11, finding 9).

The data directory is 0711 (others pass through to public/, cannot list it); the SQLite
database and its -wal and -shm, the outbox (dirs 0700, messages 0600), the generated key,
the demo's log and the exports of personal data are the owner's only, whatever the umask;
modes an older version left loose are tightened with a warning. Another user (nginx as
`nobody`) serves the site from the same data directory and reads nothing else."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from distributor.core.config import Settings, load_settings
from distributor.core.db import dispose_engines, get_engine, upgrade
from distributor.core.filemodes import private_dir
from distributor.mail.transport import MaildirTransport
from distributor.outbox import sending
from distributor.site import builder
from tests.helpers import TEST_SECRET_KEY, published
from tests.nginx_conf import running_nginx
from tests.processes import run_cli

SITE = "https://news.example.org"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def install(data_dir: Path, **overrides: object) -> Settings:
    """A data directory used as the demo uses it: the database migrated, a release sent to
    three subscribers through the Maildir outbox, the site built, the key generated — under
    umask 002 (Debian's and Ubuntu's for users), which would leave everything group-writable
    and world-readable."""
    s = load_settings(data_dir=data_dir, site_url=SITE, **overrides)  # type: ignore[arg-type]
    with umask(0o002):
        upgrade(s)
        release_id = published(s, 3)
        report = sending.send_batch(s, release_id)
        assert report.outcomes["sent"] == 3, report
        builder.regenerate_site(s)
        s.effective_secret_key  # noqa: B018 - generates the key file
    return s


def private_paths(s: Settings) -> list[Path]:
    return [s.data_dir / "distributor.db", s.outbox_dir, *s.outbox_dir.iterdir(),
            *(s.outbox_dir / "new").iterdir(), s.data_dir / "secret_key"]  # fmt: skip


def test_a_new_install_keeps_its_private_files_private(tmp_path: Path) -> None:
    s = install(tmp_path / "var")
    db = s.data_dir / "distributor.db"
    assert mode(s.data_dir) == 0o711
    # The engine still holds its connections: the WAL and shared memory files exist.
    wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
    assert wal.exists() and shm.exists()
    assert {p.name: mode(p) for p in (db, wal, shm)} == dict.fromkeys(
        (db.name, wal.name, shm.name), 0o600
    )
    assert mode(s.outbox_dir) == 0o700
    assert {d.name: mode(d) for d in s.outbox_dir.iterdir()} == dict.fromkeys(
        ("tmp", "new", "cur"), 0o700
    )
    messages = list((s.outbox_dir / "new").iterdir())
    assert len(messages) == 3 and {mode(m) for m in messages} == {0o600}
    assert b"/unsubscribe/" in messages[0].read_bytes()  # what made them private
    assert mode(s.data_dir / "secret_key") == 0o600
    # The site is for everyone: readable and traversable by others.
    public_files = [p for p in s.public_dir.rglob("*") if p.is_file() and p.name[0] != "."]
    assert public_files and all(mode(p) & 0o444 == 0o444 for p in public_files)
    public_dirs = [s.public_dir, *(p for p in s.public_dir.rglob("*") if p.is_dir())]
    assert all(mode(p) & 0o555 == 0o555 for p in public_dirs)
    dispose_engines()


def test_exports_of_personal_data_are_the_owners_only(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY)
    upgrade(s)
    release_id = published(s, 2)
    bad = tmp_path / "people.csv"
    bad.write_text("email,name,language,topics\nnot-an-address,Ann,en,climate\n")
    with umask(0o002):
        results = [
            run_cli(s, "subscribers", "export", "--output", str(tmp_path / "all.csv")),
            run_cli(s, "subscribers", "export", "--email", "p00@example.com",
                    "--output", str(tmp_path / "one.json")),
            run_cli(s, "releases", "report", str(release_id),
                    "--out", str(tmp_path / "report.csv")),
            run_cli(s, "subscribers", "import", str(bad), "--skip-invalid",
                    "--rejects", str(tmp_path / "rejects.csv")),
        ]  # fmt: skip
    for result in results:
        assert result.returncode == 0, result.stderr
    for name in ("all.csv", "one.json", "report.csv", "rejects.csv"):
        assert mode(tmp_path / name) == 0o600, name
    assert "p00@example.com" in (tmp_path / "all.csv").read_text()
    dispose_engines()


def test_modes_an_older_version_left_are_tightened_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What distributor made before (0755 / 0644 under the usual umask) is tightened the
    next time it opens it, and the log says which path and from what."""
    data = tmp_path / "var"
    with umask(0o022):
        data.mkdir()
        db = data / "distributor.db"
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()  # the -wal and -shm stay while this connection is open
        (data / "secret_key").write_text(TEST_SECRET_KEY + "\n")
        for sub in ("outbox", "outbox/new", "outbox/tmp", "outbox/cur"):
            (data / sub).mkdir()
    loose = [data, db, db.with_name("distributor.db-wal"), db.with_name("distributor.db-shm"),
             data / "secret_key", data / "outbox", data / "outbox/new"]  # fmt: skip
    assert all(mode(p) & 0o044 for p in loose)
    s = load_settings(data_dir=data)
    with caplog.at_level(logging.WARNING, logger="distributor.core.filemodes"):
        upgrade(s)
        assert s.effective_secret_key == TEST_SECRET_KEY
        MaildirTransport(s.outbox_dir, data_dir=s.data_dir).send(
            "a@example.org", "b@example.org", b"Subject: x\r\n\r\nbody\r\n"
        )
    assert mode(data) == 0o711
    assert [p.name for p in loose[1:] if p.is_file() and mode(p) != 0o600] == []
    conn.close()
    assert mode(data / "outbox") == mode(data / "outbox/new") == 0o700
    text = caplog.text
    assert f"{db} was mode 0644: tightened to 0600" in text
    assert f"{data} was mode 0755: tightened to 0711" in text
    # Once tight, nothing more is said.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="distributor.core.filemodes"):
        dispose_engines()
        get_engine(s)
        private_dir(s.outbox_dir)
    assert caplog.text == ""
    dispose_engines()


def test_a_sqlite_file_elsewhere_is_private_too(tmp_path: Path) -> None:
    elsewhere = tmp_path / "db" / "press.sqlite"
    s = load_settings(data_dir=tmp_path / "var", database_url=f"sqlite:///{elsewhere}")
    with umask(0o002):
        upgrade(s)
    assert mode(elsewhere) == 0o600
    dispose_engines()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
@pytest.mark.needs("nginx")
def test_another_user_serves_the_site_and_reads_nothing_else() -> None:
    """nginx's workers as `nobody` (as the compose file's nginx is another user than the
    app) serve the newsroom from the data directory distributor made; as `nobody`, the
    database, the outbox, the key and the directory listing are refused."""
    base = Path(tempfile.mkdtemp(prefix="distributor-modes-"))  # not below pytest's 0700
    try:
        base.chmod(0o711)
        s = install(base / "var")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

        def nobody(*command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*as_nobody, *command], capture_output=True, text=True)

        assert nobody("cat", str(s.public_dir / "index.html")).returncode == 0
        refused = nobody("ls", str(s.data_dir))
        assert refused.returncode != 0 and "Permission denied" in refused.stderr
        for path in private_paths(s):
            command = ("ls", str(path)) if path.is_dir() else ("cat", str(path))
            assert nobody(*command).returncode != 0, path
        with running_nginx(base / "nginx", public_dir=s.public_dir, upstream="127.0.0.1:9",
                           site_url=SITE, user="nobody nogroup") as nginx:  # fmt: skip
            # "/" is the app's (it picks the language); /en/ is a file nginx serves itself.
            page = httpx.get(f"{nginx.base_url}/en/", timeout=5)
            feeds = sorted((s.public_dir / "feeds").rglob("*.rss"))
            feed = httpx.get(f"{nginx.base_url}/{feeds[0].relative_to(s.public_dir)}", timeout=5)
        assert page.status_code == 200 and "Agency signs agreement" in page.text
        assert feed.status_code == 200 and "Agency signs agreement" in feed.text
    finally:
        dispose_engines()
        shutil.rmtree(base, ignore_errors=True)
