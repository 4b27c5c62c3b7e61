"""Consent and erasure for device ids, and region layers that may never be targeted.

Tables (created on first use, ``CREATE TABLE IF NOT EXISTS``):

``device_optouts``
    ``device_sha256`` (hex SHA-256 of the trimmed device id), ``reason``
    (``'opt-out'`` or ``'erased'``), ``added_at``. The list holds hashes
    only, never a raw device id. A device on it is rejected at ingest and
    left out of every visitation audience and footfall count.
``sensitive_layers``
    ``layer``, ``marked_at``. A sensitive layer (clinics, places of worship,
    shelters) can never be used as a target or a visited place, and every
    ping inside one of its polygons is dropped from every visitation
    audience and footfall heatmap.

Where device ids live (what :func:`erase` reaches): the ping files
(``device_id``) and the ``rejects`` rows of kind ``'pings'`` (``raw`` JSON).
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd

from ..errors import InvalidInputError, NotFoundError, PrivacyError

__all__ = ["device_hash", "ensure_tables", "mark_sensitive", "optout_hashes", "sensitive_layers"]

_DDL = [
    """CREATE TABLE IF NOT EXISTS device_optouts (
        device_sha256 VARCHAR PRIMARY KEY,
        reason VARCHAR NOT NULL,
        added_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sensitive_layers (
        layer VARCHAR PRIMARY KEY,
        marked_at TIMESTAMPTZ NOT NULL
    )""",
]


def device_hash(device_id) -> str:
    """Hex SHA-256 of a device id as stored (trimmed text).

    Examples
    --------
    >>> device_hash(" d1 ") == device_hash("d1")
    True
    """
    return hashlib.sha256(str(device_id).strip().encode("utf-8")).hexdigest()


def _has_tables(store) -> bool:
    return store.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('device_optouts', 'sensitive_layers')"
    ) == 2


def ensure_tables(store) -> None:
    """Create the consent tables when they are missing (read-only files are left as they are)."""
    if store.read_only or _has_tables(store):
        return
    with store.transaction() as con:
        for ddl in _DDL:
            con.execute(ddl)


def optout_hashes(store) -> set[str]:
    """Hashes of every opted-out or erased device."""
    if not _has_tables(store):
        return set()
    return {r[0] for r in store.con.execute("SELECT device_sha256 FROM device_optouts").fetchall()}


def _clean_ids(device_ids) -> list[str]:
    if isinstance(device_ids, str):
        device_ids = [device_ids]
    ids = [str(d).strip() for d in device_ids if d is not None and str(d).strip()]
    if not ids:
        raise InvalidInputError("give at least one device id")
    return list(dict.fromkeys(ids))


def add_optouts(con, device_ids, reason: str) -> int:
    """Record devices as opted out (inside the caller's transaction); returns how many are new."""
    ids = _clean_ids(device_ids)
    rows = pd.DataFrame({"device_sha256": [device_hash(d) for d in ids], "reason": reason,  # noqa: F841
                         "added_at": pd.Timestamp.now(tz="UTC")})
    before = con.execute("SELECT count(*) FROM device_optouts").fetchall()[0][0]
    con.execute("INSERT INTO device_optouts SELECT * FROM rows ON CONFLICT DO NOTHING")
    return int(con.execute("SELECT count(*) FROM device_optouts").fetchall()[0][0] - before)


def erase_rejects(con, device_ids) -> int:
    """Delete the ping rejects whose raw row holds one of ``device_ids`` as a value."""
    wanted = set(_clean_ids(device_ids))
    rows = con.execute("SELECT rowid, raw FROM rejects WHERE kind = 'pings'").fetchall()
    doomed = []
    for rowid, raw in rows:
        try:
            values = json.loads(raw).values() if raw else ()
        except (ValueError, AttributeError):
            values = ()
        if any(str(v).strip() in wanted for v in values if v is not None):
            doomed.append(rowid)
    if doomed:
        con.execute("DELETE FROM rejects WHERE rowid IN (SELECT unnest($ids))", {"ids": doomed})
    return len(doomed)


def sensitive_layers(store) -> list[str]:
    """Names of the layers marked sensitive."""
    if not _has_tables(store):
        return []
    return [r[0] for r in store.con.execute("SELECT layer FROM sensitive_layers ORDER BY layer").fetchall()]


def mark_sensitive(store, layer: str) -> None:
    """Mark a region layer sensitive; it can never be unmarked through the library."""
    known = [r[0] for r in store.con.execute("SELECT DISTINCT layer FROM regions ORDER BY 1").fetchall()]
    if layer not in known:
        raise NotFoundError(f"region layer {layer!r} not found; ingest it first (layers: {', '.join(known) or 'none'})")
    ensure_tables(store)
    with store.transaction() as con:
        con.execute("INSERT INTO sensitive_layers VALUES ($l, $t) ON CONFLICT DO NOTHING",
                    {"l": layer, "t": pd.Timestamp.now(tz="UTC")})


def check_targetable(store, layer: str | None) -> None:
    """Refuse a sensitive layer as a target or visited place."""
    if layer is not None and layer in sensitive_layers(store):
        raise PrivacyError(
            f"region layer {layer!r} is marked sensitive and can never be targeted or used for visitation; "
            "choose another layer")
