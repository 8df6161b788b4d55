"""Independent pieces of work run on every core, in processes forked from this one.

A forked child starts with everything this process holds (the site's catalogue, its plan,
the compiled templates), so a piece of work is named by its index alone and nothing but
the results crosses between processes: no start-up (a fresh interpreter importing the
project takes over a second, a fifth of a full build's budget), no state sent over.

Python warns against forking a process that runs other threads: one of them may hold a lock
the child then waits on for ever. The processes that build hold such threads (a Celery
worker's, the web app's server and its start-up build, a benchmark's Redis claim), but a
child here takes no lock they share with it: it renders with the state the building thread
alone uses, connects to the database afresh (``forget_engines_after_fork``), writes its own
files and logs through handlers Python re-creates at the fork. So the warning is silenced
for this fork only.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from distributor.core.db import forget_engines_after_fork

R = TypeVar("R")

# The work of the pool being started: inherited by its children at the fork, never pickled
# (a closure over the site's state could not be).
_work: Callable[[int], Any] | None = None


def usable_workers() -> int:
    """How many processes can work at once here: the cores this process may run on (1
    where processes cannot be forked, or where this one is a daemonic pool worker, which
    multiprocessing forbids to have children)."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    if multiprocessing.current_process().daemon:
        return 1
    if threading.active_count() > 1:
        # A fork copies only the calling thread: a lock another thread holds at that moment
        # (a connection pool's, a client's) stays held in the child for ever. The web
        # process and a Celery worker run other threads; `distributor site build` does not.
        return 1
    return len(os.sched_getaffinity(0))


@contextmanager
def forked_results(work: Callable[[int], R], count: int, workers: int) -> Iterator[Iterator[R]]:
    """Run ``work(0)`` … ``work(count - 1)`` in ``workers`` forked processes, started on
    entry; yields an iterator of the results in the order they finish (the caller may do its
    own share of work before reading them). An exception in ``work`` is raised when its
    result is read; leaving the block stops the children."""
    global _work
    _work = work
    try:
        with warnings.catch_warnings():  # see the module docstring
            warnings.filterwarnings("ignore", ".*use of fork", DeprecationWarning)
            pool = multiprocessing.get_context("fork").Pool(workers, _child_started)
        try:
            yield pool.imap_unordered(_run, range(count))
        except BaseException:
            pool.terminate()
            raise
        else:
            # Let the children finish and exit on their own: a SIGTERM (Pool.__exit__'s
            # terminate) lands wherever a child is, and its handlers (a coverage run's saving
            # its data, under the tests) then ran at any point; a CI run hung in one.
            pool.close()
        finally:
            pool.join()
    finally:
        _work = None


def _child_started() -> None:
    # The parent's pooled database connections are its own: a child that used one would
    # interleave its queries with the parent's on the same socket.
    forget_engines_after_fork()


def _run(index: int) -> Any:
    assert _work is not None
    return _work(index)
