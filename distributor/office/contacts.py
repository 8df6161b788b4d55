"""The press office's address book of press contacts: list, read, add, change, delete.

An entry's fields are checked as a release's front matter checks a contact
(``releases.contact.check_contact``: one set of rules), and an address is in the book at
most once, whatever its case. A release copies the contacts ticked for it: changing or
deleting an entry never changes a release already written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.core.errors import Conflict, InputError, NotFound
from distributor.core.models import PressContact, utcnow
from distributor.releases.contact import FIELDS, Contact, check_contact


def list_contacts(session: Session) -> list[PressContact]:
    """Every entry, by name (any case), then by when it was added."""
    order = (func.lower(PressContact.name), PressContact.id)
    return list(session.scalars(select(PressContact).order_by(*order)))


def get_contact(session: Session, contact_id: int) -> PressContact:
    """The entry ``contact_id``; NotFound when there is none."""
    contact = session.get(PressContact, contact_id)
    if contact is None:
        raise NotFound(f"no press contact {contact_id} in the address book")
    return contact


def add_contact(session: Session, fields: Mapping[str, str]) -> PressContact:
    """A new entry of ``fields`` (name required; role, phone, email optional), checked
    (InputError naming the field); Conflict when its address is already in the book."""
    checked = check_contact(dict(fields))
    _refuse_taken(session, checked.email, None)
    contact = PressContact(created_at=utcnow())
    return _store(session, contact, checked)


def update_contact(session: Session, contact_id: int, changes: Mapping[str, str]) -> PressContact:
    """Entry ``contact_id`` with ``changes`` (the fields given replace the stored ones, the
    others stay), checked as in :func:`add_contact`. NotFound, InputError or Conflict."""
    contact = get_contact(session, contact_id)
    unknown = sorted(set(changes) - set(FIELDS))
    if unknown:
        raise InputError(f"{unknown[0]}: not a field of a press contact", field=unknown[0])
    checked = check_contact({**_stored(contact), **changes})
    _refuse_taken(session, checked.email, contact.id)
    return _store(session, contact, checked)


def delete_contact(session: Session, contact_id: int) -> PressContact:
    """Remove entry ``contact_id`` from the book (releases keep their copy); returns what
    it was. NotFound when there is none."""
    contact = get_contact(session, contact_id)
    session.delete(contact)
    session.flush()
    return contact


def chosen_contacts(session: Session, ids: Iterable[int]) -> list[dict[str, str]]:
    """The entries ``ids``, in that order, as a release stores its contacts; InputError
    (field ``book``) for an id no longer in the book (deleted since the form was shown)."""
    chosen = []
    for contact_id in ids:
        contact = session.get(PressContact, contact_id)
        if contact is None:
            raise InputError(
                f"book: press contact {contact_id} is no longer in the address book; "
                "reload the form",
                field="book",
            )
        chosen.append(contact.fields())
    return chosen


def _stored(contact: PressContact) -> dict[str, str]:
    return {"name": contact.name, "role": contact.role, "phone": contact.phone,
            "email": contact.email or ""}  # fmt: skip


def _refuse_taken(session: Session, email: str, other_than: int | None) -> None:
    """Conflict when another entry than ``other_than`` has ``email`` (any case)."""
    if not email:
        return
    query = select(PressContact.name).where(func.lower(PressContact.email) == email.lower())
    if other_than is not None:
        query = query.where(PressContact.id != other_than)
    holder = session.scalar(query.limit(1))
    if holder is not None:
        raise Conflict(f"email: {email} is already in the address book, as {holder}")


def _store(session: Session, contact: PressContact, checked: Contact) -> PressContact:
    """``checked``'s fields into ``contact``, flushed. An address taken meanwhile by a
    concurrent request (the unique index) is a Conflict too, not a server error; the
    caller's transaction is rolled back with it."""
    contact.name, contact.role, contact.phone = checked.name, checked.role, checked.phone
    contact.email = checked.email or None
    contact.updated_at = utcnow()
    session.add(contact)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"email: {checked.email} is already in the address book") from exc
    return contact
