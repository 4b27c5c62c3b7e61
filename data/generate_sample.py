"""Generate the seeded synthetic sample used by `make demo` (writes data/sample/)."""

import sys
from pathlib import Path

from geotarget.sample import write_sample

if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "sample"
    for kind, path in write_sample(out).items():
        print(f"{kind}: {path}")
