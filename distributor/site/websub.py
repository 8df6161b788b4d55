"""WebSub publisher: tell the hub which feeds changed (``hub.mode=publish``).

The hub then fetches those feeds and pushes them to its subscribers, so readers that use
WebSub see a release within seconds instead of at their next poll. One POST per site
regeneration, naming every changed live feed (``hub.url`` repeated, as hubs accept).
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Sequence
from urllib.parse import urlencode

from distributor.core.config import Settings
from distributor.core.errors import ServiceError

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 10.0


class HubUnavailable(ServiceError):
    """The hub could not be reached or did not accept the ping (worth retrying)."""


def ping_hub(settings: Settings, feed_urls: Sequence[str]) -> bool:
    """POST ``hub.mode=publish`` with ``feed_urls`` to ``DISTRIBUTOR_WEBSUB_HUB``.

    Returns False when no hub is configured or there is nothing to announce, True when the
    hub accepted (2xx). Raises HubUnavailable otherwise, for the caller to retry.
    """
    hub = settings.websub_hub
    if not hub or not feed_urls:
        return False
    body = urlencode([("hub.mode", "publish"), *(("hub.url", u) for u in feed_urls)]).encode()
    # The hub URL is an http(s) URL: Settings refuses any other scheme.
    request = urllib.request.Request(  # noqa: S310
        hub,
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "distributor"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise HubUnavailable(f"WebSub hub {hub} answered {exc.code} to the publish ping") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise HubUnavailable(f"WebSub hub {hub} unreachable: {exc}") from exc
    log.info("WebSub hub %s told about %d feed(s)", hub, len(feed_urls))
    return 200 <= status < 300
