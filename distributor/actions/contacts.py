"""What the press office does to its address book of press contacts: add, change, delete
an entry. Each action does its work and adds its audit record in one transaction (both
commit, or neither)."""

from __future__ import annotations

from collections.abc import Mapping

from distributor.core import audit
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import PressContact
from distributor.office import contacts


def add_contact(settings: Settings, fields: Mapping[str, str], by: str) -> PressContact:
    """A new entry of ``fields`` (``contacts.add_contact``: InputError naming the field,
    Conflict for an address already in the book), recorded as added by ``by``."""
    with session_scope(settings) as session:
        contact = contacts.add_contact(session, fields)
        audit.record(session, by, "contact-add", _subject(contact), **contact.fields())
    return contact


def update_contact(
    settings: Settings, contact_id: int, changes: Mapping[str, str], by: str
) -> PressContact:
    """Entry ``contact_id`` with ``changes`` (``contacts.update_contact``), recorded as
    changed by ``by`` with what it now says. NotFound, InputError or Conflict."""
    with session_scope(settings) as session:
        contact = contacts.update_contact(session, contact_id, changes)
        audit.record(session, by, "contact-update", _subject(contact), **contact.fields())
    return contact


def delete_contact(settings: Settings, contact_id: int, by: str) -> None:
    """Remove entry ``contact_id`` from the book (releases keep their copy), recorded as
    deleted by ``by`` with the name it had. NotFound when there is none."""
    with session_scope(settings) as session:
        contact = contacts.delete_contact(session, contact_id)
        audit.record(session, by, "contact-delete", _subject(contact), name=contact.name)


def _subject(contact: PressContact) -> str:
    return f"press contact {contact.id}"
