"""CSV cells a spreadsheet will not run: the one rule for every CSV we write or read back.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or
``@`` (or a tab or carriage return before one) as a formula, and our CSVs hold text chosen
by outsiders: a subscriber's own name and address, a remote server's error reply. Opened
by the press office, such a cell could send the sheet's data to a web address
(``HYPERLINK``, ``WEBSERVICE``) or start a program (DDE) — OWASP's "CSV injection". A
``'`` before it makes the spreadsheet show it as text; reading our own export back, the
``'`` is taken off again.
"""

from __future__ import annotations

from typing import Final

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def defuse(text: str) -> str:
    """``text`` with a ``'`` before it when a spreadsheet would read it as a formula."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def restore(text: str) -> str:
    """The text :func:`defuse` was given: one leading ``'`` before a formula start is
    taken off (any other text is returned as it is)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def formula_start_regex() -> str:
    """A regular expression (POSIX, as PostgreSQL's ``regexp_replace`` reads it) whose one
    group is the first character of a text :func:`defuse` marks: the same rule, where the
    database writes a CSV itself (reporting/report_csv.py)."""
    # "-" last in the bracket: anywhere else it would make a range.
    starts = "".join(sorted(FORMULA_STARTS, key=lambda c: c == "-"))
    return f"^([{starts}])"
