"""The device pings of one database: ingest, visitation audiences, footfall, consent.

:class:`Pings` is the part of :class:`geotarget.Engine` that owns the ping
dataset (:mod:`geotarget.pings.dataset`) beside the database file. Queries
read only the partitions (UTC day, H3 parent) their covering touches, and
inside those only the row groups whose cells fall in the covering's ranges;
the exact matching is :func:`geotarget.pings.visits.match_pings`.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..maps.metric import check_k_min
from ..store.database import quiet
from . import consent
from .dataset import PING_SCHEMA, erase_devices, partition_paths
from .footfall import Footfall, apply_floor, check_res, footfall_keys
from .ingest import DEFAULT_MAX_ACCURACY_M, ingest_pings
from .places import Places, resolve_places
from .visits import MATCH_SCHEMA, VisitRule, match_pings, visitors_from_matches, visits_from_matches

__all__ = ["Pings", "ScanStats"]

_SQL_RANGES_MAX = 1000


@dataclass
class ScanStats:
    """How much of the dataset a query read: files in the dataset and files read."""

    files_total: int = 0
    files_read: int = 0
    rows_read: int = 0


class Pings:
    """Device pings stored beside one database (see the module doc)."""

    def __init__(self, engine):
        self._engine = engine
        self._root: Path | None = None
        self.last_scan = ScanStats()

    @property
    def root(self) -> Path:
        """The folder of the partitioned ping dataset (``<database>.pings``)."""
        if self._root is None:
            path = self._engine.store.path
            if path == ":memory:":
                self._root = Path(tempfile.mkdtemp(prefix="geotarget-pings-"))
                weakref.finalize(self, shutil.rmtree, str(self._root), True)
            else:
                self._root = Path(str(Path(path).expanduser().resolve()) + ".pings")
        return self._root

    # -- writing -------------------------------------------------------------
    def ingest(self, source, *, max_accuracy_m: float = DEFAULT_MAX_ACCURACY_M, **columns):
        """Validate and append pings; see :meth:`geotarget.Engine.ingest_pings`."""
        self.root.mkdir(parents=True, exist_ok=True)
        return ingest_pings(self._engine.store, self.root, source, max_accuracy_m=max_accuracy_m, **columns)

    def opt_out(self, device_ids) -> int:
        """Add devices to the opt-out list (hashed); they leave every audience and count at once."""
        consent.ensure_tables(self._engine.store)
        with self._engine.store.transaction() as con:
            return consent.add_optouts(con, device_ids, "opt-out")

    def erase(self, device_ids) -> dict:
        """Delete every ping and ping reject of the devices, and keep them out of future ingests."""
        consent.ensure_tables(self._engine.store)
        with self._engine.store.transaction() as con:
            consent.add_optouts(con, device_ids, "erased")
            rejects = consent.erase_rejects(con, device_ids)
            pings = erase_devices(self.root, [str(d).strip() for d in
                                              ([device_ids] if isinstance(device_ids, str) else device_ids)])
        return {"pings": pings, "rejects": rejects}

    # -- reading -------------------------------------------------------------
    def files(self) -> list[str]:
        """Every Parquet file of the dataset."""
        return partition_paths(self.root) if self._root is not None or self.root.exists() else []

    def scan(self, places: Places | None, *, days=None, columns=("device_id", "ts", "lat", "lng", "cell")) -> pa.Table:
        """Pings in the partitions and fine-cell ranges of ``places`` (all pings when None)."""
        total = len(self.files())
        ranges = None if places is None else places.parent_ranges()
        files = partition_paths(self.root, parent_ranges=ranges, days=days)
        self.last_scan = ScanStats(total, len(files))
        if not files:
            return pa.schema([PING_SCHEMA.field(c) for c in columns]).empty_table()
        where, params = "TRUE", {"files": files}
        if places is not None:
            fine = places.fine_ranges()
            if len(fine) <= _SQL_RANGES_MAX:
                parts = []
                for i, (lo, hi) in enumerate(fine.tolist()):
                    parts.append(f"cell BETWEEN $lo{i} AND $hi{i}")
                    params[f"lo{i}"], params[f"hi{i}"] = int(lo), int(hi)
                where = " OR ".join(parts) or "FALSE"
        con = duckdb.connect(":memory:")
        try:
            quiet(con)
            con.execute("SET TimeZone = 'UTC'")
            cols = ", ".join(columns)
            table = con.sql(f"SELECT {cols} FROM read_parquet($files) WHERE {where}", params=params).to_arrow_table()
        finally:
            con.close()
        self.last_scan.rows_read = table.num_rows
        return table

    def _rule(self, **options) -> VisitRule:
        return VisitRule.make(optouts=consent.optout_hashes(self._engine.store), **options)

    def matches(self, places: Places, rule: VisitRule) -> pd.DataFrame:
        """Pings at the places under the rule (see :func:`match_pings`)."""
        table = self.scan(places, days=rule.days())
        return match_pings(table, places, rule).to_pandas(types_mapper=_strings) if table.num_rows else \
            MATCH_SCHEMA.empty_table().to_pandas()

    def places(self, **where) -> Places:
        """Resolve the places of a query (see :func:`resolve_places`)."""
        return resolve_places(self._engine, **where)

    def visits(self, *, where: dict, **rule) -> pd.DataFrame:
        """Visits (device, place, start, end, dwell) at the places; see :meth:`geotarget.Engine.visits`."""
        rule_ = self._rule(**rule)
        visits = visits_from_matches(self.matches(self.places(**where), rule_), rule_)
        return visits[visits["dwell_minutes"] >= rule_.min_dwell_minutes].reset_index(drop=True)

    def visitors(self, *, where: dict, exclude: dict | None = None, **rule) -> pd.DataFrame:
        """Devices that visited the places under the rule; see :meth:`geotarget.Engine.visitors`."""
        rule_ = self._rule(**rule)
        out = visitors_from_matches(self.matches(self.places(**where), rule_), rule_)
        if exclude:
            loyal = visitors_from_matches(self.matches(self.places(**exclude), rule_), rule_)
            out = out[~out["device_id"].isin(loyal["device_id"])].reset_index(drop=True)
        return out

    def footfall(self, res: int = 9, *, k_min: int | None = 10, allow_no_floor: bool = False, start=None, end=None,
                 tz: str = "UTC") -> Footfall:
        """Unique devices per H3 cell per day; see :meth:`geotarget.Engine.footfall`."""
        res = check_res(res)
        k = check_k_min(k_min, allow_no_floor)
        rule = VisitRule.make(start=start, end=end, tz=tz)
        from .places import sensitive_geometries

        sensitive = sensitive_geometries(self._engine)
        optouts = consent.optout_hashes(self._engine.store)
        files = partition_paths(self.root, days=rule.days())
        self.last_scan = ScanStats(len(self.files()), len(files))
        # distinct (day, cell, device) keys per file, counted by DuckDB (which spills past memory)
        con = duckdb.connect(":memory:")
        spill = tempfile.mkdtemp(prefix="geotarget-footfall-")
        try:
            quiet(con)
            con.execute("SET temp_directory = $d", {"d": spill})
            con.execute("SET preserve_insertion_order = false")
            con.execute("CREATE TABLE footfall_keys (day VARCHAR, cell BIGINT, device_id VARCHAR)")
            for path in files:
                table = pq.read_table(path, columns=["device_id", "ts", "lat", "lng", "cell"])
                keys = footfall_keys(table, res, tz=tz, sensitive_wkb=sensitive, optouts=optouts,  # noqa: F841
                                     start_us=rule.start_us, end_us=rule.end_us)
                con.execute("INSERT INTO footfall_keys SELECT * FROM keys")
            frame = con.sql("SELECT day, cell, count(DISTINCT device_id) AS devices FROM footfall_keys "
                            "GROUP BY day, cell").to_arrow_table().to_pandas()
        finally:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
        return apply_floor(frame, res, k)

    def check_targetable(self, layer) -> None:
        """Refuse a sensitive layer as a target."""
        consent.check_targetable(self._engine.store, layer)

    def mark_sensitive(self, layer: str) -> None:
        """Mark a region layer sensitive (see :mod:`geotarget.pings.consent`)."""
        consent.mark_sensitive(self._engine.store, layer)


def _strings(arrow_type):
    return pd.StringDtype() if pa.types.is_string(arrow_type) else None

