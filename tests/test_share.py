"""A segment's share and index per cell and per region, with the k floor on both counts."""

import h3
import numpy as np
import pandas as pd
import pytest
from _mapdata import sample_engine

from geotarget.errors import InvalidInputError


@pytest.fixture(scope="module")
def city():
    eng = sample_engine()
    yield eng
    eng.close()


def _truth(eng, seg_ids, res: int, k: int) -> pd.DataFrame:
    df = eng.store.frame("SELECT customer_id, lat, lng FROM customers WHERE NOT opted_out")
    df["cell"] = [h3.latlng_to_cell(a, b, res) for a, b in zip(df["lat"], df["lng"])]
    df["seg"] = df["customer_id"].isin(set(seg_ids))
    per = df.groupby("cell").agg(base=("seg", "size"), seg=("seg", "sum"))
    overall = per["seg"].sum() / per["base"].sum()
    per = per[(per["seg"] >= k) & (per["base"] >= k)]
    per["share"] = per["seg"] / per["base"] * 100
    per["index"] = per["share"] / (overall * 100) * 100
    return per


@pytest.mark.parametrize("kind", ["share", "index"])
def test_share_and_index_equal_pandas(city, kind):
    gold = city.store.frame("SELECT customer_id FROM customers WHERE tier = 'gold'")
    hm = city.heatmap(8, kind, audience=gold, k_min=5, allow_no_floor=True)
    truth = _truth(city, gold["customer_id"], 8, 5)
    got = hm.cells.set_index("h3")
    assert len(got) > 5 and set(got.index) == set(truth.index)
    assert (got["customers"] == truth.loc[got.index, "seg"]).all()
    assert (got["base_customers"] == truth.loc[got.index, "base"]).all()
    np.testing.assert_allclose(got["value"], truth.loc[got.index, kind], rtol=1e-12)
    assert (got["customers"] >= 5).all() and (got["base_customers"] >= 5).all()
    assert hm.suppressed_cells > 0


def test_share_of_an_audience_uses_the_snapshot_path(city):
    aud = city.audience(points=[(40.73, -73.97)], radius="3km")
    hm = city.heatmap(9, "index", audience=aud, k_min=3, allow_no_floor=True)
    truth = _truth(city, aud.to_pandas()["customer_id"], 9, 3)
    got = hm.cells.set_index("h3")
    assert set(got.index) == set(truth.index)
    np.testing.assert_allclose(got["value"], truth.loc[got.index, "index"], rtol=1e-12)


def test_share_per_region_floors_both_counts(city):
    gold = city.store.frame("SELECT customer_id FROM customers WHERE tier = 'gold'")
    hm = city.heatmap(metric="share", audience=gold, region_layer="hoods", k_min=10)
    base = city.heatmap(metric="count", region_layer="hoods", k_min=1, allow_no_floor=True).regions.set_index("region_id")
    seg = city.heatmap(metric="count", audience=gold, region_layer="hoods", k_min=1, allow_no_floor=True).regions.set_index("region_id")
    got = hm.regions.set_index("region_id")
    want = [r for r in base.index if r in seg.index and seg.loc[r, "customers"] >= 10 and base.loc[r, "customers"] >= 10]
    assert sorted(got.index) == sorted(want)
    np.testing.assert_allclose(got["value"], seg.loc[got.index, "customers"] / base.loc[got.index, "customers"] * 100)
    assert len(hm.geometry) == len(got)


def test_share_needs_a_segment(city):
    with pytest.raises(InvalidInputError, match="segment"):
        city.heatmap(8, "share")
