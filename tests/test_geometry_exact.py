"""Region membership is shapely's ``covers`` on any valid polygon, in audiences, heatmaps and promotions.

Edges are straight in longitude/latitude (RFC 7946); polygons may be wider than 180 degrees, touch the
antimeridian or hold a pole.
"""

from __future__ import annotations

import itertools

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPolygon, Polygon, box

import geotarget

_GRID = [(float(lat), float(lng)) for lat in range(-90, 91, 10) for lng in range(-180, 181, 10)
         if (lat, lng) != (0, 0)]  # (0, 0) is refused at ingest


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    n = 3000
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))  # uniform on the sphere
    lng = rng.uniform(-180, 180, n)
    lats = np.concatenate([lat, [p[0] for p in _GRID]])
    lngs = np.concatenate([lng, [p[1] for p in _GRID]])
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(lats.size)], "lat": lats, "lng": lngs})
    eng = geotarget.open(":memory:")
    eng.ingest_customers(frame)
    yield eng, frame
    eng.close()


_counter = itertools.count()


def _check(world, geom) -> None:
    eng, frame = world
    assert geom.is_valid
    truth = set(frame["customer_id"][shapely.covers(geom, shapely.points(frame["lng"], frame["lat"]))])
    layer = f"g{next(_counter)}"
    eng.ingest_regions(gpd.GeoDataFrame({"name": ["r"]}, geometry=[geom], crs=4326), layer=layer)
    got = set(eng.audience(region_layer=layer).to_pandas()["customer_id"])
    assert got == truth, (len(got - truth), len(truth - got))
    heat = eng.heatmap(region_layer=layer, k_min=1, allow_no_floor=True)
    assert int(heat.frame["customers"].sum() if len(heat.frame) else 0) == len(truth)
    camp = eng.create_campaign(f"c{layer}", region_layer=layer, regions=["r"])
    try:
        rows = frame.sample(min(len(frame), 400), random_state=len(truth))
        for cid, lat, lng in zip(rows["customer_id"], rows["lat"], rows["lng"]):
            hit = any(c.id == camp.id for c in eng.promotions_at(lat, lng))
            assert hit == (cid in truth), (cid, lat, lng)
        assert set(eng.campaign_audience(camp.id, min_size=0).to_pandas()["customer_id"]) == truth
    finally:
        eng.delete_campaign(camp.id)


@pytest.mark.parametrize("geom", [
    box(-180, -90, 180, 90),  # the world
    box(-180, 0, 180, 90),  # the northern hemisphere, holding the north pole
    box(-170, -90, 170, -60),  # around the south pole, 340 degrees wide
    box(-120, 10, 120, 50),  # 240 degrees wide
    MultiPolygon([box(170, -20, 180, 20), box(-180, -20, -170, 20)]),  # across the antimeridian, split
    Polygon([(-180, 60), (180, 60), (180, 90), (-180, 90)]),  # a polar cap
], ids=["world", "north", "south-cap", "wide", "antimeridian", "arctic"])
def test_wide_and_polar_polygons(world, geom):
    _check(world, geom)


_lng = st.integers(-18, 18).map(lambda v: v * 10.0)
_lat = st.integers(-9, 9).map(lambda v: v * 10.0)


@st.composite
def _polygons(draw):
    kind = draw(st.sampled_from(["box", "triangle", "antimeridian"]))
    if kind == "box":
        x0, x1 = sorted(draw(st.lists(_lng, min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(_lat, min_size=2, max_size=2, unique=True)))
        return box(x0, y0, x1, y1)
    if kind == "antimeridian":
        y0, y1 = sorted(draw(st.lists(_lat, min_size=2, max_size=2, unique=True)))
        east = draw(st.integers(1, 17)) * 10.0
        west = draw(st.integers(1, 17)) * 10.0
        return MultiPolygon([box(180 - east, y0, 180, y1), box(-180, y0, -180 + west, y1)])
    pts = draw(st.lists(st.tuples(_lng, _lat), min_size=3, max_size=3, unique=True))
    poly = Polygon(pts)
    if not poly.is_valid or poly.area == 0:
        return box(-10, -10, 10, 10)
    return poly


@settings(max_examples=25, deadline=None)
@given(geom=_polygons())
def test_any_polygon_matches_shapely_covers(world, geom):
    _check(world, geom)


def test_small_city_polygon_uses_cells_and_stays_exact(world):
    eng, frame = world
    rng = np.random.default_rng(3)
    extra = pd.DataFrame({"customer_id": [f"n{i}" for i in range(500)], "lat": rng.uniform(40.6, 40.9, 500),
                          "lng": rng.uniform(-74.1, -73.8, 500)})
    eng.ingest_customers(extra)
    world_frame = pd.concat([frame, extra], ignore_index=True)
    _check((eng, world_frame), Polygon([(-74.0, 40.7), (-73.9, 40.7), (-73.95, 40.8)]))
