"""Distinct ids decided from hashes (geotarget.store.idcheck), and the ingest's exact fallback on a repeat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geotarget
from geotarget.store import ingest as ig
from geotarget.store.idcheck import IdHashes


def _batches(ids: list[str], cuts: list[int]) -> list[list[str]]:
    edges = sorted({0, len(ids), *[c % (len(ids) + 1) for c in cuts]})
    return [ids[a:b] for a, b in zip(edges, edges[1:])]


@settings(max_examples=200, deadline=None)
@given(ids=st.lists(st.text(min_size=0, max_size=6), min_size=0, max_size=60),
       cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6))
def test_distinct_is_true_exactly_when_no_id_repeats_across_any_batching(ids, cuts):
    checker = IdHashes()
    for batch in _batches(ids, cuts):
        checker.add(pd.Series(batch, dtype="string[pyarrow]"))
    assert checker.distinct() == (len(set(ids)) == len(ids))


def test_a_repeat_far_apart_in_many_batches_is_found():
    ids = [f"id{i:07d}" for i in range(200_000)]
    checker = IdHashes()
    for start in range(0, len(ids), 30_000):
        checker.add(pd.Series(ids[start:start + 30_000], dtype="string[pyarrow]"))
    checker.add(pd.Series(["id0123456"], dtype="string[pyarrow]"))  # repeats a row of the fifth batch
    assert checker.distinct() is False
    fresh = IdHashes()
    for start in range(0, len(ids), 30_000):
        fresh.add(np.array(ids[start:start + 30_000], dtype=object))  # object text hashes like Arrow text
    assert fresh.distinct() is True


@pytest.fixture
def colliding(monkeypatch):
    """Every id hashes to one of two values: the hash alone can never prove distinctness."""
    monkeypatch.setattr(IdHashes, "_hash", lambda self, ids: (np.arange(len(ids)) % 2).astype(np.uint64))


@pytest.mark.parametrize("into", ["empty", "non-empty"])
def test_colliding_hashes_fall_back_to_the_exact_check(colliding, into):
    eng = geotarget.open(":memory:")
    if into == "non-empty":
        eng.ingest_customers(pd.DataFrame({"customer_id": ["other"], "lat": [1.0], "lng": [1.0]}))
    n = 500
    unique = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)],
                           "lat": np.linspace(40.5, 40.9, n), "lng": np.linspace(-74.1, -73.8, n)})
    rep = ig.ingest_points(eng.store, unique, "customers", batch_rows=64)
    assert (rep.loaded, rep.rejected) == (n, 0)
    repeated = unique.assign(customer_id=[f"d{i % 400}" for i in range(n)])
    rep = ig.ingest_points(eng.store, repeated, "customers", batch_rows=64)
    assert (rep.loaded, rep.rejected) == (400, 100)
    assert set(eng.rejects()["reason"]) == {ig.REASON_DUPLICATE}
    assert eng.store.scalar("SELECT count(*) - count(DISTINCT customer_id) FROM customers") == 0
