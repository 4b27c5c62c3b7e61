"""The exact within-radius test against the brute-force pyproj oracle."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from geotarget.geo.geodesy import (
    WGS84,
    geodesic_distance_m,
    haversine_m,
    local_distance_m,
    local_error_bound_m,
    within_radius,
)

lats = st.floats(min_value=-89.9, max_value=89.9, allow_nan=False)
lngs = st.floats(min_value=-180, max_value=180, allow_nan=False)


@given(lats, lngs, st.floats(min_value=10, max_value=50_000), st.integers(0, 2**31))
def test_within_radius_equals_geodesic_oracle(lat, lng, radius_m, seed):
    rng = np.random.default_rng(seed)
    n = 300
    az = rng.uniform(0, 360, n)
    # points spread through the disk and packed against the rim, just inside and just outside
    dist = np.concatenate([
        radius_m * rng.uniform(0, 1.5, n),
        radius_m + rng.choice([-1, 1], n) * rng.uniform(0.011, 1.0, n),  # > 1 cm from the rim
    ])
    az = np.concatenate([az, rng.uniform(0, 360, n)])
    plng, plat, _ = WGS84.fwd(np.full(dist.size, lng), np.full(dist.size, lat), az, dist)
    plat, plng = np.asarray(plat), np.asarray(plng)
    _, _, truth = WGS84.inv(np.full(dist.size, lng), np.full(dist.size, lat), plng, plat)
    clear = np.abs(truth - radius_m) > 0.01
    got = within_radius(plat, plng, lat, lng, radius_m)
    assert (got[clear] == (truth[clear] <= radius_m)).all()


def test_haversine_close_to_geodesic():
    d_h = haversine_m(40.0, -74.0, 41.0, -73.0)
    d_g = geodesic_distance_m(40.0, -74.0, 41.0, -73.0)
    assert abs(d_h - d_g) / d_g < 0.006


def test_within_radius_returns_exact_distances():
    lat = np.array([40.76, 40.9])
    lng = np.array([-73.98, -73.98])
    mask, dist = within_radius(lat, lng, 40.758, -73.9855, 3218.688, with_distance=True)
    assert mask.tolist() == [True, False]
    assert abs(dist[0] - geodesic_distance_m(40.758, -73.9855, 40.76, -73.98)) < 0.001


@given(st.floats(-80, 80), lngs, st.floats(min_value=1, max_value=150_000), st.integers(0, 2**31))
def test_local_distance_within_its_error_bound(lat, lng, radius_m, seed):
    rng = np.random.default_rng(seed)
    n = 200
    az = rng.uniform(0, 360, n)
    dist = radius_m * rng.uniform(0, 1.02, n)
    plng, plat, _ = WGS84.fwd(np.full(n, lng), np.full(n, lat), az, dist)
    plat = np.asarray(plat)
    max_lat = max(abs(lat), float(np.abs(plat).max()))
    if max_lat > 80:
        return
    err = np.abs(local_distance_m(lat, lng, plat, plng) - dist)
    assert err.max() <= local_error_bound_m(radius_m * 1.02, max_lat)
