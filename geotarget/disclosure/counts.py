"""Audience counts as they may be released to a key without ``admin``: checked, noised and rounded.

Differencing two allowed counts is the attack: a 3 km audience minus the
same audience with a small exclusion zone, a radius minus a slightly
smaller radius, one filter minus a narrower one. The rules, each applied by
:class:`geotarget.disclosure.Disclosure` for keys without ``admin``:

1. **Refused requests** (:func:`check_request`): an exclusion zone smaller
   than the policy's ``min_exclusion_m`` (1,850 ft by default); a filter on
   the id column (``customer_id``).
2. **Refused results** (:func:`release`): a total, a per-store ``within`` or
   ``assigned`` count, a treatment or control group under the policy's
   ``min_audience``; and the *difference* made by each exclusion zone, each
   excluded region, each filter condition, each of several regions asked for
   and each of several stores or points, when that difference is
   between 1 and ``min_audience - 1`` customers (the request is answered
   only when dropping any one of those parts would change the answer by
   nothing or by at least ``min_audience``). Refusals never tell a size.
3. **Sticky noise, then rounding.** Every released count is
   ``round((n + e) / step) * step`` where ``step`` is the policy's
   ``count_step`` and ``e`` is Laplace noise of scale ``step / 2`` drawn from a
   seed that is a keyed hash of the *set of customers counted*: asking the
   same question again (or the same set through another question) gives the
   same answer, so repeating does not average the noise away, and two sets
   that differ by one person get independent noise, so their difference is
   not that person. The minimum-size check is made on the noised count, so
   the threshold does not reveal an exact count either.

What remains possible, and why the differential-privacy mode exists: an
attacker who can build many different questions whose answers all differ by
the same person can average the independent noises. ``privacy="dp"`` with a
per-key epsilon budget bounds what any sequence of questions can learn.
"""

from __future__ import annotations

import hashlib
import weakref

import numpy as np

from geotarget.audience.filters import parse_filters
from geotarget.errors import AudienceTooSmallError, PrivacyError

__all__ = ["ID_COLUMN", "check_request", "member_hashes", "noisy_count", "refuse", "set_seed"]

#: The column that names a customer; filters on it single people out.
ID_COLUMN = "customer_id"

_HASHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def check_request(options: dict, policy) -> None:
    """Refuse exclusion zones under the policy floor and filters on the id column.

    Raises
    ------
    PrivacyError
        Naming the field and the floor.
    """
    from geotarget.audience.membership import _parse_zone

    for zone in options.get("exclude_within") or []:
        lat, lng, metres = _parse_zone(zone)
        if metres < policy.min_exclusion_m:
            raise PrivacyError(
                f"exclude_within: a zone of {metres:,.1f} m around ({lat:.5f}, {lng:.5f}) is under this database's "
                f"floor of {policy.min_exclusion_m:,.1f} m (min_exclusion_m); use a larger zone")
    for cond in parse_filters(options.get("where")):
        if cond.column.strip().strip('"').lower() == ID_COLUMN:
            raise PrivacyError(f"where: filters on {ID_COLUMN} single customers out and are refused for this key; "
                               "filter on segment columns instead")


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def member_hashes(index, salt: bytes) -> np.ndarray:
    """A 64-bit keyed hash per customer of the index (its cell and exact coordinates), cached per snapshot."""
    found = _HASHES.get(index)
    if found is not None and found[0] == salt:
        return found[1]
    key = np.uint64(int.from_bytes(hashlib.sha256(salt).digest()[:8], "little"))
    with np.errstate(over="ignore"):
        mixed = _splitmix(index.cells ^ key)
        mixed = _splitmix(mixed ^ index.lat.view(np.uint64))
        mixed = _splitmix(mixed ^ index.lng.view(np.uint64))
    _HASHES[index] = (salt, mixed)
    return mixed


def set_seed(hashes: np.ndarray, positions: np.ndarray, label: str) -> int:
    """A seed that depends only on the set of customers (order-free) and on what is counted."""
    with np.errstate(over="ignore"):
        total = int(np.sum(hashes[positions], dtype=np.uint64)) if positions.size else 0
    return int.from_bytes(hashlib.sha256(f"{label}:{total}:{positions.size}".encode()).digest()[:8], "little")


def noisy_count(n: int, seed: int, step: int) -> int:
    """``n`` plus sticky Laplace noise of scale ``step / 2``, rounded to a multiple of ``step`` (never below 0)."""
    noise = np.random.default_rng(seed).laplace(0.0, step / 2.0)
    return max(0, round((n + noise) / step) * step)


def refuse(what: str, min_size: int):
    """The refusal for a count under the minimum (no size is told)."""
    raise AudienceTooSmallError(f"{what} is below the minimum audience size of {min_size:,} customers; widen it")
