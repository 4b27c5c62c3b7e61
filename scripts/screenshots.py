"""Draw the README's pictures with geotarget's own PNG output, from the seeded sample.

    python scripts/screenshots.py [--out docs/img]

Writes coverage.png (the two-mile rings of the sample's flagship stores) and
heatmap.png (customers per res-8 hexagon), each kept under 300 KB. The sample
is written to a temporary folder and no tiles are fetched (the sample's
neighborhood outlines are the context), so the pictures are the same on every
machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import geotarget
from geotarget.sample import write_sample

MAX_BYTES = 300_000


def draw(out: Path) -> list[Path]:
    """Write the pictures into ``out`` and return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="geotarget-screenshots-") as tmp:
        paths = write_sample(Path(tmp) / "sample")
        with geotarget.open(Path(tmp) / "screenshots.duckdb") as eng:
            eng.ingest_customers(paths["customers"])
            eng.ingest_stores(paths["stores"])
            eng.ingest_regions(paths["neighborhoods"], layer="sample_hoods", id_col="hood_id")
            stores = eng.stores()
            flagships = stores.loc[stores["format"] == "flagship", "store_id"].tolist()
            written = [
                eng.coverage(flagships, "2mi").to_png(out / "coverage.png", dpi=72, tiles=None, context=eng),
                eng.heatmap(8, "count").to_png(out / "heatmap.png", dpi=52, tiles=None, context=eng),
            ]
    for path in written:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise SystemExit(f"{path} is {size:,} bytes, over {MAX_BYTES:,}; lower the dpi")
        print(f"wrote {path} ({size / 1000:.0f} KB)")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "img"))
    draw(Path(parser.parse_args(argv).out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
