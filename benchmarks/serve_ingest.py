"""``python -m benchmarks.serve_ingest``: one server process that serves HTTP and, on cue, ingests a file.

The "ingest while serving" load of :mod:`benchmarks.service_load`: a writer and the readers share one
engine in one process (DuckDB lets one process hold a database file for writing), so the benchmark sees
whether a long write holds back lookups. The ingest starts when the file ``--trigger`` appears; its start
and end times (epoch seconds) and its report go to ``--done`` as JSON. Serves only on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.serve_ingest")
    p.add_argument("--db", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ingest", required=True, help="customers file to ingest on cue")
    p.add_argument("--trigger", required=True, help="start the ingest when this file appears")
    p.add_argument("--done", required=True, help="write the ingest's timing here (JSON)")
    args = p.parse_args(argv)

    import uvicorn

    from geotarget.service import create_app

    app = create_app(args.db)
    eng = app.state.engine

    def ingest() -> None:
        while not Path(args.trigger).exists():
            time.sleep(0.02)
        start = time.time()
        try:
            report = str(eng.ingest_customers(args.ingest))
        except Exception as exc:  # noqa: BLE001 - reported to the benchmark, which fails on it
            report = f"failed: {type(exc).__name__}: {exc}"
        Path(args.done).write_text(json.dumps({"start": start, "end": time.time(), "report": report}))

    threading.Thread(target=ingest, name="ingest", daemon=True).start()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False,
                server_header=False)


if __name__ == "__main__":
    main()
