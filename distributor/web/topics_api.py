"""The admin API's topics (under ``/api``): list, create, read, rename, delete.

Every call needs a bearer token with the ``releases`` scope: topics are what releases are
filed under, so they belong to the press office's release work.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.models import Topic
from distributor.core.roles import Caller, Can
from distributor.releases.topics import get_topic, list_topics, topic_use
from distributor.web.apibase import (
    PRINTABLE,
    conflict,
    error_responses,
    not_found,
    token_dependency,
)
from distributor.web.deps import AppQueue, AppSettings
from distributor.web.rights import requiring

SCOPE = "releases"
Slug = Annotated[str, Path(max_length=64, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$")]
Names = Annotated[
    dict[
        Annotated[str, Field(max_length=8, pattern=r"^[a-z]{2,3}$")],
        Annotated[str, Field(min_length=1, max_length=200, pattern=PRINTABLE)],
    ],
    Field(max_length=20, description='The topic\'s name per language, e.g. {"en": "Climate"}'),
]


class TopicOut(BaseModel):
    """A topic, its names, and how much is filed under it."""

    slug: str
    names: dict[str, str]
    confirmed_subscribers: int = Field(description="Confirmed subscribers following it")
    subscribers: int = Field(description="Subscribers following it, in any status")
    releases: int = Field(description="Releases filed under it, in any state")


class TopicIn(BaseModel):
    """A new topic: its slug (used in URLs and imports, never changed) and names."""

    model_config = ConfigDict(extra="forbid")
    slug: Annotated[str, Field(min_length=1, max_length=64)]
    names: Names


class TopicNames(BaseModel):
    """A topic's new names (they replace the old ones)."""

    model_config = ConfigDict(extra="forbid")
    names: Names


def _out(session: Session, topic: Topic) -> TopicOut:
    use = topic_use(session, topic)
    return TopicOut(
        slug=topic.slug,
        names=dict(topic.names),
        confirmed_subscribers=use.confirmed,
        subscribers=use.subscribers,
        releases=use.releases,
    )


token_caller = token_dependency(SCOPE)
reader = requiring(token_caller, Can.DRAFT)  # a writer files a release under topics
editor = requiring(token_caller, Can.TOPICS)
Editor = Annotated[Caller, Depends(editor)]
router = APIRouter(
    tags=["topics"], responses=error_responses(SCOPE), dependencies=[Depends(token_caller)]
)


@router.get("/topics", summary="List topics", dependencies=[Depends(reader)])
def topics(settings: AppSettings) -> list[TopicOut]:
    """Every topic, by slug, with its subscriber and release counts."""
    with session_scope(settings) as session:
        return [_out(session, t) for t in list_topics(session)]


@router.post(
    "/topics",
    status_code=201,
    summary="Create a topic",
    responses=conflict("A topic with this slug exists"),
)
def create(body: TopicIn, who: Editor, settings: AppSettings) -> TopicOut:
    """Create a topic; its names must be in the configured languages."""
    topic = actions.add_topic(settings, body.slug, body.names, who.actor)
    with session_scope(settings) as session:
        return _out(session, topic)


@router.get(
    "/topics/{slug}",
    summary="One topic",
    responses=not_found("topic"),
    dependencies=[Depends(reader)],
)
def read(slug: Slug, settings: AppSettings) -> TopicOut:
    """The topic with its names and counts."""
    with session_scope(settings) as session:
        return _out(session, get_topic(session, slug))


@router.put("/topics/{slug}", summary="Rename a topic", responses=not_found("topic"))
def rename(
    slug: Slug, body: TopicNames, who: Editor, settings: AppSettings, queue: AppQueue
) -> TopicOut:
    """Replace the topic's names; the slug stays (it is in URLs and imports). The
    newsroom shows the new names from its next regeneration."""
    topic = actions.rename_topic(settings, queue.get(), slug, body.names, who.actor)
    with session_scope(settings) as session:
        return _out(session, topic)


@router.delete(
    "/topics/{slug}",
    status_code=204,
    response_class=Response,
    summary="Delete a topic",
    responses={
        **not_found("topic"),
        **conflict("Subscribers follow it or releases are filed under it"),
    },
)
def remove(slug: Slug, who: Editor, settings: AppSettings) -> Response:
    """Delete a topic nothing refers to (409 otherwise: no subscription is dropped
    silently)."""
    actions.delete_topic(settings, slug, who.actor)
    return Response(status_code=204)
