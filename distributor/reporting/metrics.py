"""Prometheus metrics of the whole service, read from the shared record at scrape time.

The workers are other processes on other hosts: counters kept in this process would see
none of their work. So each scrape asks the database (aggregate queries: three, and one
per release published in the last 24 h; nothing per row in Python) and the broker (one
``LLEN``). With 100,000 ledger rows a scrape took ~0.16 s on PostgreSQL, ~0.4 s on SQLite.
The values are the state of the record, so they are gauges, not counters; see each one.

Served by the web app at ``/metrics`` to this machine only (:func:`from_this_machine`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from ipaddress import IPv6Address, ip_address
from typing import Any, Final

import redis
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector, CollectorRegistry
from sqlalchemy import ColumnElement, bindparam, case, extract, func, select
from sqlalchemy.orm import Session

from distributor.core.broker import broker_url
from distributor.core.config import Settings
from distributor.core.db import is_sqlite, session_scope
from distributor.core.errors import DistributorError
from distributor.core.models import (
    Delivery,
    DeliveryStatus,
    Release,
    Subscriber,
    SubscriberStatus,
    UTCDateTime,
    utcnow,
)
from distributor.core.queue import QUEUE
from distributor.outbox.retention import folded_totals

# The classic text format: every Prometheus reads it, and our names need nothing newer.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_WINDOW: Final = timedelta(hours=24)
LATENCY_BUCKETS: Final = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)
BROKER_TIMEOUT: Final = 1.0  # seconds; a broker slower than this is left out of the scrape
BOUNCE_KINDS: Final = ("hard", "soft")
UNIX_EPOCH_JULIAN_DAY: Final = 2440587.5  # 1970-01-01T00:00Z as SQLite's julianday()
# Headers a reverse proxy adds to every request it passes on (nginx, Caddy, Traefik...).
PROXY_HEADERS: Final = ("forwarded", "x-forwarded-for", "x-real-ip")


class RecordCollector(Collector):
    """Collects the metrics of the ledger, the subscribers and the queue, at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        """The metric families now. A database error propagates (the scrape fails: the
        service is down); an unreachable broker only leaves out the queue depth."""
        with session_scope(self._settings) as session:
            families = [
                messages(session),
                bounces(session),
                send_latency(session),
                subscribers(session, self._settings.languages),
            ]
        yield from families
        depth = queue_depth(self._settings)
        if depth is not None:
            yield GaugeMetricFamily(
                "distributor_queue_depth", "Tasks waiting in the broker's queue.", value=depth
            )


def messages(session: Session) -> GaugeMetricFamily:
    """Ledger rows per status, every status present (0 when none)."""
    # A gauge under the name the dashboards ask for: rows move between statuses (pending
    # and deferred go down as well as up) and erasing a person deletes their rows, so even
    # "sent" may fall. As a counter, each fall would read as a reset, and rate() would
    # see the whole ledger sent again. Use delta() or the value itself, not rate().
    query = select(Delivery.status, func.count()).group_by(Delivery.status)
    found = {str(status): int(n) for status, n in session.execute(query)}
    for status, n in folded_totals(session)[0].items():  # rows folded after retention
        found[status] = found.get(status, 0) + n
    family = GaugeMetricFamily(
        "distributor_messages_total",
        "Messages in the delivery ledger, by status (a gauge: rows change status).",
        labels=["status"],
    )
    for status in DeliveryStatus:
        family.add_metric([status.value], found.get(status.value, 0))
    return family


def bounces(session: Session) -> GaugeMetricFamily:
    """Ledger rows a delivery status notification came back for, by kind (hard, soft)."""
    # A gauge for the same reason as messages: erasure deletes rows.
    query = (
        select(Delivery.bounce, func.count())
        .where(Delivery.bounce.is_not(None))
        .group_by(Delivery.bounce)
    )
    found = {str(kind): int(n) for kind, n in session.execute(query)}
    for kind, n in folded_totals(session)[1].items():  # rows folded after retention
        found[kind] = found.get(kind, 0) + n
    family = GaugeMetricFamily(
        "distributor_bounces_total",
        "Messages reported bounced, by kind (a gauge: erasure removes rows).",
        labels=["kind"],
    )
    for kind in BOUNCE_KINDS:
        family.add_metric([kind], found.get(kind, 0))
    return family


def _seconds_after(session: Session, start: datetime) -> ColumnElement[Any]:
    """SQL for the seconds from ``start`` to a row's ``sent_at``."""
    if is_sqlite(session.get_bind()):  # times are text there; julianday() reads them
        day = start.timestamp() / 86400 + UNIX_EPOCH_JULIAN_DAY
        return (func.julianday(Delivery.sent_at) - day) * 86400.0
    return extract("epoch", Delivery.sent_at - bindparam("start", start, UTCDateTime))


def _release_latency(
    session: Session, release_id: int, published: datetime
) -> tuple[int, float, list[int]]:
    """For one release's sent messages: how many, their seconds after ``published`` added
    up, and how many were sent within each of ``LATENCY_BUCKETS``."""
    # Each bucket compares sent_at with a constant: 4x faster on SQLite than comparing a
    # latency computed per row (which SQLite recomputes in every CASE).
    within = [
        func.coalesce(
            func.sum(case((Delivery.sent_at <= published + timedelta(seconds=le), 1), else_=0)), 0
        )
        for le in LATENCY_BUCKETS
    ]
    seconds = func.coalesce(func.sum(_seconds_after(session, published)), 0.0)
    query = select(func.count(), seconds, *within).where(
        Delivery.release_id == release_id, Delivery.status == DeliveryStatus.SENT
    )
    n, total, *counts = session.execute(query).one()
    return int(n), float(total), [int(c) for c in counts]


def send_latency(session: Session) -> HistogramMetricFamily:
    """Seconds from a release's publication to each of its messages' ``sent_at``, for the
    messages sent of the releases published in the last ``LATENCY_WINDOW`` (24 h).

    Windowed by publication, not by sending time: that keeps the scan to the recent
    releases' rows, found through the (release_id, status) index, whatever the size of
    the ledger (there is no index on ``sent_at``), with one query per recent release. A
    release's messages leave the window together, 24 h after its publication; one still
    unsent by then (retried for up to ``DISTRIBUTOR_GIVE_UP_AFTER_SECONDS``) is never
    counted here, but is in the pending or deferred gauge.
    """
    # A snapshot of a sliding window, not a cumulative histogram: read it directly, e.g.
    # histogram_quantile(0.95, distributor_send_latency_seconds_bucket), not through rate().
    recent = select(Release.id, Release.published_at).where(
        Release.published_at >= utcnow() - LATENCY_WINDOW
    )
    count, seconds, cumulative = 0, 0.0, [0] * len(LATENCY_BUCKETS)
    for release_id, published in session.execute(recent).all():
        assert published is not None  # excluded by the WHERE
        n, total, within = _release_latency(session, release_id, published)
        count, seconds = count + n, seconds + total
        cumulative = [a + b for a, b in zip(cumulative, within, strict=True)]
    buckets = [
        (str(float(le)), float(n)) for le, n in zip(LATENCY_BUCKETS, cumulative, strict=True)
    ]
    return HistogramMetricFamily(
        "distributor_send_latency_seconds",
        "Seconds from publication to sending, messages of releases published in the last 24 h.",
        buckets=[*buckets, ("+Inf", float(count))],
        sum_value=seconds,
    )


def subscribers(session: Session, languages: Sequence[str]) -> GaugeMetricFamily:
    """Subscribers per status and language: every status for every configured language
    (0 when none), and any other language found."""
    query = select(Subscriber.status, Subscriber.language, func.count()).group_by(
        Subscriber.status, Subscriber.language
    )
    found = {(str(s), str(lang)): int(n) for s, lang, n in session.execute(query)}
    for known in SubscriberStatus:
        for lang in languages:
            found.setdefault((known.value, lang), 0)
    family = GaugeMetricFamily(
        "distributor_subscribers",
        "Subscribers, by status and language.",
        labels=["status", "language"],
    )
    for (status, lang), n in sorted(found.items()):
        family.add_metric([status, lang], n)
    return family


def queue_depth(settings: Settings) -> int | None:
    """Tasks waiting in the broker's queue, or None when the broker cannot be reached
    within ``BROKER_TIMEOUT``. Without ``DISTRIBUTOR_BROKER_URL``, the embedded Redis is
    started if it is not running, as for every other user of the broker."""
    try:
        url = broker_url(settings)
        if url.startswith("redis+socket://"):
            client = redis.Redis(
                unix_socket_path=url.removeprefix("redis+socket://"),
                socket_timeout=BROKER_TIMEOUT,
                socket_connect_timeout=BROKER_TIMEOUT,
            )
        else:
            client = redis.Redis.from_url(
                url, socket_timeout=BROKER_TIMEOUT, socket_connect_timeout=BROKER_TIMEOUT
            )
        try:
            return int(client.llen(QUEUE))
        finally:
            client.close()
    except (redis.RedisError, OSError, DistributorError, subprocess.SubprocessError):
        return None


def registry(settings: Settings) -> CollectorRegistry:
    """A registry of its own (not the library's global one, so that several apps can live
    in one process) holding a :class:`RecordCollector` for ``settings``."""
    reg = CollectorRegistry(auto_describe=False)  # registering must not query anything
    reg.register(RecordCollector(settings))
    return reg


def exposition(reg: CollectorRegistry) -> bytes:
    """The registry's metrics now, in the text format (``CONTENT_TYPE``)."""
    return generate_latest(reg)


def from_this_machine(client_host: str | None, headers: Mapping[str, str]) -> bool:
    """True when a request comes straight from this machine: its peer address is loopback
    (127.0.0.0/8, ::1, or ::ffff:127.x.x.x) and it carries no header a reverse proxy adds.

    The headers matter because of proxies. Behind one on this machine, without
    ``--proxy-headers``, every outside client's request arrives from loopback; with
    ``--proxy-headers --forwarded-allow-ips "*"`` (docker-compose.yml), uvicorn takes
    the first X-Forwarded-For entry, which the client writes itself (nginx appends the
    real address after it). Every request a proxy passed on carries one of
    ``PROXY_HEADERS``; a scraper on this machine sends none. ``headers`` must look names
    up without regard to case (Starlette's ``Headers`` does).
    """
    if any(name in headers for name in PROXY_HEADERS):
        return False
    try:
        address = ip_address(client_host or "")
    except ValueError:  # no address at all, or a name such as TestClient's "testclient"
        return False
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback
