"""Partial updates and consent: absent columns keep their values, opt-outs are sticky, unknown values fail closed."""

from __future__ import annotations

import pandas as pd
import pytest

import geotarget
from geotarget.store.consent import NOT_OUT_VALUES, OPT_IN_VALUES, OPT_OUT_VALUES

BASE = {"lat": 40.75, "lng": -73.98}
UNRECOGNISED = ["oui", "2", "X", "", "maybe"]
ALL_VALUES = sorted(OPT_OUT_VALUES) + sorted(NOT_OUT_VALUES) + sorted(OPT_IN_VALUES) + UNRECOGNISED


def _expected(stored: bool | None, value: str | None) -> bool:
    """The documented rules, written out independently of the code."""
    v = None if value is None else value.strip().lower()
    if v is None:  # no consent column in the file
        return False if stored is None else stored
    if v in OPT_IN_VALUES:
        return False
    if v in NOT_OUT_VALUES:
        return False if stored is None else stored
    return True  # opt-out values and anything unrecognised fail closed


def _write(frame: pd.DataFrame, fmt: str, tmp_path, name: str):
    if fmt == "frame":
        return frame
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "frame"])
def test_reingest_matrix_columns_present_or_absent_times_every_consent_value(tmp_path, fmt):
    """Every consent value, upper- and lower-case, onto stored opted-in and opted-out customers,
    with the email and tier columns present or absent in the update."""
    rows = []
    cases = []
    for stored in (False, True):
        for value in [*ALL_VALUES, *(v.upper() for v in ALL_VALUES if v), None]:
            for present in (False, True):
                cid = f"c{len(cases)}"
                cases.append((cid, stored, value, present))
    for cid, stored, value, present in cases:
        rows.append({"customer_id": cid, **BASE, "email": f"{cid}@example.com", "tier": "gold",
                     "opted_out": "true" if stored else "false"})
    eng = geotarget.open(":memory:")
    first = eng.ingest_customers(_write(pd.DataFrame(rows), fmt, tmp_path, "first"))
    assert first.loaded == len(cases) and first.consent_unrecognised == {}
    # one update file per (consent column present?, other columns present?) shape
    for with_consent in (False, True):
        for present in (False, True):
            part = [c for c in cases if (c[2] is not None) == with_consent and c[3] == present]
            frame = pd.DataFrame({"customer_id": [c[0] for c in part], "lat": BASE["lat"], "lng": BASE["lng"],
                                  "spend": 12.5})
            if with_consent:
                frame["opted_out"] = pd.Series([c[2] for c in part], dtype="string")
            if present:
                frame["email"] = [f"new.{c[0]}@example.com" for c in part]
                frame["tier"] = pd.Series([None] * len(part), dtype="string")  # present but empty: NULL
            rep = eng.ingest_customers(_write(frame, fmt, tmp_path, f"u{with_consent}{present}"))
            assert rep.updated == len(part) and rep.inserted == 0
            if with_consent:
                unknown = [c[2].strip().lower() for c in part if _expected(None, c[2]) and c[2].strip().lower()
                           not in OPT_OUT_VALUES]
                assert sum(rep.consent_unrecognised.values()) == len(unknown)
    got = eng.store.frame("SELECT customer_id, opted_out, email, tier, spend FROM customers").set_index("customer_id")
    for cid, stored, value, present in cases:
        row = got.loc[cid]
        assert bool(row["opted_out"]) == _expected(stored, value), (cid, stored, value)
        assert row["spend"] == 12.5
        if present:
            assert row["email"] == f"new.{cid}@example.com" and pd.isna(row["tier"])
        else:
            assert row["email"] == f"{cid}@example.com" and row["tier"] == "gold"
    eng.close()


def test_new_customers_and_the_report(eng):
    rep = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], **BASE}))
    assert "no consent column: 2 new customer(s) count as consenting" in str(rep)
    rep = eng.ingest_customers(pd.DataFrame({"customer_id": ["c", "d", "e"], **BASE, "opt_out": ["oui", "", "yes"]}))
    assert rep.consent_unrecognised == {"oui": 1, "": 1}
    assert "2 row(s) with an unrecognised consent value counted as opted out: 'oui' x1, '' x1" in str(rep)
    out = dict(eng.store.con.execute("SELECT customer_id, opted_out FROM customers").fetchall())
    assert out == {"a": False, "b": False, "c": True, "d": True, "e": True}


def test_consent_log_records_every_change(eng):
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], **BASE, "opted_out": ["yes", "no"]}))
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], **BASE, "opted_out": ["no", "yes"]}))
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], **BASE, "opted_out": ["opted_in"]}))
    log = eng.consent_log()
    changes = list(zip(log["customer_id"], log["old_value"], log["new_value"], log["raw_value"]))
    assert changes == [("a", None, True, "yes"), ("b", False, True, "yes"), ("a", True, False, "opted_in")]
    assert eng.consent_log("b")["new_value"].tolist() == [True]
    assert set(log["source"]) == {"<DataFrame>"}


def test_a_bad_value_in_a_numeric_column_is_a_reject_not_a_retype(eng):
    eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], **BASE, "age": [30, 40]}))
    rep = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b"], **BASE, "age": ["31", "abc"]}))
    assert (rep.loaded, rep.rejected) == (1, 1)
    assert eng.store.columns("customers")["age"] == "BIGINT"
    assert dict(eng.store.con.execute("SELECT customer_id, age FROM customers").fetchall()) == {"a": 31, "b": 40}
    assert "--allow-retype" in next(iter(rep.reasons))
    with pytest.warns(geotarget.GeotargetWarning, match="now holds text"):
        eng.ingest_customers(pd.DataFrame({"customer_id": ["b"], **BASE, "age": ["abc"]}), allow_retype=True)
    assert eng.store.columns("customers")["age"] == "VARCHAR"
