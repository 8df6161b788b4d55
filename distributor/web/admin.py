"""The press office's dashboard at ``/admin``: the releases and their delivery progress
(live while a send runs), confirmed subscribers per topic and language, messages sent and
failed per hour, and the actions on a release — preview, test, publish (now or at a time),
unschedule, correct, withdraw.

Log in with a named account's address and password (``distributor users create EMAIL
--role …``; office/accounts.py), or with an API token that has the ``releases`` scope.
Failed password logins are throttled per account and per client address (office/logins.py).
The session lives in the database (admin_sessions.py); the cookie holds only its random id
(HttpOnly, SameSite Lax, path ``/admin``, Secure on an https site). It ends at logout, after
``SESSION_IDLE`` without use or ``SESSION_MAX_AGE`` after login, and at once when the
account is disabled or its password changed; every request checks the account (or token)
again, so a role changed applies from the next request. Each route names the right it
needs (``rights.declare``; a writer sees and tests, a publisher also publishes, corrects and
withdraws). Every POST carries a CSRF token (signed double submit, as the public forms);
every action is recorded in the audit trail as ``user:EMAIL`` (or ``token:NAME``).

Server-rendered (Jinja2, autoescaped, ``templates/admin/``); one small script polls
``progress.json`` during a send. Every answer is ``Cache-Control: no-store`` with a
Content-Security-Policy that allows no inline script or style (``headers.ADMIN_CSP``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

import re
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.routing import APIRoute
from itsdangerous import BadSignature
from jinja2 import Environment, FileSystemLoader, pass_context
from markupsafe import Markup, escape
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import Match

from distributor import actions
from distributor.actions.accounts import CODE_STEP_SECONDS
from distributor.core import heartbeat
from distributor.core.admin_sessions import (
    SESSION_MAX_AGE,
    end_session,
    end_token_sessions,
    find_session,
    start_session,
)
from distributor.core.apitokens import LAST_USED_RESOLUTION as LAST_USED
from distributor.core.apitokens import authenticate
from distributor.core.apitokens import caller as token_caller_of
from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.errors import (
    DistributorError,
    Forbidden,
    InputError,
    NotFound,
    TooManyAttempts,
    Unauthorized,
)
from distributor.core.models import (
    AdminSession,
    ApiToken,
    NoticeKind,
    Release,
    ReleaseState,
    User,
    utcnow,
)
from distributor.core.roles import Caller, Can, person, user_caller
from distributor.core.templating import CompiledTemplates
from distributor.core.tokens import Purpose, signer
from distributor.mail.preview import render_preview, send_test
from distributor.office.accounts import MAX_PASSWORD
from distributor.office.totp import must_enrol
from distributor.outbox import notices
from distributor.releases.lifecycle import get_release, unsent_versions
from distributor.reporting.audience import reach
from distributor.reporting.dashboard import (
    HourCount,
    Progress,
    ReleaseProgress,
    is_sending,
    release_history,
    release_progress,
    releases_overview,
    sends_over_time,
    subscribers_by_topic_language,
)
from distributor.reporting.statistics import release_statistics, site_statistics
from distributor.reporting.status import release_status, translation_languages
from distributor.web.bodies import check_first
from distributor.web.charts import Bar, _ceiling, day_chart
from distributor.web.deps import AppQueue, part
from distributor.web.errors import status_of
from distributor.web.guards import CSRF_MAX_AGE, csrf_ok, new_csrf_token
from distributor.web.headers import EMAIL_PREVIEW_CSP as PREVIEW_CSP
from distributor.web.rights import declare
from distributor.web.workspace_i18n import (
    WORKSPACE_LANGUAGES,
    Translator,
    translator,
    workspace_language,
)

PREFIX = "/admin"
SCOPE = "releases"
SESSION_COOKIE = "distributor_admin"
CODE_COOKIE = "distributor_admin_code"  # a password checked, its one-time code to come
CSRF_COOKIE = "distributor_admin_csrf"  # not the public forms' cookie: its path is /admin
COOKIE_MAX_AGE = int(SESSION_MAX_AGE.total_seconds())  # the browser forgets it with the row
CSRF_REUSE_AGE = CSRF_MAX_AGE - 1800  # a form rendered now stays valid at least 30 minutes
MAX_ID = 2**31 - 1  # the id columns are 32-bit integers on PostgreSQL
RELEASES_SHOWN = 50
CHART_HOURS = 24
STATS_DAYS = 14  # days of page views and downloads on the dashboard
EXPIRED_FORM = "This form has expired. Reload the page and try again."
# What a redirect after an action may announce (?done=…): fixed texts, never a parameter.
DONE = {
    "created": "Draft created: nothing is sent or shown until it is published.",
    "saved": "Draft saved.",
    "deleted": "Draft deleted: its address (slug) is free again.",
    "duplicated": "A copy, saved as a new draft: change what differs, then save.",
    "translated": "A new version, saved as a draft with the original's text: translate it, "
    "then save. Both go out together when published at the same time.",
    "approval-requested": "Approval asked for: a publisher or an admin other than its last "
    "editor approves it.",
    "approved": "Approved: it may be published or scheduled.",
    "published": "Published: the workers are sending it.",
    "scheduled": "Scheduled.",
    "unscheduled": "Unscheduled: the release is a draft again; nothing was sent.",
    "corrected": "Corrected: the site is being regenerated (no email is sent).",
    "corrected-notified": "Corrected: the site is being regenerated, and a short correction "
    "notice is going to everyone who received the release.",
    "withdrawn": "Withdrawn: the release is off the site and unsent messages are cancelled.",
    # {notices}: read from the ledger when the page is shown (notices.planned), not the URL.
    "withdrawn-notified": "Withdrawn: the release is off the site and unsent messages are "
    "cancelled; {notices} planned (to those who received it and are still subscribed).",
}


@dataclass(frozen=True)
class Admin:
    """Who is logged in: the name the pages show, and who they are to the audit trail and
    the rights (``caller``)."""

    name: str
    caller: Caller
    user_id: int | None = None  # None: logged in with a token
    must_enrol: bool = False  # two-factor login required and not set up yet (totp.py)
    totp_on: bool = False
    email: str = ""  # the person's address ("" when logged in with a token of nobody)

    @property
    def actor(self) -> str:
        """Who did it, for the audit trail."""
        return self.caller.actor

    def may(self, need: str) -> bool:
        """Whether this person may do ``need`` (a ``Can`` value): the pages offer only that."""
        return Can(need) in self.caller.can


class _Answer(Exception):
    """Stops a request with ``response`` (login required, CSRF refused); see AdminRoute."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


class AdminRoute(APIRoute):
    """A route of the dashboard: answers an ``_Answer`` raised by a dependency with its
    response. (Its headers — no caching, the CSP — are the ``/admin`` policy of
    ``headers.SecurityHeaders``.)"""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def dashboard_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except _Answer as answer:
                return answer.response

        return dashboard_handler


def language_name(code: str, in_lang: str = "en") -> str:
    """The language's name in ``in_lang`` ("French" for ``fr`` in English, "anglais" for
    ``en`` in French); the code when Babel does not know it."""
    from babel import Locale, UnknownLocaleError

    try:
        return str(Locale.parse(code).get_display_name(in_lang))
    except (ValueError, UnknownLocaleError):
        return code


@dataclass(frozen=True)
class UnsentVersion:
    """A language version of the release on the page that is not sent yet: what its
    "Also the French version" checkbox and its warning say. ``together``: it is scheduled
    for the same time as the page's release (nothing to warn about)."""

    id: int
    language: str
    name: str  # the language's name in the workspace's language
    state: str
    approved: bool
    together: bool


def unsent_versions_of(session: Session, release: Release, in_lang: str) -> list[UnsentVersion]:
    """The unsent versions of ``release`` (``lifecycle.unsent_versions``) as the release
    page and the publish step show them, languages named in ``in_lang``."""
    return [
        UnsentVersion(
            id=v.id,
            language=v.language,
            name=language_name(v.language, in_lang),
            state=v.state,
            approved=bool(v.approved_by),
            together=v.state == ReleaseState.SCHEDULED
            and release.state == ReleaseState.SCHEDULED
            and v.scheduled_at == release.scheduled_at,
        )
        for v in unsent_versions(session, release)
    ]


def local_time(moment: datetime | None, zone: tzinfo, lang: str = "en") -> str:
    """``moment`` in the press office's ``zone``, as ``lang`` writes it: ``2026-11-20 09:00
    CET`` in English (the workspace's format since the start), ``20 nov. 2026 09:00 CET`` in
    French (Babel's medium date); ``—`` for none."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone)
    if lang == "en":
        return f"{local:%Y-%m-%d %H:%M %Z}"
    from babel.dates import format_date

    return f"{format_date(local.date(), 'medium', locale=lang)} {local:%H:%M %Z}"


def parse_local(value: str, zone: tzinfo, what: str = "publish time") -> datetime:
    """A ``datetime-local`` form value (``2026-11-20T09:00``) read in the press office's
    ``zone``; one with an offset keeps it. Raises InputError naming ``what``."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise InputError(f"{what}: {value!r} is not a date and time", field=what) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)


def split_addresses(text: str) -> list[str]:
    """The addresses of a test form: separated by commas, semicolons, spaces or lines."""
    return [a for a in re.split(r"[\s,;]+", text) if a]


@dataclass(frozen=True)
class Chart:
    """Messages sent and failed per hour, laid out for an inline SVG."""

    width: int
    height: int
    top: int
    bottom: int
    left: int
    sent: list[Bar]
    failed: list[Bar]
    ticks: list[tuple[float, str]]  # x, hour label
    scale: list[tuple[float, int]]  # y, value
    rows: list[tuple[str, int, int]]  # hour label, sent, failed (the table version)
    total_sent: int
    total_failed: int


def chart(hours: Sequence[HourCount], zone: tzinfo, say: Callable[[str], str] = str) -> Chart:
    """The bars and labels of the chart of ``hours`` (oldest first), hours labelled in the
    press office's ``zone``: per hour a sent bar and a failed bar side by side, each bar's
    label in the page's language (``say``: its gettext)."""
    width, height, top, bottom, left = 720, 220, 10, 30, 44
    plot_w, plot_h = width - left - 6, height - top - bottom
    peak = _ceiling(max([h.sent for h in hours] + [h.failed for h in hours] + [1]))
    slot = plot_w / max(len(hours), 1)
    bar_w = max(slot * 0.4, 1.0)
    sent: list[Bar] = []
    failed: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    rows: list[tuple[str, int, int]] = []
    for i, hour in enumerate(hours):
        x = left + i * slot + slot * 0.1
        local = hour.start.astimezone(zone)
        label = f"{local:%H:%M}"
        rows.append((f"{local:%Y-%m-%d %H:%M}", hour.sent, hour.failed))
        for bars, value, dx in ((sent, hour.sent, 0.0), (failed, hour.failed, bar_w)):
            h = plot_h * value / peak
            what = say("{hour}: {count} sent" if bars is sent else "{hour}: {count} failed")
            bars.append(
                Bar(
                    round(x + dx, 1),
                    round(top + plot_h - h, 1),
                    round(bar_w, 1),
                    round(h, 1),
                    what.format(hour=label, count=value),
                )
            )
        if i % 3 == 0:
            ticks.append((round(left + i * slot + slot / 2, 1), label))
    marks = sorted({0, peak // 2, peak})
    scale = [(round(top + plot_h - plot_h * v / peak, 1), v) for v in marks]
    return Chart(
        width,
        height,
        top,
        bottom,
        left,
        sent,
        failed,
        ticks,
        scale,
        rows,
        sum(h.sent for h in hours),
        sum(h.failed for h in hours),
    )


def fill(text: str, **values: object) -> Markup:
    """A translated label's ``{name}`` places filled with ``values``, escaped — except a
    value marked safe, the template's own markup (``<code>…</code>``): so a translation
    moves the markup with the words, and a title typed by someone stays text."""
    return escape(text).format(**values)


def return_address(request: Request) -> str:
    """Where the language switch brings the browser back: this page's address for a GET;
    for the answer to a form, the nearest page above it that a GET opens (a refused test
    send answers at ``/admin/releases/3/test``: back at ``/admin/releases/3``)."""
    path = request.url.path
    if request.method == "GET":
        return path + (f"?{request.url.query}" if request.url.query else "")
    while path.startswith(PREFIX + "/"):
        scope = {"type": "http", "path": path, "root_path": "", "method": "GET"}
        if any(route.matches(scope)[0] == Match.FULL for route in request.app.routes):
            return path
        path = path.rsplit("/", 1)[0]
    return PREFIX


# Every dashboard's environment is configured alike: they share compiled templates.
_COMPILED = CompiledTemplates()


class Dashboard:
    """What the dashboard's routes share in one app: its settings, the templates (with the
    press office's name and time zone), the script and style sheet once read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.secure = settings.site_url.startswith("https:")
        self.zone = settings.zone
        loader = FileSystemLoader(settings.templates_dir / "admin")
        self.env = Environment(loader=loader, autoescape=True, bytecode_cache=_COMPILED)
        self.env.globals.update(
            organisation=settings.organisation,
            timezone=settings.timezone,
            require_approval=settings.require_approval,
        )
        self.env.filters["local"] = pass_context(
            lambda context, moment: local_time(moment, self.zone, context.get("lang", "en"))
        )
        # A time as a datetime-local field holds it, in the press office's zone.
        self.env.filters["local_input"] = lambda moment: (
            f"{moment.astimezone(self.zone):%Y-%m-%dT%H:%M}"
        )
        self.env.filters["person"] = person
        self.env.filters["fill"] = fill
        self.assets: dict[str, tuple[str, str]] = {}

    def csrf_for(self, request: Request) -> str:
        """The CSRF value for a form: the browser's own while it is fresh (so two tabs both
        work), else a new one."""
        current = request.cookies.get(CSRF_COOKIE, "")
        try:
            signer(self.settings, Purpose.CSRF).unsign(current, max_age=CSRF_REUSE_AGE)
            return current
        except BadSignature:
            return new_csrf_token(self.settings)

    def translator(self, request: HTTPConnection) -> Translator:
        """The workspace in the language ``request`` is answered in (workspace_i18n)."""
        return translator(workspace_language(request))

    def fragment(self, request: Request, name: str, **context: Any) -> str:
        """The template ``name`` (a page or a piece of one) rendered with ``context`` in
        the request's language: ``lang``, ``_`` and ``ngettext`` for its labels, ``say``
        for a message made in Python."""
        words = self.translator(request)
        return self.env.get_template(name).render(
            prefix=PREFIX,
            lang=words.lang,
            _=words.gettext,
            ngettext=words.ngettext,
            say=words.say,
            **context,
        )

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        """The template ``name`` with ``context``, in the request's language — its
        messages from Python (``error``, ``done``, ``title``, ``text``) translated as
        ``Translator.say`` can, the switch to the other languages in its header, its
        scripts' strings —, a CSRF value in its forms and its cookie."""
        token = self.csrf_for(request)
        words = self.translator(request)
        for key in ("error", "done", "title", "text"):
            if isinstance(context.get(key), str):
                context[key] = words.say(context[key])
        here = quote(return_address(request), safe="/")
        switch = [
            (code, label, f"{PREFIX}/language/{code}?next={here}")
            for code, label in WORKSPACE_LANGUAGES.items()
            if code != words.lang
        ]
        html = self.fragment(
            request,
            name,
            csrf=token,
            language_links=switch,
            script_strings=words.script_strings(),
            **context,
        )
        response = HTMLResponse(html, status_code=status)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            max_age=CSRF_MAX_AGE,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )
        return response

    def logged_in(self, value: str) -> RedirectResponse:
        """To the dashboard, with the session cookie of a new session (its ``value``)."""
        response = RedirectResponse(PREFIX, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=COOKIE_MAX_AGE,
            path=PREFIX,
            httponly=True,
            samesite="lax",  # a link to the workspace from an email opens it logged in
            secure=self.secure,
        )
        return response

    def code_step(self, step: str) -> RedirectResponse:
        """To the page that asks for the one-time code, holding the password's step."""
        response = RedirectResponse(f"{PREFIX}/login/code", status_code=303)
        response.set_cookie(
            CODE_COOKIE,
            step,
            max_age=CODE_STEP_SECONDS,
            path=PREFIX,
            httponly=True,
            samesite="strict",
            secure=self.secure,
        )
        return response

    def forget_session(self, response: Response) -> Response:
        """``response``, telling the browser to drop its session cookie."""
        response.delete_cookie(
            SESSION_COOKIE, path=PREFIX, httponly=True, samesite="lax", secure=self.secure
        )
        return response

    def to_login(self, request: Request) -> Response:
        """The answer to a request without a live session: 401 for ``progress.json``, else
        the login page (saying the session ended, when the browser had one)."""
        ended = SESSION_COOKIE in request.cookies
        if request.url.path.endswith(".json"):
            response: Response = JSONResponse({"error": "log in again"}, status_code=401)
        else:
            target = f"{PREFIX}/login" + ("?ended=1" if ended else "")
            response = RedirectResponse(target, status_code=303)
        return self.forget_session(response) if ended else response

    def check_csrf(self, request: Request, value: str) -> None:
        """Stop the request at a "form expired" page unless ``value`` is the CSRF cookie's."""
        if not csrf_ok(self.settings, request.cookies.get(CSRF_COOKIE), value):
            raise _Answer(
                self.render(
                    request,
                    "message.html",
                    403,
                    admin=None,
                    title="Form expired",
                    text=EXPIRED_FORM,
                )
            )

    def login_form(self, request: Request, status: int = 200, error: str = "") -> HTMLResponse:
        """The login page; ``error`` (with a 4xx ``status``) says why the login failed."""
        ended = request.query_params.get("ended") == "1" and not error
        return self.render(request, "login.html", status, admin=None, error=error, ended=ended)

    def release_page(
        self,
        request: Request,
        admin: Admin,
        release_id: int,
        status: int = 200,
        error: str = "",
        **context: Any,
    ) -> HTMLResponse:
        """The release's page; ``error`` (with a 4xx ``status``) says why an action failed."""
        done = DONE.get(request.query_params.get("done", ""), "") if not error else ""
        try:
            with session_scope(self.settings) as session:
                release = get_release(session, release_id)
                st = release_status(session, release_id)
                stats = release_statistics(session, release_id, self.settings.timezone)
                languages = sorted(translation_languages(session, release))
                history = release_history(session, release_id)
                topics = [t.slug for t in release.topics]
                # Counting the audience reads every subscription of its topics: only for a
                # release not sent yet, the one page that shows it.
                unsent = release.state in (ReleaseState.DRAFT, ReleaseState.SCHEDULED)
                audience = reach(session, release) if unsent else None
                versions = unsent_versions_of(session, release, self.translator(request).lang)
                told = 0
                if release.withdrawn_at is not None and "{notices}" in done:
                    told = notices.planned(
                        session, release_id, release.withdrawn_at, NoticeKind.WITHDRAWAL
                    )
        except NotFound as exc:
            return self.render(
                request,
                "message.html",
                status_of(exc),
                admin=admin,
                title="No such release",
                text=str(exc),
            )
        progress = Progress(st.counts)
        missing = [lang for lang in self.settings.languages if lang not in languages]
        words = self.translator(request)
        notices_planned = words.ngettext(
            "{count} withdrawal notice", "{count} withdrawal notices", told
        )
        if done:  # (gettext("") is the catalogue's header)
            done = words.gettext(done).format(notices=notices_planned.format(count=told))
        sweep = heartbeat.health(self.settings)
        if done and not sweep.alive and request.query_params.get("done") == "published":
            done = "Published; see the warning above."  # not "the workers are sending it"
        context.setdefault("addresses", admin.email)  # a test goes to yourself, unless changed
        return self.render(
            request,
            "release.html",
            status,
            admin=admin,
            release=release,
            st=st,
            stats=stats,
            daily=day_chart(stats.days, words.gettext),
            progress=progress,
            sending=is_sending(release.state, release.planned_at, progress),
            languages=languages,
            missing=[(lang, language_name(lang, words.lang)) for lang in missing],
            reach=audience,
            versions=versions if unsent else [],
            history=history,
            topics=topics,
            error=error,
            done=done,
            states=ReleaseState,
            sweep=sweep,
            **context,
        )

    def act(
        self,
        request: Request,
        admin: Admin,
        release_id: int,
        csrf: str,
        action: Callable[..., object],
        done: str,
    ) -> Response:
        """Run ``action(settings, release_id, admin.actor)`` once the form's CSRF value is
        checked; then ``done`` (a redirect, or a key of ``DONE`` on the release's page), or
        the release's page saying why it was refused."""
        self.check_csrf(request, csrf)
        try:
            action(self.settings, release_id, admin.actor)
        except DistributorError as exc:
            return self.failed(request, admin, release_id, exc)
        if done.startswith("/"):
            return RedirectResponse(done, status_code=303)
        return after(release_id, done)

    def failed(
        self, request: Request, admin: Admin, release_id: int, exc: DistributorError
    ) -> Response:
        """The release's page saying why an action on it was refused, with the error's status."""
        return self.release_page(request, admin, release_id, status_of(exc), str(exc))


def dashboard_of(connection: HTTPConnection) -> Dashboard:
    """The Dashboard of the app serving ``connection`` (``create_app`` made it)."""
    return part(connection, Dashboard)


async def app_dashboard(request: Request) -> Dashboard:
    """The Dashboard of the app serving the request (async: no worker thread for it)."""
    return dashboard_of(request)


Dash = Annotated[Dashboard, Depends(app_dashboard)]


def _session_owner(session: Session, found: AdminSession, settings: Settings) -> Admin | None:
    """Who the live session ``found`` belongs to, checked afresh: an enabled account, or a
    token neither revoked, nor without the scope, nor of a disabled account. None (and
    the token's sessions ended, when it was revoked) otherwise."""
    if found.user_id is not None:
        user = session.get(User, found.user_id)
        if user is None or user.disabled_at is not None:
            return None
        return Admin(
            user.name or user.email,
            user_caller(user.email, user.role),
            user.id,
            must_enrol(settings, user),
            user.totp_enabled_at is not None,
            user.email,
        )
    token = session.get(ApiToken, found.token_id) if found.token_id else None
    if token is None:
        return None
    if token.revoked_at is not None:
        end_token_sessions(session, token.id)
        return None
    if SCOPE not in token.scopes or (token.user and token.user.disabled_at is not None):
        return None
    now = utcnow()  # as the API records a use: to the minute
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED:
        token.last_used_at = now
    return Admin(token.name, token_caller_of(token))


def current_admin(request: Request, dash: Dash) -> Admin:
    """Who is logged in, checked afresh; else the request ends at the login page."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if cookie:
        # The block commits what it finds ended (an expired row, a revoked token's
        # sessions) before the request is turned away.
        with session_scope(dash.settings) as session:
            found = find_session(session, cookie)
            admin = _session_owner(session, found, dash.settings) if found else None
            if admin is not None:
                return admin
    raise _Answer(dash.to_login(request))


def logged_out(request: Request) -> Response | None:
    """The login answer for a request without a live session; None for a logged-in one."""
    try:
        current_admin(request, dashboard_of(request))
    except _Answer as answer:
        return answer.response
    return None


check_first(current_admin, logged_out)  # a form from nobody is refused before it is read

LoggedIn = Annotated[Admin, Depends(current_admin)]


def allowed(need: Can) -> Callable[..., Admin]:
    """A dependency answering who is logged in once it is known they may do ``need``; a
    page saying what they cannot do (403) otherwise."""

    def check(request: Request, admin: LoggedIn, dash: Dash) -> Admin:
        if admin.must_enrol:  # nothing else until two-factor login is set up
            raise _Answer(RedirectResponse(f"{PREFIX}/account/2fa", status_code=303))
        try:
            admin.caller.require(need)
        except Forbidden as exc:
            raise _Answer(
                dash.render(
                    request, "message.html", 403, admin=admin, title="Not allowed", text=str(exc)
                )
            ) from exc
        return admin

    return declare(check, need)


Writer = Annotated[Admin, Depends(allowed(Can.DRAFT))]
Publisher = Annotated[Admin, Depends(allowed(Can.PUBLISH))]
ReleaseId = Annotated[int, Path(ge=1, le=MAX_ID)]
Csrf = Annotated[str, Form()]

router = APIRouter(prefix=PREFIX, include_in_schema=False, route_class=AdminRoute)


def after(release_id: int, done: str) -> RedirectResponse:
    """Back to the release's page, announcing what was ``done`` (a key of ``DONE``)."""
    return RedirectResponse(f"{PREFIX}/releases/{release_id}?done={done}", status_code=303)


# --- login ------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, dash: Dash) -> Response:
    """The login form; the dashboard for a browser already logged in."""
    if request.cookies.get(SESSION_COOKIE):
        try:
            current_admin(request, dash)
            return RedirectResponse(PREFIX, status_code=303)
        except _Answer:
            return dash.forget_session(dash.login_form(request))
    return dash.login_form(request)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    dash: Dash,
    email: Annotated[str, Form(max_length=400)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD)] = "",
    token: Annotated[str, Form()] = "",
    csrf: Csrf = "",
) -> Response:
    """A new session for an account's address and password (or for a token with the
    releases scope), then the dashboard; the login form again, saying why, otherwise —
    the same words whether or not the address has an account."""
    if not csrf_ok(dash.settings, request.cookies.get(CSRF_COOKIE), csrf):
        return dash.login_form(request, 403, EXPIRED_FORM)
    ended = request.cookies.get(SESSION_COOKIE, "")  # a new id at each login: this one ends
    try:
        if token.strip() and not email.strip():
            value = _token_login(dash.settings, token.strip(), ended)
        else:
            address = request.client.host if request.client else ""
            done = actions.log_in(dash.settings, email, password, address, ended)
            if done.code_step is not None:
                return dash.code_step(done.code_step)
            value = done.session or ""
    except (Unauthorized, Forbidden) as exc:
        refused = dash.login_form(request, status_of(exc), _login_refusal(exc, bool(token)))
        if isinstance(exc, TooManyAttempts):
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    return dash.logged_in(value)


def _token_login(settings: Settings, token: str, ended: str) -> str:
    """A new session for ``token`` (it must have the releases scope); its cookie value."""
    with session_scope(settings) as session:
        found = authenticate(session, token, SCOPE)
        end_session(session, ended)
        return start_session(session, found.id)


def _login_refusal(exc: DistributorError, with_token: bool) -> str:
    """What the login form says when a login is refused."""
    if isinstance(exc, TooManyAttempts):
        said = str(exc)
        return said[:1].upper() + said[1:] + "."
    if with_token:
        if isinstance(exc, Forbidden):
            return "This token does not have the releases scope."
        return "This token is not valid: unknown, revoked or mistyped."
    return "Wrong email address or password."


@router.post("/logout")
def logout(request: Request, dash: Dash, csrf: Csrf = "") -> Response:
    """End the session (its cookie, if copied, opens nothing now); then the login page."""
    dash.check_csrf(request, csrf)
    with session_scope(dash.settings) as session:
        end_session(session, request.cookies.get(SESSION_COOKIE, ""))
    return dash.forget_session(RedirectResponse(f"{PREFIX}/login", status_code=303))


# --- the dashboard ----------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, admin: Writer, dash: Dash) -> HTMLResponse:
    """The releases with their progress, subscribers per topic and language, the chart of
    messages sent and failed per hour, and whether the sweep is alive."""
    settings = dash.settings
    with session_scope(settings) as session:
        releases = releases_overview(session, RELEASES_SHOWN)
        table = subscribers_by_topic_language(session, settings.languages, settings.languages[0])
        hours = sends_over_time(session, utcnow(), CHART_HOURS)
        fetched = site_statistics(session, settings.timezone, STATS_DAYS)
    return dash.render(
        request,
        "dashboard.html",
        admin=admin,
        releases=releases,
        table=table,
        chart=chart(hours, dash.zone, dash.translator(request).gettext),
        daily=day_chart(fetched.days, dash.translator(request).gettext),
        stats_days=STATS_DAYS,
        sweep=heartbeat.health(settings),
        done=DONE.get(request.query_params.get("done", ""), ""),
    )


@router.get("/releases/{release_id}/progress.json")
def progress_json(release_id: ReleaseId, admin: Writer, dash: Dash) -> JSONResponse:
    """A release's delivery progress (``progress_out``), polled during a send; 404 JSON
    for no such release."""
    with session_scope(dash.settings) as session:
        found = release_progress(session, release_id)
    if found is None:
        return JSONResponse({"error": f"no release with id {release_id}"}, status_code=404)
    return JSONResponse(progress_out(found))


# --- one release ------------------------------------------------------------------------


@router.get("/releases/{release_id}", response_class=HTMLResponse)
def release_detail(request: Request, release_id: ReleaseId, admin: Writer, dash: Dash) -> Response:
    """The release's page: its state, delivery, history and the actions on it."""
    return dash.release_page(request, admin, release_id)


@router.get("/releases/{release_id}/preview/{lang}.html")
def preview_html(release_id: ReleaseId, lang: str, admin: Writer, dash: Dash) -> Response:
    """The release's email in ``lang`` as HTML, under the email preview's CSP; the error
    as text with its status when it cannot be rendered."""
    try:
        preview = render_preview(dash.settings, release_id, lang)
    except DistributorError as exc:
        return PlainTextResponse(str(exc), status_code=status_of(exc))
    return HTMLResponse(
        preview.html,
        headers={"Content-Security-Policy": PREVIEW_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@router.get("/releases/{release_id}/preview/{lang}.txt")
def preview_text(release_id: ReleaseId, lang: str, admin: Writer, dash: Dash) -> Response:
    """The release's email in ``lang`` as its headers and plain-text part; the error as
    text with its status when it cannot be rendered."""
    try:
        preview = render_preview(dash.settings, release_id, lang)
    except DistributorError as exc:
        return PlainTextResponse(str(exc), status_code=status_of(exc))
    head = "".join(f"{name}: {value}\n" for name, value in preview.headers.items())
    return PlainTextResponse(
        head + "\n" + preview.text, headers={"Content-Security-Policy": PREVIEW_CSP}
    )


@router.post("/releases/{release_id}/test", response_class=HTMLResponse)
def test_send(
    request: Request,
    release_id: ReleaseId,
    admin: Writer,
    dash: Dash,
    addresses: Annotated[str, Form()] = "",
    csrf: Csrf = "",
) -> Response:
    """Send the release to the form's test addresses; its page with each outcome (502
    when one failed), or with the error."""
    dash.check_csrf(request, csrf)
    try:
        outcomes = send_test(dash.settings, release_id, split_addresses(addresses))
    except DistributorError as exc:
        return dash.release_page(
            request, admin, release_id, status_of(exc), str(exc), addresses=addresses
        )
    status = 200 if all(o.sent for o in outcomes) else 502
    return dash.release_page(request, admin, release_id, status, tested=outcomes)


@router.get("/releases/{release_id}/publish", response_class=HTMLResponse)
def publish_page(request: Request, release_id: ReleaseId, admin: Publisher, dash: Dash) -> Response:
    """The step before publishing now: how many people it goes to (per language version
    and topic), and the button that sends it."""
    try:
        with session_scope(dash.settings) as session:
            release = get_release(session, release_id)
            audience = reach(session, release)
            versions = unsent_versions_of(session, release, dash.translator(request).lang)
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    return dash.render(
        request, "publish.html", admin=admin, release=release, reach=audience, versions=versions
    )


@router.post("/releases/{release_id}/publish", response_class=HTMLResponse)
def publish(
    request: Request,
    release_id: ReleaseId,
    admin: Publisher,
    dash: Dash,
    queue: AppQueue,
    at: Annotated[str, Form()] = "",
    version: Annotated[list[int], Form()] = [],  # noqa: B006 (FastAPI copies a default)
    advance: Annotated[str, Form(max_length=10)] = "",
    advance_at: Annotated[str, Form(max_length=40)] = "",
    csrf: Csrf = "",
) -> Response:
    """Publish the release now, or schedule it at the form's local time, with the unsent
    language versions ticked (``version``: their ids), and its embargoed advance copies
    (``advance``: "" none, "now", or "at" ``advance_at``); back to its page."""
    dash.check_csrf(request, csrf)
    try:
        when = parse_local(at, dash.zone) if at.strip() else None
        early = None
        if advance == "now":
            early = datetime.now(UTC)
        elif advance == "at":
            early = parse_local(advance_at, dash.zone, "advance copies' time")
        release = actions.publish(
            dash.settings, queue.get(), release_id, when, by=admin.actor, with_versions=version,
            advance=early,
        )  # fmt: skip
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    return after(release_id, "published" if release.state == "published" else "scheduled")


@router.post("/releases/{release_id}/approval-request", response_class=HTMLResponse)
def ask_approval(
    request: Request, release_id: ReleaseId, admin: Writer, dash: Dash, csrf: Csrf = ""
) -> Response:
    """Ask for the draft's approval (the two-person rule); back to its page."""
    return dash.act(
        request, admin, release_id, csrf, actions.request_approval, "approval-requested"
    )


@router.post("/releases/{release_id}/approve", response_class=HTMLResponse)
def approve(
    request: Request, release_id: ReleaseId, admin: Publisher, dash: Dash, csrf: Csrf = ""
) -> Response:
    """Approve the release as it is now (not its last editor); back to its page."""
    return dash.act(request, admin, release_id, csrf, actions.approve, "approved")


@router.post("/releases/{release_id}/unschedule", response_class=HTMLResponse)
def unschedule_release(
    request: Request, release_id: ReleaseId, admin: Publisher, dash: Dash, csrf: Csrf = ""
) -> Response:
    """Make a scheduled release a draft again (nothing was sent); back to its page."""
    return dash.act(request, admin, release_id, csrf, actions.unschedule, "unscheduled")


@router.get("/releases/{release_id}/withdraw", response_class=HTMLResponse)
def withdraw_page(
    request: Request, release_id: ReleaseId, admin: Publisher, dash: Dash
) -> Response:
    """The form that withdraws the release (with a reason), after saying what it does."""
    try:
        with session_scope(dash.settings) as session:
            release = get_release(session, release_id)
            st = release_status(session, release_id)
    except NotFound as exc:
        return dash.render(
            request,
            "message.html",
            status_of(exc),
            admin=admin,
            title="No such release",
            text=str(exc),
        )
    return dash.render(request, "withdraw.html", admin=admin, release=release, st=st)


@router.post("/releases/{release_id}/withdraw", response_class=HTMLResponse)
def withdraw(
    request: Request,
    release_id: ReleaseId,
    admin: Publisher,
    dash: Dash,
    queue: AppQueue,
    reason: Annotated[str, Form()] = "",
    notify: Annotated[bool, Form()] = False,
    csrf: Csrf = "",
) -> Response:
    """Withdraw the release (off the site, unsent messages cancelled), sending a withdrawal
    notice to those who received it when the box is ticked; back to its page."""
    dash.check_csrf(request, csrf)
    try:
        actions.withdraw(dash.settings, queue.get(), release_id, admin.actor, reason, notify=notify)
    except DistributorError as exc:
        return dash.failed(request, admin, release_id, exc)
    return after(release_id, "withdrawn-notified" if notify else "withdrawn")


# --- the script and the style sheet -----------------------------------------------------


@router.get("/static/{name}")
def asset(name: str, dash: Dash) -> Response:
    """The dashboard's scripts or style sheet (read once per app); 404 for any other name."""
    types = {
        "admin.js": "text/javascript",
        "uploads.js": "text/javascript",
        "editor.js": "text/javascript",
        "admin.css": "text/css",
    }
    if name not in types:
        return PlainTextResponse("not found", status_code=404)
    if name not in dash.assets:
        path = dash.settings.templates_dir / "admin" / name
        dash.assets[name] = (path.read_text(encoding="utf-8"), types[name])
    body, media_type = dash.assets[name]
    return Response(body, media_type=f"{media_type}; charset=utf-8")


def progress_out(found: ReleaseProgress) -> dict[str, Any]:
    """What ``progress.json`` answers: the state, each count, planned, done, percent, and
    whether the release is still being sent."""
    p = found.progress
    return {
        "release_id": found.release_id,
        "state": found.state,
        **p.counts,
        "planned": p.planned,
        "done": p.done,
        "percent": p.percent,
        "sending": found.sending,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
