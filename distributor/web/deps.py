"""What a route needs from the app it runs in, as FastAPI dependencies: the Settings and
the task queue ``create_app`` keeps on ``app.state``. The routers are module-level, so one
process can serve several apps (the tests do); each request reads its own app's."""

# No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations.

from typing import Annotated, cast

from fastapi import Depends, Request
from starlette.datastructures import State
from starlette.requests import HTTPConnection

from distributor.core.config import Settings
from distributor.web.queueing import LazyQueue


def install(state: State, settings: Settings, queue: LazyQueue) -> None:
    """Put what the routes read on an app's ``state``."""
    state.settings = settings
    state.queue = queue


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
