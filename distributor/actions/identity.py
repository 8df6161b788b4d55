"""What an admin does to the office's identity (the settings page, ``PUT /api/settings``,
``distributor settings set``): change its fields, the change and its audit record in one
transaction, then regenerate the site, whose pages show the identity."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.queue import TaskQueue
from distributor.office import identity


def update_identity(
    settings: Settings,
    queue: TaskQueue | None,
    changes: Mapping[str, Any],
    by: str,
    logo_upload: tuple[str, bytes] | None = None,
) -> dict[str, Any]:
    """Set the identity's ``changes`` and ``logo_upload`` (``identity.update_identity``:
    InputError naming the field, nothing stored), recorded as changed by ``by`` with what
    changed; after the commit, regenerate the site through ``queue`` (None: the caller
    rebuilds it). Returns what changed (empty: nothing did, nothing is recorded)."""
    with session_scope(settings) as session:
        changed = identity.update_identity(session, settings, changes, logo_upload)
        if changed:
            audit.record(session, by, "settings-update", "identity", **changed)
    if changed and queue is not None:
        queue.send("regenerate_site")
    return changed
