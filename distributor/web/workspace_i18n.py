"""The workspace's language (``/admin``): which one a request is answered in, and the
translator its pages, scripts and messages use.

The language is the one the switch in the header chose (a cookie), else the browser's
Accept-Language, else English. The catalogue is the public pages' own
(``distributor/locale/<lang>/LC_MESSAGES/messages.po``), English being the msgids, so an
English page reads exactly as before.

Messages made in Python — a DONE text, a refusal, the release form's validator — reach a
page as English text. ``Translator.say`` translates them in one place: a message that is a
msgid is translated as it is; one of the known shapes with values in it ("{source}: field
'{field}': {problem}", "{what}: {value} is not a date and time"…) is taken apart, its
problem translated in turn, and put together in the catalogue's words. Anything else stays
English (the domain's messages are written once, in English, for the CLI and the API too).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote, urlsplit

from starlette.requests import HTTPConnection

from distributor.core.i18n import gettext_for, negotiate, ngettext_for

# The languages the workspace speaks: English (the msgids) and each with a catalogue. Each
# is named in itself in the switch, so a reader finds their own.
WORKSPACE_LANGUAGES: dict[str, str] = {"en": "English", "fr": "Français"}
DEFAULT_LANGUAGE = "en"
LANGUAGE_COOKIE = "distributor_admin_lang"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600  # a preference: kept a year

# The strings the workspace's scripts show (admin.js, editor.js, uploads.js), English as
# msgids; the page gives each script those of its language (base.html, data-strings).
SCRIPT_MESSAGES: tuple[str, ...] = (
    "Sending…",
    "Finished.",
    "Logged out: reload the page.",
    "Saved at {time}",
    "Not saved: {error}. Autosave is paused.",
    "Not saved: you are logged out. Log in again in another tab; what you typed is kept in "
    "this browser.",
    "Not saved: {error} (what you typed is kept in this browser)",
    "Not saved: the server failed (HTTP {status}); what you typed is kept in this browser, "
    "and saving is tried again.",
    "Not saved: the server does not answer; what you typed is kept in this browser, and "
    "saving is tried again.",
    "What you typed at {time} was not saved: it is kept in this browser.",
    "Restore what you typed at {time}",
    "Someone else saved this draft",
    "{error}. Their version is below; yours is in the form. Autosave is paused: copy what "
    "you need from theirs into yours, then press Save, which replaces theirs.",
    "Title",
    "Lead",
    "Body",
    "Cannot preview yet: {error}",
    "The preview is not available: the server does not answer.",
    "Uploading {name}",
    " uploading…",
    "Refused: {error}",
    "{name}: larger than {size} MiB, the most a file may have",
    " already in the form.",
    " added below: give it its alt text and credit, then save.",
    " added below; save the form to keep it.",
    "the server answered {status}",
    "{name}: the upload did not get through; check the connection and drop it again.",
)

# Messages from Python whose values vary, in the shapes the release form and the
# workspace's actions give them (English: the msgids). Tried in order, the first that
# matches wins; a {problem} (or {reason}) is translated in turn, and {source}, {what} and
# {field} are when the catalogue has them.
SHAPES: tuple[str, ...] = (
    "{source}: field '{field}': {problem}",
    "{what}: {value} is not a date and time",
    "images.{index}.alt: image {which} has no alt text: say what it shows, for those who "
    "cannot see it",
    "images.{index}.credit: image {which} has no credit: name who took it or owns it (the "
    "photographer, the agency)",
    "{source}: a release with slug {slug} already exists (id {id}); set another 'slug' in "
    "the front matter",
    "release {id} was saved by someone else since you opened it (at {when} UTC): nothing "
    "was overwritten",
    "release {id} is {state}: only a draft is edited (unschedule a scheduled release first; "
    "correct a published one)",
    "{by} cannot {what}",
    "String should have at most {count} characters",
    "{value} is not one of {choices}",
    "{value} is not an email address: {reason}",
    "Organisation's name ({language})",
    "Too many failed logins: try again in {count} minutes.",
    "{source}: {problem}",
)
# Shapes that any message with a colon has: used only when a part of it translates.
GENERIC_SHAPES = frozenset({"{source}: {problem}"})
TRANSLATED_PARTS = ("problem", "reason", "source", "what", "state", "by")
# A problem's field named by the form's label rather than the file's key, where one is.
FIELD_LABELS: dict[str, str] = {
    "title": "Title",
    "lang": "Language",
    "date": "Date",
    "dateline": "Dateline",
    "lead": "Lead",
    "body": "Body",
    "topics": "Topics",
    "embargo": "Embargo",
    "contacts": "Press contacts",
}


def _pattern(shape: str) -> re.Pattern[str]:
    """A shape as a regular expression: its text literal, each ``{name}`` a group."""
    parts = re.split(r"\{(\w+)\}", shape)
    regex = "".join(
        f"(?P<{part}>.+?)" if odd else re.escape(part) for odd, part in _alternate(parts)
    )
    return re.compile(f"^{regex}$", re.DOTALL)


def _alternate(parts: list[str]) -> list[tuple[bool, str]]:
    return [(index % 2 == 1, part) for index, part in enumerate(parts)]


_SHAPES = tuple((shape, _pattern(shape)) for shape in SHAPES)


@dataclass(frozen=True)
class Translator:
    """The workspace in one language: its ``gettext`` and ``ngettext``, and ``say`` for a
    message made in Python."""

    lang: str
    gettext: Callable[[str], str]
    ngettext: Callable[[str, str, int], str]

    @property
    def english(self) -> bool:
        """Whether this is the source language (nothing to translate)."""
        return self.lang == DEFAULT_LANGUAGE

    def say(self, message: str) -> str:
        """``message`` in this language: its translation when it is a msgid or has a known
        shape, else each of its "; "-separated parts so translated (the validator lists a
        form's problems so), else as it is (English)."""
        if self.english or not message:
            return message
        whole = self._part(message)
        if whole != message:
            return whole
        return "; ".join(self._part(part) for part in message.split("; "))

    def _part(self, message: str) -> str:
        translated = self.gettext(message)
        if translated != message:
            return translated
        for shape, pattern in _SHAPES:
            found = pattern.match(message)
            if found is None:
                continue
            translated_shape = self.gettext(shape)
            if translated_shape == shape:
                continue  # no translation of this shape: a later one may have one
            found_values = found.groupdict()
            values = {name: self._value(name, value) for name, value in found_values.items()}
            if shape in GENERIC_SHAPES and values == found_values:
                continue  # nothing of it is known: English, not English in French punctuation
            return translated_shape.format(**values)
        return message

    def _value(self, name: str, value: str) -> str:
        if name == "field":
            label = FIELD_LABELS.get(value)
            return self.gettext(label) if label else value
        if name in TRANSLATED_PARTS:
            return self._part(value)
        return value

    def script_strings(self) -> Mapping[str, str]:
        """The scripts' messages in this language (English msgid → text); none in English,
        where the scripts show their own text."""
        if self.english:
            return {}
        return {message: self.gettext(message) for message in SCRIPT_MESSAGES}


@lru_cache(maxsize=8)
def translator(lang: str) -> Translator:
    """The Translator of ``lang`` (one of ``WORKSPACE_LANGUAGES``)."""
    return Translator(lang, gettext_for(lang), ngettext_for(lang))


def workspace_language(connection: HTTPConnection) -> str:
    """The language the workspace answers ``connection`` in: the switch's cookie, else the
    browser's Accept-Language, else English."""
    chosen = connection.cookies.get(LANGUAGE_COOKIE, "")
    if chosen in WORKSPACE_LANGUAGES:
        return chosen
    return negotiate(
        connection.headers.get("accept-language"), WORKSPACE_LANGUAGES, DEFAULT_LANGUAGE
    )


def safe_return(target: str, prefix: str) -> str:
    """``target`` when it is a path of the workspace on this site (``/admin…``, no scheme,
    no host); ``prefix`` otherwise — the switch never sends anyone elsewhere."""
    parts = urlsplit(target)
    path = parts.path
    inside = path == prefix or path.startswith(prefix + "/")
    # A browser reads "/admin/../x" (or "%2e%2e") as "/x": no dot segment, no backslash.
    dots = {".", ".."} & set(unquote(path).split("/"))
    if parts.scheme or parts.netloc or not inside or dots or "\\" in target or "//" in path:
        return prefix
    return path + (f"?{parts.query}" if parts.query else "")
