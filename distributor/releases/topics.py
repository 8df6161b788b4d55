"""Topics: what subscribers choose and releases are filed under."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.core.errors import Conflict, InputError, NotFound
from distributor.core.models import (
    Release,
    Subscriber,
    SubscriberStatus,
    Topic,
    release_topics,
    subscriptions,
)
from distributor.core.sanitize import line_problem

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANG_PREFIX = re.compile(r"^([a-z]{2}):(.*)$", re.S)


def parse_names(values: list[str], default_lang: str) -> dict[str, str]:
    """``["Climate", "fr:Climat"]`` → ``{"en": "Climate", "fr": "Climat"}``; InputError
    for an empty name or one a single line refuses (``sanitize.line_problem``)."""
    names: dict[str, str] = {}
    for value in values:
        match = _LANG_PREFIX.match(value)
        lang, name = (match.group(1), match.group(2)) if match else (default_lang, value)
        problem = line_problem(name) if name.strip() else "must not be empty"
        if problem is not None:
            raise InputError(f"--name {value!a}: {problem}")
        names[lang] = name.strip()
    return names


def check_names(names: dict[str, str], languages: Sequence[str] | None = None) -> dict[str, str]:
    """``names`` with each name stripped; InputError (naming the language) for an empty or
    too long name, one a single line refuses (``sanitize.line_problem``), or a language not
    among ``languages`` when they are given."""
    checked: dict[str, str] = {}
    for lang, name in names.items():
        if languages is not None and lang not in languages:
            raise InputError(f"names: {lang!r} is not one of {', '.join(languages)}", field="names")
        cleaned = name.strip()
        if not cleaned or len(cleaned) > 200:
            raise InputError(
                f"names: the {lang} name must be one line of 1-200 characters", field="names"
            )
        problem = line_problem(name)
        if problem is not None:
            raise InputError(f"names: the {lang} name: {problem}", field="names")
        checked[lang] = cleaned
    return checked


def add_topic(session: Session, slug: str, names: dict[str, str]) -> Topic:
    """Create a topic; raises InputError for a bad slug, Conflict if it exists."""
    if not _SLUG.match(slug) or len(slug) > 64:
        raise InputError(
            f"slug: topic slug {slug!r}: use lowercase letters, digits and hyphens", field="slug"
        )
    if session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise Conflict(f"topic {slug!r} already exists")
    topic = Topic(slug=slug, names=names or {"en": slug})
    session.add(topic)
    session.flush()
    return topic


def list_topics(session: Session) -> list[Topic]:
    """Every topic, by slug."""
    return list(session.scalars(select(Topic).order_by(Topic.slug)))


def get_topic(session: Session, slug: str) -> Topic:
    """The topic called ``slug``; raises NotFound."""
    topic = session.scalar(select(Topic).where(Topic.slug == slug))
    if topic is None:
        raise NotFound(f"no topic {slug!r}")
    return topic


def rename_topic(session: Session, slug: str, names: dict[str, str]) -> Topic:
    """Replace the topic's names (its slug, the key in every URL and import, stays)."""
    topic = get_topic(session, slug)
    topic.names = dict(names) or {"en": slug}
    return topic


@dataclass(frozen=True)
class TopicUse:
    """How much refers to a topic: its subscribers (confirmed, and in all) and releases."""

    confirmed: int
    subscribers: int
    releases: int


def topic_use(session: Session, topic: Topic) -> TopicUse:
    """The subscribers and releases filed under ``topic``."""
    by_status = dict(
        session.execute(
            select(Subscriber.status, func.count())
            .join(subscriptions, subscriptions.c.subscriber_id == Subscriber.id)
            .where(subscriptions.c.topic_id == topic.id)
            .group_by(Subscriber.status)
        ).all()
    )
    releases = session.scalar(
        select(func.count())
        .select_from(Release)
        .join(release_topics, release_topics.c.release_id == Release.id)
        .where(release_topics.c.topic_id == topic.id)
    )
    return TopicUse(
        confirmed=int(by_status.get(SubscriberStatus.CONFIRMED, 0)),
        subscribers=int(sum(by_status.values())),
        releases=int(releases or 0),
    )


def delete_topic(session: Session, slug: str) -> None:
    """Delete a topic nothing refers to. Raises NotFound, or Conflict when a subscriber
    follows it or a release is filed under it (deleting it would silently change who gets
    what, and the release's feeds)."""
    topic = get_topic(session, slug)
    use = topic_use(session, topic)
    if use.subscribers or use.releases:
        raise Conflict(
            f"topic {slug!r} is followed by {use.subscribers} subscriber(s) and has "
            f"{use.releases} release(s); it can only be deleted when nothing refers to it"
        )
    session.delete(topic)
    session.flush()
