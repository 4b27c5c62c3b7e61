"""Consent, suppression, holdout and the minimum audience size.

- Customers with ``opted_out`` true never appear in an audience, an export or
  an aggregate.
- A suppression list holds customer ids, or SHA-256 hashes of normalised
  emails and phones (:mod:`geotarget.store.suppression`); every customer on
  it is excluded everywhere, like an opt-out. The normalisers live in
  :mod:`geotarget.store.identity` and are re-exported here.
- A holdout splits an audience deterministically: a customer is in the
  control group when the first 8 bytes of ``sha256(campaign + ":" + id)``,
  read as a fraction of 2**64, fall below the holdout fraction.
- An export smaller than the minimum audience size is refused unless the
  caller says the file is for internal use.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from geotarget.errors import AudienceTooSmallError, InvalidInputError
from geotarget.store.identity import email_column, hash_value, normalize_email, normalize_phone, phone_column

__all__ = [
    "DEFAULT_MIN_AUDIENCE",
    "check_min_size",
    "eligible_customers_sql",
    "email_column",
    "hash_value",
    "holdout_groups",
    "normalize_email",
    "normalize_phone",
    "phone_column",
]

#: Exports below this many customers are refused by default.
DEFAULT_MIN_AUDIENCE = 100


def eligible_customers_sql(columns: Iterable[str]) -> str:
    """A WHERE condition keeping customers who may be targeted.

    It drops opted-out customers, suppressed ids, and customers whose stored
    email or phone hash (computed at ingest by :mod:`geotarget.store.identity`)
    is on the suppression list. It only compares stored hashes: SQL never
    normalises an identifier. The text holds no user value.

    Examples
    --------
    >>> "opted_out" in eligible_customers_sql(["customer_id", "opted_out"])
    True
    """
    columns = [str(c) for c in columns]
    cols = {c.lower() for c in columns}
    cond = [
        "NOT opted_out",
        "customer_id NOT IN (SELECT value FROM suppressions WHERE kind = 'id')",
    ]
    for hashed, source in (("email_sha256", email_column(columns)), ("phone_sha256", phone_column(columns))):
        if hashed in cols:
            # fails closed: a stored email or phone whose hash is still pending (geotarget.store.hashes)
            # is NULL NOT IN (...), which excludes the customer while the list holds any hash of that kind
            known = ('"' + source.replace('"', '""') + '" IS NULL') if source is not None else f"{hashed} IS NULL"
            cond.append(f"({known} OR {hashed} NOT IN (SELECT value FROM suppressions WHERE kind = '{hashed}'))")
    return " AND ".join(cond)


def holdout_groups(customer_ids, fraction: float, campaign: str) -> np.ndarray:
    """'control' or 'treatment' for each id, the same on every run.

    Examples
    --------
    >>> holdout_groups(["a", "b", "c"], 0.5, "spring").tolist() == holdout_groups(["a", "b", "c"], 0.5, "spring").tolist()
    True
    """
    if not 0.0 <= float(fraction) < 1.0:
        raise InvalidInputError(f"holdout fraction must be in [0, 1), got {fraction!r}")
    if not campaign or not str(campaign).strip():
        raise InvalidInputError("a holdout needs a campaign name (campaign=, CLI --campaign) to salt the split")
    prefix = f"{campaign}:".encode()
    threshold = int(float(fraction) * 2**64)
    out = np.empty(len(customer_ids), dtype=object)
    for i, cid in enumerate(customer_ids):
        draw = int.from_bytes(hashlib.sha256(prefix + str(cid).encode("utf-8")).digest()[:8], "big")
        out[i] = "control" if draw < threshold else "treatment"
    return out


def check_min_size(n: int, min_size: int | None, *, allow_small: bool = False) -> None:
    """Refuse an export of fewer than ``min_size`` customers unless ``allow_small``."""
    limit = DEFAULT_MIN_AUDIENCE if min_size is None else int(min_size)
    if n < limit and not allow_small:
        raise AudienceTooSmallError(
            f"audience has {n:,} customers, below the minimum of {limit:,}; widen the audience, or pass "
            "allow_small=True (CLI --no-min-size) for internal use only"
        )
