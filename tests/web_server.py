"""The web app served over real HTTP for the tests that visit it (browsers, HTTP clients):
uvicorn, as `distributor serve` runs it, in a thread of the test's own process
(tests/processes.py: ``running_serve`` starts the real command, for the tests whose point is
the process: its start, its signals, its exit codes, its log)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from distributor.cli.services import server_options
from distributor.core.config import Settings
from distributor.web.app import create_app
from tests.processes import wait_until


@contextmanager
def running_server(settings: Settings, port: int) -> Iterator[str]:
    """The web app for ``settings`` served on ``port`` of loopback as `distributor serve`
    serves it (uvicorn, its options, the app's start and stop), from a thread of this process;
    yields its base URL once it listens, and stops it (gracefully) on the way out.

    Not the command's process: starting one cost ~2 s of wall time and 1.5 s of CPU, its
    imports, and the browser tests started about 25; here the app is made from modules the
    test has imported already."""
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, **server_options(),
        log_config=None,  # the test process's logging stays as pytest set it
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"serve-{port}", daemon=True)
    thread.start()
    try:
        # A flag read, not a request: asked often, it costs nothing and loses no time.
        wait_until(lambda: server.started or not thread.is_alive(), 60, "the web app to listen",
                   interval=0.01)  # fmt: skip
        assert server.started, f"the web app did not start on port {port}"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), f"the web app on port {port} did not stop"
