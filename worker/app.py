"""The Celery app, configured from the same Settings as everything else.

Start it with ``distributor worker``, which runs ``python -m worker -A worker.app worker …``:
Celery's own command in a process that starts with the cyclic collector off (see
``worker/__main__.py``); ``celery -A worker.app worker`` works too, without that.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from celery import Celery, bootsteps
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    after_task_publish,
    beat_init,
    worker_init,
    worker_process_init,
    worker_ready,
)

from distributor.core import collector, heartbeat
from distributor.core.config import configured_secrets, load_settings
from distributor.core.db import dispose_engines
from distributor.core.logs import redact_handlers, setup_logging
from distributor.core.queue import TASK_PREFIX, TaskQueue, celery_config

log = logging.getLogger(__name__)
settings = load_settings()
app = Celery("distributor")
app.conf.update(celery_config(settings))
app.conf.include = ["worker.tasks"]
queue = TaskQueue(settings)
secrets = configured_secrets(settings)  # what every log line of the worker masks


# A start under `python -m worker` (`distributor worker`, `distributor beat`) runs with the
# cyclic collector off (distributor.core.collector) until the process's imports are done, the
# tasks' modules too, and before the pool forks: what they made is then kept out of every
# later collection, in this process and in the pool's children, which share those pages.
_frozen: list[int] = []  # how many objects, frozen at worker_init, said once it is ready


@worker_init.connect
def _worker_started(**_kwargs: Any) -> None:
    _frozen.append(collector.started())


@worker_ready.connect
def _worker_ready(**_kwargs: Any) -> None:
    _say_frozen(_frozen[-1] if _frozen else 0)  # the worker's logging is not set up at init


@beat_init.connect
def _beat_started(**_kwargs: Any) -> None:
    _say_frozen(collector.started())


def _say_frozen(count: int) -> None:
    if count:
        log.info("start-up: %s objects kept out of garbage collection", f"{count:,}")


@worker_process_init.connect
def _after_fork(**_kwargs: Any) -> None:
    # Connections must never be shared between forked processes.
    dispose_engines()
    setup_logging(settings.log_level or "INFO", secrets)


@after_setup_logger.connect
@after_setup_task_logger.connect
def _redacted_logs(logger: Any, **_kwargs: Any) -> None:
    # Celery replaces the root logger's handlers with its own: keep its format, mask secrets.
    redact_handlers(logger, secrets=secrets)


@after_task_publish.connect
def _beat_heartbeat(sender: str | None = None, **_kwargs: Any) -> None:
    # In beat: it just enqueued a sweep. Recorded here too, not only when a worker runs it,
    # so a long send holding the sweep back in the queue is not taken for beat missing.
    if sender == TASK_PREFIX + "sweep":
        heartbeat.record(settings, queue.broker_url)


class SweepWatch(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Each worker looks at the sweep's heartbeat once a sweep period (on its timer) and
    logs an error when beat is not running (``distributor.core.heartbeat.SweepWatch``)."""

    requires: ClassVar = {"celery.worker.components:Timer"}

    def start(self, parent: Any) -> None:
        watch = heartbeat.SweepWatch(settings, queue.broker_url)
        self.timer = parent.timer.call_repeatedly(settings.sweep_seconds, watch.check)

    def stop(self, parent: Any) -> None:
        self.timer.cancel()


app.steps["worker"].add(SweepWatch)
