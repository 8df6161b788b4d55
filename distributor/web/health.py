"""``/healthz``: whether this web process reaches the database and Redis.

What a container healthcheck or a load balancer calls, often: unauthenticated, cheap (a
``SELECT 1`` and a ``PING``, run side by side), and quick whatever the services do — each
check has ``TIMEOUT`` seconds, and a check still waiting from an earlier call is not
started again (so a hung service holds one thread, not one per call). The answer names each
service and says only ``ok``, ``unavailable (ErrorClass)`` or ``no answer``: no host, no
URL, no password; the error itself goes to the log.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import anyio
import anyio.to_thread
from fastapi.responses import PlainTextResponse
from redis.exceptions import TimeoutError as RedisTimeoutError

from distributor.core.broker import ping
from distributor.core.config import Settings
from distributor.core.db import get_engine

log = logging.getLogger(__name__)

TIMEOUT = 2.0  # seconds each service has to answer


def check_database(settings: Settings) -> None:
    """Run ``SELECT 1`` on a connection of the pool. On the DB-API connection, not through
    a SQLAlchemy transaction: on SQLite that begins with the write lock (db.py), which a
    worker may hold for a while without anything being wrong."""
    connection = get_engine(settings).raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        cursor.close()
    finally:
        connection.close()


class _Check:
    """One service's check, run in a worker thread; at most one runs at a time."""

    def __init__(self, name: str, call: Callable[[], None]) -> None:
        self.name = name
        self._call = call
        self._busy = threading.Lock()

    def _run(self) -> bool:
        # Taken in the thread, so a call that never got a thread holds nothing.
        if not self._busy.acquire(blocking=False):
            return False
        try:
            self._call()
        finally:
            self._busy.release()
        return True

    async def state(self) -> str:
        """``ok``, ``unavailable (ErrorClass)``, or ``no answer …``."""
        try:
            with anyio.fail_after(TIMEOUT):
                if not await anyio.to_thread.run_sync(self._run, abandon_on_cancel=True):
                    return "no answer (an earlier check is still waiting)"
        except TimeoutError:
            log.warning("healthz: %s gave no answer within %g s", self.name, TIMEOUT)
            return f"no answer within {TIMEOUT:g} s"
        except RedisTimeoutError:  # the client's own deadline, which can come first
            log.warning("healthz: %s gave no answer before its client's timeout", self.name)
            return "no answer (the client's timeout)"
        except Exception as exc:
            log.warning("healthz: %s is unavailable: %s", self.name, exc)
            return f"unavailable ({type(exc).__name__})"
        return "ok"


class Health:
    """The checks of one app."""

    def __init__(self, settings: Settings) -> None:
        self.checks = (
            _Check("database", lambda: check_database(settings)),
            _Check("redis", lambda: ping(settings, TIMEOUT)),
        )

    async def answer(self) -> PlainTextResponse:
        """200 ``ok`` when every service answered; else 503 with a line per service."""
        states: dict[str, str] = {}

        async def run(check: _Check) -> None:
            states[check.name] = await check.state()

        async with anyio.create_task_group() as group:
            for check in self.checks:
                group.start_soon(run, check)
        if all(state == "ok" for state in states.values()):
            return PlainTextResponse("ok\n")
        text = "".join(f"{check.name}: {states[check.name]}\n" for check in self.checks)
        return PlainTextResponse(text, status_code=503)
