"""What a release being written would be, from the editor's values before they are saved:
its newsroom page and its email exactly as subscribers will get them — rendered by the code
that renders the real ones (``site.newsroom``, ``mail.compose`` through ``mail.preview``) —
and who it would reach now (``reporting.audience``).

Nothing is written and nothing is recorded: the release is a transient object
(``lifecycle.unsaved``), gone when the call returns, so a preview may be asked for as often
as the press office types.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release, ReleaseState
from distributor.mail.compose import render_release
from distributor.mail.preview import Preview, preview_of
from distributor.office.identity import identity
from distributor.releases import lifecycle
from distributor.releases.source import ReleaseDraft
from distributor.reporting.audience import Reach, reach
from distributor.site.newsroom import Newsroom


@dataclass(frozen=True)
class DraftPreview:
    """A release not saved yet as its readers would see it: ``page`` (the newsroom page's
    HTML), ``email`` (for the stand-in recipient of ``mail.preview``) and ``reach``."""

    page: str
    email: Preview
    reach: Reach


def preview_draft(
    settings: Settings, newsroom: Newsroom, draft: ReleaseDraft, release_id: int | None = None
) -> DraftPreview:
    """``draft`` previewed as a new release (``release_id`` None) or as draft
    ``release_id``'s new text, rendered with ``newsroom`` (the app's, whose templates are
    compiled once). Raises what saving it would (``lifecycle.unsaved``): ReleaseInputError,
    Conflict, NotFound."""
    with session_scope(settings) as session:
        release = lifecycle.unsaved(session, draft, release_id)
        root = release.translation_of_id or release.id
        # The page links the other versions readers can open: the published ones.
        published = session.scalars(
            select(Release)
            .where(or_(Release.id == root, Release.translation_of_id == root))
            .where(Release.state == ReleaseState.PUBLISHED, Release.id != release.id)
        ).all()
        current = identity(session, settings)  # as set now on the settings page
        page = newsroom.release_page(release, published, current)
        email = preview_of(settings, render_release(release, settings, current))
        audience = reach(session, release)
    return DraftPreview(page, email, audience)
