"""Journalists' self-service pages: subscribe, confirm (double opt-in), preferences.

Every state of an address gets the same answer to a subscription request, so nobody can
learn who is subscribed. A GET never changes anything (mail scanners follow links); every
POST but the RFC 8058 one-click carries a CSRF token; the subscribe form has a honeypot
field and a per-IP rate limit.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select

from ..config import Settings
from ..db import session_scope
from ..errors import InputError, NotFound
from ..models import Subscriber, Topic
from ..subscription import Consent, confirm, request_subscription, wake_confirmation
from ..subscription import update_preferences as save_preferences
from ..tokens import ExpiredToken, InvalidToken, Purpose, read_token
from ..urls import unsubscribe_url
from .guards import CSRF_COOKIE, RateLimiter, csrf_ok, new_csrf_token
from .pages import Pages
from .queueing import LazyQueue

HONEYPOT = "website"
EXPIRED_FORM = "This form has expired. Please submit it again."


def router(settings: Settings, pages: Pages, queue: LazyQueue) -> APIRouter:
    """The routes of the subscription pages."""
    routes = APIRouter(include_in_schema=False)
    limiter = RateLimiter(settings)
    confirm_max_age = settings.confirm_max_age_days * 86400

    def topics_list() -> list[Topic]:
        with session_scope(settings) as session:
            return list(session.scalars(select(Topic).order_by(Topic.slug)))

    def with_csrf(
        name: str, lang: str, status: int = 200, headers: dict[str, str] | None = None,
        **context: object,
    ) -> HTMLResponse:  # fmt: skip
        token = new_csrf_token(settings)
        response = pages.render(name, lang, status, headers, csrf=token, **context)
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict",
                            secure=settings.site_url.startswith("https:"))  # fmt: skip
        return response

    def form(lang: str, status: int = 200, error: str = "", **values: object) -> HTMLResponse:
        values.setdefault("email", "")
        values.setdefault("name", "")
        values.setdefault("language", lang)
        values.setdefault("topics", [])
        return with_csrf("subscribe.html", lang, status, topics=topics_list(), form=values,
                         error=error)  # fmt: skip

    def send_confirmation(subscriber_id: int) -> None:
        wake_confirmation(settings, queue.get(), subscriber_id)

    def limited(request: Request, lang: str) -> HTMLResponse | None:
        verdict = limiter.hit("forms", request.client.host if request.client else "unknown")
        if verdict.allowed:
            return None
        return pages.render(
            "message.html",
            lang,
            429,
            {"Retry-After": str(verdict.retry_after)},
            title="Too many requests",
            text="Too many requests from your network. Please try again later.",
        )

    @routes.get("/subscribe", response_class=HTMLResponse)
    def subscribe_page(request: Request) -> HTMLResponse:
        return form(pages.language(request))

    @routes.post("/subscribe", response_class=HTMLResponse)
    def subscribe(
        request: Request,
        email: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
        language: Annotated[str, Form()] = "",
        topics: Annotated[list[str] | None, Form()] = None,
        csrf: Annotated[str, Form()] = "",
        website: Annotated[str, Form(alias=HONEYPOT)] = "",
    ) -> HTMLResponse:
        lang = language if language in settings.languages else pages.language(request)
        blocked = limited(request, lang)
        if blocked is not None:
            return blocked
        chosen = topics or []
        if not csrf_ok(settings, request.cookies.get(CSRF_COOKIE), csrf):
            return form(lang, 400, EXPIRED_FORM,
                        email=email, name=name, language=language, topics=chosen)  # fmt: skip
        if website:  # a bot filled the hidden field: answer as to anyone, do nothing
            return pages.render("subscribed.html", lang)
        if not chosen:
            return form(lang, 400, "Choose at least one topic.", email=email, name=name,
                        language=language, topics=chosen)  # fmt: skip
        consent = Consent(
            ip=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
        )
        try:
            with session_scope(settings) as session:
                subscriber_id = request_subscription(
                    session, settings, email=email, name=name, language=lang,
                    topics=chosen, consent=consent,
                )  # fmt: skip
        except InputError as exc:
            return form(lang, 400, str(exc), email=email, name=name, language=language,
                        topics=chosen)  # fmt: skip
        if subscriber_id is not None:
            send_confirmation(subscriber_id)
        return pages.render("subscribed.html", lang)

    def confirm_target(token: str, request: Request) -> tuple[int | None, bool, str, str]:
        """(subscriber id, expired, page language, address) for a confirmation token, the
        subscriber read once; the id is None for an invalid token or a vanished subscriber."""
        try:
            subscriber_id = read_token(settings, Purpose.CONFIRM, token, max_age=confirm_max_age)
            expired = False
        except ExpiredToken:
            subscriber_id, expired = read_token(settings, Purpose.CONFIRM, token), True
        except InvalidToken:
            return None, False, pages.language(request), ""
        with session_scope(settings) as session:
            sub = session.get(Subscriber, subscriber_id)
            if sub is None:
                return None, False, pages.language(request), ""
            return subscriber_id, expired, sub.language, sub.email

    def invalid_link(lang: str) -> HTMLResponse:
        return pages.render("message.html", lang, 400, title="This link is not valid",
                            text="The link may have been cut or altered. Please use the "
                            "whole link from the email.")  # fmt: skip

    @routes.get("/confirm/{token}", response_class=HTMLResponse)
    def confirm_page(request: Request, token: str) -> HTMLResponse:
        subscriber_id, expired, lang, email = confirm_target(token, request)
        if subscriber_id is None:
            return invalid_link(lang)
        return with_csrf("confirm.html", lang, token=token, email=email, expired=expired,
                         done=False)  # fmt: skip

    @routes.post("/confirm/{token}", response_class=HTMLResponse)
    def confirm_post(
        request: Request, token: str, csrf: Annotated[str, Form()] = ""
    ) -> HTMLResponse:
        subscriber_id, expired, lang, email = confirm_target(token, request)
        if subscriber_id is None:
            return invalid_link(lang)
        if expired or not csrf_ok(settings, request.cookies.get(CSRF_COOKIE), csrf):
            return with_csrf("confirm.html", lang, token=token, email=email, expired=expired,
                             done=False)  # fmt: skip
        try:
            with session_scope(settings) as session:
                confirm(session, subscriber_id)
        except (NotFound, InputError):
            return invalid_link(lang)
        return pages.render("confirm.html", lang, token=token, email="", expired=False,
                            done=True)  # fmt: skip

    @routes.post("/confirm/{token}/resend", response_class=HTMLResponse)
    def confirm_resend(
        request: Request, token: str, csrf: Annotated[str, Form()] = ""
    ) -> HTMLResponse:
        subscriber_id, _expired, lang, _email = confirm_target(token, request)
        if subscriber_id is None:
            return invalid_link(lang)
        blocked = limited(request, lang)
        if blocked is not None:
            return blocked
        if csrf_ok(settings, request.cookies.get(CSRF_COOKIE), csrf):
            send_confirmation(subscriber_id)
        return pages.render("message.html", lang, title="Check your inbox",
                            text="If this address is still waiting for confirmation, a new "
                            "link is on its way.")  # fmt: skip

    def preferences_target(token: str) -> int | None:
        try:
            return read_token(settings, Purpose.PREFERENCES, token)
        except InvalidToken:
            return None

    def preferences_form(
        lang: str, sub: Subscriber, token: str, topics: list[Topic], saved: bool = False,
        error: str = "", status: int = 200,
    ) -> HTMLResponse:  # fmt: skip
        return with_csrf(
            "preferences.html", lang, status, sub=sub, token=token, topics=topics,
            chosen={t.slug for t in sub.topics}, saved=saved, error=error,
            unsubscribe_url=unsubscribe_url(settings, sub.id),
        )  # fmt: skip

    @routes.get("/preferences/{token}", response_class=HTMLResponse)
    def preferences_page(request: Request, token: str) -> HTMLResponse:
        subscriber_id = preferences_target(token)
        topics = topics_list()  # before the transaction: one at a time on SQLite
        with session_scope(settings) as session:
            sub = session.get(Subscriber, subscriber_id) if subscriber_id else None
            if sub is None:
                return invalid_link(pages.language(request))
            return preferences_form(sub.language, sub, token, topics)

    @routes.post("/preferences/{token}", response_class=HTMLResponse)
    def preferences_post(
        request: Request,
        token: str,
        language: Annotated[str, Form()] = "",
        topics: Annotated[list[str] | None, Form()] = None,
        csrf: Annotated[str, Form()] = "",
    ) -> Response:
        subscriber_id = preferences_target(token)
        all_topics = topics_list()  # before the transaction: one at a time on SQLite
        with session_scope(settings) as session:
            sub = session.get(Subscriber, subscriber_id) if subscriber_id else None
            if sub is None:
                return invalid_link(pages.language(request))
            if not csrf_ok(settings, request.cookies.get(CSRF_COOKIE), csrf):
                return preferences_form(
                    sub.language, sub, token, all_topics, status=400, error=EXPIRED_FORM
                )
            if not topics:
                return preferences_form(sub.language, sub, token, all_topics, status=400,
                                        error="Choose at least one topic.")  # fmt: skip
            try:  # checks everything before changing anything
                save_preferences(session, settings, sub.id, language=language, topics=topics)
            except InputError as exc:
                return preferences_form(
                    sub.language, sub, token, all_topics, status=400, error=str(exc)
                )
            session.flush()
            return preferences_form(sub.language, sub, token, all_topics, saved=True)

    return routes
