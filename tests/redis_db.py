"""A Redis database number of this run's own, on the shared Redis at 127.0.0.1:6379.

Two test runs (or a test run and a benchmark) on one host used to share database 13, and
each emptied it when it started and whenever it started a worker: one run wiped the other's
queues. Now each run claims a free database number and keeps it to itself:

- The claim is a marker key (:data:`CLAIM_KEY`) in the database itself, set with ``SET NX``
  to an owner id (``host:pid:random``) and an expiry of :data:`CLAIM_SECONDS`, renewed every
  :data:`RENEW_SECONDS` by a daemon thread while the run lives, deleted at its end. A run that
  died without releasing its claim frees it when the key expires; one that died on this
  host (its pid is gone) is taken over at once.
- The databases tried are :data:`DEFAULT_DATABASES` (9–15: never 0, the default database
  of anyone's own Redis work, and not 1–8, which other sessions on this machine name
  explicitly), or those of ``DISTRIBUTOR_TEST_REDIS_DBS`` (``"9-15"`` or ``"9,11,14"``).
- :func:`empty` empties a claimed database but keeps its claim, in one atomic script: a test
  or a worker start that empties "its" database never frees it for another run.

``DISTRIBUTOR_TEST_REDIS_URL`` still names one database outright (the caller then owns it:
no claim, emptied as before).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field

import redis

log = logging.getLogger(__name__)

SERVER_URL = "redis://127.0.0.1:6379"
DEFAULT_DATABASES = range(9, 16)
CLAIM_KEY = "distributor-test:claimed-by"
CLAIM_SECONDS = 300
RENEW_SECONDS = 60.0

# ARGV[1]: our owner id, ARGV[2]: the claim's lifetime in ms. Sets the claim if it is free
# (or already ours: a renewal), else returns the owner that holds it.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner == false or owner == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ''
end
return owner
"""
# ARGV[1]: the stale owner seen, ARGV[2]: ours, ARGV[3]: lifetime (ms). Takes the claim over
# only if it is still the stale owner's (not taken by a third run in between).
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Everything but the claim goes; the claim stays with its owner and expiry.
_EMPTY = """
local owner = redis.call('GET', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
redis.call('FLUSHDB')
if owner and ttl > 0 then
  redis.call('SET', KEYS[1], owner, 'PX', ttl)
elseif owner then
  redis.call('SET', KEYS[1], owner)
end
return 0
"""


def databases_from(spec: str | None) -> list[int]:
    """The database numbers ``DISTRIBUTOR_TEST_REDIS_DBS`` names (``"9-15"``, ``"9,11"``),
    or :data:`DEFAULT_DATABASES`. Database 0 is never among them."""
    if not spec:
        return list(DEFAULT_DATABASES)
    numbers: list[int] = []
    for part in spec.split(","):
        low, _, high = part.strip().partition("-")
        numbers += range(int(low), int(high or low) + 1)
    if 0 in numbers:
        raise ValueError("DISTRIBUTOR_TEST_REDIS_DBS must not name database 0")
    return numbers


def _dead_here(owner: str) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


@dataclass
class Claim:
    """A database number held by this process until :meth:`release`."""

    db: int
    url: str
    owner: str
    lost_to: str | None = None  # set when a renewal found another owner (it should not)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _renew(self) -> None:
        client = redis.Redis.from_url(self.url)
        try:
            while not self._stop.wait(RENEW_SECONDS):
                try:
                    other = client.eval(_CLAIM, 1, CLAIM_KEY, self.owner, CLAIM_SECONDS * 1000)
                except redis.RedisError as exc:  # the next renewal may succeed
                    log.warning("could not renew the claim on Redis db %d: %s", self.db, exc)
                    continue
                if other:
                    self.lost_to = other.decode()
                    return
        finally:
            client.close()

    def release(self) -> None:
        """Stop renewing and give the database back (only if the claim is still ours)."""
        self._stop.set()
        with redis.Redis.from_url(self.url) as client:
            client.eval(_RELEASE, 1, CLAIM_KEY, self.owner)


def claim_database(server_url: str = SERVER_URL, databases: list[int] | None = None) -> Claim:
    """Claim the first free database of ``databases`` (by default those of
    ``DISTRIBUTOR_TEST_REDIS_DBS``, else 9–15) on the Redis at ``server_url``, taking over a
    claim whose owner died on this host. The claim is renewed in the background until
    :meth:`Claim.release`. Raises RuntimeError when every database is held by a live run."""
    if databases is None:
        databases = databases_from(os.environ.get("DISTRIBUTOR_TEST_REDIS_DBS"))
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    ms = CLAIM_SECONDS * 1000
    held: list[str] = []
    for db in databases:
        url = f"{server_url.rstrip('/')}/{db}"
        with redis.Redis.from_url(url) as client:
            other = client.eval(_CLAIM, 1, CLAIM_KEY, owner, ms)
            if other and _dead_here(other.decode()):
                log.info("Redis db %d: taking over the claim of %s (gone)", db, other.decode())
                if client.eval(_TAKE_OVER, 1, CLAIM_KEY, other, owner, ms):
                    other = b""
            if other:
                held.append(f"{db}: {other.decode()}")
                continue
        claim = Claim(db, url, owner)
        threading.Thread(target=claim._renew, name=f"redis-claim-{db}", daemon=True).start()
        return claim
    raise RuntimeError(
        "no free Redis database for this test run (set DISTRIBUTOR_TEST_REDIS_DBS or "
        "DISTRIBUTOR_TEST_REDIS_URL); held: " + "; ".join(held)
    )


def empty(url: str) -> None:
    """Delete every key of the database ``url`` names but its claim (atomically: no other
    run can claim the database in between). A database without a claim is just emptied."""
    with redis.Redis.from_url(url) as client:
        client.eval(_EMPTY, 1, CLAIM_KEY)
