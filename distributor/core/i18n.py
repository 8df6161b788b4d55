"""Translations: gettext catalogs (``distributor/locale/<lang>/LC_MESSAGES/messages.po``),
English being the source language. Pages and emails call ``_("English text")``.

The ``.po`` files are compiled in memory with Babel on first use, so no binary ``.mo``
file is kept in the repository or can go stale.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def primary(lang: str) -> str:
    """``fr-CA`` → ``fr``: the language subtag, lower case."""
    return lang.split("-")[0].split("_")[0].lower()


@lru_cache(maxsize=16)
def translations(lang: str) -> gettext.NullTranslations:
    """The catalog for ``lang`` (English, or any language without one, translates to
    itself)."""
    po = LOCALE_DIR / primary(lang) / "LC_MESSAGES" / "messages.po"
    if not po.is_file():
        return gettext.NullTranslations()
    # Imported here: Babel's catalog reader costs every command's start-up 60 ms otherwise.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as source:
        catalog = read_po(source, locale=primary(lang))
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def gettext_for(lang: str) -> Callable[[str], str]:
    """The ``_`` function for ``lang``."""
    return translations(lang).gettext


def ngettext_for(lang: str) -> Callable[[str, str, int], str]:
    """The ``ngettext`` function for ``lang``: the singular or plural message for a count,
    by the language's plural rule (French: 0 and 1 are singular)."""
    return translations(lang).ngettext


def negotiate(accept_language: str | None, available: Iterable[str], default: str) -> str:
    """The best of ``available`` for an Accept-Language header (q-values honoured), or
    ``default``."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag:
            ranked.append((-quality, position, primary(tag)))
    offered = set(available)
    for negative_quality, _position, lang in sorted(ranked):
        if negative_quality < 0 and lang in offered:
            return lang
    return default
