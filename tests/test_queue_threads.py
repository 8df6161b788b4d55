"""The task queue is made lazily (Celery is imported by the first ``TaskQueue``): two
threads making their first queue at once — ``serve``'s request threads, the fault bench's
sweep thread beside its main one — must both get one. celery's package swaps itself in
``sys.modules`` while it is first imported, and an unguarded second import failed with
"cannot import name 'Celery'" (seen in CI, in ``bench/faults.py``)."""

from __future__ import annotations

import subprocess
import sys

from distributor.core.config import Settings
from tests.processes import settings_env

# In a fresh process (Celery not imported yet): 16 threads make their first queue at once.
RACE = """
import threading
from distributor.core.config import load_settings
from distributor.core.queue import TaskQueue
settings, start, errors = load_settings(), threading.Barrier(16), []
def make():
    start.wait()
    try:
        TaskQueue(settings).close()
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=make) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(errors)
"""


def test_threads_making_their_first_queue_at_once_all_get_one(
    sqlite_settings: Settings, redis_url: str
) -> None:
    env = settings_env(sqlite_settings.model_copy(update={"broker_url": redis_url}))
    runs = [
        subprocess.Popen([sys.executable, "-c", RACE], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(6)  # the race was lost about one run in five before the lock
    ]
    said = [run.communicate(timeout=120)[0].strip() for run in runs]
    assert said == ["[]"] * 6
