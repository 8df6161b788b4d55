"""The two-person rule (``DISTRIBUTOR_REQUIRE_APPROVAL``): a release is published or
scheduled only once someone other than its last editor approved it, after its last change.

Who is who comes from the audit trail's names (``user:EMAIL``, ``token:NAME``, ``cli:USER``);
a person's token counts as that person (``user:EMAIL (token:NAME)`` is ``user:EMAIL``), so
nobody approves their own text by switching from the workspace to the API. Any change of a
draft's text withdraws an approval given before it. Without the setting, approvals may still
be asked for and given, and nothing waits for them.
"""

from __future__ import annotations

from distributor.core.config import Settings
from distributor.core.errors import Conflict
from distributor.core.models import Release, ReleaseState, utcnow
from distributor.core.roles import person


def edited(release: Release, by: str) -> None:
    """Record that ``by`` changed the release's text: an approval given before is void."""
    release.last_edited_by = by[:200]
    release.approved_by = ""
    release.approved_at = None


def ask(release: Release, by: str) -> None:
    """``by`` asks for the release's approval (a draft only)."""
    if release.state != ReleaseState.DRAFT:
        raise Conflict(f"release {release.id} is {release.state}: only a draft waits for approval")
    release.approval_requested_by = by[:200]


def approve(release: Release, by: str) -> None:
    """``by`` approves the release as it is now. Conflict for its last editor (the rule is
    two people), or a release that is not a draft or a scheduled one."""
    if release.state not in (ReleaseState.DRAFT, ReleaseState.SCHEDULED):
        raise Conflict(f"release {release.id} is {release.state}: there is nothing to approve")
    if release.last_edited_by and person(by) == person(release.last_edited_by):
        raise Conflict(
            f"release {release.id} was last changed by {person(release.last_edited_by)}: "
            "someone else must approve it"
        )
    release.approved_by = by[:200]
    release.approved_at = utcnow()


def check_publishable(settings: Settings, release: Release) -> None:
    """With the rule on, Conflict unless the release was approved since its last change."""
    if settings.require_approval and not release.approved_by:
        editor = person(release.last_edited_by) or "its author"
        raise Conflict(
            f"release {release.id} needs the approval of someone other than {editor} "
            "before it is published or scheduled (DISTRIBUTOR_REQUIRE_APPROVAL)"
        )
