"""The one error tree of distributor. Domain code raises these; only ``web/`` and ``cli/``
turn them into HTTP statuses (one table: ``web/errors.py``) or exit codes.

    DistributorError                 base of everything raised on purpose
    ├── ConfigError                  the configuration cannot work (bad URL, missing key file)
    ├── InputError                   user input rejected; says what, and names its field
    │   ├── ReleaseInputError        a release file or payload (front matter, field, body)
    │   ├── SubscriberInputError     an address, name, language or topic list
    │   └── ImportRejected           a CSV import with bad rows (carries every bad row)
    ├── NotFound                     a release, topic or subscriber that does not exist
    ├── Conflict                     the action does not fit the current state
    │   └── StaleEdit                a draft saved by someone else since it was opened
    ├── Unauthorized                 no credentials, or unknown or revoked ones (API token)
    │   └── TooManyAttempts          logins refused for a while after failures (throttled)
    ├── Forbidden                    valid credentials whose scope or role lacks the action
    └── ServiceError                 a service we depend on failed (broker, SMTP)
"""

from __future__ import annotations

from dataclasses import dataclass


class DistributorError(Exception):
    """Base of every error distributor raises on purpose."""


class ConfigError(DistributorError):
    """The configuration cannot work."""


class InputError(DistributorError):
    """User input was rejected; the message says what and where, and ``field`` names the
    field (a front matter or JSON field, a form field, a header) when it is about one, for
    faces that answer it as data (the API's ``{"error", "field"}``); None when it is not."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReleaseInputError(InputError):
    """A release (file or payload) was rejected; nothing was stored."""


class SubscriberInputError(InputError):
    """A subscriber's address, name, language or topics were rejected."""


@dataclass(frozen=True)
class RowError:
    """One rejected row of an import: its line number in the file, and why."""

    line: int
    reason: str
    row: dict[str, str]


class ImportRejected(InputError):
    """A CSV import had bad rows; ``rows`` lists every one (nothing was imported)."""

    def __init__(self, source: str, rows: list[RowError]) -> None:
        self.source = source
        self.rows = rows
        lines = "\n".join(f"  {source}:{r.line}: {r.reason}" for r in rows)
        super().__init__(f"{source}: {len(rows)} bad row(s), nothing imported:\n{lines}")


class NotFound(DistributorError):
    """The thing asked for does not exist."""


class Conflict(DistributorError):
    """The action does not fit the current state (e.g. publishing a withdrawn release)."""


class StaleEdit(Conflict):
    """A draft was saved by someone else since this edit began: nothing was overwritten."""


class Unauthorized(DistributorError):
    """No credentials were given, or they are unknown or revoked (HTTP 401)."""


class TooManyAttempts(Unauthorized):
    """Too many failed logins for this account or from this address: none is tried for
    ``retry_after`` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(DistributorError):
    """The credentials are valid but their scope or role lacks the action (HTTP 403)."""


class ServiceError(DistributorError):
    """A service we depend on (broker, SMTP relay, database) failed."""
