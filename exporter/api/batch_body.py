"""The entries of a batch body, read one at a time as the body arrives.

`json.loads` of a whole 60 MB batch held the body, its text and every entry's objects at once
(with the rendered lines: 3x the body at its peak, 334 MB for a 60 MB batch). Here the body
comes in chunks, each entry is decoded as soon as it is complete and handed on, and only the
text of the entry being read is kept: memory follows what the caller keeps (the lines).

The body is `[entry, ...]`, `{"entries": [entry, ...], ...}` or `{"log_entries": [...], ...}`
(the body the seed project's client sends; other keys are read and left);
anything else, or JSON that does not parse, is a `BatchBodyError` with a readable reason.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable, Iterator
from typing import Any

_WHITESPACE = " \t\n\r"
BATCH_KEYS = ("entries", "log_entries")
_NOT_A_BATCH = ('body must be {"entries": [...]}, {"log_entries": [...]} or a JSON array of '
                'entries')


class BatchBodyError(ValueError):
    """The body is not JSON, not UTF-8, nested too deeply, or not a batch (`field`: entries)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.field = "entries" if message == _NOT_A_BATCH else ""


class BatchBody:
    """Iterate the entries of the body `chunks()` returns piece by piece (None: the end).

    `in_object` tells, once iteration has begun, whether the entries came in an object, and
    `key` under which of BATCH_KEYS.
    """

    def __init__(self, chunks: Callable[[], bytes | None]) -> None:
        self._chunks = chunks
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._scan = json.JSONDecoder().raw_decode
        self._text = ""
        self._pos = 0
        self._ended = False
        self.in_object = False
        self.key = BATCH_KEYS[0]

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._body()
        except RecursionError:
            raise BatchBodyError("body is nested too deeply") from None
        except UnicodeDecodeError:
            raise BatchBodyError("body is not valid JSON (UnicodeDecodeError)") from None

    def _body(self) -> Iterator[Any]:
        first = self._peek()
        if first == "[":
            yield from self._array()
        elif first == "{":
            self.in_object = True
            yield from self._object()
        else:
            self._value()  # a JSON error, or JSON that is no batch
            raise BatchBodyError(_NOT_A_BATCH)
        if self._peek() != "":
            raise BatchBodyError("body is not valid JSON (JSONDecodeError: extra data)")

    def _object(self) -> Iterator[Any]:
        self._take("{")
        found = False
        if self._peek() == "}":
            self._take("}")
        else:
            while True:
                key = self._value()
                if not isinstance(key, str):
                    raise self._invalid()
                self._take(":")
                if key in BATCH_KEYS and self._peek() == "[":
                    if found:
                        raise BatchBodyError(f'body has "{self.key}" and "{key}": one list of '
                                             "entries per batch")
                    found = True
                    self.key = key
                    yield from self._array()
                elif key in BATCH_KEYS:
                    raise BatchBodyError(_NOT_A_BATCH)
                else:
                    self._value()  # another key: read and left
                if self._peek() == "}":
                    self._take("}")
                    break
                self._take(",")
        if not found:
            raise BatchBodyError(_NOT_A_BATCH)

    def _array(self) -> Iterator[Any]:
        self._take("[")
        if self._peek() == "]":
            self._take("]")
            return
        while True:
            yield self._value()
            if self._peek() == "]":
                self._take("]")
                return
            self._take(",")

    def _peek(self) -> str:
        """The next character that is not whitespace ("" at the end of the body)."""
        while True:
            text, pos = self._text, self._pos
            while pos < len(text) and text[pos] in _WHITESPACE:
                pos += 1
            self._pos = pos
            if pos < len(text) or not self._more():
                return text[pos] if pos < len(text) else ""

    def _take(self, char: str) -> None:
        if self._peek() != char:
            raise self._invalid()
        self._pos += 1

    def _value(self) -> Any:
        """The next JSON value, once the body holds all of it."""
        self._peek()
        while True:
            try:
                value, end = self._scan(self._text, self._pos)
            except json.JSONDecodeError:
                if self._grow():
                    continue
                raise self._invalid() from None
            # A number may go on in the next chunk (12|34): only a delimiter ends it for sure.
            if end == len(self._text) and self._grow():
                continue
            self._pos = end
            return value

    def _grow(self) -> bool:
        """Read until what is left of the text is twice as long, or the body ends: a value
        split over many chunks is scanned O(log n) times, not once per chunk."""
        want = 2 * max(len(self._text) - self._pos, 1)
        grew = False
        while len(self._text) - self._pos < want and self._more():
            grew = True
        return grew

    def _more(self) -> bool:
        """Append the next chunk to what is left of the text; False at the end of the body."""
        if self._ended:
            return False
        chunk = self._chunks()
        rest = self._text[self._pos:]
        if chunk is None:
            self._ended = True
            self._text, self._pos = rest + self._decoder.decode(b"", final=True), 0
            return False
        self._text, self._pos = rest + self._decoder.decode(chunk), 0
        return True

    @staticmethod
    def _invalid() -> BatchBodyError:
        return BatchBodyError("body is not valid JSON (JSONDecodeError)")
