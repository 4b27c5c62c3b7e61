"""``python -m benchmarks.vector_memory [--sizes-mb 200 1000]``: peak memory of reading a large GeoJSON.

For each size, a synthetic FeatureCollection of small polygons is written to a
temporary folder twice: one feature per line, and the whole collection on one
line (minified). Each is then read, each reader in a fresh process, and its
peak resident set size (``VmHWM``) and time are recorded:

- ``geopandas.read_file``: the whole file at once (how geotarget read vector
  files before they were streamed);
- ``geotarget`` streaming reader (``open_source``): GDAL's incremental
  GeoJSON parser through ``pyogrio.open_arrow``, a batch of features at a time;
- ``geotarget ingest_regions`` into a database file, end to end (checks,
  the layer written batch by batch, one transaction, commit): DuckDB keeps
  the written layer in its buffer pool up to its ``memory_limit`` (80% of
  RAM by default), so this grows with the layer, not with the file's text;
- the same with DuckDB's ``memory_limit`` set to 256 MB, where DuckDB writes
  the layer's blocks to the database file instead of keeping them.

Results go to ``benchmarks/RESULTS_vector_memory.md``; the files are deleted.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent

_SQUARE = ('{{"type":"Feature","properties":{{"region_id":"r{i}","name":"region {i}","population":{p}}},'
           '"geometry":{{"type":"Polygon","coordinates":[[[{x:.6f},{y:.6f}],[{x2:.6f},{y:.6f}],[{x2:.6f},{y2:.6f}],'
           '[{x:.6f},{y2:.6f}],[{x:.6f},{y:.6f}]]]}}}}')

_CHILD = """
import json, sys, time

def peak_bytes():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) * 1024

how, path, db = sys.argv[1:4]
import geopandas, pyogrio, pyarrow, shapely, duckdb  # noqa: F401
import geotarget
from geotarget.store.readers import open_source
base = peak_bytes()
t0 = time.perf_counter()
if how == "read_file":
    rows = len(geopandas.read_file(path))
elif how == "stream":
    rows = sum(len(batch) for batch in open_source(path).batches)
else:
    with geotarget.open(db) as eng:
        if how == "ingest_capped":
            eng.store.con.execute("SET memory_limit = '256MB'")
        rows = eng.ingest_regions(path, layer="bench").loaded
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "peak": peak_bytes(), "base": base}))
"""


def write_geojson(path: Path, size_mb: float, *, one_line: bool) -> int:
    """A FeatureCollection of about ``size_mb`` MB of small squares; returns the number of features."""
    target = int(size_mb * 1e6)
    sep = "," if one_line else ",\n"
    written, i = 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"type":"FeatureCollection","features":[' + ("" if one_line else "\n"))
        while written < target:
            chunk = sep.join(_SQUARE.format(i=j, p=j % 977, x=-74 + (j % 1000) * 1e-3, y=40 + (j // 1000 % 1000) * 1e-3,
                                            x2=-74 + (j % 1000) * 1e-3 + 5e-4, y2=40 + (j // 1000 % 1000) * 1e-3 + 5e-4)
                             for j in range(i, i + 10_000))
            fh.write((sep if i else "") + chunk)
            written += len(chunk) + len(sep)
            i += 10_000
        fh.write("]}\n")
    return i


def measure(how: str, path: Path, db: Path) -> dict:
    for leftover in (db, Path(str(db) + ".wal")):
        leftover.unlink(missing_ok=True)
    out = subprocess.run([sys.executable, "-c", _CHILD, how, str(path), str(db)], capture_output=True, text=True,
                         cwd=HERE.parent)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:120]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[200.0])
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS_vector_memory.md")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="geotarget-vector-") as tmp:
        for size in args.sizes_mb:
            for one_line in (False, True):
                path = Path(tmp) / f"layer_{size:g}mb_{'one_line' if one_line else 'lines'}.geojson"
                n = write_geojson(path, size, one_line=one_line)
                mib = path.stat().st_size / 2**20
                for how in ("read_file", "stream", "ingest", "ingest_capped"):
                    got = measure(how, path, Path(tmp) / "bench.duckdb")
                    rows.append((f"{mib:,.0f} MiB, {n:,} features, {'one line' if one_line else 'one per line'}",
                                 how, got))
                    print(rows[-1], flush=True)
                path.unlink()
    names = {"read_file": "geopandas.read_file (whole file)", "stream": "geotarget streaming reader",
             "ingest": "geotarget ingest_regions, end to end",
             "ingest_capped": "geotarget ingest_regions, DuckDB memory_limit 256 MB"}
    lines = [
        "# Peak memory of reading a large GeoJSON",
        "",
        f"`python -m benchmarks.vector_memory`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Each reader in a fresh "
        "process; peak RSS is the process's `VmHWM`, and 'added' is the peak minus the RSS after importing "
        "geopandas, pyogrio, pyarrow, DuckDB and geotarget.",
        "",
        "| file | reader | seconds | peak RSS MiB | added MiB |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for what, how, got in rows:
        if "error" in got:
            lines.append(f"| {what} | {names[how]} | failed: {got['error']} | | |")
        else:
            lines.append(f"| {what} | {names[how]} | {got['seconds']:.1f} | {got['peak'] / 2**20:,.0f} | "
                         f"{(got['peak'] - got['base']) / 2**20:,.0f} |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
