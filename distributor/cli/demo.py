"""`distributor demo`: the whole product on one machine, on the embedded defaults."""

from __future__ import annotations

import io
import random
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select

from distributor import actions
from distributor.audience.subscribers import import_csv
from distributor.core import broker, db, filemodes
from distributor.core.config import Settings, inherited_environment
from distributor.core.models import Release, Subscriber, Topic
from distributor.core.queue import TaskQueue
from distributor.releases.lifecycle import create_release
from distributor.releases.source import ReleaseDraft, parse_release
from distributor.releases.topics import add_topic

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TOPICS = {
    "climate": {"en": "Climate", "fr": "Climat"},
    "international": {"en": "International cooperation", "fr": "Coopération internationale"},
    "science": {"en": "Science", "fr": "Science"},
}
FIRST = ["Anna", "Ben", "Chloé", "David", "Élodie", "Farid", "Greta", "Hugo", "Inès", "Jon"]
LAST = ["Martin", "Bernard", "Dubois", "Smith", "Müller", "García", "Nguyen", "O'Brien"]


def _subscribers_csv(n: int, start: int) -> str:
    rng = random.Random(start)
    lines = ["email,name,language,topics"]
    for i in range(start, start + n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        topics = rng.sample(sorted(TOPICS), rng.randint(1, 3))
        lang = "en" if i % 2 else "fr"
        lines.append(f'journalist{i}@example.com,"{first} {last}",{lang},{";".join(topics)}')
    return "\n".join(lines) + "\n"


def _drafts(settings: Settings, run: int) -> list[ReleaseDraft]:
    drafts = []
    for name in ("climate-agreement.en.md", "climate-agreement.fr.md"):
        path = SAMPLES / name
        draft = parse_release(path.read_text(encoding="utf-8"), str(path), settings)
        if run > 1:  # a second demo run publishes fresh copies
            meta = draft.meta
            update: dict[str, object] = {"slug": f"{meta.slug}-{run}"}
            if meta.translation_of:
                update["translation_of"] = f"{meta.translation_of}-{run}"
            draft = ReleaseDraft(
                draft.meta.model_copy(update=update),
                draft.lead,
                draft.body_html,
                draft.body_text,
                draft.source,
            )
        drafts.append(draft)
    return drafts


def run_demo(settings: Settings, subscribers: int, out: Console) -> None:
    """Set up data, publish the two sample releases, run a worker until they are sent."""
    broker.require(settings)  # before any data is written: without a broker, nothing to show
    started_broker = (
        settings.broker_url is None
        and not (settings.data_dir / "redis" / broker.SOCKET_NAME).exists()
    )
    out.print(f"[bold]1.[/bold] database in {settings.data_dir.resolve()}")
    db.upgrade(settings)
    with db.session_scope(settings) as session:
        for slug, names in TOPICS.items():
            if session.scalar(select(Topic.id).where(Topic.slug == slug)) is None:
                add_topic(session, slug, names)
        have = session.scalar(select(func.count()).select_from(Subscriber)) or 0
        if have < subscribers:
            import_csv(
                session,
                settings,
                io.StringIO(_subscribers_csv(subscribers - have, have)),
                "demo",
                confirmed=True,
                consent_source="demo data",
            )
        total = session.scalar(select(func.count()).select_from(Subscriber))
        run = 1 + (session.scalar(select(func.count()).select_from(Release)) or 0) // 2
    out.print(f"[bold]2.[/bold] {len(TOPICS)} topics, {total} subscribers (English and French)")
    ids = []
    with db.session_scope(settings) as session:
        for draft in _drafts(settings, run):
            ids.append(create_release(session, settings, draft).id)
    out.print(f"[bold]3.[/bold] releases {ids[0]} (en) and {ids[1]} (fr, its translation) created")

    url = broker.broker_url(settings)
    env = inherited_environment(
        DISTRIBUTOR_BROKER_URL=url, DISTRIBUTOR_DATA_DIR=str(settings.data_dir.resolve())
    )
    log_path = filemodes.private_file(settings.data_dir / "demo-worker.log")  # addresses
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributor.cli", "worker", "--loglevel", "WARNING"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        queue = TaskQueue(settings.model_copy(update={"broker_url": url}))
        for rid in ids:
            actions.publish(settings, queue, rid)
        queue.close()
        out.print(f"[bold]4.[/bold] published; a worker (pid {worker.pid}) is sending:")
        from distributor.cli.progress import print_status, watch

        states = watch(settings, ids, timeout=600)
        _wait_for_feeds(settings, ids)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        if started_broker:
            broker.stop_embedded(settings)
    for st in states:
        print_status(st)
    outbox = settings.outbox_dir / "new"
    count = sum(1 for _ in outbox.iterdir()) if outbox.exists() else 0
    public = settings.public_dir
    out.print(f"\n[bold]{count}[/bold] emails in the outbox: {outbox.resolve()}")
    out.print(
        "  open one in a mail client, or: ls " + str(outbox) + " | head -1 | xargs -I{} "
        f"cat {outbox}/{{}}"
    )
    out.print(
        f"static site: {public.resolve()}  (pages, and feeds such as "
        f"{public / 'feeds' / 'en' / 'releases.atom'})"
    )
    out.print("newsroom: run `distributor serve` and open http://localhost:8000/")
    out.print(f"worker log: {log_path}")


def _wait_for_feeds(settings: Settings, ids: list[int], timeout: float = 60) -> None:
    with db.session_scope(settings) as session:
        slugs = [r.slug for r in session.scalars(select(Release).where(Release.id.in_(ids)))]
    feed = settings.public_dir / "feeds" / "en" / "releases.atom"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if feed.exists() and all(s in feed.read_text() for s in slugs[:1]):
            return
        time.sleep(0.3)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run `distributor demo`")
