"""Consent, suppression, holdout and the minimum audience size.

- Customers with ``opted_out`` true never appear in an audience, an export or
  an aggregate.
- A suppression list holds customer ids, or SHA-256 hashes of normalized
  emails; every customer on it is excluded everywhere, like an opt-out.
- A holdout splits an audience deterministically: a customer is in the
  control group when the first 8 bytes of ``sha256(campaign + ":" + id)``,
  read as a fraction of 2**64, fall below the holdout fraction.
- An export smaller than the minimum audience size is refused unless the
  caller says the file is for internal use.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from geotarget.errors import AudienceTooSmallError, InvalidInputError

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

_EMAIL_NAMES = ("email", "email_address", "e_mail", "mail")
_PHONE_NAMES = ("phone", "phone_number", "mobile", "mobile_phone", "telephone", "tel")


def _find_column(columns: Iterable[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def email_column(columns: Iterable[str]) -> str | None:
    """The customers' email column, when there is one."""
    return _find_column(columns, _EMAIL_NAMES)


def phone_column(columns: Iterable[str]) -> str | None:
    """The customers' phone column, when there is one."""
    return _find_column(columns, _PHONE_NAMES)


def eligible_customers_sql(columns: Iterable[str]) -> str:
    """A WHERE condition keeping customers who may be targeted.

    It drops opted-out customers, suppressed ids and (when the table has an
    email column) suppressed email hashes. The text holds no user value.

    Examples
    --------
    >>> "opted_out" in eligible_customers_sql(["customer_id", "opted_out"])
    True
    """
    cond = [
        "NOT opted_out",
        "customer_id NOT IN (SELECT value FROM suppressions WHERE kind = 'id')",
    ]
    email = email_column(columns)
    if email is not None:
        ident = '"' + email.replace('"', '""') + '"'
        cond.append(
            f"({ident} IS NULL OR sha256(lower(trim(CAST({ident} AS VARCHAR)))) NOT IN "
            "(SELECT value FROM suppressions WHERE kind = 'email_sha256'))"
        )
    return " AND ".join(cond)


def normalize_email(value) -> str | None:
    """Trim and lower-case an email; None when it is not an email.

    Examples
    --------
    >>> normalize_email("  Jane.Doe@Example.COM ")
    'jane.doe@example.com'
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip().lower()
    return text if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text) else None


def normalize_phone(value, *, default_country_code: str = "1") -> str | None:
    """A phone number in E.164 (``+15551234567``); None when it cannot be one.

    Numbers without a country code take ``default_country_code`` (US/Canada
    by default) when they have the 10 digits of a national number.

    Examples
    --------
    >>> normalize_phone("(212) 555-0142")
    '+12125550142'
    >>> normalize_phone("+44 20 7946 0958")
    '+442079460958'
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    digits = re.sub(r"\D", "", text)
    if text.startswith("+") or text.startswith("00"):
        digits = digits[2:] if text.startswith("00") else digits
    elif len(digits) == 10:
        digits = default_country_code + digits
    elif len(digits) == 11 and digits.startswith(default_country_code):
        pass
    else:
        return None
    return "+" + digits if 8 <= len(digits) <= 15 else None


def hash_value(value: str | None) -> str | None:
    """Hex SHA-256 of a normalized identifier (None stays None)."""
    return None if value is None else hashlib.sha256(value.encode("utf-8")).hexdigest()


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


def suppression_frame(values, kind: str) -> pd.DataFrame:
    """Normalize a suppression list: ids as text, emails hashed (or already-hashed hex)."""
    if kind not in ("id", "email", "email_sha256"):
        raise InvalidInputError(f"suppression kind must be 'id', 'email' or 'email_sha256', got {kind!r}")
    vals = [v for v in values if v is not None and str(v).strip() and str(v) != "nan"]
    if kind == "id":
        return pd.DataFrame({"kind": "id", "value": [str(v).strip() for v in vals]})
    if kind == "email":
        hashed = [hash_value(normalize_email(v)) for v in vals]
        bad = [v for v, h in zip(vals, hashed) if h is None]
        if bad:
            raise InvalidInputError(f"{len(bad)} value(s) are not emails, e.g. {bad[0]!r}; fix or remove them")
        return pd.DataFrame({"kind": "email_sha256", "value": hashed})
    cleaned = [str(v).strip().lower() for v in vals]
    bad = [v for v in cleaned if not re.fullmatch(r"[0-9a-f]{64}", v)]
    if bad:
        raise InvalidInputError(f"{len(bad)} value(s) are not SHA-256 hex digests, e.g. {bad[0]!r}")
    return pd.DataFrame({"kind": "email_sha256", "value": cleaned})
