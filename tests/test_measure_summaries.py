"""The per-group summaries of a readout, from SQL, against the same moments computed row by row.

The conversion summaries come from integer counts (n, sum y, sum x, sum xy)
taken in one pass over both periods' outcomes; here they are checked
against numpy's sample moments of the 0/1 arrays, and the whole CUPED
readout against scipy's Welch test on the adjusted values computed per
customer in pandas.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

import geotarget
from geotarget.measure.summaries import binary_summary, conversion_summaries
from geotarget.measure.tables import ensure_tables

sps = pytest.importorskip("scipy.stats", reason="scipy is a dependency of the statistics")

START = pd.Timestamp("2026-05-01T00:00:00Z")
END = pd.Timestamp("2026-05-15T00:00:00Z")
PRE_START = START - (END - START)
CAMPAIGN = "cmp_summaries"


@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=60))
def test_binary_summary_is_the_sample_moments_of_the_flags(flags):
    y = np.array([f[0] for f in flags], dtype="float64")
    x = np.array([f[1] for f in flags], dtype="float64")
    n = len(flags)
    s = binary_summary(n, int(y.sum()), int(x.sum()), int((x * y).sum()))
    assert (s.n, s.mean_y, s.mean_x) == (n, pytest.approx(y.mean(), abs=1e-15), pytest.approx(x.mean(), abs=1e-15))
    if n < 2:
        assert (s.var_y, s.var_x, s.cov_xy) == (0.0, 0.0, 0.0)  # as DuckDB's coalesce(var_samp(...), 0)
    else:
        assert s.var_y == pytest.approx(y.var(ddof=1), abs=1e-15)
        assert s.var_x == pytest.approx(x.var(ddof=1), abs=1e-15)
        assert s.cov_xy == pytest.approx(np.cov(x, y, ddof=1)[0, 1], abs=1e-15)


def _store(seed: int = 3, n: int = 400):
    """Assigned customers and outcomes around the window's edges, written straight into the tables."""
    rng = np.random.default_rng(seed)
    eng = geotarget.open(":memory:")
    ensure_tables(eng.store)
    ids = [f"c{i}" for i in range(n)]
    groups = np.where(rng.random(n) < 0.3, "control", "treatment")
    assignments = pd.DataFrame({"campaign_id": CAMPAIGN, "customer_id": ids, "grp": groups,
                                "store_id": np.where(rng.random(n) < 0.5, "S1", "S2"), "lat": 40.7, "lng": -74.0})
    edges = [PRE_START - pd.Timedelta(seconds=1), PRE_START, START - pd.Timedelta(microseconds=1), START,
             END - pd.Timedelta(microseconds=1), END]
    rows = []
    for i in range(n + 40):  # 40 customers with outcomes are not in the campaign
        for _ in range(rng.poisson(1.5)):
            ts = edges[rng.integers(len(edges))] if rng.random() < 0.2 else \
                (PRE_START + (END - PRE_START) * rng.random() - pd.Timedelta(days=2)).floor("us")
            rows.append((f"c{i}", ts, rng.choice(["order", "visit"])))
    outcomes = pd.DataFrame(rows, columns=["customer_id", "ts", "kind"])
    con = eng.store.con
    con.register("_a", assignments)
    con.register("_o", outcomes)
    con.execute("INSERT INTO campaign_assignments SELECT * FROM _a")
    con.execute("INSERT INTO outcomes SELECT NULL, customer_id, ts, NULL, kind, 'test', now() FROM _o")
    con.unregister("_a")
    con.unregister("_o")
    return eng, assignments, outcomes


def _flags(assignments, outcomes, kind=None, pre=True):
    """Per assigned customer: y (an outcome in [START, END)) and x (one in [PRE_START, START)), in pandas."""
    o = outcomes if kind is None else outcomes[outcomes["kind"] == kind]
    post = set(o.loc[(o["ts"] >= START) & (o["ts"] < END), "customer_id"])
    before = set(o.loc[(o["ts"] >= PRE_START) & (o["ts"] < START), "customer_id"]) if pre else set()
    return assignments.assign(y=assignments["customer_id"].isin(post).astype(float),
                              x=assignments["customer_id"].isin(before).astype(float))


@pytest.mark.parametrize("kind", [None, "order"])
@pytest.mark.parametrize("pre", [True, False])
def test_conversion_summaries_match_the_flags_per_customer(kind, pre):
    eng, assignments, outcomes = _store()
    got = conversion_summaries(eng.store, CAMPAIGN, START, END, PRE_START if pre else None, kind)
    by_store = conversion_summaries(eng.store, CAMPAIGN, START, END, PRE_START if pre else None, kind,
                                    key_sql="a.store_id")
    frame = _flags(assignments, outcomes, kind, pre)
    assert 0 < frame["y"].mean() < 1 and (0 < frame["x"].mean() < 1 or not pre)
    for key, part in [(None, frame), *frame.groupby("store_id")]:
        summaries = got if key is None else by_store
        for grp, g in part.groupby("grp"):
            s = summaries[key][grp]
            assert s.n == len(g)
            assert (s.mean_y, s.mean_x) == (pytest.approx(g["y"].mean(), abs=1e-15),
                                            pytest.approx(g["x"].mean(), abs=1e-15))
            assert s.var_y == pytest.approx(g["y"].var(ddof=1), abs=1e-15)
            assert s.var_x == pytest.approx(g["x"].var(ddof=1), abs=1e-15)
            assert s.cov_xy == pytest.approx(np.cov(g["x"], g["y"], ddof=1)[0, 1], abs=1e-15)
    eng.close()


def test_cuped_conversion_readout_matches_scipy_on_the_adjusted_values(tmp_path):
    """The whole CUPED conversion readout against Welch's test on y - theta (x - mean x) per customer."""
    from benchmarks.lift import CAMPAIGN as BENCH_CAMPAIGN, LAUNCH, build

    facts = build(tmp_path / "b.duckdb", 4_000, 20_000, seed=11)
    eng = geotarget.open(str(tmp_path / "b.duckdb"), read_only=True)
    end = pd.Timestamp(facts["end"]) + pd.Timedelta(microseconds=1)
    d = eng.lift(BENCH_CAMPAIGN, end=end.isoformat()).to_dict()
    a = eng.store.frame("SELECT customer_id, grp FROM campaign_assignments")
    o = eng.store.frame("SELECT customer_id, ts FROM outcomes")
    eng.close()
    start = pd.Timestamp(LAUNCH)
    post = set(o.loc[(o["ts"] >= start) & (o["ts"] < end), "customer_id"])
    pre = set(o.loc[(o["ts"] >= start - (end - start)) & (o["ts"] < start), "customer_id"])
    y, x = a["customer_id"].isin(post).to_numpy(float), a["customer_id"].isin(pre).to_numpy(float)
    theta = np.cov(x, y, ddof=1)[0, 1] / x.var(ddof=1)
    adj = y - theta * (x - x.mean())
    treat = a["grp"].eq("treatment").to_numpy()
    ref = sps.ttest_ind(adj[treat], adj[~treat], equal_var=False)
    assert d["details"]["theta"] == pytest.approx(theta, rel=1e-9)
    assert d["treatment_rate_adj"] == pytest.approx(adj[treat].mean(), rel=1e-12)
    assert d["control_rate_adj"] == pytest.approx(adj[~treat].mean(), rel=1e-12)
    assert d["p_value_adj"] == pytest.approx(ref.pvalue, rel=1e-9)
    low, high = ref.confidence_interval(0.95)
    assert (d["ci_low_adj"], d["ci_high_adj"]) == pytest.approx((low, high), rel=1e-9)
    assert d["treatment_rate"] == y[treat].mean() and d["control_rate"] == y[~treat].mean()
