"""The DuckDB file: schema, readers, validation, ingest and upsert; identities, consent, erasure, privacy policy.

Everything that writes customers, stores and regions goes through here.
"""

from __future__ import annotations

from geotarget.store.database import Store, default_db_path
from geotarget.store.erasure import ErasureReport, erase, register_personal_table
from geotarget.store.identity import normalize_email, normalize_phone
from geotarget.store.ingest import IngestReport, ingest_points, ingest_regions
from geotarget.store.policy import PrivacyPolicy

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
