"""Send limits that hold across every worker on every host, kept in Redis (the broker).

Three limits, each off at 0 — and with all three off the send path makes no Redis call:

- ``DISTRIBUTOR_SEND_RATE``: messages per second across all workers together, one token
  bucket (``distributor:throttle:global``). It used to mean messages per second *per
  worker process*; it now means the whole installation's rate.
- ``DISTRIBUTOR_DOMAIN_RATE``: messages per second to any one recipient domain (the part
  of the address after ``@``, lowercased), across all workers: a bucket per domain.
- ``DISTRIBUTOR_DOMAIN_CONCURRENCY``: messages to one domain in flight at once (from the
  moment it is let through until its SMTP result is known), across all workers: slots per
  domain, each expiring on its own (``slot_seconds``) so a worker that died holding one
  cannot keep it.

The buckets reserve ahead, like GCRA: a caller asks for n tokens and learns when the first
is due; the others follow one interval apart. Each process reserves about
``AHEAD_SECONDS`` of the global rate at a time, so the global rate costs one round trip per
few messages and the workers interleave in the order they asked instead of polling. Every
script reads the time from Redis (``TIME``), so the hosts' clocks do not matter.

The global rate waits: the sender sleeps until its token is due. The domain limits never
wait: a message whose domain is over its limit is held back, and the caller gives its row
back to the ledger for a little later (``admit``'s answer) and goes on with the others.

When Redis cannot be reached the same limits are kept in each process instead, the rates
divided by ``DISTRIBUTOR_WORKER_CONCURRENCY`` (the domain concurrency too, at least one):
one warning, and Redis is tried again after ``REDIS_RETRY_SECONDS``. Sending neither stops
nor bursts.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
from redis.exceptions import NoScriptError

from distributor.core.broker import broker_url, redis_client
from distributor.core.config import Settings

log = logging.getLogger(__name__)

NAMESPACE = "distributor:throttle"
AHEAD_SECONDS = 0.02  # how much of the global rate a process reserves in one round trip
HOLD_SECONDS = 1.0  # the least a held-back row waits before it may be claimed again
MAX_REMEMBERED = 10_000  # domains a process keeps state for before it forgets the idle ones
REDIS_RETRY_SECONDS = 5.0  # after a failure, Redis is not asked again before this
# A sender about to wait this long for the global rate frees its finished slots first, so
# they are not held through the wait (the round trip hides in the wait).
FREE_BEFORE_WAIT = 0.002
REDIS_TIMEOUT = 0.5  # seconds to connect and for each reply: a hung Redis must not stall sends

# Shared by both scripts. Times are microseconds of Redis's clock; a bucket's key holds the
# time its next token is due (its "theoretical arrival time"), and a bucket idle for long
# enough lets ``burst`` tokens go at once.
_LUA_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local function first_due(key, interval, burst)
  local tat = tonumber(redis.call('GET', key) or '0')
  return math.max(tat, now - (burst - 1) * interval)
end
local function take(key, start, n, interval)
  local tat = start + n * interval
  local ttl = math.max(1, math.ceil((tat - now) / 1000)) + 1000
  redis.call('SET', key, string.format('%.0f', tat), 'PX', ttl)
end
"""
# KEYS[1]: the bucket; ARGV: interval (µs), burst, n. Reserves the next n tokens and returns
# the µs from now until the first is due (<= 0: due already).
_RESERVE = (
    _LUA_COMMON
    + """
local interval, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local start = first_due(KEYS[1], interval, burst)
take(KEYS[1], start, n, interval)
return string.format('%.0f', start - now)
"""
)
# KEYS[1]: the domain's bucket, KEYS[2]: its slots (a sorted set, member -> expiry in µs).
# ARGV: interval (µs, 0: no rate limit), burst, slots (0: no concurrency limit), member,
# slot lifetime (µs). Returns '0' when admitted (a token taken, a slot held by the member);
# '-1' when every slot is held; else the µs until the domain's next token (nothing taken).
_ADMIT = (
    _LUA_COMMON
    + """
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local slots, life = tonumber(ARGV[3]), tonumber(ARGV[5])
if slots > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= slots then return '-1' end
end
if interval > 0 then
  local start = first_due(KEYS[1], interval, burst)
  if start > now then return string.format('%.0f', start - now) end
  take(KEYS[1], start, 1, interval)
end
if slots > 0 then
  redis.call('ZADD', KEYS[2], string.format('%.0f', now + life), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(life / 1000) + 1000)
end
return '0'
"""
)
# Sent by hash (EVALSHA): one round trip. redis-py's Script objects in a pipeline would
# ask SCRIPT EXISTS first, every time: a second round trip.
_ADMIT_SHA = hashlib.sha1(_ADMIT.encode()).hexdigest()  # noqa: S324 - Redis's script id


class Clock(Protocol):
    """Where the limits kept in this process read the time and wait: the :mod:`time` module
    itself, or a test's (the fallback's pacing is then exact, whatever the machine's load)."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""

    def sleep(self, seconds: float) -> None:
        """Return after ``seconds``."""


def domain_of(email: str) -> str:
    """The domain an address is limited under: what follows its last ``@``, lowercased."""
    return email.rpartition("@")[2].lower()


def burst_for(rate: float) -> int:
    """How many tokens a bucket of ``rate`` a second lets go at once after an idle spell:
    a tenth of a second's worth, at least one."""
    return max(1, int(rate / 10))


def connect(url: str) -> redis.Redis:
    """A client for a broker URL (``redis://`` or ``redis+socket://``) that fails fast:
    short timeouts, no retries (the caller falls back instead)."""
    return redis_client(url, REDIS_TIMEOUT)


@dataclass(frozen=True)
class Limits:
    """The send limits of one installation (0 = no limit)."""

    rate: float = 0.0
    domain_rate: float = 0.0
    domain_concurrency: int = 0
    processes: int = 1  # worker processes per host: the fallback's share of each limit

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits ``settings`` configure."""
        return cls(
            settings.send_rate,
            settings.domain_rate,
            settings.domain_concurrency,
            settings.worker_concurrency,
        )

    @property
    def unlimited(self) -> bool:
        """True when no limit is set: nothing to pace, nothing to ask Redis."""
        return not (self.rate or self.domain_rate or self.domain_concurrency)

    @property
    def domain_limited(self) -> bool:
        """True when each message must be admitted by its domain."""
        return bool(self.domain_rate or self.domain_concurrency)


class TokenBucket:
    """A token bucket in Redis, shared by every process using the same ``key``: ``rate``
    tokens a second, at most ``burst_for(rate)`` at once after an idle spell."""

    def __init__(self, client: redis.Redis, key: str, rate: float) -> None:
        self.key, self.rate = key, rate
        self._interval_us = 1e6 / rate
        self._script = client.register_script(_RESERVE)

    def acquire(self, n: int = 1) -> float:
        """Reserve the next ``n`` tokens. Returns the seconds until the first is due (<= 0:
        due already); the others follow one ``1/rate`` apart. Never refuses: a caller late
        in line waits longer. Raises ``redis.RedisError`` when Redis cannot be reached."""
        args = [self._interval_us, burst_for(self.rate), n]
        return int(self._script(keys=[self.key], args=args)) / 1e6


class LocalBucket:
    """The same bucket as :class:`TokenBucket`, kept in this process (the fallback)."""

    def __init__(self, rate: float, clock: Clock = time) -> None:
        self.interval, self.burst = 1.0 / rate, burst_for(rate)
        self._clock = clock
        self._due = 0.0  # monotonic time the next token is due

    def _first_due(self, now: float) -> float:
        return max(self._due, now - (self.burst - 1) * self.interval)

    def acquire(self, n: int = 1) -> float:
        """Reserve the next ``n`` tokens; seconds until the first is due (<= 0: now)."""
        now = self._clock.monotonic()
        start = self._first_due(now)
        self._due = start + n * self.interval
        return start - now

    def take_now(self) -> float:
        """Take one token if one is due: 0.0. Otherwise take nothing and return the seconds
        until one is."""
        now = self._clock.monotonic()
        start = self._first_due(now)
        if start > now:
            return start - now
        self._due = start + self.interval
        return 0.0


@dataclass
class _Reserved:
    """Global tokens this process holds: ``count`` of them, the first due at ``start``
    (monotonic), then one every ``interval``; ``used`` already spent."""

    interval: float
    start: float = 0.0
    count: int = 0
    used: int = 0

    def next_due(self, now: float, stale: float) -> float | None:
        """When the next unspent token is due, after dropping those overdue by more than
        ``stale`` seconds (saved up, they would make a burst); None when none is left."""
        overdue = now - stale - self.start
        if overdue > 0:
            self.used = max(self.used, math.ceil(overdue / self.interval))
        return self.start + self.used * self.interval if self.used < self.count else None


class Pacer(Protocol):
    """What a sender asks before each message (see the module docstring)."""

    def wait(self) -> None:
        """Return when the next message may go under the global rate."""

    def admit(self, email: str) -> float:
        """Wait for the global rate, then ask the recipient's domain: 0.0 when the message
        may go now (it then holds a domain slot until :meth:`done`), or the seconds to hold
        it back (nothing taken; give the row back for that long)."""

    def done(self, email: str) -> None:
        """The admitted message to ``email`` has its SMTP result: free its domain slot."""

    def close(self) -> None:
        """Free every slot still held (at the end of a batch, whatever happened)."""


class Unlimited:
    """The pacer when no limit is set: every answer is "go", no Redis, nothing kept."""

    def wait(self) -> None:
        """Nothing to wait for."""

    def admit(self, email: str) -> float:
        """Always 0.0: go."""
        return 0.0

    def done(self, email: str) -> None:
        """Nothing held."""

    def close(self) -> None:
        """Nothing held."""


UNLIMITED = Unlimited()


class Throttle:
    """The limits as one process (one thread) keeps them: Redis while it answers, buckets
    of its own while it does not. Kept between batches, so global tokens reserved and not
    spent by one batch serve the next. Not shared between threads. ``clock`` is where this
    process reads the time and waits (Redis's scripts read Redis's own clock)."""

    def __init__(
        self,
        limits: Limits,
        url: Callable[[], str],
        *,
        namespace: str = NAMESPACE,
        slot_seconds: float = 120.0,
        clock: Clock = time,
    ) -> None:
        self.limits, self.namespace, self.slot_seconds = limits, namespace, slot_seconds
        self._clock = clock
        self._url = url
        self._client: redis.Redis | None = None
        self._bucket: TokenBucket | None = None
        self._retry_at = 0.0  # monotonic: Redis is not asked before (it failed)
        self._down = False  # a warning was logged for the current outage
        share = max(1, limits.processes)
        if limits.rate:
            self._reserved = _Reserved(1.0 / limits.rate)
            ahead = math.ceil(limits.rate * AHEAD_SECONDS)
            self._ahead = max(1, min(burst_for(limits.rate), ahead))
            self._stale = burst_for(limits.rate) / limits.rate
            self._local = LocalBucket(limits.rate / share, clock)
        self._local_domains: dict[str, LocalBucket] = {}
        self._local_slots: collections.Counter[str] = collections.Counter()
        self._local_share = share
        self._blocked: dict[str, float] = {}  # domain → monotonic time it has no token before
        self._held: dict[str, list[str | None]] = {}  # domain → slots held (None: local)
        self._finished: list[tuple[str, str]] = []  # Redis slots to free at the next call
        self._member = f"{os.getpid()}:{uuid.uuid4().hex[:12]}:"
        self._serial = 0

    # --- Redis, and what happens when it does not answer -------------------------------

    def _redis(self) -> redis.Redis | None:
        """The client, or None while Redis is considered down."""
        if self._client is None:
            if self._clock.monotonic() < self._retry_at:
                return None
            try:
                url = self._url()  # may start the embedded Redis (no broker URL set)
            except Exception as exc:  # whatever keeps Redis away, sending goes on
                self._failed(exc)
                return None
            self._client = connect(url)
            if self.limits.rate:
                key = f"{self.namespace}:global"
                self._bucket = TokenBucket(self._client, key, self.limits.rate)
        return self._client

    def _failed(self, exc: Exception) -> None:
        """Redis did not answer: use this process's own buckets until REDIS_RETRY_SECONDS
        have passed; warn once per outage."""
        if self._client is not None:
            self._client.close()
        self._client, self._retry_at = None, self._clock.monotonic() + REDIS_RETRY_SECONDS
        if not self._down:
            self._down = True
            log.warning(
                "throttle: Redis unreachable (%s); keeping the send limits per process "
                "(÷ %d) and trying Redis again every %.0f s",
                exc,
                self._local_share,
                REDIS_RETRY_SECONDS,
            )

    def _answered(self) -> None:
        if self._down:
            self._down = False
            log.info("throttle: Redis answers again; the send limits are global again")

    # --- the global rate -----------------------------------------------------------------

    def _next_due(self) -> float:
        """When the next global token is due (monotonic), reserving more if none is left."""
        due = self._reserved.next_due(self._clock.monotonic(), self._stale)
        if due is None:
            offset = self._reserve(self._ahead)
            start = self._clock.monotonic() + offset
            self._reserved.start, self._reserved.count, self._reserved.used = start, self._ahead, 0
            due = start
        return due

    def _reserve(self, n: int) -> float:
        if self._redis() is not None and self._bucket is not None:
            try:
                offset = self._bucket.acquire(n)
            except redis.RedisError as exc:
                self._failed(exc)
            else:
                self._answered()
                return offset
        return self._local.acquire(n)

    def _wait_due(self) -> None:
        due = self._next_due()
        if self._finished and due - self._clock.monotonic() > FREE_BEFORE_WAIT:
            self._flush()  # free finished messages' slots now, not after the wait
        delay = due - self._clock.monotonic()
        if delay > 0:
            self._clock.sleep(delay)

    def wait(self) -> None:
        """Return when the next message may go under the global rate (and spend a token)."""
        if self.limits.rate:
            self._wait_due()
            self._reserved.used += 1

    # --- the domain limits ---------------------------------------------------------------

    def admit(self, email: str) -> float:
        """See :meth:`Pacer.admit`. A held-back answer is at least ``HOLD_SECONDS``."""
        if self.limits.rate:
            self._wait_due()
        if self.limits.domain_limited:
            hold = self._admit_domain(domain_of(email))
            if hold:
                return hold  # the global token stays for the next message
        if self.limits.rate:
            self._reserved.used += 1
        return 0.0

    def _admit_domain(self, domain: str) -> float:
        now = self._clock.monotonic()
        if self._blocked.get(domain, 0.0) > now:  # no token before then: do not ask
            return max(HOLD_SECONDS, self._blocked[domain] - now)
        client = self._redis()
        if client is not None:
            try:
                answer = self._ask(client, domain)
            except redis.RedisError as exc:
                self._failed(exc)
            else:
                self._answered()
                if answer > 0:
                    if len(self._blocked) > MAX_REMEMBERED:  # forget the domains long free
                        self._blocked = {d: t for d, t in self._blocked.items() if t > now}
                    self._blocked[domain] = now + answer
                return 0.0 if answer == 0 else max(HOLD_SECONDS, answer)
        return self._admit_locally(domain)

    def _ask(self, client: redis.Redis, domain: str) -> float:
        """One round trip: free the slots of finished messages, then ask for ``domain``.
        0 admitted; -1 no slot free; else seconds until the domain's next token."""
        self._serial += 1
        member = self._member + str(self._serial)
        rate = self.limits.domain_rate
        args: list[float | str] = [
            1e6 / rate if rate else 0,
            burst_for(rate) if rate else 1,
            self.limits.domain_concurrency,
            member,
            self.slot_seconds * 1e6,
        ]
        keys_args: list[str | float] = [*self._keys(domain), *args]
        try:
            if self._finished:  # in the same round trip
                pipe = client.pipeline(transaction=False)
                self._free(pipe)
                pipe.evalsha(_ADMIT_SHA, 2, *keys_args)
                reply = pipe.execute()[-1]
            else:
                reply = client.evalsha(_ADMIT_SHA, 2, *keys_args)
        except NoScriptError:  # a Redis restarted since: load it, once
            client.script_load(_ADMIT)
            reply = client.evalsha(_ADMIT_SHA, 2, *keys_args)
        answer = int(reply)
        if answer == 0 and self.limits.domain_concurrency:
            self._held.setdefault(domain, []).append(member)
        return -1.0 if answer < 0 else answer / 1e6

    def _keys(self, domain: str) -> list[str]:
        return [f"{self.namespace}:domain:{domain}:rate", f"{self.namespace}:domain:{domain}:slots"]

    def _free(self, pipe: redis.client.Pipeline) -> None:
        for domain, member in self._finished:
            pipe.zrem(self._keys(domain)[1], member)
        self._finished.clear()

    def _admit_locally(self, domain: str) -> float:
        """The fallback: this process's share of the domain's limits."""
        limit = self.limits.domain_concurrency
        if limit and self._local_slots[domain] >= max(1, limit // self._local_share):
            return HOLD_SECONDS
        if self.limits.domain_rate:
            bucket = self._local_domains.get(domain)
            if bucket is None:
                if len(self._local_domains) > MAX_REMEMBERED:  # costs at most a burst each
                    self._local_domains.clear()
                bucket = LocalBucket(self.limits.domain_rate / self._local_share, self._clock)
                self._local_domains[domain] = bucket
            wait = bucket.take_now()
            if wait:
                return max(HOLD_SECONDS, wait)
        if limit:
            self._local_slots[domain] += 1
            self._held.setdefault(domain, []).append(None)
        return 0.0

    def done(self, email: str) -> None:
        """See :meth:`Pacer.done`: the slot is freed with the next round trip (or at close)."""
        if not self.limits.domain_concurrency:
            return
        domain = domain_of(email)
        held = self._held.get(domain)
        if not held:
            return
        member = held.pop()
        if member is None:
            self._local_slots[domain] -= 1
        else:
            self._finished.append((domain, member))

    def close(self) -> None:
        """Free every slot still held, in one round trip (left to expire if Redis is down)."""
        for domain, members in self._held.items():
            for member in members:
                if member is not None:
                    self._finished.append((domain, member))
        self._held.clear()
        self._local_slots.clear()
        self._flush()

    def _flush(self) -> None:
        """Free the finished messages' slots now, in one round trip (left to expire when
        Redis is down)."""
        if self._finished and self._client is not None:
            pipe = self._client.pipeline(transaction=False)
            self._free(pipe)
            try:
                pipe.execute()
            except redis.RedisError as exc:
                self._failed(exc)
        self._finished.clear()


_threads = threading.local()


def pacer(settings: Settings) -> Pacer:
    """The pacer for sends under ``settings``: :data:`UNLIMITED` when no limit is set (no
    Redis call at all), else this thread's :class:`Throttle` for these settings, kept
    between batches. A message's domain slot may be held up to four SMTP timeouts."""
    limits = Limits.of(settings)
    if limits.unlimited:
        return UNLIMITED
    cache: dict[tuple[object, ...], Throttle] = _threads.__dict__.setdefault("throttles", {})
    key = (limits, settings.broker_url, settings.data_dir, settings.smtp_timeout)
    if key not in cache:
        cache[key] = Throttle(
            limits, lambda: broker_url(settings), slot_seconds=4 * settings.smtp_timeout
        )
    return cache[key]
