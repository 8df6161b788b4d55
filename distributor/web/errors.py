"""The one table from the error tree (``core/errors.py``) to HTTP statuses, for every face
of the web app: the API (JSON ``{"error", "field"}``), the dashboard's pages and the public
pages answer a domain error with the status this table gives its class.

    InvalidToken     400  a link (confirm, preferences, unsubscribe) that is not ours
    InputError       422  a value refused (the error's ``field`` names it)
    Unauthorized     401  no credentials, or unknown or revoked ones
    TooManyAttempts  429  logins refused for a while after failures
    Forbidden        403  valid credentials whose scope or role lacks the action
    NotFound         404  no such thing
    Conflict         409  a state that refuses the action
    ServiceError     503  a service we depend on is down
    anything else    500  not meant for users (a ConfigError, a class the table lacks);
                          the API lets it through as a server error, logged

The command line keeps its own exit codes (``cli/commands.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from distributor.core.errors import (
    Conflict,
    DistributorError,
    Forbidden,
    InputError,
    NotFound,
    ServiceError,
    TooManyAttempts,
    Unauthorized,
)
from distributor.core.tokens import InvalidToken

STATUS: Mapping[type[DistributorError], int] = {
    InvalidToken: 400,
    InputError: 422,
    Unauthorized: 401,
    TooManyAttempts: 429,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    ServiceError: 503,
}
DEFAULT_STATUS = 500


def status_of(exc: DistributorError) -> int:
    """The HTTP status for ``exc``: its nearest class in ``STATUS`` (a subclass takes its
    parent's unless it has its own line), else ``DEFAULT_STATUS``."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return DEFAULT_STATUS
