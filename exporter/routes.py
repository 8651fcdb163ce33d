"""Route templates (`/items/{item_id}`) for raw request paths, through routers and mounts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import routing as _fastapi_routing
from starlette.routing import Match, Mount

from exporter.types import Scope

UNMATCHED = "<unmatched>"

# Recent FastAPI keeps an included router as one opaque route and offers this to flatten it;
# older releases flatten include_router themselves.
_iter_route_contexts: Any = getattr(_fastapi_routing, "iter_route_contexts", None)


def _flatten(routes: Sequence[Any]) -> list[Any]:
    if _iter_route_contexts is None:
        return list(routes)
    return list(_iter_route_contexts(routes))


def _is_mount(route: Any) -> bool:
    original = getattr(route, "original_route", route)
    return isinstance(route, Mount) or isinstance(original, Mount)


def _match(routes: Iterable[Any], scope: Scope) -> str | None:
    """The template of the route the router would pick, as Starlette's Router picks it."""
    partial: str | None = None
    for route in routes:
        kind, child = route.matches(scope)
        if kind is Match.NONE:
            continue
        template = getattr(route, "path_format", None) or ""
        if _is_mount(route):
            prefix = template.removesuffix("/{path}")
            sub_routes = getattr(route, "routes", None) or []
            if sub_routes:
                inner = _match(_flatten(sub_routes), {**scope, **child})
                template = prefix + inner if inner is not None else prefix + "/{path}"
        elif not template:  # Host and other path-less routes
            sub_routes = getattr(route, "routes", None) or []
            inner = _match(_flatten(sub_routes), {**scope, **child}) if sub_routes else None
            template = inner or UNMATCHED
        if kind is Match.FULL:
            return template
        if partial is None:
            partial = template
    return partial


class RouteResolver:
    """Maps `(method, path)` to the route template, with a bounded cache of recent answers."""

    def __init__(self, max_cached: int = 4096) -> None:
        self._max_cached = max_cached
        self._cache: dict[tuple[str, str], str] = {}
        self._routes: list[Any] = []
        self._source: Sequence[Any] | None = None
        self._source_len = -1

    def resolve(self, scope: Scope, routes: Sequence[Any] | None) -> str:
        """The route template for this request, or `UNMATCHED` (one shared value)."""
        if routes is None:
            return UNMATCHED
        if routes is not self._source or len(routes) != self._source_len:
            # Routes added after start-up (rare) invalidate what was learned.
            self._routes = _flatten(routes)
            self._source, self._source_len = routes, len(routes)
            self._cache.clear()
        key = (scope["method"], scope["path"])
        template = self._cache.get(key)
        if template is None:
            template = _match(self._routes, scope) or UNMATCHED
            if len(self._cache) >= self._max_cached:
                del self._cache[next(iter(self._cache))]
            self._cache[key] = template
        return template
