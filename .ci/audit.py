"""Known vulnerabilities in the installed dependencies: fail CI on any, say what was checked.

pip-audit asks PyPI for each installed version (``/pypi/NAME/VERSION/json``). Where that
answers, its verdict stands. Some CI machines reach PyPI only through a registry proxy that
serves the project endpoint (``/pypi/NAME/json``) but not the versioned one, and pip-audit
then checks nothing ("Dependency not found on PyPI"). For those, the project endpoint's
``vulnerabilities`` (which are the latest release's) settle it when the installed version is
the latest; any other is listed as not checked — never passed off as clean.

Run: ``.venv/bin/python .ci/audit.py`` (exit 1 on a vulnerability, 2 if nothing could be
checked at all).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
# The project itself (installed editable) is not on PyPI: a PyPI project of the same name is
# someone else's.
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]


def pip_audit() -> list[dict[str, object]]:
    """pip-audit's view of every installed dependency (the project itself excluded)."""
    out = subprocess.run(
        [str(VENV_BIN / "pip-audit"), "--skip-editable", "--vulnerability-service", "pypi",
         "--progress-spinner", "off", "-f", "json"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if not out.stdout.strip():
        sys.exit(f"pip-audit gave no report:\n{out.stderr}")
    dependencies: list[dict[str, object]] = json.loads(out.stdout)["dependencies"]
    return [d for d in dependencies if d["name"] != PROJECT]


def latest_release(name: str) -> tuple[str, list[str]] | str:
    """(PyPI's latest version of ``name``, the ids of its vulnerabilities), or why not."""
    url = f"https://pypi.org/pypi/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            data = json.load(answer)
    except (urllib.error.URLError, TimeoutError, ValueError) as exc:
        return f"{url}: {exc}"
    vulns = [v.get("id", "?") for v in data.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return str(data["info"]["version"]), vulns


def main() -> int:
    dependencies = pip_audit()
    audited = [d for d in dependencies if "skip_reason" not in d]
    found = [f"{d['name']} {d['version']}: {[v['id'] for v in d['vulns']]}"  # type: ignore[attr-defined]
             for d in audited if d.get("vulns")]  # fmt: skip
    skipped = sorted(str(d["name"]) for d in dependencies if "skip_reason" in d)
    with ThreadPoolExecutor(8) as pool:
        answers = dict(zip(skipped, pool.map(latest_release, skipped), strict=True))
    by_latest, unchecked = 0, []
    for name, answer in answers.items():
        installed = metadata.version(name)
        if isinstance(answer, str):
            unchecked.append(f"{name} {installed} (no answer: {answer})")
        elif answer[0] != installed:
            unchecked.append(f"{name} {installed} (PyPI's latest is {answer[0]})")
        else:
            by_latest += 1
            if answer[1]:
                found.append(f"{name} {installed}: {answer[1]}")
    print(
        f"audit: {len(dependencies)} dependencies; {len(audited)} checked by pip-audit, "
        f"{by_latest} by PyPI's data for their (latest) version, {len(unchecked)} not checked"
    )
    for line in unchecked:
        print(f"  not checked: {line}")
    for line in found:
        print(f"  VULNERABLE: {line}")
    if found:
        return 1
    return 2 if len(unchecked) == len(dependencies) else 0


if __name__ == "__main__":
    sys.exit(main())
