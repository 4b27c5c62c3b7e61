"""A memory budget for a readout's grouped passes: DuckDB's ``memory_limit``, set around the readout and restored.

A readout over millions of assigned customers builds hash tables keyed by
customer (one entry per customer with an outcome). DuckDB's default memory
limit is 80 % of the machine's memory, so it keeps those tables, and the
blocks it has read, resident: about 2.5 GB at 10M customers and 50M
outcomes. Under a lower limit DuckDB partitions the tables and spills what
does not fit to its temporary directory, for a little more CPU time.

:func:`run_bounded` runs a readout with ``memory_limit`` lowered to
:data:`READOUT_MEMORY_LIMIT` (or the caller's value; never raised above the
store's current limit), then sets the limit back to what it was. The
setting belongs to the whole database, not to one cursor, so while a readout
runs, other queries on the same store share the lower limit; readouts that
overlap share one lowering (the last to finish restores the limit). When a
query still does not fit (DuckDB cannot spill, e.g. no writable temporary
directory), the readout runs again without the budget rather than fail.
"""

from __future__ import annotations

import re
import threading

import duckdb

from geotarget.errors import InvalidInputError

__all__ = ["READOUT_MEMORY_LIMIT", "run_bounded"]

#: DuckDB's memory limit during a readout (peak resident memory stays about 0.4 GB above it at 10M customers).
READOUT_MEMORY_LIMIT = "1GB"

_UNITS = {"bytes": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_GUARD = threading.Lock()


def to_bytes(text: str) -> int | None:
    """Bytes of a DuckDB memory size (``"1GB"``, ``"953.6 MiB"``), None when it is not one.

    Examples
    --------
    >>> to_bytes("1GB"), to_bytes("1.5 GiB"), to_bytes("512 bytes"), to_bytes("lots")
    (1000000000, 1610612736, 512, None)
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]+)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _state(store) -> dict:
    with _GUARD:
        state = getattr(store, "_readout_budget", None)
        if state is None:
            state = {"lock": threading.Lock(), "users": 0, "previous": None}
            store._readout_budget = state
        return state


def _lower(store, limit: str, state: dict) -> None:
    with state["lock"]:
        state["users"] += 1
        if state["users"] > 1:
            return  # an overlapping readout already lowered it
        current = store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        wanted, have = to_bytes(limit), to_bytes(current)
        if have is not None and wanted >= have:
            return  # the store's limit is already as low
        try:
            store.con.execute(f"SET memory_limit = '{wanted}B'")
            state["previous"] = current
        except duckdb.Error:  # DuckDB could not free enough to lower it now: go on without the budget
            pass


def _restore(store, state: dict) -> None:
    with state["lock"]:
        state["users"] -= 1
        if state["users"] or state["previous"] is None:
            return
        previous, state["previous"] = state["previous"], None
        store.con.execute("RESET memory_limit")  # DuckDB's default (80 % of the memory) ...
        if store.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] != previous:
            # ... unless the store had its own: DuckDB shows it to one decimal (4.6 GiB for 4.6 to 4.7 GiB), so
            # it is set back to the middle of that step, which DuckDB shows as it was
            number, unit = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]+)\s*", previous).groups()
            middle = float(number) + (0.05 if "." in number else 0)
            store.con.execute(f"SET memory_limit = '{int(middle * _UNITS[unit.lower()])}B'")


def run_bounded(store, work, limit: str | None = READOUT_MEMORY_LIMIT):
    """``work()`` with DuckDB's memory limit lowered to ``limit`` (None: as it is), then restored.

    Examples
    --------
    >>> import geotarget
    >>> eng = geotarget.open(":memory:")
    >>> run_bounded(eng.store, lambda: eng.store.scalar("SELECT current_setting('memory_limit')"), "500MB")
    '476.8 MiB'
    >>> eng.store.scalar("SELECT current_setting('memory_limit')") != '476.8 MiB'
    True
    """
    if limit is None:
        return work()
    if to_bytes(limit) is None or to_bytes(limit) <= 0:
        raise InvalidInputError(f"memory_limit {limit!r} is not a memory size; use e.g. '1GB' or '800MB', "
                                "or None to leave DuckDB's limit as it is")
    state = _state(store)
    _lower(store, limit, state)
    try:
        return work()
    except duckdb.OutOfMemoryException:
        pass
    finally:
        _restore(store, state)
    return work()  # it did not fit under the budget: once more with the store's own limit
