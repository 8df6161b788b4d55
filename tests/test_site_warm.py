"""A warm regeneration (the catalogue and plan kept in the process from the build before)
writes what a full build from scratch writes, whatever changed in between and whoever
changed it."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, inspect, select, update

from distributor.core.config import Settings
from distributor.core.db import alembic_config, get_engine, session_scope, upgrade
from distributor.core.models import Correction, Release, Topic, release_topics
from distributor.office.identity import update_identity
from distributor.releases import lifecycle, topics
from distributor.site import builder, discovery, forked
from distributor.site.builder import build_site
from tests.feed_samples import BASE, add_feed_topics, add_release
from tests.processes import NO_BROKER, settings_env


def _tree(settings: Settings) -> dict[str, bytes]:
    public = settings.public_dir
    return {
        str(p.relative_to(public)): p.read_bytes()
        for p in public.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }


def _release_id(settings: Settings, slug: str) -> int:
    with session_scope(settings) as session:
        return session.scalars(select(Release.id).where(Release.slug == slug)).one()


def _site_and_twin(settings: Settings, data_dir: Path) -> tuple[Settings, Settings]:
    """The site with two releases a feed page (a release published among older ones moves
    the archive pages), its topics made; and the same database with its public/ in
    ``data_dir``."""
    site = settings.model_copy(update={"feed_size": 2})
    twin = site.model_copy(
        update={"data_dir": data_dir, "database_url": site.effective_database_url}
    )
    add_feed_topics(site)
    return site, twin


def _add_releases(site: Settings, last: int) -> int:
    """Releases 1 to ``last``: the first on two topics, every third French; the first's id."""
    first = add_release(site, 1, topics=("climate", "space"))
    for n in range(2, last + 1):
        add_release(site, n, lang="fr" if n % 3 == 0 else "en", topics=("space",))
    return first


@pytest.mark.parametrize("split", [False, True], ids=["one-sitemap", "split-sitemap"])
def test_every_kind_of_change_reaches_the_next_warm_regeneration(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    if split:  # a sitemap index, and parts of 4 ids: most changes touch one or two
        monkeypatch.setattr(discovery, "SPLIT_URLS", 4)
    # The same database, another public/: built from scratch each time, to compare with.
    site, scratch = _site_and_twin(settings, tmp_path / "scratch")
    first = _add_releases(site, 7)
    build_site(site)

    def check(change: Callable[[], object]) -> None:
        before = _tree(site)
        change()
        warm = build_site(site)
        shutil.rmtree(scratch.public_dir, ignore_errors=True)
        build_site(scratch)
        assert _tree(site) == _tree(scratch), change
        manifest = builder.MANIFEST  # kept in the process entry by entry: the same bytes
        assert (site.public_dir / manifest).read_bytes() == (
            scratch.public_dir / manifest
        ).read_bytes(), change
        assert warm.written or warm.removed, change  # each change shows
        assert _tree(site) != before, change

    def correct() -> None:
        with session_scope(site) as session:
            release = session.get_one(Release, first)
            release.title = "Release 1, corrected"
            release.corrected_at = release.updated_at = BASE + timedelta(days=3)
            note = "The date of the launch."
            session.add(Correction(release_id=first, corrected_at=release.corrected_at, note=note))

    def retopic() -> None:
        with session_scope(site) as session:
            release = session.get_one(Release, _release_id(site, "en-release-2"))
            release.topics = list(session.scalars(select(Topic).where(Topic.slug == "climate")))

    def redate() -> None:
        with session_scope(site) as session:
            release = session.get_one(Release, _release_id(site, "en-release-4"))
            release.date = release.updated_at = BASE - timedelta(days=1)

    def withdraw() -> None:
        with session_scope(site) as session:
            lifecycle.withdraw(session, _release_id(site, "en-release-5"), "Jane", reason="Sorry")

    def rename() -> None:
        with session_scope(site) as session:
            topics.rename_topic(session, "space", {"en": "Outer space", "fr": "Espace"})

    def rebrand() -> None:
        with session_scope(site) as session:
            update_identity(session, site, {"organisation": "The New Agency"})

    def by_hand() -> None:  # no code of ours: a statement of the database's own
        t = Release.__table__.c
        unlinked = _release_id(site, "fr-release-6")
        with get_engine(site).begin() as conn:
            conn.execute(
                update(Release.__table__)
                .where(t.slug == "en-release-7")
                .values(title="Edited by hand", updated_at=BASE + timedelta(days=4))
            )
            conn.execute(delete(release_topics).where(release_topics.c.release_id == unlinked))

    def erase() -> None:
        with get_engine(site).begin() as conn:
            conn.execute(
                delete(Release.__table__).where(Release.__table__.c.slug == "en-release-8")
            )

    check(lambda: add_release(site, 8))  # a publish
    check(lambda: add_release(site, 0, topics=("space",)))  # older than all: archives move
    check(lambda: add_release(site, 9, lang="fr", translation_of_id=first))
    check(correct)
    check(retopic)
    check(redate)
    check(withdraw)
    check(rename)
    check(rebrand)
    check(by_hand)
    check(erase)
    nothing = build_site(site)
    assert nothing.written == [] and nothing.removed == []


def test_a_draft_edited_is_no_change_of_the_site(sqlite_settings: Settings) -> None:
    add_feed_topics(sqlite_settings)
    add_release(sqlite_settings, 1)
    draft = add_release(sqlite_settings, 2, state="draft")
    build_site(sqlite_settings)
    engine = get_engine(sqlite_settings)
    with engine.connect() as conn:
        logged = conn.exec_driver_sql("SELECT count(*) FROM site_changes").scalar()
    with session_scope(sqlite_settings) as session:
        session.get_one(Release, draft).title = "Draft, edited"
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM site_changes").scalar() == logged
    assert build_site(sqlite_settings).written == []


def test_0027_down_and_up_again_and_the_kept_catalogue_is_read_again(settings: Settings) -> None:
    """The change log goes with the migration and comes back empty, in a new epoch: a
    builder that kept a catalogue from before reads it whole (a change made meanwhile was
    logged nowhere)."""
    add_feed_topics(settings)
    add_release(settings, 1)
    build_site(settings)
    try:
        command.downgrade(alembic_config(settings), "0026")
        assert "site_changes" not in inspect(get_engine(settings)).get_table_names()
        add_release(settings, 2)
    finally:
        upgrade(settings)
    assert "releases/en-release-2.html" in build_site(settings).written


def test_a_build_on_every_core_writes_what_one_process_writes(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full build split over forked processes: the same files and the same manifest as
    one process builds, and the warm regeneration after it (fed by what the children made)
    the same as a fresh build's."""
    site, alone = _site_and_twin(settings, tmp_path / "alone")
    first = _add_releases(site, 11)
    add_release(site, 12, lang="fr", translation_of_id=first)
    monkeypatch.setattr(builder, "PARALLEL_MIN", 1_000_000)
    build_site(alone)
    # The forked build runs in a process of its own, started afresh (spawn): this test
    # process runs other threads (execnet's, a shared browser's), and a process with other
    # threads never forks renderers (forked.usable_workers), as the web process does not.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_forked_then_warm, args=(site, results))
    child.start()
    forks, tree, manifest_bytes, written, warm_written = results.get(timeout=240)
    child.join(60)
    assert child.exitcode == 0
    assert forks and forks[0] > 2  # both languages' feeds, and runs of release pages
    assert len(forks) == 1  # the publish after it rendered in the building process
    assert tree == _tree(alone)
    assert manifest_bytes == (alone.public_dir / builder.MANIFEST).read_bytes()
    assert written == sorted(tree)
    assert "releases/en-release-13.html" in warm_written
    build_site(alone)
    assert _tree(site) == _tree(alone)


def _forked_then_warm(site: Settings, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In a fresh process: a full build forced onto 2 forked renderers, then a publish
    (release 13) regenerated warm; puts back the forks made, the tree and manifest after the
    full build, and what each build wrote."""
    forks: list[int] = []
    real = forked.forked_results

    def counted(work: Callable[[int], object], count: int, workers: int) -> object:
        forks.append(count)
        return real(work, count, workers)

    forked.forked_results = counted  # type: ignore[assignment]
    forked.usable_workers = lambda: 2
    builder.PARALLEL_MIN = 1
    report = build_site(site)
    tree = _tree(site)
    manifest_bytes = (site.public_dir / builder.MANIFEST).read_bytes()
    builder.PARALLEL_MIN = 1_000_000  # a publish: rendered here
    add_release(site, 13, topics=("climate",))
    warm = build_site(site)
    results.put((forks, tree, manifest_bytes, sorted(report.written), sorted(warm.written)))


def test_a_daemonic_pool_worker_builds_in_its_own_process() -> None:
    """A worker of a process pool (Celery's, say) may not have children: its builds render
    in it, where the building process of a command forks renderers."""
    # Spawned, not forked: this test process runs other threads (execnet's, a Redis claim's,
    # a shared browser's), and a forked child of it once hung in a lock one of them held,
    # under the SIGTERM that ``terminate`` sends (coverage saves its data there). The pool
    # is closed and joined: its worker exits on its own.
    pool = multiprocessing.get_context("spawn").Pool(1)
    try:
        assert pool.apply(forked.usable_workers) == 1
    finally:
        pool.close()
        pool.join()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one core: nothing to fork onto")
def test_the_site_build_command_renders_on_every_core(sqlite_settings: Settings) -> None:
    """`distributor site build` is the process that forks renderers: nothing in it may run
    another thread first (its progress bar redraws from the build's own calls), or the
    build renders in one process. Here every build counts as large (PARALLEL_MIN 1)."""
    add_feed_topics(sqlite_settings)
    for n in range(1, 4):
        add_release(sqlite_settings, n)
    script = (
        "import sys\n"
        "from distributor.site import builder\n"
        "builder.PARALLEL_MIN = 1\n"
        "from distributor.cli.commands import main\n"
        "sys.argv = ['distributor', 'site', 'build', '--force']\n"
        "main()\n"
    )
    env = settings_env(sqlite_settings)
    env.setdefault("DISTRIBUTOR_BROKER_URL", NO_BROKER)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    cores = len(os.sched_getaffinity(0))
    assert f"{cores} processes rendering)" in done.stdout
    assert (sqlite_settings.public_dir / "releases" / "en-release-3.html").is_file()


def test_a_file_is_written_past_temporary_files_a_dead_process_left(tmp_path: Path) -> None:
    """A write goes through a temporary file named by this process's pid and a number: one
    left there by a process that died with the same pid (pids are reused) is stepped over,
    neither written through nor a failure; a missing folder is made."""
    target = tmp_path / "releases" / "page.html"
    upcoming = next(builder._TMP_NUMBERS) + 1
    target.parent.mkdir()
    stale = [target.with_name(f".page.html.{os.getpid()}.{upcoming + n}.tmp") for n in range(3)]
    for path in stale:
        path.write_bytes(b"left by a process that died")
    assert builder._write_if_changed(target, b"<p>new</p>")
    assert target.read_bytes() == b"<p>new</p>"
    assert all(p.read_bytes() == b"left by a process that died" for p in stale)
    assert not builder._write_if_changed(target, b"<p>new</p>")  # the same: not written
    deeper = tmp_path / "feeds" / "en" / "topics" / "releases.atom"
    assert builder._write_if_changed(deeper, b"<feed/>") and deeper.read_bytes() == b"<feed/>"
    assert sorted(p.name for p in tmp_path.rglob(".*.tmp")) == sorted(p.name for p in stale)
