"""Filters whose value does not fit the column are refused before any work, in audiences and campaigns alike."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

import geotarget
from geotarget.errors import InvalidFilterError

BAD = [
    ["age>abc"],
    ["tier>5"],
    ["joined>2024-13-01"],
    ["opted_out==maybe"],
    [("age", ">", True)],
    [("age", "in", [1, "x"])],
    [("spend", ">", float("nan"))],
    [("seen", ">=", "yesterday")],
    [("age", "between", (1, "z"))],
]


@pytest.fixture
def typed():
    eng = geotarget.open(":memory:")
    rng = np.random.default_rng(1)
    n = 300
    eng.ingest_customers(pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)], "lat": rng.uniform(40.70, 40.80, n),
        "lng": rng.uniform(-74.00, -73.90, n), "age": rng.integers(18, 80, n),
        "tier": rng.choice(["gold", "silver", "5"], n), "spend": rng.uniform(0, 100, n),
        "joined": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n)],
        "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s"),
    }))
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.74, 40.76], "lng": [-73.96, -73.94]}))
    yield eng
    eng.close()


@pytest.mark.parametrize("where", BAD, ids=[str(w) for w in BAD])
def test_misfit_values_are_refused_at_audience_and_campaign(typed, where):
    col = where[0][0] if isinstance(where[0], tuple) else where[0].split(">")[0].split("=")[0]
    with pytest.raises(InvalidFilterError, match=col):
        typed.audience(stores=["S1"], radius="1mi", where=where)
    with pytest.raises(InvalidFilterError, match=col):
        typed.create_campaign("bad", stores=["S1"], radius="1mi", where=where)
    assert typed.campaigns() == []


def test_fitting_values_are_read_as_the_column_type(typed):
    frame = typed.store.frame("SELECT * FROM customers")
    cases = {
        ("age >= 30",): (frame["age"] >= 30),
        ("tier = 5",): (frame["tier"] == "5"),  # a number against a text column means its text
        ("joined > 2024-06-01",): (pd.to_datetime(frame["joined"]) > "2024-06-01"),
        ("opted_out = false",): ~frame["opted_out"].astype(bool),
        ("spend between 10,20",): frame["spend"].between(10, 20),
    }
    everyone = set(typed.audience(stores="all", radius="50km").to_pandas()["customer_id"])
    for where, mask in cases.items():
        got = set(typed.audience(stores="all", radius="50km", where=list(where)).to_pandas()["customer_id"])
        assert got == everyone & set(frame["customer_id"][mask.to_numpy()]), where


def test_campaign_filter_on_customer_id_keeps_promotions_working(typed):
    typed.create_campaign("one", stores=["S1"], radius="50km", where=["customer_id = c7"])
    typed.create_campaign("plain", stores=["S1"], radius="50km")
    names = sorted(c.name for c in typed.promotions_at(40.74, -73.96, customer_id="c7"))
    assert names == ["one", "plain"]
    assert [c.name for c in typed.promotions_at(40.74, -73.96, customer_id="c8")] == ["plain"]


def test_counts_within_applies_the_filter_like_the_overlap_diagonal(typed):
    aud = typed.audience(stores=["S1", "S2"], radius="2km", where=["tier = gold"],
                         exclude_within=["40.75,-73.95,300m"])
    counts = aud.counts().set_index("store_id")
    diag = np.diag(aud.overlap().to_numpy())
    assert list(counts["within"]) == list(diag)
    assert counts["assigned"].sum() == len(aud)
    plain = typed.audience(stores=["S1", "S2"], radius="2km").counts().set_index("store_id")
    assert (counts["within"] <= plain["within"]).all() and (counts["within"] < plain["within"]).any()
