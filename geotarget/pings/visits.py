"""Visits and visitors from pings: the kernels both engines run.

The three steps are plain functions over Arrow/pandas data so the embedded
engine and Spark (:mod:`geotarget.spark`) run the very same code:

1. :func:`match_pings`: which pings are at which place. Candidates come from
   the fine-cell covering of each place, then the exact test of customer
   audiences (:func:`geotarget.audience.membership._radius_members`: WGS84 geodesic
   within the radius; polygons with the boundary inside). Distances of the
   matched pings are the WGS84 geodesic (pyproj). Pings inside a sensitive
   polygon, outside the time window, hours or weekdays, or of an opted-out
   device are dropped. Each ping is decided on its own, so any split of the
   pings into batches gives the same matches.
2. :func:`visits_from_matches`: a visit is a run of one device's pings at one
   place with no gap over ``max_gap_minutes``; its dwell is last ping minus
   first ping.
3. :func:`visitors_from_matches`: devices with at least ``min_days`` distinct
   local days holding a visit of at least ``min_dwell_minutes``. Each device
   is decided from its own pings only, so Spark can group by device.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..audience.index import CustomerIndex
from ..audience.membership import _in_polygons, _radius_members, _region_positions
from ..errors import InvalidInputError
from ..geo.geodesy import geodesic_distance_m
from .consent import device_hash
from .places import Places

__all__ = ["VisitRule", "match_pings", "parse_hours", "visitors_from_matches", "visits_from_matches"]

MATCH_SCHEMA = pa.schema([("device_id", pa.string()), ("place_id", pa.string()), ("ts_us", pa.int64()),
                          ("distance_m", pa.float64())])
VISIT_COLUMNS = ["device_id", "place_id", "start", "end", "dwell_minutes", "pings", "distance_m"]
VISITOR_COLUMNS = ["device_id", "visits", "days", "dwell_minutes", "first_seen", "last_seen", "places"]

_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def _instant_us(value, what: str) -> int:
    if isinstance(value, str):
        try:
            value = pd.Timestamp(value)
        except ValueError:
            raise InvalidInputError(f"{what} {value!r} is not a date-time; use ISO 8601 with an offset") from None
    if isinstance(value, datetime):
        value = pd.Timestamp(value)
    if not isinstance(value, pd.Timestamp):
        raise InvalidInputError(f"{what} must be a timezone-aware date-time, got {value!r}")
    if value.tzinfo is None:
        raise InvalidInputError(f"{what} {value} has no timezone; add an offset such as Z or -05:00")
    return int(value.tz_convert("UTC").value // 1000)


@dataclass(frozen=True)
class VisitRule:
    """When a device counts as a visitor (plain data, shipped to Spark workers as it is)."""

    start_us: int | None = None
    end_us: int | None = None
    min_dwell_minutes: float = 0.0
    min_days: int = 1
    max_gap_minutes: float = 30.0
    hours: tuple[int, ...] | None = None
    days_of_week: tuple[int, ...] | None = None
    tz: str = "UTC"
    optouts: frozenset = frozenset()

    @classmethod
    def make(cls, *, start=None, end=None, min_dwell_minutes=0.0, min_days=1, max_gap_minutes=30.0, hours=None,
             days_of_week=None, tz="UTC", optouts=frozenset()) -> VisitRule:
        """Validate user options into a rule."""
        start_us = None if start is None else _instant_us(start, "start")
        end_us = None if end is None else _instant_us(end, "end")
        if start_us is not None and end_us is not None and end_us <= start_us:
            raise InvalidInputError(f"end {end} must be after start {start}")
        for name, value, low in (("min_dwell_minutes", min_dwell_minutes, 0), ("max_gap_minutes", max_gap_minutes, 0)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= low:
                raise InvalidInputError(f"{name} must be a number >= {low}, got {value!r}")
        if not isinstance(min_days, (int, np.integer)) or isinstance(min_days, bool) or min_days < 1:
            raise InvalidInputError(f"min_days must be a whole number >= 1, got {min_days!r}")
        if hours is not None:
            hours = tuple(sorted({int(h) for h in hours}))
            if not hours or hours[0] < 0 or hours[-1] > 23:
                raise InvalidInputError(f"hours must be hours of the day in [0, 23], got {hours!r}")
        if days_of_week is not None:
            days = []
            for d in days_of_week:
                key = str(d).strip().lower()[:3]
                if key in _DAYS:
                    days.append(_DAYS[key])
                elif key.isdigit() and int(key) <= 6:
                    days.append(int(key))
                else:
                    raise InvalidInputError(f"day of week {d!r} not understood; use mon..sun or 0 (Monday)..6")
            days_of_week = tuple(sorted(set(days)))
        try:
            if not isinstance(tz, str) or not tz.strip():
                raise ValueError(tz)
            pd.Timestamp(0, tz=tz)
        except (KeyError, ValueError, TypeError, AttributeError, IndexError):  # unknown zones raise KeyError
            raise InvalidInputError(f"timezone {tz!r} not known; use an IANA name such as 'America/New_York'") from None
        return cls(start_us, end_us, float(min_dwell_minutes), int(min_days), float(max_gap_minutes), hours,
                   days_of_week, str(tz), frozenset(optouts))

    def days(self) -> tuple[str, str] | None:
        """The inclusive UTC days the window touches (for partition pruning)."""
        if self.start_us is None and self.end_us is None:
            return None
        first = "0000-01-01" if self.start_us is None else str(np.datetime64(self.start_us, "us").astype("M8[D]"))
        last = "9999-12-31" if self.end_us is None else str(np.datetime64(self.end_us - 1, "us").astype("M8[D]"))
        return first, last


def parse_hours(text: str) -> tuple[int, ...]:
    """Hours of the day from text such as ``"7-10,17"`` (ranges inclusive).

    Examples
    --------
    >>> parse_hours("7-9,17")
    (7, 8, 9, 17)
    """
    hours: set[int] = set()
    for part in str(text).split(","):
        part = part.strip()
        try:
            lo, _, hi = part.partition("-")
            lo_h, hi_h = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise InvalidInputError(f"hours {text!r} not understood; write e.g. '7-10,17'") from None
        if not (0 <= lo_h <= hi_h <= 23):
            raise InvalidInputError(f"hours {part!r} must be within 0-23, the first not after the last")
        hours.update(range(lo_h, hi_h + 1))
    return tuple(sorted(hours))


def _batch_index(table: pa.Table) -> tuple[CustomerIndex, np.ndarray]:
    cells = table.column("cell").to_numpy().astype("uint64")
    order = np.argsort(cells, kind="stable")
    index = CustomerIndex(version=0, res=15, cells=cells[order],
                          lat=table.column("lat").to_numpy()[order].astype("float64"),
                          lng=table.column("lng").to_numpy()[order].astype("float64"),
                          ids=pa.array([], type=pa.string()))
    return index, order


def match_pings(table: pa.Table, places: Places, rule: VisitRule) -> pa.Table:
    """Pings at places: ``device_id``, ``place_id``, ``ts_us``, ``distance_m`` (NaN for polygons and cells).

    ``table`` holds ``device_id``, ``ts``, ``lat``, ``lng`` and ``cell`` (int64, resolution 15).

    Examples
    --------
    >>> import pyarrow as pa
    >>> from geotarget.geo.cells import latlng_to_cells
    >>> lat, lng = [40.758, 40.77], [-73.9855, -73.9855]
    >>> t = pa.table({"device_id": ["a", "b"], "ts": pa.array([0, 0], pa.timestamp("us", tz="UTC")),
    ...               "lat": lat, "lng": lng, "cell": latlng_to_cells(lat, lng).astype("int64")})
    >>> m = match_pings(t, Places("radius", ("S1",), lat=(40.758,), lng=(-73.9855,), radius_m=500.0), VisitRule())
    >>> m.column("device_id").to_pylist(), m.column("distance_m").to_pylist()
    (['a'], [0.0])
    """
    if table.num_rows == 0 or not places.ids:
        return MATCH_SCHEMA.empty_table()
    index, order = _batch_index(table)
    found_pos, found_place, found_dist = [], [], []
    geoms = places.geometries() if places.kind == "regions" else None
    for i in range(len(places.ids)):
        if places.kind == "radius":
            pos, _, _ = _radius_members(index, places.lat[i], places.lng[i], places.radius_m)
            dist = geodesic_distance_m(places.lat[i], places.lng[i], index.lat[pos], index.lng[pos])
        elif places.kind == "regions":
            pos = _region_positions(index, [geoms[i]])
            dist = np.full(pos.size, np.nan)
        else:
            pos = index.positions_in_ranges(places.place_ranges(i))
            dist = np.full(pos.size, np.nan)
        found_pos.append(pos)
        found_place.append(np.full(pos.size, i, dtype=np.int64))
        found_dist.append(dist)
    pos = np.concatenate(found_pos)
    place = np.concatenate(found_place)
    dist = np.concatenate(found_dist)
    if pos.size and places.sensitive_wkb:
        uniq, back = np.unique(pos, return_inverse=True)
        inside = _in_polygons(index, uniq, places.sensitive())
        keep = ~inside[back]
        pos, place, dist = pos[keep], place[keep], dist[keep]
    rows = order[pos]
    ts = pc.cast(pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)
    ts = ts[rows]
    keep = _time_mask(ts, rule)
    rows, place, dist, ts = rows[keep], place[keep], dist[keep], ts[keep]
    devices = table.column("device_id").take(pa.array(rows, type=pa.int64()))
    if rule.optouts and len(devices):
        uniq = pc.unique(devices).to_pylist()
        blocked = [d for d in uniq if device_hash(d) in rule.optouts]
        if blocked:
            ok = pc.invert(pc.is_in(devices, value_set=pa.array(blocked, pa.string()))).to_numpy(zero_copy_only=False)
            devices = devices.filter(pa.array(ok))
            place, dist, ts = place[ok], dist[ok], ts[ok]
    return pa.table({"device_id": devices.cast(pa.string()),
                     "place_id": pa.array(np.asarray(places.ids, dtype=object)[place], type=pa.string()),
                     "ts_us": pa.array(ts, type=pa.int64()), "distance_m": pa.array(dist, type=pa.float64())},
                    schema=MATCH_SCHEMA)


def _time_mask(ts_us: np.ndarray, rule: VisitRule) -> np.ndarray:
    keep = np.ones(ts_us.size, dtype=bool)
    if rule.start_us is not None:
        keep &= ts_us >= rule.start_us
    if rule.end_us is not None:
        keep &= ts_us < rule.end_us
    if (rule.hours is not None or rule.days_of_week is not None) and ts_us.size:
        local = pd.DatetimeIndex(pd.to_datetime(ts_us, unit="us", utc=True)).tz_convert(rule.tz)
        if rule.hours is not None:
            keep &= np.isin(local.hour, rule.hours)
        if rule.days_of_week is not None:
            keep &= np.isin(local.day_of_week, rule.days_of_week)
    return keep


def visits_from_matches(matches: pd.DataFrame, rule: VisitRule) -> pd.DataFrame:
    """Group matched pings into visits: one row per device, place and run of pings (see module doc).

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"device_id": ["a"] * 3, "place_id": ["S1"] * 3,
    ...                   "ts_us": [0, 600_000_000, 7_200_000_000], "distance_m": [5.0, 3.0, 9.0]})
    >>> visits_from_matches(m, VisitRule())[["dwell_minutes", "pings", "distance_m"]]
       dwell_minutes  pings  distance_m
    0           10.0      2         3.0
    1            0.0      1         9.0
    """
    if matches.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            VISIT_COLUMNS, ["string", "string", "datetime64[us, UTC]", "datetime64[us, UTC]", "float64", "int64",
                            "float64"])})
    m = matches.sort_values(["device_id", "place_id", "ts_us"], kind="stable").reset_index(drop=True)
    dev = m["device_id"].to_numpy(dtype=object)
    plc = m["place_id"].to_numpy(dtype=object)
    ts = m["ts_us"].to_numpy(dtype="int64")
    new = np.ones(len(m), dtype=bool)
    gap_us = round(rule.max_gap_minutes * 60e6)
    new[1:] = (dev[1:] != dev[:-1]) | (plc[1:] != plc[:-1]) | ((ts[1:] - ts[:-1]) > gap_us)
    visit = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    start = ts[first]
    end = np.maximum.reduceat(ts, first)
    dist = m["distance_m"].to_numpy(dtype="float64")
    with np.errstate(invalid="ignore"):
        mind = np.fmin.reduceat(dist, first)
    return pd.DataFrame({
        "device_id": pd.array(dev[first], dtype="string"),
        "place_id": pd.array(plc[first], dtype="string"),
        "start": pd.to_datetime(start, unit="us", utc=True).astype("datetime64[us, UTC]"),
        "end": pd.to_datetime(end, unit="us", utc=True).astype("datetime64[us, UTC]"),
        "dwell_minutes": (end - start) / 60e6,
        "pings": np.bincount(visit).astype("int64"),
        "distance_m": mind,
    })


def visitors_from_matches(matches: pd.DataFrame, rule: VisitRule) -> pd.DataFrame:
    """One row per qualifying device: visits, distinct days, total dwell, first/last seen, places.

    Examples
    --------
    >>> import pandas as pd
    >>> m = pd.DataFrame({"device_id": ["a", "a", "b"], "place_id": ["S1", "S1", "S2"],
    ...                   "ts_us": [0, 86_400_000_000, 0], "distance_m": [5.0, 3.0, 9.0]})
    >>> visitors_from_matches(m, VisitRule(min_days=2))[["device_id", "visits", "days", "places"]]
      device_id  visits  days places
    0         a       2     2     S1
    """
    visits = visits_from_matches(matches, rule)
    visits = visits[visits["dwell_minutes"] >= rule.min_dwell_minutes]
    if visits.empty:
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(
            VISITOR_COLUMNS, ["string", "int64", "int64", "float64", "datetime64[us, UTC]", "datetime64[us, UTC]",
                              "string"])})
    day = visits["start"].dt.tz_convert(rule.tz).dt.date
    grouped = visits.assign(_day=day).groupby("device_id", sort=True, observed=True)
    out = pd.DataFrame({
        "visits": grouped.size().astype("int64"),
        "days": grouped["_day"].nunique().astype("int64"),
        "dwell_minutes": grouped["dwell_minutes"].sum(),
        "first_seen": grouped["start"].min(),
        "last_seen": grouped["end"].max(),
        "places": grouped["place_id"].agg(lambda s: ";".join(sorted(set(s)))).astype("string"),
    }).reset_index()
    out = out[out["days"] >= rule.min_days].reset_index(drop=True)
    out["device_id"] = out["device_id"].astype("string")
    return out[VISITOR_COLUMNS]
