"""Loaded by every Python process of a ``make mutate`` run (the Makefile puts this folder on
PYTHONPATH), and by no other run.

mutmut learns which tests reach which function by recording, in its own process, the calls
that go through the mutated copy ("stats"). A ``distributor worker`` or ``distributor serve``
that a test starts runs the mutated copy too (PYTHONPATH), but its calls would be recorded in
the subprocess's memory and lost, so a function reached only through a worker would count as
tested by nothing. Here a subprocess started during stats appends the names it reaches to
the file named by ``MUTMUT_SUBPROCESS_HITS``; ``tests/mutation.py`` hands them to mutmut.
"""

from __future__ import annotations

import os

_HITS = os.environ.get("MUTMUT_SUBPROCESS_HITS")

if _HITS and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    from mutmut.mutation import trampoline

    _seen: set[str] = set()

    def _record(name: str, caller: str | None = None) -> None:
        """Append ``name`` to the hits file, once per process (one short O_APPEND write:
        the worker's forked children can share the file)."""
        if name in _seen:
            return
        _seen.add(name)
        fd = os.open(_HITS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{name}\n".encode())
        finally:
            os.close(fd)

    trampoline.record_trampoline_hit = _record
