"""What keeps the public forms safe: CSRF tokens and per-IP rate limits.

CSRF is a signed double submit: the same signed random value in a cookie and in the form;
a POST whose two copies differ, are unsigned or older than ``CSRF_MAX_AGE`` is refused.
Rate limits count requests per client IP in fixed windows in Redis, so they hold across
every web process.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import redis
from itsdangerous import BadSignature

from distributor.core.broker import broker_url, redis_client
from distributor.core.config import Settings
from distributor.core.tokens import Purpose, signer

CSRF_COOKIE = "distributor_csrf"
CSRF_MAX_AGE = 2 * 3600


def new_csrf_token(settings: Settings) -> str:
    """A fresh signed CSRF value, for both the cookie and the form's hidden field."""
    return signer(settings, Purpose.CSRF).sign(secrets.token_urlsafe(16)).decode("ascii")


def csrf_ok(settings: Settings, cookie: str | None, form_value: str | None) -> bool:
    """True when the form carries the cookie's value and that value is ours and fresh."""
    if not cookie or not form_value or not secrets.compare_digest(cookie, form_value):
        return False
    try:
        signer(settings, Purpose.CSRF).unsign(form_value, max_age=CSRF_MAX_AGE)
    except BadSignature:
        return False
    return True


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on, and if not, in how many seconds it may."""

    allowed: bool
    retry_after: int


class RateLimiter:
    """At most ``settings.rate_limit_requests`` per IP per window, counted in Redis."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: redis.Redis | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_client(broker_url(self._settings))
        return self._client

    def hit(self, bucket: str, ip: str) -> Verdict:
        """Count one request of ``ip`` against ``bucket``. When Redis cannot be reached the
        request is allowed (the form must not go down with the broker)."""
        window = self._settings.rate_limit_window_seconds
        now = int(time.time())
        start = now - now % window
        key = f"distributor:ratelimit:{bucket}:{ip}:{start}"
        try:
            pipe = self._redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, window + 5)
            count = int(pipe.execute()[0])
        except redis.RedisError:
            return Verdict(True, 0)
        if count > self._settings.rate_limit_requests:
            return Verdict(False, max(1, start + window - now))
        return Verdict(True, 0)
