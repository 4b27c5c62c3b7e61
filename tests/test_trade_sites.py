"""Site evaluation against re-running Huff with the candidate added; maximal covering against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geotarget import trade
from geotarget.errors import InvalidInputError


def _model(seed=4, n_cells=300):
    rng = np.random.default_rng(seed)
    lat, lng = 40.74 + rng.normal(0, 0.03, n_cells * 3), -73.98 + rng.normal(0, 0.04, n_cells * 3)
    cells, counts = np.unique(trade.inputs.customer_cells(lat, lng, 8), return_counts=True)
    stores = pd.DataFrame({"store_id": ["A1", "A2", "A3", "B1", "B2"], "lat": [40.74, 40.76, 40.72, 40.75, 40.73],
                           "lng": [-73.99, -73.97, -73.96, -73.95, -74.01], "brand": ["a", "a", "a", "b", "b"],
                           "attractiveness": [2.0, 1.0, 3.0, 2.5, 1.5]})
    spend = counts * 40.0
    return trade.huff_model(cells, counts.astype(float), stores, alpha=1.1, beta=1.9, customers=counts,
                            spend=spend), stores, cells, counts


def test_site_evaluation_equals_huff_with_the_candidate_added():
    model, stores, cells, counts = _model()
    cand = pd.DataFrame({"site_id": ["X", "Y", "Z"], "lat": [40.75, 40.70, 40.745],
                         "lng": [-73.98, -73.93, -73.955]})
    ranking = trade.evaluate_sites(model, cand, brand="a", attractiveness=2.0)
    assert ranking["rank"].tolist() == [1, 2, 3]
    assert ranking["net_gain"].is_monotonic_decreasing
    for row in ranking.itertuples():
        site = cand[cand["site_id"] == row.site_id]
        with_site = pd.concat([stores, pd.DataFrame({"store_id": [row.site_id], "lat": site["lat"].to_numpy(),
                                                     "lng": site["lng"].to_numpy(), "brand": ["a"],
                                                     "attractiveness": [2.0]})], ignore_index=True)
        after = trade.huff_model(cells, counts.astype(float), with_site, alpha=1.1, beta=1.9, customers=counts,
                                 spend=counts * 40.0)
        before = model.stores.set_index("store_id")["expected_demand"]
        new = after.stores.set_index("store_id")["expected_demand"]
        assert row.captured_demand == pytest.approx(new[row.site_id], rel=1e-9)
        loss = before - new.drop(row.site_id)
        for sid in ("A1", "A2", "A3"):
            assert row.cannibalised_from.get(sid, 0.0) == pytest.approx(loss[sid], rel=1e-9, abs=1e-9)
        assert row.cannibalised == pytest.approx(loss[["A1", "A2", "A3"]].sum(), rel=1e-9)
        assert row.from_competitors == pytest.approx(loss[["B1", "B2"]].sum(), rel=1e-9)
        brand_gain = new[["A1", "A2", "A3", row.site_id]].sum() - before[["A1", "A2", "A3"]].sum()
        assert row.net_gain == pytest.approx(brand_gain, rel=1e-9)
        assert row.net_gain_spend == pytest.approx(40.0 * brand_gain, rel=1e-9)


def test_without_competitors_the_market_is_closed():
    _, stores, cells, counts = _model()
    solo = trade.huff_model(cells, counts.astype(float), stores.assign(brand="a"), alpha=1.1, beta=1.9)
    ranking = trade.evaluate_sites(solo, pd.DataFrame({"lat": [40.75], "lng": [-73.98]}))
    assert ranking["net_gain"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert ranking["captured_demand"].iloc[0] > 0


@settings(max_examples=25)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 3), radius_m=st.floats(500.0, 4000.0))
def test_maximal_covering_matches_brute_force(seed, k, radius_m):
    rng = np.random.default_rng(seed)
    lat, lng = 40.74 + rng.normal(0, 0.02, 40), -73.98 + rng.normal(0, 0.03, 40)
    w = rng.integers(0, 50, 40).astype(float)
    clat, clng = 40.74 + rng.normal(0, 0.02, 7), -73.98 + rng.normal(0, 0.03, 7)
    chosen, covered = trade.choose_sites(lat, lng, w, clat, clng, k=k, radius_m=radius_m)
    assert len(chosen) == k
    cover = trade.store_distances_m(lat, lng, clat, clng) <= radius_m
    best = max(w[cover[:, list(c)].any(axis=1)].sum() for c in itertools.combinations(range(7), k))
    assert covered == pytest.approx(best)
    assert covered == pytest.approx(w[cover[:, chosen].any(axis=1)].sum())


def test_candidates_are_checked():
    with pytest.raises(InvalidInputError, match="lat must be in"):
        trade.read_candidates(pd.DataFrame({"lat": [123.0], "lng": [0.0]}))
    with pytest.raises(InvalidInputError, match="k must be"):
        trade.choose_sites([0.0], [0.0], [1.0], [0.0], [0.0], k=2, radius_m=10.0)
