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

__all__ = ["direct_ready", "merge", "reject_misfits", "staged_types"]

#: Columns geotarget owns: their types are fixed, input never changes them.
_OWN = ("lat", "lng", "cell", "opted_out", "name")

#: Staging-only columns: the row number and the consent code and raw value read.
_PRIVATE = ("_row", "_consent", "_consent_raw")


def staged_types(con, stage: str) -> list[tuple[str, str]]:
    """(name, DuckDB type) of the staged input columns, NULL-typed columns as VARCHAR."""
    rows = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $t ORDER BY ordinal_position",
        {"t": stage},
    ).fetchall()
    return [(name, "VARCHAR" if dtype.upper() in ('"NULL"', "NULL") else dtype) for name, dtype in rows
            if name not in _PRIVATE]


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


def reject_misfits(store: Store, con, stage: str, kind: str, key: str, source: str, now, *,
                   allow_retype: bool = False) -> dict[str, int]:
    """Keep stored column types: staged rows whose value does not fit an existing column become rejects.

    With ``allow_retype`` the column becomes text (VARCHAR) instead, with a
    :class:`GeotargetWarning`. Returns rejected rows per reason.
    """
    _, retyped = _column_plan(store, con, stage, kind, key)
    reasons: dict[str, int] = {}
    for old_name, old_type, name in retyped:
        bad = f"{_quote(name)} IS NOT NULL AND TRY_CAST({_quote(name)} AS {old_type}) IS NULL"
        lost = con.execute(f"SELECT count(*) FROM {stage} WHERE {bad}").fetchall()[0][0]
        if not lost:
            continue
        if allow_retype:
            warnings.warn(
                f"column {old_name!r} of {kind} was {old_type}; {source} has values that are not, "
                "so the column now holds text (VARCHAR)",
                GeotargetWarning,
                stacklevel=5,
            )
            con.execute(f"ALTER TABLE {kind} ALTER COLUMN {_quote(old_name)} TYPE VARCHAR")
            continue
        reason = (f"value does not fit column {old_name!r} ({old_type}); fix the value, or pass "
                  "--allow-retype (allow_retype=True) to turn the column into text")
        id_col = ", customer_id" if kind == "customers" else ""
        con.execute(
            f"INSERT INTO rejects BY NAME SELECT $k AS kind, $s AS source, _row AS row_number, "
            f"json_object('{key}', {key}, $col, CAST({_quote(name)} AS VARCHAR)) AS raw, $r AS reason, "
            f"$now AS rejected_at{id_col} FROM {stage} WHERE {bad}",
            {"k": kind, "s": source, "col": name, "r": reason, "now": now})
        con.execute(f"DELETE FROM {stage} WHERE {bad}")
        reasons[reason] = int(lost)
    return reasons


def merge(store: Store, con, stage: str, kind: str, key: str, source: str, now) -> tuple[int, int]:
    """Upsert the staged rows into ``kind``; returns (updated, inserted).

    A partial update: stored rows change only in the columns the staged rows
    carry; other columns keep their values. ``opted_out`` follows the consent
    rules of :mod:`geotarget.store.consent` (an opt-out is sticky) and every
    change is logged. Run :func:`reject_misfits` first.
    """
    from geotarget.store.consent import log_changes, merged_opted_out_sql

    added, _ = _column_plan(store, con, stage, kind, key)
    _add_columns(con, kind, added)
    types = {k.lower(): v for k, v in store.columns(kind).items()}
    staged = [name for name, _ in staged_types(con, stage)]
    present = set(store.columns(stage))
    consent = "_consent" in present
    total_before = con.execute(f"SELECT count(*) FROM {kind}").fetchall()[0][0]
    params = {"now": now, "s": source}
    updated = 0
    if total_before:
        if consent:
            log_changes(con, stage, kind, key, source, now, existing=True)
        sets = [f"{_quote(c)} = CAST(s.{_quote(c)} AS {types[c.lower()]})" for c in staged
                if c not in (key, "opted_out")]
        sets += ["updated_at = $now", "source = $s"]
        if consent:
            sets.append(f"opted_out = {merged_opted_out_sql('t.opted_out', 's._consent')}")
        updated = con.execute(
            f"UPDATE {kind} AS t SET {', '.join(sets)} FROM {stage} AS s WHERE t.{key} = s.{key}", params,
        ).fetchall()[0][0]
    if consent:
        log_changes(con, stage, kind, key, source, now, existing=False)
    exclude = ", ".join(c for c in _PRIVATE if c in present)
    new_only = f" WHERE NOT EXISTS (SELECT 1 FROM {kind} t WHERE t.{key} = s.{key})" if updated else ""
    inserted = con.execute(
        f"INSERT INTO {kind} BY NAME SELECT s.* EXCLUDE ({exclude}), $now AS updated_at, $s AS source "
        f"FROM {stage} s{new_only}", params,
    ).fetchall()[0][0]
    return int(updated), int(inserted)
