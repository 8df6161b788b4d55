"""Real processes for end-to-end tests: a `distributor worker` subprocess on the test Redis;
the `distributor` command run as a process (``run_cli``) or, for what it says and does, its
``main()`` in this process (``invoke_cli``)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from distributor.core.config import FAILPOINTS_ENV, Settings, environment_for
from tests.redis_db import empty


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that gives a subprocess the same Settings as ``settings``."""
    return {**environment_for(settings, os.environ), **extra}


# A broker nobody listens on. Without any broker URL, a command that enqueues starts the
# embedded Redis and leaves it running (for users, to share with the worker): a test would
# leave a redis-server behind.
NO_BROKER = "redis://127.0.0.1:1/0"


def run_cli(
    settings: Settings, *args: str, cwd: Path | None = None, input: str | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """``python -m distributor.cli ARGS`` with ``settings`` (plus the ``DISTRIBUTOR_*``
    variables in ``extra``), run to the end, ``input`` (if given) on its standard input;
    stdout and stderr captured as text. Settings without a broker get ``NO_BROKER``."""
    env = settings_env(settings, **extra)
    env.setdefault("DISTRIBUTOR_BROKER_URL", NO_BROKER)
    return subprocess.run(
        [sys.executable, "-m", "distributor.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, cwd=cwd, input=input,
    )  # fmt: skip


def invoke_cli(
    settings: Settings, *args: str, cwd: Path | None = None, input: str | bytes | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """What ``run_cli`` returns, for the same command run in this process: the CLI's ``main()`` with
    the same environment (``os.environ`` is that and only that meanwhile), arguments, standard input
    and working directory; its exit status from ``SystemExit``, an exception that escapes ``main()``
    as Python shows it with status 1. A command's process costs 0.45–0.6 s to start (bench/cli.py;
    1.2 s before issue 16's lazy imports): this is for tests of what a command does and prints. A
    test of the process itself — its start-up and imports, signals, the modes of files made under
    its umask, a long-running command — uses ``run_cli`` or ``running_command``."""
    env = settings_env(settings, **extra)
    env.setdefault("DISTRIBUTOR_BROKER_URL", NO_BROKER)
    return invoke_main(env, *args, cwd=cwd, input=input)


def invoke_main(
    env: dict[str, str], *args: str, cwd: Path | None = None, input: str | bytes | None = None
) -> subprocess.CompletedProcess[str]:
    """``distributor ARGS`` run in this process with exactly the environment ``env``, as
    ``invoke_cli`` describes."""
    from click.testing import CliRunner

    from distributor.cli import main
    from distributor.core.db import dispose_engines

    if env.get(FAILPOINTS_ENV):
        raise ValueError(f"{FAILPOINTS_ENV} kills the process it is hit in: use run_cli")
    overrides: dict[str, str | None] = {name: None for name in os.environ if name not in env}
    overrides.update(env)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    # main() logs to the standard error it finds, as a process would: basicConfig only sets
    # up a root logger without handlers (pytest's capture has put its own there).
    root.handlers = []
    status = 0
    with (
        CliRunner().isolation(input=input, env=overrides) as (stdout, stderr, _),
        contextlib.chdir(cwd or os.getcwd()),
    ):
        saved_argv = sys.argv
        sys.argv = ["distributor", *args]
        try:
            main()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
            if isinstance(exc.code, str):
                sys.stderr.write(exc.code + "\n")
        except Exception:
            traceback.print_exc()
            status = 1
        finally:
            sys.argv = saved_argv
            dispose_engines()  # what a process's exit closes
            sys.stdout.flush()
            sys.stderr.flush()
            for handler in root.handlers:
                handler.close()
            root.handlers, root.level = handlers, level
        out = stdout.getvalue().decode()
        err = stderr.getvalue().decode("utf-8", "backslashreplace")
    return subprocess.CompletedProcess(["distributor", *args], status, out, err)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``check`` every ``interval`` seconds until it is true; fail the test after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@contextmanager
def running_command(
    args: list[str], env: dict[str, str], log_path: Path, stop_timeout: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m distributor.cli ARGS`` in its own process group, output to ``log_path``;
    stopped (SIGTERM, then SIGKILL) with all its children on the way out."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "distributor.cli", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=stop_timeout)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


@contextmanager
def running_shell(
    line: str, env: dict[str, str], cwd: Path, log_path: Path, stop_timeout: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """A shell command line (``distributor worker &  distributor beat &``, or one long-running
    command) run by bash in the background in its own process group, output to ``log_path``.
    On the way out bash passes SIGTERM on to what it started and waits for it (so nothing is
    left unreaped); whatever is still in the group after ``stop_timeout`` gets SIGKILL."""
    script = f"trap 'kill $(jobs -p) 2>/dev/null; wait' TERM\n{line.rstrip().rstrip('&')} &\nwait\n"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", script], env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=stop_timeout)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@contextmanager
def running_worker(
    settings: Settings,
    log_dir: Path,
    concurrency: int = 2,
    *,
    with_beat: bool = False,
    keep_queue: bool = False,
    **extra: str,
) -> Iterator[subprocess.Popen[bytes]]:
    """A `distributor worker` subprocess for ``settings`` (whose broker_url must be set),
    running the sweep itself every ``settings.sweep_seconds`` when ``with_beat``, with the
    variables in ``extra`` added to its environment (``SSL_CERT_FILE=…``); the broker's
    database is emptied first so no task of another test is run, unless ``keep_queue`` (the
    test enqueued what the worker is to find)."""
    assert settings.broker_url
    if not keep_queue:
        empty(settings.broker_url)
    args = ["worker", "-c", str(concurrency), *(["--with-beat"] if with_beat else [])]
    env = settings_env(settings, **extra)
    with running_command(args, env, log_dir / "worker.log") as proc:
        yield proc


@contextmanager
def running_serve(
    env: dict[str, str], log_path: Path, port: int, *options: str,
    ready: Callable[[int], bool] = lambda status: status == 200, stop_timeout: float = 20,
) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    """`distributor serve --port PORT OPTIONS` (see ``running_command``), yielded once it
    answers ``GET /healthz`` with a status that is ``ready`` (by default 200: database and
    broker reachable); fails the test, with the server's log, if it exits first."""
    args = ["serve", "--port", str(port), *options]
    with running_command(args, env, log_path, stop_timeout) as proc:

        def up() -> bool:
            assert proc.poll() is None, f"distributor serve exited:\n{log_path.read_text()}"
            try:
                return ready(httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code)
            except httpx.TransportError:
                return False

        wait_until(up, 30, "distributor serve to answer")
        yield proc


def killed_mid_send(
    settings: Settings,
    received: Callable[[], int],
    slow_down: Callable[[], None],
    log_dir: Path,
    start: Callable[[], None],
    finished: Callable[[], bool],
    what: str,
) -> None:
    """The kill test every send of the outbox passes: with the SMTP server slowed down
    (``slow_down``: the kill must land mid-send), a worker is started, ``start`` sets the send
    going, and once 40 messages were ``received`` the worker is killed (SIGKILL, parent and
    children); then a second worker, woken by the sweep, goes on until ``finished``."""
    from distributor.core.queue import TaskQueue

    slow_down()
    queue = TaskQueue(settings)
    try:
        with running_worker(settings, log_dir / "first") as worker:
            start()
            wait_until(lambda: received() >= 40, 60, f"{what} to start")
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
        with running_worker(settings, log_dir / "second"):

            def done() -> bool:
                queue.send("sweep")
                return finished()

            wait_until(done, 90, f"the sweep to finish {what} after the kill")
    finally:
        queue.close()
