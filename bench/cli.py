"""How long the ``distributor`` command takes, as a user sees it: whole processes of the
venv's ``distributor`` entry point, from start to exit, for ``--help``, ``releases --help``,
``topics list``, ``releases status ID`` and ``tokens list``; and for the long-running ones,
from start until they serve: ``serve`` until ``GET /healthz`` answers 200, ``worker -c 2``
until it logs that it is ready, and their memory a second later (PSS, the pool's children
included); each then stopped, not timed. The CPU of every run (user + system, children
included) is printed too: on a shared machine it blurs less than wall time.

The commands that read the database run against a throwaway SQLite database made and
migrated by this tree (two topics, 100 subscribers, the sample release, published), with
this run's own Redis database as the broker. Each tree's code is compiled first (as pip
leaves an installed package, even where PYTHONDONTWRITEBYTECODE is set), each command runs
once to warm up, then ``--runs`` times; figures are the median with min and max.
The floors are timed the same way: the interpreter alone (``python -c pass``) and a bare
Typer app with the same groups printing its help and a group's (Typer loads pydantic there).

``--base REV`` also times REV's code, from a git worktree made in a temp dir (removed on the
way out), alternately with this tree's (base, this; then this, base…) so both see the same
machine, and prints this ÷ base. A REV whose schema differs from this tree's fails on the
commands that read the database. Prints figures; asserts nothing. About two minutes.

    .venv/bin/python bench/cli.py                 # this tree, 5 runs each
    .venv/bin/python bench/cli.py --base d84dcad  # against d84dcad (make bench-cli BASE=…)
"""

from __future__ import annotations

import _clean_env  # noqa: F401 - first: the developer's own DISTRIBUTOR_ settings stay out

# isort: split
import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import psutil
from _fixture import fresh_database, populate, settings_env
from _report import children_cpu, code_state, say, table
from _sinks import free_port

from distributor.core.db import session_scope
from distributor.releases.lifecycle import mark_published

REPO = Path(__file__).resolve().parent.parent
DISTRIBUTOR = Path(sys.executable).parent / "distributor"  # the venv's entry point
# The goals (issue 16), whole process, median: the commands not named have none.
GOALS = {"--help": 0.25, "releases status ID": 0.5}
# The groups of the real command, each with one command, and nothing else: Typer's own floor.
BARE_TYPER = """
import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Publish press releases by email and feeds.")
for name in ("db", "topics", "contacts", "subscribers", "releases", "feeds", "site", "tokens",
             "bounces", "users", "settings", "publish", "audit", "worker", "beat", "serve",
             "demo"):
    group = typer.Typer(no_args_is_help=True, help=f"The {name} group.")
    group.command("list")(lambda: None)
    app.add_typer(group, name=name)
app()
"""


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """A git worktree of ``rev`` in a temp dir, removed on the way out."""
    path = Path(tempfile.mkdtemp(prefix="distributor-bench-cli-")) / "tree"
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), rev], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=False)
        shutil.rmtree(path.parent, ignore_errors=True)


def run(argv: list[str], env: dict[str, str], tree: Path) -> float:
    """Seconds from start to exit of ``argv`` run with ``tree``'s code; fails loudly on a
    non-zero exit (a figure of a command that failed would mean nothing)."""
    started = time.perf_counter()
    done = subprocess.run(argv, env={**env, "PYTHONPATH": str(tree)}, cwd=tree,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {tree}: exit {done.returncode}\n{done.stderr}")
    return seconds


def run_until_ready(
    argv: list[str], env: dict[str, str], tree: Path, ready: Callable[[Path], bool]
) -> tuple[float, float]:
    """Seconds from the start of ``argv`` (a long-running command, run with ``tree``'s code)
    until ``ready(its log)``, and its memory a second later (``pss_mb``); then it is stopped
    (SIGTERM to its process group) and waited for, not timed. Fails loudly if it exits
    first or is not ready within a minute."""
    log = Path(tempfile.mkdtemp(prefix="distributor-bench-cli-")) / "process.log"
    try:
        with log.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(argv, env={**env, "PYTHONPATH": str(tree)}, cwd=tree,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # fmt: skip
            try:
                while not ready(log):
                    if proc.poll() is not None or time.perf_counter() - started > 60:
                        said = log.read_text()
                        raise RuntimeError(f"{' '.join(argv)} in {tree}: not ready\n{said}")
                    time.sleep(0.02)
                seconds = time.perf_counter() - started
                time.sleep(1)  # a worker's pool children are still starting when it is ready
                return seconds, pss_mb(proc.pid)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
    finally:
        shutil.rmtree(log.parent, ignore_errors=True)


def pss_mb(pid: int) -> float:
    """The proportional set size of process ``pid`` and its descendants, MiB: each page
    counted once, shared pages split between the processes that share them (Linux)."""
    top = psutil.Process(pid)
    processes = [top, *top.children(recursive=True)]
    return float(sum(p.memory_full_info().pss for p in processes)) / 2**20


def answers(port: int) -> Callable[[Path], bool]:
    """Whether ``distributor serve`` on ``port`` answers ``GET /healthz`` with 200."""

    def ready(_log: Path) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    return ready


def logged_ready(log: Path) -> bool:
    """Whether a Celery worker's log says it is ready (``celery@HOST ready.``)."""
    return b" ready." in log.read_bytes()


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}–{max(values):.3f})"


def check_code(tree: Path, env: dict[str, str]) -> None:
    """Fail unless ``tree``'s own code is what runs with it on PYTHONPATH (the venv is an
    editable install of some other tree)."""
    probe = "import distributor.cli; print(distributor.cli.__file__)"
    found = subprocess.run([sys.executable, "-c", probe], env={**env, "PYTHONPATH": str(tree)},
                           cwd=tree, capture_output=True, text=True, check=True).stdout  # fmt: skip
    if not Path(found.strip()).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"{tree}: its code does not win over the venv's ({found})")


def describe_head() -> str:
    """This tree's commit, and whether it has changes not committed."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    return head + (" with changes not committed" if dirty else "")


@contextmanager
def no_base() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="of each command (default 5)")
    parser.add_argument("--base", metavar="REV", help="also time REV's code, alternately")
    args = parser.parse_args()
    say(f"code: {code_state()}")
    with fresh_database("sqlite", "smtp://127.0.0.1:2525", "cli") as settings:
        dataset = populate(settings, 100)
        with session_scope(settings) as session:
            mark_published(session, dataset.release_id)
        env = settings_env(settings)
        commands = {
            "--help": ["--help"],
            "releases --help": ["releases", "--help"],
            "topics list": ["topics", "list"],
            "releases status ID": ["releases", "status", str(dataset.release_id)],
            "tokens list": ["tokens", "list"],
        }
        port = free_port()
        serving = {
            "serve: until /healthz answers": (["serve", "--port", str(port)], answers(port)),
            "worker -c 2: until ready": (["worker", "-c", "2"], logged_ready),
        }
        scratch = Path(tempfile.mkdtemp(prefix="distributor-bench-cli-"))
        bare = scratch / "bare_typer.py"
        bare.write_text(BARE_TYPER)
        floors = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "bare Typer app --help": [sys.executable, str(bare), "--help"],
            "bare Typer app releases --help": [sys.executable, str(bare), "releases", "--help"],
        }
        times: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}  # the processes' own, children included
        memory: dict[tuple[str, str], list[float]] = {}  # the long-running ones' PSS, MiB
        with worktree(args.base) if args.base else no_base() as base:
            trees = {"base": base, "this": REPO} if base else {"this": REPO}
            say("warming up (bytecode caches)")
            for tree in trees.values():
                # As pip leaves an installed package: compiled, even where
                # PYTHONDONTWRITEBYTECODE keeps the warm-up runs from writing it.
                subprocess.run([sys.executable, "-m", "compileall", "-q", "distributor", "worker"],
                               cwd=tree, check=True, capture_output=True)  # fmt: skip
                check_code(tree, env)
                for argv in commands.values():
                    run([str(DISTRIBUTOR), *argv], env, tree)
                for argv, ready in serving.values():
                    run_until_ready([str(DISTRIBUTOR), *argv], env, tree, ready)
            for argv in floors.values():
                run(argv, env, REPO)
            for n in range(args.runs):
                say(f"round {n + 1} of {args.runs}")
                order = list(trees.items())[:: 1 if n % 2 == 0 else -1]  # base first, then this
                for label, argv in commands.items():
                    for name, tree in order:
                        was = children_cpu()
                        seconds = run([str(DISTRIBUTOR), *argv], env, tree)
                        times.setdefault((label, name), []).append(seconds)
                        cpu.setdefault((label, name), []).append(children_cpu() - was)
                for label, (argv, ready) in serving.items():
                    for name, tree in order:
                        was = children_cpu()
                        seconds, pss = run_until_ready([str(DISTRIBUTOR), *argv], env, tree, ready)
                        times.setdefault((label, name), []).append(seconds)
                        cpu.setdefault((label, name), []).append(children_cpu() - was)
                        memory.setdefault((label, name), []).append(pss)
                for label, argv in floors.items():
                    times.setdefault((label, "floor"), []).append(run(argv, env, REPO))
        shutil.rmtree(scratch, ignore_errors=True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}, this tree: {describe_head()}; load average "
          f"{load}; {args.runs} runs each; seconds, median (min–max), whole process")  # fmt: skip
    names = ["base", "this"] if args.base else ["this"]
    headers = ["command", *(f"base {args.base}" if n == "base" else "this tree" for n in names)]
    headers += [*(["this ÷ base"] if args.base else []), "goal"]
    rows = []
    for label in [*commands, *serving]:
        cells = [spread(times[(label, n)]) for n in names]
        median = statistics.median(times[(label, "this")])
        if args.base:
            cells.append(f"{median / statistics.median(times[(label, 'base')]):.2f}")
        goal = GOALS.get(label)
        cells.append("" if goal is None else f"< {goal} {'✓' if median < goal else '✗'}")
        rows.append([label, *cells])
    for label in floors:  # the same for both trees: in the last column of figures
        figures = [""] * (len(names) - 1) + [spread(times[(label, "floor")])]
        rows.append([f"{label} (floor)", *figures, *([""] if args.base else []), ""])
    print(table(headers, rows))
    # CPU blurs less than wall time on a shared machine. A long-running command's counts
    # until it exits: its start, the few requests or polls before it is stopped, its stop.
    print("\nCPU seconds (user + system) of the same runs, the process and its children:")
    print(table(headers[:-1], compared(cpu, [*commands, *serving], names)))
    print("\nMemory a second after it is ready: PSS of the process and its children, MiB:")
    print(table(headers[:-1], compared(memory, list(serving), names)))


def compared(
    values: dict[tuple[str, str], list[float]], labels: list[str], names: list[str]
) -> list[list[str]]:
    """A table's rows: each label's figures per tree (``names``), with this ÷ base when
    there is a base."""
    rows = []
    for label in labels:
        cells = [spread(values[(label, n)]) for n in names]
        if "base" in names:
            this, base = values[(label, "this")], values[(label, "base")]
            cells.append(f"{statistics.median(this) / statistics.median(base):.2f}")
        rows.append([label.split(":")[0], *cells])
    return rows


if __name__ == "__main__":
    main()
