"""North American phone numbers in bulk: parsed at byte level, validated by ``phonenumbers``' own rules.

Most phone columns of a US customer file are North American numbers written
plainly (``(212) 736-5000``, ``+1 212 736 5000``, ``212.736.5000``).
:func:`plain_nanp` decides those for a whole column in numpy, one pass over
the bytes, and leaves every other value to ``phonenumbers`` one by one (in
:func:`geotarget.store.identity.normalize_phones`). Validity applies
``phonenumbers``' metadata for the North American Numbering Plan the way
``phonenumbers.is_valid_number`` does; its patterns decide a 10-digit number
by its first digits alone (7 with today's metadata, read off the patterns by
:func:`_decisive_digits`), so each distinct prefix is checked once per process.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

__all__ = ["nanp_regions", "plain_nanp"]


def nanp_regions() -> frozenset:
    """The regions (ISO 3166 alpha-2) of the North American Numbering Plan, country code 1."""
    return _nanp_rules()[0]


_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
          "fixed_line", "mobile")


@lru_cache(maxsize=1)
def _nanp_rules() -> tuple[frozenset, list]:
    """The North American Numbering Plan regions and, in ``phonenumbers``' own order, what each
    needs of a 10-digit national number: (leading-digits regex or None, validity regex).

    The validity regex is ``phonenumbers``' rule for a number type other than
    UNKNOWN: the general pattern and any one type's pattern, each whole.
    """
    import phonenumbers
    from phonenumbers.phonemetadata import PhoneMetadata

    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]
    rules = []
    for region in regions:
        meta = PhoneMetadata.metadata_for_region(region, None)
        if meta is None:
            continue

        def fits(desc):
            return (desc is not None and desc.national_number_pattern
                    and (not desc.possible_length or 10 in desc.possible_length))

        types = [getattr(meta, t).national_number_pattern for t in _TYPES if fits(getattr(meta, t))]
        general = meta.general_desc.national_number_pattern if fits(meta.general_desc) else None
        valid = (f"^(?:{general})$" if general else None, f"^(?:{'|'.join(types)})$" if types and general else None)
        rules.append((f"^(?:{meta.leading_digits})" if meta.leading_digits else None, valid))
    return frozenset(regions), rules


def _nanp_valid(nsn):
    """Whether each 10-digit national number (a pyarrow string array) is a valid NANP number,
    decided region by region exactly as ``phonenumbers.is_valid_number`` decides it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    _, rules = _nanp_rules()
    n = len(nsn)
    result = np.zeros(n, dtype=bool)
    undecided = np.arange(n)

    def matches(values, pattern):
        if pattern is None:
            return np.zeros(len(values), dtype=bool)
        return pc.match_substring_regex(values, pattern).to_numpy(zero_copy_only=False)

    def valid_in(values, rule):
        general, types = rule
        ok = matches(values, general)
        if ok.any():
            ok &= matches(values, types)
        return ok

    for leading, rule in rules:
        if undecided.size == 0:
            break
        values = nsn.take(pa.array(undecided))
        if leading is not None:
            claim = matches(values, leading)
            result[undecided[claim]] = valid_in(values.filter(pa.array(claim)), rule) if claim.any() else False
        else:
            claim = valid_in(values, rule)
            result[undecided[claim]] = True
        undecided = undecided[~claim]
    return result


#: Characters a plainly written North American number may hold besides digits and one leading ``+``.
_PLAIN_MARKS = b" -()./\t"

#: Each byte's kind for :func:`plain_nanp`: 0 a mark, 1 a digit, 2 a plus sign, 3 anything else.
_BYTE_KIND = np.full(256, 3, dtype=np.uint8)
_BYTE_KIND[np.frombuffer(_PLAIN_MARKS, dtype=np.uint8)] = 0
_BYTE_KIND[ord("0"):ord("9") + 1] = 1
_BYTE_KIND[ord("+")] = 2


def _decisive_digits(rules) -> int | None:
    """How many leading digits of a 10-digit number decide every NANP rule, or None when that cannot
    be read off the patterns.

    Each alternative of each pattern ends in ``\\d{n}``, so what comes before it matches the first
    10 - n digits; each leading-digits pattern is a plain prefix. The answer is the longest of these
    (7 with today's metadata), capped at 7 so that the table of prefixes stays at 10 MB.
    """
    def alternatives(pattern: str) -> list[str]:
        if not (pattern.startswith("^(?:") and pattern.endswith(")$")):
            return []
        body = pattern[len("^(?:"):-len(")$")]
        out, depth, start = [], 0, 0
        for i, ch in enumerate(body):
            depth += ch == "("
            depth -= ch == ")"
            if ch == "|" and depth == 0:
                out.append(body[start:i])
                start = i + 1
        return [*out, body[start:]]

    needed = 0
    for leading, patterns in rules:
        if leading is not None:
            if not re.fullmatch(r"\^\(\?:[0-9\[\]\-|]+\)", leading):
                return None
            needed = max([needed, *(len(re.sub(r"\[[^\]]*\]", "d", alt)) for alt in alternatives(leading + "$"))])
        for pattern in patterns:
            if pattern is None:
                continue
            alts = alternatives(pattern)
            tails = [re.search(r"\\d\{(\d+)\}$", alt) for alt in alts]
            if not alts or not all(tails):
                return None
            needed = max([needed, *(10 - int(m.group(1)) for m in tails)])
    return needed if needed <= 7 else None


@lru_cache(maxsize=1)
def _prefix_table() -> tuple[int, np.ndarray] | None:
    """(digits, validity of each prefix of that many digits once worked out, -1 while not yet),
    shared by every batch; None when the rules do not allow deciding by prefix."""
    digits = _decisive_digits(_nanp_rules()[1])
    return None if digits is None else (digits, np.full(10 ** digits, -1, dtype=np.int8))


def _nanp_valid_by_prefix(nsn_digits: np.ndarray) -> np.ndarray:
    """:func:`_nanp_valid` of 10-digit numbers given as a (k, 10) array of digit values, worked out
    once per distinct decisive prefix when the rules allow it (:func:`_decisive_digits`)."""
    import pyarrow as pa

    k = len(nsn_digits)
    if k == 0:
        return np.zeros(0, dtype=bool)

    def as_text(rows):
        return pa.Array.from_buffers(
            pa.string(), len(rows), [None, pa.py_buffer(np.arange(0, 10 * len(rows) + 1, 10, dtype=np.int32)),
                                     pa.py_buffer(np.ascontiguousarray(rows + ord("0"), dtype=np.uint8))])

    found = _prefix_table()
    if found is None:
        return _nanp_valid(as_text(nsn_digits))
    digits, table = found
    weights = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    prefix = np.zeros(k, dtype=np.int64)
    for j in range(digits):
        prefix += nsn_digits[:, j] * weights[j]
    todo = np.unique(prefix[table[prefix] < 0])
    if todo.size:
        lead = (todo[:, None] // weights) % 10
        padded = np.concatenate([lead, np.zeros((todo.size, 10 - digits), dtype=np.int64)], axis=1).astype(np.uint8)
        table[todo] = _nanp_valid(as_text(padded))
    return table[prefix] == 1


def plain_nanp(arr, in_nanp: np.ndarray):
    """The North American numbers of ``arr`` written plainly, decided at byte level in numpy.

    Returns (mask of the rows decided here, pyarrow string array of their E.164 or null when
    invalid). A row is decided here when it holds only digits, :data:`_PLAIN_MARKS` and at most one
    ``+`` before every digit, and its digits are ``1`` and ten more after a ``+``, or (in a NANP
    region) ten digits or ``1`` and ten, the ten starting with 2-9. Any other row is left to
    ``phonenumbers``.
    """
    import pyarrow as pa

    n = len(arr)
    if arr.null_count:
        arr = pa.compute.if_else(arr.is_valid(), arr, "")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4).astype(np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] is not None else np.zeros(0, np.uint8)
    data = data[offsets[0]:offsets[-1]]
    offsets -= offsets[0]
    kind = _BYTE_KIND[data]  # one pass over the bytes; the rest works on rows (few large temporaries)
    is_digit = np.append(kind == 1, False)  # a sentinel, so that reduceat may start at the very end
    plus_at = np.flatnonzero(kind == 2)
    other_at = np.flatnonzero(kind == 3)

    def per_row(positions):
        """Index of each row's first such position, and how many the row has."""
        start = np.searchsorted(positions, offsets[:-1])
        return start, np.searchsorted(positions, offsets[1:]) - start

    # digits per row in one pass over the bytes (reduceat gives an empty row its next byte: zeroed)
    lengths = np.diff(offsets)
    n_digits = np.add.reduceat(is_digit, offsets[:-1], dtype=np.int64) if n else lengths
    n_digits[lengths == 0] = 0
    first_digit = np.cumsum(n_digits) - n_digits
    first_plus, n_plus = per_row(plus_at)
    _, n_other = per_row(other_at)
    ok = (n_other == 0) & (n_plus <= 1) & ((n_digits == 10) | (n_digits == 11))
    values = data[is_digit[:-1]]
    values -= ord("0")
    first = np.full(n, 255, dtype=np.uint8)
    first[ok] = values[first_digit[ok]]
    ok &= (n_digits == 10) | (first == 1)
    has_plus = n_plus == 1
    if has_plus.any():  # the + must come before every digit, and then the number is +1 and ten digits
        rows = np.flatnonzero(has_plus & ok)
        at = plus_at[first_plus[rows]]
        # digits between each such row's start and its plus: the even segments of one reduceat
        bounds = np.column_stack([offsets[rows], at]).ravel()
        before = np.zeros(n, dtype=bool)
        before[rows] = np.add.reduceat(is_digit, bounds, dtype=np.int64)[::2] == 0 if rows.size else True
        ok &= ~has_plus | (before & (n_digits == 11))
    ok &= has_plus | in_nanp
    rows = np.flatnonzero(ok)
    end = first_digit[rows] + n_digits[rows]
    # each row's last ten digits, read through a sliding view (no index matrix)
    nsn = np.lib.stride_tricks.sliding_window_view(values, 10)[end - 10] if rows.size else \
        np.zeros((0, 10), dtype=np.uint8)
    lead = nsn[:, 0] >= 2 if rows.size else np.zeros(0, dtype=bool)
    rows, nsn = rows[lead], nsn[lead]
    fast = np.zeros(n, dtype=bool)
    fast[rows] = True
    valid = _nanp_valid_by_prefix(nsn)
    text = np.concatenate([np.full((rows.size, 2), [ord("+"), ord("1")], dtype=np.uint8),
                           (nsn + ord("0")).astype(np.uint8)], axis=1)
    e164 = pa.Array.from_buffers(pa.string(), rows.size, [None, pa.py_buffer(np.arange(0, 12 * rows.size + 1, 12,
                                                                                      dtype=np.int32)),
                                                          pa.py_buffer(np.ascontiguousarray(text))])
    return fast, pa.compute.if_else(pa.array(valid), e164, pa.scalar(None, pa.string()))
