"""VERP: the envelope sender of each release email names its ledger row, so a bounce that
comes back to that address says which delivery failed — whatever the remote server put
(or failed to put) in its report.

The address is ``bounces+d{delivery_id}-{mac}@{sender domain}``: ``mac`` is the first 16
hex digits of an HMAC-SHA256 of the delivery id under ``DISTRIBUTOR_SECRET_KEY`` (its own
purpose string), so nobody can forge a bounce for someone else's delivery. Only letters,
digits and '-' appear in the local part, all lower case, since some servers fold its case.
The first key signs and every key verifies, as for the links in emails (key rotation).
"""

from __future__ import annotations

import hmac
import re
from functools import lru_cache
from hashlib import sha256

from distributor.core.config import Settings

LOCAL_PART = "bounces"
_PURPOSE = b"distributor.bounce:"
_MAC_DIGITS = 16
_TOKEN = re.compile(rf"d([0-9]{{1,18}})-([0-9a-f]{{{_MAC_DIGITS}}})")


@lru_cache(maxsize=8)
def _keyed(keys: tuple[str, ...]) -> tuple[hmac.HMAC, ...]:
    # One HMAC per key with the purpose already absorbed; each token copies it (~1 µs).
    return tuple(hmac.new(key.encode(), _PURPOSE, sha256) for key in keys)


def _mac(base: hmac.HMAC, delivery_id: int) -> str:
    mac = base.copy()
    mac.update(str(delivery_id).encode("ascii"))
    return mac.hexdigest()[:_MAC_DIGITS]


class BounceAddresses:
    """The VERP addresses of one installation (its sender domain and secret keys)."""

    def __init__(self, settings: Settings) -> None:
        self._macs = _keyed(tuple(settings.effective_secret_key.split()))
        self._domain = settings.sender_domain

    def token(self, delivery_id: int) -> str:
        """The token naming ``delivery_id``, signed with the first key: ``d42-<16 hex>``."""
        return f"d{delivery_id}-{_mac(self._macs[0], delivery_id)}"

    def address(self, delivery_id: int) -> str:
        """The envelope sender for ``delivery_id``: ``bounces+TOKEN@sender-domain``."""
        return f"{LOCAL_PART}+{self.token(delivery_id)}@{self._domain}"

    def read(self, address: str) -> int | None:
        """The delivery id named by a VERP ``address`` (or bare token), or None when it is
        not one of ours or its signature does not verify under any key. The domain is not
        checked: a relay may rewrite it, and the signature is what proves the address."""
        local = address.strip().strip("<>").rpartition("@")[0] or address.strip()
        local = local.lower()
        prefix = LOCAL_PART + "+"
        if local.startswith(prefix):
            local = local[len(prefix) :]
        match = _TOKEN.fullmatch(local)
        if match is None:
            return None
        delivery_id, given = int(match.group(1)), match.group(2)
        for base in self._macs:
            if hmac.compare_digest(_mac(base, delivery_id), given):
                return delivery_id
        return None
