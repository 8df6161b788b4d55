"""What the press office does to its audience: import subscribers from CSV, erase a person
(GDPR), grant, refuse or revoke a journalist's embargo access. Each action does its work and
adds its audit record in one transaction (both commit, or neither); an erasure's record
names the address's suppression hash, never the address: the trail must not keep what the
erasure removed."""

from __future__ import annotations

from typing import IO, Any

from sqlalchemy.orm import Session

from distributor.audience.accreditation import AccreditationView, Decision, decide, view
from distributor.audience.privacy import erase_person, export_person, suppression_hash
from distributor.audience.subscribers import ImportReport, import_csv
from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import NotFound
from distributor.core.models import Subscriber


def import_subscribers(
    settings: Settings,
    stream: IO[str],
    source: str,
    by: str,
    *,
    confirmed: bool = False,
    consent_source: str = "",
    skip_invalid: bool = False,
) -> ImportReport:
    """Import the CSV in ``stream`` (named ``source`` in messages and in the trail) as
    ``subscribers.import_csv`` does, recorded as imported by ``by`` with the counts added
    and updated; returns what the import did. Raises as ``import_csv`` does, storing
    nothing."""
    with session_scope(settings) as session:
        report = import_csv(
            session,
            settings,
            stream,
            source,
            confirmed=confirmed,
            consent_source=consent_source,
            skip_invalid=skip_invalid,
        )
        details = {"added": report.added, "updated": report.updated, "confirmed": confirmed}
        audit.record(session, by, "import", source, **details)
    return report


def erase(settings: Settings, email: str, by: str) -> dict[str, Any]:
    """Erase the person with address ``email`` (``privacy.erase_person``), recorded as
    erased by ``by``; returns everything that was held on them (``privacy.export_person``,
    read just before). Raises NotFound when nothing is held on them."""
    with session_scope(settings) as session:
        held = export_person(session, email)
        _erase(session, settings, email, by)
    return held


def erase_subscriber(settings: Settings, subscriber_id: int, by: str) -> None:
    """Erase subscriber ``subscriber_id`` as :func:`erase` does; raises NotFound when
    there is no such subscriber."""
    with session_scope(settings) as session:
        sub = session.get(Subscriber, subscriber_id)
        if sub is None:
            raise NotFound(f"no subscriber with id {subscriber_id}")
        _erase(session, settings, sub.email, by)


def _erase(session: Session, settings: Settings, email: str, by: str) -> None:
    erase_person(session, settings, email)
    audit.record(session, by, "erase", suppression_hash(email))


def decide_accreditation(
    settings: Settings,
    subscriber_id: int,
    decision: Decision,
    by: str,
    *,
    reason: str = "",
    outlet: str = "",
    role: str = "",
) -> AccreditationView:
    """Apply ``decision`` to subscriber ``subscriber_id``'s embargo access as
    ``accreditation.decide`` does, recorded as ``accreditation-<decision>`` by ``by`` (with
    the reason; the trail names the subscriber by id only, so an erasure leaves no address
    in it) when it changed something; returns the accreditation as it is now. Raises as
    ``decide`` does, changing nothing."""
    with session_scope(settings) as session:
        _, changed = decide(
            session, subscriber_id, decision, by, reason=reason, outlet=outlet, role=role
        )
        if changed:
            audit.record(
                session, by, f"accreditation-{decision}", f"subscriber {subscriber_id}",
                reason=reason,
            )  # fmt: skip
        return view(session, subscriber_id)
