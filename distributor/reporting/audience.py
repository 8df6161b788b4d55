"""Who a release would reach if it went out now, before anything is sent: for each of its
language versions, the confirmed subscribers in that language who follow one of its topics
(each person once, as the ledger plans them: ``outbox.ledger.plan``), and how many follow
each topic; and the followers who read a language it has no version in (they get nothing).
The workspace shows it beside the preview and on the publish step."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from distributor.core.models import (
    Release,
    Subscriber,
    SubscriberStatus,
    Topic,
    subscriptions,
)


@dataclass(frozen=True)
class Version:
    """One language version and the people it would go to."""

    release_id: int
    language: str
    title: str
    state: str
    people: int  # confirmed subscribers in its language following one of its topics, once each
    by_topic: dict[str, int]  # topic slug → those of them who follow it (one may follow several)


@dataclass(frozen=True)
class Reach:
    """A release's versions with their recipients, and who would get none."""

    versions: list[Version]
    without_version: dict[str, int]  # language → followers of its topics in no version's language

    @property
    def people(self) -> int:
        """Everyone who would get an email: each in one language, so the versions add up."""
        return sum(v.people for v in self.versions)

    def of(self, release_id: int) -> Version | None:
        """The version ``release_id``, None when it is not one of them."""
        return next((v for v in self.versions if v.release_id == release_id), None)


def reach(session: Session, release: Release) -> Reach:
    """Who ``release`` and its other language versions (its original and that one's
    translations) would reach now. Counts only: no address is read.

    ``release`` may be one not saved yet (``lifecycle.unsaved``: the editor's preview): its
    language and topics are read from the object, and it stands in for the stored row of
    the same id, if any."""
    root = release.translation_of_id or release.id
    stored = session.scalars(
        select(Release).where(or_(Release.id == root, Release.translation_of_id == root))
    ).all()
    versions = [v for v in stored if v.id != release.id] + [release]
    confirmed = Subscriber.status == SubscriberStatus.CONFIRMED
    found = []
    for version in sorted(versions, key=lambda v: (v.id != root, v.language)):
        topic_ids = [t.id for t in version.topics]
        following = (
            select(subscriptions.c.subscriber_id, subscriptions.c.topic_id)
            .join(Subscriber, Subscriber.id == subscriptions.c.subscriber_id)
            .where(confirmed, Subscriber.language == version.language)
            .where(subscriptions.c.topic_id.in_(topic_ids))
            .subquery()
        )
        people = session.scalar(select(func.count(func.distinct(following.c.subscriber_id))))
        by_topic = dict(
            session.execute(
                select(Topic.slug, func.count(following.c.subscriber_id))
                .join(following, following.c.topic_id == Topic.id)
                .group_by(Topic.slug)
            ).all()
        )
        slugs = sorted(t.slug for t in version.topics)
        found.append(
            Version(
                release_id=version.id,
                language=version.language,
                title=version.title,
                state=version.state,
                people=int(people or 0),
                by_topic={slug: int(by_topic.get(slug, 0)) for slug in slugs},
            )
        )
    return Reach(found, without_version(session, release, {v.language for v in found}))


def without_version(session: Session, release: Release, served: set[str]) -> dict[str, int]:
    """Per language not in ``served``: the confirmed followers of ``release``'s topics who
    read it (no version of the release is in their language: they get nothing)."""
    topic_ids = [t.id for t in release.topics]
    followers = select(subscriptions.c.subscriber_id).where(subscriptions.c.topic_id.in_(topic_ids))
    rows = session.execute(
        select(Subscriber.language, func.count())
        .where(
            Subscriber.status == SubscriberStatus.CONFIRMED,
            Subscriber.language.not_in(served),
            Subscriber.id.in_(followers),
        )
        .group_by(Subscriber.language)
    )
    return {str(lang): int(n) for lang, n in rows}
