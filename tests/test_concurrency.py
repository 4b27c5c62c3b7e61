"""One engine shared by 8 reader threads while an ingest and a campaign update run.

Every answer must equal the answer of one whole state of the database (before
or after each write), never a mix of two. The possible states are rebuilt on
separate in-memory engines to know their answers.
"""

import threading

import numpy as np
import pandas as pd

import geotarget

N = 6000
POINT = (40.7580, -73.9855)


def _base(eng):
    rng = np.random.default_rng(3)
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "S3"], "lat": [40.758, 40.76, 40.70],
                                    "lng": [-73.9855, -73.99, -74.0]}))
    eng.ingest_customers(pd.DataFrame({
        "customer_id": [f"c{i}" for i in range(N)], "lat": rng.uniform(40.72, 40.80, N),
        "lng": rng.uniform(-74.02, -73.95, N), "tier": rng.choice(["gold", "silver"], N)}))
    eng.create_campaign("gold near S1", stores=["S1"], radius="3km", where=[("tier", "==", "gold")])
    eng.create_campaign("silver near S2", stores=["S2"], radius="1km", where=[("tier", "==", "silver")])


def _ingest(eng):
    """Flip every tier, move store S3 next to the point, add customers."""
    rng = np.random.default_rng(4)
    flipped = eng.store.frame("SELECT customer_id, lat, lng, tier FROM customers")
    flipped["tier"] = np.where(flipped["tier"] == "gold", "silver", "gold")
    extra = pd.DataFrame({"customer_id": [f"n{i}" for i in range(N // 2)], "lat": rng.uniform(40.74, 40.77, N // 2),
                          "lng": rng.uniform(-74.0, -73.97, N // 2), "tier": "gold"})
    eng.ingest_customers(pd.concat([flipped, extra], ignore_index=True))
    eng.ingest_stores(pd.DataFrame({"store_id": ["S3"], "lat": [40.759], "lng": [-73.986]}))


def _update(eng):
    eng.update_campaign("silver near S2", radius="4km", where=[("tier", "==", "gold")])


QUERIES = (
    lambda eng: tuple(sorted(eng.audience(stores=["S1"], radius="2km", where=[("tier", "==", "gold")]
                                          ).to_pandas()["customer_id"])),
    lambda eng: tuple(sorted(eng.campaign_audience("silver near S2").to_pandas()["customer_id"])),
    lambda eng: tuple(c.name for c in eng.promotions_at(*POINT, customer_id="c1")),
    lambda eng: tuple(c.name for c in eng.promotions_at(*POINT, customer_id="c2")),
    lambda eng: tuple(s["store_id"] for s in eng.stores_near(*POINT, "1km")),
)


def _answer(eng):
    """One answer per query; each query is one call and must reflect one state."""
    return tuple(q(eng) for q in QUERIES)


def _states():
    answers = set()
    for steps in ((), (_ingest,), (_update,), (_ingest, _update)):
        with geotarget.open(":memory:") as eng:
            _base(eng)
            for step in steps:
                step(eng)
            answers.add(_answer(eng))
    return answers


def test_readers_see_whole_states_while_writes_land(db_path):
    states = _states()
    assert len(states) == 4
    expected = [{state[k] for state in states} for k in range(len(QUERIES))]
    assert all(len(e) >= 2 for e in expected)  # each query sees some write
    eng = geotarget.open(db_path)
    _base(eng)
    seen, errors = [], []
    done = threading.Event()

    def reader():
        try:
            while not done.is_set():
                for k, query in enumerate(QUERIES):
                    seen.append((k, query(eng)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def writer(step):
        try:
            step(eng)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(8)]
    for t in readers:
        t.start()
    while len(seen) < 8 * len(QUERIES):  # the readers are running before the writes start
        threading.Event().wait(0.01)
    writers = [threading.Thread(target=writer, args=(s,)) for s in (_ingest, _update)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    n_during = len(seen)
    while len(seen) < n_during + 8 * len(QUERIES):
        threading.Event().wait(0.01)
    done.set()
    for t in readers:
        t.join()
    last = _answer(eng)
    eng.close()
    assert errors == []
    mixed = [(k, a) for k, a in seen if a not in expected[k]]
    assert mixed == [], f"{len(mixed)} of {len(seen)} answers mix two states (queries {sorted({k for k, _ in mixed})})"
    assert len({a for k, a in seen if k == 0}) >= 2  # the readers did overlap a write
    with geotarget.open(":memory:") as final:
        for step in (_base, _ingest, _update):
            step(final)
        assert last == _answer(final)
