"""Ingest customers and stores into the store (region polygons: :mod:`geotarget.store.regions`).

Every row read either loads or lands in the ``rejects`` table with its reason,
so ``read == loaded + rejected`` always holds (:class:`IngestReport`). An
ingest is one transaction: a malformed file, an exception, Ctrl-C or a killed
process leaves the database exactly as it was.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import numpy as np

from geotarget._lazy import lazy_module
from geotarget.errors import GeotargetWarning, InvalidInputError
from geotarget.geo.cells import latlng_to_cells
from geotarget.store.consent import CONSENT_LOG_DDL
from geotarget.store.database import Store
from geotarget.store.erasure import ERASED_REASON, drop_erased
from geotarget.store.hashes import hashes_needed_now, mark_pending
from geotarget.store.idcheck import IdHashes
from geotarget.store.people import PersonalColumns
from geotarget.store.readers import NeedsFullSniff, Source, open_source
from geotarget.store.regions import ingest_regions
from geotarget.store.report import IngestReport
from geotarget.store.upsert import direct_ready, merge, reject_misfits
from geotarget.store.validation import (  # noqa: F401  (reason texts are part of the public behaviour)
    _CODE,
    _REASONS,
    _RESERVED,
    ID_NAMES,
    REASON_DUPLICATE,
    REASON_LAT_RANGE,
    REASON_LNG_RANGE,
    REASON_MISSING_COORDS,
    REASON_MISSING_ID,
    REASON_NON_FINITE,
    REASON_NON_NUMERIC,
    REASON_NOT_POINT,
    REASON_NULL_ISLAND,
    _check_swapped,
    _check_swapped_box,
    _Columns,
    _detect,
    _find,
    _in_box,
    _known_box,
    _quote,
    _raw_json,
    _validate,
    check_crs,
)

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

#: Batches prepared at once, ahead of the inserts (see ``_prepared_batches`` in :func:`_load`).
PREPARE_WORKERS = 2

#: Name of the id column made by ``id_from="row"|"hash"`` while a file is read.
GENERATED_ID = "_generated_id"

__all__ = ["GeotargetWarning", "IngestReport", "ingest_points", "ingest_regions"]

def ingest_points(
    store: Store,
    source,
    kind: str,
    *,
    id_col: str | None = None,
    lat_col: str | None = None,
    lng_col: str | None = None,
    opted_out_col: str | None = None,
    name_col: str | None = None,
    crs=None,
    progress: Callable[[int, int | None], None] | None = None,
    batch_rows: int | None = None,
    phone_region: str | None = None,
    id_from: str | None = None,
    allow_retype: bool = False,
    swap_check: bool = True,
) -> IngestReport:
    """Validate, H3-index and upsert customers or stores (see ``Engine.ingest_customers``)."""
    check_crs(crs)
    if kind not in ID_NAMES:
        raise InvalidInputError(f"kind must be 'customers' or 'stores', got {kind!r}")
    if id_from not in (None, "row", "hash"):
        raise InvalidInputError(f"id_from must be 'row' or 'hash' (CLI --id-from row|hash), got {id_from!r}")
    if id_from is not None and id_col is not None:
        raise InvalidInputError("pass either an id column (--id-col) or --id-from row|hash, not both")
    started = time.perf_counter()
    opts = {} if batch_rows is None else {"batch_rows": batch_rows}
    probe = open_source(source, **opts)
    cols = _detect(probe, kind, id_col=GENERATED_ID if id_from else id_col, lat_col=lat_col, lng_col=lng_col,
                   opted_out_col=opted_out_col, name_col=name_col,
                   columns=[*probe.columns, GENERATED_ID] if id_from else None)
    personal = PersonalColumns.detect(probe.columns, consent=cols.opted_out, customers=kind == "customers",
                                      taken={cols.id, cols.lat, cols.lng, cols.geometry}, phone_region=phone_region)
    settings = {"personal": personal, "id_from": id_from, "allow_retype": allow_retype, "swap_check": swap_check}
    source_name = probe.name
    tabular = probe.geometry_column is None and not isinstance(source, pd.DataFrame)
    full_sniff, direct = False, True
    while True:
        src = open_source(source, force_text=personal.text_columns(cols.id), full_sniff=full_sniff, **opts) if tabular else probe
        try:
            # every customer written is named to the store (touch_customers), so the snapshot is kept current
            with store.transaction(customers_tracked=kind == "customers") as con:
                report = _load(store, con, src, cols, kind, crs if crs is not None else src.crs, progress,
                               direct=direct, **settings)
            break
        except NeedsFullSniff:
            if full_sniff:  # pragma: no cover - the reader raises it once at most
                raise
            full_sniff = True
        except _NeedsStaging:
            direct = False  # rolled back; load again through the staging table
        if not tabular:
            probe = open_source(source, **opts)
    report.source = source_name
    report.seconds = time.perf_counter() - started
    return report


class _NeedsStaging(Exception):
    """A direct load into the empty table found duplicate ids; load again through a staging table."""


def _load(store: Store, con, src: Source, cols: _Columns, kind: str, crs, progress, *, direct: bool,
          personal: PersonalColumns, id_from: str | None, allow_retype: bool, swap_check: bool) -> IngestReport:
    """Read, validate, index and write one source inside the caller's transaction.

    Rows go through a temporary staging table that is deduplicated and merged
    (upsert) into the target table. When the target table is empty, and the
    batches need no column type changes, rows are written straight into it
    instead (about half the work); if that load turns out to hold duplicate
    ids, :class:`_NeedsStaging` asks the caller to roll back and use staging.
    """
    report = IngestReport(kind=kind, source=src.name)
    stage = f"_stage_{uuid.uuid4().hex[:12]}"
    key = "customer_id" if kind == "customers" else "store_id"
    con.execute("DELETE FROM rejects WHERE kind = $k AND source = $s", {"k": kind, "s": src.name})
    reasons_count: Counter[str] = Counter()
    stats = [0, 0, 0, 0, 0, 0]
    known_box = _known_box(con) if swap_check and kind == "customers" else None
    # hash emails and phones now only when something could match them; otherwise they stay pending
    # until the first suppression, erasure or fill (geotarget.store.hashes)
    hash_now = kind == "customers" and hashes_needed_now(con)
    row_offset = 0
    created = False
    now = pd.Timestamp.now(tz="UTC")
    drop = {c for c in (cols.id, cols.lat, cols.lng, cols.geometry, cols.opted_out, cols.name) if c is not None}
    consent_unknown: Counter[str] = Counter()
    invalid = [0, 0]
    id_hashes = IdHashes()  # are the loaded ids distinct? hashed beside the inserts, merged at the end

    def prepare(frame: pd.DataFrame, offset: int):
        """Validate and H3-index one batch (runs ahead of the inserts in a worker thread)."""
        n = len(frame)
        if id_from is not None:
            frame = frame.assign(**{GENERATED_ID: generated_ids(frame, id_from, offset)})
        ids, lat, lng, reasons, good, batch_stats = _validate(frame, cols, crs, kind)
        batch_stats = (*batch_stats, *_in_box(known_box, lat, lng, good))
        people = personal.read(frame)
        bad = np.flatnonzero(~good)
        rej = None
        if bad.size:
            rej = pd.DataFrame({
                "kind": kind,
                "source": src.name,
                "row_number": bad + offset + 1,
                "raw": _raw_json(personal.mask(frame.iloc[bad].drop(columns=[cols.geometry, GENERATED_ID],
                                                                    errors="ignore"))),
                "reason": [_REASONS[c] for c in reasons[bad]],
                "rejected_at": now,
                "customer_id": ids.iloc[bad].to_numpy(dtype=object) if kind == "customers" else None,
                **people.reject_columns(bad),
            })
        keep = np.flatnonzero(good)
        whole = keep.size == n  # the usual case: nothing rejected, nothing to copy
        kept_ids, lat_k, lng_k = (ids, lat, lng) if whole else (ids.iloc[keep], lat[keep], lng[keep])
        out = pd.DataFrame({
            # Arrow-backed text goes to DuckDB as Arrow: no Python string object per row
            key: kept_ids.array if getattr(kept_ids.dtype, "storage", None) == "pyarrow" else kept_ids.to_numpy(),
            "lat": lat_k,
            "lng": lng_k,
            "cell": latlng_to_cells(lat_k, lng_k, store.res),
        })
        if kind == "stores":
            out["name"] = frame[cols.name].iloc[keep].astype("string").to_numpy() if cols.name else None
        extra = (frame if whole else frame.iloc[keep]).drop(columns=[c for c in drop if c in frame.columns])
        people.fill(out, extra, keep, personal)
        extra = extra.rename(columns={c: f"input_{c}" for c in extra.columns if str(c).lower() in _RESERVED})
        extra.columns = [str(c) for c in extra.columns]
        for c in extra.columns:
            out[c] = extra[c].to_numpy() if not isinstance(extra[c].dtype, pd.ArrowDtype) else extra[c].array
        out["_row"] = keep + offset + 1
        id_hashes.add(out[key])
        return n, out, rej, batch_stats, people

    def prepared_batches():
        for n, out, rej, batch_stats, people in _prepared_batches():
            consent_unknown.update(people.unknown)
            invalid[0] += people.invalid_emails
            invalid[1] += people.invalid_phones
            yield n, out, rej, batch_stats

    def _prepared_batches():
        """Read and prepare the next batches in worker threads while batch n is inserted, in file order.

        Two batches are prepared at once. When preparing is the slower side
        (emails and phones to normalise besides the H3 cells), both cores
        work on it instead of one while the inserts wait.
        """
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        batches = iter(src.batches)
        place = {"seq": 0, "offset": 0}
        reading = threading.Lock()

        def step():
            with reading:  # one reader at a time; each batch learns its place in the file
                frame = next(batches, None)
                if frame is None:
                    return None
                seq, offset = place["seq"], place["offset"]
                place["seq"], place["offset"] = seq + 1, offset + len(frame)
            return seq, prepare(frame, offset)

        with ThreadPoolExecutor(max_workers=PREPARE_WORKERS, thread_name_prefix="geotarget-ingest") as pool:
            pending = {pool.submit(step) for _ in range(PREPARE_WORKERS)}
            ready: dict[int, tuple] = {}
            wanted, exhausted = 0, False
            while True:
                while wanted not in ready:
                    if not pending:
                        return
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        result = future.result()
                        if result is None:
                            exhausted = True
                            continue
                        ready[result[0]] = result[1]
                        if not exhausted:
                            pending.add(pool.submit(step))
                yield ready.pop(wanted)
                wanted += 1

    for n, out, rej, batch_stats in prepared_batches():
        stats = [a + b for a, b in zip(stats, batch_stats)]
        if row_offset == 0:
            _check_swapped(stats[:4], cols, src, swap_check=swap_check)
        if rej is not None:
            con.execute("INSERT INTO rejects BY NAME SELECT * FROM rej")
            reasons_count.update(rej["reason"].tolist())
        if not created:  # the first batch's columns and types shape the staging table
            hashes = personal.hash_select(out.columns, now=hash_now)
            if not hash_now and personal.hashed(out.columns):
                mark_pending(con, {h: c for c, h in personal.hashed(out.columns).items()})
            con.execute(f"CREATE TEMP TABLE {stage} AS SELECT *{hashes} FROM out LIMIT 0")
            created = True
            direct = direct and direct_ready(store, con, stage, kind, key)
            if direct:
                con.execute(f"DROP TABLE {stage}")
        if not direct:
            con.execute(f"INSERT INTO {stage} BY NAME SELECT *{hashes} FROM out")
        else:
            private = ", ".join(c for c in ("_row", "_consent", "_consent_raw") if c in out.columns)
            con.execute(
                f"INSERT INTO {kind} BY NAME SELECT * EXCLUDE ({private}){hashes}, $now AS updated_at, $s AS source "
                "FROM out",
                {"now": now, "s": src.name},
            )
            if "_consent" in out.columns:
                con.execute(CONSENT_LOG_DDL)
                con.execute("INSERT INTO consent_log SELECT customer_id, NULL, true, _consent_raw, $s, $now "
                            "FROM out WHERE opted_out", {"now": now, "s": src.name})
        row_offset += n
        if progress is not None:
            progress(row_offset, src.total_rows)
    _check_swapped(stats[:4], cols, src, swap_check=swap_check)
    _check_swapped_box(stats[4:], cols, src)
    report.read = row_offset
    if kind == "customers":
        erased = drop_erased(con, kind if direct and created else stage, key) if created else 0
        if erased:
            reasons_count[ERASED_REASON] += erased
            drop_erased(con, "rejects", "customer_id", where="kind = 'customers' AND source = $src",
                        params={"src": src.name})
    # distinct hashes prove distinct ids; a repeated hash is settled by the exact count in SQL
    distinct_ids = id_hashes.distinct()
    if direct and created:
        inserted = con.execute(f"SELECT count(*) FROM {kind}").fetchall()[0][0]
        if not distinct_ids and con.execute(f"SELECT count(DISTINCT {key}) FROM {kind}").fetchall()[0][0] != inserted:
            raise _NeedsStaging
        report.inserted = int(inserted)
        store.touch_customers(None)  # the table was empty: every row is new
        created = False
    repeated = 0 if distinct_ids or not created else con.execute(
        f"SELECT count(*) - count(DISTINCT {key}) FROM {stage}").fetchall()[0][0]
    if created and repeated:
        dups = con.execute(_duplicates_sql(store, stage, key, personal),
                           {"k": kind, "s": src.name, "r": REASON_DUPLICATE, "now": now}).fetchall()[0][0]
        if dups:
            reasons_count[REASON_DUPLICATE] += int(dups)
            con.execute(
                f"DELETE FROM {stage} WHERE _row IN (SELECT _row FROM (SELECT _row, row_number() OVER "
                f"(PARTITION BY {key} ORDER BY _row DESC) AS _rank FROM {stage}) WHERE _rank > 1)"
            )
    if created:
        reasons_count.update(reject_misfits(store, con, stage, kind, key, src.name, now, allow_retype=allow_retype))
        report.updated, report.inserted = merge(store, con, stage, kind, key, src.name, now)
        store.touch_customers(f"SELECT {key} FROM {stage}")
        con.execute(f"DROP TABLE {stage}")
    report.rejected = sum(reasons_count.values())
    report.loaded = report.inserted + report.updated
    report.reasons = dict(reasons_count)
    report.invalid_emails, report.invalid_phones = invalid
    report.consent_unrecognised = dict(consent_unknown)
    if kind == "customers" and cols.opted_out is None and report.inserted:
        report.notes.append(f"no consent column: {report.inserted:,} new customer(s) count as consenting; "
                            "stored customers keep their consent")
    if report.read != report.loaded + report.rejected:  # pragma: no cover - a bug, never user input
        raise RuntimeError(f"ingest accounting broken: {report}")
    return report


def _duplicates_sql(store: Store, stage: str, key: str, personal: PersonalColumns) -> str:
    """SQL writing the superseded duplicates of the staged rows to rejects, emails and phones masked."""
    hidden = {"cell", "_row", "_consent", "_consent_raw", "email_sha256", "phone_sha256"}
    masked = {c for c in (personal.email, personal.phone) if c is not None}
    fields = []
    for name in store.columns(stage):
        if name in hidden:
            continue
        q = _quote(name)
        fields.append(f"{q} := CASE WHEN {q} IS NULL THEN NULL ELSE '***' END" if name in masked else f"{q} := {q}")
    # the superseded rows' hashes (pending ones computed here), so that erasure finds these rejects
    sources = {h: c for c, h in personal.hashed(store.columns(stage)).items()}
    people = [f"coalesce({h}, sha256({_quote(sources[h])})) AS {h}" if h in sources else h
              for h in ("email_sha256", "phone_sha256") if h in store.columns(stage)]
    if key == "customer_id":
        people.append("customer_id")
    return f"""INSERT INTO rejects BY NAME
        SELECT $k AS kind, $s AS source, _row AS row_number, to_json(struct_pack({', '.join(fields)})) AS raw,
               $r AS reason, $now AS rejected_at{''.join(', ' + c for c in people)}
        FROM (SELECT *, row_number() OVER (PARTITION BY {key} ORDER BY _row DESC) AS _rank FROM {stage})
        WHERE _rank > 1"""


def generated_ids(frame: pd.DataFrame, id_from: str, offset: int) -> np.ndarray:
    """Ids for rows without one: the row number in the file (``row``) or a hash of the row's content (``hash``)."""
    if id_from == "row":
        return np.arange(offset + 1, offset + len(frame) + 1).astype(str)
    hashed = pd.util.hash_pandas_object(frame.drop(columns=[GENERATED_ID], errors="ignore").astype("string"),
                                        index=False)
    return np.char.mod("%016x", hashed.to_numpy(dtype=np.uint64))
