"""Segment filters: structured conditions on customer columns.

A filter is ``(column, op, value)``; several are combined with AND. Values are
always bound as query parameters and column names are checked against the
table, so no user string is ever pasted into SQL.

Accepted forms::

    [("tier", "==", "gold"), ("age", "between", (25, 40)), ("email", "is null")]
    {"tier": "gold", "age": (">=", 30)}
    ["tier=gold", "age>=30", "tier in gold,silver", "email is null"]   # CLI form
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from geotarget.errors import InvalidFilterError

__all__ = ["OPERATORS", "Condition", "compile_filters", "parse_filters", "typed_conditions"]

#: Operators and the SQL each turns into.
OPERATORS = {
    "==": "=", "=": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
    "in": "IN", "not in": "NOT IN", "between": "BETWEEN", "is null": "IS NULL", "is not null": "IS NOT NULL",
}

_TEXT_RE = re.compile(
    r"^\s*(?P<col>[^\s=!<>]+?)\s*(?P<op>==|!=|<>|<=|>=|=|<|>|\bnot in\b|\bin\b|\bbetween\b|\bis not null\b|\bis null\b)"
    r"\s*(?P<val>.*?)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Condition:
    """One segment condition: ``column op value``."""

    column: str
    op: str
    value: object = None

    def __str__(self) -> str:
        if self.op in ("is null", "is not null"):
            return f"{self.column} {self.op}"
        return f"{self.column} {self.op} {self.value!r}"


def _coerce(text: str):
    """A CLI value as int, float or string (quotes stripped)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _from_text(text: str) -> Condition:
    match = _TEXT_RE.match(text)
    if not match:
        raise InvalidFilterError(
            f"cannot read filter {text!r}; write e.g. 'tier=gold', 'age>=30', 'tier in gold,silver', "
            "'age between 25,40' or 'email is null'"
        )
    col, op, val = match.group("col"), match.group("op").lower(), match.group("val")
    if op in ("in", "not in"):
        return Condition(col, op, tuple(_coerce(v) for v in val.split(",") if v.strip()))
    if op == "between":
        parts = [p for p in re.split(r",|\band\b", val) if p.strip()]
        if len(parts) != 2:
            raise InvalidFilterError(f"'between' needs two values in {text!r}, e.g. 'age between 25,40'")
        return Condition(col, op, (_coerce(parts[0]), _coerce(parts[1])))
    if op in ("is null", "is not null"):
        if val:
            raise InvalidFilterError(f"'{op}' takes no value in {text!r}")
        return Condition(col, op)
    if val == "":
        raise InvalidFilterError(f"filter {text!r} has no value")
    return Condition(col, "==" if op == "=" else op, _coerce(val))


def parse_filters(where) -> list[Condition]:
    """Normalize any accepted filter form to a list of :class:`Condition`.

    Examples
    --------
    >>> [str(c) for c in parse_filters(["tier=gold", "age between 25,40"])]
    ["tier == 'gold'", 'age between (25, 40)']
    >>> [str(c) for c in parse_filters({"tier": ["gold", "silver"]})]
    ["tier in ('gold', 'silver')"]
    """
    if where is None:
        return []
    if isinstance(where, (str, Condition)) or (isinstance(where, tuple) and where and isinstance(where[0], str)
                                               and len(where) in (2, 3) and str(where[1]).lower() in OPERATORS):
        where = [where]
    if isinstance(where, dict):
        items = []
        for col, val in where.items():
            if isinstance(val, tuple) and len(val) == 2 and str(val[0]).lower() in OPERATORS:
                items.append((col, val[0], val[1]))
            elif isinstance(val, (list, set, frozenset)):
                items.append((col, "in", tuple(val)))
            elif val is None:
                items.append((col, "is null"))
            else:
                items.append((col, "==", val))
        where = items
    out = []
    for item in where:
        if isinstance(item, Condition):
            cond = item
        elif isinstance(item, str):
            cond = _from_text(item)
        elif isinstance(item, (tuple, list)) and len(item) in (2, 3):
            col, op = item[0], str(item[1]).lower().strip()
            cond = Condition(str(col), "==" if op == "=" else op, item[2] if len(item) == 3 else None)
        else:
            raise InvalidFilterError(f"cannot read filter {item!r}; use (column, op, value) or 'column=value'")
        if cond.op not in OPERATORS:
            raise InvalidFilterError(f"unknown operator {cond.op!r} in {item!r}; use one of {', '.join(OPERATORS)}")
        if cond.op in ("in", "not in"):
            if isinstance(cond.value, (str, bytes)) or not hasattr(cond.value, "__iter__"):
                raise InvalidFilterError(f"'{cond.op}' needs a list of values in {item!r}")
            values = tuple(cond.value)
            if not values:
                raise InvalidFilterError(f"'{cond.op}' needs at least one value in {item!r}")
            cond = Condition(cond.column, cond.op, values)
        if cond.op == "between" and not (hasattr(cond.value, "__len__") and len(cond.value) == 2):
            raise InvalidFilterError(f"'between' needs (low, high) in {item!r}")
        out.append(cond)
    return out


_NUMBER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL")
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")
_ORDERING = ("<", "<=", ">", ">=", "between")


def _kind(sql_type: str) -> str:
    base = sql_type.split("(")[0].strip().upper()
    if base in _NUMBER_TYPES:
        return "number"
    if base == "BOOLEAN":
        return "boolean"
    if base == "DATE":
        return "date"
    if base.startswith("TIMESTAMP"):
        return "timestamp"
    if base in ("VARCHAR", "TEXT", "STRING", "UUID"):
        return "text"
    return "other"


def _typed_value(value, kind: str, cond: Condition, sql_type: str):
    """One filter value as the column's type takes it; raises naming the column, its type and the value."""
    if value is None:
        return None

    def refuse(hint: str):
        raise InvalidFilterError(
            f"filter {cond}: column {cond.column!r} holds {hint}") from None

    if kind == "number":
        if isinstance(value, bool):
            refuse(f"numbers ({sql_type}), not true/false; compare it with a number, e.g. {cond.column} >= 30")
        if isinstance(value, (int, float)):
            number = value
        else:
            try:
                text = str(value).strip()
                number = int(text) if text.lstrip("+-").isdigit() else float(text)
            except ValueError:
                refuse(f"numbers ({sql_type}); compare it with a number, e.g. {cond.column} >= 30")
        if isinstance(number, float) and not math.isfinite(number):
            refuse(f"numbers ({sql_type}); give a finite number")
        if isinstance(number, int) and not -(2**63) <= number < 2**63:
            number = float(number)
        return number
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        refuse("true/false; compare it with true or false, e.g. " f"{cond.column}=false")
    if kind in ("date", "timestamp"):
        parse = date.fromisoformat if kind == "date" else datetime.fromisoformat
        if isinstance(value, datetime if kind == "timestamp" else date) and not isinstance(value, bool):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return parse(value.strip()).isoformat()
            except ValueError:
                pass
        example = "2026-05-01" if kind == "date" else "2026-05-01T09:00:00"
        refuse(f"{'dates' if kind == 'date' else 'times'} ({sql_type}); give an ISO 8601 value, e.g. {example}")
    if kind == "text":
        if isinstance(value, str):
            return value
        if isinstance(value, (bool, int, float)):
            if cond.op in _ORDERING:
                refuse(f"text ({sql_type}), which orders as text, not as numbers; compare it with text, "
                       f"e.g. {cond.column} = \"{value}\"")
            if isinstance(value, float) and not math.isfinite(value):
                refuse(f"text ({sql_type}); give a text value")
            return ("true" if value else "false") if isinstance(value, bool) else str(value)
        refuse(f"text ({sql_type}); give a text value")
    refuse(f"values of type {sql_type}, which filters cannot compare; only 'is null' and 'is not null' apply")


def typed_conditions(conds, types: Mapping[str, str]) -> list[Condition]:
    """The conditions with each value converted to its column's type, or an error naming the misfit.

    ``age > "abc"``, ``tier > 5`` on a text column, a malformed date or
    ``opted_out == "maybe"`` are refused here, before any query runs, so the
    audience, its campaign and its promotions all read a filter the same way.

    Examples
    --------
    >>> [str(c) for c in typed_conditions(parse_filters(["age>=30", "zip=10001"]),
    ...                                    {"age": "BIGINT", "zip": "VARCHAR"})]
    ['age >= 30', "zip == '10001'"]
    """
    lookup = {c.lower(): c for c in types}
    out = []
    for cond in conds:
        real = lookup.get(cond.column.lower())
        if real is None or cond.op in ("is null", "is not null"):
            out.append(cond)
            continue
        sql_type = str(types[real])
        kind = _kind(sql_type)
        if cond.op in ("in", "not in", "between"):
            value = tuple(_typed_value(v, kind, cond, sql_type) for v in cond.value)
        else:
            value = _typed_value(cond.value, kind, cond, sql_type)
        out.append(Condition(cond.column, cond.op, value))
    return out


def compile_filters(where, columns) -> tuple[str, dict]:
    """SQL for the conditions (AND-ed), with every value bound as a parameter.

    Parameters
    ----------
    where : filters in any accepted form
    columns : iterable of str, or mapping of column name to DuckDB type
        The columns that exist; an unknown column raises an error listing them.
        With types, each value is checked against its column's type
        (:func:`typed_conditions`).

    Returns
    -------
    (sql, params)
        ``sql`` is ``"TRUE"`` when there is no condition.

    Examples
    --------
    >>> compile_filters([("tier", "==", "x'; DROP TABLE customers; --")], ["tier"])
    ('"tier" = $f0', {'f0': "x'; DROP TABLE customers; --"})
    """
    conds = parse_filters(where)
    known = list(columns)
    lookup = {c.lower(): c for c in known}
    for cond in conds:
        if cond.column.lower() not in lookup:
            raise InvalidFilterError(
                f"unknown column {cond.column!r} in filter; available columns: {', '.join(known)}"
            )
    if isinstance(columns, Mapping):
        conds = typed_conditions(conds, columns)
    parts: list[str] = []
    params: dict = {}
    for i, cond in enumerate(conds):
        real = lookup.get(cond.column.lower())
        if real is None:
            raise InvalidFilterError(
                f"unknown column {cond.column!r} in filter; available columns: {', '.join(known)}"
            )
        ident = '"' + real.replace('"', '""') + '"'
        sql_op = OPERATORS[cond.op]
        if cond.op in ("is null", "is not null"):
            parts.append(f"{ident} {sql_op}")
        elif cond.op in ("in", "not in"):
            names = []
            for j, v in enumerate(cond.value):
                params[f"f{i}_{j}"] = v
                names.append(f"$f{i}_{j}")
            parts.append(f"{ident} {sql_op} ({', '.join(names)})")
        elif cond.op == "between":
            params[f"f{i}a"], params[f"f{i}b"] = cond.value
            parts.append(f"{ident} BETWEEN $f{i}a AND $f{i}b")
        else:
            params[f"f{i}"] = cond.value
            parts.append(f"{ident} {sql_op} $f{i}")
    return (" AND ".join(parts) if parts else "TRUE"), params
