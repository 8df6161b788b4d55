"""``Settings`` is the only reader of the environment (DESIGN.md, issue 13): no module of
distributor/ or worker/ but distributor/core/config.py mentions ``os.environ``, ``environ``
or ``getenv``. Whatever else needs a configured value gets it from the Settings, or from a
function of core/config.py (the secrets the logs mask, the failpoints armed, the environment
a child process inherits). Read as text: nothing is imported."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THE_READER = ROOT / "distributor" / "core" / "config.py"
# Every spelling that reads the process environment: os.environ, os.environb, a bare
# `environ` (from os import environ), os.getenv, os.getenvb.
_READS = re.compile(r"\b(?:environb?|getenvb?)\b")


def _readers() -> dict[str, list[str]]:
    """Each module other than core/config.py that mentions a way of reading the
    environment, with the lines that do, as ``path:line: text``."""
    found: dict[str, list[str]] = {}
    for package in ("distributor", "worker"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == THE_READER:
                continue
            lines = [
                f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if _READS.search(line)
            ]
            if lines:
                found[path.relative_to(ROOT).as_posix()] = lines
    return found


def test_only_core_config_reads_the_environment() -> None:
    readers = _readers()
    assert not readers, "read the environment through core/config.py instead:\n" + "\n".join(
        line for lines in readers.values() for line in lines
    )


def test_core_config_is_where_it_is_read() -> None:
    # Guards the test above against looking in the wrong place (a moved config module).
    assert _READS.search(THE_READER.read_text())
