"""A press contact: the fields a release prints for each (name, role, phone, email) and
their checks, in one model. A release's front matter lists them (``source.FrontMatter``);
the press office's address book (``office.contacts``) keeps them by the same rules, so a
contact chosen from the book is one a release file could have carried."""

from __future__ import annotations

from typing import Any

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distributor.core import urls
from distributor.core.errors import InputError
from distributor.core.sanitize import single_line

FIELDS = ("name", "role", "phone", "email")


def _email(value: str) -> str:
    """An address to write to (syntax only: no DNS at ingest), as email-validator
    normalises it; a ``mailto:`` link to it is %-encoded (``urls.mailto_href``)."""
    if not value:
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        shown = value if len(value) <= 80 else value[:79] + "…"
        raise ValueError(f"{shown!r} is not an email address: {exc}") from exc


def _named(value: str) -> str:
    # min_length counts the spaces single_line then strips: "  " would print a nameless
    # contact.
    if not value:
        raise ValueError("must not be empty")
    return value


def _phone(value: str) -> str:
    problem = urls.phone_problem(value) if value else None
    if problem is not None:
        raise ValueError(problem)
    return value


class Contact(BaseModel):
    """A press contact printed on every release."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(default="", max_length=200)
    phone: str = Field(default="", max_length=50)
    email: str = Field(default="", max_length=320)

    _lines = field_validator("name", "role", "phone", "email")(single_line)
    _names = field_validator("name")(_named)
    _addresses = field_validator("email")(_email)
    _phones = field_validator("phone")(_phone)


def check_contact(fields: dict[str, Any]) -> Contact:
    """``fields`` (name, role, phone, email) checked as a release's front matter checks a
    contact, each value stripped and the email normalised; InputError naming the first
    field at fault (``field``) and saying why otherwise."""
    try:
        return Contact.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "contact"
        reason = error["msg"].removeprefix("Value error, ")
        raise InputError(f"{field}: {reason}", field=field) from exc
