"""`geotarget serve`: the HTTP service (needs the server extra)."""

from __future__ import annotations

import typer

from ._app import app, state


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    db: str = typer.Option(None, "--db", metavar="PATH", help="DuckDB database file [default: the global --db]."),
    keys_file: str = typer.Option(None, "--keys-file", metavar="FILE",
                                  help="API keys, one a line: KEY (plain, or sha256:HEX) then scopes, e.g. "
                                       "'KEY lookup,analyst'; adds to $GEOTARGET_API_KEYS (KEY=scope+scope,...)."),
    insecure_no_auth: bool = typer.Option(False, "--insecure-no-auth",
                                          help="Serve without API keys: local development on 127.0.0.1 only."),
    read_only: bool = typer.Option(False, "--read-only", help="Open the database read-only (no campaign writes)."),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="Log every request."),
) -> None:
    """Serve the HTTP API (FastAPI + uvicorn): lookups, campaigns, audiences, heatmaps; docs at /docs.

    While it runs, `geotarget audience`, `heatmap` and `map coverage` on the same database (run by the same user)
    are answered by this server, which has the index in memory: the same output, sooner. GEOTARGET_SERVER=off in the
    command's environment turns that off.
    """
    from geotarget.service import serve as run_service

    # a refusal (no key, a host that is not loopback, no server extra) is a GeotargetError: one line, exit 2
    run_service(db or state.db, host=host, port=port, keys_file=keys_file, insecure_no_auth=insecure_no_auth,
                read_only=read_only, access_log=access_log,
                alongside=lambda eng: _answering_the_cli(eng, log=access_log))


def _answering_the_cli(engine, *, log: bool):
    """Answer `geotarget audience`, `heatmap` and `map coverage` on this database while serving."""
    import contextlib
    import sys

    from ._handoff_server import HandoffServer

    if not hasattr(engine, "current_if_fresh"):  # an in-memory database: no other process can read it
        return contextlib.nullcontext()
    stderr = sys.stderr

    def say(line: str) -> None:
        stderr.write(f"INFO:     {line}\n")
        stderr.flush()

    return HandoffServer(engine, log=say if log else None)
