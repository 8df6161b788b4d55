"""Topics: what subscribers choose and releases are filed under."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import Conflict, InputError
from .models import Topic

_SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_LANG_PREFIX = re.compile(r"^([a-z]{2}):(.*)$", re.S)


def parse_names(values: list[str], default_lang: str) -> dict[str, str]:
    """``["Climate", "fr:Climat"]`` → ``{"en": "Climate", "fr": "Climat"}``."""
    names: dict[str, str] = {}
    for value in values:
        match = _LANG_PREFIX.match(value)
        lang, name = (match.group(1), match.group(2)) if match else (default_lang, value)
        name = name.strip()
        if not name or any(ord(c) < 32 for c in name):
            raise InputError(f"--name {value!r}: must be a non-empty single line")
        names[lang] = name
    return names


def add_topic(session: Session, slug: str, names: dict[str, str]) -> Topic:
    """Create a topic; raises InputError for a bad slug, Conflict if it exists."""
    if not _SLUG.match(slug) or len(slug) > 64:
        raise InputError(f"topic slug {slug!r}: use lowercase letters, digits and hyphens")
    if session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise Conflict(f"topic {slug!r} already exists")
    topic = Topic(slug=slug, names=names or {"en": slug})
    session.add(topic)
    session.flush()
    return topic


def list_topics(session: Session) -> list[Topic]:
    """Every topic, by slug."""
    return list(session.scalars(select(Topic).order_by(Topic.slug)))
