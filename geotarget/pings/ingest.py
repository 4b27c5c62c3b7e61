"""Ping ingest: validate, H3-index and append device pings to the partitioned dataset.

The readers and row checks are the ones customers go through
(:mod:`geotarget.store.readers`, :mod:`geotarget.store.validation`), plus the checks a
ping needs: a timezone-aware timestamp, a horizontal accuracy no worse than
the threshold, consent, and a device not opted out. Every row read either
lands in the dataset or in the ``rejects`` table (kind ``'pings'``) with its
reason, so ``read == loaded + rejected``. Pings are appended, never
upserted: the same device at the same time twice is two rows.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ColumnNotFoundError, InvalidInputError
from ..geo.cells import latlng_to_cells
from ..store.ingest import IngestReport
from ..store.readers import open_source
from ..store.validation import _REASONS, _check_swapped, _Columns, _find, _raw_json, _validate
from . import consent
from .dataset import PING_SCHEMA, publish, write_partitioned

__all__ = ["DEFAULT_MAX_ACCURACY_M", "ingest_pings"]

#: Pings whose horizontal accuracy is worse (larger) than this are rejected.
DEFAULT_MAX_ACCURACY_M = 100.0

DEVICE_NAMES = ("device_id", "deviceid", "device", "maid", "ad_id", "advertising_id", "idfa", "gaid", "id")
TIME_NAMES = ("timestamp", "ts", "time", "datetime", "event_time", "observed_at")
ACCURACY_NAMES = ("accuracy_m", "horizontal_accuracy", "horizontal_accuracy_m", "accuracy", "hacc")
CONSENT_NAMES = ("consent", "consented", "consent_given")

REASON_MISSING_TS = "missing timestamp"
REASON_NAIVE_TS = "timestamp without a timezone; add an offset such as Z or -05:00"
REASON_BAD_TS = "timestamp not understood; use ISO 8601 with an offset, e.g. 2026-03-01T08:15:00Z"
REASON_BAD_ACCURACY = "accuracy is not a non-negative number of metres"
REASON_NO_CONSENT = "no consent for this device"
REASON_OPTED_OUT = "device opted out or erased"

_CONSENT_YES = {"true", "t", "yes", "y", "1", "1.0", "granted", "opt-in", "opted_in"}
_FLUSH_ROWS = 1_000_000


def _accuracy_reason(limit: float) -> str:
    return f"accuracy worse than {limit:g} m"


def _timestamps(col: pd.Series) -> tuple[np.ndarray, list[tuple[np.ndarray, str]]]:
    """UTC microseconds since the epoch, and (mask, reason) pairs for the rows that have none."""
    n = len(col)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        values = col.dt.tz_convert("UTC")
        missing = values.isna().to_numpy()
        return _micros(values), [(missing, REASON_MISSING_TS)]
    if pd.api.types.is_datetime64_dtype(col.dtype):
        missing = col.isna().to_numpy()
        return np.zeros(n, dtype="int64"), [(missing, REASON_MISSING_TS), (~missing, REASON_NAIVE_TS)]
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        seconds = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(seconds)
        values = pd.to_datetime(np.where(missing, 0, seconds), unit="s", utc=True)
        return _micros(pd.Series(values)), [(missing, REASON_MISSING_TS)]
    text = col.astype("string").str.strip()
    missing = (text.isna() | (text == "")).fillna(True).to_numpy(dtype=bool)
    has_tz = text.str.contains(r"(?:[Zz]|[+-]\d\d(?::?\d\d)?)$", regex=True).fillna(False).to_numpy(dtype=bool)
    parsed = pd.Series(pd.to_datetime(text.where(has_tz & ~missing).astype(object), utc=True, errors="coerce",
                                      format="ISO8601"))
    bad = parsed.isna().to_numpy()
    return _micros(parsed), [(missing, REASON_MISSING_TS), (~has_tz, REASON_NAIVE_TS), (bad, REASON_BAD_TS)]


def _micros(values: pd.Series) -> np.ndarray:
    arr = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    return arr.astype("int64")


def _detect_ping_columns(src, *, device_col, time_col, lat_col, lng_col, accuracy_col, consent_col):
    columns = src.columns
    device = _find(columns, device_col, DEVICE_NAMES, "device id", "--device-col")
    ts = _find(columns, time_col, TIME_NAMES, "timestamp", "--time-col")
    if device is None or ts is None:
        what = "device id" if device is None else "timestamp"
        flag = "--device-col (device_col=)" if device is None else "--time-col (time_col=)"
        raise ColumnNotFoundError(f"no {what} column found in {src.name}; pass {flag} naming one of: "
                                  f"{', '.join(map(str, columns))}")
    from ..store.validation import LAT_NAMES, LNG_NAMES

    lat = _find(columns, lat_col, LAT_NAMES, "latitude", "--lat-col")
    lng = _find(columns, lng_col, LNG_NAMES, "longitude", "--lng-col")
    if lat is None or lng is None:
        raise ColumnNotFoundError(f"no latitude/longitude columns found in {src.name}; pass --lat-col and --lng-col "
                                  f"naming two of: {', '.join(map(str, columns))}")
    accuracy = _find(columns, accuracy_col, ACCURACY_NAMES, "accuracy", "--accuracy-col")
    consent_c = _find(columns, consent_col, CONSENT_NAMES, "consent", "--consent-col")
    return _Columns(device, lat, lng, None, None, None), ts, accuracy, consent_c


def ingest_pings(store, root: Path, source, *, device_col: str | None = None, time_col: str | None = None,
                 lat_col: str | None = None, lng_col: str | None = None, accuracy_col: str | None = None,
                 consent_col: str | None = None, max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M,
                 progress=None, batch_rows: int | None = None) -> IngestReport:
    """Validate and append pings (see :meth:`geotarget.Engine.ingest_pings`)."""
    try:
        max_accuracy_m = float(max_accuracy_m)
    except (TypeError, ValueError):
        raise InvalidInputError(f"max_accuracy_m must be a number of metres, got {max_accuracy_m!r}") from None
    if not max_accuracy_m > 0:
        raise InvalidInputError(f"max_accuracy_m must be positive, got {max_accuracy_m!r}")
    started = time.perf_counter()
    opts = {} if batch_rows is None else {"batch_rows": batch_rows}
    probe = open_source(source, **opts)
    cols, ts_col, acc_col, consent_col = _detect_ping_columns(
        probe, device_col=device_col, time_col=time_col, lat_col=lat_col, lng_col=lng_col,
        accuracy_col=accuracy_col, consent_col=consent_col)
    tabular = not isinstance(source, pd.DataFrame)
    src = open_source(source, force_text=(cols.id, ts_col), **opts) if tabular else probe
    consent.ensure_tables(store)
    blocked = consent.optout_hashes(store)
    report = IngestReport(kind="pings", source=src.name)
    reasons_count: Counter[str] = Counter()
    accuracy_reason = _accuracy_reason(max_accuracy_m)
    staging = Path(root) / f"_staging-{uuid.uuid4().hex}"
    now = pd.Timestamp.now(tz="UTC")
    pending: list[pa.Table] = []
    pending_rows = 0
    stats = [0, 0, 0, 0]
    rejects: list[pd.DataFrame] = []

    def flush():
        nonlocal pending, pending_rows
        if pending:
            write_partitioned(pa.concat_tables(pending), staging)
        pending, pending_rows = [], 0

    try:
        offset = 0
        for frame in src.batches:
            n = len(frame)
            ids, lat, lng, codes, good, batch_stats = _validate(frame, cols, None, "pings")
            stats = [a + b for a, b in zip(stats, batch_stats)]
            if offset == 0:
                _check_swapped(stats, cols, src)
            reason = np.array([_REASONS[c] for c in codes], dtype=object) if (~good).any() else np.full(n, "", object)
            micros, ts_problems = _timestamps(frame[ts_col])
            for mask, text in ts_problems:
                reason[(reason == "") & mask] = text
            accuracy = np.full(n, np.nan)
            if acc_col is not None:
                acc = frame[acc_col]
                accuracy = pd.to_numeric(acc.astype("string") if not pd.api.types.is_numeric_dtype(acc.dtype) else acc,
                                         errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                given = ~acc.isna().to_numpy()
                with np.errstate(invalid="ignore"):
                    reason[(reason == "") & given & ~(np.isfinite(accuracy) & (accuracy >= 0))] = REASON_BAD_ACCURACY
                    reason[(reason == "") & (accuracy > max_accuracy_m)] = accuracy_reason
            if consent_col is not None:
                yes = frame[consent_col].astype("string").str.strip().str.lower().isin(list(_CONSENT_YES))
                reason[(reason == "") & ~yes.fillna(False).to_numpy(dtype=bool)] = REASON_NO_CONSENT
            id_values = ids.to_numpy(dtype=object, na_value=None)
            if blocked:
                uniq = {d for d in id_values[reason == ""]}
                out = {d for d in uniq if consent.device_hash(d) in blocked}
                if out:
                    reason[(reason == "") & np.isin(id_values, list(out))] = REASON_OPTED_OUT
            keep = np.flatnonzero(reason == "")
            bad = np.flatnonzero(reason != "")
            if bad.size:
                rejects.append(pd.DataFrame({
                    "kind": "pings", "source": src.name, "row_number": bad + offset + 1,
                    "raw": _raw_json(frame.iloc[bad]), "reason": reason[bad].astype(str), "rejected_at": now}))
                reasons_count.update(reason[bad].tolist())
            if keep.size:
                pending.append(pa.table({
                    "device_id": pa.array(id_values[keep], type=pa.string()),
                    "ts": pa.array(micros[keep], type=pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                    "lat": lat[keep], "lng": lng[keep],
                    "accuracy_m": pa.array(accuracy[keep], type=pa.float64(), from_pandas=True),
                    "cell": latlng_to_cells(lat[keep], lng[keep]).astype("int64"),
                }, schema=PING_SCHEMA))
                pending_rows += keep.size
                if pending_rows >= _FLUSH_ROWS:
                    flush()
            offset += n
            if progress is not None:
                progress(offset, src.total_rows)
        _check_swapped(stats, cols, src)
        flush()
        with store.transaction() as con:
            con.execute("DELETE FROM rejects WHERE kind = 'pings' AND source = $s", {"s": src.name})
            for rej in rejects:
                con.execute("INSERT INTO rejects BY NAME SELECT * FROM rej")
            publish(staging, Path(root))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.read = offset
    report.rejected = sum(reasons_count.values())
    report.loaded = report.inserted = report.read - report.rejected
    report.reasons = dict(reasons_count)
    report.seconds = time.perf_counter() - started
    return report

