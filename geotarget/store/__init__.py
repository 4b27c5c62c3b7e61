"""The DuckDB file: schema, readers, validation, ingest and upsert; identities, consent, erasure, privacy policy.

Everything that writes customers, stores and regions goes through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geotarget.store.database import Store, default_db_path
from geotarget.store.erasure import ErasureReport, erase, register_personal_table
from geotarget.store.identity import normalize_email, normalize_phone
from geotarget.store.policy import PrivacyPolicy

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from geotarget.store.ingest import IngestReport, ingest_points, ingest_regions

_INGEST = ("IngestReport", "ingest_points", "ingest_regions")


def __getattr__(name: str):
    # the ingest pipeline (readers, validation, regions) loads on first use: a query never needs it
    if name in _INGEST:
        from geotarget.store import ingest

        return getattr(ingest, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "default_db_path",
    "erase",
    "ErasureReport",
    "ingest_points",
    "ingest_regions",
    "IngestReport",
    "normalize_email",
    "normalize_phone",
    "PrivacyPolicy",
    "register_personal_table",
    "Store",
]
