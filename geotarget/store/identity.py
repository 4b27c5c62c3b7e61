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

from geotarget._lazy import lazy_module
from geotarget.errors import InvalidInputError

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

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


def normalize_phones(values: pd.Series, *, region: str = DEFAULT_PHONE_REGION,
                     regions: pd.Series | None = None):
    """Normalise a column of phones: (pyarrow string array of E.164, null where missing or invalid;
    invalid count).

    ``regions`` gives each row's country (empty cells fall back to ``region``).
    North American numbers written plainly (digits, whitespace, ``-``, ``.``,
    ``(``, ``)``, ``/``, an optional ``+1`` or ``1``) take a vectorised path
    (:mod:`geotarget.store.nanp`) that applies ``phonenumbers``' own metadata
    the way ``is_valid_number`` does; everything else goes through
    ``phonenumbers.parse`` one by one.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from geotarget.store.nanp import nanp_regions, plain_nanp

    arr = _arrow_text(values)
    n = len(arr)
    nanp = nanp_regions()
    if regions is not None:
        row_region = regions.astype("string").str.strip().str.upper().fillna(str(region).upper())
        row_region = row_region.where(row_region != "", str(region).upper())
        in_nanp = row_region.isin(nanp).to_numpy(dtype=bool)
        per_row = row_region.to_numpy(dtype=object)
    else:
        in_nanp = np.full(n, str(region).upper() in nanp)
        per_row = None
    fast, e164 = plain_nanp(arr, in_nanp)
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
