"""Device pings: append-only ingest, visitation audiences, footfall, consent.

Pings are stored as Parquet partitioned by UTC day and a coarse H3 parent
(:mod:`geotarget.pings.dataset`), beside the database file, so the embedded
engine and :mod:`geotarget.spark` read one layout. Visitation audiences keep
the exactness contract of customer audiences: a ping is within ``R`` of a
place if and only if its WGS84 geodesic distance is at most ``R``; a ping on a
region's boundary is inside it.
"""

from .consent import device_hash
from .dataset import PARTITION_COLUMN, PARTITION_RES, PING_SCHEMA, partition_paths, write_partitioned
from .footfall import Footfall
from .ingest import DEFAULT_MAX_ACCURACY_M
from .pings import Pings, ScanStats
from .places import Places, read_points, read_regions, resolve_places
from .visits import VisitRule, match_pings, parse_hours, visitors_from_matches, visits_from_matches

__all__ = [
    "DEFAULT_MAX_ACCURACY_M",
    "PARTITION_COLUMN",
    "PARTITION_RES",
    "PING_SCHEMA",
    "Footfall",
    "Pings",
    "Places",
    "ScanStats",
    "VisitRule",
    "device_hash",
    "match_pings",
    "parse_hours",
    "partition_paths",
    "read_points",
    "read_regions",
    "resolve_places",
    "visitors_from_matches",
    "visits_from_matches",
    "write_partitioned",
]
