"""The DuckDB file: schema, readers, validation, ingest and upsert, and the privacy policy it keeps.

Everything that writes customers, stores and regions goes through here.
"""

from __future__ import annotations

from geotarget.store.database import Store, default_db_path
from geotarget.store.ingest import IngestReport, ingest_points, ingest_regions
from geotarget.store.policy import PrivacyPolicy

__all__ = ["default_db_path", "ingest_points", "ingest_regions", "IngestReport", "PrivacyPolicy", "Store"]
