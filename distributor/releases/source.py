"""A release's source, read and checked into a draft: Markdown with YAML front matter (a
file, the dashboard, the API's Markdown), or the API's JSON fields.

Ingest is strict: a broken front matter, a missing title, an unknown topic or a date without a
time zone is refused with a ReleaseInputError naming the source and the field, and nothing
is stored. The body is Markdown rendered to sanitised HTML; the Markdown source is kept as
the text part of the email.

What a field refuses, in a release file and in the API's JSON alike (one model):
- single-line text (title, dateline, lead, contact names and roles, alt texts, credits,
  document titles): control characters, line breaks, bidi embeddings, overrides and
  isolates, invisible format characters and noncharacters (``sanitize.line_problem``);
- links (images ``src``, ``href``, ``email_src``; documents ``href``): anything but an
  http(s) URL with a host or a site path that stays on the site (``urls.link_problem``:
  no ``//host``, ``/\\host``, ``/%2F…``, ``javascript:``…);
- contacts: an ``email`` that is not an address (email-validator, syntax only), a
  ``phone`` that is not a phone number as people write it;
- the body: the bidi overrides U+202D and U+202E (``sanitize.body_problem``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from distributor.core import urls
from distributor.core.config import Settings
from distributor.core.errors import InputError, ReleaseInputError
from distributor.core.sanitize import (
    body_problem,
    line_problem,
    markdown_to_html,
    single_line,
    strip_xml_invalid,
)
from distributor.core.slugs import SLUG_MAX, whole_slug
from distributor.releases.contact import Contact
from distributor.releases.documents import MAX_DOCUMENT_BYTES, StoredDocument, store_document
from distributor.releases.media import MAX_UPLOAD_BYTES, StoredImage, store_image

MAX_SOURCE_BYTES = 2 * 1024 * 1024
# Front matter is a few fields: these bound the work YAML may cause (pure-Python PyYAML reads
# ~50 KB/s of small values), whatever the file holds — nested collections, or anchors and
# aliases that expand exponentially (a "billion laughs").
MAX_FRONT_MATTER_BYTES = 256 * 1024
MAX_YAML_VALUES = 5_000  # every key and value, each alias counted as what it stands for
MAX_YAML_DEPTH = 20
MAX_PROBLEMS_SHOWN = 10
_EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)
# C0 controls and DEL; the other line breaks of str.splitlines() (NEL, the Unicode line and
# paragraph separators); lone surrogates (not characters: no UTF-8 for them). For showing a
# field's name in a message; a field's value goes through sanitize.line_problem.
_NO_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029\ud800-\udfff]")
# An image's ``src`` or an attachment's ``href`` that is a URL (any scheme) or a site
# path; anything else names a file.
_NOT_A_FILE = re.compile(r"^\s*(?:/|[A-Za-z][A-Za-z0-9+.-]*:)")


def _link(value: str) -> str:
    problem = urls.link_problem(value) if value else None
    if problem is not None:
        raise ValueError(problem)
    return value


class Image(BaseModel):
    """An image shown as a small preview, linking to its high-resolution version.

    In a release file, ``src`` may also name a local image file (``photos/minister.jpg``,
    relative to the release file): ``parse_release`` stores it (``distributor.releases.media``) and
    fills in ``src`` (the page version), ``email_src``, ``href`` (the full size, unless
    given), ``type``, ``length``, ``width`` and ``height``."""

    model_config = ConfigDict(extra="forbid")
    src: str = Field(min_length=1, max_length=2000)
    alt: str = Field(min_length=1, max_length=500)
    credit: str = Field(default="", max_length=200)
    href: str = Field(default="", max_length=2000)
    # A smaller version for the email's preview; ``src`` when empty.
    email_src: str = Field(default="", max_length=2000)
    # For the feeds' enclosure; a site path's file under public/ is measured when absent.
    type: str = Field(default="", max_length=100, pattern=r"^$|^image/[\w.+-]+$")
    length: int = Field(default=0, ge=0)
    # Of ``src``, in pixels: the page reserves the image's room before it loads.
    width: int | None = Field(default=None, ge=1, le=100_000)
    height: int | None = Field(default=None, ge=1, le=100_000)

    _lines = field_validator("src", "alt", "credit", "href", "email_src")(single_line)
    _urls = field_validator("src", "href", "email_src")(_link)


class Attachment(BaseModel):
    """A document offered for download (a PDF backgrounder, a fact sheet).

    In a release file, ``href`` may also name a local PDF, Office or OpenDocument file
    (``files/backgrounder.pdf``, relative to the release file): ``parse_release`` stores it
    (``distributor.releases.documents``) and sets ``href`` to the stored file's site path,
    ``type`` and ``length`` to what it is (by its content)."""

    model_config = ConfigDict(extra="forbid")
    href: str = Field(min_length=1, max_length=2000)
    title: str = Field(min_length=1, max_length=300)
    type: str = Field(default="", max_length=100, pattern=r"^$|^[\w.+-]+/[\w.+-]+$")
    length: int = Field(default=0, ge=0)

    _lines = field_validator("href", "title")(single_line)
    _urls = field_validator("href")(_link)


def _aware(value: Any) -> Any:
    if value is None:
        return value  # an optional date left out (``embargo: null``)
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError("needs a time and a time zone, e.g. 2026-11-20T09:00:00+01:00")
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError("is not an ISO 8601 date-time") from exc
    if not isinstance(value, datetime):  # a number would be taken for a Unix time
        raise ValueError("is not an ISO 8601 date-time, e.g. 2026-11-20T09:00:00+01:00")
    if value.utcoffset() is None:
        raise ValueError("has no time zone; write e.g. 2026-11-20T09:00:00+01:00")
    try:  # 9999-12-31T23:00-05:00 has no UTC time; stored in UTC, shown in the office's zone
        in_range = _EARLIEST <= value.astimezone(UTC) < _LATEST
    except OverflowError:
        in_range = False
    if not in_range:
        raise ValueError(f"is out of range: from {_EARLIEST.year} to {_LATEST.year - 1}")
    return value


class _Refused(yaml.MarkedYAMLError):
    """Front matter over one of the limits, or a value Python cannot hold (a problem and
    its mark, no YAML context)."""


class _FrontMatterLoader(yaml.SafeLoader):
    """PyYAML's safe loader with limits (see MAX_YAML_*): a node nested too deep, too many
    values once aliases are expanded, an alias inside the value it names, a key given twice
    or a scalar Python cannot hold (an integer of 5,000 digits, 2026-02-30) is a YAMLError
    with the line, never another exception or unbounded work."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._values = 0
        self._heights: dict[int, int] = {}  # id(node) -> levels, aliases followed
        self._sizes: dict[int, int] = {}  # id(node) -> values, aliases expanded

    def _refuse(self, problem: str, mark: Any) -> NoReturn:
        raise _Refused(None, None, problem, mark)

    def _count(self, values: int, mark: Any) -> None:
        self._values += values
        if self._values > MAX_YAML_VALUES:
            self._refuse(
                f"more than {MAX_YAML_VALUES} values (anchors and aliases counted as what "
                "they repeat): front matter is a few fields",
                mark,
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            node = super().compose_node(parent, index)
            height = self._heights.get(id(node))
            if height is None:  # its anchor is still open: the value would contain itself
                self._refuse("an alias inside the value it names (a recursive value)", mark)
            self._count(self._sizes[id(node)], mark)
            if self._depth + height > MAX_YAML_DEPTH:
                self._refuse(f"values nested more than {MAX_YAML_DEPTH} levels deep", mark)
            return node
        if self._depth >= MAX_YAML_DEPTH:
            self._refuse(f"values nested more than {MAX_YAML_DEPTH} levels deep", mark)
        before = self._values
        self._count(1, mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        children = _children(node)
        self._heights[id(node)] = 1 + max((self._heights[id(c)] for c in children), default=0)
        self._sizes[id(node)] = self._values - before
        return node

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, key.value) in seen:
                    self._refuse(f"the key {key.value[:50]!r} is given twice", key.start_mark)
                seen.add((key.tag, key.value))
        return node

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        if node.tag in _NUMBERS and len(node.value) > 100:  # int("1:59:59:…") is quadratic
            self._refuse("a number of more than 100 characters", node.start_mark)
        try:
            value = super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:  # 2026-02-30, 5,000 digits
            raise _Refused(None, None, f"cannot read a value: {exc}", node.start_mark) from exc
        if isinstance(value, int) and value.bit_length() > 64:
            self._refuse("a number larger than 64 bits", node.start_mark)
        if isinstance(value, str) and _SURROGATE.search(value):
            self._refuse("a lone surrogate (\\ud800-\\udfff) is not a character", node.start_mark)
        return value


def _timestamp(loader: _FrontMatterLoader, node: Any) -> Any:
    # PyYAML takes "!!timestamp '2026-11-20 09:00:00+02:00:16'" (as it writes a datetime
    # with seconds in its offset), then fails to read it (AttributeError).
    if not isinstance(node, yaml.ScalarNode) or not loader.timestamp_regexp.match(node.value):
        loader._refuse("not a date-time YAML can read", node.start_mark)
    return loader.construct_yaml_timestamp(node)


_FrontMatterLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)
_SURROGATE = re.compile("[\ud800-\udfff]")
_NUMBERS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


class FrontMatter(BaseModel):
    """The fields a release file may carry in its front matter."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=500)
    lang: str = Field(min_length=2, max_length=8)
    topics: list[str] = Field(min_length=1)
    date: datetime
    embargo: datetime | None = None
    translation_of: str | None = None
    slug: str | None = Field(default=None, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$", max_length=200)
    dateline: str = Field(default="", max_length=200)
    lead: str | None = Field(default=None, max_length=5000)
    contacts: list[Contact] = Field(default_factory=list)
    images: list[Image] = Field(default_factory=list)
    attachments: list[Attachment] = Field(default_factory=list)

    _lines = field_validator("title", "lang", "dateline")(single_line)
    _dates = field_validator("date", "embargo", mode="before")(_aware)


@dataclass(frozen=True)
class ReleaseDraft:
    """A release read and checked, not yet stored."""

    meta: FrontMatter
    lead: str
    body_html: str
    body_text: str
    source: str


def slug_cut_from(draft: ReleaseDraft) -> int | None:
    """The length the slug made from ``draft``'s title had before ``slugify`` cut it to
    SLUG_MAX characters; None when it was not cut, or when the draft gives its slug."""
    if draft.meta.slug:
        return None
    length = len(whole_slug(draft.meta.title))
    return length if length > SLUG_MAX else None


def _split_lead(body: str) -> tuple[str, str]:
    """The first paragraph of a Markdown body (the lead) and the rest."""
    parts = re.split(r"\n[ \t]*\n", body.strip(), maxsplit=1)
    return _one_line(parts[0]), parts[1] if len(parts) > 1 else ""


def _one_line(text: str) -> str:
    """``text``'s lines (any line break Python knows, U+2028 too) joined by spaces, tabs
    made spaces."""
    return " ".join(line.strip() for line in text.replace("\t", " ").splitlines() if line.strip())


def _store_image(meta: FrontMatter, index: int, stored: StoredImage) -> None:
    image = meta.images[index]
    fields = stored.image_fields()
    if image.href:  # the writer's own high-resolution link, described by them
        for key in ("href", "type", "length"):
            del fields[key]
    meta.images[index] = image.model_copy(update=fields)


def _store_attachment(meta: FrontMatter, index: int, stored: StoredDocument) -> None:
    attachment = meta.attachments[index]
    fields = stored.attachment_fields(attachment.title)
    meta.attachments[index] = attachment.model_copy(update=fields)


@dataclass(frozen=True)
class _LocalFiles:
    """A front matter list whose entries may name a local file in their ``link`` field,
    stored by ``store`` and described in the entry by ``use``."""

    link: str  # the field: "src", "href"
    what: str  # for messages: "image", "document"
    upload: str  # the API's route that stores one, for a release not read from disk
    limit: int  # bytes
    store: Callable[[Settings, bytes, str], Any]
    use: Callable[[FrontMatter, int, Any], None]


_LOCAL: dict[str, _LocalFiles] = {
    "images": _LocalFiles(
        "src", "image", "POST /api/media", MAX_UPLOAD_BYTES, store_image, _store_image
    ),
    "attachments": _LocalFiles(
        "href",
        "document",
        "POST /api/documents",
        MAX_DOCUMENT_BYTES,
        store_document,
        _store_attachment,
    ),
}


def _local_files(data: dict[Any, Any]) -> dict[tuple[str, int], str]:
    """The ``images`` and ``attachments`` entries of front matter ``data`` whose link
    (``src``, ``href``) names a local file, by list and index. Their link is replaced in
    ``data`` by a site path, so that the rest of the front matter is checked before any
    file is read."""
    found: dict[tuple[str, int], str] = {}
    for key, kind in _LOCAL.items():
        entries = data.get(key)
        if not isinstance(entries, list):
            continue
        for index, entry in enumerate(entries):
            link = entry.get(kind.link) if isinstance(entry, dict) else None
            if isinstance(link, str) and link.strip() and not _NOT_A_FILE.match(link):
                found[key, index] = link.strip()
                entry[kind.link] = "/"
    return found


def _store_local_files(
    meta: FrontMatter,
    local: dict[tuple[str, int], str],
    source: str,
    settings: Settings,
    base_dir: Path | None,
) -> None:
    """Store each local file (``local``: list and index → path as written) and point its
    entry at what is stored. Raises ReleaseInputError naming ``source`` and the entry when
    a file is missing, unreadable or not an image or document we take, or when there is
    no ``base_dir`` to read files from."""
    for (key, index), written in local.items():
        kind = _LOCAL[key]
        name = f"{key}.{index}.{kind.link}"
        field = f"{source}: field '{name}'"
        if base_dir is None:
            raise ReleaseInputError(
                f"{field}: {written!r} names a local file, which only a release file read "
                "from disk may do; give an http(s) URL or a site path starting with /, or "
                f"upload the {kind.what} first ({kind.upload})",
                field=name,
            )
        path = base_dir / Path(written).expanduser()
        try:
            if not path.is_file():
                raise ReleaseInputError(
                    f"{field}: no {kind.what} file {written!r} (looked for {path})", field=name
                )
            if path.stat().st_size > kind.limit:
                raise ReleaseInputError(
                    f"{field}: {written!r} is larger than {kind.limit // 1_000_000} MB",
                    field=name,
                )
            data = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ReleaseInputError(
                f"{field}: {written!r} cannot be read: {reason}", field=name
            ) from exc
        try:
            stored = kind.store(settings, data, written)
        except InputError as exc:
            raise ReleaseInputError(f"{field}: {exc}", field=name) from exc
        kind.use(meta, index, stored)


def parse_release(
    text: str, source: str, settings: Settings, *, base_dir: Path | None = None
) -> ReleaseDraft:
    """Read a release from Markdown with YAML front matter.

    An image whose ``src``, or an attachment whose ``href``, is neither a URL nor a site
    path is a file: relative to ``base_dir`` (the release file's directory), it is read and
    stored (``distributor.releases.media.store_image``,
    ``distributor.releases.documents.store_document``) once the rest of the release has been
    checked, and its entry points at what is stored. Without ``base_dir`` (Markdown sent
    over the API) such a link is refused.

    Raises ReleaseInputError naming ``source`` and the field at fault.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise ReleaseInputError(f"{source}: larger than {MAX_SOURCE_BYTES // 1024} KiB")
    match = _FRONT_MATTER.match(text)
    if not match:
        raise ReleaseInputError(
            f"{source}: no front matter: the file must start with a line '---', "
            "the YAML fields, and a closing line '---'"
        )
    front_matter = match.group(1)
    if len(front_matter.encode("utf-8", "surrogatepass")) > MAX_FRONT_MATTER_BYTES:
        raise ReleaseInputError(
            f"{source}: front matter larger than {MAX_FRONT_MATTER_BYTES // 1024} KiB "
            "(is the closing line '---' missing?)"
        )
    try:
        data = yaml.load(front_matter, Loader=_FrontMatterLoader)  # noqa: S506 (a SafeLoader)
    except _Refused as exc:
        line = exc.problem_mark.line + 2 if exc.problem_mark is not None else "?"
        raise ReleaseInputError(
            f"{source}: front matter refused (line {line}): {exc.problem}"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise ReleaseInputError(f"{source}: front matter is not valid YAML{where}: {exc}") from exc
    if not isinstance(data, dict):
        raise ReleaseInputError(f"{source}: front matter must be a mapping of fields")
    local = _local_files(data)
    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as exc:
        raise ReleaseInputError(f"{source}: {_problems(exc)}", field=_first_field(exc)) from exc
    draft = draft_from_fields(meta, match.group(2), source, settings)
    _store_local_files(meta, local, source, settings, base_dir)
    return draft


def draft_from_mapping(
    data: dict[str, Any], body: str, source: str, settings: Settings
) -> ReleaseDraft:
    """A release from its fields given one by one (the workspace's form: the front matter's
    names, values already typed) and its Markdown ``body``; refused as a release file's
    front matter is (ReleaseInputError naming ``source`` and the field)."""
    try:
        meta = FrontMatter.model_validate(data)
    except ValidationError as exc:
        raise ReleaseInputError(f"{source}: {_problems(exc)}", field=_first_field(exc)) from exc
    return draft_from_fields(meta, body, source, settings)


def _problems(exc: ValidationError) -> str:
    """The first few problems of ``exc``, one per field, each field named by its path."""
    errors = exc.errors()
    shown = []
    for error in errors[:MAX_PROBLEMS_SHOWN]:
        path = _path(error["loc"]) or "?"
        shown.append(f"field '{path}': " + error["msg"].removeprefix("Value error, "))
    if len(errors) > MAX_PROBLEMS_SHOWN:
        shown.append(f"and {len(errors) - MAX_PROBLEMS_SHOWN} more problem(s)")
    return "; ".join(shown)


def _first_field(exc: ValidationError) -> str | None:
    """The field the first problem of ``exc`` is about, as ``_problems`` names it; None
    for a problem with the whole front matter."""
    errors = exc.errors()
    return (_path(errors[0]["loc"]) or None) if errors else None


def _path(loc: tuple[int | str, ...]) -> str:
    """A field's path as a message shows it (``images.0.src``)."""
    return ".".join(_printable(str(part)) for part in loc)


def _printable(name: str) -> str:
    """A field name as the message shows it: control characters escaped, at most 60 chars."""
    if _NO_CONTROL.search(name):
        name = ascii(name)[1:-1]
    return name if len(name) <= 60 else name[:59] + "…"


def draft_from_fields(
    meta: FrontMatter, body: str, source: str, settings: Settings
) -> ReleaseDraft:
    """A release from checked front matter and its Markdown ``body`` (a release file's
    two parts, or the API's JSON): the lead (``meta.lead``, else the body's first
    paragraph) and the sanitised HTML of the rest. Raises ReleaseInputError naming
    ``source`` for a language not configured, a missing lead, a lead with a character a
    single line refuses (``sanitize.line_problem``) or a body with a bidi override."""
    if meta.lang not in settings.languages:
        raise ReleaseInputError(
            f"{source}: field 'lang': {meta.lang!r} is not one of {', '.join(settings.languages)}",
            field="lang",
        )
    text = strip_xml_invalid(body).strip()
    if meta.lead is not None:
        lead, rest = _one_line(strip_xml_invalid(meta.lead)), text
    else:
        lead, rest = _split_lead(text)
    if not lead:
        raise ReleaseInputError(
            f"{source}: field 'lead': the release has no lead paragraph", field="lead"
        )
    problem = line_problem(lead)
    if problem is not None:
        where = "field 'lead'" if meta.lead is not None else "field 'lead' (the first paragraph)"
        raise ReleaseInputError(f"{source}: {where}: {problem}", field="lead")
    problem = body_problem(text)
    if problem is not None:
        raise ReleaseInputError(f"{source}: field 'body': {problem}", field="body")
    try:
        body_html = markdown_to_html(rest)
    except InputError as exc:
        raise ReleaseInputError(f"{source}: {exc}") from exc
    return ReleaseDraft(meta, lead, body_html, rest, source)
