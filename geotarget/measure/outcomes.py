"""Ingest outcomes: what customers did after (and before) a campaign launched.

An outcome is one event of one customer: ``customer_id``, a timezone-aware
``timestamp``, and optionally ``value`` (revenue), ``kind`` (order, visit,
click) and ``outcome_id``. The files are read by the same readers as
customers (CSV, Parquet, DataFrames), and every row either loads or lands in
``rejects`` (kind ``outcomes``) with its reason, so
``read == loaded + rejected``.

- With an ``outcome_id`` the load is idempotent: a row whose id is already
  stored replaces it (``updated``), and within one file the last row of an id
  wins. Rows without an id are appended.
- A timestamp without a timezone (``2026-05-01 09:00``) is rejected: an
  offset or ``Z`` is needed to place it in a readout window.
- Outcomes of customers on the suppression list (by id) are not stored.
- Erasure removes a person's outcomes (:func:`geotarget.measure.tables.forget_customers`).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from geotarget.errors import ColumnNotFoundError
from geotarget.measure.tables import ensure_tables
from geotarget.store.ingest import IngestReport
from geotarget.store.readers import NeedsFullSniff, open_source
from geotarget.store.validation import REASON_DUPLICATE, REASON_MISSING_ID, _find, _raw_json

__all__ = ["REASON_BAD_TIME", "REASON_BAD_VALUE", "REASON_MISSING_TIME", "REASON_NAIVE_TIME",
           "REASON_SUPPRESSED"]

ID_NAMES = ("customer_id", "customerid", "cust_id", "customer")
TIME_NAMES = ("timestamp", "ts", "time", "event_time", "occurred_at", "datetime", "date")
VALUE_NAMES = ("value", "revenue", "amount", "spend")
KIND_NAMES = ("kind", "type", "event", "event_type")
OUTCOME_ID_NAMES = ("outcome_id", "event_id", "order_id")

REASON_MISSING_TIME = "missing timestamp"
REASON_BAD_TIME = "timestamp is not a date and time (ISO 8601 with an offset, e.g. 2026-05-01T09:30:00-04:00)"
REASON_NAIVE_TIME = "timestamp has no timezone; add an offset or Z (e.g. 2026-05-01T09:30:00Z)"
REASON_BAD_VALUE = "value is not a finite number"
REASON_SUPPRESSED = "customer is on the suppression list: outcome not stored"

_REASONS = ["", REASON_MISSING_ID, REASON_MISSING_TIME, REASON_BAD_TIME, REASON_NAIVE_TIME, REASON_BAD_VALUE]
_CODE = {r: i for i, r in enumerate(_REASONS)}
# an offset (or Z, or UTC) right after a time of day: "2026-05-03" alone is a date, not an instant
_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?|UTC)$"


@dataclass
class _Columns:
    customer_id: str
    timestamp: str
    value: str | None
    kind: str | None
    outcome_id: str | None


def _detect(columns: list[str], name: str, *, id_col, time_col, value_col, kind_col, outcome_id_col) -> _Columns:
    cid = _find(columns, id_col, ID_NAMES, "customer id", "--id-col")
    ts = _find(columns, time_col, TIME_NAMES, "timestamp", "--time-col")
    if cid is None or ts is None:
        what = "customer id" if cid is None else "timestamp"
        flag = "--id-col (id_col=)" if cid is None else "--time-col (time_col=)"
        raise ColumnNotFoundError(
            f"no {what} column found in {name}; pass {flag} naming one of: {', '.join(map(str, columns))}")
    return _Columns(cid, ts,
                    _find(columns, value_col, VALUE_NAMES, "value", "--value-col"),
                    _find(columns, kind_col, KIND_NAMES, "kind", "--kind-col"),
                    _find(columns, outcome_id_col, OUTCOME_ID_NAMES, "outcome id", "--outcome-id-col"))


def _text(col: pd.Series) -> pd.Series:
    if pd.api.types.is_float_dtype(col.dtype):
        col = col.astype("Int64") if (col.dropna() % 1 == 0).all() else col
    return col.astype("string").str.strip()


def _mark(codes: np.ndarray, where: np.ndarray, reason: str) -> None:
    codes[(codes == 0) & where] = _CODE[reason]


def _timestamps(col: pd.Series, codes: np.ndarray) -> pd.Series:
    """UTC timestamps; rows that are missing, unparseable or without a timezone get a reason."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        _mark(codes, col.isna().to_numpy(dtype=bool), REASON_MISSING_TIME)
        return col.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(col.dtype):  # naive datetimes: no way to place them
        _mark(codes, col.isna().to_numpy(dtype=bool), REASON_MISSING_TIME)
        _mark(codes, np.ones(len(col), dtype=bool), REASON_NAIVE_TIME)
        return pd.Series(pd.NaT, index=col.index, dtype="datetime64[us, UTC]")
    if col.dtype == object and len(col) and any(hasattr(v, "tzinfo") for v in col.head(20)):
        col = col.map(lambda v: v.isoformat() if hasattr(v, "isoformat") else v)
    text = col.astype("string").str.strip()
    missing = (text.isna() | (text == "")).fillna(True).to_numpy(dtype=bool)
    _mark(codes, missing, REASON_MISSING_TIME)
    aware = text.str.contains(_OFFSET, regex=True).fillna(False).to_numpy(dtype=bool)
    parsed = pd.to_datetime(text.where(~missing).str.replace(r"\s*UTC$", "Z", regex=True),
                            format="ISO8601", utc=True, errors="coerce")
    _mark(codes, parsed.isna().to_numpy(dtype=bool), REASON_BAD_TIME)
    _mark(codes, ~aware, REASON_NAIVE_TIME)
    return parsed.astype("datetime64[us, UTC]")


def _values(col: pd.Series, codes: np.ndarray) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
        values = col.to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(values)
    else:
        text = col.astype("string").str.strip()
        present = ~(text.isna() | (text == "")).fillna(True).to_numpy(dtype=bool)
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    _mark(codes, present & ~np.isfinite(values), REASON_BAD_VALUE)
    return values


def _validate(frame: pd.DataFrame, cols: _Columns):
    codes = np.zeros(len(frame), dtype=np.uint8)
    ids = _text(frame[cols.customer_id])
    _mark(codes, (ids.isna() | (ids == "")).fillna(True).to_numpy(dtype=bool), REASON_MISSING_ID)
    ts = _timestamps(frame[cols.timestamp], codes)
    out = pd.DataFrame({"customer_id": ids.to_numpy(dtype=object), "ts": ts.to_numpy()})
    out["value"] = _values(frame[cols.value], codes) if cols.value else np.nan
    if cols.kind:
        kind = frame[cols.kind].astype("string").str.strip().str.lower()
        out["kind"] = kind.where(kind != "").to_numpy(dtype=object)
    else:
        out["kind"] = None
    if cols.outcome_id:
        oid = _text(frame[cols.outcome_id])
        out["outcome_id"] = oid.where(oid != "").to_numpy(dtype=object)
    else:
        out["outcome_id"] = None
    return out, codes


def ingest_outcomes(store, source, *, id_col: str | None = None, time_col: str | None = None,
                    value_col: str | None = None, kind_col: str | None = None,
                    outcome_id_col: str | None = None, progress=None, batch_rows: int | None = None) -> IngestReport:
    """Validate and load outcomes (see :meth:`geotarget.Engine.ingest_outcomes`)."""
    started = time.perf_counter()
    ensure_tables(store)
    opts = {} if batch_rows is None else {"batch_rows": batch_rows}
    probe = open_source(source, **opts)
    cols = _detect(probe.columns, probe.name, id_col=id_col, time_col=time_col, value_col=value_col,
                   kind_col=kind_col, outcome_id_col=outcome_id_col)
    text_cols = tuple(c for c in (cols.customer_id, cols.timestamp, cols.outcome_id) if c)
    tabular = probe.geometry_column is None and not isinstance(source, pd.DataFrame)
    full_sniff = False
    while True:
        src = open_source(source, force_text=text_cols, full_sniff=full_sniff, **opts) if tabular else probe
        try:
            with store.transaction() as con:
                report = _load(con, src, cols, progress)
            break
        except NeedsFullSniff:
            if full_sniff:  # pragma: no cover - the reader raises it once at most
                raise
            full_sniff = True
    report.seconds = time.perf_counter() - started
    return report


def _load(con, src, cols: _Columns, progress) -> IngestReport:
    report = IngestReport(kind="outcomes", source=src.name)
    stage = f"_stage_outcomes_{uuid.uuid4().hex[:12]}"
    now = pd.Timestamp.now(tz="UTC")
    reasons: Counter[str] = Counter()
    con.execute("DELETE FROM rejects WHERE kind = 'outcomes' AND source = $s", {"s": src.name})
    con.execute(f"""CREATE TEMP TABLE {stage} (outcome_id VARCHAR, customer_id VARCHAR, ts TIMESTAMPTZ,
                    value DOUBLE, kind VARCHAR, _row BIGINT)""")
    offset = 0
    for frame in src.batches:
        out, codes = _validate(frame, cols)
        bad = np.flatnonzero(codes)
        if bad.size:
            rej = pd.DataFrame({
                "kind": "outcomes", "source": src.name, "row_number": bad + offset + 1,
                "raw": _raw_json(frame.iloc[bad]), "reason": [_REASONS[c] for c in codes[bad]], "rejected_at": now})
            con.execute("INSERT INTO rejects BY NAME SELECT * FROM rej")
            reasons.update(_REASONS[c] for c in codes[bad])
        good = np.flatnonzero(codes == 0)
        rows = out.iloc[good].assign(_row=good + offset + 1)
        con.execute(f"INSERT INTO {stage} BY NAME SELECT * FROM rows")
        offset += len(frame)
        if progress is not None:
            progress(offset, src.total_rows)
    report.read = offset
    _reject_staged(con, stage, src.name, now, reasons, REASON_SUPPRESSED,
                   "customer_id IN (SELECT value FROM suppressions WHERE kind = 'id')")
    _reject_staged(con, stage, src.name, now, reasons, REASON_DUPLICATE,
                   f"outcome_id IS NOT NULL AND _row IN (SELECT _row FROM (SELECT _row, row_number() OVER "
                   f"(PARTITION BY outcome_id ORDER BY _row DESC) AS _rank FROM {stage}) WHERE _rank > 1)")
    report.updated = int(con.execute(
        f"DELETE FROM outcomes WHERE outcome_id IN (SELECT outcome_id FROM {stage} WHERE outcome_id IS NOT NULL)"
    ).fetchall()[0][0])
    loaded = int(con.execute(
        f"INSERT INTO outcomes SELECT outcome_id, customer_id, ts, value, kind, $s, $now FROM {stage}",
        {"s": src.name, "now": now}).fetchall()[0][0])
    con.execute(f"DROP TABLE {stage}")
    report.inserted = loaded - report.updated
    report.loaded = loaded
    report.rejected = sum(reasons.values())
    report.reasons = dict(reasons)
    if report.read != report.loaded + report.rejected:  # pragma: no cover - a bug, never user input
        raise RuntimeError(f"outcome ingest accounting broken: {report}")
    return report


def _reject_staged(con, stage: str, source: str, now, reasons: Counter, reason: str, condition: str) -> None:
    """Move staged rows matching ``condition`` to rejects with ``reason``."""
    n = int(con.execute(
        f"INSERT INTO rejects (kind, source, row_number, raw, reason, rejected_at, customer_id) "
        f"SELECT 'outcomes', $s, _row, to_json(t), $r, $now, customer_id FROM {stage} t WHERE {condition}",
        {"s": source, "r": reason, "now": now}).fetchall()[0][0])
    if n:
        con.execute(f"DELETE FROM {stage} WHERE {condition}")
        reasons[reason] += n
