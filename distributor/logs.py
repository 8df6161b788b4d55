"""Logging set-up shared by the CLI and the workers."""

from __future__ import annotations

import logging
import os


def setup_logging(level: str | None = None) -> None:
    """Log to stderr with times; the level comes from ``level`` or DISTRIBUTOR_LOG_LEVEL."""
    logging.basicConfig(
        level=(level or os.environ.get("DISTRIBUTOR_LOG_LEVEL", "INFO")).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
