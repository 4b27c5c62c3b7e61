"""The readout's memory budget: DuckDB's memory limit is lowered while a readout runs, and restored after."""

from __future__ import annotations

import threading

import duckdb
import numpy as np
import pandas as pd
import pytest

import geotarget
from geotarget.errors import InvalidInputError
from geotarget.measure.budget import READOUT_MEMORY_LIMIT, run_bounded, to_bytes
from geotarget.sample import sample_customers

LIMIT = "SELECT current_setting('memory_limit')"


def _limit(eng) -> str:
    return eng.store.scalar(LIMIT)


@pytest.fixture(scope="module")
def launched():
    eng = geotarget.open(":memory:")
    eng.ingest_customers(sample_customers(800, seed=4))
    eng.create_campaign("spring", cells=["832a10fffffffff"], holdout=0.3, start="2026-05-01T00:00Z")
    eng.launch_campaign("spring")
    ids = eng.campaign_assignment("spring")["customer_id"].to_numpy()
    rng = np.random.default_rng(5)
    who = rng.choice(ids, 900)
    when = pd.Timestamp("2026-04-01T00:00Z") + pd.to_timedelta(rng.uniform(0, 60, 900), unit="D")
    eng.ingest_outcomes(pd.DataFrame({"customer_id": who, "timestamp": when, "value": rng.gamma(2, 20, 900)}))
    return eng


@pytest.mark.parametrize("metric", ["conversion", "revenue"])
def test_the_readout_is_the_same_under_any_budget_and_the_limit_comes_back(launched, metric):
    before = _limit(launched)
    free = launched.lift("spring", metric=metric, memory_limit=None).to_dict()
    tight = launched.lift("spring", metric=metric, memory_limit="30MB").to_dict()
    default = launched.lift("spring", metric=metric).to_dict()
    assert free["treatment_rate_adj"] is not None
    if metric == "conversion":  # from integer counts: exactly the same
        assert tight == free == default
    else:  # sums of doubles: DuckDB may add them in another order
        _close(tight, free)
        _close(default, free)
    assert _limit(launched) == before


def _close(got, want):
    if isinstance(want, dict):
        assert got.keys() == want.keys()
        for key in want:
            _close(got[key], want[key])
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
    else:
        assert got == want


def test_the_limit_is_lowered_only_while_the_work_runs():
    eng = geotarget.open(":memory:")
    before = _limit(eng)
    seen = run_bounded(eng.store, lambda: _limit(eng), "300MB")
    assert to_bytes(seen) == pytest.approx(300e6, rel=0.01)
    assert _limit(eng) == before
    assert to_bytes(READOUT_MEMORY_LIMIT) == 10**9


def test_a_lower_or_own_limit_of_the_store_is_kept():
    eng = geotarget.open(":memory:")
    eng.store.con.execute("SET memory_limit = '200MB'")
    assert run_bounded(eng.store, lambda: _limit(eng), "1GB") == _limit(eng)  # never raised
    eng.store.con.execute("SET memory_limit = '5GB'")
    own = _limit(eng)
    assert run_bounded(eng.store, lambda: _limit(eng), "1GB") != own
    assert _limit(eng) == own  # the store's own setting, not DuckDB's default, comes back


def test_overlapping_readouts_restore_the_limit_once_both_are_done():
    eng = geotarget.open(":memory:")
    before = _limit(eng)
    inside, release = threading.Event(), threading.Event()

    def slow():
        inside.set()
        release.wait(10)
        return _limit(eng)

    worker = threading.Thread(target=lambda: run_bounded(eng.store, slow, "300MB"))
    worker.start()
    inside.wait(10)
    assert run_bounded(eng.store, lambda: _limit(eng), "300MB") != before
    assert _limit(eng) != before  # the slow one still runs under the budget
    release.set()
    worker.join(10)
    assert _limit(eng) == before


def test_work_that_does_not_fit_runs_again_without_the_budget():
    eng = geotarget.open(":memory:")
    before, calls = _limit(eng), []

    def work():
        calls.append(_limit(eng))
        if len(calls) == 1:
            raise duckdb.OutOfMemoryException("could not allocate")
        return "done"

    assert run_bounded(eng.store, work, "300MB") == "done"
    assert calls[1] == before != calls[0]
    assert _limit(eng) == before


@pytest.mark.parametrize("bad", ["lots", "0MB", "-1GB", 12])
def test_a_bad_limit_is_refused(launched, bad):
    with pytest.raises(InvalidInputError, match="memory_limit"):
        launched.lift("spring", memory_limit=bad)
