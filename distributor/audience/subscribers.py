"""Subscribers: validate, add, import and export (CSV), unsubscribe.

Every address goes through email-validator; names and languages are checked so that no CR,
LF or encoded-word trick can reach a mail header.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.audience.addresses import normalise_email
from distributor.audience.privacy import suppressed_among
from distributor.core.config import Settings
from distributor.core.errors import (
    Conflict,
    ImportRejected,
    NotFound,
    RowError,
    SubscriberInputError,
)
from distributor.core.filemodes import open_private_text
from distributor.core.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestMode,
    Subscriber,
    SubscriberStatus,
    Topic,
    utcnow,
)
from distributor.core.sanitize import line_problem
from distributor.core.spreadsheet import defuse, restore
from distributor.core.tokens import Link

CSV_COLUMNS = ("email", "name", "language", "topics")
# An import may also say how each person receives releases (empty: as before; immediate
# for someone new); the export says it last, so the columns before it stay where they were.
DIGEST_COLUMN = "digest"
EXPORT_COLUMNS = (
    *CSV_COLUMNS,
    *"status consent_source created_at confirmed_at unsubscribed_at".split(),
    DIGEST_COLUMN,
)
DIGEST_MODES = tuple(mode.value for mode in DigestMode)
# Control characters (C0 and C1), line separators and lone surrogates (no UTF-8 for them).
_BAD_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|=\\?")


# Domains that deliver to another's mailboxes (the same Gmail account).
_SAME_MAILBOXES = {"googlemail.com": "gmail.com"}


def mailbox_key(address: str) -> str:
    """The mailbox an address most likely reaches, to count per person what must be limited
    per person (the once-a-day confirmation email): the address normalised
    (:func:`normalise_email`, which raises SubscriberInputError) and lower-cased, without a
    ``+tag`` and without dots in its local part, so ``B.omb+1@Example.org`` and
    ``bomb@example.org`` are one mailbox.

    Many providers ignore neither dots nor tags; treating their addresses as one mailbox only
    makes a limit stricter, which is harmless. Mail still goes to the address as given."""
    local, _, domain = normalise_email(address).lower().rpartition("@")
    local = local.split("+", 1)[0].replace(".", "")
    return f"{local}@{_SAME_MAILBOXES.get(domain, domain)}"


def check_name(name: str) -> str:
    """The display name, stripped; raises SubscriberInputError for control characters or
    encoded words (header injection), and for what no single-line field takes: bidi
    controls, invisible format characters, noncharacters (``sanitize.line_problem``)."""
    return check_line("name", name)


def check_line(field: str, value: str, limit: int = 200) -> str:
    """``value`` stripped, for a one-line field a subscriber gives (their name, their
    outlet…) that may reach a mail header or a page: raises SubscriberInputError naming
    ``field`` for line breaks, control characters, ``=?`` (encoded words), more than
    ``limit`` characters, or what ``sanitize.line_problem`` refuses."""
    if _BAD_NAME.search(value):
        raise SubscriberInputError(
            f"{field}: must not contain line breaks, control characters or '=?' (encoded words)",
            field=field,
        )
    if len(value) > limit:
        raise SubscriberInputError(f"{field}: longer than {limit} characters", field=field)
    problem = line_problem(value)
    if problem is not None:
        raise SubscriberInputError(f"{field}: {problem}", field=field)
    return value.strip()


def check_digest(mode: str) -> str:
    """The delivery mode ``mode`` names (immediate, daily, weekly; any case, spaces around);
    raises SubscriberInputError naming the field otherwise."""
    value = mode.strip().lower()
    if value not in DIGEST_MODES:
        raise SubscriberInputError(
            f"digest: {mode!r} is not one of {', '.join(DIGEST_MODES)}", field="digest"
        )
    return value


def change_digest(sub: Subscriber, mode: str, now: datetime | None = None) -> bool:
    """Make ``sub`` receive releases by ``mode`` (:func:`check_digest`) from ``now``; False
    when that was already their mode. Leaving a digest mode notes which and when, so its
    next digest still gathers what it owed them (outbox/digests.py): nothing is lost, and
    nothing comes twice (a release delivered at once, or in one digest, is in no other)."""
    mode = check_digest(mode)
    if sub.digest == mode:
        return False
    if sub.digest and sub.digest != DigestMode.IMMEDIATE:
        sub.digest_left, sub.digest_left_at = sub.digest, now or utcnow()
    sub.digest = mode
    return True


def check_language(settings: Settings, language: str) -> str:
    """The language code if it is one we publish in; raises SubscriberInputError."""
    lang = language.strip().lower()
    if lang not in settings.languages:
        raise SubscriberInputError(
            f"language: {language!r} is not one of {', '.join(settings.languages)}",
            field="language",
        )
    return lang


def resolve_topics(session: Session, slugs: Iterable[str]) -> list[Topic]:
    """The Topic rows for ``slugs``; raises SubscriberInputError naming any unknown one."""
    wanted = [s.strip() for s in slugs if s.strip()]
    if not wanted:
        raise SubscriberInputError("topics: at least one topic is required", field="topics")
    found = list(session.scalars(select(Topic).where(Topic.slug.in_(wanted))))
    missing = sorted(set(wanted) - {t.slug for t in found})
    if missing:
        raise SubscriberInputError(f"topics: unknown topic(s) {', '.join(missing)}", field="topics")
    return found


@dataclass
class ImportReport:
    """What an import did: rows added, rows updated, rows left alone (unsubscribed), rows
    refused because the address was erased (on the suppression list), rejects."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[RowError] = field(default_factory=list)
    suppressed: int = 0


@dataclass(frozen=True)
class _Row:
    line: int
    email: str
    name: str
    language: str
    topics: list[Topic]
    digest: str = ""  # empty: not said


def _read_rows(
    session: Session, settings: Settings, stream: IO[str], source: str
) -> tuple[list[_Row], list[RowError]]:
    reader = csv.DictReader(stream)
    try:
        fieldnames = reader.fieldnames
    except (csv.Error, UnicodeDecodeError) as exc:
        raise _unreadable(source, 1, exc) from exc
    header = [h.strip().lower() for h in (fieldnames or [])]
    missing = [c for c in ("email", "language", "topics") if c not in header]
    if missing:
        raise SubscriberInputError(
            f"{source}:1: missing column(s) {', '.join(missing)}; expected {','.join(CSV_COLUMNS)}"
        )
    reader.fieldnames = header
    topics = {t.slug: t for t in session.scalars(select(Topic))}
    good: list[_Row] = []
    bad: list[RowError] = []
    seen: dict[str, int] = {}
    end_of_previous = reader.line_num
    while True:
        line = end_of_previous + 1  # where the next row starts
        try:
            record = next(reader)
        except StopIteration:
            break
        except (csv.Error, UnicodeDecodeError) as exc:
            raise _unreadable(source, line, exc) from exc
        end_of_previous = reader.line_num
        # Our own export defuses formula-like cells; their text is what was stored.
        row = {k: restore(v or "") for k, v in record.items() if isinstance(k, str)}
        if None in record:
            bad.append(RowError(line, "more fields than columns", row))
            continue
        try:
            email = normalise_email(row.get("email", ""))
            name = check_name(row.get("name", ""))
            language = check_language(settings, row.get("language", ""))
            slugs = [s.strip() for s in row.get("topics", "").split(";") if s.strip()]
            if not slugs:
                raise SubscriberInputError("topics: at least one topic is required", field="topics")
            unknown = sorted(s for s in slugs if s not in topics)
            if unknown:
                raise SubscriberInputError(
                    f"topics: unknown topic(s) {', '.join(unknown)}", field="topics"
                )
            digest = check_digest(row["digest"]) if row.get("digest", "").strip() else ""
            if email in seen:
                raise SubscriberInputError(
                    f"email: {email} already on line {seen[email]}", field="email"
                )
        except SubscriberInputError as exc:
            bad.append(RowError(line, str(exc), row))
            continue
        seen[email] = line
        chosen = [topics[s] for s in dict.fromkeys(slugs)]
        good.append(_Row(line, email, name, language, chosen, digest))
    return good, bad


def _unreadable(source: str, line: int, exc: Exception) -> SubscriberInputError:
    """The error for a file the csv module cannot read from ``line`` on: bytes that are not
    UTF-8 (decoded ahead by blocks: the bad byte may be a few lines further) or a row it
    refuses (a field over its 128 KiB limit)."""
    if isinstance(exc, UnicodeDecodeError):
        byte = exc.object[exc.start : exc.start + 1].hex().upper()
        return SubscriberInputError(
            f"{source}:{line}: not UTF-8 text (byte 0x{byte} on this line or a few after); "
            "save the file as CSV UTF-8"
        )
    return SubscriberInputError(f"{source}:{line}: unreadable CSV: {exc}")


def import_csv(
    session: Session,
    settings: Settings,
    stream: IO[str],
    source: str,
    *,
    confirmed: bool = False,
    consent_source: str = "",
    skip_invalid: bool = False,
) -> ImportReport:
    """Import subscribers from CSV (columns email,name,language,topics; topics split by ';').

    With any bad row and ``skip_invalid`` false, raises ImportRejected listing every bad row
    and stores nothing. New rows are ``pending`` unless ``confirmed`` (which needs a
    ``consent_source``). Existing subscribers get the new name, language and topics; an
    unsubscribed or bounced one is never re-subscribed by an import, and an erased address
    (on the suppression list) is never added again: such rows count as ``suppressed``.
    """
    if confirmed and not consent_source.strip():
        raise SubscriberInputError("--confirmed needs --consent-source (where consent was given)")
    rows, bad = _read_rows(session, settings, stream, source)
    if bad and not skip_invalid:
        raise ImportRejected(source, bad)
    report = ImportReport(rejected=bad)
    erased = suppressed_among(session, (r.email for r in rows))
    if erased:
        report.suppressed = len(erased)
        rows = [r for r in rows if r.email not in erased]
    existing = subscribers_by_email(session, [r.email for r in rows])
    now = utcnow()
    for row in rows:
        sub = existing.get(row.email)
        if sub is None:
            sub = Subscriber(
                email=row.email,
                name=row.name,
                language=row.language,
                status=SubscriberStatus.CONFIRMED if confirmed else SubscriberStatus.PENDING,
                consent_source=consent_source.strip() if confirmed else f"import:{source}",
                created_at=now,
                confirmed_at=now if confirmed else None,
                topics=row.topics,
                digest=row.digest or DigestMode.IMMEDIATE,
            )
            session.add(sub)
            report.added += 1
        elif sub.status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED):
            report.unchanged += 1
        else:
            sub.name, sub.language = row.name or sub.name, row.language
            sub.topics = list({t.id: t for t in [*sub.topics, *row.topics]}.values())
            if row.digest:
                change_digest(sub, row.digest, now)
            if confirmed and sub.status == SubscriberStatus.PENDING:
                sub.status, sub.confirmed_at = SubscriberStatus.CONFIRMED, now
                sub.consent_source = consent_source.strip()
            report.updated += 1
    session.flush()
    return report


def subscriber_for(session: Session, link: Link) -> Subscriber | None:
    """The subscriber a personal link (unsubscribe, preferences) was made for; None when
    the row is gone (erased) or its id now names another row (another nonce)."""
    sub = session.get(Subscriber, link.id)
    return sub if sub is not None and link.fits(sub.link_nonce) else None


def subscriber_id_by_email(session: Session, email: str) -> int:
    """The id of the subscriber with address ``email`` (normalised); SubscriberInputError
    for an address that is not valid, NotFound when there is no such subscriber."""
    address = normalise_email(email)
    found = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
    if found is None:
        raise NotFound(f"no subscriber with address {address}")
    return found


def subscribers_by_email(session: Session, emails: list[str]) -> dict[str, Subscriber]:
    """The stored subscribers among ``emails`` (normalised), by address; looked up in
    chunks so that the IN list stays within SQLite's variable limit."""
    found: dict[str, Subscriber] = {}
    for start in range(0, len(emails), 1000):
        chunk = emails[start : start + 1000]
        found.update(
            (s.email, s)
            for s in session.scalars(select(Subscriber).where(Subscriber.email.in_(chunk)))
        )
    return found


def write_rejects(rows: list[RowError], path: Path) -> None:
    """Write rejected rows to ``path`` as CSV: line, reason, then the original columns."""
    with open_private_text(path, newline="") as out:  # the rows hold personal data
        writer = csv.writer(out)
        writer.writerow(["line", "reason", *CSV_COLUMNS])
        for r in rows:
            cells = [r.reason, *(r.row.get(c, "") for c in CSV_COLUMNS)]
            writer.writerow([r.line, *(defuse(cell) for cell in cells)])


def export_rows(session: Session) -> Iterator[dict[str, str]]:
    """Every subscriber as a dict of EXPORT_COLUMNS (strings), ordered by address."""
    for sub in session.scalars(select(Subscriber).order_by(Subscriber.email)):
        yield {
            "email": sub.email,
            "name": sub.name,
            "language": sub.language,
            "topics": ";".join(sorted(t.slug for t in sub.topics)),
            "status": sub.status,
            "consent_source": sub.consent_source,
            "created_at": sub.created_at.isoformat(),
            "confirmed_at": sub.confirmed_at.isoformat() if sub.confirmed_at else "",
            "unsubscribed_at": sub.unsubscribed_at.isoformat() if sub.unsubscribed_at else "",
            DIGEST_COLUMN: sub.digest,
        }


def export_csv(session: Session, out: IO[str]) -> int:
    """Write every subscriber to ``out`` as CSV (re-importable); return the row count.
    Cells a spreadsheet would run as a formula get a ``'`` first (a name is anyone's
    choice on the public form); the import takes it off again."""
    writer = csv.DictWriter(out, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in export_rows(session):
        writer.writerow({column: defuse(text) for column, text in row.items()})
        count += 1
    return count


def add_subscriber(
    session: Session,
    settings: Settings,
    *,
    email: str,
    name: str,
    language: str,
    topics: Iterable[str],
    confirmed: bool = False,
    consent_source: str = "",
    digest: str = "",
) -> Subscriber:
    """Add one subscriber (pending, or confirmed with a consent source), receiving releases
    by ``digest`` when given (:func:`change_digest`); returns it. Raises Conflict for an
    erased address (on the suppression list)."""
    report = import_csv(
        session,
        settings,
        io.StringIO(_one_row(email, name, language, topics, digest)),
        "subscriber",
        confirmed=confirmed,
        consent_source=consent_source,
    )
    if report.suppressed:
        raise Conflict(f"{email}: this address was erased and is on the suppression list")
    sub = session.scalar(select(Subscriber).where(Subscriber.email == normalise_email(email)))
    assert sub is not None
    return sub


def _one_row(email: str, name: str, language: str, topics: Iterable[str], digest: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*CSV_COLUMNS, DIGEST_COLUMN])
    writer.writerow([email, name, language, ";".join(topics), digest])
    return buf.getvalue()


def unsubscribe(session: Session, subscriber_id: int) -> Subscriber:
    """Unsubscribe from everything and cancel every delivery not yet sent. Idempotent."""
    sub = session.get(Subscriber, subscriber_id)
    if sub is None:
        raise NotFound(f"no subscriber with id {subscriber_id}")
    if sub.status != SubscriberStatus.UNSUBSCRIBED:
        sub.status = SubscriberStatus.UNSUBSCRIBED
        sub.unsubscribed_at = utcnow()
    cancel_pending(session, subscriber_id, "unsubscribed")
    return sub


def cancel_pending(session: Session, subscriber_id: int, reason: str) -> None:
    """Cancel the subscriber's release emails and digests that were planned or deferred but
    not sent (a batch holding one drops it before its message starts)."""
    for table in (Delivery, Digest):
        session.execute(
            update(table)
            .where(
                table.subscriber_id == subscriber_id,
                table.status.in_([DeliveryStatus.PENDING, DeliveryStatus.DEFERRED]),
            )
            .values(status=DeliveryStatus.CANCELLED, last_error=reason, lease_token=None)
        )
