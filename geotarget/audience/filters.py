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

import re
from dataclasses import dataclass

from geotarget.errors import InvalidFilterError

__all__ = ["OPERATORS", "Condition", "compile_filters", "parse_filters"]

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


def compile_filters(where, columns) -> tuple[str, dict]:
    """SQL for the conditions (AND-ed), with every value bound as a parameter.

    Parameters
    ----------
    where : filters in any accepted form
    columns : iterable of str
        The columns that exist; an unknown column raises an error listing them.

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
