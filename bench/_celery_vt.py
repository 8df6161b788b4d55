"""The worker app of bench/faults.py scenario 7: ``worker.app`` unchanged, except a Redis
visibility timeout of ``FAULTS_VISIBILITY_TIMEOUT`` seconds — below the 60 s floor that
``DISTRIBUTOR_VISIBILITY_TIMEOUT`` accepts — and kombu scanning for overdue unacknowledged
tasks every ``FAULTS_RESTORE_INTERVAL`` seconds (its default is every ~100 s), so the
redelivery of a task still running happens within the batch.

Run by ``python -m celery -A _celery_vt worker …`` with bench/ on PYTHONPATH.
"""

from __future__ import annotations

import os

import worker.tasks  # noqa: F401 - registers the tasks
from worker.app import app

app.conf.broker_transport_options = {
    **app.conf.broker_transport_options,
    "visibility_timeout": float(os.environ["FAULTS_VISIBILITY_TIMEOUT"]),
    "unacked_restore_interval": float(os.environ.get("FAULTS_RESTORE_INTERVAL", "1")),
    "unacked_restore_throttle": 1,
}
