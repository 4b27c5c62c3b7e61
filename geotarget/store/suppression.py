"""The suppression list: customer ids, and SHA-256 hashes of normalised emails and phones.

A suppressed customer is excluded everywhere, like an opt-out. Emails and
phones are normalised with the one normaliser (:mod:`geotarget.store.identity`)
and only their hashes are stored; the audience side matches them against the
hashes stored with each customer at ingest, so no SQL ever normalises.

Suppression files are read as real CSV: UTF-8 with or without a byte-order
mark, quoted fields (``"Smith, J"``), the first column used, and an optional
header row (recognised by its name: ``id``, ``customer_id``, ``email``,
``phone``, ``value``, ``sha256``, ...).
"""

from __future__ import annotations

import csv
import os

import pandas as pd

from geotarget.errors import InvalidInputError, SourceError
from geotarget.store.hashes import fill_pending_hashes
from geotarget.store.identity import DEFAULT_PHONE_REGION, is_sha256, normalize_email, normalize_phone, sha256_hex

__all__ = ["KINDS", "add_suppressions", "read_people", "read_values", "suppression_frame"]

#: What a suppression list may hold.
KINDS = ("id", "email", "phone", "email_sha256", "phone_sha256")

_HEADERS = {"id", "ids", "customer_id", "customerid", "email", "emails", "email_address", "phone", "phones",
            "phone_number", "value", "values", "sha256", "email_sha256", "phone_sha256", "hash"}


def _csv_rows(path) -> list[list[str]]:
    """The non-blank rows of a UTF-8 CSV (a BOM skipped, quoted cells unquoted); SourceError when unreadable."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return [row for row in csv.reader(fh) if row and any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise SourceError(f"{os.fspath(path)!r} is not UTF-8 text; save it as UTF-8 CSV") from None
    except OSError as exc:
        raise SourceError(f"cannot read {os.fspath(path)!r}: {exc.strerror or exc}; check the path") from None


def read_values(path) -> list[str]:
    """The first column of a CSV or text file, without a header row.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "s.csv"
    >>> _ = p.write_bytes('\\ufeffcustomer_id\\n"Smith, J"\\nc2\\n'.encode())
    >>> read_values(p)
    ['Smith, J', 'c2']
    """
    rows = _csv_rows(path)
    if rows and rows[0][0].strip().lower() in _HEADERS:
        rows = rows[1:]
    return [row[0].strip() for row in rows]


def suppression_frame(values, kind: str, *, phone_region: str = DEFAULT_PHONE_REGION) -> pd.DataFrame:
    """(kind, value) rows to store: ids as text, emails and phones as hashes of their normalised form.

    Raises :class:`InvalidInputError` naming the first value that is not an
    email, a phone or a SHA-256 digest, so that nobody is silently left out.
    """
    if kind not in KINDS:
        raise InvalidInputError(f"suppression kind must be one of {', '.join(KINDS)}, got {kind!r}")
    vals = [v for v in values if v is not None and str(v).strip() and str(v) != "nan"]
    if kind == "id":
        return pd.DataFrame({"kind": "id", "value": [str(v).strip() for v in vals]})
    if kind in ("email", "phone"):
        if kind == "email":
            normalized = [normalize_email(v) for v in vals]
        else:
            normalized = [normalize_phone(v, region=phone_region) for v in vals]
        bad = [v for v, n in zip(vals, normalized) if n is None]
        if bad:
            raise InvalidInputError(f"{len(bad)} value(s) are not valid {kind}s, e.g. {bad[0]!r}; fix or remove them")
        return pd.DataFrame({"kind": f"{kind}_sha256", "value": [sha256_hex(n) for n in normalized]})
    cleaned = [str(v).strip().lower() for v in vals]
    bad = [v for v in cleaned if not is_sha256(v)]
    if bad:
        raise InvalidInputError(f"{len(bad)} value(s) are not SHA-256 hex digests, e.g. {bad[0]!r}")
    return pd.DataFrame({"kind": kind, "value": cleaned})


def add_suppressions(store, values, *, kind: str = "id", phone_region: str = DEFAULT_PHONE_REGION) -> int:
    """Add values (or the first column of a file) to the suppression list; returns how many are new."""
    if isinstance(values, (str, os.PathLike)):
        values = read_values(values)
    frame = suppression_frame(values, kind, phone_region=phone_region).drop_duplicates()
    frame["added_at"] = pd.Timestamp.now(tz="UTC")
    with store.transaction() as con:
        if kind != "id":
            fill_pending_hashes(con)  # the stored hashes this suppression is matched against
        before = con.execute("SELECT count(*) FROM suppressions").fetchall()[0][0]
        con.execute("INSERT INTO suppressions SELECT * FROM frame ON CONFLICT DO NOTHING")
        after = con.execute("SELECT count(*) FROM suppressions").fetchall()[0][0]
    return int(after - before)


def read_people(path) -> dict[str, list[str]]:
    """Ids, emails and phones from a CSV with a header naming them (``id``/``customer_id``, ``email``, ``phone``).

    A file without such a header is read as one column of customer ids.
    """
    rows = _csv_rows(path)
    out: dict[str, list[str]] = {"id": [], "email": [], "phone": []}
    if not rows:
        return out
    header = [c.strip().lower() for c in rows[0]]
    wanted = {"id": ("customer_id", "id"), "email": ("email", "email_address"), "phone": ("phone", "phone_number")}
    where = {k: next((header.index(n) for n in names if n in header), None) for k, names in wanted.items()}
    if all(v is None for v in where.values()):
        out["id"] = [row[0].strip() for row in rows]
        return out
    for row in rows[1:]:
        for k, i in where.items():
            if i is not None and i < len(row) and row[i].strip():
                out[k].append(row[i].strip())
    return out
