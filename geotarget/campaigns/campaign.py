"""Campaigns (promotions) as objects stored in the database.

A campaign is a geofence, an optional segment filter, a time window, an
optional holdout fraction and free-form metadata (offer text, discount). The
geofence is one of:

- ``{"kind": "radius", "stores": [...], "radius_m": 3218.688}``: within the
  WGS84 geodesic radius of any of the stores;
- ``{"kind": "points", "points": [[lat, lng], ...], "radius_m": 500.0}``:
  within the WGS84 geodesic radius of any of the points (a campaign centred
  on a place that is not a store);
- ``{"kind": "regions", "layer": "nyc_nta", "regions": [...]}``: inside any of
  the regions (region ids), boundary points counted inside;
- ``{"kind": "cells", "cells": ["882a100d17fffff", ...]}``: in one of the H3
  cells: a point is in a cell when ``h3.latlng_to_cell(lat, lng, res)`` at
  that cell's resolution is that cell, as h3-py and every H3 tool say.

The time window includes ``start`` and excludes ``end``; both are
timezone-aware (naive datetimes are refused) and either may be open. Status
is ``"active"`` or ``"paused"``; a paused campaign is never returned by
:meth:`geotarget.Engine.promotions_at`, but its audience can still be
exported. The holdout split is salted with the campaign id, so renaming a
campaign keeps its control group.

Examples
--------
>>> import geotarget, pandas as pd
>>> eng = geotarget.open(":memory:")
>>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [40.758], "lng": [-73.9855]}))
>>> c = eng.create_campaign("spring", stores=["S1"], radius="2mi", metadata={"offer": "10% off"})
>>> c.geofence["radius_m"], c.status
(3218.688, 'active')
>>> eng.pause_campaign("spring").status
'paused'
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from geotarget.campaigns.options import check_name, geofence_from_options, normalize_where, parse_when
from geotarget.errors import InvalidInputError, NotFoundError

__all__ = ["GEOFENCE_KEYS", "Campaign"]

#: Options of create/update that describe the geofence.
GEOFENCE_KEYS = ("stores", "points", "radius", "radius_m", "region_layer", "regions", "cells")

_UPDATABLE = ("name", *GEOFENCE_KEYS, "where", "start", "end", "holdout", "metadata", "status")
_STATUSES = ("active", "paused")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COLUMNS = ("id, name, geofence, where_filters, epoch_us(start_at), epoch_us(end_at), holdout, metadata, status, "
            "epoch_us(created_at), epoch_us(updated_at)")


@dataclass(frozen=True)
class Campaign:
    """One promotion: a geofence, a segment, a time window, a holdout and metadata.

    Instances are immutable snapshots of the stored row; change a campaign
    with :meth:`geotarget.Engine.update_campaign`. Treat ``geofence``,
    ``where`` and ``metadata`` as read-only: the engine shares them between
    answers.

    Examples
    --------
    >>> from datetime import datetime, timezone
    >>> t = datetime(2026, 5, 1, tzinfo=timezone.utc)
    >>> c = Campaign("cmp_1", "spring", {"kind": "cells", "cells": ["882a100d17fffff"]}, [], t, None, None, {},
    ...              "active", t, t)
    >>> c.to_dict()["start"], c.is_live(t), c.is_live(t.replace(year=2025))
    ('2026-05-01T00:00:00+00:00', True, False)
    """

    id: str
    name: str
    geofence: dict
    where: list
    start: datetime | None
    end: datetime | None
    holdout: float | None
    metadata: dict
    status: str
    created_at: datetime
    updated_at: datetime
    _window: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lo = -math.inf if self.start is None else self.start.timestamp()
        hi = math.inf if self.end is None else self.end.timestamp()
        object.__setattr__(self, "_window", (lo, hi))

    def is_live(self, at: datetime) -> bool:
        """Active (not paused) and ``start <= at < end``; ``at`` must be timezone-aware."""
        t = parse_when(at, "at").timestamp()
        return self.status == "active" and self._window[0] <= t < self._window[1]

    def to_dict(self) -> dict:
        """A JSON-able dict; datetimes as ISO 8601 strings with their offset."""
        def iso(value):
            return None if value is None else value.isoformat()

        return {
            "id": self.id, "name": self.name, "geofence": self.geofence, "where": self.where,
            "start": iso(self.start), "end": iso(self.end), "holdout": self.holdout, "metadata": self.metadata,
            "status": self.status, "created_at": iso(self.created_at), "updated_at": iso(self.updated_at),
        }


# -- reading -------------------------------------------------------------------
def _when_from_us(us) -> datetime | None:
    return None if us is None else _EPOCH + timedelta(microseconds=int(us))


def _from_row(row) -> Campaign:
    return Campaign(
        id=row[0], name=row[1], geofence=json.loads(row[2]), where=json.loads(row[3]),
        start=_when_from_us(row[4]), end=_when_from_us(row[5]), holdout=row[6], metadata=json.loads(row[7]),
        status=row[8], created_at=_when_from_us(row[9]), updated_at=_when_from_us(row[10]),
    )


def has_table(con) -> bool:
    """Whether the database has a campaigns table (an older file opened read-only may not)."""
    return bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'campaigns'").fetchall()[0][0])


def load_campaigns(con, *, status: str | None = None, reuse: dict | None = None) -> list[Campaign]:
    """Every stored campaign, sorted by name (optionally only those with ``status``).

    ``reuse`` maps ``(id, updated_at)`` to campaigns already read: an unchanged
    row is not parsed again.
    """
    if status is not None and status not in _STATUSES:
        raise InvalidInputError(f"status must be 'active', 'paused' or None, got {status!r}")
    if not has_table(con):
        return []
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM campaigns WHERE ($s IS NULL OR status = $s) ORDER BY name", {"s": status}
    ).fetchall()
    if not reuse:
        return [_from_row(r) for r in rows]
    return [reuse.get((r[0], _when_from_us(r[10]))) or _from_row(r) for r in rows]


def find_campaign(con, name_or_id) -> Campaign:
    """The campaign with this id, or else this name; :class:`NotFoundError` when there is none."""
    if not isinstance(name_or_id, str) or not name_or_id.strip():
        raise InvalidInputError(f"a campaign is named by its name or id (a non-empty string), got {name_or_id!r}")
    rows = con.execute(
        f"SELECT {_COLUMNS} FROM campaigns WHERE id = $k OR name = $k ORDER BY id = $k DESC",
        {"k": name_or_id},
    ).fetchall() if has_table(con) else []
    if not rows:
        names = [r[0] for r in con.execute("SELECT name FROM campaigns ORDER BY name LIMIT 8").fetchall()] \
            if has_table(con) else []
        hint = f"; campaigns include: {', '.join(names)}" if names else "; there are no campaigns yet"
        raise NotFoundError(f"campaign {name_or_id!r} not found{hint}")
    return _from_row(rows[0])


# -- writing -------------------------------------------------------------------
def _check_holdout(value) -> float | None:
    if value is None:
        return None
    try:
        fraction = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"holdout must be a fraction in [0, 1), e.g. 0.1, got {value!r}") from None
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise InvalidInputError(f"holdout must be a fraction in [0, 1), e.g. 0.1, got {value!r}")
    return fraction or None


def _check_metadata(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"metadata must be a dict (e.g. {{'offer': '10% off'}}), got {type(value).__name__}")
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"metadata must be JSON-able (strings, numbers, lists, dicts): {exc}") from None


def _check_window(start, end) -> None:
    if start is not None and end is not None and end <= start:
        raise InvalidInputError(
            f"end ({end.isoformat()}) must be after start ({start.isoformat()}); fix the campaign's time window")


def _write(con, c: Campaign, *, insert: bool) -> None:
    params = {
        "id": c.id, "name": c.name, "g": json.dumps(c.geofence), "w": json.dumps(c.where), "s": c.start,
        "e": c.end, "h": c.holdout, "m": json.dumps(c.metadata), "st": c.status, "c": c.created_at,
        "u": c.updated_at,
    }
    if insert:
        con.execute("INSERT INTO campaigns VALUES ($id, $name, $g, $w, $s, $e, $h, $m, $st, $c, $u)", params)
    else:
        con.execute(
            "UPDATE campaigns SET name = $name, geofence = $g, where_filters = $w, start_at = $s, end_at = $e, "
            "holdout = $h, metadata = $m, status = $st, created_at = $c, updated_at = $u WHERE id = $id", params)


def _check_unique(con, name: str, own_id: str | None) -> None:
    taken = con.execute(
        "SELECT id FROM campaigns WHERE (name = $n OR id = $n) AND id IS DISTINCT FROM $own",
        {"n": name, "own": own_id},
    ).fetchall()
    if taken:
        raise InvalidInputError(f"name: a campaign named {name!r} already exists; choose another name")


def _now() -> datetime:
    return datetime.now(UTC)


def _new_campaign(engine, name, *, where=None, start=None, end=None, holdout=None, metadata=None,
                  customer_columns=None, known=None, **geofence) -> Campaign:
    name = check_name(name)
    fence = geofence_from_options(engine, geofence, known)
    start, end = parse_when(start, "start"), parse_when(end, "end")
    _check_window(start, end)
    now = _now()
    return Campaign(
        id=f"cmp_{uuid.uuid4().hex[:12]}", name=name, geofence=fence,
        where=normalize_where(engine, where, customer_columns), start=start, end=end,
        holdout=_check_holdout(holdout), metadata=_check_metadata(metadata), status="active", created_at=now,
        updated_at=now,
    )


def create_campaign(engine, name, **options) -> Campaign:
    """Validate and store a new campaign (see :meth:`geotarget.Engine.create_campaign`)."""
    return create_campaigns(engine, [{"name": name, **options}])[0]


def create_campaigns(engine, specs) -> list[Campaign]:
    """Validate every campaign first, then store them all in one transaction (all or none)."""
    columns = engine.store.columns("customers")
    known: dict = {}  # stores and regions, read once for the batch
    made = []
    for k, spec in enumerate(specs):
        if not isinstance(spec, dict) or "name" not in spec:
            raise InvalidInputError(f"campaign {k}: give a dict with at least 'name' and a geofence")
        made.append(_new_campaign(engine, customer_columns=columns, known=known, **spec))
    names = [c.name for c in made]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInputError(f"name: {twice[0]!r} is given more than once; campaign names are unique")
    with engine.store.transaction(customers_unchanged=True) as con:  # campaigns only: the customer index stays
        if len(made) == 1:
            _check_unique(con, made[0].name, None)
            _write(con, made[0], insert=True)
        else:
            _insert_many(con, made)
    return made


def _insert_many(con, made: list[Campaign]) -> None:
    """Check the names and insert a batch with one statement each (thousands of campaigns in a second)."""
    import pyarrow as pa

    taken = con.execute("SELECT name FROM campaigns WHERE list_contains($n, name) OR list_contains($n, id) LIMIT 1",
                        {"n": [c.name for c in made]}).fetchall()
    if taken:
        raise InvalidInputError(f"name: a campaign named {taken[0][0]!r} already exists; choose another name")
    when = pa.timestamp("us", tz="UTC")
    table = pa.table({
        "id": [c.id for c in made], "name": [c.name for c in made],
        "geofence": [json.dumps(c.geofence) for c in made], "where_filters": [json.dumps(c.where) for c in made],
        "start_at": pa.array([c.start for c in made], when), "end_at": pa.array([c.end for c in made], when),
        "holdout": pa.array([c.holdout for c in made], pa.float64()),
        "metadata": [json.dumps(c.metadata) for c in made], "status": [c.status for c in made],
        "created_at": pa.array([c.created_at for c in made], when),
        "updated_at": pa.array([c.updated_at for c in made], when),
    })
    name = f"_new_campaigns_{uuid.uuid4().hex[:10]}"
    con.register(name, table)
    try:
        con.execute(f"INSERT INTO campaigns BY NAME SELECT * FROM {name}")
    finally:
        con.unregister(name)


def update_campaign(engine, name_or_id, changes: dict) -> Campaign:
    """Apply ``changes`` to a stored campaign (see :meth:`geotarget.Engine.update_campaign`)."""
    unknown = sorted(set(changes) - set(_UPDATABLE))
    if unknown:
        raise InvalidInputError(f"cannot update {', '.join(unknown)}; updatable fields: {', '.join(_UPDATABLE)}")
    with engine.store.transaction(customers_unchanged=True) as con:  # campaigns only: the customer index stays
        old = find_campaign(con, name_or_id)
        new = {}
        if "name" in changes:
            new["name"] = check_name(changes["name"])
            _check_unique(con, new["name"], old.id)
        fence_opts = {k: changes[k] for k in GEOFENCE_KEYS if k in changes}
        if fence_opts:
            new["geofence"] = geofence_from_options(engine, _merge_geofence(old.geofence, fence_opts))
        if "where" in changes:
            new["where"] = normalize_where(engine, changes["where"])
        for key in ("start", "end"):
            if key in changes:
                new[key] = parse_when(changes[key], key)
        if "holdout" in changes:
            new["holdout"] = _check_holdout(changes["holdout"])
        if "metadata" in changes:
            new["metadata"] = _check_metadata(changes["metadata"])
        if "status" in changes:
            if changes["status"] not in _STATUSES:
                raise InvalidInputError(f"status must be 'active' or 'paused', got {changes['status']!r}")
            new["status"] = changes["status"]
        updated = replace(old, **new, updated_at=_now())
        _check_window(updated.start, updated.end)
        _write(con, updated, insert=False)
    return updated


def _merge_geofence(old: dict, opts: dict) -> dict:
    """Geofence options for an update: a change of radius keeps the stores, of regions the layer."""
    kind = old["kind"]
    if kind == "radius" and set(opts) <= {"stores", "radius", "radius_m"}:
        merged = {"stores": old["stores"], **opts}
        if "radius" not in opts and "radius_m" not in opts:
            merged["radius_m"] = old["radius_m"]
        return merged
    if kind == "points" and set(opts) <= {"points", "radius", "radius_m"}:
        merged = {"points": old["points"], **opts}
        if "radius" not in opts and "radius_m" not in opts:
            merged["radius_m"] = old["radius_m"]
        return merged
    if kind == "regions" and set(opts) <= {"regions", "region_layer"}:
        return {"region_layer": old["layer"], **opts}
    return opts


def delete_campaign(engine, name_or_id) -> None:
    """Remove a stored campaign; :class:`NotFoundError` when there is none."""
    with engine.store.transaction(customers_unchanged=True) as con:  # campaigns only: the customer index stays
        c = find_campaign(con, name_or_id)
        con.execute("DELETE FROM campaigns WHERE id = $id", {"id": c.id})


# -- audiences -------------------------------------------------------------------
_AUDIENCE_OPTIONS = ("columns", "min_size", "exclude_within", "exclude_regions")


def campaign_audience(engine, c: Campaign, options: dict):
    """The campaign's audience now (see :meth:`geotarget.Engine.campaign_audience`)."""
    bad = sorted(set(options) - set(_AUDIENCE_OPTIONS))
    if bad:
        raise InvalidInputError(
            f"{', '.join(bad)}: set by the campaign itself; change it with update_campaign. "
            f"Audience options: {', '.join(_AUDIENCE_OPTIONS)}")
    common = dict(where=c.where or None, holdout=c.holdout, campaign=c.id, **options)
    fence = c.geofence
    if fence["kind"] == "radius":
        aud = engine.audience(stores=fence["stores"], radius_m=fence["radius_m"], **common)
    elif fence["kind"] == "points":
        aud = engine.audience(points=[tuple(p) for p in fence["points"]], radius_m=fence["radius_m"], **common)
    elif fence["kind"] == "regions":
        aud = engine.audience(region_layer=fence["layer"], regions=fence["regions"], **common)
    else:
        aud = engine.store.read_consistent(lambda: _cells_audience(engine, fence["cells"], **common))
    if c.holdout and hasattr(engine, "launch_campaign") and not engine.store.read_only:
        # the first export of a campaign with a holdout freezes its groups for the lift readout
        aud.on_export = lambda: engine.launch_campaign(c.id)
    return aud


def _cells_audience(engine, cells, *, where, holdout, campaign, columns=None, min_size=None, exclude_within=None,
                    exclude_regions=None):
    """Customers in explicit H3 cells (the cell containing each, by ``latlng_to_cell``), then the usual narrowing."""
    import numpy as np

    from geotarget.audience.audience import (
        Audience,
        _filter_positions,
        _in_polygons,
        _parse_region_ref,
        _parse_zone,
        _regions,
    )
    from geotarget.audience.privacy import holdout_groups
    from geotarget.audience.cellcodes import positions_in_cells
    from geotarget.geo.cells import str_to_cells
    from geotarget.geo.geodesy import within_radius

    index = engine._index_cache.get()
    positions = positions_in_cells(index, str_to_cells(cells))
    keep = np.ones(positions.size, dtype=bool)
    for zone in exclude_within or []:
        zlat, zlng, zr = _parse_zone(zone)
        keep &= ~within_radius(index.lat[positions], index.lng[positions], zlat, zlng, zr)
    for item in exclude_regions or []:
        layer, name = _parse_region_ref(item)
        keep &= ~_in_polygons(index, positions, _regions(engine, layer, [name]))
    if where:
        keep &= _filter_positions(engine, index, positions, where)
    positions = positions[keep]
    groups = holdout_groups(index.take_ids(positions).to_pylist(), holdout, campaign) if holdout else None
    return Audience(engine, index, positions, kind="cells", description=f"in {len(cells)} H3 cell(s)",
                    groups=groups, campaign=campaign, columns=columns, min_size=min_size)
