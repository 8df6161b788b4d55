"""A weak signing key is refused (issue 11, finding 1): `serve`, `worker`, `beat` (and
`demo`, which starts a worker) exit 78 naming DISTRIBUTOR_SECRET_KEY, before they start
anything, when any key listed is short, a placeholder that shipped, or not random-looking;
a strong key starts. Without a key, the one generated in the data directory is strong."""

from __future__ import annotations

import secrets
import stat
from pathlib import Path

import pytest

from distributor.core.config import (
    PLACEHOLDER_KEYS,
    Settings,
    check_secret_key,
    load_settings,
    weak_key_reason,
)
from distributor.core.errors import ConfigError
from tests.helpers import TEST_SECRET_KEY, free_port
from tests.processes import run_cli, running_command, running_serve, settings_env, wait_until
from tests.redis_db import empty

PLACEHOLDER = "change-me-to-a-long-random-string"  # docker-compose.yml until issue 11
GOOD = secrets.token_urlsafe(32)
WEAK_KEYS = {
    "one letter": "a",
    "short": secrets.token_urlsafe(23),  # 31 characters
    "placeholder": PLACEHOLDER,
    "good key, then a weak older one": f"{GOOD} test-secret",
    "repeated": "Ab3$" * 10,
    "placeholder-like": "please-change-this-to-something-long",
}


@pytest.fixture
def bare(tmp_path: Path) -> Settings:
    """Settings with a strong key and nothing else: no database, no broker running."""
    return load_settings(data_dir=tmp_path / "var", secret_key=TEST_SECRET_KEY)


def test_every_placeholder_that_shipped_is_known() -> None:
    assert PLACEHOLDER in PLACEHOLDER_KEYS
    compose = (Path(__file__).resolve().parent.parent / "docker-compose.yml").read_text()
    for line in compose.splitlines():
        if "DISTRIBUTOR_SECRET_KEY:" in line:
            value = line.split(":", 1)[1].strip()
            # either no default at all (${VAR:?message}) or a value we refuse
            assert value.startswith("${") or weak_key_reason(value) is not None, line


@pytest.mark.parametrize("make", [lambda: secrets.token_urlsafe(32), lambda: secrets.token_hex(32),
                                  lambda: secrets.token_hex(16)])  # fmt: skip
def test_generated_keys_pass(make: object) -> None:
    for _ in range(2000):
        key = make()  # type: ignore[operator]
        assert weak_key_reason(key) is None, key


@pytest.mark.parametrize("key", WEAK_KEYS.values(), ids=WEAK_KEYS.keys())
def test_weak_keys_are_refused_in_process(bare: Settings, key: str) -> None:
    with pytest.raises(ConfigError, match="DISTRIBUTOR_SECRET_KEY") as caught:
        check_secret_key(bare.model_copy(update={"secret_key": key}))
    message = str(caught.value)
    assert "secrets.token_urlsafe(32)" in message  # how to make one
    for part in key.split():
        assert part not in message or len(part) < 3  # the key itself is never echoed


# Each command with two of the weak keys, all six keys in all (a run costs a second; which
# keys are weak, and why, is the in-process test's: the commands share one check).
COMMAND_KEYS = [
    (command, name)
    for n, command in enumerate(["serve", "worker", "beat", "demo"])
    for name in list(WEAK_KEYS)[n % 3 * 2 : n % 3 * 2 + 2]
]


@pytest.mark.parametrize(("command", "name"), COMMAND_KEYS)
def test_the_long_running_commands_refuse_a_weak_key(
    bare: Settings, command: str, name: str
) -> None:
    key = WEAK_KEYS[name]
    result = run_cli(bare, command, DISTRIBUTOR_SECRET_KEY=key)
    assert result.returncode == 78, result.stderr
    assert "DISTRIBUTOR_SECRET_KEY" in result.stderr and "token_urlsafe" in result.stderr
    assert "Traceback" not in result.stderr
    assert not bare.data_dir.exists()  # refused before anything started or was created


def test_a_key_of_spaces_is_refused(bare: Settings) -> None:
    result = run_cli(bare, "serve", DISTRIBUTOR_SECRET_KEY="   ")
    assert result.returncode == 78 and "DISTRIBUTOR_SECRET_KEY" in result.stderr


def test_a_weak_generated_key_file_is_refused(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path / "var")
    s.data_dir.mkdir()
    (s.data_dir / "secret_key").write_text("hunter2\n")
    result = run_cli(s, "worker")
    assert result.returncode == 78, result.stderr
    assert "secret_key" in result.stderr and "DISTRIBUTOR_SECRET_KEY" in result.stderr


def test_without_a_key_one_strong_key_is_generated_once(tmp_path: Path) -> None:
    s = load_settings(data_dir=tmp_path / "var")
    key = s.effective_secret_key
    check_secret_key(s)
    path = s.data_dir / "secret_key"
    assert path.read_text().strip() == key and weak_key_reason(key) is None
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not list(s.data_dir.glob(".secret_key*"))  # no temporary file left behind
    assert load_settings(data_dir=tmp_path / "var").effective_secret_key == key


def test_serve_starts_with_a_strong_key(bare: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = settings_env(bare, DISTRIBUTOR_BROKER_URL="redis://127.0.0.1:1/0",
                       DISTRIBUTOR_SECRET_KEY=f"{GOOD} {TEST_SECRET_KEY}")  # fmt: skip
    # Its broker is out of reach (/healthz: 503); answering at all is what is asked here.
    with running_serve(env, tmp_path / "serve.log", port, ready=lambda status: status < 600):
        pass


@pytest.mark.parametrize("command", ["worker", "beat"])
def test_worker_and_beat_start_with_a_strong_key(
    bare: Settings, redis_url: str, tmp_path: Path, command: str
) -> None:
    empty(redis_url)
    log = tmp_path / f"{command}.log"
    env = settings_env(bare, DISTRIBUTOR_BROKER_URL=redis_url)
    started = "ready." if command == "worker" else "beat: Starting..."
    with running_command([command, "--loglevel", "INFO"], env, log) as proc:

        def up() -> bool:
            assert proc.poll() is None, log.read_text()
            return started in log.read_text()

        wait_until(up, 60, f"distributor {command} to start")
