"""The DuckDB store: one database file, its schema, and its transactions.

Tables (schema version :data:`SCHEMA_VERSION`):

``meta``
    key/value facts: schema version, stored H3 resolution, data version, the
    file's ``instance_id``, and the nonce of the customer index written by the
    last customer upsert (``index_nonce``).
``customers``
    ``customer_id`` (unique, enforced by the ingest merge), ``lat``, ``lng``,
    ``cell`` (UBIGINT, H3 at the stored resolution), ``opted_out``,
    ``updated_at``, ``source``, then every other input column with its type.
``stores``
    ``store_id`` (unique), ``name``, ``lat``, ``lng``, ``cell``, other columns.
``regions``
    ``layer``, ``region_id``, ``name``, ``geometry`` (WKB), bounding box,
    ``properties`` (JSON text).
``rejects``
    ``kind``, ``source``, ``row_number``, ``raw`` (JSON), ``reason``,
    ``rejected_at``.
``suppressions``
    ``kind`` ('id', 'email_sha256' or 'phone_sha256'), ``value``, ``added_at``.
``consent_log``, ``erasures``, ``personal_columns`` (since schema version 3)
    consent changes (:mod:`geotarget.store.consent`); salted erasure
    tombstones and the registry of tables holding personal ids
    (:mod:`geotarget.store.erasure`). ``customers`` gains ``email_sha256`` and
    ``phone_sha256`` when a file carries emails or phones; ``rejects`` gains
    ``customer_id``, ``email_sha256`` and ``phone_sha256``.
``campaigns`` (since schema version 2)
    promotions, written by :mod:`geotarget.campaigns.campaign`: ``id``, ``name``,
    ``geofence``, ``where_filters`` and ``metadata`` (JSON text),
    ``start_at``, ``end_at``, ``holdout``, ``status``, ``created_at``,
    ``updated_at``.

Migrations: a file of an older schema version gains the missing tables when
it is opened read-write (every ``CREATE TABLE`` is ``IF NOT EXISTS``); opened
read-only it is read as it is, and a missing ``campaigns`` table reads as no
campaigns. A file of a newer version raises :class:`SchemaVersionError`.

Uniqueness of ``customer_id`` is kept by the ingest merge rather than a
declared PRIMARY KEY: DuckDB's ART index made a 10-million-row load about
five times slower and 60 % heavier on this machine, and every write goes
through the merge anyway.

``customer_id`` is stored uncompressed. Customer ids are near-unique text
(CRM keys, UUIDs, hashes): DuckDB's dictionary/FSST compression of them cost
0.46 CPU-seconds per million rows at every write against 0.18 uncompressed,
about a fifth of a whole ingest, to save 13 bytes per customer on disk (10.5
against 24.7 MB per million ``c00000000``-style ids). Other text columns keep
DuckDB's choice: segments and tiers repeat, and compress tenfold.

Every write runs in one transaction and bumps ``data_version`` in that same
transaction, so readers can tell when their in-memory indexes are stale.
Files derived from the data and kept beside the database (``<db>.derived.*``,
e.g. the persisted customer index) are tagged with the file's ``instance_id``
and the ``data_version`` they were read at, and every commit deletes them,
except those that the commit itself brought up to date (a customer upsert
updates the customer index in its transaction: ``customers_tracked``).
:meth:`Store.read_consistent` runs a read that must not straddle a commit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import threading
import time
import uuid
from pathlib import Path

import duckdb

from geotarget.errors import DatabaseLockedError, GeotargetError, SchemaVersionError, SourceError
from geotarget.geo.cells import FINE_RES
from geotarget.store.consent import CONSENT_LOG_DDL
from geotarget.store.erasure import ensure_privacy_schema
from geotarget.store.identity import backfill_hashes

__all__ = ["DEFAULT_DB", "SCHEMA_VERSION", "Store", "default_db_path"]

#: Version of the table layout written by this geotarget.
SCHEMA_VERSION = 3

#: File name of the default database, in the working directory.
DEFAULT_DB = "geotarget.duckdb"

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
    """CREATE TABLE IF NOT EXISTS customers (
        customer_id VARCHAR NOT NULL USING COMPRESSION uncompressed,
        lat DOUBLE NOT NULL,
        lng DOUBLE NOT NULL,
        cell UBIGINT NOT NULL,
        opted_out BOOLEAN NOT NULL DEFAULT false,
        updated_at TIMESTAMPTZ NOT NULL,
        source VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS stores (
        store_id VARCHAR NOT NULL,
        name VARCHAR,
        lat DOUBLE NOT NULL,
        lng DOUBLE NOT NULL,
        cell UBIGINT NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        source VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS regions (
        layer VARCHAR NOT NULL,
        region_id VARCHAR NOT NULL,
        name VARCHAR,
        geometry BLOB NOT NULL,
        xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE,
        properties VARCHAR,
        source VARCHAR,
        PRIMARY KEY (layer, region_id)
    )""",
    """CREATE TABLE IF NOT EXISTS rejects (
        kind VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        row_number BIGINT,
        raw VARCHAR,
        reason VARCHAR NOT NULL,
        rejected_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS suppressions (
        kind VARCHAR NOT NULL,
        value VARCHAR NOT NULL,
        added_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (kind, value)
    )""",
    """CREATE TABLE IF NOT EXISTS campaigns (
        id VARCHAR PRIMARY KEY,
        name VARCHAR NOT NULL,
        geofence VARCHAR NOT NULL,
        where_filters VARCHAR NOT NULL,
        start_at TIMESTAMPTZ,
        end_at TIMESTAMPTZ,
        holdout DOUBLE,
        metadata VARCHAR NOT NULL,
        status VARCHAR NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
    )""",
]


# data_version per open database file, shared by every Store on it in this process
_VERSIONS: dict = {}
# commit sequence per file: odd while a COMMIT is landing (a seqlock for readers)
_SEQS: dict = {}
_VERSIONS_LOCK = threading.Lock()


def quiet(con) -> None:
    """Turn DuckDB's progress bar off on a connection (a library prints nothing unasked).

    Inside Jupyter without ipywidgets DuckDB refuses to change the setting at
    all; there it draws no bar either, so the refusal is ignored.
    """
    try:
        con.execute("SET enable_progress_bar = false")
    except duckdb.Error:
        pass


def default_db_path() -> str:
    """The database used when none is named: ``$GEOTARGET_DB`` or ``./geotarget.duckdb``."""
    return os.environ.get("GEOTARGET_DB") or DEFAULT_DB


class Store:
    """One DuckDB database holding geotarget's tables.

    The store owns its connection (never DuckDB's hidden default one) and
    hands each thread a cursor of its own. Writes are serialized by a lock and
    run in a transaction (:meth:`transaction`).

    ``lock_timeout`` is how long to wait, with backoff, while another process
    holds the file. ``connection`` wraps an in-memory copy of a file instead
    of opening one (:mod:`geotarget.replica`); ``path`` then only names it.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, read_only: bool = False,
                 lock_timeout: float = 0.0, connection: duckdb.DuckDBPyConnection | None = None):
        self.path = str(path) if path is not None else default_db_path()
        self.read_only = read_only
        # an in-memory copy of a file reads (never writes) the files derived from that file
        self._copy_of_file = connection is not None and self.path != ":memory:"
        if connection is not None:  # an in-memory copy made by geotarget.replica, labelled with its file
            self._con = connection
            self._setup(read_only, private=True)
            return
        if self.path != ":memory:":
            parent = Path(self.path).expanduser().resolve().parent
            if not parent.is_dir():
                raise SourceError(f"folder {str(parent)!r} for database {self.path!r} does not exist; create it first")
            if read_only and not Path(self.path).exists():
                raise SourceError(f"database {self.path!r} does not exist; ingest data first or check --db")
        self._con = _connect_retrying(self.path, read_only, lock_timeout)
        self._setup(read_only, private=self.path == ":memory:")

    def _setup(self, read_only: bool, *, private: bool) -> None:
        self._local = threading.local()
        self.write_lock = threading.RLock()
        self.read_only = False if private else read_only  # an in-memory copy may migrate itself
        self._check_schema()
        self.read_only = read_only
        self._file_backed = not private
        if self._file_backed and not read_only and self.meta("instance_id") is None:
            self.con.execute("INSERT INTO meta VALUES ('instance_id', $v) ON CONFLICT (key) DO NOTHING",
                             {"v": uuid.uuid4().hex})
        key = self.path if private else str(Path(self.path).expanduser().resolve())
        self._version_key = (key, id(self)) if private else key
        with _VERSIONS_LOCK:
            _VERSIONS[self._version_key] = int(self.meta("data_version") or 0)
            _SEQS.setdefault(self._version_key, 0)

    # -- connections -------------------------------------------------------
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor on the database."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            quiet(cur)
            self._local.cursor = cur
        return cur

    def interrupt(self) -> None:
        """Stop the queries running on this database now (they raise; their transactions roll back)."""
        self._con.interrupt()

    def close(self) -> None:
        """Close the database (every thread's cursor with it)."""
        with contextlib.suppress(Exception):
            self._con.close()

    @contextlib.contextmanager
    def transaction(self, *, customers_unchanged: bool = False, customers_tracked: bool = False):
        """Run a block in one write transaction, rolled back on any exception.

        Files derived from the data (:meth:`derived_path`) are deleted after
        the commit, unless the caller promises ``customers_unchanged`` (the
        block writes neither customers nor suppressions, e.g. a campaign):
        then their tags move on to the new data version.

        ``customers_tracked`` is the caller's promise that the block names
        every customer it writes with :meth:`touch_customers` (and writes no
        suppression). The customer snapshot's keeper (:attr:`on_customers_written`,
        set by the audience layer) then brings the snapshot up to date inside
        the same transaction, before COMMIT; the files it writes outlive the
        commit, and a query after the write needs no rebuild.

        KeyboardInterrupt rolls back too; a killed process loses only the
        uncommitted transaction (DuckDB replays committed WAL entries only).
        """
        if self.read_only:
            raise GeotargetError(f"database {self.path!r} is open read-only; open it with read_only=False to write")
        with self.write_lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            self._local.touched = [] if customers_tracked else None
            try:
                yield con
                before = int(con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchall()[0][0])
                con.execute(
                    "UPDATE meta SET value = CAST(CAST(value AS BIGINT) + 1 AS VARCHAR) WHERE key = 'data_version'"
                )
                kept = self._keep_snapshot_current(con, before + 1) if customers_tracked else None
                self._bump_seq()  # odd: readers that overlap this commit retry
                try:
                    con.execute("COMMIT")
                    with _VERSIONS_LOCK:
                        _VERSIONS[self._version_key] = _VERSIONS.get(self._version_key, 0) + 1
                finally:
                    self._bump_seq()
                if customers_unchanged:
                    self._retag_derived(before, before + 1)
                else:
                    self._drop_derived(keep=() if kept is None else kept[0])
                if kept is not None:
                    kept[1]()  # the new snapshot answers this process's next query
            except BaseException:
                with contextlib.suppress(Exception):
                    con.execute("ROLLBACK")
                raise
            finally:
                self._local.touched = None

    #: Set by the audience layer: ``keeper(con, touched, version)`` runs inside a ``customers_tracked``
    #: transaction before COMMIT, with ``touched`` a temporary table of the customer ids written (None:
    #: no customer was; ``"customers"``: every customer was, e.g. a load into an empty table). It returns None (nothing kept: the derived files are deleted as after any write),
    #: or the derived files it wrote for ``version`` and a function to call once the commit has landed.
    on_customers_written = None

    def touch_customers(self, select_sql: str | None = None) -> None:
        """In a ``customers_tracked`` transaction: note the customers that ``select_sql`` lists as written.

        ``select_sql`` returns one column of customer ids (e.g. ``SELECT
        customer_id FROM stage``); it is run at once, so its tables may be
        dropped afterwards. None says every customer was written. Outside
        such a transaction this does nothing.
        """
        touched = getattr(self._local, "touched", None)
        if touched is None or touched == ["customers"]:
            return
        if select_sql is None:
            for name in touched:
                self.con.execute(f"DROP TABLE IF EXISTS {name}")
            touched[:] = ["customers"]
            return
        if not touched:
            name = f"_touched_{uuid.uuid4().hex[:12]}"
            self.con.execute(f"CREATE TEMP TABLE {name} (customer_id VARCHAR)")
            touched.append(name)
        self.con.execute(f"INSERT INTO {touched[0]} SELECT * FROM ({select_sql})")

    def _keep_snapshot_current(self, con, version: int):
        touched = self._local.touched
        keeper = self.on_customers_written
        try:
            return None if keeper is None else keeper(con, touched[0] if touched else None, version)
        finally:
            if touched and touched[0] != "customers":
                con.execute(f"DROP TABLE IF EXISTS {touched[0]}")

    # -- files derived from the data, kept beside the database ---------------
    def derived_path(self, name: str, *, for_writing: bool = False) -> Path | None:
        """Where a file derived from the data named ``name`` lives (``<db>.derived.<name>``).

        None for an in-memory database; an in-memory copy of a file
        (:mod:`geotarget.replica`) may read its file's derived files but not
        write them (None ``for_writing``). Such files must be tagged with
        :attr:`instance_id` and :attr:`data_version` and checked before use;
        every commit deletes them.
        """
        if not (self._file_backed or (self._copy_of_file and not for_writing)):
            return None
        return Path(f"{self.path}.derived.{name}")

    @property
    def instance_id(self) -> str | None:
        """A random id given to the database file when first opened for writing (None before that)."""
        return self.meta("instance_id") if self._file_backed or self._copy_of_file else None

    def _retag_derived(self, old: int, new: int) -> None:
        """Move the tags (``<derived file>.tag``, JSON) written at data version ``old`` on to ``new``."""
        if not self._file_backed:
            return
        import json

        folder = Path(self.path).expanduser().resolve().parent
        for tag in folder.glob(f"{glob.escape(Path(self.path).name)}.derived.*.tag"):
            try:
                facts = json.loads(tag.read_text(encoding="utf-8"))
                if facts.get("data_version") != old:
                    continue
                facts["data_version"] = new
                tmp = tag.with_name(f"{tag.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                tmp.write_text(json.dumps(facts), encoding="utf-8")
                os.replace(tmp, tag)
            except (OSError, ValueError):
                with contextlib.suppress(OSError):
                    tag.unlink()  # a tag that cannot be moved on must not stay behind

    def _drop_derived(self, keep=()) -> None:
        if not self._file_backed:
            return
        folder = Path(self.path).expanduser().resolve().parent
        kept = {Path(p).resolve() for p in keep}
        for stale in folder.glob(f"{glob.escape(Path(self.path).name)}.derived.*"):
            if stale.resolve() in kept:
                continue
            with contextlib.suppress(OSError):
                stale.unlink()

    def _bump_seq(self) -> None:
        with _VERSIONS_LOCK:
            _SEQS[self._version_key] = _SEQS.get(self._version_key, 0) + 1

    def read_consistent(self, read, *, attempts: int = 4):
        """Call ``read()`` so that its answer reflects one committed state of the database.

        A read that combines in-memory snapshots with SQL could otherwise see
        the state before a commit in one part and after it in another. The
        read is retried when a commit from this process landed while it ran
        (a sequence lock: no reader ever blocks a writer, and no writer ever
        blocks a reader for longer than a commit). After ``attempts`` quick
        tries it keeps trying with longer pauses, never taking the write
        lock, which a long ingest holds for its whole transaction. Commits
        from other processes cannot happen while this process holds the file
        (DuckDB's file lock).
        """
        attempt = 0
        while True:
            seq = _SEQS[self._version_key]
            if seq % 2 == 0:
                result = read()
                if _SEQS[self._version_key] == seq:
                    return result
            attempt += 1
            time.sleep(0.0002 * attempt if attempt <= attempts else 0.005)

    # -- schema ------------------------------------------------------------
    def _check_schema(self) -> None:
        con = self.con
        has_meta = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta'"
        ).fetchall()[0][0]
        if has_meta:
            row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall()
            found = int(row[0][0]) if row else 0
            if found > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"database {self.path!r} has schema version {found}, newer than this geotarget "
                    f"understands ({SCHEMA_VERSION}); upgrade geotarget (pip install -U geotarget)"
                )
            if found == SCHEMA_VERSION or (self.read_only and found >= 1):
                return  # an older file opened read-only is read as it is
        if self.read_only:
            raise SourceError(f"{self.path!r} is not a geotarget database; ingest data into it first")
        with self.write_lock:
            con.execute("BEGIN TRANSACTION")
            try:
                for ddl in _SCHEMA:
                    con.execute(ddl)
                con.execute(CONSENT_LOG_DDL)
                ensure_privacy_schema(con)
                backfill_hashes(con)
                for key, value in (
                    ("schema_version", SCHEMA_VERSION),
                    ("h3_res", FINE_RES),
                    ("data_version", 0),
                ):
                    con.execute(
                        "INSERT INTO meta VALUES ($k, $v) ON CONFLICT (key) DO NOTHING",
                        {"k": key, "v": str(value)},
                    )
                con.execute("UPDATE meta SET value = $v WHERE key = 'schema_version'", {"v": str(SCHEMA_VERSION)})
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def frame(self, sql: str, params: dict | None = None):
        """Run a query and return a pandas DataFrame (through Arrow).

        DuckDB's own ``.df()`` trips a pandas 3 deprecation; Arrow does not
        and keeps strings Arrow-backed.
        """
        return self.con.sql(sql, params=params).to_arrow_table().to_pandas()

    def scalar(self, sql: str, params: dict | None = None):
        """The first value of a query's first row (None when there is no row).

        Always fetches the whole result: DuckDB 2 refuses new work on a
        connection with a half-read result.
        """
        rows = self.con.execute(sql, params or {}).fetchall()
        return rows[0][0] if rows else None

    def meta(self, key: str) -> str | None:
        """A value from the ``meta`` table."""
        return self.scalar("SELECT value FROM meta WHERE key = $k", {"k": key})

    @property
    def res(self) -> int:
        """The H3 resolution of the stored ``cell`` columns."""
        return int(self.meta("h3_res") or FINE_RES)

    @property
    def data_version(self) -> int:
        """A counter bumped by every committed write.

        Read from memory, not the file: DuckDB's file lock lets only this
        process write while it holds the database open, and every write goes
        through :meth:`transaction`, which bumps both.
        """
        return _VERSIONS[self._version_key]

    def columns(self, table: str) -> dict[str, str]:
        """Column name -> DuckDB type of a table, in table order."""
        rows = self.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = $t ORDER BY ordinal_position",
            {"t": table},
        ).fetchall()
        return dict(rows)


def _connect_retrying(path: str, read_only: bool, lock_timeout: float) -> duckdb.DuckDBPyConnection:
    """Connect, retrying with backoff for up to ``lock_timeout`` seconds while another process holds the file."""
    deadline = time.monotonic() + max(0.0, lock_timeout)
    delay = 0.01
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            msg = str(exc).splitlines()[0]
            if "lock" not in msg.lower():
                raise SourceError(f"cannot open database {path!r}: {msg}") from None
            if time.monotonic() + delay > deadline:
                waited = f" after waiting {lock_timeout:g} s" if lock_timeout > 0 else ""
                raise DatabaseLockedError(
                    f"database {path!r} is locked by another process{waited}; wait for the writer to finish, "
                    "raise lock_timeout, or serve readers with geotarget.open(path, snapshot=True)"
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise SourceError(f"cannot open {path!r} as a DuckDB database: {str(exc).splitlines()[0]}") from None
