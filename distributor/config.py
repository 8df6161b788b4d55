"""One typed Settings object, built once from ``DISTRIBUTOR_*`` environment variables.

Every component receives the Settings it needs; nothing reads the environment elsewhere.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .logs import MASK, redact

REPO_ROOT = Path(__file__).resolve().parent.parent
_GENERATED_KEYS: dict[Path, str] = {}  # data dir key file → key, read once per process


_URL_FIELDS = ("database_url", "broker_url", "smtp_url", "websub_hub")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# The sweep (beat's job) repairs what lost wake-ups and dead workers leave: this often.
SWEEP_SECONDS = 30.0


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
    organisation: str = "Press Office"
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
    visibility_timeout: int = Field(default=3600, ge=60)
    retry_base_seconds: float = Field(default=60.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    give_up_after_seconds: float = Field(default=2 * 86400.0, gt=0)
    smtp_timeout: float = Field(default=30.0, gt=0)
    sweep_seconds: float = Field(default=SWEEP_SECONDS, ge=1)
    reconcile_log: Path | None = None
    worker_concurrency: int = Field(default=2, ge=1)
    feed_size: int = Field(default=50, ge=1)
    confirm_max_age_days: int = Field(default=7, ge=1)
    rate_limit_requests: int = Field(default=10, ge=1)
    rate_limit_window_seconds: int = Field(default=600, ge=1)
    soft_bounce_limit: int = Field(default=3, ge=1)
    websub_hub: str | None = None
    timezone: str = "Europe/Paris"
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
        return value.rstrip("/")

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, value: str) -> str:
        if "\r" in value or "\n" in value or "@" not in parseaddr(value)[1]:
            raise ValueError(f"DISTRIBUTOR_SENDER must be 'Name <address>', not {value!r}")
        return value

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
    def public_dir(self) -> Path:
        """Where the static site is written: newsroom pages and every feed."""
        return self.data_dir / "public"

    @property
    def sender_address(self) -> str:
        """The bare address part of ``sender``."""
        return parseaddr(self.sender)[1]

    @property
    def sender_domain(self) -> str:
        """The domain of the sender address (used for Message-ID and List-Id)."""
        return self.sender_address.rpartition("@")[2]

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
        path = self.data_dir / "secret_key"
        if path not in _GENERATED_KEYS:
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(secrets.token_urlsafe(32) + "\n")
                path.chmod(0o600)
            _GENERATED_KEYS[path] = path.read_text().strip()
        return _GENERATED_KEYS[path]


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


def environment_for(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment (``base`` without its DISTRIBUTOR_* variables, plus ours) that gives a
    child process — a worker, a server — exactly these Settings."""
    env = {k: v for k, v in (base or {}).items() if not k.startswith("DISTRIBUTOR_")}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        rendered = json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
        env[f"DISTRIBUTOR_{name.upper()}"] = rendered
    return env
