"""The personal columns of a customers file, batch by batch: consent, emails, phones.

For each batch the ingest reads, this module works out the consent code of
every row (:mod:`geotarget.store.consent`), normalises the email and phone
columns with the one normaliser (:mod:`geotarget.store.identity`) and hashes
them, and masks them in rows that go to the rejects table, which never holds
a raw email or phone.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from geotarget._lazy import lazy_module
from geotarget.store.consent import consent_codes
from geotarget.store.identity import (
    DEFAULT_PHONE_REGION,
    check_region,
    country_column,
    email_column,
    hash_all,
    mask_email,
    mask_phone,
    normalize_emails,
    normalize_phones,
    phone_column,
)

pd = lazy_module("pandas")  # imported on first use: the one-shot audience path never needs it

__all__ = ["PersonalBatch", "PersonalColumns"]


@dataclass
class PersonalColumns:
    """Which input columns hold consent, email, phone and the phone's country."""

    consent: str | None = None
    email: str | None = None
    phone: str | None = None
    country: str | None = None
    region: str = DEFAULT_PHONE_REGION

    @classmethod
    def detect(cls, columns, *, consent: str | None, taken, customers: bool,
               phone_region: str | None = None) -> PersonalColumns:
        """Find the personal columns among ``columns`` (customers only; stores have none)."""
        if not customers:
            return cls()
        free = [c for c in columns if c not in taken]
        region = check_region(phone_region) if phone_region else DEFAULT_PHONE_REGION
        phone = phone_column(free)
        return cls(consent, email_column(free), phone, country_column(free) if phone else None, region)

    def text_columns(self, id_column: str) -> tuple[str, ...]:
        """Columns a CSV reader must keep as text: the id, and values whose spelling matters
        (consent words, phones with leading zeros)."""
        return tuple(c for c in (id_column, self.consent, self.email, self.phone, self.country) if c is not None)

    def read(self, frame: pd.DataFrame) -> PersonalBatch:
        """Consent codes, normalised values and hashes of one batch."""
        out = PersonalBatch()
        if self.consent is not None:
            out.codes, out.unknown = consent_codes(frame[self.consent])
            out.raw_consent = frame[self.consent].astype("string").to_numpy(dtype=object, na_value=None)
        if self.email is not None:
            out.email, out.invalid_emails = normalize_emails(frame[self.email])
        if self.phone is not None:
            regions = frame[self.country] if self.country is not None else None
            out.phone, out.invalid_phones = normalize_phones(frame[self.phone], region=self.region, regions=regions)
        return out

    def hash_select(self, staged_columns, *, now: bool = True) -> str:
        """SQL select items adding ``email_sha256``/``phone_sha256``: the SHA-256 of the values this
        module normalised (hashing only; SQL never normalises), or NULL (pending, see
        :mod:`geotarget.store.hashes`) when not ``now``."""
        parts = []
        for column, hashed in self.hashed(staged_columns).items():
            value = 'sha256("' + column.replace('"', '""') + '")' if now else "CAST(NULL AS VARCHAR)"
            parts.append(f", {value} AS {hashed}")
        return "".join(parts)

    def hashed(self, staged_columns) -> dict[str, str]:
        """``{source column: hash column}`` of the email and phone columns among ``staged_columns``."""
        return {column: hashed for column, hashed in ((self.email, "email_sha256"), (self.phone, "phone_sha256"))
                if column is not None and column in staged_columns}

    def mask(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with emails and phones masked (for the rejects table)."""
        if self.email is None and self.phone is None:
            return frame
        frame = frame.copy()
        if self.email is not None:
            frame[self.email] = [mask_email(v) for v in frame[self.email].to_numpy(dtype=object)]
        if self.phone is not None:
            frame[self.phone] = [mask_phone(v) for v in frame[self.phone].to_numpy(dtype=object)]
        return frame


@dataclass
class PersonalBatch:
    """The personal columns of one batch, for every row of it."""

    codes: np.ndarray | None = None
    raw_consent: np.ndarray | None = None
    unknown: Counter = field(default_factory=Counter)
    email: object = None  # a pyarrow string array
    invalid_emails: int = 0
    phone: object = None
    invalid_phones: int = 0

    def fill(self, out: pd.DataFrame, extra: pd.DataFrame, keep: np.ndarray, cols: PersonalColumns) -> None:
        """Put the kept rows' consent, normalised values and hashes into the staged batch."""
        from geotarget.store.consent import OPT_OUT, UNKNOWN

        if self.codes is not None:
            codes = self.codes[keep]
            out["opted_out"] = (codes == OPT_OUT) | (codes == UNKNOWN)
            out["_consent"] = codes
            out["_consent_raw"] = self.raw_consent[keep]
        import pyarrow as pa

        for values, column in ((self.email, cols.email), (self.phone, cols.phone)):
            if values is not None and column in extra.columns:
                kept = values if len(keep) == len(values) else values.take(pa.array(keep))
                extra[column] = pd.Series(pd.arrays.ArrowExtensionArray(kept), index=extra.index)

    def reject_columns(self, bad: np.ndarray) -> dict:
        """The hashes of rejected rows, so that erasure finds them in the rejects table."""
        return {
            "email_sha256": hash_all(self.email.take(bad)) if self.email is not None else None,
            "phone_sha256": hash_all(self.phone.take(bad)) if self.phone is not None else None,
        }
