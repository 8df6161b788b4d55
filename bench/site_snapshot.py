"""The site builder's output and profile, for changing the builder without changing a byte.

Run: ``PYTHONPATH=CHECKOUT .venv/bin/python bench/site_snapshot.py [--releases 1000]
[--out DIR] [--profile DIR] [--rounds 1]``. The releases of bench/_feeds_data.py (the same
seed, so the same rows every run) go into a fresh SQLite database; then a full build
(``build_site(force=True)``), whose ``public/`` tree is copied to ``--out`` (the reference:
build it with the old code, then with the new, and ``diff -r`` the two). Then the English
sample is published and the site regenerated (incremental), and a forced build must find
nothing to write: the incremental output is the full build's, byte for byte (checked here,
in one run, because the sample's dates are now() and differ between runs).

``--profile DIR`` writes cProfile data of the full build and of the regeneration
(``full.prof``, ``publish.prof``) and prints their top functions. ``--rounds`` repeats the
full build and the regeneration and prints every time (seconds).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import resource
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from _feeds_data import populate_releases
from _fixture import SAMPLE, fresh_database

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.releases.lifecycle import create_release, mark_published
from distributor.releases.source import parse_release
from distributor.site.builder import BuildReport, build_site


def _run(call: Callable[[], BuildReport], profile: Path | None) -> tuple[float, BuildReport]:
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        profiler.enable()
    report = call()
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - started
    if profiler and profile:
        profiler.dump_stats(profile)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(35)
        print(out.getvalue())
    return seconds, report


def _publish(settings: Settings, sample: Path, n: int = 0) -> None:
    """Publish ``sample`` (the ``n``-th time: its slug gets ``-n`` after the first)."""
    text = sample.read_text()
    if n:
        text = re.sub(r"(?m)^slug: (.*)$", rf"slug: \1-{n}", text, count=1)
    draft = parse_release(text, str(sample), settings)
    with session_scope(settings) as session:
        release_id = create_release(session, settings, draft).id
    with session_scope(settings) as session:
        mark_published(session, release_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--releases", type=int, default=1000)
    parser.add_argument("--out", type=Path, help="copy the full build's public/ here")
    parser.add_argument("--profile", type=Path, help="write cProfile data here")
    parser.add_argument("--rounds", type=int, default=1, help="full builds (and publishes)")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with fresh_database("sqlite", "smtp://127.0.0.1:2525", "snapshot") as settings:
        populate_releases(settings, args.releases)
        full = args.profile / "full.prof" if args.profile else None
        publish = args.profile / "publish.prof" if args.profile else None
        for _ in range(args.rounds):
            seconds, report = _run(lambda: build_site(settings, force=True), full)
            print(f"full build: {seconds:.3f} s, {len(report.written):,} written")
        if args.out:
            shutil.rmtree(args.out, ignore_errors=True)
            shutil.copytree(settings.public_dir, args.out)
        for n in range(args.rounds):
            _publish(settings, SAMPLE, n)
            seconds, report = _run(lambda: build_site(settings), publish)
            print(f"after a publish: {seconds:.3f} s, {len(report.written):,} written")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory (max RSS): {peak:.0f} MB")
        again = build_site(settings, force=True)
        if again.written:
            print(f"INCREMENTAL DIFFERS from a full build: {again.written[:10]}")
            sys.exit(1)
        print("incremental output = full build output")


if __name__ == "__main__":
    main()
