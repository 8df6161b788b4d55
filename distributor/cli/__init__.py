"""The ``distributor`` command (``commands``), the demo, and what they print (``progress``).
Nothing below this package imports it."""

from distributor.cli.commands import main

__all__ = ["main"]
