"""H3 derivation and coverings against h3-py, the oracle."""

import h3
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from geotarget.errors import InvalidInputError
from geotarget.geo.cells import (
    FINE_RES,
    cell_ranges,
    cells_to_parents,
    descendant_range,
    disk_covering,
    latlng_to_cells,
)
from geotarget.geo.geodesy import geodesic_distance_m

lats = st.floats(min_value=-90, max_value=90, allow_nan=False)
lngs = st.floats(min_value=-180, max_value=180, allow_nan=False)


@given(lats, lngs, st.integers(0, 15))
def test_latlng_to_cells_matches_h3(lat, lng, res):
    got = int(latlng_to_cells([lat], [lng], res)[0])
    assert got == h3.str_to_int(h3.latlng_to_cell(lat, lng, res))


@given(st.lists(st.tuples(lats, lngs), min_size=1, max_size=50), st.integers(0, 15))
def test_parents_by_bit_arithmetic_match_h3(points, res):
    lat, lng = np.array(points).T
    fine = latlng_to_cells(lat, lng, FINE_RES)
    parents = cells_to_parents(fine, res)
    expected = [h3.str_to_int(h3.cell_to_parent(h3.int_to_str(int(c)), res)) for c in fine]
    assert parents.tolist() == expected


def test_parents_at_pentagons():
    for pent in h3.get_pentagons(5):
        for child in list(h3.cell_to_children(pent, 7))[:20]:
            fine = h3.str_to_int(h3.cell_to_center_child(child, FINE_RES))
            for res in range(0, 8):
                got = int(cells_to_parents(np.array([fine], dtype="uint64"), res)[0])
                assert got == h3.str_to_int(h3.cell_to_parent(h3.int_to_str(fine), res))


@given(lats, lngs, st.integers(0, 14))
def test_descendant_range_holds_exactly_the_descendants(lat, lng, res):
    fine = int(latlng_to_cells([lat], [lng], FINE_RES)[0])
    parent = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(fine), res))
    lo, hi = descendant_range(parent, FINE_RES)
    assert lo <= fine <= hi
    # a neighbour of the parent has its descendants outside the range
    for nb in h3.grid_ring(h3.int_to_str(parent), 1):
        child = h3.str_to_int(h3.cell_to_center_child(nb, FINE_RES))
        assert not lo <= child <= hi


def test_cell_ranges_merge_siblings():
    parent = h3.latlng_to_cell(40.7, -74.0, 6)
    children = [h3.str_to_int(c) for c in h3.cell_to_children(parent, 7)]
    ranges = cell_ranges(children, FINE_RES)
    lo, hi = descendant_range(h3.str_to_int(parent), FINE_RES)
    assert ranges.shape == (1, 2)
    assert ranges[0, 0] == lo and ranges[0, 1] <= hi


def test_bad_resolution():
    with pytest.raises(InvalidInputError):
        latlng_to_cells([0.0], [0.0], 16)


def _points_in_disk(rng, lat, lng, radius_m, n):
    """Random points within radius (by pyproj forward), including near the rim."""
    from geotarget.geo.geodesy import WGS84

    az = rng.uniform(0, 360, n)
    dist = radius_m * np.sqrt(rng.uniform(0, 1, n))
    dist[: n // 4] = radius_m * rng.uniform(0.999, 1.0, n // 4)
    plng, plat, _ = WGS84.fwd(np.full(n, lng), np.full(n, lat), az, dist)
    return np.asarray(plat), np.asarray(plng)


centres = st.one_of(
    st.tuples(lats, lngs),
    st.tuples(st.floats(85, 90), lngs),  # near the north pole
    st.tuples(st.floats(-90, -85), lngs),
    st.tuples(st.floats(-60, 60), st.one_of(st.floats(179, 180), st.floats(-180, -179))),  # antimeridian
    st.sampled_from([h3.cell_to_latlng(p) for p in h3.get_pentagons(4)]),  # pentagons
)


@given(centres, st.floats(min_value=10, max_value=50_000), st.integers(0, 2**31))
def test_disk_covering_never_misses_a_point(centre, radius_m, seed):
    lat, lng = centre
    rng = np.random.default_rng(seed)
    plat, plng = _points_in_disk(rng, lat, lng, radius_m, 200)
    dist = geodesic_distance_m(lat, lng, plat, plng)
    inside = dist <= radius_m
    assume(inside.any())
    cover = disk_covering(lat, lng, radius_m)
    res = h3.get_resolution(h3.int_to_str(int(cover[0])))
    parents = cells_to_parents(latlng_to_cells(plat[inside], plng[inside], FINE_RES), res)
    assert np.isin(parents, cover).all()
