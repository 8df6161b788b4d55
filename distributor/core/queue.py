"""Waking the workers: the Celery configuration both sides share, and a small client that
sends tasks by name (``distributor`` never imports ``worker``).

The broker only carries wake-up signals; the database is the record. A wake-up that cannot
be sent is logged, not raised: the sweep finds the work within ``settings.sweep_seconds``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from distributor.core.broker import broker_url, redis_client
from distributor.core.config import FOLD_SECONDS, Settings

log = logging.getLogger(__name__)

QUEUE = "distributor"
TASK_PREFIX = "distributor."


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for both the workers and the clients that enqueue."""
    return {
        "broker_url": broker_url(settings),
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "task_default_queue": QUEUE,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "task_publish_retry_policy": {
            "max_retries": 2,
            "interval_start": 0.1,
            "interval_step": 0.2,
            "interval_max": 0.5,
        },
        "beat_schedule": {
            "sweep": {"task": TASK_PREFIX + "sweep", "schedule": settings.sweep_seconds},
            # reporting/stats_flush.py: the fetch counts, from Redis into the database.
            "statistics": {"task": TASK_PREFIX + "flush_statistics", "schedule": 60.0},
            # outbox/retention.py: rows past DISTRIBUTOR_LEDGER_RETENTION_DAYS folded into
            # counts (nothing when unset).
            "ledger_fold": {"task": TASK_PREFIX + "ledger_fold", "schedule": FOLD_SECONDS},
        },
        "beat_schedule_filename": str((settings.data_dir / "celerybeat-schedule").resolve()),
        "timezone": "UTC",
    }


_FIRST_IMPORT = threading.Lock()


class TaskQueue:
    """Sends named tasks to the workers; never raises when the broker is down."""

    def __init__(self, settings: Settings) -> None:
        # Imported here: Celery costs every command's start-up 0.1 s, most of which never
        # wake a worker. Under a lock: celery's package swaps itself in sys.modules while it
        # is first imported, and a second thread importing it then gets "cannot import name
        # 'Celery'" (two threads making their first queue at once: serve's request threads,
        # a worker's sweep thread beside its main one).
        with _FIRST_IMPORT:
            from celery import Celery

        self._app = Celery("distributor-client", set_as_current=False)
        self._app.conf.update(celery_config(settings))

    def send(self, task: str, *args: int | str | list[str], countdown: float = 0.0) -> bool:
        """Enqueue ``distributor.<task>(*args)``, to run no sooner than ``countdown`` seconds
        from now (keep it to seconds: a worker holds such a task in memory until then);
        False (and a warning) if the broker refused."""
        from kombu.exceptions import OperationalError

        try:
            self._app.send_task(
                TASK_PREFIX + task, args=list(args), queue=QUEUE, countdown=countdown or None
            )
        except (OperationalError, OSError) as exc:
            log.warning("could not wake the workers (%s); the sweep will catch up: %s", task, exc)
            return False
        return True

    @property
    def broker_url(self) -> str:
        """The broker's URL (the embedded Redis's, when none is configured)."""
        return str(self._app.conf.broker_url)

    def waiting(self) -> int:
        """How many tasks wait in the queue (not counting those being run)."""
        client = redis_client(self._app.conf.broker_url)
        try:
            return int(client.llen(QUEUE))
        finally:
            client.close()

    def close(self) -> None:
        """Release the broker connections."""
        self._app.close()
