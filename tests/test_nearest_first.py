"""Many-store audiences assign each customer its nearest store exactly (nearest first, k-d tree on the sphere).

The oracle is pyproj's WGS84 geodesic from every customer to every store.
"""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Geod

import geotarget
from geotarget.audience.nearest import _merge_ranges, _nearest, within_counts

GEOD = Geod(ellps="WGS84")


def _oracle(lat, lng, slat, slng):
    n, m = lat.size, slat.size
    _, _, d = GEOD.inv(np.repeat(lng, m), np.repeat(lat, m), np.tile(slng, n), np.tile(slat, n))
    return d.reshape(n, m)


def _engine(lat, lng):
    eng = geotarget.open(":memory:")
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(lat.size)], "lat": lat, "lng": lng}))
    return eng


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n_stores=st.integers(2, 40), radius_m=st.floats(200, 6000),
       centre_lat=st.sampled_from([40.75, 0.5, -33.9, 64.1]), twins=st.booleans())
def test_members_and_nearest_store_match_the_geodesic(seed, n_stores, radius_m, centre_lat, twins):
    rng = np.random.default_rng(seed)
    lat = centre_lat + rng.normal(0, 0.03, 1500)
    lng = 10.0 + rng.normal(0, 0.03, 1500)
    slat = centre_lat + rng.normal(0, 0.03, n_stores)
    slng = 10.0 + rng.normal(0, 0.03, n_stores)
    if twins and n_stores >= 4:  # a store on top of another, and customers exactly between two stores
        slat[1], slng[1] = slat[0], slng[0]
        lat[:50], lng[:50] = (slat[2] + slat[3]) / 2, (slng[2] + slng[3]) / 2
    eng = _engine(lat, lng)
    index = eng._index_cache.get()
    members, which, dist, within = _nearest(index, slat, slng, radius_m)
    assert within is None
    d = _oracle(index.lat, index.lng, slat, slng)
    best = d.min(axis=1)
    expected = np.flatnonzero(best <= radius_m)
    order = np.argsort(members)
    members, which, dist = members[order], which[order], dist[order]
    # points within a micrometre of the radius may go either way in floating point
    edge = np.abs(best - radius_m) < 1e-6
    assert set(members) ^ set(expected) <= set(np.flatnonzero(edge))
    common = np.isin(members, expected)
    members, which, dist = members[common], which[common], dist[common]
    np.testing.assert_allclose(d[members, which], best[members], atol=1e-6)  # the nearest store (or a tie)
    np.testing.assert_allclose(dist, best[members], atol=1e-3)
    np.testing.assert_array_equal(within_counts(index, slat, slng, radius_m), (d <= radius_m).sum(axis=0))


def test_counts_are_computed_when_asked():
    rng = np.random.default_rng(1)
    eng = _engine(40.75 + rng.normal(0, 0.02, 3000), -73.98 + rng.normal(0, 0.02, 3000))
    eng.ingest_stores(pd.DataFrame({"store_id": ["A", "B", "C"], "lat": [40.75, 40.76, 40.74],
                                    "lng": [-73.98, -73.97, -73.99]}))
    aud = eng.audience(stores="all", radius="1km")
    assert aud._within_counts is None
    counts = aud.counts()
    assert counts["assigned"].sum() == len(aud)
    assert (counts["within"] >= counts["assigned"]).all()


def test_merge_ranges():
    ranges = np.array([[10, 20], [0, 5], [6, 9], [15, 30], [40, 41]], dtype=np.uint64)
    np.testing.assert_array_equal(_merge_ranges(ranges), np.array([[0, 30], [40, 41]], dtype=np.uint64))
