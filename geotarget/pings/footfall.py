"""Footfall: unique devices per H3 cell per day, above a k-anonymity floor.

Cells are the standard H3 cells of each ping (``latlng_to_cell(lat, lng, res)``),
days are calendar days in the chosen timezone. Pings inside a sensitive
polygon and pings of opted-out devices are not counted. The per-batch step
(:func:`footfall_keys`) is shared with :mod:`geotarget.spark`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..audience.membership import _prepared, _region_positions
from ..errors import InvalidInputError
from ..geo.cells import cells_to_str, latlng_to_cells
from ..maps.metric import RES_RANGE
from .consent import device_hash
from .visits import _batch_index

__all__ = ["KEY_SCHEMA", "Footfall", "apply_floor", "check_res", "footfall_keys"]

KEY_SCHEMA = pa.schema([("day", pa.string()), ("cell", pa.int64()), ("device_id", pa.string())])


def check_res(res) -> int:
    """A footfall resolution in :data:`geotarget.maps.metric.RES_RANGE`."""
    lo, hi = RES_RANGE[0], RES_RANGE[-1]
    if not isinstance(res, (int, np.integer)) or isinstance(res, bool) or not lo <= int(res) <= hi:
        raise InvalidInputError(f"footfall res must be a whole number in [{lo}, {hi}], got {res!r}")
    return int(res)


def footfall_keys(table: pa.Table, res: int, *, tz: str = "UTC", sensitive_wkb=(), optouts=frozenset(),
                  start_us: int | None = None, end_us: int | None = None) -> pa.Table:
    """Distinct (day, cell, device_id) of a batch of pings, sensitive pings and opted-out devices left out."""
    if table.num_rows == 0:
        return KEY_SCHEMA.empty_table()
    ts = pc.cast(pc.cast(table.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)
    keep = np.ones(ts.size, dtype=bool)
    if start_us is not None:
        keep &= ts >= start_us
    if end_us is not None:
        keep &= ts < end_us
    if sensitive_wkb:
        index, order = _batch_index(table)
        inside = _region_positions(index, [_prepared(b) for b in sensitive_wkb])
        keep[order[inside]] = False
    rows = np.flatnonzero(keep)
    lat = table.column("lat").to_numpy()[rows]
    lng = table.column("lng").to_numpy()[rows]
    devices = table.column("device_id").take(pa.array(rows, type=pa.int64()))
    if optouts and len(devices):
        blocked = [d for d in pc.unique(devices).to_pylist() if device_hash(d) in optouts]
        if blocked:
            ok = pc.invert(pc.is_in(devices, value_set=pa.array(blocked, pa.string()))).to_numpy(zero_copy_only=False)
            rows, lat, lng, devices = rows[ok], lat[ok], lng[ok], devices.filter(pa.array(ok))
    keys = pa.table({"day": pa.array(_local_days(ts[rows], tz), type=pa.int32()).cast(pa.date32()),
                     "cell": latlng_to_cells(lat, lng, res).astype("int64"), "device_id": devices.cast(pa.string())})
    keys = keys.group_by(["day", "cell", "device_id"], use_threads=False).aggregate([])
    return pa.table({"day": pc.cast(keys.column("day"), pa.string()), "cell": keys.column("cell"),
                     "device_id": keys.column("device_id")}, schema=KEY_SCHEMA)


def _local_days(ts_us: np.ndarray, tz: str) -> np.ndarray:
    """Calendar days (since 1970-01-01) of UTC microsecond instants in a timezone."""
    if tz == "UTC":
        return np.floor_divide(ts_us, 86_400_000_000).astype("int32")
    local = pd.DatetimeIndex(pd.to_datetime(ts_us, unit="us", utc=True)).tz_convert(tz).tz_localize(None)
    return local.to_numpy(dtype="datetime64[us]").astype("datetime64[D]").astype("int32")


@dataclass
class Footfall:
    """Unique devices per cell per day that passed the floor, and what the floor left out.

    ``frame`` has ``day`` (ISO date), ``cell`` (uint64), ``h3`` (text) and
    ``devices``; ``suppressed_cells`` counts the (day, cell) rows under ``k_min``.
    """

    frame: pd.DataFrame
    res: int
    k_min: int
    suppressed_cells: int = 0

    def __len__(self) -> int:
        return len(self.frame)


def apply_floor(counts: pd.DataFrame, res: int, k_min: int) -> Footfall:
    """Keep the (day, cell) rows with at least ``k_min`` devices."""
    shown = counts[counts["devices"] >= k_min].sort_values(["day", "cell"]).reset_index(drop=True)
    cells = shown["cell"].to_numpy(dtype="int64").astype("uint64")
    frame = pd.DataFrame({"day": shown["day"].astype(str).to_numpy(), "cell": cells, "h3": cells_to_str(cells),
                          "devices": shown["devices"].to_numpy(dtype="int64")})
    return Footfall(frame, res, k_min, int((counts["devices"] < k_min).sum()))
