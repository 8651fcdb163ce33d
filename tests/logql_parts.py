"""What a LogQL query asks of the streams, and where the repository writes LogQL.

`needs(expr)` reads a query the way Loki does as far as labels go: the stream selectors'
matchers, and the label filters of each pipeline (`| trace_id="..."`), split by whether a parser
(`| json`, `| logfmt`...) came before them. Before a parser, a label filter can only name a
stream label or a structured metadata key; after one, any field of the line. `queries_in_*`
find the LogQL of the dashboards, the Grafana datasources, the docs and the code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parent.parent

_TOKEN = re.compile(r'''
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
  | (?P<op>\|=|\|~|!=|!~|=~|==|>=|<=|=|>|<|\||\{|\}|\(|\)|\[|\]|,)
  | (?P<var>\$\$?\{[^}]*\}|\$\w+)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>.)
''', re.X | re.S)
_LINE_FILTERS = {"|=", "|~", "!=", "!~"}
_COMPARISONS = {"=", "==", "!=", "=~", "!~", ">", ">=", "<", "<="}
PARSERS = {"json", "logfmt", "regexp", "pattern", "unpack"}
_FORMATTERS = {"line_format", "label_format", "keep", "drop", "decolorize", "unwrap"}
_STAGE_END = {"|", ")", "["} | _LINE_FILTERS


@dataclass
class Needs:
    """What one query needs of a shipping path."""

    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # (label, op, value)
    unparsed: set[str] = field(default_factory=set)  # label filters before any parser
    parsed: set[str] = field(default_factory=set)  # label filters after a parser


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens = []
    for match in _TOKEN.finditer(expr):
        kind = match.lastgroup or "other"
        if kind != "space":
            tokens.append((kind, match.group()))
    return tokens


def _unquoted(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    return str(json.loads(token)) if token.startswith('"') else token


def needs(expr: str) -> Needs:
    """The matchers and label filters of every stream selector and pipeline in `expr`;
    ValueError for a selector that is not a list of `label op "value"`."""
    tokens, found, at = _tokens(expr), Needs(), 0
    while at < len(tokens):
        if tokens[at] != ("op", "{"):
            at += 1
            continue
        at += 1
        while tokens[at] != ("op", "}"):
            (k1, name), (_k2, op), (k3, value) = tokens[at:at + 3]
            if k1 != "ident" or op not in _COMPARISONS or k3 != "string":
                raise ValueError(f"not a stream selector in {expr!r} at {name!r}")
            found.matchers.append((name, op, _unquoted(value)))
            at += 3
            if tokens[at] == ("op", ","):
                at += 1
        at = _pipeline(tokens, at + 1, found)
    return found


def _pipeline(tokens: list[tuple[str, str]], at: int, found: Needs) -> int:
    """Reads the stages after a selector; returns where they end."""
    parsed = False
    while at < len(tokens):
        kind, text = tokens[at]
        if kind == "op" and text in _LINE_FILTERS:
            at += 2  # the string (or ip("...")): no label involved
            continue
        if (kind, text) != ("op", "|") or at + 1 >= len(tokens):
            return at
        stage = tokens[at + 1][1]
        at += 2
        if stage in PARSERS:
            parsed = True
        if stage in PARSERS or stage in _FORMATTERS:
            while at < len(tokens) and tokens[at][1] not in _STAGE_END:
                at += 1
            continue
        at -= 1  # a label filter: `name op value` joined by and/or/","
        depth = 0
        while at < len(tokens):
            kind, text = tokens[at]
            if depth == 0 and text in _STAGE_END:
                break
            depth += {"(": 1, ")": -1}.get(text, 0)
            if (kind == "ident" and at + 1 < len(tokens)
                    and tokens[at + 1][1] in _COMPARISONS and text not in ("and", "or")):
                (found.parsed if parsed else found.unparsed).add(text)
            at += 1
    return at


# ---- where the repository writes LogQL ----------------------------------------------------

def queries_in_dashboards() -> Iterator[tuple[str, str]]:
    """(where, expr) of every Loki target of every dashboard: the JSON files under grafana/
    and the ConfigMaps of deploy/kubernetes/ that hold them."""
    boards = [(path.name, json.loads(path.read_text()))
              for path in sorted((ROOT / "grafana").rglob("*.json"))]
    for path in sorted((ROOT / "deploy" / "kubernetes").glob("grafana-dashboard*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            boards += [(f"{path.name}:{name}", json.loads(text))
                       for name, text in (doc or {}).get("data", {}).items()
                       if name.endswith(".json")]
    for name, board in boards:
        for where, node in _nodes(board, name):
            source = node.get("datasource")
            if isinstance(node.get("expr"), str) and isinstance(source, dict) and (
                    source.get("type") == "loki"):
                yield f"{where}: {node.get('title') or node.get('refId', '')}", node["expr"]


def queries_in_datasources() -> Iterator[tuple[str, str]]:
    """(where, expr) of the LogQL in the provisioned datasources (derived fields that open
    Loki, exemplar links into Explore on Loki), in grafana/ and deploy/kubernetes/."""
    paths = [*sorted((ROOT / "grafana" / "provisioning").rglob("*.y*ml")),
             *sorted((ROOT / "deploy" / "kubernetes").glob("grafana*.yaml"))]
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            yield from _datasource_queries(doc, path.name)


def _datasource_queries(doc: Any, where: str) -> Iterator[tuple[str, str]]:
    for place, node in _nodes(doc, where):
        for key, value in node.items():
            if not isinstance(value, str):
                continue
            if value.lstrip().startswith(("apiVersion:", "datasources:")):  # a ConfigMap's file
                yield from _datasource_queries(yaml.safe_load(value), f"{place}.{key}")
            elif key == "url" and node.get("datasourceUid") == "loki":
                yield f"{place} (derived field {node.get('name')})", value
            elif key == "query" and node.get("datasourceUid") == "loki":  # traces to logs
                # Grafana puts `label="value"` of each tag (span attribute -> label) in
                # ${__tags}; the value is the span's, any text here.
                tags = ", ".join(f'{tag.get("value") or tag["key"]}="<{tag["key"]}>"'
                                 for tag in node.get("tags", []))
                yield f"{place} (traces to logs)", re.sub(r"\$?\$\{__tags\}", tags, value)
            elif key == "url" and "expr" in unquote(value):
                for expr in re.findall(r'"expr":("(?:[^"\\]|\\.)*")', unquote(value)):
                    yield f"{place} (link {node.get('name')})", json.loads(expr)


def _nodes(doc: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(doc, dict):
        yield where, doc
        for key, value in doc.items():
            yield from _nodes(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _nodes(value, f"{where}[{index}]")


# A stream selector where LogQL starts: `{` at the start or after `(`/space, then `label op "`.
_LOGQL_START = re.compile(r'(?:^|(?<=[\s(]))\{\s*[A-Za-z_]\w*\s*(?:=~|!~|!=|=)\s*"')


def queries_in_docs() -> Iterator[tuple[str, str]]:
    """(where, expr) of each code span or block of docs/*.md and README.md holding LogQL (a
    metric name before `{` makes it PromQL, which is skipped)."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text()
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)
        inline = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.M | re.S)
        # In a table, a pipe inside code is written `\|`.
        spans = [*blocks, *(span.replace("\\|", "|") for span in re.findall(r"`([^`]+)`", inline))]
        for span in spans:
            for line in span.splitlines() if span in blocks else [span]:
                start = _LOGQL_START.search(line)
                if start is not None and not line.lstrip().startswith(("#", "//")):
                    yield path.name, line[_statement_start(line, start.start()):].strip()


def _statement_start(line: str, brace: int) -> int:
    """Where the query holding the selector at `brace` starts: an aggregation around it
    (`sum by (level) (count_over_time({`) belongs to it."""
    head = re.search(r"[A-Za-z_][\w ()]*\($", line[:brace])
    return head.start() if head is not None else brace
