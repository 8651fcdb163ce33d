"""Just enough of Alloy's configuration syntax to check alloy/config.alloy's structure: its
components, the arguments and blocks each one sets, and the exports it references. Alloy
cannot run in CI; `alloy fmt`/`alloy run` would check more (expression types, values)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_NAME = r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*"
# A reference to another component's export: <type>.<label>.<export>.
_REFERENCE = re.compile(
    r"\b((?:otelcol|prometheus|loki|local)(?:\.[a-z_]+)+?)\.([a-z0-9_]+)\."
    r"(input|receiver|targets|handler)\b")


@dataclass
class Body:
    """The top level of one block's body: the arguments it sets and its inner blocks."""

    arguments: dict[str, str] = field(default_factory=dict)
    blocks: dict[str, list[Body]] = field(default_factory=dict)


def blank_strings_and_comments(text: str) -> str:
    """`text` with comments and the insides of strings blanked (quotes kept; same length, so
    offsets match), so that braces or `=` inside them count for nothing. Raises ValueError on
    an unterminated string."""
    out: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if text.startswith("//", index):
            end = text.find("\n", index)
            end = len(text) if end < 0 else end
            out.append(" " * (end - index))  # same length: offsets match the text
            index = end
            continue
        if char in '"`':
            end = index + 1
            while end < len(text) and text[end] != char:
                if char == '"' and text[end] == "\\":
                    end += 1
                elif char == '"' and text[end] == "\n":
                    raise ValueError(f"unterminated string at offset {index}")
                end += 1
            if end >= len(text):
                raise ValueError(f"unterminated string at offset {index}")
            out.append(char + " " * (end - index - 1) + char)
            index = end + 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _closing(code: str, start: int) -> int:
    """Index of the bracket that closes the one opened just before `start`."""
    depth = 1
    for index in range(start, len(code)):
        depth += {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}.get(code[index], 0)
        if depth == 0:
            return index
    raise ValueError(f"unbalanced brackets after offset {start}")


def parse_body(code: str, original: str) -> Body:
    """The arguments and blocks at the top level of a block body (`code` with strings blanked,
    `original` the same span as written, for argument values)."""
    body = Body()
    index = 0
    head = re.compile(rf"\s*({_NAME})\s*(=|\{{)")
    while index < len(code):
        if code[index].isspace() or code[index] == ",":
            index += 1
            continue
        match = head.match(code, index)
        if match is None:
            raise ValueError(f"unexpected text: {code[index:index + 40]!r}")
        name, kind = match.group(1), match.group(2)
        if kind == "{":
            end = _closing(code, match.end())
            inner = parse_body(code[match.end():end], original[match.end():end])
            body.blocks.setdefault(name, []).append(inner)
            index = end + 1
            continue
        # An argument's value runs to the end of the line, or past it while brackets are open.
        end = match.end()
        while end < len(code) and code[end] != "\n":
            if code[end] in "{[(":
                end = _closing(code, end + 1)
            end += 1
        body.arguments[name] = original[match.end():end].strip()
        index = end
    return body


@dataclass
class Component:
    kind: str
    label: str
    body: Body
    text: str  # the body as written


def components(text: str) -> list[Component]:
    """Every component of a configuration, in order; ValueError on anything else at the top
    level, or on unbalanced brackets and strings."""
    code = blank_strings_and_comments(text)
    head = re.compile(rf'({_NAME})\s+("[^"]*")\s*\{{')
    found = []
    index = 0
    while index < len(code):
        if code[index].isspace():
            index += 1
            continue
        match = head.match(code, index)
        if match is None:
            raise ValueError(f"not a component: {code[index:index + 40]!r}")
        label = text[match.start(2) + 1:match.end(2) - 1]
        if not re.fullmatch(r"[a-z0-9_]+", label):
            raise ValueError(f"{match.group(1)}: label {label!r} is not an identifier")
        end = _closing(code, match.end())
        found.append(Component(match.group(1), label,
                               parse_body(code[match.end():end], text[match.end():end]),
                               text[match.end():end]))
        index = end + 1
    return found


def references(text: str) -> set[tuple[str, str, str]]:
    """(type, label, export) of every component export the configuration refers to."""
    code = blank_strings_and_comments(text)
    return set(_REFERENCE.findall(code))


def string_value(argument: str) -> str:
    """The value of a string argument as written (`"..."`), without its quotes."""
    match = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', argument.strip())
    if match is None:
        raise ValueError(f"{argument!r} is not a plain string")
    return match.group(1)


def list_items(argument: str) -> list[str]:
    """The items of a list argument (`[a, b]`), as written: commas inside strings or nested
    brackets do not split."""
    inner = argument.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise ValueError(f"{argument!r} is not a list")
    inner = inner[1:-1]
    code = blank_strings_and_comments(inner)
    items, start, depth = [], 0, 0
    for index, char in enumerate(code + ","):
        depth += {"{": 1, "[": 1, "(": 1, "}": -1, "]": -1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(inner[start:index])
            start = index + 1
    return [item.strip() for item in items if item.strip()]
