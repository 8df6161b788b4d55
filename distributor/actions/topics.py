"""What the press office does to its topics: add, rename, delete. Each action checks the
names against the configured languages, does its work and adds its audit record in one
transaction (both commit, or neither)."""

from __future__ import annotations

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Topic
from distributor.core.queue import TaskQueue
from distributor.releases import topics


def add_topic(settings: Settings, slug: str, names: dict[str, str], by: str) -> Topic:
    """Create topic ``slug`` named ``names`` (``topics.check_names``: InputError for a
    language not configured), recorded as added by ``by``; returns it. Raises Conflict
    when the slug is taken."""
    checked = topics.check_names(names, settings.languages)
    with session_scope(settings) as session:
        topic = topics.add_topic(session, slug, checked)
        audit.record(session, by, "topic-add", f"topic {topic.slug}", names=checked)
    return topic


def rename_topic(
    settings: Settings, queue: TaskQueue, slug: str, names: dict[str, str], by: str
) -> Topic:
    """Replace topic ``slug``'s names (checked as in :func:`add_topic`), recorded as
    renamed by ``by``; after the commit, regenerate the site, whose pages show the names.
    Returns the topic; raises NotFound when there is none."""
    checked = topics.check_names(names, settings.languages)
    with session_scope(settings) as session:
        topic = topics.rename_topic(session, slug, checked)
        audit.record(session, by, "topic-rename", f"topic {slug}", names=checked)
    queue.send("regenerate_site")
    return topic


def delete_topic(settings: Settings, slug: str, by: str) -> None:
    """Delete topic ``slug``, recorded as deleted by ``by``. Raises NotFound, or Conflict
    while anything refers to it (``topics.delete_topic``)."""
    with session_scope(settings) as session:
        topics.delete_topic(session, slug)
        audit.record(session, by, "topic-delete", f"topic {slug}")
