"""Validation of campaign fields: name, geofence, segment, time window.

Every error names the field and says what to do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from geotarget.audience.filters import compile_filters, parse_filters, typed_conditions
from geotarget.errors import InvalidFilterError, InvalidInputError, NotFoundError
from geotarget.geo.cells import cells_to_str, str_to_cells
from geotarget.units import parse_radius

__all__ = ["check_name", "geofence_from_options", "MAX_GEOFENCE_CELLS", "normalize_where", "parse_when"]

#: Most cells an explicit-cells geofence may hold.
MAX_GEOFENCE_CELLS = 100_000


def check_name(name) -> str:
    """A campaign name: a non-empty string of at most 200 characters, trimmed."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"name: a campaign needs a non-empty name, got {name!r}")
    name = name.strip()
    if len(name) > 200:
        raise InvalidInputError(f"name: at most 200 characters, got {len(name)}")
    return name


def parse_when(value, field: str) -> datetime | None:
    """A timezone-aware datetime (in UTC) from a datetime or ISO 8601 text; None stays None.

    Examples
    --------
    >>> parse_when("2026-05-01T09:00:00-04:00", "start").isoformat()
    '2026-05-01T13:00:00+00:00'
    >>> parse_when("2026-05-01T09:00:00", "start")
    Traceback (most recent call last):
    ...
    geotarget.errors.InvalidInputError: start must be timezone-aware, got naive 2026-05-01T09:00:00; add an offset, e.g. 2026-05-01T09:00:00+00:00
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise InvalidInputError(
                f"{field}: cannot read {text!r} as a date and time; use ISO 8601 with an offset, "
                "e.g. 2026-05-01T09:00:00-04:00") from None
    elif hasattr(value, "to_pydatetime"):  # pandas Timestamp
        value = value.to_pydatetime()
    if not isinstance(value, datetime):
        raise InvalidInputError(f"{field} must be a timezone-aware datetime or ISO 8601 text, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInputError(
            f"{field} must be timezone-aware, got naive {value.isoformat()}; add an offset, "
            f"e.g. {value.isoformat()}+00:00")
    return value.astimezone(UTC)


def _json_value(value, what: str):
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalars
    if isinstance(value, (tuple, list)):
        return [_json_value(v, what) for v in value]
    if value is None or isinstance(value, (str, bool, int, float)):
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise InvalidFilterError(f"where: {what} has a value that is not finite: {value!r}") from None
        return value
    raise InvalidFilterError(f"where: {what} has a value of type {type(value).__name__}; use text, numbers or booleans")


def normalize_where(engine, where, columns=None) -> list:
    """Filters in any accepted form as JSON-able ``[column, op, value]`` lists, checked against the customers."""
    conds = parse_filters(where)
    if not conds:
        return []
    # unknown columns raise, naming the known ones; values are checked against the column types
    types = engine.store.columns("customers") if columns is None else columns
    compile_filters(conds, types)
    if isinstance(types, dict):
        conds = typed_conditions(conds, types)
    out = []
    for c in conds:
        item = [c.column, c.op] if c.op in ("is null", "is not null") else [c.column, c.op, _json_value(c.value, str(c))]
        out.append(item)
    return out


def _all_stores(engine, known: dict) -> list[str]:
    if "stores" not in known:
        known["stores"] = [r[0] for r in engine.store.con.execute(
            "SELECT store_id FROM stores ORDER BY store_id").fetchall()]
    return known["stores"]


def _store_ids(engine, stores, known: dict) -> list[str]:
    everything = _all_stores(engine, known)
    if isinstance(stores, str) and stores.lower() == "all":
        if not everything:
            raise NotFoundError("stores: there are no stores yet; ingest some with `geotarget ingest stores FILE`")
        return list(everything)
    wanted = [stores] if isinstance(stores, str) else list(stores or [])
    if not wanted:
        raise InvalidInputError("stores: name at least one store id, or 'all'")
    out = sorted({str(s) for s in wanted})
    if "store_set" not in known:
        known["store_set"] = frozenset(everything)
    missing = [s for s in out if s not in known["store_set"]]
    if missing:
        raise NotFoundError(f"stores: store {missing[0]!r} not found; known stores include: "
                            f"{', '.join(everything[:8]) or 'none yet'}")
    return out


def _region_ids(engine, layer, regions, known: dict) -> list[str]:
    if not isinstance(layer, str) or not layer.strip():
        raise InvalidInputError(f"region_layer: give the layer name, e.g. 'nyc_nta', got {layer!r}")
    key = ("layer", layer)
    if key not in known:
        known[key] = engine.store.con.execute(
            "SELECT region_id, name FROM regions WHERE layer = $l ORDER BY region_id", {"l": layer}).fetchall()
    rows = known[key]
    if not rows:
        layers = ", ".join(engine.layers()) or "none yet"
        raise NotFoundError(f"region_layer: layer {layer!r} not found; layers: {layers}")
    if regions is None:
        return [str(r[0]) for r in rows]
    by_id = {str(r[0]).lower(): str(r[0]) for r in rows}
    by_name = {str(r[1]).lower(): str(r[0]) for r in rows if r[1] is not None}
    wanted = [regions] if isinstance(regions, str) else list(regions)
    if not wanted:
        raise InvalidInputError("regions: name at least one region, or leave it out for the whole layer")
    out = set()
    for nm in wanted:
        rid = by_id.get(str(nm).lower(), by_name.get(str(nm).lower()))
        if rid is None:
            sample = ", ".join(sorted(str(r[1] or r[0]) for r in rows)[:8])
            raise NotFoundError(f"regions: region {nm!r} not found in layer {layer!r}; e.g. {sample}")
        out.add(rid)
    return sorted(out)


#: The most centre points a point geofence may list.
MAX_GEOFENCE_POINTS = 10_000


def _points_geofence(opts: dict) -> dict:
    """``{"kind": "points", "points": [[lat, lng], ...], "radius_m": m}`` from ``points=`` and a radius."""
    from geotarget.audience.membership import _check_latlng

    extra = sorted(set(opts) - {"points", "radius", "radius_m"})
    if extra:
        raise InvalidInputError(f"geofence: points= takes a radius, not {', '.join(extra)}")
    if "radius" not in opts and "radius_m" not in opts:
        raise InvalidInputError("radius: a point geofence needs radius= with a unit, e.g. '500m'")
    raw = opts["points"]
    if isinstance(raw, (tuple, list)) and len(raw) == 2 and all(isinstance(v, (int, float)) for v in raw):
        raw = [raw]  # one (lat, lng)
    points = []
    for item in list(raw):
        if isinstance(item, dict):
            item = (item.get("lat"), item.get("lng"))
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise InvalidInputError(f"points: each point is (lat, lng), got {item!r}")
        lat, lng = _check_latlng(item[0], item[1], "campaign point")
        points.append([lat, lng])
    if not points:
        raise InvalidInputError("points: give at least one (lat, lng)")
    if len(points) > MAX_GEOFENCE_POINTS:
        raise InvalidInputError(f"points: at most {MAX_GEOFENCE_POINTS:,} points, got {len(points):,}")
    metres = parse_radius(opts.get("radius"), radius_m=opts.get("radius_m"))
    return {"kind": "points", "points": points, "radius_m": metres}


def geofence_from_options(engine, opts: dict, known: dict | None = None) -> dict:
    """The geofence dict from ``stores``/``radius``/``radius_m``, ``points`` with a radius,
    ``region_layer``/``regions`` or ``cells``.

    ``known`` caches the store ids and regions read, across the campaigns of one batch.
    """
    known = {} if known is None else known
    opts = {k: v for k, v in opts.items() if v is not None}
    if "points" in opts:
        return _points_geofence(opts)
    radius_kind = bool({"stores", "radius", "radius_m"} & set(opts))
    region_kind = bool({"region_layer", "regions"} & set(opts))
    cells_kind = "cells" in opts
    if radius_kind + region_kind + cells_kind != 1:
        raise InvalidInputError(
            "geofence: give exactly one of stores= with radius= (e.g. '2mi'), region_layer= with regions=, "
            "or cells= (H3 cells)")
    if radius_kind:
        if "stores" not in opts:
            raise InvalidInputError("stores: a radius geofence needs stores= (ids, or 'all')")
        if "radius" not in opts and "radius_m" not in opts:
            raise InvalidInputError("radius: a store geofence needs radius= with a unit, e.g. '2mi'")
        metres = parse_radius(opts.get("radius"), radius_m=opts.get("radius_m"))
        return {"kind": "radius", "stores": _store_ids(engine, opts["stores"], known), "radius_m": metres}
    if region_kind:
        if "region_layer" not in opts:
            raise InvalidInputError("region_layer: regions= needs the layer they belong to, region_layer=")
        layer = opts["region_layer"]
        return {"kind": "regions", "layer": layer, "regions": _region_ids(engine, layer, opts.get("regions"), known)}
    cells = opts["cells"]
    cells = [cells] if isinstance(cells, (str, int)) else list(cells)
    if not cells:
        raise InvalidInputError("cells: give at least one H3 cell, e.g. '882a100d17fffff'")
    if len(cells) > MAX_GEOFENCE_CELLS:
        raise InvalidInputError(f"cells: at most {MAX_GEOFENCE_CELLS:,} cells, got {len(cells):,}; use coarser cells")
    try:
        parsed = str_to_cells(cells)
    except InvalidInputError as exc:
        raise InvalidInputError(f"cells: {exc}") from None
    return {"kind": "cells", "cells": sorted(set(cells_to_str(parsed)))}
