"""The server end of the hand-off: ``geotarget serve`` answering the command's audiences and maps.

:class:`HandoffServer` listens on a Unix socket in a private folder (mode
0700) and answers only a peer running as its own user (the kernel's
``SO_PEERCRED``): someone who can already read the database file. It
re-checks the command against :data:`geotarget.cli._handoff.COMMANDS`, runs
the very same CLI code on its :class:`~geotarget.Replica` one command at a
time, with the command's output captured per thread and its files written
where the command was typed (a new file is created private and given the
caller's umask once written; a declined command's new files are removed),
and replies with the exit code, the length of the output and the output.
What the client checks, and when the server declines, is in
:mod:`geotarget.cli._handoff`.
"""

from __future__ import annotations

import contextlib
import os
import sys

from ._handoff import PROTOCOL, REPLY_TIMEOUT_S, SUFFIX, handoff_target

__all__ = ["Handoff", "HandoffServer"]


class _Declined(Exception):
    """The server will not answer this command: the client runs it itself."""


class Handoff:
    """What a command handed to the server runs with: the server's engine and the caller's folder."""

    def __init__(self, engine, cwd: str):
        self.engine = engine
        self.cwd = cwd
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
        threading.Thread(target=self._accept, name="geotarget-cli-handoff", daemon=True).start()
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
                conn.settimeout(REPLY_TIMEOUT_S)
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
        handoff = Handoff(engine, cwd)
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
