"""The web app's TaskQueue, made on first use (most requests never enqueue)."""

from __future__ import annotations

import threading

from distributor.core.config import Settings
from distributor.core.queue import TaskQueue


class LazyQueue:
    """One TaskQueue per app, created when first needed, closed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._queue: TaskQueue | None = None
        self._lock = threading.Lock()

    def get(self) -> TaskQueue:
        """The queue (connecting to the broker on first use)."""
        with self._lock:
            if self._queue is None:
                self._queue = TaskQueue(self._settings)
            return self._queue

    def close(self) -> None:
        """Release the broker connections, if any were made."""
        with self._lock:
            if self._queue is not None:
                self._queue.close()
                self._queue = None
