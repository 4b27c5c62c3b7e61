"""Identity hashes stored with each customer, filled when something first matches on them.

The ingest normalises every email and phone (:mod:`geotarget.store.identity`)
and stores the normalised text. Their SHA-256 (``email_sha256``,
``phone_sha256``) is what suppression and erasure match on, and computing it
for every row costs more than the rest of an ingest together. So an ingest
into a database where nothing could match yet (no email or phone suppression,
no tombstone) leaves the hash columns *pending* and notes which column they
come from in ``meta``; they are filled with one ``UPDATE`` (DuckDB's
``sha256``, on every core) by the first operation that matches on them:

- adding emails, phones or their hashes to the suppression list;
- an erasure;
- an ingest into a database that has such suppressions or tombstones
  (which then hashes its own rows at once, as before);
- :func:`fill_pending_hashes` itself (``Engine.fill_hashes()``,
  ``geotarget hashes fill``).

Each of these runs in the same transaction as the fill, so a match never sees
a pending hash. Audience SQL fails closed besides: a customer whose email or
phone is stored but whose hash is pending counts as suppressed while the
suppression list holds emails or phones (:func:`geotarget.audience.privacy.eligible_customers_sql`).
Customer-match exports hash the stored normalised values themselves and do
not depend on the stored hashes.
"""

from __future__ import annotations

__all__ = ["fill_pending_hashes", "hashes_needed_now", "mark_pending", "pending_hashes"]

_KEY = "pending_hash:"


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def pending_hashes(con) -> dict[str, str]:
    """``{hash column: customers column it is computed from}`` for hashes not filled yet."""
    rows = con.execute("SELECT key, value FROM meta WHERE starts_with(key, $p)", {"p": _KEY}).fetchall()
    return {key[len(_KEY):]: value for key, value in rows}


def hashes_needed_now(con) -> bool:
    """Whether an ingest must hash its rows at once: something could match them (an email or phone
    suppression, or any tombstone)."""
    return bool(con.execute(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM suppressions WHERE kind IN ('email_sha256', 'phone_sha256') "
        "LIMIT 1)) + (SELECT count(*) FROM (SELECT 1 FROM erasures LIMIT 1))").fetchall()[0][0])


def mark_pending(con, columns: dict[str, str]) -> None:
    """Note that ``{hash column: source column}`` hashes are pending (inside the ingest's transaction).

    A hash column pending from a different source column (a file that named
    its email column otherwise) is filled first, so each pending hash has one
    source.
    """
    pending = pending_hashes(con)
    if any(pending.get(hashed, source) != source for hashed, source in columns.items()):
        fill_pending_hashes(con)
    for hashed, source in columns.items():
        con.execute("INSERT INTO meta VALUES ($k, $v) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    {"k": _KEY + hashed, "v": source})


def fill_pending_hashes(con) -> int:
    """Compute the pending hashes (inside the caller's transaction); returns the values hashed."""
    pending = pending_hashes(con)
    if not pending:
        return 0
    existing = {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'").fetchall()}
    filled = 0
    for hashed, source in pending.items():
        if hashed in existing and source in existing:
            filled += int(con.execute(
                f"UPDATE customers SET {hashed} = sha256({_quote(source)}) "
                f"WHERE {hashed} IS NULL AND {_quote(source)} IS NOT NULL").fetchall()[0][0])
        con.execute("DELETE FROM meta WHERE key = $k", {"k": _KEY + hashed})
    return filled
