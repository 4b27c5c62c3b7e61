"""`geotarget audience` handed to a running `geotarget serve`, with real processes.

Whether the server answered or the command ran by itself must not show in
anything it prints or writes: the same bytes on stdout and stderr, the same
exit code, the same file with the same mode. What a write just did (a
suppression, an opt-out) is in the very next answer. And only the server's
own user may hand it a command or be answered by it.
"""

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _processes import stop

import geotarget
from geotarget.cli import _handoff

ROOT = Path(__file__).resolve().parents[1]
POINT = (40.7580, -73.9855)
N = 4000

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the hand-off needs Linux peer credentials")


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("GEOTARGET_DB", None)
    env.update(extra)
    return env


def _cli(cwd, *args, server=True, umask=None, timeout=120):
    env = _env(GEOTARGET_SERVER="auto" if server else "off")
    pre = (lambda: os.umask(umask)) if umask is not None else None
    return subprocess.run([sys.executable, "-m", "geotarget", *args], capture_output=True, env=env, cwd=cwd,
                          timeout=timeout, preexec_fn=pre, check=False)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handoff")
    db = folder / "g.duckdb"
    rng = np.random.default_rng(11)
    ids = [f"c{i:05d}" for i in range(N)]
    with geotarget.open(db) as eng:
        eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2"], "name": ["Midtown", "Chelsea"],
                                        "lat": [POINT[0], 40.7465], "lng": [POINT[1], -74.0014]}))
        eng.ingest_customers(pd.DataFrame({
            "customer_id": ids,
            "lat": POINT[0] + rng.normal(0, 0.02, N), "lng": POINT[1] + rng.normal(0, 0.02, N),
            "tier": rng.choice(["gold", "silver", "bronze"], N), "age": rng.integers(18, 80, N),
            "email": [f"Person.{i}@Example.com " for i in range(N)],
            "phone": [f"(212) 555-{i % 10000:04d}" for i in range(N)],
        }))
    return db


@pytest.fixture(scope="module")
def server(database):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = database.parent / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "geotarget", "--db", str(database), "serve", "--port",
                                 str(port), "--insecure-no-auth"], stdout=fh, stderr=subprocess.STDOUT,
                                env=_env(), cwd=database.parent)
    announce = Path(str(database) + _handoff.SUFFIX)
    try:
        deadline = time.monotonic() + 90
        while not announce.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc, log
    finally:
        stop(proc)


def _answered(log: Path) -> int:
    return len(re.findall(r"CLI `geotarget [\w ]+` answered", log.read_text()))


def _both(database, args, tmp_path, *, umask=None):
    """Run ``args`` handed over and by itself, each writing under its own folder; both results."""
    out = []
    for server in (True, False):
        cwd = tmp_path / ("via-server" if server else "alone")
        cwd.mkdir(exist_ok=True)
        done = _cli(cwd, "--db", str(database), *args, server=server, umask=umask)
        files = {str(p.relative_to(cwd)): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
                 for p in sorted(cwd.rglob("*")) if p.is_file()}
        out.append((done.returncode, done.stdout, done.stderr, files))
    return out


ANSWERED = [
    ["audience", "--store", "S1", "--radius", "2mi", "-o", "a.csv"],
    ["audience", "--store=S1", "--radius=1km", "-o", "./a.csv"],
    ["audience", "--store", "S1", "--store", "S2", "--radius", "1mi", "-o", "a.csv"],
    ["audience", "--all-stores", "--radius", "800m", "--where", "tier=gold", "--where", "age>=40", "--column",
     "tier", "--column", "age", "-o", "a.csv"],
    ["audience", "--lat", "40.75", "--lng", "-73.99", "--radius", "1.5km", "--exclude-within",
     "40.758,-73.9855,300m", "-o", "a.csv"],
    ["audience", "--store", "S1", "--radius", "2mi"],
    ["audience", "--store", "S1", "--radius", "2mi", "-o", "-"],
    ["audience", "--store", "S1", "--radius", "2mi", "-o", "a.parquet"],
    ["audience", "--store", "S1", "--radius", "2mi", "-o", "a.txt", "--format", "csv"],
    ["audience", "--store", "S1", "--radius", "2mi", "--format", "customer-match", "--platform", "meta",
     "-o", "m.csv"],
    ["audience", "--lat", "40.758", "--lng", "-73.9855", "--res", "8", "--k", "2", "-o", "r.csv"],
]


@pytest.mark.parametrize("args", ANSWERED, ids=[" ".join(a[1:5]) + " " + a[-1] for a in ANSWERED])
def test_the_server_answers_byte_for_byte_what_the_command_alone_would(database, server, tmp_path, args):
    _, log = server
    before = _answered(log)
    via_server, alone = _both(database, args, tmp_path)
    assert alone[0] == 0, alone[2].decode()
    assert via_server == alone
    assert _answered(log) == before + 1, "the server did not answer"


HEATMAPS = [
    ["heatmap", "--res", "8", "-o", "m.html"],
    ["heatmap", "--res", "7", "--tiles", "none", "--cdn", "--scale", "linear", "-o", "m.html", "--cells-out",
     "cells.csv"],
    ["heatmap", "--store", "S1", "--radius", "2mi", "--where", "tier=gold", "--k-min", "20", "-o", "m.html"],
    ["heatmap", "--res", "9", "--metric", "mean:age", "--metric", "count", "-o", "m.html"],
    ["map", "coverage", "--store", "S1", "--radius", "1mi", "-o", "c.html"],
    ["map", "coverage", "--all-stores", "--radius", "800m", "--res", "9", "--tiles", "none", "--cdn", "-o", "c.html"],
]


def _same_map(page: bytes) -> bytes:
    """A page with Folium's random element ids (32 hex digits, new at every run) made equal."""
    return re.sub(rb"[0-9a-f]{32}", b"ID", page)


@pytest.mark.parametrize("args", HEATMAPS, ids=[" ".join(a[:5]) for a in HEATMAPS])
def test_a_heatmap_from_the_server_is_the_one_the_command_draws(database, server, tmp_path, args):
    _, log = server
    before = _answered(log)
    via_server, alone = _both(database, args, tmp_path)
    assert alone[0] == 0, alone[2].decode()
    assert via_server[:3] == alone[:3]
    assert via_server[1].decode().count("wrote ") == len(via_server[3])
    assert {name: (_same_map(data), mode) for name, (data, mode) in via_server[3].items()} == \
        {name: (_same_map(data), mode) for name, (data, mode) in alone[3].items()}
    assert _answered(log) == before + 1, "the server did not answer"


DECLINED = [  # errors and anything but a plain read: the command runs by itself, and says what it always says
    ["audience", "--store", "NOPE", "--radius", "2mi", "-o", "a.csv"],
    ["audience", "--store", "S1", "--radius", "5m", "-o", "a.csv"],
    ["audience", "--store", "S1", "--radius", "2mi", "-o", "a.xyz"],
    ["audience", "--store", "S1", "--radius", "2mi", "--column", "nope", "-o", "a.csv"],
    ["audience", "--store", "S1", "--radius", "2mi", "-o", "new/folder/a.csv"],
    ["audience", "--store", "S1", "--radius", "2mi", "--holdout", "0.2", "-o", "a.csv"],
    ["audience", "--help"],
    ["audience", "--store", "S1"],
    ["heatmap", "--res", "16", "-o", "m.html"],
    ["heatmap", "--region-layer", "nope", "-o", "m.html"],
    ["heatmap", "--res", "8", "-o", "m.html", "--cells-out", "cells.xyz"],
    ["map", "coverage", "--radius", "1mi", "-o", "c.html"],
    ["map", "coverage", "--store", "S1", "--radius", "1mi", "-o", "c.html", "--png", "c.png"],
]


@pytest.mark.parametrize("args", DECLINED, ids=[" ".join(a[1:]) for a in DECLINED])
def test_errors_and_other_commands_read_exactly_as_without_a_server(database, server, tmp_path, args):
    _, log = server
    before = _answered(log)
    via_server, alone = _both(database, args, tmp_path)
    assert via_server[:3] == alone[:3]
    assert {name: (_same_map(data), mode) for name, (data, mode) in via_server[3].items()} == \
        {name: (_same_map(data), mode) for name, (data, mode) in alone[3].items()}
    assert _answered(log) == before


def test_new_files_get_the_callers_umask_and_land_in_the_callers_folder(database, server, tmp_path):
    args = ["audience", "--store", "S1", "--radius", "2mi", "-o", "out.csv"]
    via_server, alone = _both(database, args, tmp_path, umask=0o077)
    assert via_server == alone
    assert via_server[3]["out.csv"][1] == 0o600
    assert not (database.parent / "out.csv").exists()


def test_a_declined_command_leaves_no_file_of_the_servers_behind(database, server, tmp_path):
    """The map is written before --cells-out fails: the command alone must find no file of the server's making
    (one with the server's umask would keep that mode when the command writes over it)."""
    args = ["heatmap", "--res", "8", "-o", "m.html", "--cells-out", "cells.xyz"]
    via_server, alone = _both(database, args, tmp_path, umask=0o077)
    assert alone[0] == 2 and via_server[:3] == alone[:3]
    assert {name: mode for name, (_, mode) in via_server[3].items()} == {"m.html": 0o600}


def test_a_suppression_or_opt_out_is_in_the_very_next_answer(database, server, tmp_path):
    """No sleep between the write and the read: a server that answered from its old copy would leak them."""
    _, log = server
    args = ["--db", str(database), "audience", "--store", "S1", "--radius", "2mi", "-o", "a.csv"]
    assert _cli(tmp_path, *args).returncode == 0
    first = pd.read_csv(tmp_path / "a.csv")
    ids = first["customer_id"].tolist()
    (tmp_path / "no.csv").write_text("customer_id\n" + ids[0] + "\n")
    assert _cli(tmp_path, "--db", str(database), "suppress", "no.csv").returncode == 0
    assert _cli(tmp_path, *args).returncode == 0
    assert ids[0] not in set(pd.read_csv(tmp_path / "a.csv")["customer_id"])

    row = first.iloc[1]
    (tmp_path / "out.csv").write_text(f"customer_id,lat,lng,opted_out\n{row.customer_id},{row.lat},{row.lng},true\n")
    done = _cli(tmp_path, "--db", str(database), "ingest", "customers", "out.csv", "--opted-out-col", "opted_out")
    assert done.returncode == 0, done.stderr.decode()
    for _ in range(3):  # the next one, and those after it once the server has its new copy
        assert _cli(tmp_path, *args).returncode == 0
        assert not {ids[0], ids[1]} & set(pd.read_csv(tmp_path / "a.csv")["customer_id"])
        time.sleep(1.2)
    assert "declined (the database changed" in log.read_text()


def test_a_server_killed_without_a_goodbye_leaves_a_file_the_command_steps_over(database, tmp_path):
    db = tmp_path / "k.duckdb"
    db.write_bytes(database.read_bytes())
    sock_dir = tmp_path / "gone"
    sock_dir.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX) as dead:  # bound, never listening: what kill -9 leaves behind
        dead.bind(str(sock_dir / "cli.sock"))
        fd = os.open(str(db) + _handoff.SUFFIX, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, str(sock_dir / "cli.sock").encode() + b"\n1\n")
        os.close(fd)
        done = _cli(tmp_path, "--db", str(db), "audience", "--store", "S1", "--radius", "2mi", "-o", "a.csv")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().endswith("wrote a.csv\n")


def test_the_server_checks_the_command_itself(database, server):
    """A hand-crafted request for anything but a plain audience read is declined, not run."""
    socket_path = Path(str(database) + _handoff.SUFFIX).read_bytes().split(b"\n")[0]
    for argv in (["erase", "--customer", "c00001"], ["suppress", "x.csv"],
                 ["audience", "--store", "S1", "--radius", "2mi", "--points", "/etc/passwd"],
                 ["--db", "/elsewhere.duckdb", "audience", "--store", "S1", "--radius", "2mi"]):
        fields = [_handoff.PROTOCOL, str(database).encode(), b"/", b"18", b"utf-8", b"strict", b"utf-8", b"strict",
                  *(a.encode() for a in argv)]
        request = b"\0".join(fields)
        with socket.socket(socket.AF_UNIX) as conn:
            conn.connect(socket_path)
            conn.sendall(b"%d\n" % len(request) + request)
            conn.shutdown(socket.SHUT_WR)
            reply = b"".join(iter(lambda: conn.recv(65536), b""))
        assert reply.startswith(b"declined\0"), (argv, reply[:200])
    bad = b"\0".join([b"someone-else-9", str(database).encode()])
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(socket_path)
        conn.sendall(b"%d\n" % len(bad) + bad)
        conn.shutdown(socket.SHUT_WR)
        assert b"".join(iter(lambda: conn.recv(65536), b"")).startswith(b"declined\0")


def test_the_announcement_and_socket_are_the_servers_users_alone(database, server):
    announce = Path(str(database) + _handoff.SUFFIX)
    assert stat.S_IMODE(announce.stat().st_mode) == 0o600
    socket_path = Path(announce.read_bytes().split(b"\n")[0].decode())
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700


@pytest.mark.skipif(os.geteuid() != 0, reason="playing another user needs root")
def test_an_attacker_on_the_same_machine_neither_asks_nor_answers(database, server, tmp_path):
    """Another user can neither hand the server a command nor stand in for it."""
    nobody = 65534
    socket_path = Path(str(database) + _handoff.SUFFIX).read_bytes().split(b"\n")[0]
    # 1. asking: even past the folder's mode (root could), a peer of another uid is declined
    code = (f"import os, socket; os.setgid({nobody}); os.setuid({nobody}); s = socket.socket(socket.AF_UNIX);"
            f"s.connect({socket_path!r}); r = b'x'; s.sendall(b'%d\\n' % len(r) + r); s.shutdown(1);"
            "print(b''.join(iter(lambda: s.recv(4096), b'')))")
    mode = stat.S_IMODE(os.stat(socket_path).st_mode)
    assert not mode & 0o002, "anyone may connect to the socket"
    os.chmod(os.path.dirname(socket_path), 0o711)
    os.chmod(socket_path, 0o777)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.chmod(os.path.dirname(socket_path), 0o700)
        os.chmod(socket_path, mode)
    # declined before the request is read: the peer sees the reply, a reset or a broken pipe, never an answer
    assert "audience:" not in out.stdout and "ok" not in out.stdout, (out.stdout, out.stderr)
    assert f"declined (peer runs as uid {nobody})" in server[1].read_text()

    # 2. answering: a fake server run by another user, announced beside a database, is not asked
    db = tmp_path / "victim.duckdb"
    db.write_bytes(database.read_bytes())
    fake = Path(tempfile.mkdtemp(prefix="geotarget-test-fake-"))  # pytest's own folders are closed to nobody
    os.chown(fake, nobody, nobody)
    fake_code = (f"import os, socket; os.setgid({nobody}); os.setuid({nobody}); s = socket.socket(socket.AF_UNIX);"
                 f"s.bind({str(fake / 'cli.sock')!r}); s.listen(1); print('up', flush=True)\n"
                 "while True:\n c, _ = s.accept(); got = c.recv(65536); print('got', len(got), flush=True)\n"
                 " try: c.sendall(b'ok\\x000\\x000\\x0034\\x00audience: 1 customers\\nwrote a.csv\\n')\n"
                 " except OSError: pass\n c.close()")
    liar = subprocess.Popen([sys.executable, "-c", fake_code], stdout=subprocess.PIPE, text=True)
    try:
        assert liar.stdout.readline().strip() == "up"
        for owner in (0, nobody):  # announced by us (pointing at their socket), and announced by them
            announce = Path(str(db) + _handoff.SUFFIX)
            announce.write_bytes(str(fake / "cli.sock").encode() + b"\n1\n")
            os.chmod(announce, 0o600)
            os.chown(announce, owner, owner)
            done = _cli(tmp_path, "--db", str(db), "audience", "--store", "S1", "--radius", "2mi", "-o", "a.csv")
            assert done.returncode == 0, done.stderr.decode()
            assert b"audience: 1 customers" not in done.stdout
            assert len(pd.read_csv(tmp_path / "a.csv")) > 100
    finally:
        liar.kill()
        liar.wait()
        heard = liar.stdout.read().split()
        liar.stdout.close()
        shutil.rmtree(fake, ignore_errors=True)
    assert heard in ([], ["got", "0"]), f"the fake server was told the command: {heard}"


@pytest.mark.parametrize(("argv", "env", "expected"), [
    (["audience", "--store", "S1", "--radius", "2mi"], {}, ("geotarget.duckdb", "audience", [])),
    (["--db=x.duckdb", "--wait", "3", "audience", "-o", "-", "--lat", "-1", "--lng", "2", "--radius", "1km"], {},
     ("x.duckdb", "audience", ["-"])),
    (["audience", "--store", "S1", "--radius", "2mi"], {"GEOTARGET_DB": "/d/g.duckdb"},
     ("/d/g.duckdb", "audience", [])),
    (["--db", "a.duckdb", "--db", "b.duckdb", "audience", "--all-stores", "--radius", "1km"], {},
     ("b.duckdb", "audience", [])),
    (["heatmap", "--output=m.html", "--cells-out", "c.csv", "--cdn", "--where", "tier=gold"], {},
     ("geotarget.duckdb", "heatmap", ["m.html", "c.csv"])),
    (["heatmap", "-o", "m.html", "--png", "m.png"], {}, None),
    (["heatmap", "-o", "m.html", "--holdout", "0.1"], {}, None),
    (["audience", "--points", "p.csv", "--radius", "1km"], {}, None),
    (["audience", "--campaign", "spring", "--store", "S1", "--radius", "1km"], {}, None),
    (["audience", "--store", "S1", "--radius"], {}, None),
    (["audience", "extra", "--store", "S1"], {}, None),
    (["audience", "-ox.csv", "--store", "S1", "--radius", "1km"], {}, None),
    (["audience", "-o=x.csv", "--store", "S1", "--radius", "1km"], {}, None),
    (["--help", "audience"], {}, None),
    (["--version"], {}, None),
    (["map", "coverage", "--radius", "1km", "-o", "c.html"], {}, ("geotarget.duckdb", "map coverage", ["c.html"])),
    (["map", "coverage", "--radius", "1km", "-o", "c.html", "--png", "c.png"], {}, None),
    (["map", "heatmap", "-o", "c.html"], {}, None),
    (["map"], {}, None),
    ([], {}, None),
])
def test_which_commands_may_be_handed_over(argv, env, expected):
    assert _handoff.handoff_target(argv, env) == expected


def test_the_default_database_is_the_clis():
    from geotarget.store.database import DEFAULT_DB

    assert _handoff._DEFAULT_DB == DEFAULT_DB


def test_the_command_line_module_loads_nothing_heavy_before_the_hand_off():
    code = ("import sys; sys.argv = ['geotarget', 'audience', '--store', 'S1', '--radius', '1km'];"
            "import geotarget.cli._handoff as h; h.ask_server(sys.argv[1:]);"
            "print(sorted(m for m in ('typer', 'click', 'numpy', 'duckdb', 'rich', 'pyarrow', 'h3') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                         env=_env(), cwd="/")
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("server_on", [True, False], ids=["handed over", "alone"])
def test_a_reader_that_leaves_early_is_not_an_error(database, server, tmp_path, server_on):
    """`geotarget audience -o - | head -1`: exit 0 and no traceback, handed over or not."""
    env = _env(GEOTARGET_SERVER="auto" if server_on else "off")
    proc = subprocess.Popen([sys.executable, "-m", "geotarget", "--db", str(database), "audience", "--store", "S1",
                             "--radius", "2mi", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            cwd=tmp_path)
    assert proc.stdout.readline() == b"customer_id,lat,lng,distance_m,store_id\n"
    proc.stdout.close()  # the reader leaves with well over a pipe's 64 kB still to come
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 0, err
    assert err.startswith("audience: ") and "Traceback" not in err and "error" not in err


def test_an_answer_cut_short_is_an_error_not_a_success(database, tmp_path):
    """A server that dies halfway through its answer: one error line and exit 2, not half a file and exit 0."""
    import threading

    db = tmp_path / "c.duckdb"
    db.write_bytes(database.read_bytes())
    folder = Path(tempfile.mkdtemp(prefix="geotarget-test-"))
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "cli.sock"))
    listener.listen(1)

    def half_an_answer():
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"ok\0" b"0\0" b"0\0" b"1000\0" + b"customer_id,lat\n")  # 16 of the 1,000 bytes promised

    server = threading.Thread(target=half_an_answer)
    server.start()
    try:
        fd = os.open(str(db) + _handoff.SUFFIX, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, str(folder / "cli.sock").encode() + b"\n1\n")
        os.close(fd)
        done = _cli(tmp_path, "--db", str(db), "audience", "--store", "S1", "--radius", "2mi", "-o", "-")
    finally:
        server.join(timeout=60)
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
    assert done.returncode == 2
    assert done.stdout == b"customer_id,lat\n"
    assert done.stderr.decode().splitlines() == [
        "error: the answer of the running `geotarget serve` was cut short (the server stopped); run the command again"]
