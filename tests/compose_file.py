"""docker-compose.yml as Compose reads it, without Docker: the YAML, the ``.env`` file, and
variable interpolation by the rules of the Compose specification (and of compose-go, its
reference implementation): ``$$`` is a literal ``$``; ``$NAME`` and ``${NAME}`` are the
variable (blank if unset); ``${NAME:-default}`` / ``${NAME-default}`` fall back when it is
unset or empty / unset; ``${NAME:?message}`` / ``${NAME?message}`` stop Compose with
``required variable NAME is missing a value: message`` when it is unset or empty / unset.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-zA-Z]\w*)|\{(?P<braced>[^}]*)\})")
_BRACED = re.compile(r"(?P<name>[_a-zA-Z]\w*)(?:(?P<op>:?[-?])(?P<arg>.*))?", re.DOTALL)


class MissingVariable(Exception):
    """A required variable (``${NAME:?message}``) has no value: Compose stops."""

    def __init__(self, name: str, message: str) -> None:
        self.name, self.message = name, message
        super().__init__(f"required variable {name} is missing a value: {message}")


def load() -> dict[str, Any]:
    """docker-compose.yml as written (YAML anchors and merges resolved, nothing interpolated)."""
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def schema() -> dict[str, Any]:
    """The vendored compose-spec JSON schema (see tests/data/README.md for its source)."""
    data = json.loads(SCHEMA.read_text())
    assert isinstance(data, dict)
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """A ``.env`` file as Compose reads it, for the forms this project writes: ``KEY=value``,
    ``KEY="value"``, comment and blank lines."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.partition("=")
        assert eq and re.fullmatch(r"[_A-Za-z]\w*", key), f"{path}:{number}: not KEY=value"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        else:
            assert " #" not in value and '"' not in value, f"{path}:{number}: quote the value"
        env[key] = value
    return env


def references(text: str) -> list[tuple[str, str, str]]:
    """Every variable ``text`` refers to: (name, operator, argument), e.g.
    ("DISTRIBUTOR_SECRET_KEY", ":?", "set it in .env")."""
    found = []
    for match in _REFERENCE.finditer(text):
        if match["escaped"]:
            continue
        if match["named"]:
            found.append((match["named"], "", ""))
            continue
        braced = _BRACED.fullmatch(match["braced"])
        assert braced, f"invalid interpolation: {match[0]!r}"
        found.append((braced["name"], braced["op"] or "", braced["arg"] or ""))
    return found


def interpolate_text(text: str, env: dict[str, str]) -> str:
    """``text`` with its variables replaced from ``env``; ``MissingVariable`` for a required
    one without a value."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["named"]:
            return env.get(match["named"], "")
        braced = _BRACED.fullmatch(match["braced"])
        assert braced, f"invalid interpolation: {match[0]!r}"
        name, op, arg = braced["name"], braced["op"], braced["arg"]
        value = env.get(name)
        absent = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if absent else str(value)
        if op in (":?", "?") and absent:
            raise MissingVariable(name, arg)
        return value or ""

    return _REFERENCE.sub(replace, text)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """The model with every string value interpolated (keys are not, as in Compose)."""
    if isinstance(node, str):
        return interpolate_text(node, env)
    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return node


def strings(node: Any) -> list[str]:
    """Every string value in the model."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return []


def active_services(model: dict[str, Any], profiles: set[str]) -> dict[str, Any]:
    """The services ``docker compose up`` starts with ``profiles`` enabled: those without a
    profile, and those in one of ``profiles``."""
    return {
        name: service
        for name, service in model["services"].items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }
