"""Write staged rows into ``customers`` or ``stores``: new columns, type changes, upsert.

The ingest stages a file's rows in a temporary table (see
:mod:`geotarget.store.ingest`). :func:`merge` upserts them into the target table;
when the target is empty and no column changes type, :func:`direct_ready`
prepares the table so rows can be written into it directly instead.
"""

from __future__ import annotations

import warnings

from geotarget.errors import GeotargetWarning
from geotarget.store.database import Store
from geotarget.store.validation import _quote

__all__ = ["direct_ready", "merge", "staged_types"]

#: Columns geotarget owns: their types are fixed, input never changes them.
_OWN = ("lat", "lng", "cell", "opted_out", "name")


def staged_types(con, stage: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of the staged input columns, NULL-typed columns as VARCHAR."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $t ORDER BY ordinal_position",
        {"t": stage},
    ).fetchall()
    return [(name, "VARCHAR" if dtype.upper() in ('"NULL"', "NULL") else dtype) for name, dtype in rows
            if name != "_row"]


def _column_plan(store: Store, con, stage: str, kind: str, key: str):
    """Staged columns the table lacks, as (name, type), and existing columns whose type differs,
    as (table name, table type, staged name)."""
    existing = {k.lower(): (k, v) for k, v in store.columns(kind).items()}
    added, retyped = [], []
    for name, dtype in staged_types(con, stage):
        if name.lower() not in existing:
            added.append((name, dtype))
            continue
        old_name, old_type = existing[name.lower()]
        if old_type not in (dtype, "VARCHAR") and name not in (*_OWN, key):
            retyped.append((old_name, old_type, name))
    return added, retyped


def _add_columns(con, kind: str, added) -> None:
    for name, dtype in added:
        con.execute(f"ALTER TABLE {kind} ADD COLUMN {_quote(name)} {dtype}")


def direct_ready(store: Store, con, stage: str, kind: str, key: str) -> bool:
    """Whether rows can go straight into ``kind``: it is empty and no column changes type.

    When they can, the new columns are added here, as :func:`merge` would add them.
    """
    if con.execute(f"SELECT count(*) FROM {kind}").fetchall()[0][0]:
        return False
    added, retyped = _column_plan(store, con, stage, kind, key)
    if retyped:
        return False
    _add_columns(con, kind, added)
    return True


def merge(store: Store, con, stage: str, kind: str, key: str, source: str, now) -> tuple[int, int]:
    """Upsert the staged rows into ``kind``; returns (updated, inserted).

    A column whose staged values do not all cast to its type becomes text
    (VARCHAR), with a :class:`GeotargetWarning`.
    """
    added, retyped = _column_plan(store, con, stage, kind, key)
    _add_columns(con, kind, added)
    for old_name, old_type, name in retyped:
        lost = con.execute(
            f"SELECT count(*) FROM {stage} WHERE {_quote(name)} IS NOT NULL "
            f"AND TRY_CAST({_quote(name)} AS {old_type}) IS NULL"
        ).fetchall()[0][0]
        if lost:
            warnings.warn(
                f"column {old_name!r} of {kind} was {old_type}; {source} has values that are not, "
                "so the column now holds text (VARCHAR)",
                GeotargetWarning,
                stacklevel=5,
            )
            con.execute(f"ALTER TABLE {kind} ALTER COLUMN {_quote(old_name)} TYPE VARCHAR")
    total_before = con.execute(f"SELECT count(*) FROM {kind}").fetchall()[0][0]
    updated = 0
    if total_before:
        updated = con.execute(f"DELETE FROM {kind} WHERE {key} IN (SELECT {key} FROM {stage})").fetchall()[0][0]
    inserted = con.execute(
        f"INSERT INTO {kind} BY NAME SELECT * EXCLUDE (_row), $now AS updated_at, $s AS source FROM {stage}",
        {"now": now, "s": source},
    ).fetchall()[0][0]
    return int(updated), int(inserted) - int(updated)
