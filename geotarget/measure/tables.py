"""The tables of campaign measurement, and how a person is removed from them.

``outcomes``
    What customers did: ``outcome_id`` (optional; unique when given),
    ``customer_id``, ``ts`` (TIMESTAMPTZ), ``value`` (revenue, optional),
    ``kind`` (order, visit, click, ...; optional), ``source``, ``loaded_at``.
``campaign_assignments``
    The frozen assignment of a launched campaign, one row per customer:
    ``campaign_id``, ``customer_id``, ``grp`` (``'treatment'`` or
    ``'control'``), ``store_id`` (the nearest store of a radius campaign),
    ``lat``, ``lng`` (where the customer was at launch).
``campaign_launches``
    One row per launched campaign: ``campaign_id``, ``campaign_name``,
    ``launched_at``, ``holdout``, ``treatment_n``, ``control_n``.

Both ``outcomes`` and ``campaign_assignments`` hold customer ids: erasure
removes a person from them with :func:`forget_customers`
(:data:`PERSONAL_TABLES` names them and their id column).
"""

from __future__ import annotations

from geotarget.store.erasure import register_personal_table

__all__ = ["PERSONAL_TABLES", "forget_customers"]

#: Tables of this package that hold a customer id, and the id column.
PERSONAL_TABLES = {"outcomes": "customer_id", "campaign_assignments": "customer_id"}

_DDL = (
    """CREATE TABLE IF NOT EXISTS outcomes (
        outcome_id VARCHAR,
        customer_id VARCHAR NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        value DOUBLE,
        kind VARCHAR,
        source VARCHAR,
        loaded_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS campaign_assignments (
        campaign_id VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        grp VARCHAR NOT NULL,
        store_id VARCHAR,
        lat DOUBLE,
        lng DOUBLE
    )""",
    """CREATE TABLE IF NOT EXISTS campaign_launches (
        campaign_id VARCHAR PRIMARY KEY,
        campaign_name VARCHAR NOT NULL,
        launched_at TIMESTAMPTZ NOT NULL,
        holdout DOUBLE,
        treatment_n BIGINT NOT NULL,
        control_n BIGINT NOT NULL
    )""",
)


def ensure_tables(store) -> None:
    """Create the measurement tables when they are missing (a no-op on a read-only database)."""
    if store.read_only or getattr(store, "_measure_ready", False):
        return
    have = {r[0] for r in store.con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN "
        "('outcomes', 'campaign_assignments', 'campaign_launches')").fetchall()}
    with store.transaction(customers_unchanged=True) as con:
        if len(have) < 3:
            for ddl in _DDL:
                con.execute(ddl)
        for table, column in PERSONAL_TABLES.items():  # erasure reaches them (geotarget.store.erasure)
            register_personal_table(con, table, column, "customer_id")
    store._measure_ready = True


def has_tables(store) -> bool:
    """Whether the measurement tables exist (a read-only database may predate them)."""
    return store.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'campaign_launches'") == 1


def forget_customers(con, customer_ids) -> dict[str, int]:
    """Delete every outcome and frozen assignment of these customers, inside the caller's transaction.

    The launch counts of the affected campaigns are recomputed. Returns rows
    removed per table. For erasure: call it with the erased ids.

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_outcomes(pd.DataFrame({"customer_id": ["a", "a", "b"], "timestamp": "2026-05-01T00:00:00Z"}))
    >>> with eng.store.transaction() as con:
    ...     forget_customers(con, ["a"])
    {'outcomes': 2, 'campaign_assignments': 0}
    """
    import pandas as pd

    ids = pd.DataFrame({"customer_id": pd.Series([str(i) for i in customer_ids], dtype="string")})
    exists = {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_name IN "
        "('outcomes', 'campaign_assignments')").fetchall()}
    removed = {}
    for table, column in PERSONAL_TABLES.items():
        if table not in exists:
            removed[table] = 0
            continue
        removed[table] = int(con.execute(
            f"DELETE FROM {table} WHERE {column} IN (SELECT customer_id FROM ids)").fetchall()[0][0])
    if removed.get("campaign_assignments"):
        con.execute("""UPDATE campaign_launches AS l SET
                treatment_n = (SELECT count(*) FROM campaign_assignments a
                               WHERE a.campaign_id = l.campaign_id AND a.grp = 'treatment'),
                control_n = (SELECT count(*) FROM campaign_assignments a
                             WHERE a.campaign_id = l.campaign_id AND a.grp = 'control')""")
    return removed
