import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geotarget.errors import InvalidRadiusError
from geotarget.units import MAX_RADIUS_M, UNITS_M, parse_distance, parse_radius


@pytest.mark.parametrize(
    ("text", "metres"),
    [("2mi", 2 * 1609.344), ("3.5km", 3500.0), ("500m", 500.0), ("500 m", 500.0), ("800ft", 800 * 0.3048),
     (" 1.5 Miles ", 1.5 * 1609.344), ("1e3m", 1000.0)],
)
def test_parse_distance_units(text, metres):
    assert parse_distance(text) == pytest.approx(metres)


@given(st.floats(min_value=0.001, max_value=99.0), st.sampled_from(sorted(UNITS_M)))
def test_parse_distance_round_trip(value, unit):
    assert parse_distance(f"{value!r}{unit}") == pytest.approx(value * UNITS_M[unit])


@pytest.mark.parametrize("bad", ["2", "two miles", "2 parsecs", "", "mi", "--2mi"])
def test_parse_radius_rejects_malformed(bad):
    with pytest.raises(InvalidRadiusError):
        parse_radius(bad)


@pytest.mark.parametrize("bad", ["0mi", "-1km", "0m"])
def test_parse_radius_rejects_non_positive(bad):
    with pytest.raises(InvalidRadiusError, match="positive"):
        parse_radius(bad)


def test_parse_radius_number_without_unit_is_refused():
    with pytest.raises(InvalidRadiusError, match="no unit"):
        parse_radius(2)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", None])
def test_parse_radius_m_must_be_finite_number(bad):
    with pytest.raises(InvalidRadiusError):
        parse_radius(radius_m=bad) if bad is not None else parse_radius()


def test_large_radius_needs_opt_in():
    with pytest.raises(InvalidRadiusError, match="allow_large"):
        parse_radius("101km")
    assert parse_radius("101km", allow_large=True) == 101_000
    assert parse_radius(radius_m=MAX_RADIUS_M) == MAX_RADIUS_M
    assert math.isclose(parse_radius("2mi"), 3218.688)
