"""The Celery app, configured from the same Settings as everything else.

Start it with ``distributor worker`` (or ``celery -A worker.app worker``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from distributor.config import load_settings
from distributor.db import dispose_engines
from distributor.logs import setup_logging
from distributor.queue import TaskQueue, celery_config

settings = load_settings()
app = Celery("distributor")
app.conf.update(celery_config(settings))
app.conf.include = ["worker.tasks"]
queue = TaskQueue(settings)


@worker_process_init.connect
def _after_fork(**_kwargs: Any) -> None:
    # Connections must never be shared between forked processes.
    dispose_engines()
    setup_logging()
