"""In-process peers: DuckDB SQL, GeoPandas/shapely STRtree, scikit-learn BallTree.

Each gets its best standard form; building its index or table is setup, timed
separately from the workloads:

- DuckDB SQL (no extensions): haversine as a SQL macro, over a table sorted by
  latitude so that a bounding-box prefilter can skip row groups by zone maps;
  the heatmap is a GROUP BY over a precomputed res-8 cell column. Beside it,
  the floor of what any engine can do: ``numpy.bincount`` over the same cells
  precomputed as dense codes (0 .. number of cells - 1).
- GeoPandas: points projected to EPSG:2263 (NY Long Island, US feet) with an
  STRtree for ``dwithin``; lat/lng points with their own STRtree for polygons;
  ``sjoin_nearest(max_distance=...)`` for nearest-store assignment.
- BallTree with the haversine metric, queried with ``query_radius``.
"""

from __future__ import annotations

import os
import time

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .data import Dataset

__all__ = ["BallTreePeer", "DuckDBPeer", "GeoPandasPeer", "bbox_deg"]

MEAN_RADIUS_M = 6_371_008.8
FT_PER_M = 1 / 0.3048006096012192  # US survey foot, the unit of EPSG:2263


def bbox_deg(lat: float, radius_m: float) -> tuple[float, float]:
    """Conservative half-widths (dlat, dlng) in degrees of a radius around ``lat``."""
    dlat = np.degrees(radius_m / 6_335_000.0) * 1.02
    return float(dlat), float(dlat / np.cos(np.radians(abs(lat) + dlat)))


def _read(ds: Dataset, columns: list[str]) -> pa.Table:
    return pq.read_table(ds.customers_parquet, columns=columns)


class DuckDBPeer:
    """Plain DuckDB SQL over an in-memory copy of the customers."""

    name = "duckdb"

    def __init__(self, ds: Dataset, *, res: int = 8):
        from h3ronpy.vector import coordinates_to_cells

        t0 = time.perf_counter()
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"SET threads = {os.cpu_count() or 1}")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute(
            "CREATE MACRO hav_m(lat1, lng1, lat2, lng2) AS 2 * $R * asin(sqrt("
            "pow(sin(radians(lat2 - lat1) / 2), 2) + "
            "cos(radians(lat1)) * cos(radians(lat2)) * pow(sin(radians(lng2 - lng1) / 2), 2)))"
            .replace("$R", repr(MEAN_RADIUS_M))
        )
        table = _read(ds, ["customer_id", "lat", "lng"])
        self.con.register("arrow_customers", table)
        self.con.execute("CREATE TABLE customers AS SELECT * FROM arrow_customers ORDER BY lat")
        self.con.unregister("arrow_customers")
        self.setup_seconds = {"load + sort by lat": time.perf_counter() - t0}
        t1 = time.perf_counter()
        cells = np.asarray(coordinates_to_cells(table.column("lat").to_numpy(), table.column("lng").to_numpy(), res),
                           dtype="uint64")
        precomputed = pa.table({"customer_id": table.column("customer_id"), "cell": cells})
        self.con.register("arrow_cells", precomputed)
        self.con.execute("CREATE TABLE cells AS SELECT * FROM arrow_cells")
        self.con.unregister("arrow_cells")
        self.distinct_cells, codes = np.unique(cells, return_inverse=True)
        self.cell_codes = codes.astype("int32")
        self.setup_seconds[f"precompute res-{res} cells"] = time.perf_counter() - t1
        stores = ds.stores.copy()
        half = [bbox_deg(a, 1.0) for a in stores["lat"]]
        stores["dlat_per_m"] = [h[0] for h in half]
        stores["dlng_per_m"] = [h[1] for h in half]
        self.stores_dlat_per_m = stores["dlat_per_m"].to_numpy()
        self.stores_dlng_per_m = stores["dlng_per_m"].to_numpy()
        self.con.register("frame_stores", stores)
        self.con.execute("CREATE TABLE stores AS SELECT * FROM frame_stores")
        self.con.unregister("frame_stores")
        self.setup_seconds["total"] = time.perf_counter() - t0

    def _frame(self, sql: str, params: dict) -> pd.DataFrame:
        return self.con.sql(sql, params=params).to_arrow_table().to_pandas()

    def single_scan(self, lat: float, lng: float, radius_m: float) -> pd.DataFrame:
        return self._frame(
            "SELECT customer_id, lat, lng, d AS distance_m FROM ("
            " SELECT customer_id, lat, lng, hav_m($lat, $lng, lat, lng) AS d FROM customers) WHERE d <= $r",
            {"lat": lat, "lng": lng, "r": radius_m},
        )

    def single_bbox(self, lat: float, lng: float, radius_m: float) -> pd.DataFrame:
        dlat, dlng = bbox_deg(lat, radius_m)
        return self._frame(
            "SELECT customer_id, lat, lng, d AS distance_m FROM ("
            " SELECT customer_id, lat, lng, hav_m($lat, $lng, lat, lng) AS d FROM customers"
            " WHERE lat BETWEEN $lat - $dlat AND $lat + $dlat AND lng BETWEEN $lng - $dlng AND $lng + $dlng"
            ") WHERE d <= $r",
            {"lat": lat, "lng": lng, "r": radius_m, "dlat": dlat, "dlng": dlng},
        )

    def many(self, radius_m: float) -> pd.DataFrame:
        """Grid-bucket equi-join: each store probes the 3x3 buckets around its own, sized >= the radius.

        (A plain range join on the bounding boxes took over four minutes at 1M customers.)
        """
        step_lat = float(self.stores_dlat_per_m.max()) * radius_m
        step_lng = float(self.stores_dlng_per_m.max()) * radius_m
        return self._frame(
            "WITH s AS (SELECT store_id, lat, lng, floor(lat / $sy)::BIGINT + dy AS gy,"
            "                  floor(lng / $sx)::BIGINT + dx AS gx"
            "           FROM stores, range(-1, 2) t1(dy), range(-1, 2) t2(dx)),"
            " c AS (SELECT customer_id, lat, lng, floor(lat / $sy)::BIGINT AS gy, floor(lng / $sx)::BIGINT AS gx"
            "       FROM customers),"
            " pairs AS (SELECT c.customer_id, c.lat, c.lng, s.store_id, hav_m(s.lat, s.lng, c.lat, c.lng) AS d"
            "           FROM c JOIN s ON c.gy = s.gy AND c.gx = s.gx)"
            " SELECT customer_id, any_value(lat) AS lat, any_value(lng) AS lng,"
            "        arg_min(store_id, d) AS store_id, min(d) AS distance_m"
            " FROM pairs WHERE d <= $r GROUP BY customer_id",
            {"r": radius_m, "sy": step_lat, "sx": step_lng},
        )

    def heatmap(self, res: int, k_min: int) -> pd.DataFrame:
        return self._frame("SELECT cell, count(*) AS count FROM cells GROUP BY cell HAVING count(*) >= $k",
                           {"k": k_min})

    def heatmap_bincount(self, res: int, k_min: int) -> tuple[np.ndarray, np.ndarray]:
        """The floor: one bincount and the k filter, nothing else (the frame for the check is made untimed)."""
        counts = np.bincount(self.cell_codes, minlength=self.distinct_cells.size)
        keep = counts >= k_min
        return self.distinct_cells[keep], counts[keep]

    @staticmethod
    def _bincount_frame(answer: tuple[np.ndarray, np.ndarray]) -> pd.DataFrame:
        return pd.DataFrame({"cell": answer[0], "count": answer[1]})

    def tasks(self) -> dict:
        return {
            "single": [("DuckDB SQL haversine, full scan", self.single_scan),
                       ("DuckDB SQL haversine + bbox prefilter", self.single_bbox)],
            "many": [("DuckDB SQL grid-bucket join + haversine + arg_min", self.many)],
            "heatmap": [("DuckDB GROUP BY precomputed res-8 cell", self.heatmap),
                        ("numpy bincount over precomputed dense cell codes", self.heatmap_bincount,
                         self._bincount_frame)],
        }

    def close(self) -> None:
        self.con.close()


class GeoPandasPeer:
    """GeoPandas with shapely 2 STRtrees, projected for distances."""

    name = "geopandas"

    def __init__(self, ds: Dataset, ntas):
        import geopandas as gpd
        from pyproj import Transformer

        t0 = time.perf_counter()
        table = _read(ds, ["customer_id", "lat", "lng"])
        frame = table.to_pandas()
        self.to_ft = Transformer.from_crs(4326, 2263, always_xy=True)
        x, y = self.to_ft.transform(frame["lng"].to_numpy(), frame["lat"].to_numpy())
        self.projected = gpd.GeoDataFrame(frame, geometry=gpd.points_from_xy(x, y), crs=2263)
        self.projected.sindex.query  # build the STRtree now
        self.setup_seconds = {"project + STRtree (EPSG:2263)": time.perf_counter() - t0}
        self.ntas = ntas
        if ntas is not None:
            t1 = time.perf_counter()
            self.geographic = gpd.GeoDataFrame(
                frame, geometry=gpd.points_from_xy(frame["lng"], frame["lat"]), crs=4326)
            self.geographic.sindex.query
            self.setup_seconds["lat/lng STRtree"] = time.perf_counter() - t1
        sx, sy = self.to_ft.transform(ds.stores["lng"].to_numpy(), ds.stores["lat"].to_numpy())
        self.stores = gpd.GeoDataFrame(ds.stores[["store_id"]], geometry=gpd.points_from_xy(sx, sy), crs=2263)
        self.setup_seconds["total"] = time.perf_counter() - t0

    def single(self, lat: float, lng: float, radius_m: float) -> pd.DataFrame:
        import shapely

        centre = shapely.Point(*self.to_ft.transform(lng, lat))
        idx = self.projected.sindex.query(centre, predicate="dwithin", distance=radius_m * FT_PER_M)
        hit = self.projected.iloc[idx]
        out = pd.DataFrame(hit[["customer_id", "lat", "lng"]])
        out["distance_m"] = shapely.distance(hit.geometry.array, centre) / FT_PER_M
        return out.reset_index(drop=True)

    def many(self, radius_m: float) -> pd.DataFrame:
        import geopandas as gpd

        joined = gpd.sjoin_nearest(self.projected, self.stores, how="inner",
                                   max_distance=radius_m * FT_PER_M, distance_col="distance_ft")
        joined = joined[~joined.index.duplicated(keep="first")]  # equidistant stores tie
        out = pd.DataFrame(joined[["customer_id", "lat", "lng", "store_id"]])
        out["distance_m"] = joined["distance_ft"].to_numpy() / FT_PER_M
        return out.reset_index(drop=True)

    def regions(self, names: list[str]) -> pd.DataFrame:
        polys = self.ntas[self.ntas["NTAName"].isin(names)]
        poly_i, point_i = self.geographic.sindex.query(polys.geometry, predicate="intersects")
        out = pd.DataFrame(self.geographic.iloc[point_i][["customer_id", "lat", "lng"]])
        out["name"] = polys["NTAName"].to_numpy()[poly_i]
        return out.reset_index(drop=True)

    def tasks(self) -> dict:
        tasks = {
            "single": [("GeoPandas STRtree dwithin (EPSG:2263)", self.single)],
            "many": [("GeoPandas sjoin_nearest(max_distance) (EPSG:2263)", self.many)],
        }
        if self.ntas is not None:
            tasks["regions"] = [("GeoPandas STRtree intersects", self.regions)]
        return tasks

    def close(self) -> None:
        self.projected = self.geographic = None


class BallTreePeer:
    """scikit-learn BallTree, haversine metric on the mean-radius sphere."""

    name = "balltree"

    def __init__(self, ds: Dataset):
        from sklearn.neighbors import BallTree

        t0 = time.perf_counter()
        table = _read(ds, ["customer_id", "lat", "lng"])
        self.frame = table.to_pandas()
        self.lat = self.frame["lat"].to_numpy()
        self.lng = self.frame["lng"].to_numpy()
        self.tree = BallTree(np.radians(np.column_stack([self.lat, self.lng])), metric="haversine")
        self.stores = ds.stores
        self.setup_seconds = {"BallTree build": time.perf_counter() - t0, "total": time.perf_counter() - t0}

    def _query(self, lat, lng, radius_m: float):
        centres = np.radians(np.column_stack([np.atleast_1d(lat), np.atleast_1d(lng)]))
        return self.tree.query_radius(centres, r=radius_m / MEAN_RADIUS_M, return_distance=True)

    def single(self, lat: float, lng: float, radius_m: float) -> pd.DataFrame:
        ind, dist = self._query(lat, lng, radius_m)
        rows = ind[0]
        return pd.DataFrame({"customer_id": self.frame["customer_id"].to_numpy()[rows], "lat": self.lat[rows],
                             "lng": self.lng[rows], "distance_m": dist[0] * MEAN_RADIUS_M})

    def many(self, radius_m: float) -> pd.DataFrame:
        """One query per store, keeping each customer's nearest store as it goes (memory O(customers))."""
        best_d = np.full(self.lat.size, np.inf)
        best_s = np.full(self.lat.size, -1, dtype="int32")
        for i, (lat, lng) in enumerate(zip(self.stores["lat"].to_numpy(), self.stores["lng"].to_numpy())):
            ind, dist = self._query(lat, lng, radius_m)
            rows, d = ind[0], dist[0] * MEAN_RADIUS_M
            closer = d < best_d[rows]
            best_d[rows[closer]] = d[closer]
            best_s[rows[closer]] = i
        rows = np.flatnonzero(best_s >= 0)
        return pd.DataFrame({"customer_id": self.frame["customer_id"].to_numpy()[rows], "lat": self.lat[rows],
                             "lng": self.lng[rows], "store_id": self.stores["store_id"].to_numpy()[best_s[rows]],
                             "distance_m": best_d[rows]})

    def tasks(self) -> dict:
        return {"single": [("BallTree haversine query_radius", self.single)],
                "many": [("BallTree query_radius per store, running nearest", self.many)]}

    def close(self) -> None:
        self.tree = None
