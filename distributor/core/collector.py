"""Python's cyclic garbage collector around the work that makes many objects which live on:
a process's start (its imports) and a site build.

Reference counting frees nearly everything a program drops; the cyclic collector is for
what is left in reference cycles, and it looks for it by scanning the objects it tracks, again
and again as new ones are made (every 700 by default), the old ones less often but all of
them. A process that starts makes a few hundred thousand objects that live as long as it does
(modules, classes, SQLAlchemy's mappings, FastAPI's routes and models), and scanning them was
a sixth of importing the web app (0.22–0.30 s of 1.5–1.9 s) and an eighth of `releases status`
(0.10 s of 0.8 s). So a command starts with the collector off (``starting``); once the
process has imported what it runs with, ``started`` moves everything alive out of the
collector's reach for good (``gc.freeze``: Python's advice for a process that forks, whose
children then share those pages instead of copying them as a collection touches them) and
turns it on again for what comes next. What start-up left in cycles (~1,600 objects, ~5 MB
with the web app) stays until the exit.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# While a start is under way (``starting``): whether the collector was on before it.
_start: list[bool] = []
# Whether ``started`` froze objects that ``finish_start`` is to give back.
_froze: list[bool] = []


def starting() -> None:
    """A process (or, under the tests, a command run in one) starts: no collection until
    ``started`` (or ``finish_start``)."""
    if not _start:
        _start.append(gc.isenabled())
        gc.disable()


def started() -> int:
    """What the process imported to run lives as long as it does: kept out of every later
    collection (frozen), and the collector on again if it was before ``starting``; how many
    objects were frozen. Does nothing (0) when no start is under way: a second call, or a
    process that never called ``starting``."""
    if not _start:
        return 0
    gc.freeze()
    _froze[:] = [True]
    if _start.pop():
        gc.enable()
    return gc.get_freeze_count()


def finish_start() -> None:
    """The end of what ``starting`` began, whether or not ``started`` was reached (a command
    that loaded nothing, or failed first): the collector back as it was before. For a
    command run in another program's process (the tests' ``invoke_cli``): what ``started``
    froze is collectable again there (``gc.unfreeze``: with the few hundred objects CPython
    3.12 freezes of its own start, which live as long as the process either way), and that
    program's collector on as before; a process about to exit freezes what is left anyway
    (``cli.commands._leave``)."""
    # Through ``started`` even for a command that never reached it: freezing then
    # unfreezing leaves what the command made in the oldest generation, where the next
    # young collection (soon: the count of new objects grew all along) does not scan it.
    started()
    if _froze:
        _froze.clear()
        gc.unfreeze()


@contextmanager
def paused() -> Iterator[None]:
    """Pause the cyclic collector for the block; reference counting still frees what the
    block drops.

    A site build makes hundreds of thousands of objects that live until it ends (catalogue
    rows, outputs, the loaded releases), and the collector scanned them again and again: a
    third of a full build and half of a regeneration. What a build leaves in reference cycles
    is small (its peak memory is the same) and is collected after it. Another thread's build
    may end first and resume the collector early; that costs speed, never correctness."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()
