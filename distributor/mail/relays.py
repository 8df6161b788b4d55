"""Which transport the settings ask for: the Maildir outbox when no relay is set, one SMTP
relay, or several tried in order (:class:`~distributor.mail.failover.FailoverTransport`).
Here, above both, so that the failover transport can build on the SMTP one without the
two importing each other."""

from __future__ import annotations

from typing import Literal
from urllib.parse import unquote, urlsplit

from distributor.core.config import Settings
from distributor.core.errors import ConfigError
from distributor.mail.failover import FailoverTransport, RelayHealth
from distributor.mail.transport import MaildirTransport, SMTPTransport, Transport

_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}


def open_transport(settings: Settings, health: RelayHealth | None = None) -> Transport:
    """The transport ``settings`` asks for: SMTP when ``DISTRIBUTOR_SMTP_URL`` is set
    (``smtp://``, ``smtp+starttls://``, ``smtps://``, optional ``user:password@``), else the
    Maildir outbox in the data directory. Several URLs separated by commas make a
    :class:`~distributor.mail.failover.FailoverTransport` over those relays, in order, which
    skips a failed relay for ``DISTRIBUTOR_RELAY_BACKOFF_SECONDS`` as ``health`` records it
    (this process's record by default). Nothing is connected yet. Raises
    :class:`ConfigError` for a URL that cannot work."""
    urls = settings.smtp_urls
    if not urls:
        return MaildirTransport(settings.outbox_dir, data_dir=settings.data_dir)
    relays = [
        _relay(settings, url, f" (relay {n} of {len(urls)})" if len(urls) > 1 else "")
        for n, url in enumerate(urls, 1)
    ]
    if len(relays) == 1:
        return relays[0]
    return FailoverTransport(relays, settings.relay_backoff_seconds, health)


def _relay(settings: Settings, value: str, which: str) -> SMTPTransport:
    """The transport for one relay URL; ``which`` names it in errors among several."""
    url = urlsplit(value)
    if url.scheme not in _SCHEMES:
        raise ConfigError(
            f"DISTRIBUTOR_SMTP_URL{which}: unknown scheme "
            f"{url.scheme + '://' if url.scheme else '(none)'}"
            "; use smtp://host:port, smtp+starttls://user:password@host:587 or smtps://host:465"
        )
    try:
        port = url.port or _SCHEMES[url.scheme]
    except ValueError as exc:
        raise ConfigError(f"DISTRIBUTOR_SMTP_URL{which}: bad port ({exc})") from None
    if not url.hostname:
        raise ConfigError(f"DISTRIBUTOR_SMTP_URL{which}: no host name")
    security: Literal["plain", "starttls", "tls"] = (
        "starttls" if url.scheme == "smtp+starttls" else "tls" if url.scheme == "smtps" else "plain"
    )
    return SMTPTransport(
        url.hostname,
        port,
        security=security,
        username=unquote(url.username) if url.username is not None else None,
        password=unquote(url.password) if url.password is not None else None,
        timeout=settings.smtp_timeout,
    )
