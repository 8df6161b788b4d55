"""What a route needs from the app it runs in, as FastAPI dependencies: the Settings, the
task queue and the app's parts (the dashboard, the pages, the public forms…) that
``create_app`` keeps on ``app.state``. The routers are module-level, so one process can
serve several apps (the tests do); each request reads its own app's. Every read is typed:
:func:`part` checks what it returns is of the type asked for."""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations.

from typing import Annotated, TypeVar, cast

from fastapi import Depends, Request
from starlette.datastructures import State
from starlette.requests import HTTPConnection

from distributor.core.config import Settings
from distributor.web.queueing import LazyQueue

T = TypeVar("T")


def install(state: State, settings: Settings, queue: LazyQueue, *parts: object) -> None:
    """Put what the routes read on an app's ``state``: the Settings, the queue and one
    object of each type in ``parts`` (read back with :func:`part`)."""
    state.settings = settings
    state.queue = queue
    state.parts = {type(p): p for p in parts}


def part(connection: HTTPConnection, kind: type[T]) -> T:
    """The app's part of type ``kind`` (installed by ``create_app``). Raises LookupError
    when the app has none: a route used in an app not made for it."""
    found = connection.app.state.parts.get(kind)
    if not isinstance(found, kind):
        raise LookupError(f"this app has no {kind.__name__} (see create_app)")
    return found


def settings_of(connection: HTTPConnection) -> Settings:
    """The Settings of the app serving ``connection``."""
    return cast(Settings, connection.app.state.settings)


# async: FastAPI runs a plain function dependency in a worker thread, for nothing here.
async def app_settings(request: Request) -> Settings:
    """The Settings of the app serving the request."""
    return settings_of(request)


async def app_queue(request: Request) -> LazyQueue:
    """The task queue of the app serving the request (it connects on first ``get``)."""
    return cast(LazyQueue, request.app.state.queue)


AppSettings = Annotated[Settings, Depends(app_settings)]
AppQueue = Annotated[LazyQueue, Depends(app_queue)]
