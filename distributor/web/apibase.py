"""What every router of the admin API (under ``/api``) shares: the JSON error shape, the
bearer-token check for a scope, and the handlers that answer errors as JSON.

Every error is ``{"error": message, "field": name or null}``: 400 a body that cannot be
read (not JSON, not UTF-8), 401 (with ``WWW-Authenticate: Bearer``) no token or an unknown
or revoked one, 403 a token without the scope, 404 no such thing, 409 a state that refuses
the action, 413 a body too large, 415 a body type not accepted, 422 a value refused (the
field names it), 503 a service down. A domain error answers the status of the one table
(``web/errors.py``) and, for an InputError, the field it carries.
"""

# No ``from __future__ import annotations``: FastAPI reads the dependency's annotations.

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from distributor.core import idempotency
from distributor.core.apitokens import authenticate, caller
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import DistributorError, InputError, Unauthorized
from distributor.core.roles import Caller
from distributor.web.deps import AppSettings
from distributor.web.errors import DEFAULT_STATUS, status_of

PREFIX = "/api"
MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # NUL cannot even reach PostgreSQL
Printable = Annotated[str, Field(pattern=PRINTABLE)]


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias=idempotency.HEADER,
        max_length=200,
        description="Any unique string (a UUID): a repeat with the same key and request "
        "is answered as the first was, and acts once",
    ),
]


def replayed(replay: idempotency.Replay) -> JSONResponse:
    """The answer recorded for an idempotency key, sent again (``Idempotent-Replayed``)."""
    return JSONResponse(replay.body, replay.status, headers={"Idempotent-Replayed": "true"})


class ErrorOut(BaseModel):
    """Every error the API answers: a message, and the field it is about (or null)."""

    error: str
    field: str | None


class Refused(Exception):
    """An API answer decided by a router: a status, a message and the field."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.field = status, field


def error_responses(scope: str) -> dict[int | str, dict[str, Any]]:
    """The errors every route of a router needing ``scope`` may answer, for OpenAPI."""
    return {
        code: {"model": ErrorOut, "description": text}
        for code, text in [
            (401, "No token, or an unknown or revoked one"),
            (403, f"The token lacks the {scope} scope"),
            (422, "A value was refused; `field` names it"),
        ]
    }


def not_found(what: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 404 for a route about one ``what``."""
    return {404: {"model": ErrorOut, "description": f"No such {what}"}}


def conflict(text: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI entry of a 409 whose reason is ``text``."""
    return {409: {"model": ErrorOut, "description": text}}


TOKEN_REQUIRED = "an Authorization: Bearer token is required"  # noqa: S105 - a message
_SCOPE_ATTRIBUTE = "__distributor_token_scope__"


def token_scope(dependency: object) -> str | None:
    """The scope a ``token_dependency`` checks, or None for any other callable."""
    scope = getattr(dependency, _SCOPE_ATTRIBUTE, None)
    return scope if isinstance(scope, str) else None


def token_holder(settings: Settings, token: str | None, scope: str) -> Caller:
    """Who calls with ``token`` (a bearer token as presented, or None) once it is known
    live and holds ``scope``; Unauthorized or Forbidden otherwise."""
    if not token:
        raise Unauthorized(TOKEN_REQUIRED)
    with session_scope(settings) as session:
        return caller(authenticate(session, token, scope))


def token_dependency(scope: str) -> Callable[..., Caller]:
    """A FastAPI dependency answering who calls with the presented bearer token once it is
    known live and holds ``scope`` (401/403 otherwise), in the database of the app's
    Settings. Put it on the router, so no route can forget it; each route then names what
    it needs with ``requiring`` (FastAPI runs the check once per request)."""
    bearer = HTTPBearer(
        auto_error=False,
        description=f"A token from `distributor tokens create NAME --scope {scope}`",
        scheme_name=f"{scope}Token",
    )

    def token_caller(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
        settings: AppSettings,
    ) -> Caller:
        return token_holder(settings, credentials.credentials if credentials else None, scope)

    setattr(token_caller, _SCOPE_ATTRIBUTE, scope)  # bodies.BodyGuard checks it before reading
    return token_caller


def token_of(who: Caller) -> str:
    """The name of the token ``who`` calls with (what idempotency keys belong to)."""
    if who.token is None:
        raise Unauthorized(TOKEN_REQUIRED)
    return who.token


# ---- errors: JSON for /api, whatever the app did before everywhere else ----------------

Handler = Callable[[Request, Any], Awaitable[Response]]


def in_api(path: str) -> bool:
    """Whether ``path`` is the API's (its errors are JSON ``{"error", "field"}``)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def error(status: int, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    """The JSON error answer (with ``WWW-Authenticate`` on a 401)."""
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"error": message, "field": field}, status, headers=headers or None)


def _domain_error(exc: Exception) -> JSONResponse | None:
    if isinstance(exc, Refused):
        return error(exc.status, str(exc), exc.field)
    if not isinstance(exc, DistributorError) or status_of(exc) == DEFAULT_STATUS:
        return None  # not meant for users: a server error, logged
    field = exc.field if isinstance(exc, InputError) else None
    return error(status_of(exc), str(exc), field)


def refusal(errors: Sequence[Any]) -> Refused:
    """What to answer a request pydantic refused: 400 for a body that is not JSON, else
    422 naming every value refused; ``field`` is the first one's path without its leading
    "body"/"query"/"path" (``images.0.src``)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return Refused(400, "the body is not valid JSON")
    messages, fields = [], []
    for e in errors:
        loc = [str(part) for part in e.get("loc", ())][1:]
        text = e.get("msg", "invalid")
        if e.get("type") == "string_pattern_mismatch":
            text = "must not contain line breaks or control characters"
        messages.append(f"{'.'.join(loc)}: {text}" if loc else text)
        fields.append(".".join(loc) if loc else None)
    return Refused(422, "; ".join(messages) or "invalid request", fields[0] if fields else None)


def add_error_handlers(app: FastAPI) -> None:
    """Answer errors under ``/api`` as JSON ``{"error", "field"}`` (see the module
    docstring for the statuses); elsewhere keep the handler the app had before (call this
    after the app's own handlers are added), else FastAPI's default."""
    before = dict(app.exception_handlers)

    def chained(
        cls: type[Exception], api_answer: Callable[[Any], Response | None], default: Handler | None
    ) -> None:
        previous: Handler | None = before.get(cls, default)

        async def handle(request: Request, exc: Exception) -> Response:
            answer = api_answer(exc) if in_api(request.scope.get("path", "")) else None
            if answer is not None:
                return answer
            if previous is None:
                raise exc  # as if unhandled: a server error, logged
            return await previous(request, exc)

        app.add_exception_handler(cls, handle)

    chained(DistributorError, _domain_error, None)
    chained(Refused, _domain_error, None)
    chained(
        RequestValidationError,
        lambda exc: _domain_error(refusal(list(exc.errors()))),
        request_validation_exception_handler,
    )
    chained(
        StarletteHTTPException,
        lambda exc: error(exc.status_code, str(exc.detail), None, **(exc.headers or {})),
        http_exception_handler,
    )
