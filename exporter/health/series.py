"""`Series`: one signal's values in a kept history point, in about a seventh of a dict's memory.

An hour of points holds every signal's values per subject 360 times (at 10 s). As dicts of
float objects that was about 60 bytes a value, the bulk of the sidecar's growth over its first
hour (bench/sidecar_memory.py); here a value is 8 bytes of an array, and the label sets with
their positions are one dict shared by every point whose subjects are the same.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping

from exporter.signals import Labels

_MAX_LAYOUTS = 1000  # distinct subject lists remembered; past it they are forgotten


class Series(Mapping[Labels, float]):
    """A read-only mapping of label sets to values: `layout` (label set -> position, shared)
    and the values at those positions."""

    __slots__ = ("_layout", "_values")

    def __init__(self, layout: dict[Labels, int], values: array[float]) -> None:
        self._layout = layout
        self._values = values

    def __getitem__(self, labels: Labels) -> float:
        return self._values[self._layout[labels]]

    def __iter__(self) -> Iterator[Labels]:
        return iter(self._layout)

    def __len__(self) -> int:
        return len(self._layout)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Series) and other._layout is self._layout:
            return self._values == other._values
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # equal to dicts, which are unhashable

    def __repr__(self) -> str:
        return f"Series({dict(self)!r})"


class Layouts:
    """The layouts met so far, so points with the same subjects share one."""

    def __init__(self) -> None:
        self._known: dict[tuple[Labels, ...], dict[Labels, int]] = {}

    def series(self, values: Mapping[Labels, float]) -> Mapping[Labels, float]:
        """`values` as a `Series` (as they are when empty, or when a value is not a number)."""
        if not values or isinstance(values, Series):
            return values
        subjects = tuple(values)
        layout = self._known.get(subjects)
        if layout is None:
            if len(self._known) >= _MAX_LAYOUTS:
                self._known.clear()
            layout = self._known[subjects] = {labels: n for n, labels in enumerate(subjects)}
        try:
            return Series(layout, array("d", values.values()))
        except TypeError:  # not a number: kept as given
            return values
