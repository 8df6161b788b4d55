"""What the commands of one invocation share: its Settings, loaded when a command asks for
them, the logging set up from them, and how a time is shown.

Loading the Settings (pydantic-settings, the e-mail address checks) costs about a tenth of a
second: ``distributor --help``, a group's help and a usage error never pay it. So ``main()``
only arms logging (``log_on_demand``); it is set up from the Settings when a command first
loads them, or when something logs before that, whichever comes first."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from distributor.core import collector
from distributor.core.errors import ConfigError

if TYPE_CHECKING:
    from distributor.core.config import Settings


def settings() -> Settings:
    """The Settings for this invocation (from the environment); ConfigError (exit 78) when
    they cannot work. The first call also sets up logging from them."""
    waiting = _stop_waiting()
    try:
        s = _load()
    except ConfigError:
        if waiting:  # the command says what is wrong (exit 78); logging goes on without them
            _set_up_logging(None)
        raise
    if waiting:
        _set_up_logging(s)
    # A command imports what it runs with before it asks for its Settings: its start is
    # over (main() began it with the cyclic collector off; see core/collector.py).
    collector.started()
    return s


def _load() -> Settings:
    from pydantic import ValidationError

    from distributor.core.config import describe, load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        raise ConfigError(describe(exc)) from exc
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def log_on_demand() -> None:
    """Arm logging for this invocation: ``logs.setup_logging`` with the Settings' level
    (WARNING by default) and secrets, once a command loads them or something logs."""
    logging.getLogger().addHandler(_LogOnDemand())


class _LogOnDemand(logging.Handler):
    """The root logger's handler until logging is set up: a record written before the
    command loaded its Settings sets it up from them then, and goes out through it."""

    def emit(self, record: logging.LogRecord) -> None:
        _stop_waiting()
        try:
            configured: Settings | None = _load()
        except ConfigError:  # the command itself says what is wrong (exit 78)
            configured = None
        _set_up_logging(configured)
        if logging.getLogger(record.name).isEnabledFor(record.levelno):
            for handler in logging.getLogger().handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)


def _stop_waiting() -> bool:
    """Take ``_LogOnDemand`` off the root logger; whether it was there (logging still to be
    set up). What loading the Settings logs then goes where Python puts it, as it did when
    the command loaded them before setting up logging."""
    root = logging.getLogger()
    waiting = [h for h in root.handlers if isinstance(h, _LogOnDemand)]
    for handler in waiting:
        root.removeHandler(handler)
    return bool(waiting)


def _set_up_logging(s: Settings | None) -> None:
    """``logs.setup_logging`` from ``s``: its level (WARNING by default) and its secrets to
    mask; None (Settings that cannot be loaded): WARNING, no configured secret."""
    from distributor.core.config import configured_secrets
    from distributor.core.logs import setup_logging

    level = (s.log_level if s is not None else None) or "WARNING"
    setup_logging(level, configured_secrets(s) if s is not None else [])


def local_time(s: Settings, moment: datetime) -> str:
    """``moment`` in the press office's time zone, with the UTC time beside it."""
    local = moment.astimezone(s.zone)
    return f"{local:%Y-%m-%d %H:%M %Z} ({moment.astimezone(UTC):%H:%M} UTC)"
