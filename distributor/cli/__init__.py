"""The ``distributor`` command: its tree and error mapping (``commands``), one module per
group of commands, what they share (``context``), the demo, and what they print
(``progress``). Nothing below this package imports it."""

from distributor.cli.commands import main

__all__ = ["main"]
