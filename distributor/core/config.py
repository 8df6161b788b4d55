"""One typed Settings object, built once from ``DISTRIBUTOR_*`` environment variables.

Every component receives the Settings it needs; nothing reads the environment elsewhere
(tests/test_environment_reader.py checks it): what another module needs from it — the
secrets its logs mask, the failpoints armed, the environment a child process inherits —
comes from a function here.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from distributor.core import filemodes, identity
from distributor.core.errors import ConfigError, InputError
from distributor.core.logs import MASK, redact, split_url_list

REPO_ROOT = Path(__file__).resolve().parents[2]
_GENERATED_KEYS: dict[Path, str] = {}  # data dir key file → key, read once per process

# Every placeholder key distributor has ever shipped (docker-compose.yml, README): known to
# anyone, so as good as no key. Add to this list, never remove from it.
PLACEHOLDER_KEYS = frozenset({"change-me-to-a-long-random-string"})
# Words a placeholder is made of. Six letters or more: a generated key contains one of them
# by chance about once in three million.
_PLACEHOLDER_WORDS = tuple(
    "change replace example placeholder secret password default insecure".split()
)
MIN_KEY_LENGTH = 32
_MIN_DISTINCT = 8  # random keys of 32+ characters have 9 or more (hex) — 22 or more (base64)
MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


_URL_FIELDS = ("database_url", "broker_url", "smtp_url", "websub_hub")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FAILPOINTS_ENV = "DISTRIBUTOR_FAILPOINTS"
# The sweep (beat's job) repairs what lost wake-ups and dead workers leave: this often.
SWEEP_SECONDS = 30.0
# Beat folds the ledger's rows past DISTRIBUTOR_LEDGER_RETENTION_DAYS (outbox/retention.py)
# this often: a fold finds nothing new most hours, and rows a day or more old can wait.
FOLD_SECONDS = 3600.0


class Settings(BaseSettings):
    """Configuration of one distributor installation (see README.md for each variable)."""

    model_config = SettingsConfigDict(env_prefix="DISTRIBUTOR_", extra="ignore", frozen=True)

    data_dir: Path = Path("./var")
    database_url: str | None = None
    broker_url: str | None = None
    smtp_url: str | None = None
    site_url: str = "http://localhost:8000"
    secret_key: str | None = None
    sender: str = "Press Office <press@example.org>"
    send_rate: float = Field(default=0.0, ge=0)
    domain_rate: float = Field(default=0.0, ge=0)
    domain_concurrency: int = Field(default=0, ge=0)
    dkim_key_file: Path | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    # The office's identity (core/identity.py): a value set here wins over the settings
    # page's (office/identity.py), which shows it read-only. ORGANISATION is the name in the
    # default (first) language; ORGANISATION_NAMES a JSON object of the others' names.
    organisation: str = identity.DEFAULT_ORGANISATION
    organisation_names: dict[str, str] = Field(default_factory=dict)
    logo_file: Path | None = None
    accent_colour: str | None = None
    postal_address: str | None = None
    privacy_url: str | None = None
    reply_to: str | None = None
    languages: tuple[str, ...] = ("en", "fr")
    templates_dir: Path = REPO_ROOT / "templates"
    batch_size: int = Field(default=250, ge=1, le=10_000)
    # How long a claimed batch stays with its worker: after a worker dies, its rows wait
    # this long (plus up to a sweep) before another takes them. A press office counts in
    # minutes: with 300 s, recovery from a killed worker took 327-337 s; with 60 s, 86 s
    # (bench/recovery.py). A living batch renews its lease every third of it (one UPDATE a
    # batch every 20 s), between two messages: renewals are never further apart than that
    # plus one SMTP reply (DISTRIBUTOR_SMTP_TIMEOUT, 30 s), so keep it above 1.5 × that.
    lease_seconds: int = Field(default=60, ge=5)
    # How many outcomes a worker commits together (at most OUTCOME_GROUP_SECONDS apart): a
    # commit per message bounded PostgreSQL at one fsync a message. A worker killed between
    # the relay's acceptance and the group's commit leaves up to this many rows in doubt
    # (reconciled, or sent again: README, Guarantees); 1 commits each on its own.
    outcome_group: int = Field(default=32, ge=1, le=1000)
    visibility_timeout: int = Field(default=3600, ge=60)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    give_up_after_seconds: float = Field(default=2 * 86400.0, gt=0)
    smtp_timeout: float = Field(default=30.0, gt=0)
    # One Postfix log, or one per relay separated by commas (see reconcile_logs).
    sweep_seconds: float = Field(default=SWEEP_SECONDS, ge=1)
    reconcile_log: Path | None = None
    relay_backoff_seconds: float = Field(default=60.0, gt=0)
    worker_concurrency: int = Field(default=2, ge=1)
    feed_size: int = Field(default=50, ge=1)
    confirm_max_age_days: int = Field(default=7, ge=1)
    # Ledger rows (deliveries, notices) of a release whose sending ended this many days ago
    # are folded into per-release counts (outbox/retention.py); 0: every row kept forever.
    ledger_retention_days: int = 0
    # Publishers and admins must use a one-time code (TOTP) at login (office/totp.py).
    require_totp: bool = False
    # A release is published only once someone other than its last editor approved it.
    require_approval: bool = False
    # Fetches of the public files counted per hour, no personal data (reporting/counting.py).
    statistics: bool = True
    # nginx's address-free access log of the public files it serves itself, read by the
    # statistics' flush (reporting/stats_log.py); unset: only the app's answers count.
    statistics_log: Path | None = None
    rate_limit_requests: int = Field(default=10, ge=1)
    rate_limit_window_seconds: int = Field(default=600, ge=1)
    soft_bounce_limit: int = Field(default=3, ge=1)
    websub_hub: str | None = None
    timezone: str = "Europe/Paris"
    # When digests go out (outbox/digests.py): daily at this hour, weekly on Monday at it,
    # in the press office's zone (``timezone``).
    digest_hour: int = Field(default=8, ge=0, le=23)
    # Unset: WARNING for the CLI's own commands, INFO for the processes that run (workers).
    log_level: str | None = None

    def __repr_args__(self) -> Any:
        # Settings end up in tracebacks, debuggers and test output: show no secret there.
        for name, value in super().__repr_args__():
            if name == "secret_key" and value:
                yield name, MASK
            elif name in _URL_FIELDS and isinstance(value, str):
                yield name, redact(value, [])
            else:
                yield name, value

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"DISTRIBUTOR_TIMEZONE must be an IANA time zone such as Europe/Paris, "
                f"not {value!r}"
            ) from exc
        return value

    feed_rate_limit: int = Field(default=30, ge=0)

    @field_validator("reconcile_log", "statistics_log", mode="before")
    @classmethod
    def _empty_log_is_none(cls, value: object) -> object:
        # An empty variable (docker-compose passes `${DISTRIBUTOR_RECONCILE_LOG:-}`) means no
        # log, not the current directory, which is what Path("") would make of it.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ledger_retention_days", mode="before")
    @classmethod
    def _check_retention(cls, value: object) -> object:
        # Said in the variable's own words: pydantic's "greater than or equal to 0" does not
        # say what 0 means, and an empty variable (docker-compose's `${VAR:-}`) is unset.
        if value is None or (isinstance(value, str) and not value.strip()):
            return 0
        try:
            days = int(str(value).strip())
        except ValueError:
            days = -1
        if days < 0:
            raise ValueError(
                "DISTRIBUTOR_LEDGER_RETENTION_DAYS must be a whole number of days, 0 or more "
                f"(0 or unset: keep every ledger row), not {value!r}"
            )
        return days

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.upper() not in _LOG_LEVELS:
            raise ValueError(
                f"DISTRIBUTOR_LOG_LEVEL must be one of {', '.join(_LOG_LEVELS)}, not {value!r}"
            )
        return value.upper()

    @field_validator("websub_hub")
    @classmethod
    def _check_hub(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"DISTRIBUTOR_WEBSUB_HUB must be an absolute http(s) URL, not {value!r}"
            )
        return value

    @field_validator("site_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"DISTRIBUTOR_SITE_URL must be an absolute http(s) URL, not {value!r}")
        # Every link of every email and feed starts with it: one a reader cannot follow
        # ("http://:8000", "http://@") or that a path appended to breaks ("…?a=b") is refused.
        if not parts.hostname or "@" in parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                "DISTRIBUTOR_SITE_URL must name a host, with no user, query or fragment "
                f"(every link starts with it), not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        if "\r" in value or "\n" in value or "@" not in parseaddr(value)[1]:
            raise ValueError(f"DISTRIBUTOR_SENDER must be 'Name <address>', not {value!r}")
        _a_label_address(parseaddr(value)[1])  # an IDN domain must have an A-label
        return value

    @field_validator("organisation")
    @classmethod
    def _check_organisation(cls, value: str) -> str:
        return str(_identity_value(identity.check_name, value, "organisation", required=True))

    @field_validator("organisation_names")
    @classmethod
    def _check_names(cls, value: dict[str, str]) -> dict[str, str]:
        return {
            lang: _identity_value(identity.check_name, name, "organisation_names", required=False)
            for lang, name in value.items()
        }

    @field_validator("accent_colour")
    @classmethod
    def _check_accent(cls, value: str | None) -> str | None:
        return _identity_value(identity.check_colour, value, "accent_colour") if value else None

    @field_validator("postal_address")
    @classmethod
    def _check_postal(cls, value: str | None) -> str | None:
        # "\\n" in a .env value (one line) stands for a line break of the address.
        value = value.replace("\\n", "\n") if value else value
        return _identity_value(identity.check_postal_address, value, "postal_address") or None

    @field_validator("privacy_url")
    @classmethod
    def _check_privacy(cls, value: str | None) -> str | None:
        return _identity_value(identity.check_url, value, "privacy_url") or None

    @field_validator("reply_to")
    @classmethod
    def _check_reply_to(cls, value: str | None) -> str | None:
        checked = _identity_value(identity.check_mailbox, value, "reply_to", required=False)
        return checked or None

    @field_validator("logo_file", mode="before")
    @classmethod
    def _empty_logo_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def zone(self) -> ZoneInfo:
        """The press office's time zone: times are stored in UTC and shown in this one."""
        return ZoneInfo(self.timezone)

    @property
    def effective_database_url(self) -> str:
        """The database URL in use: the configured one, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'distributor.db'}"

    @property
    def outbox_dir(self) -> Path:
        """The Maildir written to when no SMTP URL is configured."""
        return self.data_dir / "outbox"

    @property
    def quarantine_dir(self) -> Path:
        """Where incoming mail that could not be processed is kept (``bounces/``, and its
        log ``bounces.log``)."""
        return self.data_dir / "quarantine"

    @property
    def public_dir(self) -> Path:
        """Where the static site is written: newsroom pages and every feed."""
        return self.data_dir / "public"

    @property
    def sender_address(self) -> str:
        """The bare address part of ``sender``, an internationalised domain written as its
        IDNA A-label (``presse@bücher.example`` → ``presse@xn--bcher-kva.example``), so that
        the envelope sender, the VERP bounce addresses, Message-IDs and List-Id stay ASCII."""
        return _a_label_address(parseaddr(self.sender)[1])

    @property
    def sender_domain(self) -> str:
        """The domain of the sender address, ASCII (used for Message-ID, List-Id and the
        VERP bounce addresses)."""
        return self.sender_address.rpartition("@")[2]

    @property
    def smtp_urls(self) -> list[str]:
        """The relays of ``DISTRIBUTOR_SMTP_URL``, in order of preference: one URL, or
        several separated by commas (a comma inside a password does not split: only one
        followed by a scheme, ``smtp://``…). Empty when no SMTP URL is set."""
        return split_url_list(self.smtp_url or "")

    @property
    def reconcile_logs(self) -> list[Path]:
        """The Postfix logs of ``DISTRIBUTOR_RECONCILE_LOG``: one path, or one per relay
        separated by commas. Empty when none is set."""
        if self.reconcile_log is None:
            return []
        return [Path(part.strip()) for part in str(self.reconcile_log).split(",") if part.strip()]

    @property
    def effective_secret_key(self) -> str:
        """The signing key: the configured one, or one generated once and kept in the data dir.

        ``DISTRIBUTOR_SECRET_KEY`` may hold several keys separated by spaces; the first signs,
        all verify (key rotation).
        """
        if self.secret_key:
            return self.secret_key
        # Asked twice per message sent: a dict lookup, no file system call. Not cached on
        # the object itself, whose copies (model_copy) would share it.
        path = self.generated_key_file
        if path not in _GENERATED_KEYS:
            if not path.exists():
                _generate_key(path)
            filemodes.keep_private(path)  # made readable by an older version or by hand
            _GENERATED_KEYS[path] = path.read_text().strip()
        return _GENERATED_KEYS[path]

    @property
    def generated_key_file(self) -> Path:
        """Where the key used when ``DISTRIBUTOR_SECRET_KEY`` is not set is kept."""
        return self.data_dir / "secret_key"


def _generate_key(path: Path) -> None:
    """Write a new random key to ``path`` (``0600`` from its first byte), unless another
    process has just done so: the file appears whole, and the first one written is kept."""
    filemodes.data_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = filemodes.open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
        os.link(tmp, path)  # never replaces a key another process wrote meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def weak_key_reason(key: str) -> str | None:
    """Why ``key`` cannot guard anything — a placeholder, too short, not random-looking —
    or None when it can. The reason never quotes the key."""
    if key.strip().lower() in PLACEHOLDER_KEYS:
        return "it is the placeholder shipped in docker-compose.yml, known to anyone"
    if len(key) < MIN_KEY_LENGTH:
        length = f"{len(key)} character" + ("" if len(key) == 1 else "s")
        return f"it is {length} long; at least {MIN_KEY_LENGTH} random characters are needed"
    word = next((w for w in _PLACEHOLDER_WORDS if w in key.lower()), None)
    if word is not None:
        return f"it looks like a placeholder (it contains the word {word!r})"
    if len(set(key)) < _MIN_DISTINCT or key in (key + key)[1:-1]:
        return "it does not look random (too few different characters, or a repeated text)"
    return None


def check_secret_key(settings: Settings) -> None:
    """Raise ConfigError unless every key that verifies signatures is strong: each key
    listed in ``DISTRIBUTOR_SECRET_KEY`` (any of them verifies a forged link), or, when it
    is not set, the key generated in the data directory. The servers and workers call this
    before they start; the message names the variable and how to make a key."""
    if settings.secret_key:
        keys = settings.secret_key.split()
        if not keys:
            raise ConfigError(
                f"DISTRIBUTOR_SECRET_KEY holds only spaces; set it to a random key: {MAKE_A_KEY}"
            )
        for number, key in enumerate(keys, 1):
            reason = weak_key_reason(key)
            if reason is not None:
                which = f"key {number} of {len(keys)}" if len(keys) > 1 else "the key"
                raise ConfigError(
                    f"DISTRIBUTOR_SECRET_KEY: {which} is too weak: {reason}. Every key listed "
                    "verifies links, forms and bounce addresses, so each must be random. "
                    f"Make one with: {MAKE_A_KEY}"
                )
        return
    reason = weak_key_reason(settings.effective_secret_key)
    if reason is not None:
        raise ConfigError(
            f"the key in {settings.generated_key_file} is too weak: {reason}. Delete the file "
            f"to have a new one generated, or set DISTRIBUTOR_SECRET_KEY (make one with: "
            f"{MAKE_A_KEY}). Links signed with the old key stop working."
        )


def _identity_value(check: Any, value: str | None, name: str, **options: Any) -> Any:
    """``value`` as ``check`` (a check of core/identity.py) returns it; its InputError as the
    ValueError pydantic expects, naming the variable. None and "" pass as they are."""
    if not value:
        return value
    try:
        return check(value, f"DISTRIBUTOR_{name.upper()}", **options)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def a_label_address(address: str) -> str:
    """``address`` with its domain as an IDNA A-label (``presse@bücher.example`` →
    ``presse@xn--bcher-kva.example``); unchanged when the domain is ASCII."""
    return _a_label_address(address)


@functools.cache
def _a_label_address(address: str) -> str:
    """``address`` with its domain as an IDNA 2008 A-label, by email-validator as for
    subscribers; unchanged when the domain is ASCII. Raises ValueError for a domain that
    has no A-label."""
    local, _, domain = address.rpartition("@")
    if domain.isascii():
        return address
    # Imported here: only a sender with a non-ASCII domain needs it, and every command
    # reads the settings (email-validator's import is a twentieth of `releases status`).
    from email_validator import EmailNotValidError, validate_email

    try:
        checked = validate_email(
            address, check_deliverability=False, allow_smtputf8=True, globally_deliverable=False
        )
    except EmailNotValidError as exc:
        raise ValueError(f"DISTRIBUTOR_SENDER: {address!r}: {exc}") from None
    return f"{local}@{checked.ascii_domain}"


def describe(exc: ValidationError) -> str:
    """A ValidationError from building Settings in one line: each refused variable by its
    name, with why."""
    parts = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        name = "DISTRIBUTOR_" + "_".join(str(part) for part in error["loc"]).upper()
        parts.append(message if name in message else f"{name}: {message}")
    return "; ".join(parts) or str(exc)


def load_settings(**overrides: object) -> Settings:
    """Build the Settings from the environment, with explicit ``overrides`` taking precedence."""
    return Settings(**overrides)  # type: ignore[arg-type]


def configured_secrets(settings: Settings) -> list[str]:
    """The secret values of ``settings``, longest first, for the log redactor to mask
    (``logs.RedactingFormatter``): the signing keys and the passwords of the SMTP URLs (every
    relay's), the database URL and the broker URL, each as written and decoded. Values
    shorter than four characters are left out: masking them would garble ordinary words."""
    found = set((settings.secret_key or "").split())
    for value in (settings.smtp_url, settings.database_url, settings.broker_url):
        for url in split_url_list(value or ""):
            try:
                password = urlsplit(url).password
            except ValueError:  # a malformed URL: Settings users say what is wrong with it
                continue
            if password:
                found |= {password, unquote(password)}
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def failpoint_spec() -> str:
    """The failpoints armed in this process (core/failpoints.py): the value of
    ``DISTRIBUTOR_FAILPOINTS``, or an empty string when it is unset."""
    # Not a Settings field: a fault-injection knob of bench/faults.py and the tests that kill
    # a worker, set by nobody in production, so neither documented nor passed on by
    # environment_for like the installation's configuration.
    return os.environ.get(FAILPOINTS_ENV, "")


def inherited_environment(**changes: str) -> dict[str, str]:
    """This process's environment with ``changes`` applied: for a child process (the Celery
    program that ``distributor worker`` becomes, the demo's worker) that is configured like
    this one, but for the few variables it is given."""
    return {**os.environ, **changes}


def environment_for(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment (``base`` without its DISTRIBUTOR_* variables, plus ours) that gives a
    child process — a worker, a server — exactly these Settings."""
    env = {k: v for k, v in (base or {}).items() if not k.startswith("DISTRIBUTOR_")}
    # Only what was set: a default passed on would look set in the child (and the settings
    # page shows a value set in the environment as read-only).
    for name, value in settings.model_dump(mode="json", exclude_unset=True).items():
        if value is None:
            continue
        rendered = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
        env[f"DISTRIBUTOR_{name.upper()}"] = rendered
    return env
