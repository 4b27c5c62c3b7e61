"""geotarget's jobs on Spark: radius and region audiences, visitation audiences, footfall.

Each job is Spark DataFrames end to end: a pruned Parquet scan
(:func:`geotarget.spark.datasets.prune`), an Arrow UDF (``mapInArrow``) that
runs geotarget's own exact kernels on each batch, and Spark's grouping for
what needs one device's pings together (``groupBy(...).applyInPandas``) or a
distinct count. The kernels are the ones the embedded engine runs, so the
ids are the same and the distances agree to floating-point noise:

- radius audiences: :func:`geotarget.audience.nearest._nearest` (each customer's
  nearest centre, WGS84 geodesic within the radius);
- region audiences: :func:`geotarget.audience.membership._region_positions`;
- visits and visitors: :mod:`geotarget.pings.visits`;
- footfall: :func:`geotarget.pings.footfall.footfall_keys`.

Jobs return lazy Spark DataFrames (see :func:`to_pandas`), except
:func:`footfall`, which returns a collected :class:`~geotarget.pings.Footfall`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from ..audience.index import CustomerIndex
from ..audience.membership import _region_positions
from ..audience.nearest import _nearest
from ..maps.metric import check_k_min
from ..pings.dataset import PARTITION_COLUMN
from ..pings.footfall import Footfall, apply_floor, check_res, footfall_keys
from ..pings.places import Places
from ..pings.visits import VisitRule, match_pings, visitors_from_matches, visits_from_matches
from .datasets import prune
from .narrow import SUPPRESSION_COLUMNS, Narrowing, narrowing, suppress
from .session import quiet_pyspark

__all__ = ["footfall", "radius_audience", "region_audience", "to_pandas", "visitors", "visits"]

RADIUS_SCHEMA = "customer_id string, lat double, lng double, distance_m double, center_id string"
REGION_SCHEMA = "customer_id string, lat double, lng double"
MATCH_SCHEMA = "device_id string, place_id string, ts_us long, distance_m double"
VISIT_SCHEMA = ("device_id string, place_id string, start_us long, end_us long, dwell_minutes double, pings long, "
                "distance_m double")
VISITOR_SCHEMA = ("device_id string, visits long, days long, dwell_minutes double, first_seen_us long, "
                  "last_seen_us long, places string")
KEY_SCHEMA = "day string, cell long, device_id string"


def _customer_index(table: pa.Table) -> tuple[CustomerIndex, pa.Table]:
    """The batch as a customer index sorted by cell, and the batch in the same order."""
    cells = table.column("cell").to_numpy().astype("uint64")
    order = np.argsort(cells, kind="stable")
    table = table.take(pa.array(order))
    return CustomerIndex(version=0, res=15, cells=cells[order],
                         lat=table.column("lat").to_numpy().astype("float64"),
                         lng=table.column("lng").to_numpy().astype("float64"),
                         ids=table.column("customer_id").combine_chunks().cast(pa.string())), table


def _narrowed(out: dict, rows: pa.Table, narrow: Narrowing | None) -> pa.Table:
    """The audience columns of a batch's members, narrowed (and split) as the embedded engine does."""
    result = pa.table(out)
    if narrow is None:
        return result
    keep = narrow.keep(rows)
    if not keep.all():
        result = result.filter(pa.array(keep))
    groups = narrow.groups(result.column("customer_id"))
    return result if groups is None else result.append_column("group", groups)


def radius_batch(table: pa.Table, places: Places, narrow: Narrowing | None = None) -> pa.Table:
    """Customers of one batch within the radius of a place, each with its nearest place and distance."""
    index, table = _customer_index(table)
    members, which, dist, _ = _nearest(index, np.asarray(places.lat), np.asarray(places.lng), places.radius_m)
    out = {"customer_id": index.take_ids(members), "lat": index.lat[members], "lng": index.lng[members],
           "distance_m": dist, "center_id": pa.array(np.asarray(places.ids, dtype=object)[which], type=pa.string())}
    return _narrowed(out, table.take(pa.array(members)), narrow)


def region_batch(table: pa.Table, places: Places, narrow: Narrowing | None = None) -> pa.Table:
    """Customers of one batch inside any of the polygons (boundary inside)."""
    index, table = _customer_index(table)
    pos = _region_positions(index, places.geometries())
    out = {"customer_id": index.take_ids(pos), "lat": index.lat[pos], "lng": index.lng[pos]}
    return _narrowed(out, table.take(pa.array(pos)), narrow)


def _per_batch(kernel, *args):
    def run(batches):
        for batch in batches:
            out = kernel(pa.Table.from_batches([batch]), *args)
            yield from out.to_batches()
    return run


def radius_audience(spark, customers, places: Places, *, where=None, exclude_within=None, exclude_regions=None,
                    suppressions=None, holdout: float | None = None, campaign: str | None = None,
                    consent_col: str | None = None, engine=None):
    """Customers within ``places.radius_m`` of any place (columns of :data:`RADIUS_SCHEMA`, + ``group``).

    ``customers`` is a DataFrame read with :func:`geotarget.spark.datasets.read`
    (or a path to such a folder). The keyword options narrow the audience as
    :meth:`geotarget.Engine.audience` narrows its own (:mod:`geotarget.spark.narrow`):
    ``where`` segment filters, ``exclude_within`` zones (``"lat,lng,radius"``),
    ``exclude_regions`` (``"LAYER:NAME"`` of ``engine``'s database, or polygons),
    ``suppressions`` (an Engine, whose suppression list applies, or a frame of
    ``kind, value``), the consent column (detected by name, or ``consent_col``),
    and a ``holdout`` fraction salted by ``campaign`` (adds a ``group`` column).

    Examples
    --------
    >>> places = eng.pings.places(stores="all", radius="2mi")  # doctest: +SKIP
    >>> to_pandas(radius_audience(spark, "customers/", places)).columns.tolist()  # doctest: +SKIP
    ['customer_id', 'lat', 'lng', 'distance_m', 'center_id']
    >>> radius_audience(spark, "customers/", places, where=["tier=gold"], holdout=0.1,  # doctest: +SKIP
    ...                 campaign="spring", suppressions=eng)
    """
    if places.kind != "radius":
        raise ValueError("radius_audience needs radius places")
    return _audience(spark, customers, places, radius_batch, RADIUS_SCHEMA, where=where,
                     exclude_within=exclude_within, exclude_regions=exclude_regions, suppressions=suppressions,
                     holdout=holdout, campaign=campaign, consent_col=consent_col, engine=engine)


def region_audience(spark, customers, places: Places, *, where=None, exclude_within=None, exclude_regions=None,
                    suppressions=None, holdout: float | None = None, campaign: str | None = None,
                    consent_col: str | None = None, engine=None):
    """Customers inside any of the region places (columns of :data:`REGION_SCHEMA`, + ``group``).

    The keyword options are those of :func:`radius_audience`.

    Examples
    --------
    >>> places = eng.pings.places(region_layer="nyc_nta")  # doctest: +SKIP
    >>> to_pandas(region_audience(spark, "customers/", places)).columns.tolist()  # doctest: +SKIP
    ['customer_id', 'lat', 'lng']
    """
    return _audience(spark, customers, places, region_batch, REGION_SCHEMA, where=where,
                     exclude_within=exclude_within, exclude_regions=exclude_regions, suppressions=suppressions,
                     holdout=holdout, campaign=campaign, consent_col=consent_col, engine=engine)


def _audience(spark, customers, places, kernel, schema, *, suppressions, engine, **options):
    df = _frame(spark, customers)
    narrow = narrowing(df, engine=engine, **options)
    base = ["customer_id", "lat", "lng", "cell"]
    keys = [c for c in df.columns if c.lower() in SUPPRESSION_COLUMNS.values()] if suppressions is not None else []
    with quiet_pyspark():
        df = prune(df.select(*dict.fromkeys([*base, *narrow.columns, *keys, PARTITION_COLUMN])), places)
        if suppressions is not None:
            df = suppress(df, suppressions)
        if narrow.holdout:
            schema += ", group string"
        return df.select(*base, *narrow.columns).mapInArrow(_per_batch(kernel, places, narrow), schema)


def _frame(spark, source):
    from .datasets import read

    return source if hasattr(source, "mapInArrow") else read(spark, source)


def matches(spark, pings, places: Places, rule: VisitRule):
    """Pings at the places under the rule (columns of :data:`MATCH_SCHEMA`).

    Examples
    --------
    >>> matches(spark, eng.pings.root, places, VisitRule()).count()  # doctest: +SKIP
    27018
    """
    df = _frame(spark, pings)
    with quiet_pyspark():
        return prune(df, places, days=rule.days()).select("device_id", "ts", "lat", "lng", "cell").mapInArrow(
            _per_batch(match_pings, places, rule), MATCH_SCHEMA)


def _visits_us(frame: pd.DataFrame, rule: VisitRule) -> pd.DataFrame:
    out = visits_from_matches(frame, rule)
    out = out[out["dwell_minutes"] >= rule.min_dwell_minutes]
    return pd.DataFrame({"device_id": out["device_id"].astype(object), "place_id": out["place_id"].astype(object),
                         "start_us": _us(out["start"]), "end_us": _us(out["end"]),
                         "dwell_minutes": out["dwell_minutes"].astype("float64"), "pings": out["pings"].astype("int64"),
                         "distance_m": out["distance_m"].astype("float64")})


def _visitors_us(frame: pd.DataFrame, rule: VisitRule) -> pd.DataFrame:
    out = visitors_from_matches(frame, rule)
    return pd.DataFrame({"device_id": out["device_id"].astype(object), "visits": out["visits"].astype("int64"),
                         "days": out["days"].astype("int64"), "dwell_minutes": out["dwell_minutes"].astype("float64"),
                         "first_seen_us": _us(out["first_seen"]), "last_seen_us": _us(out["last_seen"]),
                         "places": out["places"].astype(object)})


def _us(values: pd.Series) -> np.ndarray:
    return values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype("int64")


def visits(spark, pings, places: Places, rule: VisitRule):
    """Visits at the places (:data:`VISIT_SCHEMA`; times as UTC microseconds).

    Examples
    --------
    >>> to_pandas(visits(spark, eng.pings.root, places, VisitRule())).columns.tolist()  # doctest: +SKIP
    ['device_id', 'place_id', 'start', 'end', 'dwell_minutes', 'pings', 'distance_m']
    """
    found = matches(spark, pings, places, rule)
    with quiet_pyspark():
        return _by_device(found).applyInPandas(lambda g: _visits_us(g.drop(columns="_bucket"), rule), VISIT_SCHEMA)


def visitors(spark, pings, places: Places, rule: VisitRule, *, exclude: Places | None = None):
    """A visitation audience (:data:`VISITOR_SCHEMA`), minus the visitors of ``exclude`` when given.

    Examples
    --------
    >>> rule = VisitRule.make(min_dwell_minutes=10, min_days=2)
    >>> rule.min_days
    2
    >>> to_pandas(visitors(spark, eng.pings.root, places, rule))  # doctest: +SKIP
    """
    def audience(found):
        return _by_device(found).applyInPandas(lambda g: _visitors_us(g.drop(columns="_bucket"), rule),
                                               VISITOR_SCHEMA)

    with quiet_pyspark():
        out = audience(matches(spark, pings, places, rule))
        if exclude is not None:
            loyal = audience(matches(spark, pings, exclude, rule)).select("device_id")
            out = out.join(loyal, on="device_id", how="left_anti")
    return out


def _by_device(found):
    """Matches grouped into hash buckets of devices: every ping of a device lands in one bucket.

    One pandas call per bucket (not per device) keeps the Python overhead per
    shuffle partition; the kernels handle many devices at once.
    """
    from pyspark.sql import functions as F

    buckets = int(found.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    return found.withColumn("_bucket", F.pmod(F.hash("device_id"), F.lit(buckets))).groupBy("_bucket")


def footfall(spark, pings, res: int = 9, *, k_min: int | None = 10, allow_no_floor: bool = False,
             rule: VisitRule | None = None, sensitive_wkb=()) -> Footfall:
    """Unique devices per H3 cell per day, collected, with the k floor (as :meth:`geotarget.Engine.footfall`).

    Examples
    --------
    >>> footfall(spark, eng.pings.root, 9, k_min=10).frame.columns.tolist()  # doctest: +SKIP
    ['day', 'cell', 'h3', 'devices']
    """
    from pyspark.sql import functions as F

    res = check_res(res)
    k = check_k_min(k_min, allow_no_floor)
    rule = rule or VisitRule()
    df = _frame(spark, pings)
    days = rule.days()
    if days is not None:
        df = df.where(F.col("day").between(F.to_date(F.lit(days[0])), F.to_date(F.lit(days[1]))))

    def kernel(table):
        return footfall_keys(table, res, tz=rule.tz, sensitive_wkb=sensitive_wkb, optouts=rule.optouts,
                             start_us=rule.start_us, end_us=rule.end_us)

    with quiet_pyspark():
        keys = df.select("device_id", "ts", "lat", "lng", "cell").mapInArrow(_per_batch(kernel), KEY_SCHEMA)
        counts = keys.groupBy("day", "cell").agg(F.countDistinct("device_id").alias("devices"))
        frame = to_pandas(counts)
    return apply_floor(frame, res, k)


def to_pandas(df) -> pd.DataFrame:
    """Collect a job's result through Arrow; ``*_us`` columns become UTC datetimes without the suffix.

    Examples
    --------
    >>> to_pandas(visits(spark, eng.pings.root, places, VisitRule()))["start"].dtype  # doctest: +SKIP
    datetime64[us, UTC]
    """
    with quiet_pyspark():
        table = df.toArrow()
    frame = table.to_pandas()
    renamed = {}
    for column in [c for c in frame.columns if c.endswith("_us") and c != "ts_us"]:
        frame[column] = pd.to_datetime(frame[column], unit="us", utc=True).astype("datetime64[us, UTC]")
        renamed[column] = column[:-3]
    return frame.rename(columns=renamed)
