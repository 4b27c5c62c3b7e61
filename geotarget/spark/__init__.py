"""geotarget's jobs on Apache Spark (the optional ``spark`` extra).

Radius and region audiences over customers, visitation audiences and
footfall over pings, on a SparkSession reading Hive-partitioned Parquet.
The exact kernels are geotarget's own, run inside Arrow UDFs, so the answers
equal the embedded engine's. pyspark is imported only when a session is
made (:func:`session`); without it a :class:`~geotarget.errors.MissingDependencyError`
says ``pip install 'geotarget[spark]'``.

Examples
--------
A sketch (needs pyspark and Java)::

    import geotarget, geotarget.spark as gs
    eng = geotarget.open("shop.duckdb")
    gs.export_customers(eng, "customers.parquet")
    spark = gs.session("local[2]")
    places = eng.pings.places(stores="all", radius="2mi")
    aud = gs.to_pandas(gs.radius_audience(spark, "customers.parquet", places))
    gs.stop(spark)
"""

from .datasets import export_customers, prune, read, scan_metrics
from .jobs import footfall, matches, radius_audience, region_audience, to_pandas, visitors, visits
from .narrow import Narrowing, narrowing, region_wkbs, suppress, suppression_frame_of
from .session import java_version, session, stop

__all__ = [
    "Narrowing",
    "export_customers",
    "footfall",
    "java_version",
    "matches",
    "narrowing",
    "prune",
    "radius_audience",
    "read",
    "region_audience",
    "region_wkbs",
    "scan_metrics",
    "session",
    "stop",
    "suppress",
    "suppression_frame_of",
    "to_pandas",
    "visitors",
    "visits",
]
