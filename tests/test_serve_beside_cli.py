"""The geotarget command beside a running `geotarget serve`, with real processes.

The server holds the database file only while it writes, so CLI reads run at
once, CLI writes complete, and the server answers with the new data within
2 s without a failed request. A program that keeps the file open makes the
CLI wait and then fail with one line naming the --wait option.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from _processes import stop

import geotarget

ROOT = Path(__file__).resolve().parents[1]
POINT = (40.7580, -73.9855)


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _cli(db, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "geotarget", "--db", str(db), *args], capture_output=True,
                          text=True, env=_env(), timeout=timeout, cwd=db.parent)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return r.status, json.loads(r.read())


@pytest.fixture
def database(tmp_path):
    db = tmp_path / "shared.duckdb"
    with geotarget.open(db) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1"], "lat": [POINT[0]], "lng": [POINT[1]]}))
        eng.ingest_customers(pd.DataFrame({"customer_id": [f"c{i}" for i in range(300)],
                                           "lat": [POINT[0] + 0.0001 * (i % 30) for i in range(300)],
                                           "lng": [POINT[1] + 0.0001 * (i // 30) for i in range(300)]}))
    return db


@pytest.fixture
def server(database):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "geotarget", "--db", str(database), "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--insecure-no-auth", "--no-access-log"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(), cwd=database.parent)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(port, "/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield port
    finally:
        stop(proc)
        proc.stderr.close()


def _stores_near(port):
    return _get(port, f"/v1/stores/near?lat={POINT[0]}&lng={POINT[1]}&radius=1km")


def test_cli_reads_and_writes_beside_a_server(database, server, tmp_path):
    port = server
    for args in (["info"], ["campaign", "list"],
                 ["audience", "--store", "S1", "--radius", "2mi", "-o", str(tmp_path / "a.csv")]):
        started = time.monotonic()
        done = _cli(database, "--wait", "0", *args)
        assert done.returncode == 0, (args, done.stderr)
        assert time.monotonic() - started < 30
    assert len(pd.read_csv(tmp_path / "a.csv")) == 300

    statuses, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            try:
                statuses.append(_stores_near(port)[0])
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            except OSError as exc:
                statuses.append(repr(exc))
            time.sleep(0.02)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        (tmp_path / "new.csv").write_text(f"store_id,lat,lng\nS2,{POINT[0] + 0.001},{POINT[1]}\n")
        assert _cli(database, "ingest", "stores", str(tmp_path / "new.csv")).returncode == 0
        written = time.monotonic()
        while {s["store_id"] for s in _stores_near(port)[1]["stores"]} != {"S1", "S2"}:
            assert time.monotonic() - written < 2.0, "the server did not see the CLI's ingest within 2 s"
            time.sleep(0.05)
        done = _cli(database, "campaign", "create", "cli-made", "--store", "S1", "--radius", "500m")
        assert done.returncode == 0, done.stderr
        written = time.monotonic()
        while "cli-made" not in json.dumps(_get(port, "/v1/campaigns")[1]):
            assert time.monotonic() - written < 2.0, "the server did not see the CLI's campaign within 2 s"
            time.sleep(0.05)
    finally:
        stop.set()
        poller.join()
    assert statuses and set(statuses) == {200}, [s for s in statuses if s != 200][:5]


def test_server_writes_land_in_the_file(database, server):
    body = json.dumps({"name": "http-made", "stores": ["S1"], "radius": "1km"}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{server}/v1/campaigns", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as r:
        assert r.status in (200, 201)
    done = _cli(database, "--wait", "5", "campaign", "list")
    assert done.returncode == 0 and "http-made" in done.stdout, done.stderr


def test_lock_error_names_the_cli_option(database):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time, geotarget; e = geotarget.open(sys.argv[1]); print('held', flush=True); "
                               "time.sleep(60)", str(database)],
        stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        done = _cli(database, "--wait", "0.2", "info")
        assert done.returncode == 2
        assert "--wait" in done.stderr and "Traceback" not in done.stderr
        assert "lock_timeout" not in done.stderr
    finally:
        os.kill(holder.pid, signal.SIGTERM)
        holder.wait(timeout=20)
        holder.stdout.close()
