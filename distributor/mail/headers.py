"""Header fields written by hand, correctly: RFC 2047 encoded-words for non-ASCII text,
quoted phrases, and folding to 78 columns with CRLF.

Every function returns a complete field, ``"Name: value\\r\\n"``, as ``str``: pure ASCII,
but for an internationalised address (RFC 6532), which is written as it is, in UTF-8 once
encoded. Control characters in text become spaces, and bidi controls, invisible format
characters and noncharacters are removed (``sanitize.strip_invisible``: ingest refuses them,
but a title or a name may have been stored before it did); refuse them earlier where that
matters (a subscriber's name: see :func:`has_controls`; an address: ``compose.Recipient``).
"""

from __future__ import annotations

import base64
import re

from distributor.core.sanitize import strip_invisible

CRLF = "\r\n"
MAX_COLUMNS = 78  # RFC 5322 §2.1.1: SHOULD; the MUST (998) follows from it
_WORD_MAX = 75  # RFC 2047 §2: an encoded-word is at most 75 characters
_PREFIX = "=?utf-8?b?"
_SUFFIX = "?="
_ATOM_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def has_controls(text: str) -> bool:
    """True when ``text`` holds a control character (CR, LF, NUL, TAB…)."""
    return _CONTROLS.search(text) is not None


def _needs_encoding(words: list[str]) -> bool:
    # Non-ASCII, something a decoder would take for an encoded-word, or a word too long to fold.
    return any(not w.isascii() or "=?" in w or len(w) > MAX_COLUMNS - 2 for w in words)


def _encoded_length(size: int) -> int:
    """The length of an encoded-word holding ``size`` bytes (base64: 4 per 3, rounded up)."""
    return len(_PREFIX) + len(_SUFFIX) + 4 * -(-size // 3)


def _word(text: str) -> str:
    return _PREFIX + base64.b64encode(text.encode()).decode() + _SUFFIX


def encoded_words(text: str, first_room: int = _WORD_MAX) -> list[str]:
    """``text`` as RFC 2047 "B" encoded-words in UTF-8: the first at most ``first_room``
    characters long, the others at most 75, never splitting a character, and split before a
    space when there is one (decoders drop the white space *between* encoded-words; a space
    inside one survives everywhere)."""
    words: list[str] = []
    room = min(first_room, _WORD_MAX)
    chunk, size = "", 0
    for char in text:
        width = len(char.encode())
        if chunk and _encoded_length(size + width) > room:
            cut = chunk.rfind(" ")
            rest = chunk[cut:] if cut > 0 else ""
            words.append(_word(chunk[: len(chunk) - len(rest)]))
            room = _WORD_MAX
            if rest and _encoded_length(len(rest.encode()) + width) > room:
                words.append(_word(rest))
                rest = ""
            chunk, size = rest, len(rest.encode())
        chunk += char
        size += width
    if chunk or not words:
        words.append(_word(chunk))
    return words


def fold(name: str, tokens: list[str]) -> str:
    """The field ``name`` with ``tokens`` separated by single spaces, folded before a token
    whenever the line would pass 78 columns. Unfolding (removing CRLF) restores the value."""
    lines: list[str] = []
    line = name + ":"
    for token in tokens:
        if len(line) + 1 + len(token) > MAX_COLUMNS and line != name + ":":
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return CRLF.join(lines) + CRLF


def unstructured(name: str, value: str) -> str:
    """An unstructured field (Subject…): control characters and white space runs made single
    spaces, encoded-words when needed."""
    words = _CONTROLS.sub(" ", strip_invisible(value)).split()
    if _needs_encoding(words):
        return fold(name, encoded_words(" ".join(words), MAX_COLUMNS - len(name) - 2))
    return fold(name, words)


def _plain_atom(word: str) -> bool:
    return word.isascii() and "=?" not in word and not _ATOM_SPECIALS.search(word)


def phrase_tokens(display: str, first_room: int) -> list[str]:
    """A display name (RFC 5322 phrase) as foldable tokens, white space collapsed: atoms;
    a quoted string for ASCII with specials; else plain atoms with every run of other words
    as encoded-words. Keeping ASCII words plain means that decoders strict and lenient about
    the white space between encoded-words (Python's is lenient) read the same name unless a
    run of non-ASCII words needs several encoded-words. Control characters count as spaces.
    Empty for an empty name."""
    words = _CONTROLS.sub(" ", strip_invisible(display)).split()
    if all(word.isascii() and "=?" not in word for word in words):
        joined = " ".join(words)
        if _ATOM_SPECIALS.search(joined):
            return ('"' + joined.replace("\\", "\\\\").replace('"', '\\"') + '"').split(" ")
        return words
    tokens: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        if word and not _plain_atom(word):
            run.append(word)
            continue
        if run:
            tokens += encoded_words(" ".join(run), first_room if not tokens else _WORD_MAX)
            run = []
        if word:
            tokens.append(word)
    return tokens


def address(name: str, display: str, addr: str) -> str:
    """An address field with one mailbox (From, To): ``Display Name <addr>``, or ``addr``
    alone when there is no display name. ``addr`` must be a checked address (ASCII, or
    with a non-ASCII local part as RFC 6532 allows: the display name is still encoded-words,
    so such a field differs from an ASCII one only in the address)."""
    tokens = phrase_tokens(display, MAX_COLUMNS - len(name) - 2)
    if not tokens:
        return f"{name}: {addr}{CRLF}"
    return fold(name, [*tokens, f"<{addr}>"])
