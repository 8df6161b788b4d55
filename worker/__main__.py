"""``python -m worker ARGS``: Celery's own command (``celery ARGS``), in a process that starts
with Python's cyclic collector off until the worker (or beat) is set up, its tasks imported
and its pool not yet forked (``worker.app``'s ``worker_init`` and ``beat_init`` handlers end the
start; see ``distributor.core.collector``). What `distributor worker` and `distributor beat`
run."""

from distributor.core import collector

collector.starting()

from celery.__main__ import main  # noqa: E402 - imported once the collector is off

main()
