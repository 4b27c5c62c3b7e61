"""The privacy policy kept in the database, and each API key's differential-privacy budget.

Two tables, created the first time they are written (``CREATE TABLE IF NOT
EXISTS``; a database that never had a policy reads as the defaults):

``privacy_policy``
    ``name``, ``value`` (text), ``updated_at``: one row per setting changed
    from its default.
``privacy_budget``
    ``key_id`` (the short digest of an API key, or a name the library caller
    chose; never a customer id), ``spent`` (epsilon used so far),
    ``updated_at``.

The settings (:class:`PrivacyPolicy`):

``k_min``
    the smallest group a heatmap cell or region may describe (10);
``min_audience``
    the smallest audience whose size or file is released (100);
``min_exclusion_m``
    the smallest exclusion zone an audience count may carry, in metres
    (1,850 ft = 563.88 m, California's radius for precise geolocation);
``heatmap_res``
    the H3 resolutions heatmaps are published at (``8``); the consistent
    suppression of :mod:`geotarget.maps.suppression` is computed across all of
    them and every region layer;
``count_step``
    released audience counts are rounded to a multiple of this (10);
``dp_budget``
    the total epsilon one key may spend on differentially private answers (1:
    a key's answers together change by at most a factor e whether or not any one
    customer is in the data; raise it only for partners you trust more);
``sensitive_columns``
    customer columns that, like email and phone, only a ``pii`` key may download.
"""

from __future__ import annotations

import math
import os
import weakref
from dataclasses import asdict, dataclass, fields, replace

from geotarget.errors import GeotargetError, InvalidInputError, PrivacyError

__all__ = [
    "DEFAULT_MIN_EXCLUSION_M",
    "PrivacyPolicy",
    "load_policy",
    "noise_salt",
    "save_policy",
    "spend_budget",
    "spent_budget",
]

#: 1,850 feet: the radius California's privacy law uses for "precise geolocation".
DEFAULT_MIN_EXCLUSION_M = 1850 * 0.3048

_TABLES = (
    "CREATE TABLE IF NOT EXISTS privacy_policy (name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, "
    "updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS privacy_budget (key_id VARCHAR PRIMARY KEY, spent DOUBLE NOT NULL, "
    "updated_at TIMESTAMPTZ NOT NULL DEFAULT now())",
)


@dataclass(frozen=True)
class PrivacyPolicy:
    """What the database allows to be released; see the module docstring for each setting.

    Examples
    --------
    >>> p = PrivacyPolicy()
    >>> p.k_min, p.min_audience, round(p.min_exclusion_m, 2), p.heatmap_res
    (10, 100, 563.88, (8,))
    >>> PrivacyPolicy.parse("heatmap_res", "7,8")
    (7, 8)
    """

    k_min: int = 10
    min_audience: int = 100
    min_exclusion_m: float = DEFAULT_MIN_EXCLUSION_M
    heatmap_res: tuple[int, ...] = (8,)
    count_step: int = 10
    dp_budget: float = 1.0
    sensitive_columns: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("k_min", "min_audience", "count_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (2 if name == "k_min" else 1):
                raise InvalidInputError(f"policy {name} must be a whole number >= {2 if name == 'k_min' else 1}, "
                                        f"got {value!r}")
        for name in ("min_exclusion_m", "dp_budget"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise InvalidInputError(f"policy {name} must be a number >= 0, got {value!r}")
        if not self.heatmap_res or any(not 5 <= r <= 11 for r in self.heatmap_res):
            raise InvalidInputError(f"policy heatmap_res must list H3 resolutions in [5, 11], got {self.heatmap_res!r}")

    @staticmethod
    def names() -> list[str]:
        """The settings' names."""
        return [f.name for f in fields(PrivacyPolicy)]

    @staticmethod
    def parse(name: str, text) -> object:
        """A setting's value from text (``"1850ft"`` for a distance, ``"7,8"`` for resolutions)."""
        if name not in PrivacyPolicy.names():
            raise InvalidInputError(f"unknown policy setting {name!r}; use one of {', '.join(PrivacyPolicy.names())}")
        raw = str(text).strip()
        try:
            if name == "heatmap_res":
                return tuple(sorted({int(p) for p in raw.replace(" ", "").split(",") if p}))
            if name == "sensitive_columns":
                return tuple(sorted({p.strip() for p in raw.split(",") if p.strip()}))
            if name == "min_exclusion_m":
                from geotarget.units import parse_radius

                return float(parse_radius(raw if not raw.replace(".", "", 1).isdigit() else f"{raw}m"))
            if name == "dp_budget":
                return float(raw)
            return int(raw)
        except (ValueError, GeotargetError):
            raise InvalidInputError(f"policy {name} cannot be {raw!r}; e.g. "
                                    f"{ {'heatmap_res': '7,8', 'min_exclusion_m': '1850ft'}.get(name, '10')}") from None

    def as_dict(self) -> dict:
        """The settings as plain JSON-able values."""
        out = asdict(self)
        out["heatmap_res"] = list(self.heatmap_res)
        out["sensitive_columns"] = list(self.sensitive_columns)
        return out


_LISTS = ("heatmap_res", "sensitive_columns")


def _value(name: str, value):
    """A setting given as text (parsed) or as a value (lists become sorted tuples)."""
    if isinstance(value, str):
        return PrivacyPolicy.parse(name, value)
    if name in _LISTS:
        items = [value] if isinstance(value, (int, str)) else list(value)
        return tuple(sorted({int(v) if name == "heatmap_res" else str(v) for v in items}))
    return value


def _has_tables(con) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'privacy_policy'"
                       ).fetchall()[0][0] > 0


_LOADED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def load_policy(store) -> PrivacyPolicy:
    """The database's policy (the defaults for settings never changed).

    Read once per data version: every change of the policy is a write that
    moves the version.
    """
    version = store.data_version
    found = _LOADED.get(store)
    if found is not None and found[0] == version:
        return found[1]
    con = store.con
    if not _has_tables(con):
        policy = PrivacyPolicy()
    else:
        stored = dict(con.execute("SELECT name, value FROM privacy_policy").fetchall())
        policy = PrivacyPolicy(**{name: PrivacyPolicy.parse(name, text) for name, text in stored.items()
                                  if name in PrivacyPolicy.names()})
    _LOADED[store] = (version, policy)
    return policy


def save_policy(store, **changes) -> PrivacyPolicy:
    """Change settings (values or their text forms) and return the new policy.

    Raises
    ------
    InvalidInputError
        An unknown setting or a value out of range (nothing is written).
    """
    current = load_policy(store)
    for name in changes:
        if name not in PrivacyPolicy.names():
            raise InvalidInputError(f"unknown policy setting {name!r}; use one of {', '.join(PrivacyPolicy.names())}")
    parsed = {name: _value(name, value) for name, value in changes.items()}
    new = replace(current, **parsed)
    with store.transaction() as con:
        for sql in _TABLES:
            con.execute(sql)
        for name in parsed:
            value = getattr(new, name)
            text = ",".join(map(str, value)) if name in _LISTS else repr(value)
            con.execute("INSERT OR REPLACE INTO privacy_policy (name, value, updated_at) VALUES ($n, $v, now())",
                        {"n": name, "v": text})
    return new


_PROCESS_SALT = os.urandom(16).hex()


def noise_salt(store) -> bytes:
    """The database's secret salt for sticky noise (created on first use; per process when read-only).

    The salt makes the noise of released counts unpredictable to whoever
    does not hold the database file.
    """
    con = store.con
    if _has_tables(con):
        rows = con.execute("SELECT value FROM privacy_policy WHERE name = '_noise_salt'").fetchall()
        if rows:
            return rows[0][0].encode()
    if store.read_only:
        return _PROCESS_SALT.encode()
    salt = os.urandom(16).hex()
    with store.write_lock:
        for sql in _TABLES:
            con.execute(sql)
        con.execute("INSERT OR IGNORE INTO privacy_policy (name, value) VALUES ('_noise_salt', $v)", {"v": salt})
        return con.execute("SELECT value FROM privacy_policy WHERE name = '_noise_salt'").fetchall()[0][0].encode()


def spent_budget(store, key_id: str) -> float:
    """Epsilon ``key_id`` has spent so far."""
    con = store.con
    if not _has_tables(con):
        return 0.0
    rows = con.execute("SELECT spent FROM privacy_budget WHERE key_id = $k", {"k": str(key_id)}).fetchall()
    return float(rows[0][0]) if rows else 0.0


def spend_budget(store, key_id: str, epsilon: float, budget: float) -> float:
    """Charge ``epsilon`` to ``key_id`` before an answer is computed; the epsilon left afterwards.

    The charge is written (and committed) first, so a crash never gives an
    answer for free. It does not move the data version: the customer indexes
    stay valid.

    Raises
    ------
    PrivacyError
        The charge would take the key over ``budget``; nothing is charged.
    """
    if not isinstance(epsilon, (int, float)) or isinstance(epsilon, bool) or not 0 < epsilon <= 100:
        raise InvalidInputError(f"epsilon must be a number in (0, 100], got {epsilon!r}")
    if store.read_only:
        raise PrivacyError(f"database {store.path!r} is open read-only, so no privacy budget can be charged; "
                           "open it read-write for privacy='dp'")
    with store.write_lock:
        con = store.con
        for sql in _TABLES:
            con.execute(sql)
        con.execute("BEGIN TRANSACTION")
        try:
            spent = spent_budget(store, key_id)
            if spent + epsilon > budget + 1e-12:
                raise PrivacyError(f"privacy budget exhausted for {key_id!r}: {spent:g} of {budget:g} spent, "
                                   f"epsilon={epsilon:g} asked; ask the database owner to raise dp_budget")
            con.execute("INSERT OR REPLACE INTO privacy_budget (key_id, spent, updated_at) VALUES ($k, $s, now())",
                        {"k": str(key_id), "s": spent + float(epsilon)})
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return budget - spent - float(epsilon)
