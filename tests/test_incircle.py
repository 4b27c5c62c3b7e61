"""Standard cells from checked guesses (geotarget.geo.incircle) against h3-py, point by point.

The claim: a point inside the cap of its guessed cell lies in that cell, so
the answer always equals ``h3.latlng_to_cell``, whatever the guess. The points
come from everywhere, from around the twelve pentagons and along the edges of
the icosahedron's faces (where cells carry extra vertices), at every
resolution; the guesses are the ancestors of the points' fine cells or, to
try the geometry harder, cells near the right one.
"""

from __future__ import annotations

import itertools

import h3
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geotarget.geo.cells import cells_to_parents, latlng_to_cells
from geotarget.geo.incircle import cell_caps, latlng_to_cells_guided

_PENTAGONS = [h3.cell_to_latlng(c) for c in h3.get_pentagons(0)]


def _unit(lat, lng):
    lat, lng = np.radians(lat), np.radians(lng)
    return np.stack((np.cos(lat) * np.cos(lng), np.cos(lat) * np.sin(lng), np.sin(lat)), axis=-1)


def _face_edges():
    """The 30 edges of the icosahedron: pairs of res-0 pentagon centres about 63.4 degrees apart."""
    v = _unit(*np.array(_PENTAGONS).T)
    return [(v[i], v[j]) for i, j in itertools.combinations(range(12), 2) if v[i] @ v[j] > 0.4]


_EDGES = _face_edges()


def _to_latlng(u):
    u = u / np.linalg.norm(u, axis=-1, keepdims=True)
    return np.degrees(np.arcsin(np.clip(u[:, 2], -1, 1))), np.degrees(np.arctan2(u[:, 1], u[:, 0]))


@st.composite
def _points(draw):
    """(lat, lng, res): a cloud of points somewhere hard or anywhere, and a resolution."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    res = draw(st.integers(0, 14))
    n = draw(st.integers(1, 300))
    where = draw(st.sampled_from(["anywhere", "pentagon", "face edge"]))
    spread = h3.average_hexagon_edge_length(res, "km") / 6371.0 * draw(st.sampled_from([0.5, 3.0, 20.0]))
    if where == "anywhere":
        centre = _unit(*np.degrees([np.arcsin(rng.uniform(-1, 1)), rng.uniform(-np.pi, np.pi)]))
    elif where == "pentagon":
        centre = _unit(*_PENTAGONS[rng.integers(12)])
    else:
        a, b = _EDGES[rng.integers(len(_EDGES))]
        t = rng.uniform()
        centre = a * (1 - t) + b * t
    u = centre / np.linalg.norm(centre) + rng.normal(scale=spread, size=(n, 3))
    lat, lng = _to_latlng(u)
    return lat, lng, res


def _truth(lat, lng, res):
    return np.array([h3.str_to_int(h3.latlng_to_cell(a, b, res)) for a, b in zip(lat, lng)], dtype="uint64")


@settings(max_examples=150, deadline=None)
@given(_points())
def test_guided_cells_equal_h3_for_ancestor_guesses(points):
    lat, lng, res = points
    guess = cells_to_parents(latlng_to_cells(lat, lng, 15), res)
    order = np.argsort(guess, kind="stable")  # sorted guesses (the snapshot's case) and unsorted ones
    for idx in (order, np.arange(lat.size)):
        got = latlng_to_cells_guided(lat[idx], lng[idx], guess[idx], min_points_per_cell=0)
        assert np.array_equal(got, _truth(lat[idx], lng[idx], res))


@settings(max_examples=60, deadline=None)
@given(_points(), st.integers(0, 2**32 - 1))
def test_guided_cells_equal_h3_for_any_nearby_guess(points, seed):
    lat, lng, res = points
    truth = _truth(lat, lng, res)
    rng = np.random.default_rng(seed)
    guess = np.array([h3.str_to_int(rng.choice(h3.grid_disk(h3.int_to_str(int(c)), 1))) for c in truth],
                     dtype="uint64")
    assert np.array_equal(latlng_to_cells_guided(lat, lng, guess, min_points_per_cell=0), truth)


@settings(max_examples=40, deadline=None)
@given(_points())
def test_every_cap_lies_inside_its_cell(points):
    """Points on the rim of each cap (just inside it) are in the cell, by h3-py."""
    lat, lng, res = points
    cells = np.unique(latlng_to_cells(lat, lng, res))[:5]
    c_lat, c_lng, half2 = cell_caps(cells)
    radius = 2 * np.arcsin(np.sqrt(half2)) * (1 - 1e-9)
    for cell, a, b, r in zip(cells.tolist(), c_lat, c_lng, radius):
        centre = _unit(a, b)
        east = np.cross([0.0, 0.0, 1.0], centre)
        east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-12 else np.array([1.0, 0.0, 0.0])
        north = np.cross(centre, east)
        angle = np.linspace(0, 2 * np.pi, 64, endpoint=False)[:, None]
        rim = np.cos(r) * centre + np.sin(r) * (np.cos(angle) * east + np.sin(angle) * north)
        rim_lat, rim_lng = _to_latlng(rim)
        assert set(_truth(rim_lat, rim_lng, res).tolist()) == {cell}


def test_many_points_per_guess_and_few():
    """The same answer whether the caps are used (many points per cell) or every point is indexed."""
    rng = np.random.default_rng(7)
    lat, lng = rng.uniform(40.5, 40.9, 20_000), rng.uniform(-74.2, -73.7, 20_000)
    fine = latlng_to_cells(lat, lng, 15)
    order = np.argsort(fine)  # as in the customer snapshot
    lat, lng, fine = lat[order], lng[order], fine[order]
    for res in (6, 8, 10):
        guess = cells_to_parents(fine, res)
        truth = latlng_to_cells(lat, lng, res)
        assert np.array_equal(latlng_to_cells_guided(lat, lng, guess), truth)
        assert np.array_equal(latlng_to_cells_guided(lat, lng, guess, min_points_per_cell=10**9), truth)


def test_across_the_antimeridian_and_near_the_poles():
    rng = np.random.default_rng(11)
    n = 4000
    lat = np.concatenate([rng.uniform(-60, 60, n), rng.uniform(88.5, 90, n), rng.uniform(-90, -88.5, n)])
    lng = np.concatenate([rng.choice([-1, 1], n) * rng.uniform(179.0, 180.0, n), rng.uniform(-180, 180, 2 * n)])
    for res in (0, 2, 4, 7):
        guess = cells_to_parents(latlng_to_cells(lat, lng, 15), res)
        order = np.argsort(guess, kind="stable")
        got = latlng_to_cells_guided(lat[order], lng[order], guess[order], min_points_per_cell=0)
        assert np.array_equal(got, _truth(lat[order], lng[order], res))
