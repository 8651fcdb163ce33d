"""The fingerprint of an exception: what makes two occurrences "the same bug"."""

from __future__ import annotations

import functools
import hashlib
import os
import re
import site
import sysconfig
from collections.abc import Sequence
from types import CodeType, TracebackType
from typing import Any, NamedTuple

# Frames of our own instrumentation sit in every captured stack; they say nothing about the bug.
_OWN_MODULES = ("exporter.http.middleware", "exporter.errors")
_MAX_FRAMES = 50
_MAX_FINGERPRINT_FRAMES = 30

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX_ADDRESS = re.compile(r"\b0x[0-9a-f]+\b", re.I)
# Long hex runs (hashes, trace ids, object ids) that contain at least one digit.
_HEX_ID = re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
# A quoted literal (a repr of user data: a key, a name, a path), up to 200 characters.
_QUOTED = re.compile(r"'[^'\n]{0,200}'|\"[^\"\n]{0,200}\"")


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    names = ("stdlib", "platstdlib", "purelib", "platlib")
    roots = {paths[name] for name in names if name in paths}
    try:
        roots.update(site.getsitepackages())
    except AttributeError:  # virtualenv's old site module
        pass
    roots.add(site.getusersitepackages() if hasattr(site, "getusersitepackages") else "")
    return tuple(os.path.realpath(root) + os.sep for root in roots if root)


_LIBRARY_ROOTS = _library_roots()


class Frame(NamedTuple):
    """One stack frame of a captured exception (innermost last in a stack). A named tuple: a
    captured exception makes one per frame of its traceback, on the request's path."""

    module: str
    function: str
    filename: str
    lineno: int
    in_app: bool

    def as_dict(self) -> dict[str, object]:
        """The frame as JSON-ready fields."""
        return {"module": self.module, "function": self.function, "filename": self.filename,
                "lineno": self.lineno, "in_app": self.in_app}


@functools.lru_cache(maxsize=4096)
def is_in_app(module: str, filename: str) -> bool:
    """True for the application's own code: not the standard library, not installed packages.

    Cached: `realpath` costs a few system calls, and the same frames recur in every capture.
    """
    if module.startswith(_OWN_MODULES) or filename.startswith("<"):
        return False
    if "site-packages" in filename or "dist-packages" in filename:
        return False
    return not os.path.realpath(filename).startswith(_LIBRARY_ROOTS)


class _Code(NamedTuple):
    """What a code object's frames share, and its frames met so far by line."""

    code: CodeType  # kept, so an id is never taken for another object's
    frames: dict[int, Frame]
    module: str
    function: str
    filename: str
    in_app: bool


# By the code object's id (hashing a code object hashes its bytecode and constants): the same
# frames recur in every capture, and reading their facts again costs more than the rest of the
# walk; the same Frame objects are handed out again, so a capture allocates none for them.
_CODES: dict[int, _Code] = {}
_MAX_CODES = 4096
_MAX_LINES = 64  # frames remembered per code object


def _code(code: CodeType, module_globals: dict[str, Any]) -> _Code:
    module = str(module_globals.get("__name__", "?"))
    facts = _Code(code, {}, module, getattr(code, "co_qualname", code.co_name), code.co_filename,
                  is_in_app(module, code.co_filename))
    if len(_CODES) >= _MAX_CODES:  # code made at run time (exec, lambdas in loops)
        _CODES.clear()
    _CODES[id(code)] = facts
    return facts


def stack_of(tb: TracebackType | None, limit: int | None = _MAX_FRAMES) -> tuple[Frame, ...]:
    """The frames of a traceback, outermost first: the innermost `limit` (50; None: all)."""
    frames: list[Frame] = []
    known = _CODES
    while tb is not None:
        code = tb.tb_frame.f_code
        facts = known.get(id(code))
        if facts is None or facts.code is not code:
            facts = _code(code, tb.tb_frame.f_globals)
        lineno = tb.tb_lineno
        frame = facts.frames.get(lineno)
        if frame is None:
            frame = Frame(facts.module, facts.function, facts.filename, lineno, facts.in_app)
            if len(facts.frames) < _MAX_LINES:
                facts.frames[lineno] = frame
        frames.append(frame)
        tb = tb.tb_next
    return tuple(frames if limit is None else frames[-limit:])


def normalise_message(message: str) -> str:
    """The message with e-mail addresses, quoted strings, uuids, addresses, ids and numbers
    replaced, so instances compare equal: `KeyError('alice')` and `KeyError('bob')` are one."""
    message = _EMAIL.sub("<email>", message)
    message = _QUOTED.sub("<str>", message)
    message = _UUID.sub("<uuid>", message)
    message = _HEX_ADDRESS.sub("<addr>", message)
    message = _HEX_ID.sub("<id>", message)
    return _NUMBER.sub("<n>", message)[:300]


def exception_type_name(exc: BaseException) -> str:
    """`module.QualName` of the exception's class, short for builtins (`ValueError`)."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def fingerprint(type_name: str, message: str, frames: Sequence[Frame]) -> str:
    """32 hex digits naming the group: the type, the in-app frames and the normalised message.

    `frames` should be the whole traceback (`stack_of(tb, None)`): deep recursion must not push
    the outer frames out. Frames count by module and function only, so edits that move lines,
    and deploys, keep the group. Each frame counts once, where it first appears: recursion,
    direct (f, f, f) or mutual (f, g, f, g, f), gives the same frames at any depth. With no
    in-app frame at all (a failure inside a library), the library frames are used instead.
    """
    chosen = [frame for frame in frames if frame.in_app] or frames
    parts = list(dict.fromkeys(f"{frame.module}:{frame.function}" for frame in chosen))
    text = "\n".join([type_name, normalise_message(message), *parts[-_MAX_FINGERPRINT_FRAMES:]])
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
