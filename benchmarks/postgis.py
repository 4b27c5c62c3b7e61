"""A private PostgreSQL 15 + PostGIS 3 cluster for the benchmark.

:func:`ensure_installed` installs the Debian packages when PostGIS is missing.
:class:`Cluster` runs ``initdb`` (as the ``postgres`` system user when we are
root, since PostgreSQL refuses to run as root), starts the server on a free
port of 127.0.0.1 with its data under the benchmark's work folder, and always
stops it again: use it as a context manager.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
from pathlib import Path

__all__ = ["Cluster", "PostgisUnavailable", "ensure_installed", "find_bindir"]

PACKAGES = ("postgresql-15", "postgresql-15-postgis-3")

# Settings for a 2-core, 24 GiB machine. Durability is off: this cluster holds
# nothing but regenerated benchmark data, and loading is not a timed workload.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "shared_buffers": "4GB",
    "effective_cache_size": "12GB",
    "work_mem": "256MB",
    "maintenance_work_mem": "2GB",
    "max_parallel_workers_per_gather": "2",
    "max_parallel_maintenance_workers": "2",
    "random_page_cost": "1.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "8GB",
    "shared_preload_libraries": "pg_prewarm",
    "pg_prewarm.autoprewarm": "off",
    "jit": "off",  # JIT compiles for ~100 ms on every index query: PostGIS functions carry high costs
}


class PostgisUnavailable(RuntimeError):
    """PostgreSQL with PostGIS could not be installed or started here."""


def find_bindir() -> Path | None:
    """The ``bin`` folder of a PostgreSQL whose ``lib`` holds PostGIS 3, or None."""
    for lib in sorted(glob.glob("/usr/lib/postgresql/*/lib"), reverse=True):
        if glob.glob(os.path.join(lib, "postgis-3*.so")):
            bindir = Path(lib).parent / "bin"
            if (bindir / "initdb").exists():
                return bindir
    return None


def ensure_installed(*, allow_install: bool = True, log=print) -> Path:
    """Return PostgreSQL's bin folder, installing PostgreSQL 15 + PostGIS 3 first if needed."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if not allow_install:
        raise PostgisUnavailable("PostGIS 3 is not installed and installing was not allowed")
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise PostgisUnavailable(
            "PostGIS 3 is not installed; run `apt-get install -y " + " ".join(PACKAGES) + "` as root"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("installing " + " ".join(PACKAGES) + " (apt-get)")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise PostgisUnavailable(f"`{' '.join(cmd)}` failed: " + " | ".join(tail))
    bindir = find_bindir()
    if bindir is None:
        raise PostgisUnavailable("apt-get finished but no PostGIS 3 library was found under /usr/lib/postgresql")
    return bindir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _service_user() -> str | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise PostgisUnavailable("running as root and there is no `postgres` or `nobody` user to run PostgreSQL as")


class Cluster:
    """A private PostgreSQL cluster in ``folder``; started on enter, stopped on exit."""

    def __init__(self, folder: Path, bindir: Path, *, log=print):
        self.folder = Path(folder).resolve()
        self.data = self.folder / "pgdata"
        self.bindir = Path(bindir)
        self.log = log
        self.port = 0
        self.user = _service_user()
        self.running = False

    # -- process control ---------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if check and done.returncode != 0:
            raise PostgisUnavailable(f"{args[0]} failed: {(done.stderr or done.stdout).strip()[-600:]}")
        return done

    def _chown(self, path: Path) -> None:
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def start(self) -> Cluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._chown(self.folder)
        version_file = self.data / "PG_VERSION"
        if version_file.exists() and version_file.read_text().strip() != self.bindir.parent.name:
            shutil.rmtree(self.data)  # written by another PostgreSQL major version
        if not version_file.exists():
            if self.data.exists():
                shutil.rmtree(self.data)
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C")
        self.port = _free_port()
        opts = " ".join(f"-c {k}={v}" for k, v in SETTINGS.items())
        opts += f" -p {self.port} -c unix_socket_directories={self.data}"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"),
                  "-o", opts, "-w", "-t", "120", "start")
        self.running = True
        self.log(f"PostgreSQL {self.bindir.parent.name} running on 127.0.0.1:{self.port} ({self.data})")
        return self

    def stop(self) -> None:
        if not self.running:
            return
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "120", "stop", check=False)
        self.running = False
        self.log("PostgreSQL stopped")

    def __enter__(self) -> Cluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- connections -------------------------------------------------------
    def connect(self, dbname: str = "postgres"):
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname=dbname)
        con.autocommit = True
        return con

    def ensure_database(self, dbname: str) -> bool:
        """Create ``dbname`` if absent; True when it already existed."""
        admin = self.connect()
        try:
            cur = admin.cursor()
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchall():
                return True
            cur.execute(f'CREATE DATABASE "{dbname}"')  # name built from our own dataset key
            return False
        finally:
            admin.close()

    def drop_database(self, dbname: str) -> None:
        admin = self.connect()
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{dbname}"')
        admin.close()

    def versions(self) -> dict[str, str]:
        con = self.connect()
        cur = con.cursor()
        cur.execute("SHOW server_version")
        server = cur.fetchall()[0][0]
        con.close()
        return {"postgresql": server}
