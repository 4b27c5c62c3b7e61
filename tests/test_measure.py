"""Outcomes, the frozen assignment and the lift readout through the engine, the CLI and HTTP."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import geotarget
from geotarget.errors import ColumnNotFoundError, InvalidInputError, NotFoundError, PrivacyError
from geotarget.measure import KEYS, forget_customers
from geotarget.measure.outcomes import REASON_NAIVE_TIME, REASON_SUPPRESSED

sm_prop = pytest.importorskip("statsmodels.stats.proportion", reason="statsmodels is in the test extra")

LAUNCH = "2026-05-01T00:00:00Z"
TOP_KEYS = set(KEYS) | {f"{k}_adj" for k in KEYS[2:]} | {"details"}


def _world(n: int = 6000, seed: int = 1, holdout: float = 0.3):
    rng = np.random.default_rng(seed)
    eng = geotarget.open(":memory:")
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "S3"], "lat": [40.758, 40.70, 40.80],
                                    "lng": [-73.9855, -73.95, -74.10]}))
    eng.ingest_customers(pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "lat": 40.73 + rng.normal(0, 0.015, n), "lng": -73.97 + rng.normal(0, 0.015, n),
        "tier": rng.choice(["gold", "silver", "bronze"], n, p=[0.3, 0.697, 0.003]),
    }))
    eng.create_campaign("spring", stores=["S1", "S2", "S3"], radius="3mi", holdout=holdout, start=LAUNCH)
    return eng


def _outcomes(eng, seed: int = 2, lift: float = 0.05, base: float = 0.10, pre: bool = True) -> pd.DataFrame:
    """Conversions with a known lift; the pre-period predicts the post-period (a habit per customer)."""
    rng = np.random.default_rng(seed)
    a = eng.campaign_assignment("spring")
    treat = a["group"].eq("treatment").to_numpy()
    habit = np.where(rng.random(len(a)) < 0.2, 8 * base, base / 5)  # regulars and the rest
    rows = []
    for cid, h, t in zip(a["customer_id"], habit, treat):
        if pre and rng.random() < h:
            rows.append((cid, "2026-04-20T12:00:00+00:00", 30.0, "order"))
        if rng.random() < h + lift * t:
            rows.append((cid, "2026-05-05T09:30:00-04:00", round(float(rng.lognormal(3, 1)), 2), "order"))
        if rng.random() < 0.05:
            rows.append((cid, "2026-05-06T10:00:00Z", 0.0, "visit"))
    frame = pd.DataFrame(rows, columns=["customer_id", "timestamp", "value", "kind"])
    frame["outcome_id"] = [f"o{i}" for i in range(len(frame))]
    return frame


@pytest.fixture
def launched():
    eng = _world()
    eng.launch_campaign("spring")
    eng.ingest_outcomes(_outcomes(eng))
    yield eng
    eng.close()


# -- outcomes -----------------------------------------------------------------------------
def test_outcomes_are_validated_with_rejects(tmp_path):
    eng = geotarget.open(":memory:")
    path = tmp_path / "outcomes.csv"
    path.write_text("customer_id,timestamp,value,kind,outcome_id\n"
                    "c1,2026-05-03T10:00:00-04:00,12.5,Order,o1\n"
                    "c2,2026-05-03 10:00,5,order,o2\n"
                    ",2026-05-03T10:00Z,5,order,o3\n"
                    "c3,yesterday,5,order,o4\n"
                    "c4,2026-05-03T10:00Z,lots,order,o5\n"
                    "c5,2026-05-03T10:00Z,,visit,o6\n"
                    "c6,2026-05-03T10:00Z,1,order,o1\n"
                    "c7,2026-05-03,1,order,o7\n"
                    "c8,2026-05-03T10:00:00.250+0530,1,order,o8\n")
    rep = eng.ingest_outcomes(path)
    assert (rep.read, rep.loaded, rep.rejected) == (9, 3, 6)
    rejects = eng.rejects(kind="outcomes")
    assert sorted(rejects["row_number"]) == [1, 2, 3, 4, 5, 8]
    assert REASON_NAIVE_TIME in set(rejects["reason"])
    stored = eng.store.frame("SELECT * FROM outcomes ORDER BY customer_id")
    assert stored["customer_id"].tolist() == ["c5", "c6", "c8"]  # o1's later row wins within the file
    assert stored["kind"].tolist() == ["visit", "order", "order"]
    assert pd.Timestamp(stored["ts"].iloc[2]) == pd.Timestamp("2026-05-03T04:30:00.250Z")
    assert pd.isna(stored["value"].iloc[0])


def test_outcomes_are_idempotent_on_outcome_id(tmp_path):
    eng = geotarget.open(":memory:")
    frame = pd.DataFrame({"customer_id": ["a", "b", "c"], "timestamp": ["2026-05-01T00:00:00Z"] * 3,
                          "value": [1.0, 2.0, 3.0], "outcome_id": ["x", "y", "z"]})
    frame.to_parquet(tmp_path / "o.parquet")
    first = eng.ingest_outcomes(tmp_path / "o.parquet")
    again = eng.ingest_outcomes(frame)
    assert (first.inserted, again.inserted, again.updated) == (3, 0, 3)
    assert eng.store.scalar("SELECT count(*) FROM outcomes") == 3
    changed = frame.assign(value=[1.0, 20.0, 3.0])
    eng.ingest_outcomes(changed)
    assert eng.store.scalar("SELECT value FROM outcomes WHERE outcome_id = 'y'") == 20.0
    without_ids = frame.drop(columns="outcome_id")
    eng.ingest_outcomes(without_ids)
    eng.ingest_outcomes(without_ids)
    assert eng.store.scalar("SELECT count(*) FROM outcomes") == 9  # no id: appended


def test_outcome_timestamps_keep_their_instant_and_need_a_zone():
    eng = geotarget.open(":memory:")
    aware = pd.DataFrame({"customer_id": ["a"], "ts": [pd.Timestamp("2026-05-01T09:00:00-04:00")]})
    eng.ingest_outcomes(aware)
    assert pd.Timestamp(eng.store.scalar("SELECT ts FROM outcomes")) == pd.Timestamp("2026-05-01T13:00:00Z")
    naive = pd.DataFrame({"customer_id": ["a"], "ts": [pd.Timestamp("2026-05-01T09:00:00")]})
    rep = eng.ingest_outcomes(naive)
    assert rep.rejected == 1 and rep.reasons == {REASON_NAIVE_TIME: 1}
    with pytest.raises(ColumnNotFoundError, match="--time-col"):
        eng.ingest_outcomes(pd.DataFrame({"customer_id": ["a"], "when_it_was": ["2026-05-01T00:00Z"]}))


def test_outcomes_of_suppressed_customers_are_not_stored():
    eng = geotarget.open(":memory:")
    eng.ingest_suppressions(["b"])
    rep = eng.ingest_outcomes(pd.DataFrame({"customer_id": ["a", "b"], "timestamp": ["2026-05-01T00:00Z"] * 2}))
    assert (rep.loaded, rep.reasons) == (1, {REASON_SUPPRESSED: 1})


# -- the frozen assignment -------------------------------------------------------------------
def test_the_assignment_is_frozen_at_launch():
    eng = _world(n=2000)
    with pytest.raises(NotFoundError, match="launch"):
        eng.lift("spring")
    launch = eng.launch_campaign("spring")
    before = eng.campaign_assignment("spring")
    aud = eng.campaign_audience("spring").to_pandas()
    assert launch.treatment_n + launch.control_n == len(aud) == len(before)
    frozen = before.set_index("customer_id")["group"]
    assert (frozen == aud.set_index("customer_id")["group"].reindex(frozen.index)).all()
    # later: half the customers opt out, some move away, new ones arrive
    moved = pd.DataFrame({"customer_id": before["customer_id"][:500], "lat": 45.0, "lng": -70.0})
    eng.ingest_customers(moved)
    eng.ingest_customers(pd.DataFrame({"customer_id": before["customer_id"][500:1000], "lat": 40.758,
                                       "lng": -73.9855, "opted_out": True}))
    eng.ingest_customers(pd.DataFrame({"customer_id": ["new1", "new2"], "lat": 40.758, "lng": -73.9855}))
    eng.update_campaign("spring", holdout=0.5)
    assert eng.launch_campaign("spring") == launch  # a second launch keeps the first
    pd.testing.assert_frame_equal(eng.campaign_assignment("spring"), before)
    assert len(eng.campaign_audience("spring")) != len(before)


def test_intent_to_treat_keeps_opted_out_customers_in_their_group(launched):
    before = launched.lift("spring")
    a = launched.campaign_assignment("spring")
    gone = a[a["group"] == "treatment"]["customer_id"][:300]
    launched.ingest_customers(pd.DataFrame({"customer_id": gone, "lat": 40.73, "lng": -73.97, "opted_out": True}))
    after = launched.lift("spring")
    assert after["treatment_n"] == before["treatment_n"]
    assert after["treatment_rate"] == before["treatment_rate"]


def test_erasure_removes_the_person_from_outcomes_and_the_snapshot(launched):
    a = launched.campaign_assignment("spring")
    who = a["customer_id"][:10].tolist()
    with launched.store.transaction() as con:
        removed = forget_customers(con, who)
    assert removed["campaign_assignments"] == 10 and removed["outcomes"] > 0
    left = launched.campaign_assignment("spring")
    assert len(left) == len(a) - 10 and not set(who) & set(left["customer_id"])
    assert launched.store.scalar("SELECT count(*) FROM outcomes WHERE customer_id IN (SELECT unnest($w))",
                                 {"w": who}) == 0
    r = launched.lift("spring")
    assert r["treatment_n"] + r["control_n"] == len(a) - 10


def test_launch_needs_a_holdout():
    eng = _world(n=200, holdout=0.0)
    with pytest.raises(InvalidInputError, match="no holdout"):
        eng.launch_campaign("spring")


# -- the readout ---------------------------------------------------------------------------------
def test_readout_matches_statsmodels_on_the_same_counts(launched):
    r = launched.lift("spring", end="2026-06-01T00:00:00Z", kind="order")
    d = r.to_dict()
    assert set(d) == TOP_KEYS
    a = launched.campaign_assignment("spring")
    o = launched.store.frame("SELECT DISTINCT customer_id FROM outcomes WHERE kind = 'order' "
                             "AND ts >= TIMESTAMPTZ '2026-05-01 00:00:00+00' "
                             "AND ts < TIMESTAMPTZ '2026-06-01 00:00:00+00'")
    conv = a["customer_id"].isin(o["customer_id"])
    xt, nt = int(conv[a["group"] == "treatment"].sum()), int((a["group"] == "treatment").sum())
    xc, nc = int(conv[a["group"] == "control"].sum()), int((a["group"] == "control").sum())
    assert (d["treatment_n"], d["control_n"]) == (nt, nc)
    assert d["treatment_rate"] == pytest.approx(xt / nt) and d["control_rate"] == pytest.approx(xc / nc)
    _, p = sm_prop.proportions_ztest([xt, xc], [nt, nc])
    low, high = sm_prop.confint_proportions_2indep(xt, nt, xc, nc, method="wald")
    assert d["p_value"] == pytest.approx(p, rel=1e-9)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((low, high), rel=1e-9)
    se = (d["ci_high"] - d["ci_low"]) / (2 * 1.959964)
    assert abs(d["abs_lift"] - 0.05) < 4 * se  # the simulated lift (the split is salted by a random campaign id)
    assert d["rel_lift"] == pytest.approx(d["abs_lift"] / d["control_rate"])
    # the pre-period habit makes CUPED narrower, on the same scale
    assert d["ci_high_adj"] - d["ci_low_adj"] < d["ci_high"] - d["ci_low"]
    assert d["abs_lift_adj"] == pytest.approx(d["abs_lift"], abs=0.02)
    assert d["details"]["variance_reduction"] > 0.2


def test_revenue_readout_uses_welch_and_a_bootstrap(launched):
    from scipy import stats as sps

    r = launched.lift("spring", metric="revenue", end="2026-06-01T00:00:00Z", kind="order")
    d = r.to_dict()
    a = launched.campaign_assignment("spring")
    o = launched.store.frame("SELECT customer_id, sum(value) AS v FROM outcomes WHERE kind = 'order' "
                             "AND ts >= TIMESTAMPTZ '2026-05-01 00:00:00+00' GROUP BY customer_id")
    spend = a.merge(o, on="customer_id", how="left")["v"].fillna(0).to_numpy()
    t, c = spend[a["group"] == "treatment"], spend[a["group"] == "control"]
    ref = sps.ttest_ind(t, c, equal_var=False)
    assert d["p_value"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert d["treatment_rate"] == pytest.approx(t.mean()) and d["control_rate"] == pytest.approx(c.mean())
    assert d["ci_low"] < d["abs_lift"] < d["ci_high"]
    assert d["details"]["ci_method"].startswith("bootstrap")


def test_no_pre_period_gives_no_adjusted_figures():
    eng = _world(n=3000)
    eng.launch_campaign("spring")
    eng.ingest_outcomes(_outcomes(eng, pre=False))
    d = eng.lift("spring").to_dict()
    assert all(d[f"{k}_adj"] is None for k in KEYS[2:])
    assert d["p_value"] is not None


def test_breakdown_cells_under_k_have_no_readout(launched):
    r = launched.lift("spring", by="tier", k_min=20)
    b = r.breakdown.set_index("tier")
    assert b.loc["bronze", "suppressed"]  # 0.3 % of customers: under 20 in the control group
    assert b.loc[["bronze"], list(KEYS)].isna().all(axis=None)
    shown = b[~b["suppressed"]]
    assert len(shown) == 2 and (shown[["treatment_n", "control_n"]] >= 20).all(axis=None)
    from statsmodels.stats.multitest import multipletests

    assert shown["q_value"].to_numpy() == pytest.approx(multipletests(shown["p_value"], method="fdr_bh")[1])
    rows = {row["tier"]: row for row in r.to_dict()["details"]["breakdown"]}
    assert rows["bronze"]["treatment_n"] is None and rows["bronze"]["p_value"] is None


@pytest.mark.parametrize("by", ["store", "h3_8"])
def test_breakdowns_by_store_and_cell_sum_to_the_whole(launched, by):
    r = launched.lift("spring", by=by)
    b = r.breakdown
    assert b[by].notna().all()
    if by == "h3_8":
        assert b["suppressed"].any() and not b["suppressed"].all()
    shown = b[~b["suppressed"]]
    assert shown["treatment_n"].sum() <= r["treatment_n"]
    assert (shown[["treatment_n", "control_n"]] >= 10).all(axis=None)


def test_readout_refuses_groups_under_k_and_bad_options(launched):
    with pytest.raises(PrivacyError, match="k_min"):
        launched.lift("spring", k_min=100_000)
    with pytest.raises(InvalidInputError, match="metric"):
        launched.lift("spring", metric="clicks")
    with pytest.raises(InvalidInputError, match="timezone"):
        launched.lift("spring", start="2026-05-01 00:00")
    with pytest.raises(InvalidInputError, match="not store"):
        launched.lift("spring", by="nonsense")


def test_pictures(launched, tmp_path):
    r = launched.lift("spring", by="store")
    html = r.to_map(tiles=None).get_root().render()
    assert "leaflet" in html.lower() and "S1" in html
    assert r.to_png(tmp_path / "lift.png").read_bytes()[:4] == b"\x89PNG"
    cum = r.cumulative()
    assert set(cum["group"]) == {"treatment", "control"}
    final = cum.groupby("group")["rate"].last()
    assert final["treatment"] == pytest.approx(r["treatment_rate"])
    assert final["control"] == pytest.approx(r["control_rate"])
    assert (cum.groupby("group")["converted"].diff().dropna() >= 0).all()
    assert r.cumulative_png(tmp_path / "c.png").stat().st_size > 1000
    assert "<svg" in r.cumulative_html(tmp_path / "c.html").read_text()


def test_plan_holdout_on_a_campaign(launched):
    plan = launched.plan_holdout("spring", baseline_rate=0.2, mde=0.1)
    assert plan.audience_n == len(launched.campaign_assignment("spring")) and plan.detectable


# -- CLI and HTTP ----------------------------------------------------------------------------
def test_cli_lift_json_keys(tmp_path):
    from typer.testing import CliRunner

    from geotarget.cli import app

    db = str(tmp_path / "m.duckdb")
    eng = _world(n=2000)
    frame = eng.store.frame("SELECT customer_id, lat, lng FROM customers")
    eng.close()
    eng = geotarget.open(db)
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "S3"], "lat": [40.758, 40.70, 40.80],
                                    "lng": [-73.9855, -73.95, -74.10]}))
    eng.ingest_customers(frame)
    eng.create_campaign("spring", stores=["S1", "S2", "S3"], radius="3mi", holdout=0.3, start=LAUNCH)
    eng.close()
    runner = CliRunner()
    out = runner.invoke(app, ["--db", db, "campaign", "launch", "spring"])
    assert out.exit_code == 0, out.output
    eng = geotarget.open(db)
    _outcomes(eng).to_csv(tmp_path / "o.csv", index=False)
    eng.close()
    out = runner.invoke(app, ["--db", db, "ingest", "outcomes", str(tmp_path / "o.csv")])
    assert out.exit_code == 0 and "rejected 0" in out.output
    out = runner.invoke(app, ["--db", db, "lift", "--campaign", "spring", "--json"])
    assert out.exit_code == 0, out.output
    assert set(json.loads(out.output)) == TOP_KEYS
    out = runner.invoke(app, ["--db", db, "plan-holdout", "--campaign", "spring", "--baseline-rate", "0.05",
                              "--mde", "0.01", "--json"])
    assert out.exit_code == 0 and json.loads(out.stdout)["detectable"] is False
    assert "too small" in out.stderr


def test_cli_errors_are_one_line(tmp_path):
    import subprocess
    import sys

    db = tmp_path / "e.duckdb"
    geotarget.open(db).close()
    res = subprocess.run([sys.executable, "-m", "geotarget", "--db", str(db), "lift", "--campaign", "nope"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not found" in res.stderr


def test_http_readout(launched):
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    from fastapi.testclient import TestClient

    from geotarget.service import create_app

    key, lookup_only = "analyst-key-0123456789", "lookup-key-0123456789"
    with TestClient(create_app(launched, keys=[f"{key}=analyst", f"{lookup_only}=lookup"])) as client:
        assert client.get("/v1/campaigns/spring/lift", headers={"X-API-Key": lookup_only}).status_code == 403
        res = client.get("/v1/campaigns/spring/lift", params={"by": "tier"}, headers={"X-API-Key": key})
        assert res.status_code == 200, res.text
        assert set(res.json()) == TOP_KEYS
        assert res.json()["treatment_n"] == launched.lift("spring")["treatment_n"]
        assert client.get("/v1/campaigns/spring/lift").status_code == 401
        assert client.get("/v1/campaigns/spring/lift", params={"by": "zzz"},
                          headers={"X-API-Key": key}).status_code == 422
        assert client.get("/v1/campaigns/spring/lift", params={"k_min": 100_000},
                          headers={"X-API-Key": key}).status_code == 403
        assert client.get("/v1/campaigns/nope/lift", headers={"X-API-Key": key}).status_code == 404


def test_benchmark_readout_agrees_with_its_sql_peer(tmp_path):
    """benchmarks.lift at a tiny size: the readout and the hand-written SQL peers give the same rates (no timing)."""
    from benchmarks.lift import _child, build

    facts = build(tmp_path / "b.duckdb", 3_000, 12_000)
    sql = _child("duckdb sql", str(tmp_path / "b.duckdb"), facts["campaign_id"], facts["end"])
    ours = _child("geotarget", str(tmp_path / "b.duckdb"), facts["campaign_id"], facts["end"])
    assert ours["answer"]["treatment_rate"] == pytest.approx(sql["answer"]["treatment_rate"], abs=1e-12)
    assert ours["answer"]["control_rate"] == pytest.approx(sql["answer"]["control_rate"], abs=1e-12)
    assert ours["answer"]["p_value_adj"] is not None  # the pre-period was read
    sql_cuped = _child("duckdb sql, CUPED", str(tmp_path / "b.duckdb"), facts["campaign_id"], facts["end"])
    for key in ("treatment_rate", "control_rate", "treatment_rate_adj", "control_rate_adj"):
        assert ours["answer"][key] == pytest.approx(sql_cuped["answer"][key], rel=1e-9)


def test_the_first_export_freezes_the_assignment(tmp_path):
    eng = _world(n=2000)
    aud = eng.campaign_audience("spring")
    aud.to_csv(tmp_path / "spring.csv")
    frozen = eng.campaign_assignment("spring")
    written = pd.read_csv(tmp_path / "spring.csv")
    assert sorted(frozen["customer_id"]) == sorted(written["customer_id"])
    eng.ingest_customers(pd.DataFrame({"customer_id": ["late"], "lat": 40.758, "lng": -73.9855}))
    eng.campaign_audience("spring").to_csv(tmp_path / "again.csv")  # a later export keeps the first snapshot
    pd.testing.assert_frame_equal(eng.campaign_assignment("spring"), frozen)
