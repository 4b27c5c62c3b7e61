"""The "ingest while serving" load, small: lookups keep getting right answers while the server ingests.

Never a timing assertion; the figures are in benchmarks/RESULTS_service.md.
"""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("fastapi", reason="the server extra is not installed (pip install -e '.[server]')")


def test_lookups_answer_rightly_while_the_server_ingests():
    from benchmarks.service_load import run_ingest_while_serving

    phases, facts = run_ingest_while_serving(customers=3_000, stores=8, campaigns=20, points=20, clients=2,
                                             ingest_rows=40_000, log=lambda *a: None)
    assert "loaded 40,000" in facts["ingest_report"], facts["ingest_report"]
    assert facts["wrong"] == 0 and facts["errors"] == 0 and set(facts["statuses"]) == {200}
    assert phases["during the ingest"] and phases["before and after"]


def test_a_reader_is_not_held_back_by_a_writer_in_the_same_process():
    """A lookup during an ingest transaction answers before the ingest commits (no write lock on reads)."""
    import geotarget
    from geotarget.sample import sample_customers, sample_stores

    eng = geotarget.open(":memory:")
    eng.ingest_stores(sample_stores(5, seed=1))
    eng.create_campaign("c", stores="all", radius="2mi")
    eng.ingest_customers(sample_customers(1_000, seed=1))
    entered, release = threading.Event(), threading.Event()

    def slow_progress(done, total):
        entered.set()
        release.wait(30)

    writer = threading.Thread(target=eng.ingest_customers, args=(sample_customers(2_000, seed=2),),
                              kwargs={"progress": slow_progress})
    writer.start()
    try:
        assert entered.wait(30)
        s = eng.stores().iloc[0]
        found = eng.promotions_at(float(s["lat"]), float(s["lng"]), customer_id="C0000001")
        aud = eng.audience(stores="all", radius="1mi")
        assert [c.name for c in found] == ["c"] and len(aud) >= 0
        assert writer.is_alive()  # answered while the write transaction was still open
    finally:
        release.set()
        writer.join(60)
        eng.close()
