"""Route templates (`/items/{item_id}`) for raw request paths, through routers and mounts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import routing as _fastapi_routing
from starlette.routing import Match, Mount, Route, WebSocketRoute

from exporter.http.types import Scope

UNMATCHED = "<unmatched>"

# Recent FastAPI keeps an included router as one opaque route and offers this to flatten it;
# older releases flatten include_router themselves.
_iter_route_contexts: Any = getattr(_fastapi_routing, "iter_route_contexts", None)
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


def _flatten(routes: Sequence[Any]) -> list[Any]:
    if _iter_route_contexts is None:
        return list(routes)
    return list(_iter_route_contexts(routes))


def route_templates(routes: Sequence[Any]) -> list[str]:
    """The path template of every route, routers included (FastAPI may nest them)."""
    return [
        template for route in _flatten(routes)
        if (template := getattr(route, "path_format", None) or getattr(route, "path", None))
    ]


def _route_path(scope: Scope) -> str:
    """The path the router matches: the request path below the app's root_path."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


class _Unsupported(Exception):
    """A route kind the compiled table cannot reason about (Host, custom routes)."""


class _Entry:
    __slots__ = ("methods", "mount_routes", "prefix", "regex", "sub_table", "template")

    def __init__(self, route: Any) -> None:
        original = getattr(route, "original_route", route)
        if not isinstance(original, (Mount, Route)):
            raise _Unsupported(type(original).__name__)
        self.regex: re.Pattern[str] = route.path_regex
        self.template: str = route.path_format
        self.sub_table: _Table | None = None
        if isinstance(original, Mount):
            self.methods: frozenset[str] | None = None  # a mount matches every method
            self.prefix: str | None = self.template.removesuffix("/{path}")
            self.mount_routes: Sequence[Any] = getattr(route, "routes", None) or []
        else:
            methods = getattr(route, "methods", None)
            self.methods = frozenset(methods) if methods else None
            self.prefix = None
            self.mount_routes = []


def _combine(entries: Iterable[tuple[int, _Entry]]) -> re.Pattern[str] | None:
    """One regex whose alternatives are the entries in order; group `r<i>` names the entry."""
    parts = []
    for index, entry in entries:
        source = entry.regex.pattern.removeprefix("^").removesuffix("$")
        parts.append(f"(?P<r{index}>{_NAMED_GROUP.sub('(?:', source)})")
    return re.compile("(?:" + "|".join(parts) + r")\Z") if parts else None


class _Table:
    """One router level compiled to one regex per method: a miss costs a couple of regex
    matches in C instead of a Python loop over every route."""

    def __init__(self, routes: Sequence[Any]) -> None:
        self._entries = [
            _Entry(route)
            for route in _flatten(routes)
            if not isinstance(getattr(route, "original_route", route), WebSocketRoute)
        ]
        self._any = _combine(enumerate(self._entries))
        self._by_method: dict[str, re.Pattern[str] | None] = {}

    def _for_method(self, method: str) -> re.Pattern[str] | None:
        if method not in self._by_method:
            self._by_method[method] = _combine(
                (i, e)
                for i, e in enumerate(self._entries)
                if e.methods is None or method in e.methods
            )
        return self._by_method[method]

    def template(self, method: str, path: str) -> str | None:
        """As Starlette's Router picks: the first full match, else the first partial one."""
        pattern = self._for_method(method)
        found = pattern.match(path) if pattern is not None else None
        if found is None:
            found = self._any.match(path) if self._any is not None else None
            if found is None:
                return None
        entry = self._entries[int(str(found.lastgroup)[1:])]
        if entry.prefix is None:
            return entry.template
        if not entry.mount_routes:
            return entry.template
        if entry.sub_table is None:
            entry.sub_table = _Table(entry.mount_routes)
        rest = entry.regex.match(path)
        inner = entry.sub_table.template(method, "/" + rest["path"]) if rest else None
        # A path the mounted app does not route is answered 404 there: it keeps the mount's
        # bounded template rather than falling through to later routes.
        return entry.prefix + inner if inner is not None else entry.template


def _walk(routes: Iterable[Any], scope: Scope) -> str | None:
    """The slow, general way: ask each route, as Starlette's Router does (Host routes...)."""
    partial: str | None = None
    for route in routes:
        kind, child = route.matches(scope)
        if kind is Match.NONE:
            continue
        template = getattr(route, "path_format", None) or ""
        sub_routes = getattr(route, "routes", None) or []
        if isinstance(getattr(route, "original_route", route), Mount):
            prefix = template.removesuffix("/{path}")
            inner = _walk(_flatten(sub_routes), {**scope, **child}) if sub_routes else None
            template = prefix + inner if inner is not None else template
        elif not template:  # Host and other path-less routes
            inner = _walk(_flatten(sub_routes), {**scope, **child}) if sub_routes else None
            template = inner or UNMATCHED
        if kind is Match.FULL:
            return template
        if partial is None:
            partial = template
    return partial


class RouteResolver:
    """Maps a request to its route template: one regex match per router level (the caller
    caches the answers it needs again; the middleware keeps one per recent raw path)."""

    def __init__(self) -> None:
        self._table: _Table | None = None
        self._walk_routes: list[Any] | None = None
        self._source: Sequence[Any] | None = None
        self._source_len = -1

    def _compile(self, routes: Sequence[Any]) -> None:
        try:
            self._table, self._walk_routes = _Table(routes), None
        except _Unsupported:
            self._table, self._walk_routes = None, _flatten(routes)
        self._source, self._source_len = routes, len(routes)

    def resolve(self, scope: Scope, routes: Sequence[Any] | None) -> str:
        """The route template for this request, or `UNMATCHED` (one shared value)."""
        if routes is None:
            return UNMATCHED
        if routes is not self._source or len(routes) != self._source_len:
            self._compile(routes)  # routes added after start-up (rare) are learned here
        if self._table is not None:
            return self._table.template(scope["method"], _route_path(scope)) or UNMATCHED
        return _walk(self._walk_routes or [], scope) or UNMATCHED
