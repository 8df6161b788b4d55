"""Compiled Jinja templates shared by the environments of one kind in a process."""

from __future__ import annotations

from types import CodeType

from jinja2.bccache import Bucket, BytecodeCache


class CompiledTemplates(BytecodeCache):
    """A template's compiled code kept in memory, keyed by its name, file and the checksum
    of its source, for every ``Environment`` given this instance.

    An environment compiles each template it loads (parse, generate Python, ``compile()``:
    milliseconds a template), and every app, dashboard, newsroom and site build makes its
    own environment: without this each one compiles the same templates again. Give one
    instance only to environments configured alike (autoescape, finalize, whitespace
    options, extensions), since those change the code compiled; what differs between them
    (globals, filters) is looked up when a template renders. A template edited on disk has
    another checksum and is compiled again."""

    def __init__(self) -> None:
        self._code: dict[tuple[str, str], CodeType] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        """Give ``bucket`` the code compiled earlier for the same source, if any."""
        code = self._code.get((bucket.key, bucket.checksum))
        if code is not None:
            bucket.code = code

    def dump_bytecode(self, bucket: Bucket) -> None:
        """Keep the code ``bucket`` was just given."""
        if bucket.code is not None:
            self._code[(bucket.key, bucket.checksum)] = bucket.code
