"""Logging set-up shared by the CLI and the workers."""

from __future__ import annotations

import logging
import os
import re
from typing import Final
from urllib.parse import quote, unquote, urlsplit

# The password of a URL (scheme://user:password@host), and API tokens (apitokens.PREFIX).
# Found wherever it is, so every URL of a list (DISTRIBUTOR_SMTP_URL's relays) is covered.
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*@")
# Between two URLs of a list: a comma (and spaces) before the next scheme.
_URL_LIST = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_API_TOKEN = re.compile(r"dst_[A-Za-z0-9_-]{16,}")
# The paths of a subscriber's personal links (urls.py): whoever has one acts for the
# subscriber, so their tokens are masked in logs, and their pages are never cached.
PERSONAL_LINK_PATHS: Final = ("unsubscribe", "preferences", "confirm")
# The token after such a path in any case, after any run of slashes, backslashes and dot
# segments (spellings that still reach the page, or that a reader could retype into one).
_PERSONAL_LINK = re.compile(
    rf"(?i)([/\\](?:{'|'.join(PERSONAL_LINK_PATHS)})(?:[/\\]+\.{{1,2}}(?=[/\\]))*[/\\]+)"
    r"[^/\\\s?#\"']+"
)
_WORDS = re.compile(r"([\s\"'<>]+)")  # what separates the URLs and paths of a log line
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_QUOTE_SAFE = "/?#[]@!$&()*+,;=:-._~"  # as a URL writes them; "%" and the rest escaped
_URL_SETTINGS = ("DISTRIBUTOR_SMTP_URL", "DISTRIBUTOR_DATABASE_URL", "DISTRIBUTOR_BROKER_URL")
MASK = "***"


def secrets_from_environment(environ: dict[str, str] | None = None) -> list[str]:
    """The secret values of the configuration: the signing keys and the passwords of the
    SMTP, database and broker URLs (as written and decoded; every relay's of a list of SMTP
    URLs), longest first."""
    env = dict(os.environ if environ is None else environ)
    found = set(env.get("DISTRIBUTOR_SECRET_KEY", "").split())
    for name in _URL_SETTINGS:
        for url in split_url_list(env.get(name, "")):
            try:
                password = urlsplit(url).password
            except ValueError:
                continue
            if password:
                found |= {password, unquote(password)}
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def split_url_list(value: str) -> list[str]:
    """The URLs of ``value``: one URL, or several separated by commas. A comma splits only
    where a scheme (``smtp://``…) follows it, so a comma in a password does not."""
    return [url.strip() for url in _URL_LIST.split(value) if url.strip()]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with URL passwords, API tokens, the tokens of personal links and each of
    ``secrets`` masked."""
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _API_TOKEN.sub(f"dst_{MASK}", text)
    if "%" in text:
        text = "".join(_decoded_link(word) for word in _WORDS.split(text))
    text = _PERSONAL_LINK.sub(rf"\1{MASK}", text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _decoded_link(word: str) -> str:
    """``word`` (a percent-encoded path or URL, as an access log shows the request line)
    decoded the way a server routes it, masked and encoded again if it then holds a
    personal link (``/preferences%2fTOKEN``, ``/pr%65ferences/TOKEN``); else unchanged.
    Decoded up to three times (a proxy may decode once more), and never written decoded: a
    ``%0a`` must not become a line break in the log."""
    if not _ENCODED.search(word):
        return word
    decoded = word
    for _ in range(3):
        once = unquote(decoded)
        if once == decoded:
            break
        decoded = once
    if not _PERSONAL_LINK.search(decoded):
        return word
    return quote(_PERSONAL_LINK.sub(rf"\1{MASK}", decoded), safe=_QUOTE_SAFE)


class RedactingFormatter(logging.Formatter):
    """A formatter whose output (message, arguments and traceback) never shows a secret:
    with a format of its own, or wrapping another library's formatter (uvicorn's, Celery's)
    to keep that library's format."""

    def __init__(self, fmt: str | logging.Formatter, secrets: list[str]) -> None:
        super().__init__(fmt if isinstance(fmt, str) else None)
        self.inner = None if isinstance(fmt, str) else fmt
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record) if self.inner else super().format(record)
        return redact(text, self.secrets)


def redact_handlers(*loggers: logging.Logger | str) -> None:
    """Mask secrets in what the handlers of ``loggers`` write, keeping their own format: for
    the loggers uvicorn (the access log: personal links are in its paths) and Celery set up
    themselves. Safe to call again."""
    secrets = secrets_from_environment()
    for logger in loggers:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        for handler in logger.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                inner = handler.formatter or logging.Formatter()
                handler.setFormatter(RedactingFormatter(inner, secrets))


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with times, at ``level`` (a level name: ``Settings.log_level``).
    Secrets (the configuration's keys and passwords, any URL password, API tokens) are
    masked in every line, tracebacks included."""
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s", secrets_from_environment()
        )
    )
    logging.basicConfig(
        level=level.upper(),
        handlers=[handler],
    )
