"""Pending identity hashes (geotarget.store.hashes): filled before anything matches on them."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

from geotarget.audience.privacy import eligible_customers_sql
from geotarget.store.hashes import pending_hashes
from geotarget.store.identity import normalize_email, normalize_phone

_EMAILS = ["Ann@Example.com", " BOB@example.COM\t", "cé@exämple.fr", "\ufeffdora@example.org", "not an email"]
_PHONES = ["(212) 736-5000", "+44 20 7946 0958", "212.736.5002", None, "12345"]


def _people(emails=_EMAILS, phones=_PHONES, prefix="c") -> pd.DataFrame:
    n = len(emails)
    return pd.DataFrame({"customer_id": [f"{prefix}{i}" for i in range(n)], "lat": [40.75 + i * 1e-4 for i in range(n)],
                         "lng": -73.98, "email": emails, "phone": phones})


def _sha(text):
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stored(eng) -> dict:
    rows = eng.store.con.execute("SELECT customer_id, email_sha256, phone_sha256 FROM customers").fetchall()
    return {cid: (e, p) for cid, e, p in rows}


def _expected(emails=_EMAILS, phones=_PHONES, prefix="c") -> dict:
    return {f"{prefix}{i}": (_sha(normalize_email(e)), _sha(normalize_phone(p)))
            for i, (e, p) in enumerate(zip(emails, phones))}


def _audience_ids(eng) -> set:
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.75], "lng": [-73.98]}))
    return set(eng.audience(stores=["S1"], radius="1mi").to_pandas()["customer_id"])


def test_first_ingest_leaves_hashes_pending_and_fill_gives_standard_sha256(eng):
    eng.ingest_customers(_people())
    assert pending_hashes(eng.store.con) == {"email_sha256": "email", "phone_sha256": "phone"}
    assert all(v == (None, None) for v in _stored(eng).values())
    assert eng.fill_hashes() == 7  # 4 valid emails, 3 valid phones
    assert pending_hashes(eng.store.con) == {}
    assert _stored(eng) == _expected()
    assert _expected()["c0"][0] == _sha("ann@example.com")  # the oracle is not vacuous
    assert eng.fill_hashes() == 0


@pytest.mark.parametrize("platform", ["google", "meta"])
def test_customer_match_export_right_after_ingest_has_standard_hashes(eng, tmp_path, platform):
    from geotarget.audience.export import CUSTOMER_MATCH_RULES, write_customer_match

    eng.ingest_customers(_people())
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.75], "lng": [-73.98]}))
    aud = eng.audience(stores=["S1"], radius="1mi", columns=["email", "phone"])
    out = write_customer_match(aud, tmp_path / f"{platform}.csv", platform=platform, allow_small=True)
    rules = CUSTOMER_MATCH_RULES[platform]
    frame = pd.read_csv(out, dtype=str)
    emails = {_sha(normalize_email(e)) for e in _EMAILS if normalize_email(e)}
    strip = "+" if platform == "meta" else ""  # Meta wants the digits without the +
    phones = {_sha(normalize_phone(p).lstrip(strip)) for p in _PHONES if normalize_phone(p)}
    assert set(frame[rules["email_column"]].dropna()) == emails
    assert set(frame[rules["phone_column"]].dropna()) == phones


def test_suppression_after_ingest_fills_hashes_and_keeps_the_person_out(eng):
    eng.ingest_customers(_people())
    assert {"c0", "c1"} <= _audience_ids(eng)
    eng.ingest_suppressions(["bob@EXAMPLE.com"], kind="email")
    eng.ingest_suppressions(["+12127365000"], kind="phone")
    assert pending_hashes(eng.store.con) == {}
    ids = set(eng.audience(stores=["S1"], radius="1mi").to_pandas()["customer_id"])
    assert "c1" not in ids and "c0" not in ids and {"c2", "c3", "c4"} <= ids


def test_suppressed_email_in_a_later_ingest_is_kept_out(eng):
    eng.ingest_customers(_people())
    eng.ingest_suppressions([" Zed@Example.com "], kind="email")
    later = _people(["ZED@example.com\n", "amy@example.com"], ["(212) 736-5010", None], prefix="n")
    eng.ingest_customers(later)
    assert pending_hashes(eng.store.con) == {}  # hashed at once: something could match them
    assert _stored(eng)["n0"] == _expected(later["email"], later["phone"], prefix="n")["n0"]
    ids = _audience_ids(eng)
    assert "n0" not in ids and "n1" in ids


def test_pending_hashes_fail_closed_in_audience_sql(eng):
    eng.ingest_customers(pd.concat([_people(), pd.DataFrame({"customer_id": ["bare"], "lat": [40.75],
                                                             "lng": [-73.98]})], ignore_index=True))
    with eng.store.transaction() as con:  # a suppression written behind the fill's back
        con.execute("INSERT INTO suppressions VALUES ('email_sha256', $h, now())", {"h": _sha("x@example.com")})
    cols = eng.store.columns("customers")
    kept = {r[0] for r in eng.store.con.execute(
        f"SELECT customer_id FROM customers WHERE {eligible_customers_sql(cols)}").fetchall()}
    assert kept == {"bare", "c4"}  # a pending email counts as suppressed; no email, or an invalid one, does not
    eng.fill_hashes()
    kept = {r[0] for r in eng.store.con.execute(
        f"SELECT customer_id FROM customers WHERE {eligible_customers_sql(cols)}").fetchall()}
    assert kept == {"bare", "c0", "c1", "c2", "c3", "c4"}


def test_erasure_by_email_right_after_ingest(eng):
    eng.ingest_customers(_people())
    rep = eng.erase(emails=["ann@example.com"], phones=["212-736-5002"])
    assert rep.customers == 2
    assert set(_stored(eng)) == {"c1", "c3", "c4"}
    back = eng.ingest_customers(_people(["ANN@example.com"], [None], prefix="again"))
    assert back.loaded == 0 and sum(back.reasons.values()) == 1


def test_a_file_naming_its_email_column_otherwise_keeps_hashes_right(eng):
    eng.ingest_customers(_people())
    eng.ingest_customers(pd.DataFrame({"customer_id": ["c0"], "lat": [40.75], "lng": [-73.98],
                                       "mail": ["New@Example.com"]}))
    assert pending_hashes(eng.store.con)["email_sha256"] == "mail"
    eng.fill_hashes()
    stored = _stored(eng)
    assert stored["c0"][0] == _sha("new@example.com")  # the later file's address, as an eager hash would be
    assert stored["c1"][0] == _sha("bob@example.com")


def test_superseded_duplicate_keeps_its_hash_for_erasure(eng):
    frame = _people(["first@example.com", "second@example.com"], [None, None])
    frame["customer_id"] = "dup"
    rep = eng.ingest_customers(frame)
    assert rep.loaded == 1 and rep.rejected == 1
    rejects = eng.store.con.execute("SELECT email_sha256 FROM rejects").fetchall()
    assert rejects == [(_sha("first@example.com"),)]
    assert eng.erase(emails=["first@example.com"]).removed["rejects"] == 1
