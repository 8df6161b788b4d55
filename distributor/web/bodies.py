"""Request bodies: what each route takes, how much, and from whom — settled before a byte
of the body is read.

``BodyGuard`` is an ASGI layer in front of FastAPI (behind ``PublicFiles``: the static GET
path never reaches it). For a request that carries a body, it finds the route FastAPI will
run (by path and method) and, in this order:

1. a declared ``Content-Length`` over the route's limit: 413 at once, nothing read;
2. a ``Content-Type`` the route does not take: 415;
3. on an API route, the bearer token, checked as the route's own dependency checks it:
   401 or 403 before the body is read (the dependency checks it again: one more indexed
   query, and no way for the two to disagree); on a route with a dependency marked by
   ``check_first`` (the dashboard's session), that check, and its answer;
4. a body sent without a length (chunked): read up to the limit, and 413 as soon as it is
   past it — the rest is never read, and the connection is closed; within the limit it is
   handed to the app as it came.

Errors under ``/api`` have the API's shape ``{"error", "field"}``; elsewhere a line of text.

A route's body comes from what FastAPI knows of it: a JSON model takes ``JSON_LIMIT`` of
``application/json``; form fields take ``FORM_LIMIT`` of a form (URL-encoded or multipart);
a file field takes multipart only; a route without a body parameter takes at most
``NO_BODY_LIMIT`` (unread). An endpoint that reads its body itself, or needs more, says so
with ``@takes(limit, *media_types)``.
"""

from __future__ import annotations

import email.message
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar, cast

import anyio.to_thread
from fastapi import Request, params
from fastapi.responses import PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distributor.core.config import Settings
from distributor.core.errors import Forbidden, Unauthorized
from distributor.web import apibase
from distributor.web.errors import status_of

JSON: Final = "application/json"
FORM: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
MARKDOWN: Final = "text/markdown"

JSON_LIMIT: Final = 64 * 1024  # a subscriber, a topic, a test send, a publish time
FORM_LIMIT: Final = 16 * 1024  # a public form, an admin form, an RFC 8058 one-click POST
NO_BODY_LIMIT: Final = 1024  # a route that reads no body
_ATTRIBUTE = "__distributor_body__"  # on an endpoint: its @takes
_CHECK_ATTRIBUTE = "__distributor_check_first__"  # on a dependency: its check_first

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
# Who may send a body, from the request's headers alone: None to go on, else the answer.
FirstCheck = Callable[[Request], Response | None]


def check_first(dependency: Callable[..., Any], check: FirstCheck) -> None:
    """Have ``BodyGuard`` run ``check`` (in a worker thread: it may query the database)
    before the body of any route depending on ``dependency`` is read — the session check
    of the dashboard, say, which the route would otherwise run after reading its form."""
    setattr(dependency, _CHECK_ATTRIBUTE, check)


@dataclass(frozen=True)
class Body:
    """What a route takes: at most ``limit`` bytes, of one of ``types`` (any type when
    empty); ``bare``: a body without a Content-Type too (the app makes of it what it can)."""

    limit: int
    types: frozenset[str] = frozenset()
    bare: bool = True
    too_large: str = ""  # what a 413 says, when the route has better words than the rule's

    def takes(self, content_type: str | None) -> bool:
        """Whether a body of ``content_type`` (the header's value, or None) is taken."""
        if not self.types:
            return True
        if not content_type:
            return self.bare
        message = email.message.Message()
        message["content-type"] = content_type
        return message.get_content_type() in self.types


NO_BODY: Final = Body(NO_BODY_LIMIT)
JSON_BODY: Final = Body(JSON_LIMIT, frozenset({JSON}), bare=False)
# RFC 8058 one-click senders post URL-encoded or multipart; one without a type must not be
# refused (the unsubscribe happens either way).
FORM_BODY: Final = Body(FORM_LIMIT, frozenset({FORM, MULTIPART}))
FILE_BODY: Final = Body(FORM_LIMIT, frozenset({MULTIPART}), bare=False)


def takes(limit: int, *types: str, too_large: str = "") -> Callable[[Endpoint], Endpoint]:
    """Declare what an endpoint's body may be: at most ``limit`` bytes of one of ``types``
    (no Content-Type at all is refused too); ``too_large``: what its 413 says instead of
    the size alone (a form's files: which ones, and what to do). Put it below the route
    decorator."""

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _ATTRIBUTE, Body(limit, frozenset(types), False, too_large))
        return endpoint

    return declare


def body_of(route: APIRoute) -> Body:
    """What ``route`` takes: its ``@takes``, else what its parameters say."""
    declared = getattr(route.endpoint, _ATTRIBUTE, None)
    if isinstance(declared, Body):
        return declared
    field = route.body_field
    if field is None:
        return NO_BODY
    if isinstance(field.field_info, params.File):
        return FILE_BODY
    if isinstance(field.field_info, params.Form):
        return FORM_BODY
    return JSON_BODY


def scope_of(route: APIRoute) -> str | None:
    """The token scope ``route`` needs (``apibase.token_dependency`` on it), or None."""
    for dependency in route.dependant.dependencies:
        scope = apibase.token_scope(dependency.call)
        if scope is not None:
            return scope
    return None


def first_check_of(route: APIRoute) -> FirstCheck | None:
    """The ``check_first`` of one of ``route``'s dependencies, or of theirs (the rights
    check of a dashboard route depends on the session check), or None."""
    waiting = list(route.dependant.dependencies)
    while waiting:
        dependency = waiting.pop(0)
        check = getattr(dependency.call, _CHECK_ATTRIBUTE, None)
        if check is not None:
            return cast(FirstCheck, check)
        waiting.extend(dependency.dependencies)
    return None


class _Matching(Protocol):
    def matches(self, scope: Scope) -> tuple[Match, Scope]: ...


def routes_of(routes: Iterable[BaseRoute]) -> list[tuple[_Matching, BaseRoute]]:
    """Each route of an app as FastAPI matches it (the path with its router's prefix), and
    the route as it was declared. Since FastAPI 0.13x an included router is one entry of
    ``app.routes``, unfolded by ``iter_route_contexts``; before, the routes were flat."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI
        return [(route, route) for route in routes]
    return [(context, context.original_route) for context in iter_route_contexts(list(routes))]


@dataclass(frozen=True)
class _Rule:
    route: _Matching
    body: Body
    token_scope: str | None
    first_check: FirstCheck | None


def _rule(matching: _Matching, route: BaseRoute) -> _Rule:
    if isinstance(route, APIRoute):
        return _Rule(matching, body_of(route), scope_of(route), first_check_of(route))
    return _Rule(matching, NO_BODY, None, None)


class BodyGuard:
    """ASGI middleware enforcing each route's ``Body`` and token before the body is read.
    ``routes`` gives the app's routes; they are read once, on the first request with a
    body (every route is added by then)."""

    def __init__(self, app: ASGIApp, settings: Settings, routes: Callable[[], Iterable[BaseRoute]]):
        self.app = app
        self.settings = settings
        self._routes = routes
        self._rules: list[_Rule] | None = None

    def rules(self) -> list[_Rule]:
        """One rule per route, in the app's routing order."""
        if self._rules is None:
            self._rules = [_rule(matching, route) for matching, route in routes_of(self._routes())]
        return self._rules

    def rule(self, scope: Scope) -> _Rule | None:
        """The rule of the route FastAPI will run for ``scope`` (a route that matches the path
        but not the method counts: FastAPI answers 405 without reading)."""
        partial = None
        for rule in self.rules():
            match, _child = rule.route.matches(scope)
            if match == Match.FULL:
                return rule
            if match == Match.PARTIAL and partial is None:
                partial = rule
        return partial

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: int | None = None
        chunked = False
        content_type = authorization = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = None
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        if not chunked and not length:  # no body: nothing to guard
            await self.app(scope, receive, send)
            return
        rule = self.rule(scope)
        body = rule.body if rule is not None else NO_BODY
        api = apibase.in_api(scope["path"])
        if length is not None and length > body.limit:
            await _refuse(scope, receive, send, api, 413, _too_large(body), close=True)
            return
        if not body.takes(content_type):
            await _refuse(scope, receive, send, api, 415, _not_taken(body), close=True)
            return
        if rule is not None and rule.token_scope is not None:
            refused = await anyio.to_thread.run_sync(
                self._token_refusal, authorization, rule.token_scope
            )
            if refused is not None:
                await _refuse(scope, receive, send, api, *refused, close=True)
                return
        if rule is not None and rule.first_check is not None:
            answer = await anyio.to_thread.run_sync(rule.first_check, Request(scope))
            if answer is not None:
                answer.headers["Connection"] = "close"
                await answer(scope, receive, send)
                return
        if chunked:
            read = await _read_within(receive, body.limit)
            if read is None:
                await _refuse(scope, receive, send, api, 413, _too_large(body), close=True)
                return
            receive = _replay(read, receive)
        await self.app(scope, receive, send)

    def _token_refusal(self, authorization: str | None, token_scope: str) -> tuple[int, str] | None:
        """401 or 403 and why, for the Authorization header; None for a live token with
        ``token_scope`` (the check of ``apibase.token_dependency``)."""
        scheme, credentials = get_authorization_scheme_param(authorization)
        token = credentials if scheme.lower() == "bearer" else None
        try:
            apibase.token_holder(self.settings, token, token_scope)
        except (Unauthorized, Forbidden) as exc:
            return status_of(exc), str(exc)
        return None


def _size(limit: int) -> str:
    return f"{limit // 1_048_576} MiB" if limit >= 1_048_576 else f"{limit // 1024} KiB"


def _too_large(body: Body) -> str:
    if body.too_large:
        return body.too_large
    if body.limit == NO_BODY_LIMIT and not body.types:
        return f"this address takes no body (at most {_size(body.limit)})"
    return f"the body is larger than {_size(body.limit)}, the most this address takes"


def _not_taken(body: Body) -> str:
    return "send the body as " + " or ".join(sorted(body.types))


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    api: bool,
    status: int,
    message: str,
    close: bool,
) -> None:
    """Answer ``status`` without reading the body; ``close``: and end the connection (the
    rest of the body is not read, so it cannot carry another request)."""
    headers = {"Connection": "close"} if close else {}
    if api:
        response: Response = apibase.error(status, message, None, **headers)
    else:
        response = PlainTextResponse(message + "\n", status, headers=headers)
    await response(scope, receive, send)


async def _read_within(receive: Receive, limit: int) -> list[Message] | None:
    """The request's body messages while they hold at most ``limit`` bytes in all; None as
    soon as they hold more (what is left is not read)."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client left: the app finds out as it would have
        size += len(message.get("body", b""))
        if size > limit:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` giving ``messages`` first, then what ``receive`` gives."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
