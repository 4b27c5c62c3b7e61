"""Region labels on exports, a radius narrowed to regions, and a segment selected everywhere."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import box

import geotarget
from geotarget.errors import InvalidInputError
from geotarget.geo.geodesy import geodesic_distance_m


@pytest.fixture(scope="module")
def city():
    rng = np.random.default_rng(8)
    n = 2000
    eng = geotarget.open(":memory:")
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)], "lat": rng.uniform(40.70, 40.80, n),
                          "lng": rng.uniform(-74.00, -73.90, n), "tier": rng.choice(["gold", "silver"], n)})
    eng.ingest_customers(frame)
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.75], "lng": [-73.95]}))
    hoods = gpd.GeoDataFrame({"hood_id": ["W", "E", "X"], "name": ["West", "East", "Overlap"]},
                             geometry=[box(-74.0, 40.7, -73.95, 40.8), box(-73.95, 40.7, -73.9, 40.8),
                                       box(-73.97, 40.74, -73.93, 40.76)], crs=4326)
    eng.ingest_regions(hoods, layer="hoods", id_col="hood_id")
    yield eng, frame, hoods
    eng.close()


def _covered(frame, geom):
    return shapely.covers(geom, shapely.points(frame["lng"], frame["lat"]))


def test_region_audience_says_which_region_each_customer_is_in(city):
    eng, frame, hoods = city
    rows = eng.audience(region_layer="hoods", regions=["East", "West"]).to_pandas()
    by_id = frame.set_index("customer_id")
    for cid, rid, name in zip(rows["customer_id"], rows["region_id"], rows["region"]):
        lat, lng = by_id.loc[cid, ["lat", "lng"]]
        first = "E" if shapely.covers(hoods.geometry[1], shapely.Point(lng, lat)) else "W"
        assert (rid, name) == (first, {"E": "East", "W": "West"}[first])
    assert len(rows) == int((_covered(frame, hoods.geometry[0]) | _covered(frame, hoods.geometry[1])).sum())


def test_radius_and_region_combine(city):
    eng, frame, hoods = city
    aud = eng.audience(stores=["S1"], radius="1km", region_layer="hoods", regions=["Overlap"])
    dist = geodesic_distance_m(40.75, -73.95, frame["lat"].to_numpy(), frame["lng"].to_numpy())
    truth = set(frame["customer_id"][(dist <= 1000) & _covered(frame, hoods.geometry[2])])
    rows = aud.to_pandas()
    assert set(rows["customer_id"]) == truth and len(truth) > 0
    assert set(rows["region"]) == {"Overlap"} and "store_id" in rows
    assert aud.counts()["within"].tolist() == [len(truth)]
    assert "and in 1 region(s)" in aud.description


def test_segment_alone_selects_everywhere(city):
    eng, frame, _ = city
    aud = eng.audience(where=["tier = gold"])
    assert set(aud.to_pandas()["customer_id"]) == set(frame["customer_id"][frame["tier"] == "gold"])
    with pytest.raises(InvalidInputError, match="exactly one"):
        eng.audience()
    with pytest.raises(InvalidInputError, match="region_layer"):
        eng.audience(stores=["S1"], radius="1km", regions=["East"])
