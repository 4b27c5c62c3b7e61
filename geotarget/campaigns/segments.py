"""Per-customer checks of promotions: consent, segment filters, holdout.

:meth:`geotarget.Engine.promotions_at` with a ``customer_id`` keeps the
campaigns that may target that customer. The customers' eligibility and the
columns the campaigns filter on are read once per data version into memory
(columns as compact arrays, text dictionary-encoded), and each campaign's
conditions are evaluated in Python with SQL's meaning: a NULL never matches
(except ``is null``), values are compared after the cast DuckDB would make to
the column's type, and a condition DuckDB could not evaluate matches nobody.

Rules, the same as for the campaign's exported audience:

- a campaign with a segment filter applies only to a known, eligible customer
  whose row matches it; an id the database does not know has no attributes,
  so only campaigns without a filter apply to it;
- an opted-out or suppressed customer gets exactly the answer of an unknown
  id: its attributes are never read, and the answer does not tell that it
  opted out (the campaigns without a filter are not targeting: they apply to
  anyone at that point);
- a customer in the campaign's control group (:func:`geotarget.audience.privacy.holdout_groups`
  salted with the campaign id) is held back.
"""

from __future__ import annotations

import hashlib
import math
from datetime import date, datetime

import numpy as np

from geotarget.audience.filters import parse_filters
from geotarget.audience.privacy import eligible_customers_sql

__all__ = ["build_segments", "check_customer_id", "compile_condition", "Segments"]

_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
            "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")
_NO_MATCH = object()


def _number(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return value
    try:
        text = str(value).strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    except (TypeError, ValueError):
        return _NO_MATCH


def _boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    text = str(value).strip().lower()
    return {"true": True, "t": True, "1": True, "false": False, "f": False, "0": False}.get(text, _NO_MATCH)


def _temporal(value, kind):
    if isinstance(value, kind):
        return value
    try:
        return kind.fromisoformat(str(value))
    except ValueError:
        return _NO_MATCH


def _caster(sql_type: str, value):
    """How to cast a condition value to the column's type, as DuckDB would (None: compare as text/number)."""
    base = sql_type.split("(")[0].upper()
    if base in _NUMERIC:
        return _number
    if base == "BOOLEAN":
        return _boolean
    if base == "DATE":
        return lambda v: _temporal(v, date)
    if base.startswith("TIMESTAMP"):
        return lambda v: _temporal(v, datetime)
    if base == "VARCHAR" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None  # DuckDB casts the text column to a number: compare numerically
    return lambda v: ("true" if v else "false") if isinstance(v, bool) else str(v)


def _compare(op: str, left, right) -> bool:
    try:
        if op == "==":
            return left == right
        if op in ("!=", "<>"):
            return left != right
        if op == "<":
            return left < right
        if op == "<=":
            return left <= right
        if op == ">":
            return left > right
        return left >= right
    except TypeError:
        return False


def compile_condition(cond, sql_type: str):
    """A function of the row's value for one condition, with SQL's NULL and cast rules."""
    op = cond.op
    if op == "is null":
        return lambda v: v is None
    if op == "is not null":
        return lambda v: v is not None
    values = list(cond.value) if op in ("in", "not in", "between") else [cond.value]
    cast = _caster(sql_type, values[0])
    if cast is None:  # text column against a number: the row's text is read as a number
        cast, row_cast = _number, _number
    else:
        row_cast = None
    cast_values = [cast(v) for v in values if v is not None]
    if _NO_MATCH in cast_values or (op != "in" and len(cast_values) != len(values)):
        return lambda v: False  # DuckDB would fail or compare with NULL: nobody matches

    def prepare(v):
        if v is None:
            return _NO_MATCH
        return row_cast(v) if row_cast is not None else v

    if op == "in":
        return lambda v: (x := prepare(v)) is not _NO_MATCH and any(_compare("==", x, c) for c in cast_values)
    if op == "not in":
        return lambda v: (x := prepare(v)) is not _NO_MATCH and all(_compare("!=", x, c) for c in cast_values)
    if op == "between":
        lo, hi = cast_values
        return lambda v: (x := prepare(v)) is not _NO_MATCH and _compare(">=", x, lo) and _compare("<=", x, hi)
    target = cast_values[0]
    return lambda v: (x := prepare(v)) is not _NO_MATCH and _compare(op, x, target)


class _Column:
    """One customer column in memory: numbers as a numpy array, text dictionary-encoded."""

    def __init__(self, array):
        import pyarrow as pa
        import pyarrow.compute as pc

        self.valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            enc = pc.dictionary_encode(array)
            self.codes = np.asarray(enc.indices.fill_null(0).to_numpy(zero_copy_only=False))
            self.words = enc.dictionary.to_pylist() or [None]
            self.values = None
        else:
            self.codes = None
            self.values = array.to_pylist()

    def get(self, row: int):
        if not self.valid[row]:
            return None
        return self.words[self.codes[row]] if self.codes is not None else self.values[row]


class Segments:
    """Eligibility, segment columns and per-campaign checks at one data version.

    Campaigns with the same filter share one segment, evaluated once per call.
    """

    def __init__(self, version: int, ineligible: set, rows: dict | None, columns: dict, segment_of: list,
                 segments: list, holdouts: list, fingerprint: tuple = ()):
        self.version = version
        self.fingerprint = fingerprint
        self._ineligible = ineligible
        self._rows = rows
        self._columns = columns
        self._segment_of = segment_of
        self._segments = segments
        self._holdouts = holdouts
        self._plain = None

    def _matches(self, segment: int, row) -> bool:
        if row is None:
            return False
        return all(col is not None and f(self._columns[col].get(row)) for col, f in self._segments[segment])

    def allowed(self, customer_id: str, positions: list[int]) -> list[int]:
        """The campaign positions (sorted) that may target this customer."""
        if self._plain is None:  # the campaigns with neither a segment nor a holdout
            self._plain = frozenset(i for i, (s, h) in enumerate(zip(self._segment_of, self._holdouts))
                                    if s is None and h is None)
        hits = set(positions)
        out = hits & self._plain
        rest = hits - out
        if not rest:
            return sorted(out)
        # an opted-out or suppressed id reads exactly as an id the database does not know
        known = self._rows is not None and customer_id not in self._ineligible
        row = self._rows.get(customer_id) if known else None
        memo: dict = {}
        encoded = customer_id.encode("utf-8")
        segment_of, holdouts = self._segment_of, self._holdouts
        for pos in rest:
            seg = segment_of[pos]
            if seg is not None:
                ok = memo.get(seg)
                if ok is None:
                    ok = memo[seg] = self._matches(seg, row)
                if not ok:
                    continue
            held = holdouts[pos]
            if held is not None:
                prefix, threshold = held
                if int.from_bytes(hashlib.sha256(prefix + encoded).digest()[:8], "big") < threshold:
                    continue
            out.add(pos)
        return sorted(out)


def build_segments(store, campaigns, previous: Segments | None = None) -> Segments:
    """Read eligibility and the filtered columns in one transaction; compile each campaign's checks.

    The customer part of ``previous`` is reused when the customers and the
    suppression list have not changed since: same counts, same latest
    ``updated_at``/``added_at`` (every ingest stamps the rows it writes), same
    columns and types.
    """
    types = store.columns("customers")
    lookup = {c.lower(): c for c in types}
    segment_of: list = []
    segments: list = []
    seen: dict = {}
    needed: list[str] = []
    for c in campaigns:
        key = repr(c.where)
        if not c.where or c.status != "active":
            segment_of.append(None)
            continue
        if key in seen:
            segment_of.append(seen[key])
            continue
        checks = []
        for cond in parse_filters(c.where):
            real = lookup.get(cond.column.lower())
            if real is None:  # the column is gone since the campaign was made: nobody matches
                checks.append((None, None))
                continue
            if real not in needed:
                needed.append(real)
            checks.append((real, compile_condition(cond, types[real])))
        seen[key] = len(segments)
        segment_of.append(len(segments))
        segments.append(checks)
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        version = int(con.execute("SELECT value FROM meta WHERE key = 'data_version'").fetchall()[0][0])
        fingerprint = (tuple(types.items()), tuple(needed)) + con.execute(
            "SELECT (SELECT count(*) FROM customers), (SELECT epoch_us(max(updated_at)) FROM customers), "
            "(SELECT count(*) FROM suppressions), (SELECT epoch_us(max(added_at)) FROM suppressions)").fetchall()[0]
        unchanged = previous is not None and previous.fingerprint == fingerprint
        table = None
        if not unchanged:
            ok = eligible_customers_sql(types)
            ineligible = {r[0] for r in con.execute(f"SELECT customer_id FROM customers WHERE NOT ({ok})").fetchall()}
            ineligible |= {r[0] for r in con.execute("SELECT value FROM suppressions WHERE kind = 'id'").fetchall()}
            if needed:
                select = ", ".join('"' + c.replace('"', '""') + '"' for c in needed)
                # the key under its own name: a campaign may filter on customer_id itself
                table = con.sql(f"SELECT customer_id AS _segment_key, {select} FROM customers WHERE {ok}"
                                ).to_arrow_table()
    finally:
        con.execute("COMMIT")
    if unchanged:
        return Segments(version, previous._ineligible, previous._rows, previous._columns, segment_of, segments,
                        _holdouts(campaigns), fingerprint)
    rows, columns = None, {}
    if table is not None:
        table = table.combine_chunks()
        rows = {cid: i for i, cid in enumerate(table.column("_segment_key").to_pylist())}
        columns.update({c: _Column(table.column(c).combine_chunks()) for c in needed})
    return Segments(version, ineligible, rows, columns, segment_of, segments, _holdouts(campaigns), fingerprint)


def _holdouts(campaigns) -> list:
    """Per campaign: the hash prefix and threshold of its holdout split (:func:`geotarget.audience.privacy.holdout_groups`)."""
    return [(f"{c.id}:".encode(), int(float(c.holdout) * 2**64)) if c.holdout else None for c in campaigns]


def check_customer_id(customer_id) -> str:
    """A customer id as text; a missing or empty one is refused."""
    from geotarget.errors import InvalidInputError

    if customer_id is None or isinstance(customer_id, bool) or (isinstance(customer_id, float)
                                                                and not math.isfinite(customer_id)):
        raise InvalidInputError(f"customer_id must be a customer's id, got {customer_id!r}")
    text = str(customer_id)
    if not text.strip():
        raise InvalidInputError("customer_id must not be empty")
    return text
