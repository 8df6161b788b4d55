"""Several relays, in order of preference: a relay that fails is skipped for a while and the
batch goes on with the next one.

``DISTRIBUTOR_SMTP_URL`` may list several relays separated by commas. Messages go to the
first relay not in back-off. A relay *fails* when it refuses the connection, cannot be
reached, drops the connection, or answers 421 (closing); it is then skipped for
``DISTRIBUTOR_RELAY_BACKOFF_SECONDS`` (:class:`RelayHealth`), and every message it did not
take goes to the next relay at once. Nothing is lost or doubled on the way:

- a message the failed relay did not take — the connection failed before its data went
  out, or the relay answered it 421 — is sent to the next relay, in the same batch;
- a message whose data went out with no reply (the connection cut mid-message) may be on
  the failed relay: it is *not* sent elsewhere, but recorded deferred and in doubt, exactly
  as with one relay, and reconciled before it is sent again (:mod:`distributor.mail.reconcile`,
  with one Postfix log per relay);
- when every relay is in back-off, the messages left are deferred (code 0, the reason of
  each relay in the ledger), as when the one relay is down.

Within one batch a relay that failed is not tried again, so a batch ends even when every
relay keeps failing. A relay that refuses one recipient (4xx, 5xx but 421) has not failed:
that refusal is the message's outcome.
"""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from distributor.mail.transport import Outgoing, SendResult, SMTPTransport, _Closing

log = logging.getLogger(__name__)


class RelayHealth(Protocol):
    """Which relays are in back-off, and why."""

    def down(self, name: str) -> str | None:
        """Why relay ``name`` (``host:port``) is in back-off now, or None when it may be
        used."""
        ...

    def mark_down(self, name: str, seconds: float, reason: str) -> None:
        """Skip relay ``name`` for ``seconds``; ``reason`` is what it did."""
        ...


class LocalRelayHealth:
    """The back-offs this process has seen (a monotonic clock): each worker process finds a
    dead relay on its own, at the cost of one failed connection per back-off."""

    def __init__(self) -> None:
        self._until: dict[str, tuple[float, str]] = {}

    def down(self, name: str) -> str | None:
        until, reason = self._until.get(name, (0.0, ""))
        if time.monotonic() < until:
            return reason
        self._until.pop(name, None)
        return None

    def mark_down(self, name: str, seconds: float, reason: str) -> None:
        self._until[name] = (time.monotonic() + seconds, reason)

    def clear(self) -> None:
        """Forget every back-off (tests)."""
        self._until.clear()


#: This process's record, shared by every transport it opens (kept between batches).
PROCESS_HEALTH = LocalRelayHealth()


class _Feed:
    """What one relay is given: the items a failed relay gave back first, then the
    source's, until ``cut`` (the relay failed)."""

    def __init__(self, again: collections.deque[Outgoing], source: Iterator[Outgoing]) -> None:
        self.again, self.source, self.cut = again, source, False

    def __iter__(self) -> Iterator[Outgoing]:
        while not self.cut:
            if self.again:
                yield self.again.popleft()
            elif (item := next(self.source, None)) is not None:
                yield item
            else:
                return


class FailoverTransport(_Closing):
    """Sends through the first of ``relays`` not in back-off, going on with the next when
    it fails (see the module docstring). ``backoff`` is how long a failed relay is skipped;
    ``health`` the record of back-offs (this process's by default)."""

    def __init__(
        self,
        relays: Sequence[SMTPTransport],
        backoff: float,
        health: RelayHealth | None = None,
    ) -> None:
        self.relays = list(relays)
        self.backoff = backoff
        self.health = health if health is not None else PROCESS_HEALTH

    def send(self, mail_from: str, rcpt: str, message: bytes) -> SendResult:
        """Send one message through the first relay that takes it; see :meth:`send_stream`."""
        ((_item, result),) = self.send_stream([Outgoing(None, mail_from, rcpt, message)])
        return result

    def send_stream(self, items: Iterable[Outgoing]) -> Iterator[tuple[Outgoing, SendResult]]:
        """Each item with its result, as :meth:`SMTPTransport.send_stream` yields them; an
        item a failed relay did not take is sent again through the next relay and yielded
        once, with that relay's result."""
        source = iter(items)
        again: collections.deque[Outgoing] = collections.deque()  # not taken by a failed relay
        failed: set[str] = set()  # the relays that failed during this call: not tried again
        while True:
            relay = self._next_relay(failed)
            if relay is None:
                why = self._why_none()
                for item in itertools.chain(again, source):
                    yield item, SendResult(0, why)
                return
            feed = _Feed(again, source)
            for item, result in relay.send_stream(feed):
                if result.relay_failed:
                    if not feed.cut:
                        feed.cut = True  # the relay gets nothing more
                        failed.add(relay.name)
                        self._mark_down(relay, result.message)
                    if not result.uncertain:  # it did not take this one: the next relay
                        again.append(item)
                        continue
                yield item, result
            if not feed.cut:
                return

    def _next_relay(self, failed: set[str]) -> SMTPTransport | None:
        """The first relay neither in back-off nor failed during this call."""
        for relay in self.relays:
            if relay.name not in failed and self.health.down(relay.name) is None:
                return relay
        return None

    def _mark_down(self, relay: SMTPTransport, reason: str) -> None:
        self.health.mark_down(relay.name, self.backoff, reason)
        following = [r.name for r in self.relays if r is not relay]
        log.warning(
            "relay %s failed (%s); skipped for %.0f s, going on with %s",
            relay.name,
            reason,
            self.backoff,
            " or ".join(following),
        )

    def _why_none(self) -> str:
        """The deferral reason when no relay can be used: each relay and what it did."""
        reasons = [f"{r.name}: {self.health.down(r.name) or 'failed'}" for r in self.relays]
        return (
            f"no relay available (each is tried again after its back-off of "
            f"{self.backoff:.0f} s): " + "; ".join(reasons)
        )

    def close(self) -> None:
        """Close every relay's connection."""
        for relay in self.relays:
            relay.close()
