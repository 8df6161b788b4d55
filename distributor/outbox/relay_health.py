"""Relay back-offs shared by every worker on every host, kept in Redis (the broker).

With several relays (``DISTRIBUTOR_SMTP_URL``), the worker that finds a relay failed
(:mod:`distributor.mail.failover`) writes ``distributor:relay-down:HOST:PORT`` with the
reason, expiring after ``DISTRIBUTOR_RELAY_BACKOFF_SECONDS``; every other worker reads it
before choosing a relay (one GET per relay per batch) and skips the relay without trying
it. That matters for a relay that does not answer at all (a host down, packets dropped):
each try costs a whole ``DISTRIBUTOR_SMTP_TIMEOUT``, which every worker process would pay
once per back-off if each had to find out for itself. A refused connection or a 421 costs a
millisecond; then sharing saves little, and costs as little.

Each process keeps its own record beside Redis (what it saw itself counts even if Redis
forgets), and while Redis cannot be reached the back-offs are this process's only (one
warning; Redis is asked again after ``throttle.REDIS_RETRY_SECONDS``). With one relay,
nothing here is used and the send path makes no Redis call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from distributor.core.broker import broker_url
from distributor.core.config import Settings
from distributor.mail.failover import PROCESS_HEALTH, LocalRelayHealth, RelayHealth
from distributor.outbox.throttle import REDIS_RETRY_SECONDS, connect

log = logging.getLogger(__name__)

KEY = "distributor:relay-down:"


class SharedRelayHealth:
    """The back-offs in Redis, and this process's ``local`` record beside them."""

    def __init__(self, url: Callable[[], str], local: LocalRelayHealth = PROCESS_HEALTH) -> None:
        self._url = url
        self.local = local
        self._client: redis.Redis | None = None
        self._retry_at = 0.0  # monotonic: Redis is not asked before (it failed)
        self._down = False  # a warning was logged for the current outage

    def down(self, name: str) -> str | None:
        """Why relay ``name`` is in back-off, here or in any worker; None when it may be
        used (or only Redis would know, and Redis does not answer)."""
        if (reason := self.local.down(name)) is not None:
            return reason
        client = self._redis()
        if client is None:
            return None
        try:
            value = client.get(KEY + name)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        self._answered()
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return None if value is None else str(value)

    def mark_down(self, name: str, seconds: float, reason: str) -> None:
        """Skip relay ``name`` for ``seconds`` here and, through Redis, in every worker."""
        self.local.mark_down(name, seconds, reason)
        client = self._redis()
        if client is None:
            return
        try:
            client.set(KEY + name, reason[:500], px=max(1, int(seconds * 1000)))
        except redis.RedisError as exc:
            self._failed(exc)
        else:
            self._answered()

    def _redis(self) -> redis.Redis | None:
        """The client, or None while Redis is considered down."""
        if self._client is None:
            if time.monotonic() < self._retry_at:
                return None
            try:
                self._client = connect(self._url())  # may start the embedded Redis
            except Exception as exc:  # whatever keeps Redis away, sending goes on
                self._failed(exc)
                return None
        return self._client

    def _failed(self, exc: Exception) -> None:
        if self._client is not None:
            self._client.close()
        self._client, self._retry_at = None, time.monotonic() + REDIS_RETRY_SECONDS
        if not self._down:
            self._down = True
            log.warning(
                "relay back-offs: Redis unreachable (%s); each process keeps its own "
                "until it answers again",
                exc,
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("relay back-offs: Redis answers again; shared by every worker again")


_shared: dict[object, SharedRelayHealth] = {}


def relay_health(settings: Settings) -> RelayHealth | None:
    """The record of relay back-offs for sends under ``settings``: shared through Redis when
    several relays are configured (kept between batches, one per broker), else None (the
    transport's own default; one relay has no back-off and makes no Redis call)."""
    if len(settings.smtp_urls) < 2:
        return None
    key = (settings.broker_url, settings.data_dir)
    if key not in _shared:
        _shared[key] = SharedRelayHealth(lambda: broker_url(settings))
    return _shared[key]
