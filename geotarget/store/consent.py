"""Consent: the recognised opt-out values, sticky opt-outs, and the consent change log.

A customer's ``opted_out`` flag is read from the consent column of each file
(``opted_out``, ``opt_out``, ``optout``, ``unsubscribed`` or ``--opted-out-col``).
Values are compared after trimming, case-insensitively:

=====================  ======================================================
value                  meaning
=====================  ======================================================
:data:`OPT_OUT_VALUES`  opted out (``true``, ``yes``, ``1``, ``y``, ``t``,
                        ``opted_out``, ``opt_out``, ``optout``, ``out``,
                        ``unsubscribed``, ``stop``)
:data:`NOT_OUT_VALUES`  not opted out (``false``, ``no``, ``0``, ``n``, ``f``);
                        consenting for a new customer, but it does **not** undo
                        a stored opt-out
:data:`OPT_IN_VALUES`   explicit opt-in (``opted_in``, ``opt_in``, ``optin``,
                        ``in``, ``subscribed``, ``resubscribed``, ``consent``,
                        ``consented``): the only values that turn a stored
                        opt-out back into consent
anything else           not recognised: the customer counts as opted out (it
                        fails closed), and the ingest report lists the values
=====================  ======================================================

An empty cell in a present consent column is not recognised either, so it
counts as opted out. A file without a consent column leaves stored customers'
consent as it is; new customers from it are consenting (the report says so).

Every change of a customer's flag, and every customer who arrives opted out,
is written to the ``consent_log`` table: customer, old value, new value, the
raw value read, source, time.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from geotarget._lazy import lazy_module

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = [
    "CONSENT_LOG_DDL",
    "NOT_OUT_VALUES",
    "OPT_IN_VALUES",
    "OPT_OUT_VALUES",
    "consent_codes",
    "consent_log",
    "merged_opted_out_sql",
    "new_opted_out_sql",
]

OPT_OUT_VALUES = frozenset({"true", "t", "yes", "y", "1", "1.0", "opted_out", "opt_out", "optout", "out",
                            "unsubscribed", "stop"})
NOT_OUT_VALUES = frozenset({"false", "f", "no", "n", "0", "0.0"})
OPT_IN_VALUES = frozenset({"opted_in", "opt_in", "optin", "in", "subscribed", "resubscribed", "consent",
                           "consented"})

# codes carried in the staging column _consent
NOT_OUT, OPT_OUT, OPT_IN, UNKNOWN = 0, 1, 2, 3

CONSENT_LOG_DDL = """CREATE TABLE IF NOT EXISTS consent_log (
    customer_id VARCHAR NOT NULL,
    old_value BOOLEAN,
    new_value BOOLEAN NOT NULL,
    raw_value VARCHAR,
    source VARCHAR,
    changed_at TIMESTAMPTZ NOT NULL
)"""


def consent_codes(values: pd.Series) -> tuple[np.ndarray, Counter]:
    """Per row a consent code, and the unrecognised values with their counts.

    Examples
    --------
    >>> codes, unknown = consent_codes(pd.Series(["Yes", "no", "opted_in", "oui", None]))
    >>> codes.tolist(), dict(unknown)
    ([1, 0, 2, 3, 3], {'oui': 1, '': 1})
    """
    if values.dtype == bool:
        return np.where(values.to_numpy(), OPT_OUT, NOT_OUT).astype(np.int8), Counter()
    text = values.astype("string").str.strip().str.lower()
    codes = np.full(len(text), UNKNOWN, dtype=np.int8)
    filled = text.fillna("")
    codes[filled.isin(NOT_OUT_VALUES).to_numpy(dtype=bool)] = NOT_OUT
    codes[filled.isin(OPT_OUT_VALUES).to_numpy(dtype=bool)] = OPT_OUT
    codes[filled.isin(OPT_IN_VALUES).to_numpy(dtype=bool)] = OPT_IN
    unknown = Counter(filled[codes == UNKNOWN].tolist()) if (codes == UNKNOWN).any() else Counter()
    return codes, unknown


def new_opted_out_sql(code: str = "_consent") -> str:
    """SQL: ``opted_out`` of a customer seen for the first time (unrecognised fails closed)."""
    return f"({code} IN ({OPT_OUT}, {UNKNOWN}))"


def merged_opted_out_sql(old: str, code: str = "_consent") -> str:
    """SQL: ``opted_out`` after a file updates a stored customer; an opt-out is sticky."""
    return (f"(CASE WHEN {code} = {OPT_IN} THEN false WHEN {code} = {NOT_OUT} THEN {old} "
            f"ELSE true END)")


def log_changes(con, stage: str, table: str, key: str, source: str, now, *, existing: bool) -> int:
    """Write the consent changes of the staged rows to ``consent_log``; returns how many.

    Runs before the staged rows are merged: ``existing`` rows compare with the
    stored flag, new ones are logged when they arrive opted out.
    """
    con.execute(CONSENT_LOG_DDL)
    if existing:
        sql = (f"INSERT INTO consent_log SELECT s.{key}, t.opted_out, {merged_opted_out_sql('t.opted_out', 's._consent')}, "
               f"s._consent_raw, $s, $now FROM {stage} s JOIN {table} t ON t.{key} = s.{key} "
               f"WHERE {merged_opted_out_sql('t.opted_out', 's._consent')} IS DISTINCT FROM t.opted_out")
    else:
        sql = (f"INSERT INTO consent_log SELECT s.{key}, NULL, true, s._consent_raw, $s, $now FROM {stage} s "
               f"WHERE {new_opted_out_sql('s._consent')} AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{key} = s.{key})")
    return int(con.execute(sql, {"s": source, "now": now}).fetchall()[0][0])


def consent_log(store, customer_id: str | None = None) -> pd.DataFrame:
    """The consent change log, oldest first, for one customer or all."""
    con = store.con
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'consent_log'").fetchall()[0][0]
    if not exists:
        return pd.DataFrame(columns=["customer_id", "old_value", "new_value", "raw_value", "source", "changed_at"])
    return store.frame(
        "SELECT * FROM consent_log WHERE ($id IS NULL OR customer_id = $id) ORDER BY changed_at, customer_id",
        {"id": None if customer_id is None else str(customer_id)})
