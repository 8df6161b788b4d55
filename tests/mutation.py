"""A pytest plugin for ``make mutate`` only (``-p tests.mutation`` in ``[tool.mutmut]``).

While mutmut collects its stats (which test reaches which mutated function), the functions
reached by subprocesses a test started (workers, servers; see
``tests/mutation_site/sitecustomize.py``) are added to those the test reached itself, so
mutmut runs that test against their mutants too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_HITS = Path(tempfile.gettempdir()) / f"mutmut-subprocess-hits-{os.getpid()}"
os.environ["MUTMUT_SUBPROCESS_HITS"] = str(_HITS)  # read only while stats are collected


def _collecting_stats() -> bool:
    """Whether mutmut is collecting stats now (it sets this before each pytest run)."""
    return os.environ.get("MUTANT_UNDER_TEST") == "stats"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Before mutmut files this test's hits (its own teardown hook), add the subprocesses'."""
    if _collecting_stats() and _HITS.exists():
        from mutmut.state import state

        names = _HITS.read_text().split()
        _HITS.unlink()
        state()._stats.update(names)
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Against a mutant, run the quickest tests first (by the durations mutmut measured while
    collecting its stats): with ``-x`` the first failure ends the run, so a mutant a unit
    test kills is not made to wait for the end-to-end tests first."""
    if os.environ.get("MUTANT_UNDER_TEST", "") in ("", "stats", "fail"):
        return
    from mutmut.state import state

    durations = state().duration_by_test
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))
