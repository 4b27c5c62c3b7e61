"""The atoms of the heatmap suppression, carried across writes, equal the atoms computed from scratch.

The oracle is the definition of :mod:`geotarget.maps.suppression`, computed
one customer at a time with h3-py and shapely: the standard cell and the
hierarchy parent at every policy resolution, and the region per layer.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import h3
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st

import geotarget
from geotarget.audience.cellcodes import known_cell_codes
from geotarget.geo.regions import assign_regions
from geotarget.maps.atoms import atom_keys_reused, forget_atom_keys
from geotarget.maps.suppression import atoms, publishable_positions

CENTRE = (40.75, -73.98)


def _customers(rng, n, start=0) -> pd.DataFrame:
    lat = CENTRE[0] + rng.normal(0, 0.01, n)
    lng = CENTRE[1] + rng.normal(0, 0.013, n)
    lat[: n // 20], lng[: n // 20] = lat[0], lng[0]  # customers at one address share a fine cell
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(start, start + n)], "lat": lat, "lng": lng,
                         "spend": np.where(rng.random(n) < 0.1, np.nan, rng.gamma(2.0, 100.0, n))})


def _grid(rows: int, cols: int, shift: float = 0.0) -> gpd.GeoDataFrame:
    boxes, ids = [], []
    for i, j in itertools.product(range(rows), range(cols)):
        y0, x0 = CENTRE[0] - 0.03 + 0.06 * i / rows + shift, CENTRE[1] - 0.04 + 0.08 * j / cols
        boxes.append(shapely.box(x0, y0, x0 + 0.08 / cols, y0 + 0.06 / rows))
        ids.append(f"r{i}{j}")
    return gpd.GeoDataFrame({"rid": ids, "name": ids}, geometry=boxes, crs="EPSG:4326")


def _oracle(eng, index, heatmap_res) -> np.ndarray:
    """Atom codes by the definition, one customer at a time."""
    layers = {layer: eng.regions(layer) for layer in eng.layers()}
    keys = []
    for lat, lng, cell in zip(index.lat, index.lng, index.cells):
        key = [h3.latlng_to_cell(lat, lng, r) for r in heatmap_res]
        key += [h3.cell_to_parent(h3.int_to_str(int(cell)), r) for r in heatmap_res]
        for regions in layers.values():
            hits = [k for k, g in enumerate(regions.geometry) if shapely.intersects(g, shapely.Point(lng, lat))]
            key.append(hits[0] if hits else -1)  # the test layers do not overlap: at most one region holds it
        keys.append(tuple(key))
    return pd.factorize(pd.Series(keys))[0]


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = len(set(zip(a.tolist(), b.tolist())))
    return a.size == b.size and pairs == len(set(a.tolist())) == len(set(b.tolist()))


def _check(eng, heatmap_res):
    index = eng._index_cache.get()
    carried = atoms(eng, index, heatmap_res)
    assert _same_partition(carried, _oracle(eng, index, heatmap_res))
    for res in heatmap_res:  # the standard cells handed to the heatmaps are h3-py's
        codes = known_cell_codes(index, res)
        assert codes is not None
        got = codes.cells_at(np.arange(len(index)))
        assert [h3.int_to_str(int(c)) for c in got] == [h3.latlng_to_cell(a, b, res)
                                                        for a, b in zip(index.lat, index.lng)]
    forget_atom_keys(eng)
    assert np.array_equal(atoms(eng, index, heatmap_res), carried)  # from scratch: the same codes
    return carried


@pytest.fixture
def town():
    rng = np.random.default_rng(3)
    eng = geotarget.open(":memory:")
    eng.ingest_customers(_customers(rng, 1_500))
    eng.ingest_regions(_grid(3, 3), layer="grid", id_col="rid")
    eng.ingest_regions(_grid(2, 5, shift=0.004), layer="bands", id_col="rid")
    eng.set_policy(heatmap_res="7,8,9")
    yield eng, rng
    eng.close()


def test_atoms_after_writes_equal_atoms_from_scratch(town):
    eng, rng = town
    res = eng.policy().heatmap_res
    index = eng._index_cache.get()
    atoms(eng, index, res)  # the keys every later snapshot carries from
    # moved, new, opted-out and suppressed customers
    moved = eng.store.frame("SELECT customer_id, lat, lng FROM customers ORDER BY customer_id LIMIT 60")
    moved = moved.assign(lat=moved["lat"] + 0.002, lng=moved["lng"] - 0.001)
    eng.ingest_customers(pd.concat([moved, _customers(rng, 40, start=10_000)], ignore_index=True))
    eng.ingest_customers(pd.DataFrame({"customer_id": ["c100", "c101"], "lat": [40.75, 40.75],
                                       "lng": [-73.98, -73.98], "opted_out": [True, True]}))
    eng.ingest_suppressions(["c200"])
    index = eng._index_cache.get()
    atoms(eng, index, res)
    reused = atom_keys_reused(eng)
    assert len(index) - 100 <= reused < len(index)  # most keys carried, the moved and new ones computed
    _check(eng, res)


def test_atoms_after_a_layer_change_and_a_policy_change(town):
    eng, _ = town
    atoms(eng, eng._index_cache.get(), eng.policy().heatmap_res)
    eng.ingest_regions(_grid(4, 2, shift=-0.003), layer="grid", id_col="rid")  # the layer replaced
    _check(eng, eng.policy().heatmap_res)
    atoms(eng, eng._index_cache.get(), eng.policy().heatmap_res)
    eng.set_policy(heatmap_res="6,8")  # a resolution not known before
    _check(eng, eng.policy().heatmap_res)


def test_published_sums_after_a_write_match_the_plain_aggregation_of_the_kept_customers(town):
    """The value path on the snapshot gives what aggregating the kept customers in DuckDB gives."""
    eng, rng = town
    guard = eng.disclosure()
    guard.heatmap(8, "sum:spend")
    eng.ingest_customers(_customers(rng, 30, start=20_000))
    index, kept, _ = publishable_positions(eng, eng.policy(), value_column="spend")
    truth = eng.store.frame("SELECT customer_id, lat, lng, spend FROM customers")
    truth = truth[truth["customer_id"].isin(set(index.take_ids(kept).to_pylist()))]
    truth["cell"] = [h3.latlng_to_cell(a, b, 8) for a, b in zip(truth["lat"], truth["lng"])]
    for metric in ("sum", "mean", "median"):
        published = guard.heatmap(8, f"{metric}:spend").cells.set_index("h3")
        grouped = truth.groupby("cell")
        expect = pd.DataFrame({"customers": grouped.size(), "n": grouped["spend"].count(),
                               "value": grouped["spend"].agg(metric)})
        expect = expect[(expect["customers"] >= 10) & (expect["n"] >= 10)]
        assert sorted(published.index) == sorted(expect.index)
        assert np.allclose(published.loc[expect.index, "value"], expect["value"], rtol=1e-9)
        assert (published.loc[expect.index, "customers"] == expect["customers"]).all()


# -- the region a point counts in ------------------------------------------------------------------------
def _strtree_first(polys, lat, lng) -> np.ndarray:
    """The rule region heatmaps used: the first polygon shapely's STRtree reports for each point."""
    out = np.full(len(lat), -1)
    pi, ri = shapely.STRtree(polys).query(shapely.points(lng, lat), predicate="intersects")
    first_pi, first = np.unique(pi, return_index=True)
    out[first_pi] = ri[first]
    return out


_coord = st.integers(0, 20).map(lambda v: v / 4)  # a coarse lattice: points fall on edges and corners


@given(boxes=st.lists(st.tuples(_coord, _coord, _coord, _coord), min_size=1, max_size=8),
       points=st.lists(st.tuples(_coord, _coord), min_size=1, max_size=60))
def test_assign_regions_is_the_strtree_rule(boxes, points):
    polys = [shapely.box(min(a, c), min(b, d), max(a, c) + 0.25, max(b, d) + 0.25) for a, b, c, d in boxes]
    lng, lat = np.array(points, dtype=float).T
    assert assign_regions(polys, lat, lng).tolist() == _strtree_first(polys, lat, lng).tolist()


def test_assign_regions_over_real_shaped_polygons():
    from geotarget.sample import sample_customers, sample_neighborhoods

    hoods = np.asarray(sample_neighborhoods(40, seed=5).geometry, dtype=object)
    pts = sample_customers(20_000, seed=5)
    lat, lng = pts["lat"].to_numpy(), pts["lng"].to_numpy()
    got = assign_regions(hoods, lat, lng)
    assert (got >= 0).mean() > 0.5
    assert np.array_equal(got, _strtree_first(hoods, lat, lng))


def test_erasure_drops_the_kept_keys(town):
    """The keys hold customers' coordinates: after an erasure nothing is carried from before it."""
    eng, _ = town
    atoms(eng, eng._index_cache.get(), eng.policy().heatmap_res)
    eng.ingest_suppressions(["c7"])
    atoms(eng, eng._index_cache.get(), eng.policy().heatmap_res)
    assert atom_keys_reused(eng) > 0
    eng.erase(ids=["c8"])
    index = eng._index_cache.get()
    codes = atoms(eng, index, eng.policy().heatmap_res)
    assert atom_keys_reused(eng) == 0 and "c8" not in set(index.ids.to_pylist())
    assert _same_partition(codes, _oracle(eng, index, eng.policy().heatmap_res))


def test_a_layer_write_assigns_the_kept_customers_so_the_next_heatmap_does_not(town, monkeypatch):
    import geotarget.maps.atoms as atoms_module

    eng, _ = town
    res = eng.policy().heatmap_res
    atoms(eng, eng._index_cache.get(), res)  # keys kept, as in a service that published a heatmap
    eng.ingest_regions(_grid(3, 4, shift=0.002), layer="grid", id_col="rid")  # the write assigns everyone

    def no_second_assignment(*args, **kwargs):
        raise AssertionError("the layer's regions were assigned again after its write")

    with monkeypatch.context() as m:
        m.setattr(atoms_module, "assign_regions", no_second_assignment)
        index = eng._index_cache.get()
        carried = atoms(eng, index, res)
    assert _same_partition(carried, _oracle(eng, index, res))
