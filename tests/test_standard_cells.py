"""Standard H3 containment: every cell geotarget returns is h3-py's ``latlng_to_cell``.

Checked on real data (NYC Airbnb listings, SF crime incidents, US ZIP
centroids) against a plain pandas groupby over h3-py, and with hypothesis at
the poles, across the antimeridian and around pentagons against brute force.
"""

import h3
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from conftest import real_file
from h3ronpy.vector import coordinates_to_cells
from hypothesis import given, settings
from hypothesis import strategies as st

import geotarget
from geotarget.audience.cellcodes import CellCodes, _runs, cell_codes, positions_in_cells
from geotarget.audience.index import CustomerIndex
from geotarget.geo.cells import FINE_RES, in_cells, latlng_to_cells


def _frame(name: str) -> pd.DataFrame:
    """(customer_id, lat, lng) of a real dataset; rows numbered when it has no unique id."""
    if name == "airbnb":
        raw = pd.read_csv(real_file("nyc/nyc_airbnb_listings_2019.csv"), usecols=["id", "latitude", "longitude"])
        raw = raw.drop_duplicates("id", keep="last").rename(columns={"id": "customer_id"})
    elif name == "sf_crime":
        raw = pd.read_csv(real_file("sf/sf_crime_incidents_2012h2.csv"), usecols=["lat", "lon"])
        raw = raw.rename(columns={"lat": "latitude", "lon": "longitude"})
        raw.insert(0, "customer_id", [f"row{i}" for i in range(len(raw))])  # incidents repeat their number
    else:
        raw = pd.read_csv(real_file("us/us_zipcodes_geonames.csv"), usecols=["zip_code", "latitude", "longitude"],
                          dtype={"zip_code": str}).rename(columns={"zip_code": "customer_id"})
    raw = raw.dropna()
    return pd.DataFrame({"customer_id": raw["customer_id"].astype(str), "lat": raw["latitude"].astype(float),
                         "lng": raw["longitude"].astype(float)})


@pytest.fixture(scope="module", params=["airbnb", "sf_crime", "zips"])
def real(request):
    frame = _frame(request.param)
    eng = geotarget.open(":memory:")
    eng.ingest_customers(frame)
    yield request.param, frame, eng
    eng.close()


def test_heatmap_counts_equal_a_groupby_over_h3_py(real):
    name, frame, eng = real
    stored = eng.store.frame("SELECT customer_id FROM customers")
    assert len(stored) == len(frame), "every row is kept"
    for res in ((4, 8, 12) if name != "zips" else (2, 5, 8)):
        truth = pd.Series([h3.latlng_to_cell(a, b, res) for a, b in zip(frame["lat"], frame["lng"])]).value_counts()
        got = eng.heatmap(res, k_min=0, allow_no_floor=True).cells
        assert dict(zip(got["h3"], got["customers"])) == truth.to_dict(), f"{name} res {res}"
        floored = eng.heatmap(res, k_min=5, allow_no_floor=True).cells
        assert dict(zip(floored["h3"], floored["customers"])) == truth[truth >= 5].to_dict()


def test_h3ronpy_and_h3_py_agree_on_real_points(real):
    _, frame, _ = real
    lat, lng = frame["lat"].to_numpy(), frame["lng"].to_numpy()
    for res in range(16):
        ours = latlng_to_cells(lat, lng, res)
        rust = np.asarray(coordinates_to_cells(lat, lng, res), dtype="uint64")
        step = max(1, len(lat) // 3000)  # h3-py one call per point: a spread-out sample keeps this fast
        py = np.array([h3.str_to_int(h3.latlng_to_cell(a, b, res)) for a, b in zip(lat[::step], lng[::step])],
                      dtype="uint64")
        assert np.array_equal(ours, rust)
        assert np.array_equal(rust[::step], py)


def test_cell_audiences_and_geofences_use_the_containing_cell(real):
    name, frame, eng = real
    cells8 = [h3.latlng_to_cell(a, b, 8) for a, b in zip(frame["lat"], frame["lng"])]
    busiest = pd.Series(cells8).value_counts().index[:3].tolist()
    want = set(frame["customer_id"][np.isin(cells8, busiest)])
    camp = eng.create_campaign("busiest cells", cells=busiest)
    got = set(eng.campaign_audience(camp.id).to_pandas()["customer_id"])
    assert got == want
    ring = eng.audience(ring_cell=busiest[0], k=1)
    disk = set(h3.grid_disk(busiest[0], 1))
    assert set(ring.to_pandas()["customer_id"]) == set(frame["customer_id"][[c in disk for c in cells8]])
    out = ring.to_pandas(columns=["h3_8", "h3_11"])
    row = frame.set_index("customer_id").loc[out["customer_id"]]
    assert out["h3_8"].tolist() == [h3.latlng_to_cell(a, b, 8) for a, b in zip(row["lat"], row["lng"])]
    assert out["h3_11"].tolist() == [h3.latlng_to_cell(a, b, 11) for a, b in zip(row["lat"], row["lng"])]
    if name == "airbnb":
        i = int(np.flatnonzero(np.isin(cells8, busiest))[0])
        hits = eng.promotions_at(frame["lat"].iloc[i], frame["lng"].iloc[i])
        assert camp.id in {c.id if hasattr(c, "id") else c["id"] for c in hits}


# -- hypothesis: poles, antimeridian, pentagons -----------------------------------------------------------------

_PENTAGON_CENTRES = [h3.cell_to_latlng(p) for p in h3.get_pentagons(5)]


@st.composite
def _cluster(draw):
    """A few hundred points around a hard place, spread over several cells of a resolution."""
    kind = draw(st.sampled_from(["north pole", "south pole", "antimeridian", "pentagon"]))
    res = draw(st.integers(0, 12))
    spread = h3.average_hexagon_edge_length(res, unit="m") * draw(st.floats(0.5, 4.0)) / 111_000
    if kind == "north pole":
        clat, clng = 90.0 - draw(st.floats(0.0, 0.5)), draw(st.floats(-180, 180))
    elif kind == "south pole":
        clat, clng = -90.0 + draw(st.floats(0.0, 0.5)), draw(st.floats(-180, 180))
    elif kind == "antimeridian":
        clat, clng = draw(st.floats(-80, 80)), 180.0
    else:
        clat, clng = _PENTAGON_CENTRES[draw(st.integers(0, 11))]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = 300
    lat = np.clip(clat + rng.uniform(-spread, spread, n), -90.0, 90.0)
    lng = clng + rng.uniform(-spread, spread, n) / max(np.cos(np.radians(min(abs(clat), 89.9))), 0.01)
    lng = (lng + 180.0) % 360.0 - 180.0
    return lat, lng, res


def _index(lat, lng) -> CustomerIndex:
    cells = latlng_to_cells(lat, lng, FINE_RES)
    order = np.argsort(cells, kind="stable")
    return CustomerIndex(1, FINE_RES, cells[order], lat[order], lng[order],
                         pa.array([str(i) for i in order.tolist()]))


@settings(max_examples=60, deadline=None)
@given(_cluster(), st.integers(0, 2**32 - 1))
def test_codes_and_cell_membership_equal_brute_force(cluster, seed):
    lat, lng, res = cluster
    index = _index(lat, lng)
    truth = np.array([h3.str_to_int(h3.latlng_to_cell(a, b, res)) for a, b in zip(index.lat, index.lng)],
                     dtype="uint64")
    codes = cell_codes(index, res)
    assert np.array_equal(codes.cells_at(np.arange(len(index))), truth)
    distinct, counts = np.unique(truth, return_counts=True)
    assert np.array_equal(codes.cells, distinct) and np.array_equal(codes.counts(), counts)
    # over an audience (sorted positions, as audiences hold them): the cells of those customers, counted
    rng = np.random.default_rng(seed)
    some = np.flatnonzero(rng.random(len(index)) < rng.random())
    expected = np.array([np.count_nonzero(truth[some] == c) for c in distinct])
    assert np.array_equal(codes.counts(some), expected)
    # counted with and without the run-length encoding (kept or not, depending on how much it saves)
    for variant in (CellCodes(res, codes.cells, codes.codes), CellCodes(res, codes.cells, codes.codes,
                                                                        *_runs(codes.codes))):
        assert np.array_equal(variant.counts(), counts) and np.array_equal(variant.counts(some), expected)
    assert codes.names.tolist() == [h3.int_to_str(int(c)) for c in distinct]
    # membership in a few of the cells, by the covering (neighbours) and then latlng_to_cell
    chosen = np.random.default_rng(seed).choice(distinct, size=min(3, distinct.size), replace=False)
    assert np.array_equal(positions_in_cells(index, chosen), np.flatnonzero(np.isin(truth, chosen)))
    assert np.array_equal(in_cells(index.lat, index.lng, chosen), np.isin(truth, chosen))


def test_counts_of_a_read_only_group_are_kept_and_equal_a_fresh_count():
    rng = np.random.default_rng(11)
    lat, lng = rng.uniform(40.6, 40.9, 5_000), rng.uniform(-74.1, -73.8, 5_000)
    cells = np.sort(latlng_to_cells(lat, lng, FINE_RES))
    back = np.array([h3.cell_to_latlng(h3.int_to_str(int(c))) for c in cells])
    idx = CustomerIndex(1, FINE_RES, cells, back[:, 0], back[:, 1], pa.array([f"c{i}" for i in range(cells.size)]))
    codes = cell_codes(idx, 8)
    group = np.sort(rng.choice(cells.size, 700, replace=False))
    expected = np.bincount(codes.codes[group], minlength=codes.cells.size)
    writable = group.copy()
    assert np.array_equal(codes.counts(writable), expected)
    assert codes.counts(writable) is not codes.counts(writable)  # a writable array is counted each time
    group.setflags(write=False)
    first = codes.counts(group)
    assert np.array_equal(first, expected) and codes.counts(group) is first  # kept, matched by identity
    assert not first.flags.writeable
    other = np.sort(rng.choice(cells.size, 300, replace=False))
    other.setflags(write=False)
    assert np.array_equal(codes.counts(other), np.bincount(codes.codes[other], minlength=codes.cells.size))
