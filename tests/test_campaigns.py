"""Campaigns as stored objects: create, list, update, pause, delete, validation, schema migration."""

import json
from datetime import UTC, datetime, timedelta, timezone

import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import box

import geotarget
from geotarget.errors import InvalidFilterError, InvalidInputError, InvalidRadiusError, NotFoundError
from geotarget.store.database import SCHEMA_VERSION


@pytest.fixture
def shop(eng, tiny_customers):
    eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.758, 40.70], "lng": [-73.9855, -74.0]}))
    eng.ingest_customers(tiny_customers)
    eng.ingest_regions(gpd.GeoDataFrame({"name": ["Mid", "Down"]}, geometry=[box(-74.0, 40.74, -73.97, 40.77),
                                                                          box(-74.02, 40.70, -74.0, 40.72)],
                                        crs=4326), layer="hoods")
    return eng


def test_create_list_show_roundtrip(shop):
    start = datetime(2026, 5, 1, 9, tzinfo=timezone(timedelta(hours=-4)))
    c = shop.create_campaign("spring", stores="S1", radius="2mi", where={"tier": ["gold", "silver"]}, start=start,
                             end="2026-06-01T00:00:00Z", holdout=0.1, metadata={"offer": "10% off", "pct": 10})
    assert c.id.startswith("cmp_") and c.status == "active"
    assert c.geofence == {"kind": "radius", "stores": ["S1"], "radius_m": 3218.688}
    assert c.where == [["tier", "in", ["gold", "silver"]]]
    assert c.start == start and c.start.tzinfo == UTC
    assert shop.campaign("spring") == c == shop.campaign(c.id)
    assert shop.campaigns() == [c]
    assert json.loads(json.dumps(c.to_dict()))["start"] == "2026-05-01T13:00:00+00:00"
    r = shop.create_campaign("hoods", region_layer="hoods", regions=["mid"])
    assert r.geofence == {"kind": "regions", "layer": "hoods", "regions": ["1"]}  # names become region ids
    everything = shop.create_campaign("all hoods", region_layer="hoods")
    assert len(everything.geofence["regions"]) == 2
    assert [x.name for x in shop.campaigns()] == ["all hoods", "hoods", "spring"]


def test_update_pause_resume_delete(shop):
    c = shop.create_campaign("a", stores=["S1", "S2"], radius="1km")
    u = shop.update_campaign("a", radius="2km")
    assert u.geofence["stores"] == ["S1", "S2"] and u.geofence["radius_m"] == 2000.0
    assert u.updated_at >= c.updated_at and u.created_at == c.created_at
    u = shop.update_campaign(c.id, stores=["S2"])
    assert u.geofence == {"kind": "radius", "stores": ["S2"], "radius_m": 2000.0}
    u = shop.update_campaign("a", cells=["872a1072bffffff"], name="b", end=None, where=["spend>=100"])
    assert u.geofence["kind"] == "cells" and u.name == "b" and u.where == [["spend", ">=", 100]]
    assert shop.pause_campaign("b").status == "paused"
    assert [x.name for x in shop.campaigns(status="paused")] == ["b"] and shop.campaigns(status="active") == []
    assert shop.resume_campaign("b").status == "active"
    shop.delete_campaign("b")
    assert shop.campaigns() == []
    with pytest.raises(NotFoundError, match="no campaigns yet"):
        shop.delete_campaign("b")


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({}, InvalidInputError, "geofence"),
    ({"stores": ["S1"]}, InvalidInputError, "radius"),
    ({"stores": ["S1"], "radius": 3}, InvalidRadiusError, "no unit"),
    ({"stores": ["nope"], "radius": "1km"}, NotFoundError, "store 'nope'"),
    ({"stores": ["S1"], "radius": "1km", "cells": ["872a1072bffffff"]}, InvalidInputError, "exactly one"),
    ({"region_layer": "nope"}, NotFoundError, "layer 'nope'"),
    ({"region_layer": "hoods", "regions": ["Uptown"]}, NotFoundError, "Uptown"),
    ({"regions": ["Mid"]}, InvalidInputError, "region_layer"),
    ({"cells": ["zzz"]}, InvalidInputError, "cells: 'zzz'"),
    ({"cells": ["872a1072bffffff"], "where": ["shoe_size>3"]}, InvalidFilterError, "shoe_size"),
    ({"cells": ["872a1072bffffff"], "start": datetime(2026, 1, 1)}, InvalidInputError, "timezone-aware"),
    ({"cells": ["872a1072bffffff"], "start": "next tuesday"}, InvalidInputError, "start: cannot read"),
    ({"cells": ["872a1072bffffff"], "start": "2026-02-01T00:00Z", "end": "2026-01-01T00:00Z"},
     InvalidInputError, "must be after start"),
    ({"cells": ["872a1072bffffff"], "holdout": 1.5}, InvalidInputError, "holdout"),
    ({"cells": ["872a1072bffffff"], "metadata": {"x": object()}}, InvalidInputError, "JSON"),
    ({"cells": ["872a1072bffffff"], "metadata": ["x"]}, InvalidInputError, "metadata must be a dict"),
])
def test_validation_names_the_field(shop, kwargs, error, match):
    with pytest.raises(error, match=match):
        shop.create_campaign("x", **kwargs)
    assert shop.campaigns() == []


def test_names_are_unique_and_updates_are_checked(shop):
    shop.create_campaign("one", cells=["872a1072bffffff"])
    two = shop.create_campaign("two", cells=["872a1072bffffff"], start="2026-01-01T00:00Z")
    with pytest.raises(InvalidInputError, match="already exists"):
        shop.create_campaign("one", cells=["872a1072bffffff"])
    with pytest.raises(InvalidInputError, match="already exists"):
        shop.update_campaign("two", name="one")
    with pytest.raises(InvalidInputError, match="must be after start"):
        shop.update_campaign("two", end="2025-01-01T00:00Z")
    with pytest.raises(InvalidInputError, match="cannot update colour"):
        shop.update_campaign("two", colour="red")
    with pytest.raises(InvalidInputError, match="name"):
        shop.create_campaign("  ", cells=["872a1072bffffff"])
    with pytest.raises(NotFoundError, match="one, two"):
        shop.campaign("three")
    assert shop.campaign("two") == two


def test_campaign_audience_applies_every_rule(shop):
    shop.create_campaign("near", stores=["S1"], radius="10km", where=[("tier", "==", "gold")], holdout=0.5)
    aud = shop.campaign_audience("near", columns=["tier"])
    direct = shop.audience(stores=["S1"], radius="10km", where=[("tier", "==", "gold")], holdout=0.5,
                           campaign=shop.campaign("near").id)
    assert aud.to_pandas().equals(direct.to_pandas(columns=["tier"]))
    with pytest.raises(geotarget.AudienceTooSmallError):
        aud.to_csv("/dev/null")
    with pytest.raises(InvalidInputError, match="set by the campaign"):
        shop.campaign_audience("near", where=["tier=silver"])
    # c2's res-7 cell is 872a1072cffffff (h3.latlng_to_cell), though the parent of its res-15 cell is
    # 872a10728ffffff: the containing cell is the one that counts
    shop.create_campaign("cells", cells=["852a100ffffffff", "872a1072cffffff"], where=["spend<500"])
    assert sorted(shop.campaign_audience("cells").to_pandas()["customer_id"]) == ["c1", "c2", "c4"]
    shop.ingest_suppressions(["c4"])
    assert sorted(shop.campaign_audience("cells").to_pandas()["customer_id"]) == ["c1", "c2"]


def test_older_database_migrates(db_path, tiny_customers):
    with geotarget.open(db_path) as eng:
        eng.ingest_customers(tiny_customers)
        eng.store.con.execute("DROP TABLE campaigns")
        eng.store.con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with geotarget.open(db_path, read_only=True) as eng:  # read as it is
        assert eng.campaigns() == [] and eng.promotions_at(40.7, -74.0) == []
        with pytest.raises(NotFoundError):
            eng.campaign("x")
    with geotarget.open(db_path) as eng:  # read-write: gains the campaigns table
        assert eng.info()["schema_version"] == SCHEMA_VERSION
        eng.create_campaign("x", cells=["872a1072bffffff"])
    with geotarget.open(db_path, read_only=True) as eng:
        assert [c.name for c in eng.campaigns()] == ["x"]


def test_create_campaigns_is_all_or_none(shop):
    made = shop.create_campaigns([{"name": "a", "stores": ["S1"], "radius": "1mi"},
                                  {"name": "b", "cells": ["872a1072bffffff"], "where": ["tier=gold"]}])
    assert [c.name for c in made] == ["a", "b"] and shop.campaigns() == made
    for bad in ([{"name": "c", "cells": ["872a1072bffffff"]}, {"name": "d", "stores": ["nope"], "radius": "1mi"}],
                [{"name": "c", "cells": ["872a1072bffffff"]}, {"name": "c", "cells": ["872a1072bffffff"]}],
                [{"name": "c", "cells": ["872a1072bffffff"]}, {"name": "a", "cells": ["872a1072bffffff"]}],
                [{"cells": ["872a1072bffffff"]}]):
        with pytest.raises(geotarget.GeotargetError):
            shop.create_campaigns(bad)
        assert [c.name for c in shop.campaigns()] == ["a", "b"]
