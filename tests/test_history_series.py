"""`Series`: how history points keep each signal's values (a shared layout and an array)."""

from __future__ import annotations

import math

import pytest

from exporter.health.series import Layouts, Series

A, B, C = (("route", "/a"),), (("route", "/b"),), (("route", "/c"),)


def test_a_series_reads_as_the_dict_it_was_made_from() -> None:
    given = {A: 0.25, B: 3, C: math.inf}
    series = Layouts().series(given)
    assert isinstance(series, Series)
    assert series == given and given == series and dict(series) == given
    assert list(series) == [A, B, C] and len(series) == 3
    assert series[B] == 3.0 and series.get(C) == math.inf and series.get((("x", "y"),)) is None
    assert sorted(series.items()) == sorted(given.items())
    with pytest.raises(KeyError):
        series[(("route", "/z"),)]
    assert series != {A: 0.25, B: 3.5, C: math.inf} and series != {A: 0.25}
    assert repr(series) == ("Series({(('route', '/a'),): 0.25, (('route', '/b'),): 3.0, "
                            "(('route', '/c'),): inf})")


def test_points_with_the_same_subjects_share_one_layout() -> None:
    layouts = Layouts()
    first = layouts.series({A: 1.0, B: 2.0})
    second = layouts.series({A: 1.0, B: 5.0})
    third = layouts.series({B: 1.0, A: 2.0})  # another order: another layout
    assert isinstance(first, Series) and isinstance(second, Series)
    assert first._layout is second._layout and first != second
    assert layouts.series({A: 1.0, B: 2.0}) == first
    assert isinstance(third, Series) and third._layout is not first._layout
    assert third == {A: 2.0, B: 1.0}


def test_what_is_not_a_series_of_numbers_is_kept_as_given() -> None:
    layouts = Layouts()
    empty: dict[tuple[tuple[str, str], ...], float] = {}
    odd = {A: "n/a"}
    assert layouts.series(empty) is empty
    assert layouts.series(odd) is odd  # type: ignore[arg-type]
    series = layouts.series({A: 1.0})
    assert layouts.series(series) is series
