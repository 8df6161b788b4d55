"""A pytest plugin for ``make mutate`` only (``-p tests.mutation`` in ``[tool.mutmut]``).

- Test files: only those ``[tool.distributor.mutation-tests]`` lists run (with
  ``DISTRIBUTOR_MUTATE_MODULE``, which ``make mutate MODULE=x`` sets, only x's: its clean run
  and stats take minutes, not the half hour of every listed file); the others are
  deselected (mutmut's test selection is all of ``tests/``, so a new file listed there gets
  its stats without invalidating the others' results).
- While mutmut collects its stats (which test reaches which mutated function), a module's
  functions count as reached only by tests of the files listed for that module, and the
  functions reached by subprocesses a test started (workers, servers; see
  ``tests/mutation_site/sitecustomize.py``) are added to those the test reached itself.
- Against a mutant, the quickest tests run first.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

_HITS = Path(tempfile.gettempdir()) / f"mutmut-subprocess-hits-{os.getpid()}"
os.environ["MUTMUT_SUBPROCESS_HITS"] = str(_HITS)  # read only while stats are collected


@cache
def files_by_module() -> dict[str, frozenset[str]]:
    """Module path below ``distributor`` (``core.tokens``) → the test files that judge its
    mutants, from the pyproject.toml mutmut copied beside the tests."""
    config = tomllib.loads(Path("pyproject.toml").read_text())
    table = config["tool"]["distributor"]["mutation-tests"]
    return {module: frozenset(files) for module, files in table.items()}


def _mutant() -> str:
    """What mutmut is doing now: "stats", "fail", a mutant's name, or ""."""
    return os.environ.get("MUTANT_UNDER_TEST", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the files no module lists; against a mutant, order the rest quickest first
    (by the durations of mutmut's stats): with ``-x`` the first failure ends the run, so a
    mutant a unit test kills does not wait for the end-to-end tests."""
    only = os.environ.get("DISTRIBUTOR_MUTATE_MODULE")  # make mutate MODULE=x: its files only
    listed = files_by_module()[only] if only else frozenset().union(*files_by_module().values())
    dropped = [item for item in items if item.nodeid.split("::")[0] not in listed]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item.nodeid.split("::")[0] in listed]
    if _mutant() not in ("", "stats", "fail"):
        from mutmut.state import state

        durations = state().duration_by_test
        items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """Before mutmut files this test's hits (in its own teardown hook): add what the
    test's subprocesses reached, then drop the functions of modules this file does not
    judge."""
    if _mutant() == "stats":
        from mutmut.state import state

        hits = state()._stats
        if _HITS.exists():
            hits.update(_HITS.read_text().split())
            _HITS.unlink()
        path = item.nodeid.split("::")[0]
        for name in list(hits):
            # distributor.outbox.ledger.x_claim -> outbox.ledger
            module = name.removeprefix("distributor.").rpartition(".")[0]
            if path not in files_by_module().get(module, frozenset()):
                hits.discard(name)
    yield
