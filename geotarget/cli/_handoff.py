"""Audiences and maps answered by the ``geotarget serve`` already running on the database.

A one-shot ``geotarget audience ... -o x.csv`` in a new process pays for the
interpreter and for DuckDB, numpy, Arrow, H3 and pyproj before it reads a
row: about 0.3 s, three times what ``psql`` takes for the same query against
a running PostgreSQL; a ``geotarget heatmap`` or ``map coverage`` adds
Folium and takes over a second. A ``geotarget serve`` on the same database has all of that loaded
and its customer index in memory. So, when one is running, the command hands
its words to it and prints what comes back; this module is both ends of
that hand-off.

The client end (:func:`ask_server`) runs before the CLI framework is
imported and uses the standard library only. It hands a command over only
when all of these hold, and otherwise returns None and the command runs
here as always:

- the command is one of :data:`COMMANDS`, with only the options listed
  there: reads of the database whose only files are the ones they write (no
  ``--points`` file, no holdout or campaign, no PNG, no ``--help``), and the
  folders of those files exist;
- a server announces itself beside the database (``<db>.server`` names its
  socket; the file belongs to the caller's user and only it may write it),
  runs as the caller's user (the kernel's ``SO_PEERCRED``) and answers;
- the server answers from the database as it is now. It serves from a copy
  (:class:`geotarget.Replica`); if the file or its write-ahead log has
  changed since that copy was taken (another size, modification time or
  inode), the server declines and loads a new copy in the background. A
  customer suppressed or opted out by the command just before is therefore
  never in the list the server returns;
- the command succeeded there. On any error or warning the server declines,
  and the command runs here, so that errors read exactly as they always do.

The server end (:class:`HandoffServer`) listens on a Unix socket in a
private folder (mode 0700) and answers only a peer running as its own user
(the kernel's ``SO_PEERCRED``): someone who can already read the database
file. It re-checks the command against the same list, runs the very same
CLI code on its copy one command at a time, with the command's output
captured and its files written where the command was typed (a new file is
created private and given the caller's umask once written; a declined
command's new files are removed), and replies with the exit code, the length of the
output and the output.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["COMMANDS", "SUFFIX", "HandoffServer", "ask_server", "handoff_target"]

#: The file beside the database that names a running server's socket.
SUFFIX = ".server"
PROTOCOL = b"geotarget-handoff-1"
#: The commands a server may answer: (options taking a value, flags, options naming a file to write).
COMMANDS = {
    "audience": (
        frozenset({"-o", "--output", "--store", "--lat", "--lng", "--radius", "--region-layer", "--region",
                   "--ring-cell", "--k", "--res", "--where", "--exclude-within", "--exclude-region", "--column",
                   "--format", "--platform", "--min-size"}),
        frozenset({"--all-stores", "--allow-large-radius", "--no-min-size"}),
        frozenset({"-o", "--output"}),
    ),
    "heatmap": (
        frozenset({"-o", "--output", "--res", "--metric", "--region-layer", "--k-min", "--scale", "--tiles",
                   "--cells-out", "--store", "--radius", "--where"}),
        frozenset({"--no-privacy-floor", "--cdn", "--all-stores"}),
        frozenset({"-o", "--output", "--cells-out"}),
    ),
    "map coverage": (
        frozenset({"-o", "--output", "--radius", "--store", "--res", "--k-min", "--scale", "--tiles"}),
        frozenset({"--all-stores", "--no-privacy-floor", "--cdn"}),
        frozenset({"-o", "--output"}),
    ),
}
_GLOBAL_VALUE_OPTIONS = frozenset({"--db", "--wait"})
_DEFAULT_DB = "geotarget.duckdb"  # geotarget.store.database.DEFAULT_DB (a test keeps the two equal)
_REPLY_TIMEOUT_S = 600.0


def handoff_target(argv: list[str], environ=os.environ) -> tuple[str, str, list[str]] | None:
    """``(database, command, files)`` when ``argv`` is a command a server may answer, else None.

    ``database`` is the path as the CLI would open it (``--db``, else
    ``$GEOTARGET_DB``, else ``geotarget.duckdb``); ``files`` are the files
    the command would write (``-`` is standard output).

    Examples
    --------
    >>> handoff_target(["--db", "g.duckdb", "audience", "--store", "S1", "--radius", "2mi", "-o", "x.csv"], {})
    ('g.duckdb', 'audience', ['x.csv'])
    >>> handoff_target(["audience", "--store=S1", "--radius=2mi"], {"GEOTARGET_DB": "/data/g.duckdb"})
    ('/data/g.duckdb', 'audience', [])
    >>> handoff_target(["heatmap", "--res", "8", "-o", "m.html", "--cells-out", "cells.csv"], {})
    ('geotarget.duckdb', 'heatmap', ['m.html', 'cells.csv'])
    >>> handoff_target(["audience", "--holdout", "0.1", "--store", "S1", "--radius", "2mi"], {}) is None
    True
    >>> handoff_target(["map", "coverage", "--all-stores", "--radius", "1mi", "-o", "c.html"], {})
    ('geotarget.duckdb', 'map coverage', ['c.html'])
    >>> handoff_target(["heatmap", "-o", "m.html", "--png", "m.png"], {}) is None
    True
    >>> handoff_target(["ingest", "customers.csv"], {}) is None
    True
    """
    db = None
    args = list(argv)
    i = 0
    while i < len(args) and args[i].startswith("-"):  # the global options, before the command
        name, eq, value = args[i].partition("=")
        if name not in _GLOBAL_VALUE_OPTIONS:
            return None
        if not eq:
            i += 1
            if i >= len(args):
                return None
            value = args[i]
        if name == "--db":
            db = value
        i += 1
    command = " ".join(args[i:i + 2])  # a command of a group first (`map coverage`), then a plain one
    if command not in COMMANDS:
        command = args[i] if i < len(args) else ""
        if command not in COMMANDS:
            return None
    with_value, flags, writes = COMMANDS[command]
    i += command.count(" ")
    files = []
    i += 1
    while i < len(args):
        name, eq, value = args[i].partition("=")
        if name in flags and not eq:
            i += 1
            continue
        if name not in with_value or (eq and not name.startswith("--")):
            return None  # a file to read, a holdout, --help, a positional word, `--`: the CLI's own business
        if not eq:
            i += 1
            if i >= len(args):
                return None
            value = args[i]
        if name in writes:
            files.append(value)
        i += 1
    return (db or environ.get("GEOTARGET_DB") or _DEFAULT_DB), command, files


# -- the client ------------------------------------------------------------------------------------
def ask_server(argv: list[str]) -> int | None:
    """Have the server running on the database answer ``argv``; its exit code, or None to run it here.

    Nothing is printed unless the server answered: a missing, stale or
    declining server costs a file lookup or a refused connection.
    """
    try:
        return _ask(argv)
    except Exception:  # noqa: BLE001 - e.g. a working folder deleted meanwhile: the command says it better
        return None


def _ask(argv: list[str]) -> int | None:
    target = handoff_target(argv)
    if target is None or not sys.platform.startswith("linux"):
        return None
    db, _, files = target
    cwd = os.getcwd()
    if any(f != "-" and not os.path.isdir(os.path.dirname(os.path.join(cwd, f)) or "/") for f in files):
        return None  # the CLI creates missing folders with the caller's umask; let it
    db = os.path.join(cwd, db)
    try:
        with open(db + SUFFIX, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return None  # announced by someone else, or writable by others: not ours to trust
            socket_path = fh.read(4096).split(b"\n", 1)[0]
    except OSError:
        return None
    import socket
    import struct

    umask = os.umask(0o022)
    os.umask(umask)
    try:
        streams = [getattr(s, a).encode() for s in (sys.stdout, sys.stderr) for a in ("encoding", "errors")]
    except AttributeError:  # no standard streams to speak of
        return None
    fields = [PROTOCOL, os.fsencode(db), os.fsencode(cwd), b"%d" % umask, *streams, *map(os.fsencode, argv)]
    request = b"\0".join(fields)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(_REPLY_TIMEOUT_S)
            conn.connect(socket_path)
            _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  struct.calcsize("3i")))
            if uid != os.geteuid():
                return None  # a server run by someone else: it must not see this command, nor answer it
            conn.sendall(b"%d\n" % len(request) + request)
            conn.shutdown(socket.SHUT_WR)
            return _relay(conn)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: the command was handed to the running `geotarget serve`, which may still "
                         "write its output\n")
        sys.stderr.flush()
        return 130
    except OSError:  # no server listening (a stale file), or it went away before answering
        return None


def _relay(conn) -> int | None:
    """Read the server's reply: print it and return its exit code, or None when it declined."""
    head = b""
    while head.count(b"\0") < 4:
        chunk = conn.recv(65536)
        if not chunk:
            return None  # declined (or gone) before answering: nothing was printed
        head += chunk
    status, code, err_len, out_len, rest = head.split(b"\0", 4)
    if status != b"ok":
        return None
    need = int(err_len)
    while len(rest) < need:
        chunk = conn.recv(max(65536, need - len(rest)))
        if not chunk:
            return None
        rest += chunk
    err, out = rest[:need], rest[need:]
    left = int(out_len) - len(out)
    # from here on the answer is being printed: running the command again would print it twice
    try:
        _write_all(2, err)
        _write_all(1, out)
        while left > 0 and (chunk := conn.recv(min(left, 1 << 20))):
            _write_all(1, chunk)
            left -= len(chunk)
    except BrokenPipeError:  # `geotarget audience -o - | head`: the reader left; not an error
        return int(code)
    except OSError as exc:
        left = left or 1
        why = exc.strerror
    else:
        why = "the server stopped"
    if left > 0:
        with contextlib.suppress(OSError):
            _write_all(2, f"error: the answer of the running `geotarget serve` was cut short ({why}); "
                          "run the command again\n".encode())
        return 2
    return int(code)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


# -- the server ------------------------------------------------------------------------------------
class _Declined(Exception):
    """The server will not answer this command: the client runs it itself."""


class Handoff:
    """What a command handed to the server runs with: the server's engine and the caller's folder."""

    def __init__(self, engine, cwd: str, umask: int):
        self.engine = engine
        self.cwd = cwd
        self.umask = umask
        self.created: list[str] = []
        self.given: dict[str, str] = {}  # resolved path -> the path as the caller wrote it

    def resolve(self, path: str):
        """``path`` as the caller means it; a new file is remembered, to get the caller's umask."""
        from pathlib import Path

        full = Path(self.cwd, path)
        if not full.parent.is_dir():
            raise _Declined("the output folder does not exist")
        if not full.exists():
            self.created.append(str(full))
        self.given[str(full)] = str(Path(path))
        return full

    def shown(self, path) -> str:
        """How the command alone would print ``path``: as the caller wrote it."""
        return self.given.get(str(path), str(path))


class _ThreadStreams:
    """``sys.stdout`` (or stderr) that, in a thread answering a hand-off, is that command's capture."""

    def __init__(self, original, local, name: str):
        self._original, self._local, self._name = original, local, name

    def _stream(self):
        return getattr(self._local, self._name, None) or self._original

    def write(self, text):
        return self._stream().write(text)

    def flush(self):
        return self._stream().flush()

    def __getattr__(self, name):
        return getattr(self._stream(), name)


class HandoffServer:
    """Answer handed-off CLI commands on a Unix socket, from a running server's :class:`~geotarget.Replica`.

    Use as a context manager around the server's run; :meth:`close` removes
    the socket and the ``<db>.server`` file (when it still names this
    server). On platforms without peer credentials, it does nothing.
    """

    def __init__(self, replica, *, log=None):
        self.replica = replica
        self.db = os.path.abspath(replica.path)
        self.announce = self.db + SUFFIX
        self.log = log  # a callable taking one line, or None
        self.folder = None
        self._sock = None
        self._thread = None

    # -- life -------------------------------------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self) -> bool:
        """Listen and announce; False (and nothing started) where it cannot be done safely."""
        import socket
        import tempfile
        import threading

        if not sys.platform.startswith("linux") or not hasattr(socket, "SO_PEERCRED"):
            return False
        self.folder = tempfile.mkdtemp(prefix="geotarget-serve-")  # mode 0700: only this user reaches the socket
        path = os.path.join(self.folder, "cli.sock")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(path)
        self._sock.listen(16)
        self._running = threading.Lock()  # one handed-off command at a time: they share the CLI's state
        self._local = threading.local()
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = _ThreadStreams(sys.stdout, self._local, "out")
        sys.stderr = _ThreadStreams(sys.stderr, self._local, "err")
        try:
            tmp = f"{self.announce}.{os.getpid()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(os.fsencode(path) + b"\n%d\n" % os.getpid())
            os.replace(tmp, self.announce)
        except OSError as exc:  # a folder the server may not write to: serve without hand-offs
            self._say(f"CLI hand-off off: cannot write {self.announce}: {exc.strerror}")
            self.close()
            return False
        self._thread = threading.Thread(target=self._accept, name="geotarget-cli-handoff", daemon=True)
        self._thread.start()
        return True

    def close(self) -> None:
        import shutil
        import socket

        if self._sock is not None:
            try:
                with open(self.announce, "rb") as fh:
                    if fh.read(4096).split(b"\n", 1)[0] == os.fsencode(os.path.join(self.folder, "cli.sock")):
                        os.unlink(self.announce)
            except OSError:
                pass
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
            sys.stdout, sys.stderr = self._streams
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    # -- answering ---------------------------------------------------------------------------------
    def _accept(self) -> None:
        import threading

        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(conn,), name="geotarget-cli-handoff-1", daemon=True).start()

    def _serve(self, conn) -> None:
        import socket
        import struct

        with conn:
            try:
                conn.settimeout(10.0)
                _pid, uid, _gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                      struct.calcsize("3i")))
                if uid != os.geteuid():
                    raise _Declined(f"peer runs as uid {uid}")
                fields = _read_request(conn)
                conn.settimeout(_REPLY_TIMEOUT_S)
                self._answer(conn, fields)
            except _Declined as why:
                self._reply_declined(conn, str(why))
            except OSError:
                pass  # the client left; it prints nothing it did not receive whole

    def _answer(self, conn, fields: list[bytes]) -> None:
        import tempfile
        import time

        if len(fields) < 8 or fields[0] != PROTOCOL:
            raise _Declined("another protocol")
        db, cwd = os.fsdecode(fields[1]), os.fsdecode(fields[2])
        umask = int(fields[3])
        out_enc, out_err, err_enc, err_err = (f.decode() for f in fields[4:8])
        argv = [os.fsdecode(a) for a in fields[8:]]
        target = handoff_target(argv, {"GEOTARGET_DB": db})  # the server checks the command again
        if target is None:
            raise _Declined("not a command the server answers")
        named, command, _ = target
        try:
            same = os.path.samefile(os.path.join(cwd, named), self.db)
        except OSError:
            same = False
        if not same:
            raise _Declined("another database")
        t0 = time.perf_counter()
        with self._running, tempfile.TemporaryFile(dir=self.folder) as out_file, \
                tempfile.TemporaryFile(dir=self.folder) as err_file:
            code = self._run(argv, cwd, umask, out_file, err_file, (out_enc, out_err, err_enc, err_err))
            err_file.seek(0)
            err = err_file.read()
            size = out_file.seek(0, os.SEEK_END)
            out_file.seek(0)
            conn.sendall(b"ok\0%d\0%d\0%d\0" % (code, len(err), size) + err)
            conn.sendfile(out_file)
        self._say(f"CLI `geotarget {command}` answered in {time.perf_counter() - t0:.3f} s")

    def _run(self, argv, cwd, umask, out_file, err_file, encodings) -> int:
        """Run the CLI on ``argv`` here, output captured; its exit code, or :class:`_Declined`."""
        import io
        import warnings

        from . import _app

        engine = self.replica.current_if_fresh()
        if engine is None:
            raise _Declined("the database changed since the server's copy")
        handoff = Handoff(engine, cwd, umask)
        out_enc, out_err, err_enc, err_err = encodings
        out = io.TextIOWrapper(out_file, encoding=out_enc, errors=out_err, write_through=True)
        err = io.TextIOWrapper(err_file, encoding=err_enc, errors=err_err, write_through=True)
        saved = (_app.state.db, _app.state.wait_s)
        self._local.out, self._local.err = out, err
        _app.state.handoff = handoff
        answered = False
        # Files are created private (umask 077) and opened up to the caller's mode only once written: never
        # readable, even for a moment, by someone the caller's own umask would keep out. The umask is the
        # process's; other threads creating files meanwhile get them private too, which is safe.
        server_umask = os.umask(0o077)
        try:
            # catch_warnings is process-wide: a warning of another thread meanwhile only makes this decline
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                code = _app.main(argv)
            out.flush()
            err.flush()
            if code != 0:
                raise _Declined(f"exit code {code}: the client's own run prints the error")
            if caught:
                raise _Declined("the command warned: the client's own run prints the warning")
            answered = True
        except _Declined:
            raise
        except BaseException as exc:  # noqa: BLE001 - whatever it was, the client's own run will say it
            raise _Declined(f"{type(exc).__name__}") from None
        finally:
            os.umask(server_umask)
            self._local.out = self._local.err = None
            _app.state.handoff = None
            _app.state.db, _app.state.wait_s = saved
            out.detach()
            err.detach()
            for path in handoff.created:  # answered: the caller's mode; declined: gone, as if never asked
                with contextlib.suppress(OSError):
                    if answered:
                        os.chmod(path, 0o666 & ~umask)
                    else:
                        os.unlink(path)
        return code

    def _reply_declined(self, conn, why: str) -> None:
        self._say(f"CLI command declined ({why}); the caller runs it itself")
        try:
            conn.sendall(b"declined\0\0\0\0" + why.encode())
        except OSError:
            pass

    def _say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)


def _read_request(conn) -> list[bytes]:
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(4096)
        if not chunk or len(data) > 32:
            raise _Declined("a malformed request")
        data += chunk
    length, _, rest = data.partition(b"\n")
    if not length.isdigit() or int(length) > (1 << 20):
        raise _Declined("a malformed request")
    need = int(length)
    while len(rest) < need:
        chunk = conn.recv(65536)
        if not chunk:
            raise _Declined("a truncated request")
        rest += chunk
    return rest[:need].split(b"\0")
