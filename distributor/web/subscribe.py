"""Journalists' self-service pages: subscribe, confirm (double opt-in), preferences,
unsubscribe (in one click too, RFC 8058), and a journalist's request for embargo access.

Every state of an address gets the same answer to a subscription request, after the same
work (the request is recorded and a worker decides on the email), so nobody can learn who
is subscribed, from the page or its timing. The confirm page shows what confirming will
apply before its button. A GET never changes anything (mail scanners follow links); every
POST but the RFC 8058 one-click carries a CSRF token; the subscribe form has a honeypot
field and a per-IP rate limit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.audience import accreditation
from distributor.audience.subscribers import subscriber_for, unsubscribe
from distributor.audience.subscription import (
    CONFIRMATION_TASK,
    Choices,
    Consent,
    confirm_legacy,
    confirm_request,
    reopen_request,
    request_choices,
    request_subscription,
    resubscribe,
)
from distributor.audience.subscription import update_preferences as save_preferences
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import Conflict, InputError, NotFound, SubscriberInputError
from distributor.core.models import Subscriber, SubscriberStatus, SubscriptionRequest, Topic
from distributor.core.tokens import ExpiredToken, InvalidToken, Link, Purpose, read_link
from distributor.core.urls import listing_url, preferences_url, unsubscribe_url
from distributor.mail.preview import PLACEHOLDER_ID
from distributor.web.deps import AppQueue, part
from distributor.web.errors import status_of
from distributor.web.guards import CSRF_COOKIE, RateLimiter, csrf_ok, new_csrf_token
from distributor.web.pages import Pages

HONEYPOT = "website"
EXPIRED_FORM = "This form has expired. Please submit it again."
NO_TOPIC = "Choose at least one topic."
# The subscribe form's box that stands for every topic there is when the form is sent.
ALL_TOPICS = "*"
# What the preferences form says after a POST, by outcome.
SAVED, UNCHANGED, BACK, ASKED = "saved", "unchanged", "back", "asked"


# Short, human words for a form field's refusal (the domain's messages name the field and
# the value, for the CLI and the API); translated by the page like every label.
FIELD_ERRORS = {
    "email": "Enter a whole email address, like name@example.org.",
    "name": "The name is too long (200 characters at most) or holds characters we cannot keep.",
    "language": "Choose one of the languages offered.",
    "topics": "Choose topics from the list.",
    "digest": "Choose how you receive our releases: at once, daily or weekly.",
    "outlet": "Name the outlet you write for, in one line (200 characters at most).",
    "role": "Say what you do there, in one line (200 characters at most).",
}
# An accreditation asked for from a page that no longer fits the subscription (left since,
# or granted meanwhile): the page shown again says where things stand.
NOT_ACCREDITABLE = "Advance copies are for confirmed subscribers who are not accredited yet."


def form_error(exc: InputError) -> str:
    """What a form says of ``exc``: the field's short message, else the error's own."""
    return FIELD_ERRORS.get(exc.field or "", str(exc))


def consent_of(request: Request, source: str = "web form") -> Consent:
    """The consent record of a request made in a browser: its peer address and agent."""
    return Consent(
        ip=request.client.host if request.client else "",
        user_agent=request.headers.get("user-agent", ""),
        source=source,
    )


@dataclass(frozen=True)
class ConfirmTarget:
    """What a confirmation link names: a subscription request (``legacy`` False), or a
    pending subscriber (a link sent before requests were kept apart); what confirming it
    applies (None when the row is gone: purged after expiry, or erased); and whether the
    link has expired."""

    row_id: int
    legacy: bool
    expired: bool
    choices: Choices | None


class PublicForms:
    """What the subscription pages share in one app: its settings and pages, the forms'
    rate limiter, and how long a confirmation link lives."""

    def __init__(self, settings: Settings, pages: Pages) -> None:
        self.settings = settings
        self.pages = pages
        self.limiter = RateLimiter(settings)
        self.confirm_max_age = settings.confirm_max_age_days * 86400

    def topics_list(self) -> list[Topic]:
        """Every topic, by slug."""
        with session_scope(self.settings) as session:
            return list(session.scalars(select(Topic).order_by(Topic.slug)))

    def with_csrf(
        self,
        name: str,
        lang: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: object,
    ) -> HTMLResponse:
        """The page ``name`` with a new CSRF value in its form and its cookie."""
        token = new_csrf_token(self.settings)
        response = self.pages.render(name, lang, status, headers, csrf=token, **context)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=self.settings.site_url.startswith("https:"),
        )
        return response

    def form(self, lang: str, status: int = 200, error: str = "", **values: object) -> HTMLResponse:
        """The subscribe form, filled in with ``values``; ``error`` says what to fix."""
        values.setdefault("email", "")
        values.setdefault("name", "")
        values.setdefault("language", lang)
        values.setdefault("topics", [])
        return self.with_csrf(
            "subscribe.html", lang, status, topics=self.topics_list(), form=values, error=error
        )

    def limited(self, request: Request, lang: str) -> HTMLResponse | None:
        """Count the request against its IP's limit: None while within it, else the 429."""
        host = request.client.host if request.client else "unknown"
        verdict = self.limiter.hit("forms", host)
        if verdict.allowed:
            return None
        return self.pages.render(
            "message.html",
            lang,
            429,
            {"Retry-After": str(verdict.retry_after)},
            title="Too many requests",
            text="Too many requests from your network. Please try again later.",
        )

    def confirm_target(self, token: str) -> ConfirmTarget | None:
        """What ``token`` names, read once; None for a token that is not genuine, or names
        a row that is gone (or another row than it was made for) while still valid."""
        settings = self.settings
        try:
            link, expired = read_link(settings, Purpose.CONFIRM, token, self.confirm_max_age), False
        except ExpiredToken:
            link, expired = read_link(settings, Purpose.CONFIRM, token), True
        except InvalidToken:
            return None
        with session_scope(settings) as session:
            if link.nonce is None:  # sent before requests: it names a pending subscriber
                choices = legacy_choices(session, link)
            else:
                request = session.get(SubscriptionRequest, link.id)
                fits = request is not None and link.fits(request.nonce)
                choices = request_choices(session, link.id) if fits else None
        if choices is None and not expired:
            return None
        return ConfirmTarget(link.id, link.nonce is None, expired, choices)

    def invalid_link(self, lang: str) -> HTMLResponse:
        """The 400 page of a personal link that is not ours, or names nobody now."""
        return self.pages.render(
            "message.html",
            lang,
            400,
            title="This link is not valid",
            text="The link may have been cut or altered. Please use the whole link from the email.",
        )

    def confirm_page(self, token: str, target: ConfirmTarget, lang: str) -> HTMLResponse:
        """The page of a confirmation link: what it will apply and its button; "expired"
        with a new link (or the form) to ask for; or "already confirmed" once it was."""
        done = bool(target.choices and target.choices.done)
        if done and target.choices is not None:
            with session_scope(self.settings) as session:
                sub = session.scalar(
                    select(Subscriber).where(Subscriber.email == target.choices.email)
                )
                if sub is not None:
                    session.expunge(sub)
            return self.confirmed_page(lang, sub, already=True)
        return self.with_csrf(
            "confirm.html",
            lang,
            token=token,
            choices=target.choices,
            expired=target.expired and not done,
            can_resend=not target.legacy and target.choices is not None,
            done=done,
        )

    def target_language(self, target: ConfirmTarget | None, request: Request) -> str:
        """The language of the link's request or subscriber, else the browser's."""
        if target is not None and target.choices is not None:
            return target.choices.language
        return self.pages.language(request)

    def from_a_test_email(self, purpose: Purpose, token: str) -> bool:
        """Whether ``token`` is the personal link of a test email's stand-in recipient
        (``mail.preview``): genuine, naming nobody."""
        try:
            return read_link(self.settings, purpose, token).id == PLACEHOLDER_ID
        except InvalidToken:
            return False

    def test_email_page(self, lang: str) -> HTMLResponse:
        """What a test email's personal link opens: what it does in a subscriber's copy."""
        return self.pages.render(
            "message.html",
            lang,
            title="This link comes from a test email",
            text="In a subscriber's copy of this email, it opens their own subscription: "
            "their topics, their language, and a button to leave.",
        )

    def preferences_target(self, session: Session, token: str) -> Subscriber | None:
        """The subscriber ``token`` was made for, or None."""
        try:
            link = read_link(self.settings, Purpose.PREFERENCES, token)
        except InvalidToken:
            return None
        return subscriber_for(session, link)

    def preferences_form(
        self,
        lang: str,
        sub: Subscriber,
        token: str,
        topics: list[Topic],
        done: str = "",
        error: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        """The subscriber's preferences form, saying whether they receive anything now (and
        offering to subscribe again if not); ``done`` (SAVED, UNCHANGED, BACK) or ``error``
        says how a change went."""
        return self.with_csrf(
            "preferences.html",
            lang,
            status,
            sub=sub,
            token=token,
            topics=topics,
            chosen={t.slug for t in sub.topics},
            done=done,
            error=error,
            unsubscribe_url=unsubscribe_url(self.settings, sub.id, sub.link_nonce),
        )

    def confirmed_page(self, lang: str, sub: Subscriber | None, already: bool) -> HTMLResponse:
        """The page of a confirmed subscription (``already``: the link was used before),
        linking to the subscriber's preferences and to the newsroom. A link used before by
        someone who has left since never says "confirmed": the page says nothing is sent
        and offers "Subscribe again" (one POST, as on the preferences page: the link reached
        their mailbox), or, for an address that bounced, why nothing can be sent."""
        left = ""  # the status of someone who used the link and has left since
        if already and sub is not None and sub.status != SubscriberStatus.CONFIRMED:
            left = sub.status
        render = self.with_csrf if left else self.pages.render  # a form: "Subscribe again"
        return render(
            "confirm.html",
            lang,
            choices=None,
            expired=False,
            can_resend=False,
            done=True,
            already=already,
            left=left,
            preferences=preferences_url(self.settings, sub.id, sub.link_nonce) if sub else "",
            newsroom=listing_url(self.settings, lang),
        )

    def unsubscribe_target(self, session: Session, token: str) -> Subscriber | None:
        """The subscriber an unsubscribe ``token`` was made for; None when it is gone
        (erased) or the id now names another row; HTTP 400 for a token not ours."""
        try:
            link = read_link(self.settings, Purpose.UNSUBSCRIBE, token)
        except InputError as exc:
            raise HTTPException(status_of(exc), str(exc)) from exc
        return subscriber_for(session, link)


def legacy_choices(session: Session, link: Link) -> Choices | None:
    """What confirming a pending subscriber's link (sent before requests were kept apart)
    applies; None when the subscriber is gone."""
    sub = subscriber_for(session, link)
    if sub is None:
        return None
    topics = sorted(sub.topics, key=lambda t: t.slug)
    return Choices(
        sub.email, sub.name, sub.language, topics, sub.status == SubscriberStatus.CONFIRMED
    )


async def app_forms(request: Request) -> PublicForms:
    """The PublicForms of the app serving the request (``create_app`` made them)."""
    return part(request, PublicForms)


Forms = Annotated[PublicForms, Depends(app_forms)]
router = APIRouter(include_in_schema=False)


@router.get("/subscribe", response_class=HTMLResponse)
def subscribe_page(request: Request, forms: Forms, topic: str = "") -> HTMLResponse:
    """The subscribe form, in the browser's language; ``?topic=SLUG`` (a topic page's
    link) ticks that topic."""
    return forms.form(forms.pages.language(request), topics=[topic] if topic else [])


@router.post("/subscribe", response_class=HTMLResponse)
def subscribe(
    request: Request,
    forms: Forms,
    queue: AppQueue,
    email: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    language: Annotated[str, Form()] = "",
    topics: Annotated[list[str] | None, Form()] = None,
    csrf: Annotated[str, Form()] = "",
    website: Annotated[str, Form(alias=HONEYPOT)] = "",
) -> HTMLResponse:
    """Record a subscription request (a worker decides on the confirmation email); the
    same page whatever the address's state. The form again to fix a field, an expired
    form or no topic; 429 past the rate limit; a bot filling the honeypot is told the
    same as anyone and nothing happens."""
    settings = forms.settings
    lang = language if language in settings.languages else forms.pages.language(request)
    blocked = forms.limited(request, lang)
    if blocked is not None:
        return blocked
    chosen = topics or []
    if ALL_TOPICS in chosen:  # "all topics": every topic there is now
        chosen = [t.slug for t in forms.topics_list()]
    if not csrf_ok(settings, request.cookies.get(CSRF_COOKIE), csrf):
        return forms.form(
            lang, 400, EXPIRED_FORM, email=email, name=name, language=language, topics=chosen
        )
    if website:  # a bot filled the hidden field: answer as to anyone, do nothing
        return forms.pages.render("subscribed.html", lang)
    if not chosen:
        return forms.form(
            lang,
            400,
            NO_TOPIC,
            email=email,
            name=name,
            language=language,
            topics=chosen,
        )
    consent = consent_of(request)
    try:  # the same work whatever the address's state: a worker decides on the email
        request_subscription(
            settings,
            queue.get(),
            email=email,
            name=name,
            language=lang,
            topics=chosen,
            consent=consent,
        )
    except InputError as exc:
        return forms.form(
            lang,
            status_of(exc),
            form_error(exc),
            email=email,
            name=name,
            language=language,
            topics=chosen,
        )
    return forms.pages.render("subscribed.html", lang)


@router.get("/confirm/{token}", response_class=HTMLResponse)
def confirm_get(request: Request, token: str, forms: Forms) -> HTMLResponse:
    """What confirming the link will apply, and its button (a GET changes nothing: mail
    scanners follow links); 400 for a link that is not valid."""
    target = forms.confirm_target(token)
    lang = forms.target_language(target, request)
    if target is None:
        return forms.invalid_link(lang)
    return forms.confirm_page(token, target, lang)


@router.post("/confirm/{token}", response_class=HTMLResponse)
def confirm_post(
    request: Request, token: str, forms: Forms, csrf: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Confirm the link's request (or pending subscriber): "confirmed"; the confirm page
    again for an expired link or form; 400 for a link that is not valid."""
    target = forms.confirm_target(token)
    lang = forms.target_language(target, request)
    if target is None:
        return forms.invalid_link(lang)
    if target.expired or not csrf_ok(forms.settings, request.cookies.get(CSRF_COOKIE), csrf):
        return forms.confirm_page(token, target, lang)
    already = bool(target.choices and target.choices.done)  # a second click
    try:
        with session_scope(forms.settings) as session:
            if target.legacy:
                sub = confirm_legacy(session, target.row_id)
            else:
                sub = confirm_request(session, target.row_id)
            session.flush()
            session.expunge(sub)
    except NotFound:
        return forms.invalid_link(lang)
    except SubscriberInputError as exc:
        return forms.pages.render(
            "message.html", lang, status_of(exc), title="This link is not valid", text=str(exc)
        )
    return forms.confirmed_page(lang, sub, already=already)


@router.post("/confirm/{token}/resend", response_class=HTMLResponse)
def confirm_resend(
    request: Request, token: str, forms: Forms, queue: AppQueue, csrf: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Reopen the link's request so a worker sends a new link (once a day at most); the
    same "check your inbox" page whatever was done; 429 past the rate limit."""
    target = forms.confirm_target(token)
    lang = forms.target_language(target, request)
    if target is None:
        return forms.invalid_link(lang)
    blocked = forms.limited(request, lang)
    if blocked is not None:
        return blocked
    if not target.legacy and csrf_ok(forms.settings, request.cookies.get(CSRF_COOKIE), csrf):
        with session_scope(forms.settings) as session:
            reopened = reopen_request(session, target.row_id)
        if reopened:  # the worker decides, as for a new request (once a day)
            queue.get().send(CONFIRMATION_TASK, target.row_id)
    return forms.pages.render(
        "message.html",
        lang,
        title="Check your inbox",
        text="If this address is still waiting for confirmation, a new link is on its way.",
    )


@router.get("/preferences/{token}", response_class=HTMLResponse)
def preferences_page(request: Request, token: str, forms: Forms) -> HTMLResponse:
    """The preferences form of the link's subscriber; 400 for a link that is not valid."""
    if forms.from_a_test_email(Purpose.PREFERENCES, token):
        return forms.test_email_page(forms.pages.language(request))
    topics = forms.topics_list()  # before the transaction: one at a time on SQLite
    with session_scope(forms.settings) as session:
        sub = forms.preferences_target(session, token)
        if sub is None:
            return forms.invalid_link(forms.pages.language(request))
        return forms.preferences_form(sub.language, sub, token, topics)


def preferences_change(
    request: Request,
    token: str,
    forms: PublicForms,
    csrf: str,
    change: Callable[[Session, Subscriber], str],
) -> HTMLResponse:
    """A POST of the preferences page: ``change`` applied to the link's subscriber (it
    answers SAVED, UNCHANGED or BACK, or raises InputError, changing nothing); the form
    again, saying how it went or what to fix; 400 for a link that is not valid or a form
    that has expired."""
    all_topics = forms.topics_list()  # before the transaction: one at a time on SQLite
    with session_scope(forms.settings) as session:
        sub = forms.preferences_target(session, token)
        if sub is None:
            return forms.invalid_link(forms.pages.language(request))
        if not csrf_ok(forms.settings, request.cookies.get(CSRF_COOKIE), csrf):
            return forms.preferences_form(
                sub.language, sub, token, all_topics, status=400, error=EXPIRED_FORM
            )
        try:
            done = change(session, sub)
        except (InputError, Conflict) as exc:
            said = form_error(exc) if isinstance(exc, InputError) else str(exc)
            return forms.preferences_form(
                sub.language, sub, token, all_topics, status=status_of(exc), error=said
            )
        session.flush()
        return forms.preferences_form(sub.language, sub, token, all_topics, done=done)


@router.post("/preferences/{token}", response_class=HTMLResponse)
def preferences_post(
    request: Request,
    token: str,
    forms: Forms,
    language: Annotated[str, Form()] = "",
    topics: Annotated[list[str] | None, Form()] = None,
    digest: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Save the subscriber's language, topics and how they receive releases (at once, or a
    daily or weekly digest; all checked before any is changed): "saved", or "nothing
    changed" when they were already these."""

    def save(session: Session, sub: Subscriber) -> str:
        if not topics:
            raise SubscriberInputError(NO_TOPIC)

        def now() -> tuple[str, set[str], str]:
            return sub.language, {t.slug for t in sub.topics}, sub.digest

        before = now()
        save_preferences(
            session, forms.settings, sub.id, language=language, topics=topics, digest=digest or None
        )
        return SAVED if now() != before else UNCHANGED

    return preferences_change(request, token, forms, csrf, save)


@router.post("/preferences/{token}/subscribe", response_class=HTMLResponse)
def preferences_subscribe(
    request: Request, token: str, forms: Forms, csrf: Annotated[str, Form()] = ""
) -> HTMLResponse:
    """Subscribe the link's subscriber again, who left, with the language and topics the
    form shows (:func:`resubscribe`: their own link is the proof a confirmation email would
    give)."""

    def come_back(session: Session, sub: Subscriber) -> str:
        resubscribe(session, sub.id, consent_of(request, "preferences page"))
        return BACK

    return preferences_change(request, token, forms, csrf, come_back)


@router.post("/preferences/{token}/accreditation", response_class=HTMLResponse)
def preferences_accreditation(
    request: Request,
    token: str,
    forms: Forms,
    outlet: Annotated[str, Form()] = "",
    role: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """Ask for embargo access (or correct a request still waiting) as ``role`` at
    ``outlet``; the press office decides (:func:`accreditation.ask`)."""

    def ask_for_it(session: Session, sub: Subscriber) -> str:
        try:
            accreditation.ask(session, sub.id, outlet, role)
        except Conflict as exc:
            raise Conflict(NOT_ACCREDITABLE) from exc
        return ASKED

    return preferences_change(request, token, forms, csrf, ask_for_it)


@router.post("/preferences/{token}/lift-notice", response_class=HTMLResponse)
def preferences_lift_notice(
    request: Request,
    token: str,
    forms: Forms,
    lift_notice: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
) -> HTMLResponse:
    """An accredited subscriber's choice of a one-line "embargo lifted" email after each
    advance copy (the box ticked or not)."""

    def choose(session: Session, sub: Subscriber) -> str:
        try:
            changed = accreditation.set_lift_notice(session, sub.id, bool(lift_notice))
        except Conflict as exc:
            raise Conflict(NOT_ACCREDITABLE) from exc
        return SAVED if changed else UNCHANGED

    return preferences_change(request, token, forms, csrf, choose)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse)
def unsubscribe_page(request: Request, token: str, forms: Forms) -> HTMLResponse:
    """The unsubscribe page of the link's subscriber and its button (a GET changes
    nothing); the same page for one erased since; what the link does, for a test email's;
    400 for a link not ours."""
    if forms.from_a_test_email(Purpose.UNSUBSCRIBE, token):
        return forms.test_email_page(forms.pages.language(request))
    with session_scope(forms.settings) as session:
        sub = forms.unsubscribe_target(session, token)
        lang = sub.language if sub else forms.settings.languages[0]
        email = sub.email if sub else ""
    return forms.pages.render("unsubscribe.html", lang, token=token, email=email, done=False)


@router.post("/unsubscribe/{token}")
def unsubscribe_post(
    token: str,
    forms: Forms,
    list_unsubscribe: Annotated[str, Form(alias="List-Unsubscribe")] = "",
) -> Response:
    """Unsubscribe the link's subscriber from everything: the page saying so, or, for an
    RFC 8058 one-click POST, a line of text. 200 every time (erased already: nothing left
    to do); 400 for a link not ours."""
    # RFC 8058: no cookie, no CSRF token, no redirect; 200 every time.
    back = ""  # where to subscribe again: the subscriber's preferences
    with session_scope(forms.settings) as session:
        sub = forms.unsubscribe_target(session, token)
        if sub is not None:
            unsubscribe(session, sub.id)
            lang = sub.language
            back = preferences_url(forms.settings, sub.id, sub.link_nonce)
        else:
            lang = forms.settings.languages[0]  # erased already: nothing left to do
    if list_unsubscribe == "One-Click":
        return PlainTextResponse("unsubscribed\n")
    return forms.pages.render(
        "unsubscribe.html", lang, token=token, email="", done=True, preferences=back
    )
