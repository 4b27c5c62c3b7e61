"""Erasure (the right to be forgotten), salted tombstones, and the registry of personal tables.

Every table that holds a personal identifier is named in the
``personal_columns`` table: (table, column, kind), where kind is one of
:data:`KINDS`. The tables geotarget creates itself are registered when the
schema is set up; a subpackage that adds a table registers it with one line
right after its ``CREATE TABLE``::

    register_personal_table(con, "outcomes", "customer_id", "customer_id")

:func:`erase` deletes a person from every registered table (tables not
created yet are skipped) in one transaction, and keeps only a tombstone: the
SHA-256 of a per-database random salt and the id, email hash or phone hash.
A later ingest drops rows that match a tombstone and counts them as
"erased, not loaded"; nothing else about the person is kept.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field


from geotarget._lazy import lazy_module
from geotarget.errors import InvalidInputError
from geotarget.store.hashes import fill_pending_hashes
from geotarget.store.identity import is_sha256, normalize_emails, normalize_phones, sha256_hex

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = [
    "ERASED_REASON",
    "KINDS",
    "ErasureReport",
    "drop_erased",
    "ensure_privacy_schema",
    "erase",
    "personal_tables",
    "purge_rejects",
    "register_personal_table",
]

#: What a personal column holds.
KINDS = ("customer_id", "email_sha256", "phone_sha256", "device_id")

#: The ingest report's reason for rows of erased people.
ERASED_REASON = "erased, not loaded"

_DDL = [
    """CREATE TABLE IF NOT EXISTS personal_columns (
        table_name VARCHAR NOT NULL, column_name VARCHAR NOT NULL, kind VARCHAR NOT NULL,
        PRIMARY KEY (table_name, column_name, kind))""",
    """CREATE TABLE IF NOT EXISTS erasures (
        kind VARCHAR NOT NULL, hash VARCHAR NOT NULL, erased_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (kind, hash))""",
    "ALTER TABLE rejects ADD COLUMN IF NOT EXISTS customer_id VARCHAR",
    "ALTER TABLE rejects ADD COLUMN IF NOT EXISTS email_sha256 VARCHAR",
    "ALTER TABLE rejects ADD COLUMN IF NOT EXISTS phone_sha256 VARCHAR",
]

_BUILT_IN = [
    ("customers", "customer_id", "customer_id"),
    ("customers", "email_sha256", "email_sha256"),
    ("customers", "phone_sha256", "phone_sha256"),
    ("rejects", "customer_id", "customer_id"),
    ("rejects", "email_sha256", "email_sha256"),
    ("rejects", "phone_sha256", "phone_sha256"),
    ("consent_log", "customer_id", "customer_id"),
    ("suppressions", "value", "customer_id"),
    ("suppressions", "value", "email_sha256"),
    ("suppressions", "value", "phone_sha256"),
]


def ensure_privacy_schema(con) -> None:
    """Create the erasure tables and register geotarget's own personal columns (inside a transaction)."""
    for ddl in _DDL:
        con.execute(ddl)
    for table, column, kind in _BUILT_IN:
        register_personal_table(con, table, column, kind)
    if not con.execute("SELECT count(*) FROM meta WHERE key = 'erasure_salt'").fetchall()[0][0]:
        con.execute("INSERT INTO meta VALUES ('erasure_salt', $v)", {"v": secrets.token_hex(16)})


def register_personal_table(con, table: str, column: str, kind: str = "customer_id") -> None:
    """Name a table column that holds a personal identifier, so :func:`erase` reaches it.

    Call it in the transaction that creates the table; registering twice is harmless.

    Examples
    --------
    >>> import geotarget
    >>> eng = geotarget.open(":memory:")
    >>> with eng.store.transaction() as con:
    ...     _ = con.execute("CREATE TABLE visits (customer_id VARCHAR, visited_at TIMESTAMPTZ)")
    ...     register_personal_table(con, "visits", "customer_id")
    ...     ("visits", "customer_id", "customer_id") in personal_tables(con)
    True
    """
    if kind not in KINDS:
        raise InvalidInputError(f"personal column kind must be one of {', '.join(KINDS)}, got {kind!r}")
    con.execute("INSERT INTO personal_columns VALUES ($t, $c, $k) ON CONFLICT DO NOTHING",
                {"t": table, "c": column, "k": kind})


def personal_tables(con) -> list[tuple[str, str, str]]:
    """(table, column, kind) of every registered personal column whose table exists."""
    return [tuple(r) for r in con.execute(
        "SELECT p.table_name, p.column_name, p.kind FROM personal_columns p "
        "JOIN information_schema.columns c ON c.table_name = p.table_name AND c.column_name = p.column_name "
        "ORDER BY 1, 2, 3").fetchall()]


def _salt(con) -> str:
    return con.execute("SELECT value FROM meta WHERE key = 'erasure_salt'").fetchall()[0][0]


def _tomb(salt: str, kind: str, value: str) -> str:
    return sha256_hex(f"{salt}{kind}:{value}")


def _tomb_sql(salt_param: str, kind: str, expr: str) -> str:
    """SQL for the tombstone hash of ``expr`` (the same text :func:`_tomb` hashes)."""
    return f"sha256({salt_param} || '{kind}:' || {expr})"


@dataclass
class ErasureReport:
    """What one erasure removed: rows per table, people found, tombstones written."""

    customers: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    tombstones: int = 0

    def __str__(self) -> str:
        parts = ", ".join(f"{t} {n:,}" for t, n in self.removed.items() if n) or "nothing stored"
        return (f"erased {self.customers:,} customer(s); rows removed: {parts}; "
                f"{self.tombstones:,} new tombstone(s) keep them out of later ingests")


def _hashes(values, normalize, what: str) -> set[str]:
    """SHA-256 of each normalised value (vectorised), or the value itself when it is a digest already."""
    values = [str(v) for v in (values or ()) if v is not None and str(v).strip()]
    digests = {v.strip().lower() for v in values if is_sha256(v.strip().lower())}
    raw = [v for v in values if not is_sha256(v.strip().lower())]
    if not raw:
        return digests
    normalized, _ = normalize(pd.Series(raw, dtype=object))
    normalized = normalized.to_pylist()
    bad = [v for v, n in zip(raw, normalized) if n is None]
    if bad:
        raise InvalidInputError(f"{bad[0]!r} is not a valid {what}; fix it, or pass its SHA-256 hex digest")
    return digests | {sha256_hex(n) for n in normalized}


def erase(store, *, ids=None, emails=None, phones=None, phone_region: str = "US") -> ErasureReport:
    """Remove people from every registered table and leave salted tombstones, in one transaction.

    ``emails`` and ``phones`` are raw values (normalised here, the same way as
    at ingest) or their SHA-256 hex digests. Erasing someone twice, or someone
    unknown, is harmless: the report then counts nothing removed.

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a"], "lat": [40.7], "lng": [-74.0],
    ...                                        "email": ["Ann@Example.com"]}))
    >>> erase(eng.store, emails=[" ann@example.COM"]).customers, erase(eng.store, ids=["a"]).customers
    (1, 0)
    """
    id_set = {str(i).strip() for i in (ids or ()) if str(i).strip()}
    email_set = _hashes(emails, normalize_emails, "email address")
    phone_set = _hashes(phones, lambda v: normalize_phones(v, region=phone_region), "phone number")
    if not (id_set or email_set or phone_set):
        raise InvalidInputError("nothing to erase: pass ids, emails or phones (CLI --id, --email, --phone, --file)")
    report = ErasureReport()
    now = pd.Timestamp.now(tz="UTC")
    with store.transaction() as con:
        ensure_privacy_schema(con)
        fill_pending_hashes(con)  # erasure by email or phone matches the stored hashes
        cols = store.columns("customers")
        found = set()
        wanted = pd.DataFrame({"v": sorted(id_set | email_set | phone_set)})  # noqa: F841 (read by DuckDB)
        conds = ["customer_id IN (SELECT v FROM wanted)"]
        conds += [f"{c} IN (SELECT v FROM wanted)" for c in ("email_sha256", "phone_sha256") if c in cols]
        pick = ", ".join(c if c in cols else f"NULL AS {c}" for c in ("email_sha256", "phone_sha256"))
        rows = con.execute(f"SELECT customer_id, {pick} FROM customers WHERE {' OR '.join(conds)}").fetchall()
        for cid, email_hash, phone_hash in rows:
            found.add(cid)
            if email_hash:
                email_set.add(email_hash)
            if phone_hash:
                phone_set.add(phone_hash)
        report.customers = len(found)
        id_set |= found
        values = {"customer_id": id_set, "email_sha256": email_set, "phone_sha256": phone_set, "device_id": set()}
        for table, column, kind in personal_tables(con):
            vals = values.get(kind) or set()
            if not vals or (table == "customers" and kind != "customer_id"):
                continue  # customers sharing a phone or email with someone erased by id stay (found above)
            gone = pd.DataFrame({"v": sorted(vals)})  # noqa: F841 (read by DuckDB)
            n = con.execute(f'DELETE FROM "{table}" WHERE "{column}" IN (SELECT v FROM gone)').fetchall()[0][0]
            report.removed[table] = report.removed.get(table, 0) + int(n)
        salt = _salt(con)
        tombs = pd.DataFrame(  # noqa: F841 (read by DuckDB)
            [("id", _tomb(salt, "id", v), now) for v in id_set]
            + [("email", _tomb(salt, "email", v), now) for v in email_set]
            + [("phone", _tomb(salt, "phone", v), now) for v in phone_set],
            columns=["kind", "hash", "erased_at"])
        before = con.execute("SELECT count(*) FROM erasures").fetchall()[0][0]
        con.execute("INSERT INTO erasures SELECT * FROM tombs ON CONFLICT DO NOTHING")
        report.tombstones = int(con.execute("SELECT count(*) FROM erasures").fetchall()[0][0] - before)
    return report


def drop_erased(con, table: str, key: str, *, where: str = "true", params: dict | None = None) -> int:
    """Delete rows of ``table`` that match a tombstone (by id, email hash or phone hash); returns how many.

    Costs nothing when no one was ever erased.
    """
    if not con.execute("SELECT count(*) FROM (SELECT 1 FROM erasures LIMIT 1)").fetchall()[0][0]:
        return 0
    salt = _salt(con)
    cols = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $t", {"t": table}).fetchall()}
    conds = [f"{_tomb_sql('$salt', 'id', key)} IN (SELECT hash FROM erasures WHERE kind = 'id')"]
    for col, kind in (("email_sha256", "email"), ("phone_sha256", "phone")):
        if col in cols:
            conds.append(f"({col} IS NOT NULL AND {_tomb_sql('$salt', kind, col)} IN "
                         f"(SELECT hash FROM erasures WHERE kind = '{kind}'))")
    return int(con.execute(f"DELETE FROM {table} WHERE ({where}) AND ({' OR '.join(conds)})",
                           {"salt": salt, **(params or {})}).fetchall()[0][0])


def purge_rejects(store, *, older_than: str | None = None) -> int:
    """Delete rejected rows, all or those older than a duration such as ``"30d"``, ``"12h"`` or ``"90m"``."""
    import re

    params: dict = {}
    where = "true"
    if older_than is not None:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhm])\s*", str(older_than).lower())
        if not match:
            raise InvalidInputError(f"older_than must look like 30d, 12h or 90m, got {older_than!r}")
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        params["cut"] = pd.Timestamp.now(tz="UTC") - pd.Timedelta(**{unit: float(match.group(1))})
        where = "rejected_at < $cut"
    with store.transaction() as con:
        return int(con.execute(f"DELETE FROM rejects WHERE {where}", params).fetchall()[0][0])
