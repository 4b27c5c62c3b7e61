"""Audiences and maps answered by the ``geotarget serve`` already running on the database.

A one-shot ``geotarget audience ... -o x.csv`` in a new process pays for the
interpreter and for DuckDB, numpy, Arrow, H3 and pyproj before it reads a
row: about 0.3 s, three times what ``psql`` takes for the same query against
a running PostgreSQL; a ``geotarget heatmap`` or ``map coverage`` adds
Folium and takes over a second. A ``geotarget serve`` on the same database
has all of that loaded and its customer index in memory. So, when one is
running, the command hands its words to it and prints what comes back.

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

The server end is :mod:`geotarget.cli._handoff_server`. This module holds
what both ends agree on (the commands, the announcement file, the request
and reply) and the client.

The request is one line with its length, then NUL-separated fields: the
protocol name, the database, the caller's folder and umask, the encodings
of its stdout and stderr, then the words of the command. The reply is
``ok``, the exit code, the length of stderr and of stdout, then both; or
``declined`` and the reason.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["COMMANDS", "PROTOCOL", "REPLY_TIMEOUT_S", "SUFFIX", "ask_server", "handoff_target"]

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
REPLY_TIMEOUT_S = 600.0


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
            conn.settimeout(REPLY_TIMEOUT_S)
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
        return _cut_short(exc.strerror)
    return _cut_short("the server stopped") if left > 0 else int(code)


def _cut_short(why: str) -> int:
    with contextlib.suppress(OSError):
        _write_all(2, f"error: the answer of the running `geotarget serve` was cut short ({why}); "
                      "run the command again\n".encode())
    return 2


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
