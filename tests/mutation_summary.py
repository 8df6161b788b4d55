"""Print the figures of the last ``make mutate`` run, one row per module: mutants, killed,
survived, timeouts, suspicious, no tests, skipped, not checked (run from the project root,
after ``mutmut run``; ``make mutate`` does). Reads mutmut's own result files under mutants/."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

COLUMNS = ("killed", "survived", "timeout", "suspicious", "no tests", "skipped", "not checked")


def summary(root: Path = Path("mutants")) -> dict[str, Counter[str]]:
    """Each mutated module's count of mutants by status, from mutmut's ``*.py.meta`` files."""
    rows: dict[str, Counter[str]] = {}
    for meta in sorted(root.glob("distributor/**/*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            name = meta.relative_to(root).as_posix().removesuffix(".meta")
            rows[name] = Counter(status_by_exit_code[code] for code in codes.values())
    return rows


def main() -> None:
    """Print the table (Markdown, as the README's "Testing" section has it)."""
    print("| module | mutants | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    for name, counts in summary().items():
        cells = [str(counts[c]) for c in COLUMNS]
        print(f"| {name} | {sum(counts.values())} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
