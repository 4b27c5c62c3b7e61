"""The Huff model and its calibration, against independent calculations (h3-py, pyproj, finite differences)."""

from __future__ import annotations

import h3
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pyproj import Geod

from geotarget import trade
from geotarget.errors import InvalidInputError

GEOD = Geod(ellps="WGS84")


@given(
    dist=arrays("float64", st.tuples(st.integers(1, 6), st.integers(1, 5)), elements=st.floats(10.0, 1e5)),
    data=st.data(),
    alpha=st.floats(0.0, 3.0),
    beta=st.floats(0.0, 4.0),
)
def test_probabilities_sum_to_one_and_equal_the_formula(dist, data, alpha, beta):
    attract = data.draw(arrays("float64", dist.shape[1], elements=st.floats(0.1, 1e4)))
    p = trade.huff_probabilities(dist, attract, alpha=alpha, beta=beta)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-12)
    u = attract[None, :] ** alpha * dist ** (-beta)  # the textbook formula, computed directly
    np.testing.assert_allclose(p, u / u.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-300)


def test_probabilities_survive_extreme_utilities():
    p = trade.huff_probabilities([[1.0, 1e7]], [1e6, 1.0], alpha=5.0, beta=30.0)
    assert np.isfinite(p).all() and p.sum() == pytest.approx(1.0)
    with pytest.raises(InvalidInputError, match="one attractiveness per store"):
        trade.huff_probabilities([[1.0, 2.0]], [1.0], alpha=1.0, beta=2.0)


def _engine_with_shops(eng, seed=3, n=3000):
    rng = np.random.default_rng(seed)
    stores = pd.DataFrame({"store_id": [f"S{i}" for i in range(6)], "lat": 40.74 + rng.normal(0, 0.02, 6),
                           "lng": -73.98 + rng.normal(0, 0.03, 6), "brand": ["ours"] * 4 + ["rival"] * 2,
                           "sqft": rng.uniform(1.0, 6.0, 6)})
    cust = pd.DataFrame({"customer_id": [f"c{i:05d}" for i in range(n)], "lat": 40.74 + rng.normal(0, 0.025, n),
                         "lng": -73.98 + rng.normal(0, 0.035, n), "spend": rng.uniform(0, 200, n)})
    eng.ingest_stores(stores)
    eng.ingest_customers(cust)
    return stores, cust


def test_huff_over_cells_equals_an_independent_calculation(eng):
    stores, cust = _engine_with_shops(eng)
    model = trade.huff(eng, res=8, attract_col="sqft", brand_col="brand", alpha=1.2, beta=1.7, spend_col="spend")
    # cells: the standard cell of every customer, from h3-py, with the counts and spend sums
    want = cust.assign(h3=[h3.latlng_to_cell(a, b, 8) for a, b in zip(cust["lat"], cust["lng"])])
    counts = want.groupby("h3").agg(customers=("customer_id", "size"), spend=("spend", "sum"))
    got = model.cells.set_index("h3")
    assert sorted(got.index) == sorted(counts.index)
    np.testing.assert_array_equal(got.loc[counts.index, "customers"], counts["customers"])
    np.testing.assert_allclose(got.loc[counts.index, "spend"], counts["spend"])
    floor = h3.average_hexagon_edge_length(8, unit="m") / 2
    for i, cell in enumerate(model.cells["h3"][:40]):
        clat, clng = h3.cell_to_latlng(cell)
        u = []
        for s in stores.itertuples():
            d = max(GEOD.inv(s.lng, s.lat, clng, clat)[2], floor)
            u.append(s.sqft ** 1.2 * d ** -1.7)
        np.testing.assert_allclose(model.probabilities[i], np.array(u) / sum(u), rtol=1e-9)
    np.testing.assert_allclose(model.probabilities.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(model.stores["expected_customers"].sum(), len(cust))
    np.testing.assert_allclose(model.stores["expected_spend"].sum(), cust["spend"].sum())
    assert model.brand_shares()["share"].sum() == pytest.approx(1.0)
    assert set(model.cells["dominant_store"]) <= set(stores["store_id"])


def test_huff_saves_long_table_and_draws(eng, tmp_path):
    _engine_with_shops(eng)
    model = trade.huff(eng, res=8, brand_col="brand")
    path = model.save(tmp_path / "cells.parquet")
    long = pd.read_parquet(path)
    shown = model.cells["customers"] >= 10  # the k-anonymity floor: smaller cells never leave
    assert 0 < shown.sum() < len(model.cells)
    assert len(long) == shown.sum() * len(model.stores)
    assert set(long["h3"]) == set(model.cells.loc[shown, "h3"])
    np.testing.assert_allclose(long.groupby("h3")["probability"].sum(), 1.0, rtol=1e-12)
    html = model.to_map(tiles=None).get_root().render()
    assert "gt-dominant" in html and "c00001" not in html
    html = model.to_map("S1", tiles=None).get_root().render()
    assert "gt-probability" in html
    assert model.to_png(tmp_path / "p.png", store_id="S1").stat().st_size > 1000


def _simulate_choices(seed, n, alpha, beta, n_stores=6):
    rng = np.random.default_rng(seed)
    dist = rng.uniform(300.0, 8000.0, (n, n_stores))
    attract = rng.uniform(1.0, 8.0, n_stores)
    p = trade.huff_probabilities(dist, attract, alpha=alpha, beta=beta)
    chosen = (p.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    return dist, attract, chosen


@pytest.mark.parametrize("seed,alpha,beta", [(1, 1.3, 1.8), (2, 0.7, 2.5)])
def test_calibration_recovers_known_parameters(seed, alpha, beta):
    dist, attract, chosen = _simulate_choices(seed, 6000, alpha, beta)
    fit = trade.fit_huff(dist, attract, chosen)
    assert fit.converged
    # within 3 standard errors, and the standard errors small enough to make that a real check
    assert abs(fit.alpha - alpha) < 3 * fit.alpha_se and fit.alpha_se < 0.06
    assert abs(fit.beta - beta) < 3 * fit.beta_se and fit.beta_se < 0.06
    assert abs(fit.alpha - alpha) < 0.15 and abs(fit.beta - beta) < 0.15


def test_standard_errors_match_a_finite_difference_hessian():
    from scipy.optimize import approx_fprime

    dist, attract, chosen = _simulate_choices(5, 1500, 1.0, 2.0, n_stores=4)
    fit = trade.fit_huff(dist, attract, chosen)

    def loglik(theta):
        p = trade.huff_probabilities(dist, attract, alpha=theta[0], beta=theta[1])
        return np.log(p[np.arange(len(chosen)), chosen]).sum()

    theta = np.array([fit.alpha, fit.beta])
    grad = approx_fprime(theta, loglik, 1e-6)
    assert np.abs(grad).max() < 1e-2 * len(chosen) ** 0.5  # the optimum: the gradient vanishes
    hess = np.array([approx_fprime(theta, lambda t, k=k: approx_fprime(t, loglik, 1e-5)[k], 1e-4) for k in range(2)])
    se = np.sqrt(np.diag(np.linalg.inv(-hess)))
    np.testing.assert_allclose([fit.alpha_se, fit.beta_se], se, rtol=0.02)
    # and the fitted log-likelihood beats nearby parameters
    assert fit.log_likelihood >= max(loglik(theta + d) for d in ([0.05, 0], [0, 0.05], [-0.05, 0], [0, -0.05]))


def test_calibration_without_varying_attractiveness_fits_beta_only():
    dist, _, chosen = _simulate_choices(7, 3000, 0.0, 2.2)
    fit = trade.fit_huff(dist, np.ones(dist.shape[1]), chosen)
    assert np.isnan(fit.alpha) and abs(fit.beta - 2.2) < 3 * fit.beta_se
    assert "not identified" in fit.summary()


def test_calibrate_from_home_store_column(eng):
    rng = np.random.default_rng(11)
    stores = pd.DataFrame({"store_id": [f"S{i}" for i in range(5)], "lat": 40.74 + rng.normal(0, 0.03, 5),
                           "lng": -73.98 + rng.normal(0, 0.04, 5), "sqft": [1.0, 2.0, 4.0, 3.0, 6.0]})
    n = 4000
    lat, lng = 40.74 + rng.normal(0, 0.04, n), -73.98 + rng.normal(0, 0.05, n)
    dist = trade.store_distances_m(lat, lng, stores["lat"], stores["lng"], min_distance_m=50.0)
    p = trade.huff_probabilities(dist, stores["sqft"], alpha=1.5, beta=2.0)
    chosen = (p.cumsum(axis=1) > rng.uniform(size=(n, 1))).argmax(axis=1)
    eng.ingest_stores(stores)
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": lat, "lng": lng,
                                       "home_store": stores["store_id"].to_numpy()[chosen]}))
    fit = trade.calibrate_huff(eng, home_store_col="home_store", attract_col="sqft", sample=None)
    assert abs(fit.alpha - 1.5) < 3 * fit.alpha_se and abs(fit.beta - 2.0) < 3 * fit.beta_se
    assert fit.observations == n


def test_probabilities_of_each_customer(eng):
    stores, cust = _engine_with_shops(eng, n=200)
    model = trade.huff(eng, res=8, attract_col="sqft", alpha=0.8, beta=2.3)
    p = model.probabilities_at(cust["lat"][:25], cust["lng"][:25])
    floor = h3.average_hexagon_edge_length(8, unit="m") / 2
    for i in range(25):
        u = [s.sqft ** 0.8 * max(GEOD.inv(s.lng, s.lat, cust["lng"][i], cust["lat"][i])[2], floor) ** -2.3
             for s in stores.itertuples()]
        np.testing.assert_allclose(p[i], np.array(u) / sum(u), rtol=1e-9)
