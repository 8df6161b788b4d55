"""Is the sweep running? A heartbeat in Redis, and the workers' watch on it.

The sweep — beat's job, every ``DISTRIBUTOR_SWEEP_SECONDS`` — is what recovers: it retries
deliveries the mail server deferred (4xx), sends again the rows of a worker that died once
their lease runs out, publishes scheduled releases at their time and repairs lost
wake-ups. Without ``distributor beat`` none of that happens, and nothing else would say so.
So:

- beat, each time it enqueues a sweep, and each sweep that runs set the key ``KEY`` to the
  time, expiring after ``PERIODS`` sweep periods (beat's own write keeps it alive while a
  long send holds the sweep back in the queue);
- every worker looks at it once a sweep period and logs an ERROR when it is missing — not
  before the worker has been up that long itself, since beat may be starting with it — again
  every ``REMIND_SECONDS`` while it stays missing, and a line when it is back;
- ``releases status``, ``publish`` and the dashboard show it (``health``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from distributor.core.broker import redis_client, running_broker_url
from distributor.core.config import Settings
from distributor.core.logs import redact

log = logging.getLogger(__name__)

KEY = "distributor:sweep"
PERIODS = 3  # the heartbeat outlives this many sweep periods
REMIND_SECONDS = 600.0
REDIS_TIMEOUT = 1.0  # asked by the workers, the CLI and each dashboard page: never hang
WITHOUT_SWEEP = (
    "messages the mail server deferred are never retried, the messages of a worker that "
    "died are never sent, scheduled releases are not published and lost wake-ups are "
    "not repaired"
)
START_BEAT = (
    "start one `distributor beat` (or, on a one-host install, run `distributor worker --with-beat`)"
)


def ttl(settings: Settings) -> int:
    """Seconds the heartbeat lasts: ``PERIODS`` sweep periods."""
    return math.ceil(PERIODS * settings.sweep_seconds)


def record(settings: Settings, url: str | None = None) -> bool:
    """Set the heartbeat (a sweep ran, or beat enqueued one) in Redis at ``url`` (by
    default the configured or the running embedded one); False (logged) if it could not
    be reached — never raises."""
    url = url or running_broker_url(settings)
    if url is None:  # the embedded Redis is not running: nobody could read it either
        return False
    moment = datetime.now(UTC).isoformat()
    client = redis_client(url, timeout=REDIS_TIMEOUT)
    try:
        client.set(KEY, moment, ex=ttl(settings))
    except Exception as exc:  # whatever keeps Redis away: the next one tries again
        log.warning("could not record the sweep's heartbeat in Redis: %s", exc)
        return False
    finally:
        client.close()
    return True


@dataclass(frozen=True)
class SweepHealth:
    """What the heartbeat says: when a sweep last ran (None: none within its lifetime), or
    why Redis could not be asked."""

    last: datetime | None
    ttl: int
    broker: str | None = None  # where Redis is (password masked); None: not running (embedded)
    error: str | None = None  # Redis could not be asked: why

    @property
    def alive(self) -> bool:
        """True when a sweep ran within the last ``ttl`` seconds."""
        return self.error is None and self.last is not None

    def describe(self, now: datetime | None = None) -> str:
        """One line for people: whether the sweep runs and, if not, what that stops."""
        if self.error is not None:
            where = f"Redis at {self.broker}" if self.broker else "the embedded Redis"
            return (
                f"{where} cannot be reached ({self.error}): no worker or beat can run; check "
                "that Redis runs there, and DISTRIBUTOR_BROKER_URL"
            )
        if self.last is None:
            return (
                f"no sweep for over {self.ttl} s: `distributor beat` is not running (or no "
                f"worker is); until it does, {WITHOUT_SWEEP}: {START_BEAT}"
            )
        ago = max(0.0, ((now or datetime.now(UTC)) - self.last).total_seconds())
        return f"the sweep runs (last {ago:.0f} s ago)"


def health(settings: Settings, url: str | None = None) -> SweepHealth:
    """The heartbeat as Redis has it (``url``: the broker's, by default the configured or
    the embedded Redis, which this never starts)."""
    seconds = ttl(settings)
    url = url or running_broker_url(settings)
    if url is None:
        return SweepHealth(None, seconds, error="it is not running")
    shown = redact(url, [])
    client = redis_client(url, timeout=REDIS_TIMEOUT)
    try:
        value = client.get(KEY)
    except Exception as exc:  # whatever keeps Redis away is what to report
        return SweepHealth(None, seconds, shown, error=" ".join(str(exc).split()) or repr(exc))
    finally:
        client.close()
    if value is None:
        return SweepHealth(None, seconds, shown)
    try:
        text = value.decode() if isinstance(value, bytes) else str(value)
        return SweepHealth(datetime.fromisoformat(text), seconds, shown)
    except (UnicodeDecodeError, ValueError):  # not ours: still, something wrote it just now
        return SweepHealth(datetime.now(UTC), seconds, shown)


class SweepWatch:
    """A worker's watch on the heartbeat: call ``check`` once a sweep period."""

    def __init__(
        self, settings: Settings, url: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings, self.url, self.clock = settings, url, clock
        self.started = clock()
        self.warned_at: float | None = None  # when the missing sweep was last logged

    def check(self) -> SweepHealth:
        """Look at the heartbeat; log an ERROR if no sweep ran for its lifetime (see the
        module docstring for when); returns what was seen."""
        found = health(self.settings, self.url)
        now = self.clock()
        if found.alive:
            if self.warned_at is not None:
                log.warning("the sweep runs again: recovery has resumed")
                self.warned_at = None
        elif found.error is None and now - self.started >= found.ttl:
            if self.warned_at is None or now - self.warned_at >= REMIND_SECONDS:
                log.error("%s", found.describe())
                self.warned_at = now
        return found
