"""Logging set-up shared by the CLI and the workers, and the masking of secrets in logs.

The secrets to mask are passed in (``config.configured_secrets(settings)``): this module
never reads the configuration itself."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Final
from urllib.parse import quote, unquote

# The password of a URL (scheme://user:password@host), and API tokens (apitokens.PREFIX).
# Found wherever it is, so every URL of a list (DISTRIBUTOR_SMTP_URL's relays) is covered.
_USERINFO = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]*@")
# Between two URLs of a list: a comma (and spaces) before the next scheme.
_URL_LIST = re.compile(r"\s*,\s*(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_API_TOKEN = re.compile(r"dst_[A-Za-z0-9_-]{16,}")
# The paths of a subscriber's personal links (urls.py): whoever has one acts for the
# subscriber, so their tokens are masked in logs, and their pages are never cached.
PERSONAL_LINK_PATHS: Final = ("unsubscribe", "preferences", "confirm", "preview", "advance")
# The token after such a path in any case, after any run of slashes, backslashes and dot
# segments (spellings that still reach the page, or that a reader could retype into one).
_PERSONAL_LINK = re.compile(
    rf"(?i)([/\\](?:{'|'.join(PERSONAL_LINK_PATHS)})(?:[/\\]+\.{{1,2}}(?=[/\\]))*[/\\]+)"
    r"[^/\\\s?#\"']+"
)
_WORDS = re.compile(r"([\s\"'<>]+)")  # what separates the URLs and paths of a log line
_ENCODED = re.compile(r"%[0-9A-Fa-f]{2}")
_QUOTE_SAFE = "/?#[]@!$&()*+,;=:-._~"  # as a URL writes them; "%" and the rest escaped
MASK = "***"


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


# The secrets given to setup_logging in this process: what redact_handlers masks when it is
# not given any (the web app's factory wraps uvicorn's handlers without Settings at hand).
_process_secrets: list[str] = []


def redact_handlers(*loggers: logging.Logger | str, secrets: Sequence[str] | None = None) -> None:
    """Mask secrets in what the handlers of ``loggers`` write, keeping their own format: for
    the loggers uvicorn (the access log: personal links are in its paths) and Celery set up
    themselves. ``secrets``: the values to mask besides what ``redact`` finds by itself;
    by default, those given to ``setup_logging`` in this process. Safe to call again."""
    masked = list(_process_secrets if secrets is None else secrets)
    for logger in loggers:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        for handler in logger.handlers:
            if not isinstance(handler.formatter, RedactingFormatter):
                inner = handler.formatter or logging.Formatter()
                handler.setFormatter(RedactingFormatter(inner, masked))


def setup_logging(level: str = "INFO", secrets: Sequence[str] = ()) -> None:
    """Log to stderr with times, at ``level`` (a level name: ``Settings.log_level``).
    Secrets — each of ``secrets`` (``config.configured_secrets``), any URL password, API
    tokens, the tokens of personal links — are masked in every line, tracebacks included."""
    _process_secrets[:] = secrets
    handler = logging.StreamHandler()
    handler.setFormatter(
        RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", list(secrets))
    )
    logging.basicConfig(
        level=level.upper(),
        handlers=[handler],
    )
