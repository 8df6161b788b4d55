"""The Celery app, configured from the same Settings as everything else.

Start it with ``distributor worker`` (or ``celery -A worker.app worker``).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import after_setup_logger, after_setup_task_logger, worker_process_init

from distributor.config import load_settings
from distributor.db import dispose_engines
from distributor.logs import redact_handlers, setup_logging
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
    setup_logging(settings.log_level or "INFO")


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redacted_logs(logger: Any, **_kwargs: Any) -> None:
    # Celery replaces the root logger's handlers with its own: keep its format, mask secrets.
    redact_handlers(logger)
