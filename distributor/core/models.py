"""The tables: topics, subscribers and their subscriptions, releases, and the delivery ledger.

Times are stored as naive UTC (SQLite has no time zones) and always returned aware (UTC).
"""

from __future__ import annotations

import enum
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    event,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from distributor.core.states import ReleaseState as ReleaseState  # its home: states.py


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned aware; naive input is refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # raw SQLite text from a Core query without typing
            value = datetime.fromisoformat(value)
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


@event.listens_for(Table, "after_parent_attach")
def _ids_never_reused(table: Table, parent: object) -> None:
    """Every table of ours gets SQLite's AUTOINCREMENT, wherever it is declared.

    Without it SQLite gives a new row the largest id + 1, so deleting the newest row (a GDPR
    erasure) hands its id to the next one: links, bounces and audit records naming the old
    id would then reach someone else. PostgreSQL sequences never go back. (SQLite applies
    it only to a single INTEGER PRIMARY KEY; tables keyed otherwise are left as they are.)
    A migration that creates a table must pass ``sqlite_autoincrement=True`` itself."""
    if parent is Base.metadata:
        table.dialect_options["sqlite"]["autoincrement"] = True


def new_nonce() -> str:
    """A random value (96 bits, URL-safe) stored with a row and carried in its links, so a
    link names that row and no other that could ever take its id."""
    return secrets.token_urlsafe(12)


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class AccreditationStatus(enum.StrEnum):
    REQUESTED = "requested"  # the journalist asked; the press office has not decided
    GRANTED = "granted"  # receives embargoed advance copies (while a confirmed subscriber)
    REFUSED = "refused"  # the request was refused; the journalist may ask again
    REVOKED = "revoked"  # was granted, no longer; the journalist may ask again


class DigestMode(enum.StrEnum):
    """How a subscriber receives releases: each at once, or gathered in one email a day or a
    week (outbox/digests.py)."""

    IMMEDIATE = "immediate"
    DAILY = "daily"
    WEEKLY = "weekly"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # planned, never tried
    DEFERRED = "deferred"  # a temporary failure; tried again at next_attempt_at
    SENT = "sent"  # the SMTP server (or the outbox) accepted it
    FAILED = "failed"  # permanent failure, or gave up
    CANCELLED = "cancelled"  # not sent: the subscriber left or the release was withdrawn


subscriptions = Table(
    "subscriptions",
    Base.metadata,
    Column("subscriber_id", ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_subscriptions_topic", "topic_id", "subscriber_id"),
)

release_topics = Table(
    "release_topics",
    Base.metadata,
    Column("release_id", ForeignKey("releases.id", ondelete="CASCADE"), primary_key=True),
    Column("topic_id", ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True),
)


class Topic(Base):
    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    names: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def name(self, lang: str) -> str:
        """The topic's name in ``lang``, else in any language, else its slug."""
        return self.names.get(lang) or next(iter(self.names.values()), self.slug)


class Subscriber(Base):
    __tablename__ = "subscribers"
    __table_args__ = (
        # The few who left, for ``releases status`` (migration 0028).
        Index(
            "ix_subscribers_unsubscribed_at",
            "unsubscribed_at",
            postgresql_where=text("unsubscribed_at IS NOT NULL"),
            sqlite_where=text("unsubscribed_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING, index=True)
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Consent as given on the web form (GDPR): when, from where, on which form version.
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    consent_ip: Mapped[str] = mapped_column(String(64), default="")
    consent_user_agent: Mapped[str] = mapped_column(String(500), default="")
    consent_form_version: Mapped[str] = mapped_column(String(32), default="")
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Carried in this subscriber's links (core/tokens.py) and checked on use. None for rows from
    # before links carried one ("legacy"): only their id-only links, sent before, are valid.
    link_nonce: Mapped[str | None] = mapped_column(String(32), default=new_nonce)
    # Each release at once, or a daily or weekly digest (DigestMode). A subscriber who leaves
    # a digest mode still gets that mode's last digest, of what it owed them: ``digest_left``
    # names the mode, ``digest_left_at`` when (audience/subscribers.py: change_digest).
    digest: Mapped[str] = mapped_column(
        String(16), default=DigestMode.IMMEDIATE, server_default=DigestMode.IMMEDIATE.value
    )
    digest_left: Mapped[str | None] = mapped_column(String(16))
    digest_left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    topics: Mapped[list[Topic]] = relationship(secondary=subscriptions, lazy="selectin")
    # Read when asked for (the preferences page), never by the send path's bulk reads.
    accreditation: Mapped[Accreditation | None] = relationship(lazy="select", viewonly=True)


class Accreditation(Base):
    """A subscriber's embargo access (audience/accreditation.py): asked for on their
    preferences page with the outlet they write for and their role there, granted, refused
    or revoked by the press office (each decision in the audit trail). One row per
    subscriber, deleted with them (an erasure)."""

    __tablename__ = "accreditations"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), unique=True
    )
    outlet: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(200), default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str] = mapped_column(String(200), default="")
    # The press office's words on a refusal or revocation, shown to the journalist.
    reason: Mapped[str] = mapped_column(String(500), default="")
    # The journalist's choice: a one-line "embargo lifted" email for each advance copy.
    lift_notice: Mapped[bool] = mapped_column(Boolean, default=False)


class SubscriptionRequest(Base):
    """A request to subscribe (web form or API), kept apart from the subscriber until its
    confirmation link is used: confirming applies exactly these choices and this consent
    record (audience/subscription.py), so nobody can change someone else's subscription by asking
    in their name. Deleted ``DISTRIBUTOR_CONFIRM_MAX_AGE_DAYS`` after its last link went out."""

    __tablename__ = "subscription_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The address as given (checked and normalised as every stored address): mail goes here.
    email: Mapped[str] = mapped_column(String(320), index=True)
    # The mailbox it reaches (subscribers.mailbox_key): the once-a-day limit counts these.
    mailbox: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    language: Mapped[str] = mapped_column(String(8))
    topics: Mapped[list[str]] = mapped_column(JSON, default=list)  # slugs
    consent_source: Mapped[str] = mapped_column(String(200), default="")
    consent_ip: Mapped[str] = mapped_column(String(64), default="")
    consent_user_agent: Mapped[str] = mapped_column(String(500), default="")
    consent_form_version: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # When a worker last decided whether to send its confirmation (None: not yet; the sweep
    # wakes a worker for those whose wake-up was lost).
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmation_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    nonce: Mapped[str] = mapped_column(String(32), default=new_nonce)


class ConfirmationLimit(Base):
    """When a mailbox was last sent a confirmation email: at most one a day per mailbox
    (subscription bombing), taken atomically (audience/subscription.py). Keyed by a SHA-256 of the
    mailbox key, so it names nobody; rows older than a day are purged."""

    __tablename__ = "confirmation_limits"

    mailbox_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


CATALOGUE_COLUMNS = ("state", "language", "date", "id", "updated_at", "slug", "translation_of_id")


class Release(Base):
    __tablename__ = "releases"
    # Covers the site builder's catalogue query, so it never reads the rows' bodies
    # (on SQLite the columns after body_html sit behind its overflow pages: 4x slower).
    __table_args__ = (Index("ix_releases_catalogue", *CATALOGUE_COLUMNS),)

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(200), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    language: Mapped[str] = mapped_column(String(8))
    dateline: Mapped[str] = mapped_column(String(200), default="")
    lead: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    # The embargo from the front matter: never published before it.
    embargo_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a scheduled release goes out (the sweep publishes it); None unless scheduled.
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by a correction of a published release (shown as "Corrected on …").
    corrected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_by: Mapped[str] = mapped_column(String(200), default="")
    # Why, in a line, shown on the page that answers 410 (empty: no reason given).
    withdrawn_reason: Mapped[str] = mapped_column(String(500), default="", server_default="")
    contacts: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    images: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16), default=ReleaseState.DRAFT, index=True)
    translation_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set once the delivery ledger has been planned; the sweep plans releases missing it.
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Embargoed advance copies (outbox/advance.py): when accredited journalists get the
    # release before it is public (None: none are sent), and when their rows were planned.
    advance_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    advance_planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When its time to go public last changed after advance copies went out (rescheduled,
    # unscheduled, published early): their recipients are told (an "embargo-moved" notice).
    embargo_moved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The two-person rule (releases/approval.py): who last changed its text, and who
    # approved it since (empty: not approved); asked for by ``approval_requested_by``.
    last_edited_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    approval_requested_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    approved_by: Mapped[str] = mapped_column(String(200), default="", server_default="")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    topics: Mapped[list[Topic]] = relationship(secondary=release_topics, lazy="selectin")
    translation_of: Mapped[Release | None] = relationship(remote_side=[id])
    # Every correction with its "what changed" note, oldest first: loaded with the release
    # (one query for a page of them), as its page and feed item show them all.
    corrections: Mapped[list[Correction]] = relationship(
        lazy="selectin",
        order_by="Correction.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


MAX_NOTE = 500  # characters of a correction's note: a line on the page and in the feed


class Correction(Base):
    """One correction of a published release (releases/lifecycle.py ``correct_release``):
    when (the release's ``corrected_at`` then: the notice of that correction finds its note
    by it), who made it, and the note saying what changed — one line, shown on the page,
    in the feed item and in the correction notice. Empty for a correction made before notes
    existed, or through the CLI or API without one."""

    __tablename__ = "release_corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(
        ForeignKey("releases.id", ondelete="CASCADE"), index=True
    )
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    corrected_by: Mapped[str] = mapped_column(String(200), default="")
    note: Mapped[str] = mapped_column(String(MAX_NOTE), default="")


class OutboxRow:
    """The columns every ledger of the outbox shares (outbox/ledger.py): a status, the
    attempts and when the next is due, the lease a worker holds on the row while it sends,
    and the server's last answer."""

    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Delivery(OutboxRow, Base):
    """The ledger: one row per (release, subscriber); the record of what was sent."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("release_id", "subscriber_id", name="uq_deliveries_release_subscriber"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
        Index("ix_deliveries_release_status", "release_id", "status"),
        # The dashboard's chart counts sent rows per hour (migration 0028): partial, so
        # planning (pending rows) never writes it.
        Index(
            "ix_deliveries_sent_at",
            "sent_at",
            postgresql_where=text("status = 'sent'"),
            sqlite_where=text("status = 'sent'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    # A delivery status notification came back for this message: "hard" or "soft".
    bounce: Mapped[str | None] = mapped_column(String(8))
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An embargoed advance copy (sent before the release was public): this subscriber's one
    # copy of it, so the public send at the lift never sends them another.
    advance: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class FoldedCount(Base):
    """Ledger rows folded away after the retention period (outbox/retention.py,
    ``DISTRIBUTOR_LEDGER_RETENTION_DAYS``): how many rows of one release's ``ledger``
    (``deliveries``, or ``correction_notices`` with their ``kind``) ended in ``status``,
    with what the status, the report, the dashboard and the metrics read of them. Counts
    only: no row says who. Every reader of counts adds these to the live rows'."""

    __tablename__ = "folded_counts"
    __table_args__ = (
        UniqueConstraint(
            "release_id", "ledger", "kind", "status", "advance", name="uq_folded_counts_group"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    ledger: Mapped[str] = mapped_column(String(32))  # the table the rows were in
    kind: Mapped[str] = mapped_column(String(16), default="")  # a notice's kind; "" otherwise
    status: Mapped[str] = mapped_column(String(16))
    advance: Mapped[bool] = mapped_column(Boolean, default=False)  # embargoed advance copies
    count: Mapped[int] = mapped_column(Integer, default=0)
    hard_bounces: Mapped[int] = mapped_column(Integer, default=0)
    soft_bounces: Mapped[int] = mapped_column(Integer, default=0)
    # Sent rows whose recipient had unsubscribed after receiving it, when folded; and of
    # those, within the statistics' window after publication (reporting/statistics.py).
    unsubscribed: Mapped[int] = mapped_column(Integer, default=0)
    unsubscribed_in_window: Mapped[int] = mapped_column(Integer, default=0)
    first_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    folded_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the last fold that added rows


class NoticeKind(enum.StrEnum):
    CORRECTION = "correction"  # the release was corrected (releases correct --notify)
    WITHDRAWAL = "withdrawal"  # the release was withdrawn (releases withdraw --notify)
    # To the recipients of its embargoed advance copies (outbox/advance.py): its time to go
    # public changed (later, earlier, postponed), or it went public (if they chose to know).
    EMBARGO_MOVED = "embargo-moved"
    EMBARGO_LIFTED = "embargo-lifted"


class CorrectionNotice(OutboxRow, Base):
    """The ledger of notices about a release sent earlier — its correction or its
    withdrawal (``kind``): one row per (release, subscriber, kind, event), so nobody is told
    twice of the same change. Statuses as for deliveries. (The name and table predate the
    withdrawal notice.)"""

    __tablename__ = "correction_notices"
    __table_args__ = (
        UniqueConstraint(
            "release_id",
            "subscriber_id",
            "kind",
            "corrected_at",
            name="uq_correction_notices_once",
        ),
        Index("ix_correction_notices_due", "status", "next_attempt_at"),
        # Deleting a delivery (a fold, an erasure) deletes its notices (ON DELETE CASCADE):
        # without it, PostgreSQL scans the whole table once per delivery deleted.
        Index("ix_correction_notices_delivery", "delivery_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    # The delivery of the original: its VERP address is the notice's envelope sender too.
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(
        String(16), default=NoticeKind.CORRECTION, server_default=NoticeKind.CORRECTION.value
    )
    # Which change: the release's corrected_at when a correction was made, its
    # withdrawn_at for a withdrawal.
    corrected_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConfirmationEmail(OutboxRow, Base):
    """The ledger of confirmation emails: one row per confirmation a worker decided to send
    for a subscription request (audience/subscription.py), sent by the outbox with its
    retries, limits and recorded outcome. Goes with its request."""

    __tablename__ = "confirmation_emails"
    __table_args__ = (Index("ix_confirmation_emails_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("subscription_requests.id", ondelete="CASCADE"), index=True
    )


class DigestPeriod(Base):
    """One period of a digest mode (daily, weekly), from ``starts_at`` to ``ends_at`` (its
    hour, DISTRIBUTOR_DIGEST_HOUR in the press office's zone), planned once by the sweep: a
    period a sweep missed is covered by the next, which starts where the last one ended."""

    __tablename__ = "digest_periods"
    __table_args__ = (UniqueConstraint("mode", "ends_at", name="uq_digest_periods_mode_end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    planned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Digest(OutboxRow, Base):
    """The ledger of digests: one row per (period, subscriber), holding the releases listed
    in :class:`DigestItem`; statuses as for deliveries."""

    __tablename__ = "digests"
    __table_args__ = (
        UniqueConstraint("period_id", "subscriber_id", name="uq_digests_period_subscriber"),
        Index("ix_digests_due", "status", "next_attempt_at"),
        # A claim goes straight to the period's open rows, past the thousands already sent
        # (as ix_deliveries_release_status does for a release's).
        Index("ix_digests_period_status", "period_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("digest_periods.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))


class DigestItem(Base):
    """A release in a digest, as it stood (``revision_at``: its correction's time, else its
    publication's). Unique per subscriber and revision: no release reaches anyone twice
    through digests, whichever periods or modes they pass through."""

    __tablename__ = "digest_items"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "release_id", "revision_at", name="uq_digest_items_once"),
        Index("ix_digest_items_digest", "digest_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    digest_id: Mapped[int] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    revision_at: Mapped[datetime] = mapped_column(UTCDateTime)
    corrected: Mapped[bool] = mapped_column(Boolean, default=False)


class Suppression(Base):
    """An erased address, kept only as a hash so an import cannot silently re-add it."""

    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[str] = mapped_column(String(64), default="erased")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Who did what to which release or subscribers, and when (see audit.py)."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class User(Base):
    """A named account of the press office's workspace (see accounts.py): its role says what
    it may do (roles.py); only an argon2id hash of its password is stored. A disabled
    account keeps its row (the audit trail names it) but opens nothing."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Two-factor login (office/totp.py): the shared secret (base32), set while enrolling and
    # in use once ``totp_enabled_at`` is; the last time step whose code was used (a code
    # works once).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)


class Invitation(Base):
    """An admin's invitation to join the workspace with a role: its link (signed, with the
    nonce; office/invitations.py) lets the person choose a password, which makes the account.
    One pending invitation per address: a new one replaces it."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[str] = mapped_column(String(24), default=new_nonce)
    invited_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InvitationEmail(OutboxRow, Base):
    """The ledger of invitation emails: one row per invitation, sent by the outbox with its
    retries, limits and recorded outcome. Goes with its invitation."""

    __tablename__ = "invitation_emails"
    __table_args__ = (Index("ix_invitation_emails_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("invitations.id", ondelete="CASCADE"), index=True
    )


class LoginFailures(Base):
    """Failed logins counted per key (an account's address hash, or a client address; see
    logins.py), so guessing is throttled across processes and restarts. Keyed by a SHA-256:
    the table names no one."""

    __tablename__ = "login_failures"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class ApiToken(Base):
    """A bearer token for the admin API; only its SHA-256 is stored. A token made for a user
    (``user_id``) can do at most what the user's role can, and stops with the account; one
    made before accounts existed has only its scopes."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user: Mapped[User | None] = relationship(lazy="joined")


class AdminSession(Base):
    """A login to ``/admin`` (see admin_sessions.py): the browser holds a random value, the
    database only its SHA-256, with who it belongs to and when it ends.

    Its owner is a user who logged in with a password (``user_id``), or an API token given
    at the login form (``token_id``): one of the two is set."""

    __tablename__ = "admin_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_id: Mapped[int | None] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class IdempotencyKey(Base):
    """An ``Idempotency-Key`` a token used, the request it came with, and the answer given
    (null while the request runs); see idempotency.py."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("token_name", "key", name="uq_idempotency_keys_token_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    token_name: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[Any] = mapped_column(JSON, nullable=True)  # null while the request runs
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class PressContact(Base):
    """An entry of the press office's address book (office/contacts.py): a press contact a
    writer ticks in the release form, whose fields are copied into the release (a release
    keeps the contact as it was printed, whatever the book says later). Its fields are
    checked as a release's front matter checks a contact (releases/contact.py)."""

    __tablename__ = "press_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(50), default="")
    # None when the contact has none: NULLs never collide in the unique index below.
    email: Mapped[str | None] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    def fields(self) -> dict[str, str]:
        """The contact as a release stores it: the fields it has, none empty."""
        values = {"name": self.name, "role": self.role, "phone": self.phone}
        values["email"] = self.email or ""
        return {key: value for key, value in values.items() if value}


# One entry per mailbox, whatever the case of its address: two entries for one address
# would offer the writer two ways to print one person. Names may repeat (two people can
# share one, a desk may be listed per department).
Index("uq_press_contacts_email", func.lower(PressContact.email), unique=True)


class IdentitySetting(Base):
    """One value of the office's identity as set on the settings page (office/identity.py):
    ``key`` is the field's name (``organisation``, ``organisation_fr``, ``accent_colour``,
    ``logo``…), ``value`` its text (JSON for the logo and the press contacts). A field with
    no row has its environment value or its default."""

    __tablename__ = "identity_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


MAX_SUBJECT = 300  # characters of a counted file's path below public/ (longer: not counted)


class PublicStat(Base):
    """How many times one public file was fetched in one hour (UTC), by kind of fetch
    (reporting/counting.py): ``page`` (an HTML page, 200 or 304), ``feed200`` and
    ``feed304`` (a feed sent whole, or "not modified"), ``image`` and ``document`` (a
    stored file sent whole). ``subject`` is the file's path below ``public/``
    (``releases/SLUG.html``, ``feeds/en/releases.atom``, ``media/<sha256>/NAME.pdf``):
    a release's counts are those of its page and of its images' and documents' paths.
    Aggregates only: no row says who fetched anything."""

    __tablename__ = "release_stats"

    # In this order: the key serves a release's reads (its files' paths), the index on
    # the hour the dashboard's (every file, a range of days).
    subject: Mapped[str] = mapped_column(String(MAX_SUBJECT), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    hour: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True, index=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class StatBatch(Base):
    """A batch of counts taken from Redis and added to ``release_stats`` (its token is
    in the name of the Redis key it was renamed to): a batch found again after a crash
    between the database's commit and the key's deletion is deleted, not added twice."""

    __tablename__ = "release_stats_batches"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    flushed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
