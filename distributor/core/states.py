"""The states of a release, as plain values: what ``models.Release.state`` stores and what
``distributor releases list --state`` offers. Apart from the models so that the command line
builds its options (from its functions' signatures) without loading SQLAlchemy."""

from __future__ import annotations

import enum


class ReleaseState(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"
