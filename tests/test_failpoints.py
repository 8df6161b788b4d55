"""Failpoints (distributor/core/failpoints.py): a named point kills the process when armed, and is
inert when DISTRIBUTOR_FAILPOINTS is unset or names another point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from distributor.core import failpoints

# Calls the point five times, printing the call number before each.
_SCRIPT = """
from distributor.core import failpoints
for n in range(1, 6):
    print(n, flush=True)
    failpoints.hit("after-accept")
print("survived", flush=True)
"""


def _run(spec: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != failpoints.ENV}
    if spec is not None:
        env[failpoints.ENV] = spec
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )


def test_nth_call_kills_the_process_with_sigkill() -> None:
    done = _run("other:1,after-accept@3")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1", "2", "3"]


def test_probability_one_kills_at_the_first_call() -> None:
    done = _run("after-accept:1")
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.split() == ["1"]


@pytest.mark.parametrize("spec", [None, "", "after-accept:0", "before-send@1"])
def test_inert_when_unset_or_naming_another_point(spec: str | None) -> None:
    done = _run(spec)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "2", "3", "4", "5", "survived"]


def test_a_bad_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="neither"):
        failpoints.parse("after-accept")
    assert failpoints.parse("a:0.5, b@2")["b"].nth == 2
