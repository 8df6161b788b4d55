"""The pre-commit hooks (.pre-commit-config.yaml) run exactly the checks of `make lint`, with
the same tools and arguments: a commit the hooks let through passes `make lint`, and a check
added to one is added to the other. Read as files; nothing is installed or run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pre_commit.clientlib import load_config

ROOT = Path(__file__).resolve().parents[1]


def _lint_commands() -> list[str]:
    """The commands of the Makefile's ``lint`` recipe, ``$(BIN)`` spelled out, comments off."""
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe, "no lint recipe in the Makefile"
    return [
        line.split("#", 1)[0].strip().replace("$(BIN)/", ".venv/bin/")
        for line in recipe.group(1).splitlines()
    ]


def _hooks() -> list[dict[str, Any]]:
    """The hooks of .pre-commit-config.yaml, as pre-commit reads them (its own schema check:
    a misspelt key or value fails here)."""
    config = load_config(ROOT / ".pre-commit-config.yaml")
    return [hook for repo in config["repos"] for hook in repo["hooks"]]


def test_the_hooks_run_what_make_lint_runs() -> None:
    hooks = _hooks()
    commands = [" ".join([hook["entry"], *hook["args"]]) for hook in hooks]
    assert commands == _lint_commands()


def test_the_hooks_use_the_projects_tools_on_the_whole_tree() -> None:
    for hook in _hooks():
        assert hook["entry"].startswith(".venv/bin/"), hook["id"]  # CI's versions
        assert hook["language"] in ("system", "unsupported"), hook["id"]  # nothing downloaded
        # mypy and the import contracts judge the whole package, whichever file changed.
        assert hook["pass_filenames"] is False, hook["id"]
