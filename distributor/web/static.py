"""The generated static site (newsroom pages, release pages, feeds), served from memory.

``PublicFiles`` is a pure ASGI middleware in front of the web app. For a GET or HEAD whose
path names a file below ``settings.public_dir`` it answers by itself: from a per-file cache
that is served from the next request on after its file is rewritten — told by the kernel
(inotify, ``changes.Watcher``: nothing to do per request; a ``stat`` a second per file as
well, for a file system that reports nothing), else checked with one ``os.stat`` a
request — with a strong ETag, Last-Modified,
conditional GET (RFC 9110 §13.2.2), gzip/br chosen from Accept-Encoding, a ``Link`` header
on feeds (WebSub self and hub) and a per-client poll limit on feeds. Every other request (another
method, a path with no file, a refused path) goes to the wrapped app unchanged.

URL path → file below ``public/`` (see ``distributor.core.urls``):
``/`` → ``index.html`` in the first language, else ``fr/index.html`` for ``/?lang=fr`` or, without
``?lang=``, for a browser that prefers French (Accept-Language; the newsroom pages vary on
it); ``/en/`` → ``en/index.html``;
``/feeds/en/releases.atom`` → itself; ``/releases/SLUG`` → ``releases/SLUG.html``;
``/en`` → ``en/index.html``.

Images stored by ``distributor.releases.media`` (``/media/<sha256>/for-pages.jpg`` and the like) and
documents stored by ``distributor.releases.documents`` (``/media/<sha256>/backgrounder.pdf``)
are not held in memory: each answer streams the file from disk, with the media type its
suffix says (an office document as a download: ``Content-Disposition: attachment``). Their
URLs never change what they serve, so they are cached for a year (``immutable``); the ETag
has nginx's form (mtime-size, in hex), so both servers give a client the same validator.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import math
import mimetypes
import os
import stat
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime
from typing import Final
from urllib.parse import parse_qsl

import anyio.to_thread
import brotli
from starlette.types import ASGIApp, Receive, Scope, Send

from distributor.core.broker import running_broker_url
from distributor.core.config import Settings
from distributor.core.i18n import negotiate
from distributor.core.urls import MEDIA_TYPES
from distributor.office.logo import LOGO_TYPES
from distributor.releases.documents import DOCUMENT_TYPES, DOWNLOADS
from distributor.releases.media import MEDIA_PATH
from distributor.releases.media import MEDIA_TYPES as IMAGE_TYPES
from distributor.reporting import counting
from distributor.web.changes import Watcher
from distributor.web.headers import static_page_headers

Headers = tuple[tuple[bytes, bytes], ...]

CACHE_CONTROL: Final = b"public, max-age=300"
IDENTITY, GZIP, BR = "identity", "gzip", "br"
MIN_COMPRESS_SIZE: Final = 256  # below this, compression saves less than its headers cost
BROTLI_QUALITY: Final = 9  # 200 KB: ~50 ms once per content; 10-11 take 4-10x longer for ~3%
MAX_CACHED_BYTES: Final = 256 * 1024 * 1024  # bodies and compressed variants held in memory
# How long a file the kernel watches for us is trusted without a stat: a network file
# system written by another host tells nothing, so a change there shows within this.
RECHECK_SECONDS: Final = 1.0
GONE_SUFFIX: Final = counting.GONE_SUFFIX  # urls.gone_relpath: a withdrawn release's notice
_METHODS: Final = frozenset({"GET", "HEAD"})
MEDIA_CACHE_CONTROL: Final = b"public, max-age=31536000, immutable"
MEDIA_CHUNK: Final = 256 * 1024  # bytes read from disk (in a worker thread) at a time
# What a stored file below /media/ is served as, by its suffix (MEDIA_PATH's third group).
STORED_TYPES: Final = {
    suffix: media_type.encode("ascii")
    for suffix, media_type in (IMAGE_TYPES | DOCUMENT_TYPES | LOGO_TYPES).items()
}
# An SVG (the office's logo) opened on its own is a document: even though a stored one has
# no script (office/logo.py refuses them), it may run nothing and load nothing.
SVG_CSP: Final = b"default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"


@dataclass(frozen=True)
class _Variant:
    """One representation of a file: its body and the headers of a 200 answer."""

    body: bytes
    headers: Headers


@dataclass(eq=False)  # compared by identity: "is this still the cached entry?"
class _Entry:
    """A cached file: its bytes, validators and precomputed header lists.

    ``key`` is (st_mtime_ns, st_size, st_ino) of the file the bytes were read from; a
    request whose ``os.stat`` gives another key re-reads the file.
    """

    path: str
    relpath: str
    key: tuple[int, int, int]
    feed: bool
    mtime: int  # whole seconds: what Last-Modified says
    last_modified: bytes
    etag: str  # the strong ETag of the identity body; others are etag-gzip, etag-br
    tags: frozenset[bytes]  # every ETag of this content, as sent
    variants: dict[str, _Variant]  # identity always; gzip and br once asked for
    not_modified: dict[str, Headers]  # the 304 headers per coding (no body needed)
    common: Headers  # headers every 200 about this content carries, besides the ETag
    media_type: bytes
    compressible: bool  # big enough for gzip and br variants
    counted: int = 0  # bytes of this entry in PublicFiles' memory budget
    watched: bool = False  # its directory is watched (changes.Watcher): trusted a while
    valid_until: float = 0.0  # monotonic time until which it is served without a stat
    # The statistics' fields a GET answered 200 / 304 counts (counting.field), or None.
    hit_200: str | None = None
    hit_304: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _media_type(relpath: str) -> bytes:
    suffix = os.path.splitext(relpath)[1]
    media = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(relpath)[0]
    return (media or "application/octet-stream").encode("latin-1")


def _tag(etag: str, coding: str) -> bytes:
    return (etag if coding == IDENTITY else f'{etag[:-1]}-{coding}"').encode("ascii")


def _load(path: str, relpath: str, settings: Settings) -> _Entry | None:
    """Read ``path`` into a new entry, or None when it is not a regular file."""
    try:
        with open(path, "rb") as fh:
            # fstat on the open file: the key and the bytes describe the same inode, even
            # when the builder renames a new file over this one meanwhile.
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return None
            body = fh.read()
    except OSError:  # vanished, a directory, unreadable: not ours to serve
        return None
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    mtime = int(st.st_mtime)
    last_modified = formatdate(mtime, usegmt=True).encode("ascii")
    feed = counting.is_feed(relpath)
    # What ``/`` may answer with: chosen by Accept-Language, so caches must know.
    root = relpath == "index.html" or relpath in {f"{c}/index.html" for c in settings.languages}
    common: Headers = (
        (b"last-modified", last_modified),
        (b"cache-control", CACHE_CONTROL),
        (b"vary", b"Accept-Encoding, Accept-Language" if root else b"Accept-Encoding"),
        (b"x-content-type-options", b"nosniff"),
    )
    media_type = _media_type(relpath)
    if media_type.startswith(b"text/html"):
        common += static_page_headers(settings.site_url)
    links: Headers = ()
    if feed:
        # From the configured site URL only: a forged Host header must not change it.
        link = f'<{settings.site_url}/{relpath}>; rel="self"'
        if settings.websub_hub:
            link += f', <{settings.websub_hub}>; rel="hub"'
        links = ((b"link", link.encode("latin-1")),)
    codings = (IDENTITY, GZIP, BR) if len(body) >= MIN_COMPRESS_SIZE else (IDENTITY,)
    entry = _Entry(
        path=path,
        relpath=relpath,
        key=(st.st_mtime_ns, st.st_size, st.st_ino),
        feed=feed,
        mtime=mtime,
        last_modified=last_modified,
        etag=etag,
        tags=frozenset(_tag(etag, c) for c in codings),
        variants={},
        # A 304 repeats the validators and caching headers only (RFC 9110 §15.4.5): the
        # reader keeps the Link it got with the 200.
        not_modified={c: ((b"etag", _tag(etag, c)), *common) for c in codings},
        common=common + links,
        media_type=media_type,
        compressible=len(codings) > 1,
    )
    entry.variants[IDENTITY] = _variant(entry, IDENTITY, body)
    if settings.statistics:
        entry.hit_200 = _hit_field(counting.fetch_kind("GET", 200, relpath), relpath)
        entry.hit_304 = _hit_field(counting.fetch_kind("GET", 304, relpath), relpath)
    return entry


def _hit_field(kind: str | None, relpath: str) -> str | None:
    return None if kind is None else counting.field(kind, relpath)


def _variant(entry: _Entry, coding: str, body: bytes) -> _Variant:
    headers = [
        (b"etag", _tag(entry.etag, coding)),
        *entry.common,
        (b"content-type", entry.media_type),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    if coding != IDENTITY:
        headers.append((b"content-encoding", coding.encode("ascii")))
    return _Variant(body, tuple(headers))


def _compressed(entry: _Entry, coding: str) -> tuple[_Variant, bool]:
    """The ``coding`` variant of ``entry`` and whether this call made it. Computed once, on
    first use, in a worker thread (a 200 KB body takes tens of milliseconds, which must not
    stall the event loop); the lock makes concurrent first requests wait for one
    compression instead of each doing it."""
    with entry.lock:
        found = entry.variants.get(coding)
        if found is not None:
            return found, False
        raw = entry.variants[IDENTITY].body
        if coding == GZIP:
            # mtime=0: the same bytes in every process, as a strong ETag promises.
            body = gzip.compress(raw, compresslevel=9, mtime=0)
        else:
            body = bytes(brotli.compress(raw, quality=BROTLI_QUALITY))
        made = entry.variants[coding] = _variant(entry, coding, body)
        return made, True


def choose_coding(accept_encoding: str) -> str:
    """The content coding to send for an Accept-Encoding header value: ``br`` if acceptable
    (q > 0, by name or through ``*``), else ``gzip``, else ``identity``."""
    q: dict[str, float] = {}
    for item in accept_encoding.split(","):
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        weight = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    weight = 0.0  # a malformed weight is no acceptance
        q[name] = weight
    star = q.get("*", 0.0)
    if q.get(BR, star) > 0:
        return BR
    if q.get(GZIP, q.get("x-gzip", star)) > 0:
        return GZIP
    return IDENTITY


def etag_matches(if_none_match: bytes, tags: frozenset[bytes]) -> bool:
    """Whether an If-None-Match value names one of ``tags`` or is ``*`` (weak comparison,
    RFC 9110 §13.1.2: a ``W/`` prefix is ignored)."""
    if if_none_match in tags:  # the common case: a reader sends back the ETag it got
        return True
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate == b"*" or candidate.removeprefix(b"W/") in tags:
            return True
    return False


def not_modified_since(if_modified_since: bytes, mtime: int, last_modified: bytes) -> bool:
    """Whether a file last modified at ``mtime`` (whole seconds) is no newer than the
    If-Modified-Since date; an unparsable date answers False (the header is ignored)."""
    if if_modified_since == last_modified:  # the common case: the date we sent, echoed
        return True
    try:
        since = parsedate_to_datetime(if_modified_since.decode("latin-1"))
        if since.tzinfo is None:  # "-0000" or no zone: not valid HTTP, read as GMT
            since = since.replace(tzinfo=UTC)
        return mtime <= since.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False


class PollLimit:
    """Token buckets per (client address, path): ``per_minute`` requests at once, refilled
    at ``per_minute`` a minute. Memory is bounded: past ``max_keys`` buckets, the full ones
    (the same as having none) are dropped, and if that is not enough, the oldest half."""

    def __init__(self, per_minute: int, max_keys: int = 50_000) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens a second
        self.max_keys = max_keys
        self._buckets: dict[tuple[str, str], list[float]] = {}  # key → [tokens, at]

    def take(self, client: str, path: str, now: float | None = None) -> int:
        """Spend one token of (client, path): 0 when allowed, else the whole seconds (≥ 1)
        until a token is there again."""
        now = time.monotonic() if now is None else now
        key = (client, path)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            self._buckets[key] = [self.capacity - 1.0, now]
            return 0
        tokens = min(self.capacity, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0
        bucket[0] = tokens
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def _prune(self, now: float) -> None:
        rate, capacity = self.rate, self.capacity
        self._buckets = {
            k: b for k, b in self._buckets.items() if b[0] + (now - b[1]) * rate < capacity
        }
        if len(self._buckets) >= self.max_keys // 2:
            # Still crowded (many clients polling right now): keep the most recent half.
            recent = sorted(self._buckets.items(), key=lambda kv: kv[1][1])
            self._buckets = dict(recent[len(recent) // 2 :])

    def __len__(self) -> int:
        return len(self._buckets)


class PublicFiles:
    """ASGI middleware serving the files below ``settings.public_dir`` from memory; every
    other request goes to ``app``."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.root = str(settings.public_dir.absolute())
        self.languages = frozenset(settings.languages)
        self.first_language = settings.languages[0]
        self.limit = PollLimit(settings.feed_rate_limit) if settings.feed_rate_limit else None
        self._routes: dict[str, str] = {}  # route key (path, or "?lang=fr") → relpath
        self._files: dict[str, _Entry] = {}  # relpath → entry; oldest loaded first
        self._bytes = 0
        self._codings: dict[bytes, str] = {}  # Accept-Encoding value → coding (few distinct)
        self._watcher: Watcher | None = None  # made on the first request for a file
        self._watching = True  # until making one failed
        self._loop: asyncio.AbstractEventLoop | None = None  # the one reading the watcher
        self._root_languages: dict[bytes, str] = {}  # Accept-Language value → language
        # Fetches counted for the statistics: a page, a feed, a download; nothing about who.
        self.counter = counting.Counter(lambda: running_broker_url(settings))
        self._hit = self.counter.hit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/media/"):
            stored = MEDIA_PATH.match(path)
            if stored is not None and stored.group(3) in STORED_TYPES:
                if await self._media(scope, send, path[1:], stored.group(3)):
                    return
        if self._watching and (self._loop is None or self._loop.is_closed()):
            self._follow_changes()
        entry = self._entry(scope)
        if entry is None:
            await self.app(scope, receive, send)
            return
        if entry.feed and self.limit is not None:
            client = scope.get("client")
            wait = self.limit.take(client[0] if client else "", entry.relpath)
            if wait:
                await self._too_many(send, wait)
                return
        if entry.relpath.endswith(GONE_SUFFIX):
            await self._gone(scope, send, entry)
            return
        inm = ims = accept = None
        for name, value in scope["headers"]:
            if name == b"if-none-match":
                inm = value
            elif name == b"if-modified-since":
                ims = value
            elif name == b"accept-encoding":
                accept = value
        coding = IDENTITY
        if accept is not None and entry.compressible:
            coding = self._codings.get(accept) or self._coding(accept)
        # RFC 9110 §13.2.2: If-None-Match, when present, decides alone.
        if (
            (inm in entry.tags or etag_matches(inm, entry.tags))
            if inm is not None
            else ims is not None and not_modified_since(ims, entry.mtime, entry.last_modified)
        ):
            headers = entry.not_modified[coding]
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            if entry.hit_304 is not None and scope["method"] == "GET":
                self._hit(entry.hit_304)
            return
        found = entry.variants.get(coding)
        if found is not None:
            variant = found
        else:
            variant, made = await anyio.to_thread.run_sync(_compressed, entry, coding)
            if made:
                self._count(entry, len(variant.body))
        await send({"type": "http.response.start", "status": 200, "headers": variant.headers})
        if scope["method"] == "HEAD":
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": variant.body})
            if entry.hit_200 is not None:
                self._hit(entry.hit_200)

    async def _media(self, scope: Scope, send: Send, relpath: str, suffix: str) -> bool:
        """Answer with the stored image or document at ``relpath`` below ``public/`` (a
        file whose name ends in ``suffix``, a key of STORED_TYPES), streamed from disk
        (or 304); False, having sent nothing, when there is no such regular file inside
        the public directory."""
        path = os.path.join(self.root, relpath)
        if not os.path.realpath(path).startswith(os.path.realpath(self.root) + os.sep):
            return False
        try:
            fh = open(path, "rb")  # closed below (with), once streamed
        except OSError:
            return False
        with fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return False
            mtime = int(st.st_mtime)
            etag = f'"{mtime:x}-{st.st_size:x}"'.encode("ascii")
            last_modified = formatdate(mtime, usegmt=True).encode("ascii")
            headers: Headers = (
                (b"etag", etag),
                (b"last-modified", last_modified),
                (b"cache-control", MEDIA_CACHE_CONTROL),
            )
            inm = ims = None
            for name, value in scope["headers"]:
                if name == b"if-none-match":
                    inm = value
                elif name == b"if-modified-since":
                    ims = value
            if (
                etag_matches(inm, frozenset((etag,)))
                if inm is not None
                else ims is not None and not_modified_since(ims, mtime, last_modified)
            ):
                await send({"type": "http.response.start", "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return True
            headers += (
                (b"content-type", STORED_TYPES[suffix]),
                (b"content-length", str(st.st_size).encode("ascii")),
                (b"x-content-type-options", b"nosniff"),
            )
            if suffix == ".svg":
                headers += ((b"content-security-policy", SVG_CSP),)
            if suffix in DOWNLOADS:
                # The name is MEDIA_PATH's slug and suffix: ASCII, nothing to quote.
                filename = relpath.rsplit("/", 1)[1]
                disposition = f'attachment; filename="{filename}"'.encode("ascii")
                headers += ((b"content-disposition", disposition),)
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            if scope["method"] == "GET":
                while chunk := await anyio.to_thread.run_sync(fh.read, MEDIA_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            if self.settings.statistics:
                kind = counting.fetch_kind(scope["method"], 200, relpath)
                if kind is not None:
                    self._hit(counting.field(kind, relpath))
            return True

    async def _gone(self, scope: Scope, send: Send, entry: _Entry) -> None:
        # No validators: a 304 would not say "gone"; the notice is small.
        variant = entry.variants[IDENTITY]
        headers = tuple((k, v) for k, v in variant.headers if k not in (b"etag", b"last-modified"))
        await send({"type": "http.response.start", "status": 410, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else variant.body
        await send({"type": "http.response.body", "body": body})

    def _follow_changes(self) -> None:
        """Read the watcher's changes on the running event loop (a server has one; tests
        start several, one after the other: the changes queued meanwhile are read at once).
        Until one reads them, nothing is trusted without a stat."""
        loop = asyncio.get_running_loop()
        try:
            if self._watcher is None:
                self._watcher = Watcher(self.root)
            elif self._loop is not None:
                try:
                    self._loop.remove_reader(self._watcher.fd)
                except (RuntimeError, ValueError, OSError):
                    pass  # that loop is closed
            loop.add_reader(self._watcher.fd, self._changed)
        except (OSError, NotImplementedError, RuntimeError):
            # Not Linux, no inotify instance left, a loop without readers: a stat a request.
            if self._watcher is not None:
                self._watcher.close()
            self._watcher, self._loop, self._watching = None, None, False
            return
        self._loop = loop
        self._changed()

    def _changed(self) -> None:
        """Stop trusting the cached files the watcher says changed (all, if it cannot say):
        their next request stats them."""
        assert self._watcher is not None
        changed = self._watcher.changes()
        if changed is None:
            for entry in self._files.values():
                entry.valid_until = 0.0
            return
        for relpath in changed:
            found = self._files.get(relpath)
            if found is not None:
                found.valid_until = 0.0

    def _trust(self, entry: _Entry, now: float) -> None:
        """Serve ``entry`` without a stat for a while, if the kernel tells us of changes."""
        if entry.watched and self._loop is not None:
            entry.valid_until = now + RECHECK_SECONDS

    def _coding(self, accept: bytes) -> str:
        if len(self._codings) > 256:  # headers are client-chosen: keep the memo small
            self._codings.clear()
        coding = self._codings[accept] = choose_coding(accept.decode("latin-1"))
        return coding

    async def _too_many(self, send: Send, wait: int) -> None:
        body = (
            f"Too many requests: poll this feed at most {self.settings.feed_rate_limit} times"
            f" a minute (conditional requests count too). Retry in {wait} s.\n"
        ).encode()
        headers = (
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode("ascii")),
            (b"retry-after", str(wait).encode("ascii")),
            (b"cache-control", b"no-store"),
        )
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _entry(self, scope: Scope) -> _Entry | None:
        """The up-to-date cache entry for the request's path, or None when no file answers."""
        path: str = scope["path"]
        if not path.startswith("/"):
            return None
        route, lang = path, None
        if path == "/":
            lang = self._root_language(scope)
            if lang is not None:
                route = "?lang=" + lang  # a key no path can be: paths start with "/"
        relpath = self._routes.get(route)
        if relpath is not None:
            entry = self._files.get(relpath)
            if entry is not None:
                # The hot path: a file the kernel has said nothing about since its last
                # check, or else one stat; nothing read.
                now = time.monotonic()
                if now < entry.valid_until:
                    return entry
                try:
                    st = os.stat(entry.path)
                    if entry.key == (st.st_mtime_ns, st.st_size, st.st_ino):
                        self._trust(entry, now)
                        return entry
                except OSError:
                    pass
            # Changed, gone or evicted: resolve again (another candidate may answer now).
            del self._routes[route]
        for relpath in _candidates(path, lang):
            entry = self._fresh(relpath)
            if entry is not None:
                self._routes[route] = relpath
                return entry
        return None

    def _root_language(self, scope: Scope) -> str | None:
        """The language ``/`` is asked in: ``?lang=`` when it names one of ours, else the
        browser's choice (Accept-Language) when that is not the first language; None for
        the first language's ``index.html``."""
        query: bytes = scope["query_string"]
        if query:
            asked = dict(parse_qsl(query.decode("latin-1"))).get("lang")
            if asked is not None and asked in self.languages:
                return asked
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        for name, value in headers:
            if name == b"accept-language":
                lang = self._root_languages.get(value)
                if lang is None:
                    if len(self._root_languages) > 256:  # client-chosen: keep the memo small
                        self._root_languages.clear()
                    lang = negotiate(value.decode("latin-1"), self.languages, self.first_language)
                    self._root_languages[value] = lang
                return None if lang == self.first_language else lang
        return None

    def _fresh(self, relpath: str) -> _Entry | None:
        """The entry for ``relpath``, read again if the file changed; None if there is no
        regular file there inside the public directory (a symbolic link may point out)."""
        path = os.path.join(self.root, relpath)
        entry = self._files.get(relpath)
        # Watched before it is looked at, so no change can fall between the two.
        watcher = self._watcher if self._loop is not None else None
        watched = watcher is not None and watcher.watch(os.path.dirname(relpath))
        try:
            st = os.stat(path)
        except (OSError, ValueError):  # ValueError: a name the file system cannot encode
            st = None
        now = time.monotonic()
        if entry is not None:
            if st is not None and entry.key == (st.st_mtime_ns, st.st_size, st.st_ino):
                entry.watched = entry.watched or watched
                self._trust(entry, now)
                return entry
            self._forget(relpath)
        if st is None or not stat.S_ISREG(st.st_mode):
            return None
        if not os.path.realpath(path).startswith(os.path.realpath(self.root) + os.sep):
            return None
        entry = _load(path, relpath, self.settings)
        if entry is not None:
            entry.watched = watched
            self._trust(entry, now)
            self._files[relpath] = entry
            self._count(entry, len(entry.variants[IDENTITY].body))
        return entry

    def _count(self, entry: _Entry, size: int) -> None:
        """Add ``size`` bytes held for ``entry`` (if still cached) and keep within budget."""
        if self._files.get(entry.relpath) is not entry:
            return  # replaced or evicted while a variant was being compressed
        entry.counted += size
        self._bytes += size
        while self._bytes > MAX_CACHED_BYTES and len(self._files) > 1:
            # Drop the longest-cached entries first; a hot file is simply read again.
            self._forget(next(iter(self._files)))

    def _forget(self, relpath: str) -> None:
        entry = self._files.pop(relpath, None)
        if entry is not None:
            self._bytes -= entry.counted


def _candidates(path: str, lang: str | None) -> list[str]:
    """The files below ``public/`` that may answer ``path`` (``lang``: a language of ours
    asked for with ``/?lang=``), in order; none for a refused path."""
    if lang is not None:
        return [f"{lang}/index.html"]
    if not _safe(path):
        return []
    rel = path[1:]
    if rel == "" or rel.endswith("/"):
        return [rel + "index.html"]
    if rel.startswith("releases/"):  # a withdrawn release leaves a notice: 410 Gone
        return [rel, rel + ".html", rel + GONE_SUFFIX]
    return [rel, rel + ".html", rel + "/index.html"]


def _safe(path: str) -> bool:
    """Whether a request path (already percent-decoded by the server) may name a file:
    no dot-segment or dotfile, no empty segment, no backslash, NUL or percent sign (a
    second decoding somewhere must not turn it into something else)."""
    if "\\" in path or "\x00" in path or "%" in path:
        return False
    segments = path[1:].split("/")
    for i, segment in enumerate(segments):
        if segment.startswith(".") or (not segment and i != len(segments) - 1):
            return False
    return True
