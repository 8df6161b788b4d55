"""Bounces: read delivery status notifications and stop mailing addresses that fail.

A report is tied to its ledger row by the VERP address it came back to (``mail/verp.py``):
the token is signed, so a forged report cannot silence someone else. A report without a
valid token is ignored, whatever addresses it names. What failed and how is read with
flufl.bounce (RFC 3464 reports, and the odd formats of some servers), refined by the DSN
``Status`` code: 5.x.x is a hard bounce, 4.x.x a soft one — even when the server has given
up on it (Postfix after its queue lifetime reports ``Action: failed`` with a 4.x.x status).

A hard bounce marks the subscriber bounced at once; soft bounces (at most one per
delivery) do so once ``DISTRIBUTOR_SOFT_BOUNCE_LIMIT`` is reached. A bounced subscriber's
deliveries not yet sent are cancelled and no later release is planned for them.

Reports come from anyone: ``ingest_inbox`` reads, parses and classifies each message on its
own, and one that fails in any way (``RecursionError`` on a MIME tree thousands of levels
deep, a message over ``inbox.MAX_MESSAGE_BYTES``, whatever flufl.bounce trips on) goes to
the quarantine (``inbox.Quarantine``) with its reason while the run goes on. Each
message's records commit on their own.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email import message_from_bytes, message_from_string
from email.iterators import typed_subpart_iterator
from email.message import Message
from email.utils import getaddresses
from typing import Literal

from flufl.bounce import all_failures
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience.subscribers import cancel_pending
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Delivery, Subscriber, SubscriberStatus, utcnow
from distributor.mail.inbox import MAX_MESSAGE_BYTES, Inbox, Incoming, Quarantine
from distributor.mail.verp import BounceAddresses

log = logging.getLogger(__name__)

Kind = Literal["hard", "soft"]
# Where a report may carry the address it was sent to (the VERP address).
_TO_HEADERS = ("To", "Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To")
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")
_UTF8_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")  # RFC 6533's utf-8-addr-xtext


@dataclass
class BounceReport:
    """What an ingest did, counted per message (hard, soft, duplicates, ignored,
    quarantined) and per subscriber (bounced)."""

    messages: int = 0
    hard: int = 0  # deliveries newly recorded as hard bounces
    soft: int = 0  # deliveries newly recorded as soft bounces
    bounced: int = 0  # subscribers marked bounced by this ingest
    duplicates: int = 0  # bounces already recorded (the same report ingested again)
    ignored: int = 0  # not a bounce, or not about a delivery we know
    quarantined: int = 0  # could not be processed: put in the quarantine by this ingest
    in_quarantine: int = 0  # could not be processed, and already in the quarantine


def _dsn_fields(msg: Message) -> Iterator[Message]:
    """The field blocks of every message/delivery-status part, and of every
    message/global-delivery-status part (RFC 6533: the report on an SMTPUTF8 message),
    which the standard library reads as one message: its first block as the headers, the
    others as the body."""
    for part in typed_subpart_iterator(msg, "message", "delivery-status"):
        payload = part.get_payload()
        if isinstance(payload, list):
            yield from (block for block in payload if isinstance(block, Message))
    for part in typed_subpart_iterator(msg, "message", "global-delivery-status"):
        payload = part.get_payload()
        for inner in payload if isinstance(payload, list) else []:
            if isinstance(inner, Message):
                yield inner
                body = inner.get_payload()
                if isinstance(body, str):
                    blocks = _BLANK_LINE.split(body.strip())
                    yield from (message_from_string(block) for block in blocks if block)


def _dsn_recipients(block: Message) -> list[str]:
    """The addresses of a block's recipient fields (``Original-Recipient``,
    ``Final-Recipient``: ``rfc822; addr`` or RFC 6533's ``utf-8; addr``), lower case, an
    internationalised one decoded: raw UTF-8 (read from bytes, it comes surrogate-escaped)
    or with RFC 6533's ``\\x{HHHH}`` escapes."""
    found = []
    for name, value in block.raw_items():
        if name.lower() in ("original-recipient", "final-recipient"):
            address = str(value).rpartition(";")[2].strip().strip("<>")
            address = address.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            address = _UTF8_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), address)
            found.append(address.lower())
    return found


def failures(msg: Message) -> dict[str, Kind]:
    """The recipients a bounce reports as failed (lower case) and whether each failure is
    hard or soft; empty when ``msg`` is no bounce (an auto-reply, a success notice).
    Whatever flufl.bounce's detectors raise on malformed mail propagates: the caller
    quarantines the message rather than take it for no bounce."""
    if not msg.keys():  # nothing but a body, or nothing at all (an empty file): no report
        return {}
    temporary, permanent = all_failures(msg)
    kinds: dict[str, Kind] = {_text(a).lower(): "soft" for a in temporary}
    kinds.update({_text(a).lower(): "hard" for a in permanent})
    for block in _dsn_fields(msg):
        status = str(block.get("Status", "")).strip()
        for address in _dsn_recipients(block):
            # flufl.bounce finds no internationalised address: the DSN's own fields do.
            unseen = address not in kinds and not address.isascii()
            if (address in kinds or unseen) and status[:2] in ("4.", "5."):
                kinds[address] = "hard" if status.startswith("5.") else "soft"
    return kinds


def _text(address: bytes) -> str:
    """An address flufl.bounce found, as text (UTF-8, whatever the report held)."""
    return address.decode("utf-8", "replace")


def delivery_ids(msg: Message, addresses: BounceAddresses) -> set[int]:
    """The deliveries named by valid VERP addresses in the report's recipient headers
    (To, Delivered-To, X-Original-To, …) or its DSN recipient fields."""
    candidates: list[str] = []
    for header in _TO_HEADERS:
        values = [str(v) for v in msg.get_all(header, [])]
        candidates.extend(address for _name, address in getaddresses(values))
    for block in _dsn_fields(msg):
        candidates.extend(_dsn_recipients(block))
    return {found for c in candidates if c and (found := addresses.read(c)) is not None}


def _bounce_subscriber(session: Session, sub: Subscriber, report: BounceReport) -> None:
    sub.bounced_at = sub.bounced_at or utcnow()
    if sub.status in (SubscriberStatus.CONFIRMED, SubscriberStatus.PENDING):
        sub.status = SubscriberStatus.BOUNCED
        report.bounced += 1
    cancel_pending(session, sub.id, "bounced")


def _record(
    session: Session,
    settings: Settings,
    delivery_id: int,
    kinds: dict[str, Kind],
    report: BounceReport,
) -> None:
    delivery = session.scalar(select(Delivery).where(Delivery.id == delivery_id).with_for_update())
    if delivery is None:  # erased since, or another database's token
        report.ignored += 1
        return
    sub = session.scalar(
        select(Subscriber).where(Subscriber.id == delivery.subscriber_id).with_for_update()
    )
    assert sub is not None  # the foreign key
    # The subscriber's own line if the report has it; else (a forwarded address) the worst.
    kind = kinds.get(sub.email) or ("hard" if "hard" in kinds.values() else "soft")
    if delivery.bounce in (kind, "hard"):  # already recorded (a later soft adds nothing)
        report.duplicates += 1
        return
    first = delivery.bounce is None  # else a soft bounce now turned hard (a delay, then a fail)
    delivery.bounce, delivery.bounced_at = kind, utcnow()
    if kind == "hard":
        report.hard += 1
        _bounce_subscriber(session, sub, report)
        return
    report.soft += 1
    if first:
        sub.soft_bounces += 1
    if sub.soft_bounces >= settings.soft_bounce_limit:
        _bounce_subscriber(session, sub, report)


def _classify(msg: Message, addresses: BounceAddresses) -> tuple[dict[str, Kind], set[int]]:
    """How each failed recipient of ``msg`` failed, and the deliveries it is about (both
    empty when it is no bounce of ours)."""
    kinds = failures(msg)
    return kinds, (delivery_ids(msg, addresses) if kinds else set())


def _record_all(
    session: Session,
    settings: Settings,
    kinds: dict[str, Kind],
    found: set[int],
    report: BounceReport,
) -> None:
    if not found:
        report.ignored += 1
        return
    for delivery_id in sorted(found):
        _record(session, settings, delivery_id, kinds, report)


def ingest(session: Session, settings: Settings, messages: Iterable[Message]) -> BounceReport:
    """Record every bounce among ``messages`` against the delivery its VERP address names.

    Hard (5.x.x, permanent) → the delivery's bounce is "hard" and the subscriber is marked
    bounced; soft (4.x.x) → "soft", and the subscriber's soft bounce count goes up, marking
    them bounced at ``settings.soft_bounce_limit``. A bounced subscriber's pending and
    deferred deliveries are cancelled. A message that is not a bounce, or names no delivery
    of ours, is counted as ignored, never an error. Idempotent: a report ingested again is
    counted as a duplicate and changes nothing. Nothing is committed here, and a message
    that cannot be classified raises: for mail from outside, use ``ingest_inbox``.
    """
    addresses = BounceAddresses(settings)
    report = BounceReport()
    for msg in messages:
        report.messages += 1
        _record_all(session, settings, *_classify(msg, addresses), report)
    session.flush()
    return report


def _parse(item: Incoming, addresses: BounceAddresses) -> tuple[dict[str, Kind], set[int]]:
    if item.too_large:
        raise ValueError(f"larger than {MAX_MESSAGE_BYTES:,} bytes: no bounce report is; not read")
    return _classify(message_from_bytes(item.head), addresses)


def _reason(exc: BaseException) -> str:
    """Why a message could not be processed, in one line."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to parse (RecursionError): a hostile or broken MIME structure"
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def ingest_inbox(settings: Settings, inbox: Inbox, quarantine: Quarantine) -> BounceReport:
    """Record the bounces among the messages of ``inbox`` (see ``ingest``), one message at
    a time, each message's records committed on their own.

    A message that cannot be read, parsed or classified — any exception, a RecursionError
    included, or one over ``MAX_MESSAGE_BYTES`` — goes to ``quarantine`` with the reason
    (logged as an error) and the run goes on; a processed one is marked so in its inbox
    (Maildir: moved to ``cur/``, seen). A database error stops the run: what was recorded
    before it stays recorded, and the message it stopped at is read again by the next run.
    ConfigError when the inbox cannot be read or the quarantine written.
    """
    addresses = BounceAddresses(settings)
    report = BounceReport()
    for item in inbox.messages():
        report.messages += 1
        try:
            kinds, found = _parse(item, addresses)
        except Exception as exc:  # whatever one hostile message does stops it alone
            reason = _reason(exc)
            kept = quarantine.keep(item, reason)
            inbox.quarantined(item)
            if kept is None:
                report.in_quarantine += 1
                log.info("%s: already in the quarantine (%s); skipped", item.label, reason)
            else:
                report.quarantined += 1
                log.error("%s: not processed, quarantined as %s: %s", item.label, kept, reason)
            continue
        with session_scope(settings) as session:
            _record_all(session, settings, kinds, found, report)
        inbox.processed(item)
    return report
