"""What the benchmarks print: progress lines, aligned tables, which code was measured, and
the CPU of the processes they waited for."""

from __future__ import annotations

import hashlib
import resource
import statistics
import sys
import time
from pathlib import Path


def children_cpu() -> float:
    """The CPU seconds (user + system) of this process's children waited for so far."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def say(text: str) -> None:
    """A timestamped progress line on stderr (the figures go to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> str:
    """``rows`` under ``headers``: the first column left-aligned, the others right-aligned,
    a rule under the headers."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return indent + "  ".join([first, *rest]).rstrip()

    return "\n".join(
        [
            line(headers),
            indent + "-" * (sum(widths) + 2 * len(widths) - 2),
            *(line(r) for r in rows),
        ]
    )


def code_state() -> str:
    """A fingerprint of the code under test (distributor/, worker/, templates/): this tree is
    edited while benchmarks run, so figures must say which state they measured."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    newest = (0.0, "")
    for folder in ("distributor", "worker", "templates"):
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".html", ".txt"):
                digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
                newest = max(newest, (path.stat().st_mtime, str(path.relative_to(root))))
    when = time.strftime("%H:%M:%S", time.localtime(newest[0]))
    return f"sha256 {digest.hexdigest()[:12]}, newest file {newest[1]} ({when})"


def spread(values: list[float], digits: int = 0, percent: bool = False) -> str:
    """Repeated runs' figures as ``median (min–max)``, or the one value when there is only
    one (or all are equal); NaNs (a figure a run could not measure) left out, "–" if none."""
    found = sorted(v for v in values if v == v)
    if not found:
        return "–"

    def fmt(v: float) -> str:
        return f"{v:.{digits}%}" if percent else f"{v:,.{digits}f}"

    middle = fmt(statistics.median(found))
    if fmt(found[0]) == fmt(found[-1]):
        return middle
    return f"{middle} ({fmt(found[0])}–{fmt(found[-1])})"
