"""A database the CLI cannot use is one line on stderr — which database, where (its URL,
password masked), what to check — and exit 69 (unreachable) or 78 (no schema yet), never
a traceback; DISTRIBUTOR_LOG_LEVEL is a setting like any other. (The command's main(), run in
this process: ``invoke_cli``.)"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from distributor.core.config import Settings, load_settings
from tests.helpers import TEST_SECRET_KEY, free_port
from tests.processes import invoke_cli

PASSWORD = "hunter2-not-shown"
COMMANDS = [
    ["db", "upgrade"],
    ["topics", "list"],
    ["audit"],
    ["releases", "status", "1"],
    ["tokens", "list"],
    ["subscribers", "export"],
    ["releases", "publish", "1"],
]


@pytest.fixture
def bare(tmp_path: Path) -> Settings:
    """Settings whose database nobody prepared."""
    return load_settings(data_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY)


def assert_one_line(result: subprocess.CompletedProcess[str], code: int, *parts: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and PASSWORD not in result.stderr + result.stdout
    for part in parts:
        assert part in lines[0], (part, lines[0])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_a_closed_port_is_one_line_and_exit_69(bare: Settings, command: list[str]) -> None:
    port = free_port()  # closed again once it is found: nothing listens
    url = f"postgresql://distributor:{PASSWORD}@127.0.0.1:{port}/distributor"
    result = invoke_cli(bare, *command, DISTRIBUTOR_DATABASE_URL=url)
    assert_one_line(
        result, 69, "the database cannot be reached",
        f"PostgreSQL at postgresql://distributor:***@127.0.0.1:{port}/distributor",
        "Connection refused", "check that the server runs",
    )  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS[:4], ids=lambda c: " ".join(c))
def test_a_missing_postgresql_database_is_one_line_and_exit_69(
    bare: Settings, pg_url: str, command: list[str]
) -> None:
    name = f"distributor_missing_{os.getpid()}"
    url = pg_url.rsplit("/", 1)[0].replace("postgres@", f"postgres:{PASSWORD}@") + f"/{name}"
    result = invoke_cli(bare, *command, DISTRIBUTOR_DATABASE_URL=url)
    assert_one_line(
        result, 69, f'database "{name}" does not exist', "postgres:***@127.0.0.1:5432",
        "create it (createdb)",
    )  # fmt: skip


def test_a_database_without_tables_says_run_db_upgrade(bare: Settings) -> None:
    for command in (["topics", "list"], ["releases", "status", "1"], ["audit"]):
        result = invoke_cli(bare, *command)
        assert_one_line(result, 78, "has no tables yet", "run `distributor db upgrade`")
    assert invoke_cli(bare, "db", "upgrade").returncode == 0
    assert invoke_cli(bare, "topics", "list").returncode == 0


def test_the_log_level_is_a_setting(bare: Settings) -> None:
    assert load_settings(log_level="debug").log_level == "DEBUG"
    assert load_settings().log_level is None  # WARNING for the CLI, INFO for the workers
    result = invoke_cli(bare, "topics", "list", DISTRIBUTOR_LOG_LEVEL="chatty")
    assert_one_line(result, 78, "DISTRIBUTOR_LOG_LEVEL must be one of DEBUG, INFO")
    # INFO shows what WARNING (the CLI's default) hides: Alembic's migration steps.
    assert (
        "Running upgrade" in invoke_cli(bare, "db", "upgrade", DISTRIBUTOR_LOG_LEVEL="info").stderr
    )
    assert (
        "Running upgrade"
        not in invoke_cli(
            bare.model_copy(update={"data_dir": bare.data_dir / "b"}), "db", "upgrade"
        ).stderr
    )
