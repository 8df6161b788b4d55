"""Two-factor login with one-time codes (TOTP, RFC 6238, as authenticator apps make them:
30-second steps, 6 digits, SHA-1), through pyotp.

A person enrols from the workspace: a new secret is kept on their account, shown as a QR code
(and in letters) for their app, and switched on once they type a code it made. From then on
a login asks for a code after the password. A code is accepted for the step before and after
the current one (a clock a little off), and only once: the step of the last code used is
kept, and a code of that step or an earlier one is refused (a code seen over a shoulder is
worth nothing afterwards). With ``DISTRIBUTOR_REQUIRE_TOTP``, publishers and admins must
enrol before they can do anything else. An admin can take a lost phone's enrolment off with
``distributor users reset-2fa EMAIL``.
"""

from __future__ import annotations

import functools
from datetime import datetime

import pyotp

from distributor.core.config import Settings
from distributor.core.errors import InputError, Unauthorized
from distributor.core.models import User, utcnow
from distributor.core.roles import Role

STEP_SECONDS = 30
WRONG_CODE = "this code is not right: type the 6 digits your app shows now"


def required(settings: Settings, user: User) -> bool:
    """Whether ``user`` must log in with a code: they enrolled, or their role requires it."""
    return user.totp_enabled_at is not None or must_enrol(settings, user)


def must_enrol(settings: Settings, user: User) -> bool:
    """Whether ``user`` has to enrol before anything else (the setting, for their role)."""
    return (
        settings.require_totp
        and user.totp_enabled_at is None
        and user.role in (Role.PUBLISHER, Role.ADMIN)
    )


def start_enrolment(user: User) -> str:
    """A new secret for ``user`` (replacing one not yet confirmed); returns it."""
    if user.totp_enabled_at is not None:
        raise InputError("two-factor login is on already", field="code")
    user.totp_secret = pyotp.random_base32()
    return user.totp_secret


def provisioning_uri(settings: Settings, user: User) -> str:
    """The ``otpauth://`` address an authenticator app reads (from the QR code)."""
    if user.totp_secret is None:
        raise InputError("no enrolment started", field="code")
    return pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name=settings.organisation
    )


@functools.lru_cache(maxsize=64)
def qr_svg(uri: str) -> str:
    """``uri`` as a QR code, an SVG element to put in a page (no script, no style)."""
    import segno  # only the enrolment page draws one

    svg: str = segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff")
    return svg


def confirm_enrolment(user: User, code: str, now: datetime | None = None) -> None:
    """Switch two-factor login on, once ``code`` is one the new secret makes; InputError
    (field ``code``) otherwise."""
    if user.totp_secret is None or user.totp_enabled_at is not None:
        raise InputError("start the enrolment again", field="code")
    if not _accept(user, code, now):
        raise InputError(WRONG_CODE, field="code")
    user.totp_enabled_at = utcnow()


def check_code(user: User, code: str, now: datetime | None = None) -> None:
    """Unauthorized unless ``code`` is a code of ``user``'s secret not used before."""
    if user.totp_secret is None or user.totp_enabled_at is None or not _accept(user, code, now):
        raise Unauthorized(WRONG_CODE)


def reset(user: User) -> None:
    """Take two-factor login off (a lost phone): the next login enrols again if required."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None


def _accept(user: User, code: str, now: datetime | None) -> bool:
    """Whether ``code`` matches the step before, at or after ``now`` and is later than the
    last one used (which it then becomes)."""
    digits = "".join(code.split())
    if user.totp_secret is None or len(digits) != 6 or not digits.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    moment = (now or utcnow()).timestamp()
    current = int(moment // STEP_SECONDS)
    for step in (current - 1, current, current + 1):
        if step <= (user.totp_last_step or -1):
            continue
        if totp.verify(digits, for_time=step * STEP_SECONDS, valid_window=0):
            user.totp_last_step = step
            return True
    return False
