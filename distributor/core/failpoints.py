"""Failpoints: named places in the code where a fault-injection run may kill the process.

``hit(name)`` does nothing unless ``DISTRIBUTOR_FAILPOINTS`` names that point; then it kills
the calling process with SIGKILL (no cleanup, no ``finally``: what a crash or the OOM killer
does). The variable holds comma-separated rules:

- ``after-accept:0.002`` — at each call, with probability 0.002;
- ``after-accept@150`` — at the 150th call in this process (1-based).

The variable is read once per process (``config.failpoint_spec``), so an unset variable
costs one dict lookup a call. ``bench/faults.py`` uses it; nothing in production sets it.
"""

from __future__ import annotations

import os
import random
import signal
from dataclasses import dataclass

from distributor.core.config import FAILPOINTS_ENV as ENV
from distributor.core.config import failpoint_spec


@dataclass
class _Rule:
    """When a failpoint fires: with ``probability`` at each call, or at call number ``nth``."""

    probability: float = 0.0
    nth: int = 0
    calls: int = 0

    def fires(self) -> bool:
        self.calls += 1
        if self.nth:
            return self.calls == self.nth
        return random.random() < self.probability  # fault injection, not crypto


def parse(spec: str) -> dict[str, _Rule]:
    """The rules of a ``DISTRIBUTOR_FAILPOINTS`` value; raises ValueError for a bad one."""
    rules: dict[str, _Rule] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if "@" in item:
            name, _, nth = item.partition("@")
            rules[name] = _Rule(nth=int(nth))
        elif ":" in item:
            name, _, probability = item.partition(":")
            rules[name] = _Rule(probability=float(probability))
        else:
            raise ValueError(f"{ENV}: {item!r} is neither NAME:PROBABILITY nor NAME@N")
    return rules


_rules: dict[str, _Rule] | None = None


def hit(name: str) -> None:
    """Kill this process with SIGKILL if the failpoint ``name`` is armed and fires now."""
    global _rules
    if _rules is None:
        _rules = parse(failpoint_spec())
    if not _rules:
        return
    rule = _rules.get(name)
    if rule is not None and rule.fires():
        os.kill(os.getpid(), signal.SIGKILL)
