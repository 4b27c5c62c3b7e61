"""The one normaliser of personal identifiers: emails and phone numbers, and their SHA-256.

Every part of geotarget that compares identities (the ingest, suppression,
erasure, customer-match exports) goes through these functions; SQL only
compares the hashes stored at ingest and never normalises on its own.

Emails
    Unicode NFKC, every whitespace and control character removed, case-folded
    (then NFKC again, since case folding can leave a string unnormalised). An
    address needs one ``@``, a non-empty local part and a dotted domain;
    anything else is invalid and dropped.
Phones
    E.164 (``+33612345678``) through Google's ``phonenumbers`` library. A number
    without a country code is read in a default region (``"US"`` unless told),
    or per row from a country column. Numbers that ``phonenumbers`` does not
    call valid are dropped.
Hashes
    Lower-case hex SHA-256 of the normalised text (UTF-8).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd

from geotarget.errors import InvalidInputError

__all__ = [
    "COUNTRY_NAMES",
    "DEFAULT_PHONE_REGION",
    "EMAIL_NAMES",
    "PHONE_NAMES",
    "backfill_hashes",
    "check_region",
    "country_column",
    "email_column",
    "google_email",
    "hash_all",
    "hash_value",
    "is_sha256",
    "mask_email",
    "mask_phone",
    "normalize_email",
    "normalize_emails",
    "normalize_phone",
    "normalize_phones",
    "phone_column",
    "sha256_hex",
]

#: Region used for phone numbers written without a country code.
DEFAULT_PHONE_REGION = "US"

EMAIL_NAMES = ("email", "email_address", "e_mail", "mail")
PHONE_NAMES = ("phone", "phone_number", "mobile", "mobile_phone", "telephone", "tel")
COUNTRY_NAMES = ("country", "country_code", "phone_country", "phone_region")

_EMAIL_RE = re.compile(r"[^@]+@[^@.]+(?:\.[^@.]+)+")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _find_column(columns: Iterable[str], names: tuple[str, ...]) -> str | None:
    lowered = {str(c).lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def email_column(columns: Iterable[str]) -> str | None:
    """The email column among ``columns``, when there is one."""
    return _find_column(columns, EMAIL_NAMES)


def phone_column(columns: Iterable[str]) -> str | None:
    """The phone column among ``columns``, when there is one."""
    return _find_column(columns, PHONE_NAMES)


def country_column(columns: Iterable[str]) -> str | None:
    """A per-row country column (ISO 3166 alpha-2) for phone numbers, when there is one."""
    return _find_column(columns, COUNTRY_NAMES)


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def _strip_invisible(text: str) -> str:
    """Drop every whitespace, control, format and separator character."""
    return "".join(ch for ch in text if not (ch.isspace() or unicodedata.category(ch)[0] in "CZ"))


def normalize_email(value) -> str | None:
    """An email address normalised for matching; None when it is not one.

    Examples
    --------
    >>> normalize_email("\\ufeff Jane.Doe@Example.COM\\n")
    'jane.doe@example.com'
    >>> normalize_email("not an email") is None
    True
    """
    if _missing(value):
        return None
    text = _strip_invisible(unicodedata.normalize("NFKC", str(value)))
    text = unicodedata.normalize("NFKC", text.casefold())
    text = _strip_invisible(text)
    return text if _EMAIL_RE.fullmatch(text) else None


def _arrow_text(values: pd.Series):
    """A column as a pyarrow string array (no copy when it is Arrow-backed already)."""
    import pyarrow as pa

    if isinstance(values.dtype, pd.ArrowDtype) and pa.types.is_string(values.dtype.pyarrow_dtype):
        arr = values.array._pa_array
        return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    text = values.astype("string").to_numpy(dtype=object, na_value=None)
    return pa.array(text, type=pa.string())


def _patch(arr, positions: np.ndarray, new_values: list):
    """``arr`` with the values at ``positions`` replaced."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if positions.size == 0:
        return arr
    mask = np.zeros(len(arr), dtype=bool)
    mask[positions] = True
    return pc.replace_with_mask(arr, pa.array(mask), pa.array(new_values, type=pa.string()))


def normalize_emails(values: pd.Series):
    """Normalise a column of emails: (pyarrow string array, null where missing or invalid; invalid count).

    ASCII addresses with nothing to remove inside take a vectorised path with
    the same answer as :func:`normalize_email` (NFKC leaves ASCII alone, and
    the only ASCII whitespace and control characters are ``\\x00``-``\\x20``
    and ``\\x7f``); the others go through :func:`normalize_email` one by one.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _arrow_text(values)
    trimmed = pc.utf8_trim_whitespace(arr)
    # one pass finds the ASCII addresses that are clean already (no inner whitespace or control
    # character) and valid; only the others need the character-by-character normaliser
    clean = pc.match_substring_regex(trimmed, r"^[^@\x00-\x20\x7f]+@[^@.\x00-\x20\x7f]+(\.[^@.\x00-\x20\x7f]+)+$")
    fast = pc.and_(pc.fill_null(pc.string_is_ascii(trimmed), False), pc.fill_null(clean, False))
    out = pc.if_else(fast, pc.ascii_lower(trimmed), pa.scalar(None, pa.string()))
    present = pc.fill_null(pc.greater(pc.utf8_length(trimmed), 0), False).to_numpy(zero_copy_only=False).copy()
    slow = np.flatnonzero(present & ~fast.to_numpy(zero_copy_only=False))
    if slow.size:
        raw = arr.take(pa.array(slow)).to_pylist()
        fixed = [normalize_email(v) for v in raw]
        for i, v, f in zip(slow, raw, fixed):
            if f is None and not _strip_invisible(unicodedata.normalize("NFKC", v)):
                present[i] = False  # only invisible characters: no email, not an invalid one
        out = _patch(out, slow, fixed)
    invalid = int((present & ~pc.is_valid(out).to_numpy(zero_copy_only=False)).sum())
    return out, invalid


def check_region(region: str) -> str:
    """A phone region code (ISO 3166 alpha-2) that ``phonenumbers`` knows, upper-cased."""
    import phonenumbers

    code = str(region or "").strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInputError(
            f"phone region {region!r} is not a known ISO 3166 country code; pass e.g. --phone-region US, GB or FR")
    return code


@lru_cache(maxsize=1_000_000)
def _phone(text: str, region: str) -> str | None:
    import phonenumbers

    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phone(value, *, region: str | None = DEFAULT_PHONE_REGION) -> str | None:
    """A phone number in E.164; None when ``phonenumbers`` does not call it valid.

    ``region`` (ISO 3166 alpha-2) is where a number without a country code is dialled.

    Examples
    --------
    >>> normalize_phone("(212) 736-5000")
    '+12127365000'
    >>> normalize_phone("12345") is None
    True
    >>> normalize_phone("06 12 34 56 78", region="FR"), normalize_phone("020 7946 0958", region="GB")
    ('+33612345678', '+442079460958')
    """
    if _missing(value):
        return None
    text = _strip_invisible(unicodedata.normalize("NFKC", str(value)))
    if not text:
        return None
    code = str(region).strip().upper() if not _missing(region) and str(region).strip() else DEFAULT_PHONE_REGION
    return _phone(text, code)


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

#: Each byte's kind for :func:`_plain_nanp`: 0 a mark, 1 a digit, 2 a plus sign, 3 anything else.
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
    as_text = lambda rows: pa.Array.from_buffers(  # noqa: E731
        pa.string(), len(rows), [None, pa.py_buffer(np.arange(0, 10 * len(rows) + 1, 10, dtype=np.int32)),
                                 pa.py_buffer(np.ascontiguousarray(rows + ord("0"), dtype=np.uint8))])
    found = _prefix_table()
    if found is None:
        return _nanp_valid(as_text(nsn_digits))
    digits, table = found
    weights = 10 ** np.arange(digits - 1, -1, -1, dtype=np.int64)
    prefix = nsn_digits[:, :digits].astype(np.int64) @ weights
    todo = np.unique(prefix[table[prefix] < 0])
    if todo.size:
        lead = (todo[:, None] // weights) % 10
        padded = np.concatenate([lead, np.zeros((todo.size, 10 - digits), dtype=np.int64)], axis=1)
        table[todo] = _nanp_valid(as_text(padded))
    return table[prefix] == 1


def _plain_nanp(arr, in_nanp: np.ndarray):
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
    kind = _BYTE_KIND[data]  # one pass over the bytes; the rest works on positions and rows
    digit_at = np.flatnonzero(kind == 1)
    plus_at = np.flatnonzero(kind == 2)
    other_at = np.flatnonzero(kind == 3)

    def per_row(positions):
        """Index of each row's first such position, and how many the row has."""
        start = np.searchsorted(positions, offsets[:-1])
        return start, np.searchsorted(positions, offsets[1:]) - start

    # digits per row in one pass over the bytes (reduceat gives an empty row its next byte: zeroed)
    lengths = np.diff(offsets)
    n_digits = np.add.reduceat(np.append(kind == 1, False), offsets[:-1], dtype=np.int64) if n else lengths
    n_digits[lengths == 0] = 0
    first_digit = np.cumsum(n_digits) - n_digits
    first_plus, n_plus = per_row(plus_at)
    _, n_other = per_row(other_at)
    ok = (n_other == 0) & (n_plus <= 1) & ((n_digits == 10) | (n_digits == 11))
    values = (data[digit_at] - ord("0")).astype(np.int8)
    first = np.full(n, -1, dtype=np.int8)
    first[ok] = values[first_digit[ok]]
    ok &= (n_digits == 10) | (first == 1)
    has_plus = n_plus == 1
    if has_plus.any():  # the + must come before every digit, and then the number is +1 and ten digits
        rows = np.flatnonzero(has_plus & ok)
        before = np.zeros(n, dtype=bool)
        before[rows] = plus_at[first_plus[rows]] < digit_at[first_digit[rows]]
        ok &= ~has_plus | (before & (n_digits == 11))
    ok &= has_plus | in_nanp
    rows = np.flatnonzero(ok)
    end = first_digit[rows] + n_digits[rows]
    nsn = values[end[:, None] - 10 + np.arange(10)] if rows.size else np.zeros((0, 10), dtype=np.int8)
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


def normalize_phones(values: pd.Series, *, region: str = DEFAULT_PHONE_REGION,
                     regions: pd.Series | None = None):
    """Normalise a column of phones: (pyarrow string array of E.164, null where missing or invalid;
    invalid count).

    ``regions`` gives each row's country (empty cells fall back to ``region``).
    North American numbers written plainly (digits, whitespace, ``-``, ``.``,
    ``(``, ``)``, ``/``, an optional ``+1`` or ``1``) take a vectorised path
    that applies ``phonenumbers``' own metadata the way ``is_valid_number``
    does; everything else goes through ``phonenumbers.parse`` one by one.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = _arrow_text(values)
    n = len(arr)
    nanp, _ = _nanp_rules()
    if regions is not None:
        row_region = regions.astype("string").str.strip().str.upper().fillna(str(region).upper())
        row_region = row_region.where(row_region != "", str(region).upper())
        in_nanp = row_region.isin(nanp).to_numpy(dtype=bool)
        per_row = row_region.to_numpy(dtype=object)
    else:
        in_nanp = np.full(n, str(region).upper() in nanp)
        per_row = None
    fast, e164 = _plain_nanp(arr, in_nanp)
    out = e164 if fast.all() else pc.replace_with_mask(pa.nulls(n, pa.string()), pa.array(fast), e164)
    invalid = e164.null_count
    # every other non-empty row: phonenumbers, one by one
    maybe = np.flatnonzero(~fast & pc.fill_null(pc.greater(pc.binary_length(arr), 0), False).to_numpy(
        zero_copy_only=False))
    if maybe.size:
        rest = arr.take(pa.array(maybe))
        present = pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(rest)), 0), False).to_numpy(
            zero_copy_only=False)
        slow = maybe[present]
        raw = rest.filter(pa.array(present)).to_pylist()
        fixed = [normalize_phone(v, region=region if per_row is None else per_row[i]) for i, v in zip(slow, raw)]
        invalid += sum(f is None for f in fixed)
        out = _patch(out, slow, fixed)
    return out, invalid


def sha256_hex(text: str | None) -> str | None:
    """Lower-case hex SHA-256 of a text (None stays None).

    Examples
    --------
    >>> sha256_hex("a")[:12]
    'ca978112ca1b'
    """
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


#: The same function under the name earlier versions used.
hash_value = sha256_hex


def hash_all(values) -> np.ndarray:
    """SHA-256 hex of each normalised value (None stays None)."""
    if not isinstance(values, (list, np.ndarray)):
        values = values.to_pylist()
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = None if v is None else hashlib.sha256(v.encode("utf-8")).hexdigest()
    return out


def is_sha256(text: str) -> bool:
    """Whether ``text`` is a lower-case hex SHA-256 digest."""
    return bool(_HEX64.fullmatch(text))


def google_email(email: str | None) -> str | None:
    """A normalised email as Google's Customer Match wants it: dots removed before the @ of
    gmail.com and googlemail.com addresses.

    Examples
    --------
    >>> google_email("jane.doe@gmail.com"), google_email("jane.doe@example.com")
    ('janedoe@gmail.com', 'jane.doe@example.com')
    """
    if email is None:
        return None
    local, _, domain = email.rpartition("@")
    if domain in ("gmail.com", "googlemail.com"):
        return local.replace(".", "") + "@" + domain
    return email


def mask_email(value) -> str | None:
    """An email with the local part hidden, for the rejects table (``j***@example.com``)."""
    if _missing(value):
        return None
    text = str(value).strip()
    local, at, domain = text.rpartition("@")
    if not at:
        return "***"
    return (local[:1] + "***@" + domain) if local else "***@" + domain


def mask_phone(value) -> str | None:
    """A phone number with all but its last two digits hidden (``***42``)."""
    if _missing(value):
        return None
    digits = re.sub(r"\D", "", str(value))
    return "***" + digits[-2:] if len(digits) > 4 else "***"


def backfill_hashes(con) -> None:
    """Add ``email_sha256``/``phone_sha256`` to customers stored before they existed (a migration).

    Emails and phones are normalised in Python, with the one normaliser; phones
    without a country code are read as US numbers, as earlier versions did.
    """
    cols = [r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'").fetchall()]
    todo = [(c, h, f) for c, h, f in ((email_column(cols), "email_sha256", normalize_emails),
                                      (phone_column(cols), "phone_sha256", normalize_phones))
            if c is not None and h not in cols]
    for column, hashed, normalize in todo:
        quoted = '"' + column.replace('"', '""') + '"'
        frame = con.sql(f"SELECT customer_id, CAST({quoted} AS VARCHAR) AS v FROM customers "
                        f"WHERE {quoted} IS NOT NULL").to_arrow_table().to_pandas()
        values, _ = normalize(frame["v"])
        fixed = pd.DataFrame({"customer_id": frame["customer_id"], "h": hash_all(values)})  # noqa: F841
        con.execute(f"ALTER TABLE customers ADD COLUMN {hashed} VARCHAR")
        con.execute(f"UPDATE customers SET {hashed} = fixed.h FROM fixed WHERE customers.customer_id = fixed.customer_id")
