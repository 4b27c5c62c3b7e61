"""``python -m benchmarks.ingest_profile [PARQUET]``: where an ingest's time goes, stage by stage.

The ingest pipeline overlaps preparing batch n+1 (read, validate, H3 index)
with writing batch n into DuckDB, so the end-to-end time is bounded below by
the larger of the two sides and by the total CPU they need on this machine's
cores. This measures each stage alone, on the same Parquet file the
benchmark ingests (1M customers by default), and writes
``benchmarks/RESULTS_ingest_profile.md``, which ``RESULTS.md`` quotes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "work" / "data" / "customers_uniform_1000000_s20240601.parquet"


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def profile(parquet: Path, repeats: int = 3) -> list[tuple[str, float]]:
    """(stage, seconds) for one pass of each stage over the whole file."""
    import duckdb

    import geotarget
    from geotarget.geo import cells
    from geotarget.store import validation as _validation
    from geotarget.store.readers import BATCH_ROWS, open_source

    src = open_source(parquet)
    frames = list(src.batches)
    cols = _validation._detect(src, "customers", id_col="customer_id", lat_col="lat", lng_col="lng",
                               opted_out_col=None, name_col=None)
    lat = np.concatenate([f["lat"].to_numpy() for f in frames])
    lng = np.concatenate([f["lng"].to_numpy() for f in frames])
    out = []
    out.append(("read Parquet into batches (DuckDB reader)", _best(lambda: list(open_source(parquet).batches), repeats)))
    out.append(("validate", _best(lambda: [_validation._validate(f, cols, None, "customers") for f in frames], repeats)))
    one = lambda: [cells._rust_coordinates_to_cells(lat[i:i + BATCH_ROWS], lng[i:i + BATCH_ROWS], 15)  # noqa: E731
                   for i in range(0, lat.size, BATCH_ROWS)]
    out.append(("H3 res-15 cells, one thread", _best(one, repeats)))
    out.append(("H3 res-15 cells, all cores", _best(lambda: cells.latlng_to_cells(lat, lng), repeats)))
    table = pd.concat(frames, ignore_index=True)
    table["cell"] = cells.latlng_to_cells(lat, lng)
    ids = table[["customer_id"]]
    narrow = table[["cell"]]

    def insert(frame, ddl):
        with tempfile.TemporaryDirectory() as tmp:
            con = duckdb.connect(os.path.join(tmp, "p.duckdb"))
            con.execute("SET enable_progress_bar = false")
            con.execute(ddl)
            con.execute("BEGIN")
            for start in range(0, len(frame), BATCH_ROWS):
                part = frame.iloc[start:start + BATCH_ROWS]  # noqa: F841 (read by DuckDB by name)
                con.execute("INSERT INTO t BY NAME SELECT * FROM part")
            t0 = time.perf_counter()
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
            insert.checkpoint = time.perf_counter() - t0
            con.close()

    # ids as the store keeps them: uncompressed (geotarget.store.database explains why)
    stored_id = "customer_id VARCHAR USING COMPRESSION uncompressed"
    full = f"CREATE TABLE t ({stored_id}, lat DOUBLE, lng DOUBLE, tier VARCHAR, spend DOUBLE, cell UBIGINT)"
    out.append(("DuckDB insert into a table in the file, all columns (with commit and checkpoint)",
                _best(lambda: insert(table, full), repeats)))
    out.append(("  of which commit and checkpoint", insert.checkpoint))
    out.append(("DuckDB insert, the text ids alone (stored uncompressed)",
                _best(lambda: insert(ids, f"CREATE TABLE t ({stored_id})"), repeats)))
    out.append(("DuckDB insert, the text ids alone, compressed as DuckDB chooses (dict/FSST)",
                _best(lambda: insert(ids, "CREATE TABLE t (customer_id VARCHAR)"), repeats)))
    out.append(("DuckDB insert, the UBIGINT cells alone", _best(lambda: insert(narrow, "CREATE TABLE t (cell UBIGINT)"),
                                                               repeats)))

    def whole():
        with tempfile.TemporaryDirectory() as tmp:
            eng = geotarget.open(os.path.join(tmp, "g.duckdb"))
            eng.ingest_customers(parquet, id_col="customer_id", lat_col="lat", lng_col="lng")
            eng.close()

    out.append(("geotarget ingest_customers end to end (with close)", _best(whole, repeats)))
    out += _identity_stages(parquet.parent / f"people_{len(lat)}.parquet", repeats)
    return out


def _identity_stages(people: Path, repeats: int) -> list[tuple[str, float]]:
    """Issue 12's identity work on the privacy benchmark's file of the same size (written when absent):
    the normalisers (at ingest) and SHA-256 of both columns (left pending by the ingest)."""
    import duckdb
    import pyarrow.parquet as pq

    from benchmarks.privacy import write_people
    from geotarget.store.identity import normalize_emails, normalize_phones

    size = int(people.stem.split("_")[-1])
    table = pq.read_table(write_people(people, size), columns=["email", "phone"])
    email = pd.Series(pd.arrays.ArrowExtensionArray(table.column("email")))
    phone = pd.Series(pd.arrays.ArrowExtensionArray(table.column("phone")))
    normalize_phones(phone.iloc[:10])  # phonenumbers' metadata loads once per process
    e164, _ = normalize_phones(phone)
    emails, _ = normalize_emails(email)
    con = duckdb.connect()
    con.register("hashed", pd.DataFrame({"e": pd.arrays.ArrowExtensionArray(emails),
                                         "p": pd.arrays.ArrowExtensionArray(e164)}))
    out = [("identities (issue 12): normalise emails (vectorised; others one by one)",
            _best(lambda: normalize_emails(email), repeats)),
           ("identities: normalise phones to E.164 (byte level in numpy; others through phonenumbers)",
            _best(lambda: normalize_phones(phone), repeats)),
           ("identities: SHA-256 of both in DuckDB (pending after an ingest; paid by the first suppression "
            "or erasure)", _best(lambda: con.execute("SELECT sha256(e), sha256(p) FROM hashed").fetchall(), repeats))]
    con.close()
    return out


def render(parquet: Path, stages: list[tuple[str, float]], rows: int) -> str:
    load = os.getloadavg()[0]
    sec = dict(stages)
    cpu = sum(sec[k] for k in ("read Parquet into batches (DuckDB reader)", "validate", "H3 res-15 cells, one thread",
                               "DuckDB insert into a table in the file, all columns (with commit and checkpoint)"))
    cpu = cpu / rows * 1e6
    floor = cpu / (os.cpu_count() or 1)
    lines = ["# Ingest, stage by stage", "",
             f"`python -m benchmarks.ingest_profile`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, "
             f"load average {load:.1f} when it ended; `{parquet.name}` ({rows:,} rows). Each stage alone over the "
             "whole file, median of 3.", "",
             f"The ingest overlaps reading, validating and H3 indexing (two worker threads, each on its own batch; H3 on all cores) with "
             f"the DuckDB insert (the caller's thread). Together they need about {cpu:.2f} core-seconds per 1M "
             f"rows (read + validate + one-thread H3 + insert), so on {os.cpu_count()} cores no schedule of "
             f"these stages beats about {floor:.2f} s per 1M rows ({1 / floor:.2f}M rows/s); the rest of the "
             "end-to-end time is the pipeline filling and draining (the first batch's preparation and the last "
             "insert are not overlapped), the merge of the sorted id hashes and opening and closing the database.", "",
             "| stage | seconds | per 1M rows |", "| --- | ---: | ---: |"]
    for name, sec in stages:
        lines.append(f"| {name} | {sec:.3f} | {sec / rows * 1e6:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parquet", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS_ingest_profile.md")
    args = parser.parse_args(argv)
    if not args.parquet.exists():  # a --quick run makes no 1M file: nothing to profile, not an error
        print(f"ingest profile skipped: {args.parquet} does not exist (`python -m benchmarks --sizes 1e6` "
              "generates it; or pass a customers Parquet file)")
        return
    import pyarrow.parquet as pq

    stages = profile(args.parquet)
    text = render(args.parquet, stages, pq.ParquetFile(args.parquet).metadata.num_rows)
    args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
