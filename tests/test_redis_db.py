"""The Redis database each test run claims for itself (tests/redis_db.py), on the real Redis:
two claims never share a database, emptying a database keeps its claim, a run that died on
this host gives its database up and a live one keeps it."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest
import redis

from tests.redis_db import CLAIM_KEY, Claim, claim_database, empty


@pytest.fixture
def claim() -> Iterator[Claim]:
    """A database claimed for one test (besides the run's own), given back after it."""
    held = claim_database()
    yield held
    held.release()


def test_two_claims_never_share_a_database(claim: Claim) -> None:
    second = claim_database()
    try:
        assert second.db != claim.db
        assert 0 not in (claim.db, second.db)  # nobody's default database
    finally:
        second.release()
    assert not redis.Redis.from_url(second.url).exists(CLAIM_KEY)  # given back


def test_emptying_a_database_keeps_its_claim(claim: Claim) -> None:
    client = redis.Redis.from_url(claim.url)
    client.set("distributor:some-task", "x")
    empty(claim.url)  # what each run and each worker start does
    assert client.keys() == [CLAIM_KEY.encode()]
    assert client.get(CLAIM_KEY) == claim.owner.encode() and client.pttl(CLAIM_KEY) > 0
    with pytest.raises(RuntimeError, match="no free Redis database"):
        claim_database(databases=[claim.db])  # still ours
    client.close()


def test_a_dead_runs_claim_is_taken_over_and_a_live_ones_is_not(claim: Claim) -> None:
    client = redis.Redis.from_url(claim.url)
    host = socket.gethostname()
    for live in (f"{host}:{os.getpid()}:another-run", f"another-host:{os.getpid()}:a-run"):
        client.set(CLAIM_KEY, live, xx=True, px=60_000)  # held all along: no other run can slip in
        with pytest.raises(RuntimeError, match="no free Redis database"):
            claim_database(databases=[claim.db])
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    client.set(CLAIM_KEY, f"{host}:{gone.pid}:a-run-that-died", xx=True, px=60_000)
    taken = claim_database(databases=[claim.db])
    try:
        assert taken.db == claim.db and client.get(CLAIM_KEY) == taken.owner.encode()
    finally:
        taken.release()
    client.close()
