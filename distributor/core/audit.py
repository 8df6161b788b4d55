"""The audit trail: every publish, schedule, correction, withdrawal, import and erasure,
with who did it (``cli:USER``, ``token:NAME``, ``scheduler``), when and to what.

An event is added in the caller's transaction, so it is recorded exactly when the action
is (both commit or neither). An erasure names the suppression hash, never the address.
"""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.core.models import AuditEvent, utcnow

SCHEDULER = "scheduler"


def record(session: Session, actor: str, action: str, subject: str, **details: Any) -> None:
    """Add the event to the session (the caller commits it with the action)."""
    session.add(
        AuditEvent(
            at=utcnow(), actor=actor[:200], action=action, subject=subject[:200], details=details
        )
    )


def cli_actor() -> str:
    """Who runs a command: ``cli:`` and the operating system's user name."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (some containers)
        return "cli:unknown"


def recent(session: Session, limit: int = 50, action: str | None = None) -> Sequence[AuditEvent]:
    """The newest ``limit`` events (of ``action`` only, if given), newest first."""
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))
