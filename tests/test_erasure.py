"""Erasure: everywhere at once, tombstoned, idempotent, atomic under kill -9; suppression in every export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

import geotarget
from geotarget.store.erasure import ERASED_REASON, personal_tables, register_personal_table
from geotarget.store.identity import sha256_hex


def _people(n: int = 150) -> pd.DataFrame:
    return pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(n)],
        "lat": [40.75 + (i % 10) * 0.001 for i in range(n)],
        "lng": [-73.98 - (i // 10) * 0.001 for i in range(n)],
        "email": [f"Person.{i}@Example.com" for i in range(n)],
        "phone": [f"(212) 736-{5000 + i:04d}" for i in range(n)],
        "opted_out": ["no"] * n,
    })


@pytest.fixture
def loaded(eng):
    eng.ingest_customers(_people())
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.75], "lng": [-73.98]}))
    # c7 also has a rejected row (no latitude) in another file, with its email masked there
    eng.ingest_customers(pd.DataFrame({"customer_id": ["c7", "x"], "lat": [None, 40.7], "lng": [-73.98, -73.98],
                                       "email": ["person.7@example.com", "x@example.com"]}))
    return eng


def _ids(eng, table="customers", col="customer_id"):
    return {r[0] for r in eng.store.con.execute(f"SELECT {col} FROM {table}").fetchall()}


def test_rejects_hold_no_raw_email_or_phone(loaded):
    raw = " ".join(loaded.rejects()["raw"])
    assert "person.7@example.com" not in raw.lower() and "p***@example.com" in raw


def test_erase_everywhere_then_reingest_keeps_them_out(loaded):
    eng = loaded
    aud = eng.audience(stores=["S1"], radius="5mi")
    assert {"c3", "c7", "c9"} <= set(aud.to_pandas()["customer_id"])  # the in-memory index holds them now
    eng.ingest_suppressions(["c9"], kind="id")
    rep = eng.erase(ids=["c3"], emails=["  PERSON.7@example.com\t"], phones=["+1 212 736 5009"])
    assert rep.customers == 3 and rep.removed["customers"] == 3 and rep.removed["rejects"] == 1
    assert rep.removed["suppressions"] == 1
    assert not {"c3", "c7", "c9"} & _ids(eng)
    assert not {"c3", "c7", "c9"} & _ids(eng, "rejects")
    assert not {"c3", "c7", "c9"} & _ids(eng, "consent_log")
    assert not {"c3", "c7", "c9"} & set(eng.audience(stores=["S1"], radius="5mi").to_pandas()["customer_id"])
    assert eng.promotions_at(40.75, -73.98, customer_id="c3") == []
    # idempotent
    again = eng.erase(ids=["c3"], emails=["person.7@example.com"])
    assert again.customers == 0 and sum(again.removed.values()) == 0 and again.tombstones == 0
    # a later ingest keeps them out, by id, by email (new id) and by phone (new id)
    back = pd.concat([_people(10), pd.DataFrame({
        "customer_id": ["new-email", "new-phone"], "lat": 40.75, "lng": -73.98,
        "email": ["person.7@EXAMPLE.com", "someone@example.com"], "phone": [None, "212-736-5009"],
        "opted_out": "no"})], ignore_index=True)
    rep = eng.ingest_customers(back)
    assert rep.reasons == {ERASED_REASON: 5} and rep.loaded == 7
    assert not {"c3", "c7", "c9", "new-email", "new-phone"} & _ids(eng)
    # nothing personal is left: the tombstones are salted, not plain hashes
    tombs = {r[0] for r in eng.store.con.execute("SELECT hash FROM erasures").fetchall()}
    assert sha256_hex("c3") not in tombs and sha256_hex("person.7@example.com") not in tombs


def test_tables_added_later_register_with_one_line(loaded):
    eng = loaded
    with eng.store.transaction() as con:
        con.execute("CREATE TABLE visits (device VARCHAR, customer VARCHAR)")
        con.execute("INSERT INTO visits VALUES ('d1', 'c1'), ('d2', 'c2')")
        register_personal_table(con, "visits", "customer", "customer_id")
        assert ("visits", "customer", "customer_id") in personal_tables(con)
    assert eng.erase(ids=["c1"]).removed["visits"] == 1
    assert _ids(eng, "visits", "customer") == {"c2"}


def test_suppressed_person_is_in_no_export_format(loaded, tmp_path):
    eng = loaded
    eng.ingest_suppressions(["\ufeffPERSON.1@example.com "], kind="email")
    eng.ingest_suppressions(["212.736.5002"], kind="phone")
    path = tmp_path / "ids.csv"
    path.write_bytes('\ufeffcustomer_id\n"c4"\n'.encode())
    eng.ingest_suppressions(path, kind="id")
    gone = {"c1", "c2", "c4"}
    hashes = {sha256_hex(f"person.{i}@example.com") for i in (1, 2, 4)}
    hashes |= {sha256_hex(f"+1212736500{i}") for i in (1, 2, 4)} | {sha256_hex(f"1212736500{i}") for i in (1, 2, 4)}
    aud = eng.audience(stores=["S1"], radius="5mi", columns=["email", "phone"])
    from geotarget.audience.export import write_audience, write_customer_match

    for fmt in ("csv", "parquet", "geojson", "geoparquet"):
        out = write_audience(aud, tmp_path / f"x.{fmt}", fmt, columns=["email", "phone"], allow_small=True)
        text = out.read_bytes().decode("latin-1")
        assert not any(f'"{c}"' in text or f"{c}," in text or f"{c}\n" in text for c in gone), fmt
        assert "person.1@" not in text and "736-5002" not in text
    for platform in ("google", "meta"):
        out = write_customer_match(aud, tmp_path / f"{platform}.csv", platform=platform, allow_small=True)
        frame = pd.read_csv(out)
        assert len(frame) == len(aud) and not hashes & set(frame.stack())
    assert gone.isdisjoint(aud.to_pandas()["customer_id"])


def test_customer_match_rules(eng, tmp_path):
    from geotarget.audience.export import write_customer_match

    eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.75], "lng": [-73.98],
                                       "email": [" J.Doe@GMail.com"], "phone": ["(212) 736-5000"]}))
    aud = eng.audience(points=[(40.75, -73.98)], radius="1mi")
    google = pd.read_csv(write_customer_match(aud, tmp_path / "g.csv", platform="google", allow_small=True))
    meta = pd.read_csv(write_customer_match(aud, tmp_path / "m.csv", platform="meta", allow_small=True))
    assert google.to_dict("records") == [{"Email": sha256_hex("jdoe@gmail.com"), "Phone": sha256_hex("+12127365000")}]
    assert meta.to_dict("records") == [{"email": sha256_hex("j.doe@gmail.com"), "phone": sha256_hex("12127365000")}]


def test_purge_rejects(loaded):
    assert loaded.purge_rejects(older_than="30d") == 0
    assert loaded.purge_rejects() == 1 and loaded.rejects().empty
    with pytest.raises(geotarget.GeotargetError, match="30d"):
        loaded.purge_rejects(older_than="a month")


def test_kill_minus_9_during_erasure_leaves_everything_as_it_was(tmp_path):
    db = tmp_path / "e.duckdb"
    with geotarget.open(db) as eng:
        eng.ingest_customers(_people(20))
    marker = tmp_path / "started"
    script = textwrap.dedent(f"""
        import pathlib, time, geotarget
        from geotarget.store import erasure
        real = erasure._salt
        def slow(con):  # called after the deletes, before the tombstones, inside the transaction
            pathlib.Path({str(marker)!r}).touch()
            time.sleep(30)
            return real(con)
        erasure._salt = slow
        eng = geotarget.open({str(db)!r})
        eng.erase(ids=["c1", "c2"], emails=["person.3@example.com"])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ})
    try:
        for _ in range(600):
            if marker.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert marker.exists(), "the child never reached the middle of its erasure"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with geotarget.open(db) as eng:
        assert {"c1", "c2", "c3"} <= _ids(eng)
        assert eng.store.scalar("SELECT count(*) FROM erasures") == 0
        assert eng.erase(ids=["c1", "c2"], emails=["person.3@example.com"]).customers == 3


def test_cli_erase_consent_log_and_purge(tmp_path):
    db = tmp_path / "cli.duckdb"
    csv = tmp_path / "c.csv"
    _people(5).assign(opted_out=["yes", "no", "no", "no", "no"]).to_csv(csv, index=False)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "geotarget", "--db", str(db), *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    assert run("ingest", "customers", str(csv)).returncode == 0
    log = run("consent", "log", "--id", "c0")
    assert log.returncode == 0 and "c0: - -> opted out (value 'yes'" in log.stdout
    people = tmp_path / "people.csv"
    people.write_text("email,phone\nperson.1@example.com,\n,212 736 5002\n", encoding="utf-8")
    out = run("erase", "--id", "c0", "--file", str(people))
    assert out.returncode == 0 and "erased 3 customer(s)" in out.stdout, out.stderr
    bad = run("erase", "--email", "not-an-email")
    assert bad.returncode == 2 and "not a valid email" in bad.stderr and "Traceback" not in bad.stderr
    assert "deleted 0 rejected row(s)" in run("rejects", "--purge", "--older-than", "30d").stdout


def test_http_erasure(loaded):
    pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")
    from fastapi.testclient import TestClient

    from geotarget.service import create_app

    key, analyst = "erase-key-0123456789abcdef", "analyst-key-0123456789abcdef"
    with TestClient(create_app(loaded, keys=[f"{key}=admin", f"{analyst}=analyst+audiences+pii"])) as client:
        assert client.post("/v1/erasures", json={"ids": ["c5"]}).status_code == 401
        assert client.post("/v1/erasures", json={"ids": ["c5"]}, headers={"X-API-Key": analyst}).status_code == 403
        got = client.post("/v1/erasures", json={"ids": ["c5"], "emails": ["person.6@example.com"]},
                          headers={"X-API-Key": key})
        assert got.status_code == 200 and got.json()["customers"] == 2
        bad = client.post("/v1/erasures", json={"emails": ["nope"]}, headers={"X-API-Key": key})
        assert bad.status_code == 422 and "nope" in bad.text
    assert not {"c5", "c6"} & _ids(loaded)


def test_erasure_reaches_outcomes_and_frozen_assignments():
    """Tables added by the measurement package are registered, so erasure removes the person there too."""
    from geotarget.sample import sample_customers

    eng = geotarget.open(":memory:")
    customers = sample_customers(400, seed=1)
    eng.ingest_customers(customers)
    eng.create_campaign("spring", cells=["832a10fffffffff"], holdout=0.25, start="2026-05-01T00:00Z")
    eng.launch_campaign("spring")
    who = str(eng.campaign_assignment("spring")["customer_id"].iloc[0])
    eng.ingest_outcomes(pd.DataFrame({"customer_id": [who, who, "nobody"], "value": [5.0, 7.0, 1.0],
                                      "timestamp": ["2026-05-02T10:00:00Z"] * 2 + ["not a time"]}))
    count = lambda sql: eng.store.con.execute(sql, [who]).fetchall()[0][0]  # noqa: E731
    assert count("SELECT count(*) FROM outcomes WHERE customer_id = ?") == 2
    eng.erase(ids=[who])
    assert count("SELECT count(*) FROM outcomes WHERE customer_id = ?") == 0
    assert count("SELECT count(*) FROM campaign_assignments WHERE customer_id = ?") == 0
    assert count("SELECT count(*) FROM customers WHERE customer_id = ?") == 0
    assert who not in set(eng.campaign_assignment("spring")["customer_id"])
