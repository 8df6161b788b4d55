"""docker-compose.yml (parsed, not run: Docker does not run here) and the README contract."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml

from distributor.cli import app

ROOT = Path(__file__).resolve().parent.parent


def cli_commands() -> set[tuple[str, ...]]:
    """Every command path the `distributor` CLI accepts, e.g. ("db", "upgrade")."""
    root = typer.main.get_command(app)
    found: set[tuple[str, ...]] = set()

    def walk(cmd: Any, path: tuple[str, ...]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                walk(sub, (*path, name))
        else:
            found.add(path)

    walk(root, ())
    return found


def test_compose_has_the_production_services_each_running_a_real_command() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "postgres", "mailpit", "web", "worker", "beat"} <= set(services)
    commands = cli_commands()
    ran = []
    for name, service in services.items():
        command = service.get("command")
        if command and command[0] == "distributor":
            words = tuple(w for w in command[1:] if not w.startswith("-"))
            assert any(words[: len(c)] == c for c in commands), (name, command)
            ran.append(name)
    assert {"web", "worker", "beat"} <= set(ran)
    worker_env = services["worker"]["environment"]
    for var in ("DISTRIBUTOR_DATABASE_URL", "DISTRIBUTOR_BROKER_URL", "DISTRIBUTOR_SMTP_URL"):
        assert var in worker_env
    assert worker_env["DISTRIBUTOR_DATABASE_URL"].startswith("postgresql://")


def test_contract_commands_exist() -> None:
    commands = cli_commands()
    for path in [
        ("db", "upgrade"), ("topics", "add"), ("subscribers", "import"),
        ("subscribers", "export"), ("releases", "create"), ("releases", "publish"),
        ("releases", "status"), ("publish",), ("worker",), ("beat",), ("serve",),
        ("feeds", "rebuild"), ("demo",),
    ]:  # fmt: skip
        assert path in commands, path


def test_readme_documents_every_setting() -> None:
    from distributor.config import Settings

    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`(DISTRIBUTOR_[A-Z_]+)`", readme))
    for name in Settings.model_fields:
        assert f"DISTRIBUTOR_{name.upper()}" in documented, name


def test_compose_nginx_is_the_front_door_serving_the_data_volumes_public_folder() -> None:
    from tests import nginx_conf

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    nginx, web = services["nginx"], services["web"]
    assert nginx["image"].startswith("nginx:")
    assert "web" in nginx["depends_on"]
    assert nginx["ports"] and not web.get("ports")  # the app is reached through nginx only
    # The same public folder the app writes (DISTRIBUTOR_DATA_DIR/public), read-only.
    data_dir = web["environment"]["DISTRIBUTOR_DATA_DIR"]
    assert f"data:{data_dir}:ro" in nginx["volumes"]
    assert f"data:{data_dir}" in web["volumes"]
    # Compose would blank any unescaped nginx variable ($uri…): compose_interpolate refuses.
    text = nginx_conf.compose_interpolate(nginx_conf.template_text())
    assert f"root {data_dir}/public;" in text
    assert "${DISTRIBUTOR_SITE_URL}" in text
    # nginx builds feed links from the same site URL and hub as the app, and the image's
    # envsubst touches nothing but those.
    for name in ("DISTRIBUTOR_SITE_URL", "DISTRIBUTOR_WEBSUB_HUB"):
        assert nginx["environment"][name] == web["environment"][name], name
    assert nginx["environment"]["NGINX_ENVSUBST_FILTER"] == "^DISTRIBUTOR_"
