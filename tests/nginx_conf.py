"""The nginx front door of docker-compose.yml, run locally: the same server block, adapted
only where a deployment differs (address, document root, upstream, temp paths).

Used by tests/test_nginx.py and bench/feeds.py, so both exercise exactly the configuration
that ships. The adaptation is a fixed list of exact-string replacements, each of which must
match exactly once: when the compose config changes shape, this fails loudly instead of
running some other configuration.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests import tools
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
NGINX = tools.NGINX.path  # DISTRIBUTOR_TEST_NGINX, else Debian's
MIME_TYPES = Path("/etc/nginx/mime.types")  # what the image's nginx.conf includes, too
TEMPLATE_TARGET = "/etc/nginx/templates/default.conf.template"
# The deployment-specific strings of the compose config, replaced for a local run.
LISTEN = "listen 80;"
ROOT_DIRECTIVE = "root /data/public;"
UPSTREAM = "proxy_pass http://web:8000;"
POLL_LIMIT = "limit_req zone=feed_polls burst=10 nodelay;"
STATS_LOG = "/var/log/distributor-stats/access.log"  # on the volume the workers read
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def compose() -> dict[str, Any]:
    """docker-compose.yml, parsed."""
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def nginx_service() -> dict[str, Any]:
    """The ``nginx`` service of docker-compose.yml."""
    service = compose()["services"]["nginx"]
    assert isinstance(service, dict)
    return service


def template_text() -> str:
    """The text of the config mounted as the image's template, as written in the file."""
    spec = compose()
    mounts = [m for m in nginx_service()["configs"] if m["target"] == TEMPLATE_TARGET]
    assert len(mounts) == 1, f"nginx must mount exactly one config at {TEMPLATE_TARGET}"
    content = spec["configs"][mounts[0]["source"]]["content"]
    assert isinstance(content, str)
    return content


def compose_interpolate(text: str) -> str:
    """What Compose makes of the config text: ``$$`` becomes ``$``. Any other ``$`` would be
    a Compose variable, replaced (by an empty string, if unset) before nginx saw it — for an
    nginx variable, a silently broken config — so it is refused here."""
    runs = (m.group(0) for m in re.finditer(r"(\$+)[{\w]*", text))
    odd = [run for run in runs if (len(run) - len(run.lstrip("$"))) % 2]
    assert not odd, f"unescaped $ in the nginx config (Compose would interpolate it): {odd}"
    return text.replace("$$", "$")


def envsubst(text: str, environment: Mapping[str, str]) -> str:
    """What the nginx image's ``20-envsubst-on-templates.sh`` makes of a template: ``$NAME``
    and ``${NAME}`` replaced for every variable defined in ``environment`` whose name matches
    ``NGINX_ENVSUBST_FILTER`` (a regular expression; unset: every variable); everything else,
    nginx's own ``$uri`` included, left alone."""
    pattern = re.compile(environment.get("NGINX_ENVSUBST_FILTER", ""))
    defined = {k: v for k, v in environment.items() if pattern.search(k)}

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return defined[name] if name in defined else match.group(0)

    return _VARIABLE.sub(substitute, text)


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    assert count == 1, f"expected {old!r} exactly once in the compose nginx config, found {count}"
    return text.replace(old, new)


def server_config(
    *,
    public_dir: Path,
    port: int,
    upstream: str,
    site_url: str,
    websub_hub: str = "",
    poll_limit: bool = True,
    statistics_log: Path,
) -> str:
    """The compose nginx config as the container would run it with ``site_url`` and
    ``websub_hub`` in its environment, listening on 127.0.0.1:``port``, serving
    ``public_dir``, proxying to ``upstream`` (``host:port``) and writing its statistics
    log to ``statistics_log``; without the feed poll limit if ``poll_limit`` is false (for
    benchmarks: one client polling as fast as it can)."""
    environment = {str(k): str(v) for k, v in nginx_service().get("environment", {}).items()}
    environment.update(DISTRIBUTOR_SITE_URL=site_url, DISTRIBUTOR_WEBSUB_HUB=websub_hub)
    text = envsubst(compose_interpolate(template_text()), environment)
    left = re.findall(r"\$\{\w+\}|\$DISTRIBUTOR_\w+", text)
    assert not left, f"variables the container would leave unsubstituted: {left}"
    text = _replace_once(text, LISTEN, f"listen 127.0.0.1:{port};")
    text = _replace_once(text, ROOT_DIRECTIVE, f"root {public_dir};")
    text = _replace_once(text, UPSTREAM, f"proxy_pass http://{upstream};")
    text = _replace_once(text, STATS_LOG, str(statistics_log))
    if not poll_limit:
        text = _replace_once(text, POLL_LIMIT, "# (poll limit off)")
    return text


def main_config(
    server: str, run_dir: Path, *, access_log: bool = False, user: str | None = None
) -> str:
    """A complete nginx.conf in the shape of the official image's (its ``http`` block
    includes the template's output), running in the foreground with every path that nginx
    writes below ``run_dir``; its workers run as ``user`` (needs root), by default as the
    user running the tests. Without ``access_log``, no log besides the statistics' (the
    server config's own, at this level: an ``access_log off`` here would cancel it)."""
    if user is None and os.geteuid() == 0:
        user = pwd.getpwuid(os.geteuid()).pw_name
    user = f"user {user};" if user else ""
    log = f"access_log {run_dir}/access.log;" if access_log else ""
    temp = "\n".join(
        f"    {kind}_temp_path {run_dir}/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
{user}
worker_processes auto;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{
    worker_connections 1024;
}}
http {{
    include {MIME_TYPES};
    default_type application/octet-stream;
    sendfile on;
    keepalive_timeout 65;
    {log}
{temp}
{server}
}}
"""


@dataclass(frozen=True)
class RunningNginx:
    """An nginx serving on ``base_url``; its error log is ``error_log``, its statistics
    log ``statistics_log`` (written from the first answer from disk on)."""

    base_url: str
    error_log: Path
    statistics_log: Path
    run_dir: Path

    def reopen_logs(self) -> None:
        """``nginx -s reopen``, as after a log rotation: its logs are opened again by name."""
        command = [str(NGINX), "-p", str(self.run_dir), "-c", str(self.run_dir / "nginx.conf")]
        done = subprocess.run([*command, "-s", "reopen"], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


@contextmanager
def running_nginx(
    run_dir: Path,
    *,
    public_dir: Path,
    upstream: str,
    site_url: str,
    websub_hub: str = "",
    poll_limit: bool = True,
    access_log: bool = False,
    user: str | None = None,
) -> Iterator[RunningNginx]:
    """``/usr/sbin/nginx`` running the compose config (see :func:`server_config`) until the
    block ends; raises AssertionError, with nginx's own error, if it does not start."""
    run_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = server_config(
        public_dir=public_dir,
        port=port,
        upstream=upstream,
        site_url=site_url,
        websub_hub=websub_hub,
        poll_limit=poll_limit,
        statistics_log=run_dir / "statistics.log",
    )
    conf = run_dir / "nginx.conf"
    conf.write_text(main_config(server, run_dir, access_log=access_log, user=user))
    command = [str(NGINX), "-p", str(run_dir), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, f"nginx refused the config:\n{checked.stderr}"
    assert "[warn]" not in checked.stderr, f"nginx warns about the config:\n{checked.stderr}"
    error_log = run_dir / "error.log"
    with (run_dir / "nginx.out").open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"nginx exited at start:\n{_tail(error_log)}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"nginx not listening:\n{_tail(error_log)}") from None
                time.sleep(0.02)
        yield RunningNginx(
            f"http://127.0.0.1:{port}", error_log, run_dir / "statistics.log", run_dir
        )
    finally:
        proc.terminate()  # SIGTERM: fast shutdown of the master and its workers
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own process group: master and workers
            proc.wait()


def _tail(path: Path, lines: int = 20) -> str:
    if not path.exists():
        return "(no error log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
