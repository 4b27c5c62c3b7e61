"""The Huff gravity model: the probability that a place's people patronise each store.

For a demand point *i* (an H3 cell's centre, or a customer) and stores *j*,

.. math::

    P_{ij} = \\frac{A_j^{\\alpha} d_{ij}^{-\\beta}}{\\sum_k A_k^{\\alpha} d_{ik}^{-\\beta}}

with :math:`A_j` the store's attractiveness (a store column such as
``sqft``; 1 without one) and :math:`d_{ij}` the **WGS84 geodesic distance**
(pyproj ``Geod.inv``) from the store to the demand point, for a cell the
cell's centre. Distances below ``min_distance_m`` count as
``min_distance_m`` (by default half the average edge of a cell at the
resolution), so that a store standing at a cell's centre does not get an
infinite pull. Every store is in every choice set: stores of other brands
(a ``brand`` column) are the competitors. Probabilities are computed in log
space, so very large or small utilities neither overflow nor vanish.

Demand is customers per cell (the standard cell ``latlng_to_cell(lat, lng,
res)`` of each eligible customer) or population per cell (a region layer
spread over the cells by area). A store's expected customers are
:math:`\\sum_i w_i P_{ij}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..audience.budget import charge_cells
from ..errors import InvalidInputError, NotFoundError
from . import inputs

__all__ = ["HuffResult", "huff", "huff_model", "huff_probabilities", "store_distances_m"]

#: Pairs of (point, store) measured per block, to bound the memory of a distance matrix.
_BLOCK_PAIRS = 2_000_000


def store_distances_m(lat, lng, store_lat, store_lng, *, min_distance_m: float = 0.0) -> np.ndarray:
    """WGS84 geodesic distances (metres) from points to stores: a (points, stores) matrix.

    Distances below ``min_distance_m`` are raised to it.

    Examples
    --------
    >>> d = store_distances_m([0.0], [0.0], [0.0, 0.0], [1.0, 0.0], min_distance_m=10.0)
    >>> [round(float(v), 3) for v in d[0]]
    [111319.491, 10.0]
    """
    from ..geo.geodesy import WGS84

    lat = np.asarray(lat, dtype="float64").ravel()
    lng = np.asarray(lng, dtype="float64").ravel()
    slat = np.asarray(store_lat, dtype="float64").ravel()
    slng = np.asarray(store_lng, dtype="float64").ravel()
    out = np.empty((lat.size, slat.size), dtype="float64")
    if out.size == 0:
        return out
    step = max(1, _BLOCK_PAIRS // max(slat.size, 1))
    for start in range(0, lat.size, step):
        stop = min(start + step, lat.size)
        n = stop - start
        _, _, dist = WGS84.inv(np.tile(slng, n), np.tile(slat, n),
                               np.repeat(lng[start:stop], slat.size), np.repeat(lat[start:stop], slat.size))
        out[start:stop] = np.asarray(dist).reshape(n, slat.size)
    if min_distance_m > 0:
        np.maximum(out, float(min_distance_m), out=out)
    return out


def _check_params(alpha: float, beta: float) -> tuple[float, float]:
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not np.isfinite(value):
            raise InvalidInputError(f"{name} must be a finite number, got {value!r}")
    return float(alpha), float(beta)


def _log_utilities(distance_m: np.ndarray, attractiveness: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """alpha * log(A) - beta * log(d), per (point, store)."""
    with np.errstate(divide="ignore"):
        return alpha * np.log(attractiveness)[None, :] - beta * np.log(distance_m)


def huff_probabilities(distance_m, attractiveness, *, alpha: float = 1.0, beta: float = 2.0,
                       return_log_total: bool = False):
    """Huff probabilities from a (points, stores) distance matrix; every row sums to 1.

    Parameters
    ----------
    distance_m : array-like, shape (points, stores)
        Positive distances in metres.
    attractiveness : array-like, shape (stores,)
        Positive attractiveness per store.
    alpha, beta : float
        Exponents of attractiveness and of distance decay.
    return_log_total : bool
        Also return ``log(sum_k A_k^alpha d_k^-beta)`` per point (used to add a
        store without recomputing the others).

    Returns
    -------
    numpy.ndarray, shape (points, stores)

    Examples
    --------
    >>> p = huff_probabilities([[1000.0, 2000.0]], [1.0, 1.0], alpha=1.0, beta=2.0)
    >>> [round(float(v), 3) for v in p[0]]
    [0.8, 0.2]
    """
    alpha, beta = _check_params(alpha, beta)
    dist = np.atleast_2d(np.asarray(distance_m, dtype="float64"))
    attract = np.asarray(attractiveness, dtype="float64").ravel()
    if dist.shape[1] != attract.size:
        raise InvalidInputError(f"distance_m has {dist.shape[1]} store columns but attractiveness has "
                                f"{attract.size} values; give one attractiveness per store")
    if dist.size and (not np.all(dist > 0) or not np.all(attract > 0)):
        raise InvalidInputError("distances and attractiveness must be positive; set min_distance_m above 0")
    logu = _log_utilities(dist, attract, alpha, beta)
    top = logu.max(axis=1, keepdims=True) if logu.shape[1] else np.zeros((logu.shape[0], 1))
    prob = np.exp(logu - top)
    total = prob.sum(axis=1, keepdims=True)
    prob /= total
    if return_log_total:
        return prob, (np.log(total) + top).ravel()
    return prob


def default_min_distance_m(res: int) -> float:
    """Half the average edge length of an H3 cell at ``res`` (about 230 m at res 8)."""
    import h3

    return float(h3.average_hexagon_edge_length(res, unit="m")) / 2.0


@dataclass
class HuffResult:
    """A fitted Huff model over demand cells: probabilities, expected customers and spend.

    Attributes
    ----------
    cells : pandas.DataFrame
        One row per demand cell: ``cell`` (uint64), ``h3``, ``lat``, ``lng``
        (centre), ``demand``, ``customers``, ``spend``, ``population`` (NaN
        without a region layer), ``dominant_store``, ``dominant_probability``.
    stores : pandas.DataFrame
        One row per store: ``store_id``, ``name``, ``lat``, ``lng``,
        ``brand``, ``attractiveness``, ``expected_demand``,
        ``expected_customers``, ``expected_spend``, ``share`` (of all demand).
    probabilities : numpy.ndarray, shape (cells, stores)
        :math:`P_{ij}`; every row sums to 1.
    """

    cells: pd.DataFrame
    stores: pd.DataFrame
    probabilities: np.ndarray
    alpha: float
    beta: float
    res: int
    min_distance_m: float
    demand: str = "customers"
    log_total: np.ndarray = field(default=None, repr=False)

    def __repr__(self) -> str:
        return (f"<HuffResult {len(self.cells):,} cells x {len(self.stores):,} stores, res {self.res}, "
                f"alpha={self.alpha:g}, beta={self.beta:g}, demand={self.demand}>")

    def summary(self) -> str:
        """One line: sizes, parameters and the total demand."""
        return (f"{len(self.cells):,} res-{self.res} cells x {len(self.stores):,} stores; alpha={self.alpha:g}, "
                f"beta={self.beta:g}; total {self.demand} {self.cells['demand'].sum():,.1f}")

    def probabilities_at(self, lat, lng) -> np.ndarray:
        """Huff probabilities of any points (e.g. customers): a (points, stores) matrix."""
        dist = store_distances_m(lat, lng, self.stores["lat"], self.stores["lng"],
                                 min_distance_m=self.min_distance_m)
        return huff_probabilities(dist, self.stores["attractiveness"], alpha=self.alpha, beta=self.beta)

    def store_probabilities(self, store_id: str) -> pd.DataFrame:
        """The probability surface of one store: ``cell``, ``h3``, ``probability`` per cell."""
        j = self._store_index(store_id)
        return pd.DataFrame({"cell": self.cells["cell"].to_numpy(), "h3": self.cells["h3"].to_numpy(),
                             "probability": self.probabilities[:, j]})

    def _store_index(self, store_id: str) -> int:
        ids = self.stores["store_id"].astype(str).tolist()
        if str(store_id) not in ids:
            raise NotFoundError(f"store {store_id!r} is not in this Huff model; e.g. {', '.join(ids[:5])}")
        return ids.index(str(store_id))

    def brand_probabilities(self) -> pd.DataFrame:
        """Probability of each brand per cell (columns: brands; rows: cells)."""
        brands = self.stores["brand"].astype(str).to_numpy()
        names = list(dict.fromkeys(brands))
        out = {b: self.probabilities[:, brands == b].sum(axis=1) for b in names}
        return pd.DataFrame(out, index=self.cells["h3"].to_numpy())

    def brand_shares(self) -> pd.DataFrame:
        """Expected demand, customers and spend, and share of demand, per brand."""
        g = self.stores.groupby("brand", sort=True)[["expected_demand", "expected_customers",
                                                     "expected_spend"]].sum()
        total = float(self.cells["demand"].sum())
        g["share"] = g["expected_demand"] / total if total > 0 else np.nan
        g.insert(0, "stores", self.stores.groupby("brand").size())
        return g.reset_index()

    def floor_mask(self, k_min: int = 10, *, allow_no_floor: bool = False) -> np.ndarray:
        """Cells that may be shown: with customer demand, those holding at least ``k_min`` customers.

        Exports and maps leave the other cells out (a cell's demand is a
        count of customers). With population demand every cell is shown.
        """
        from ..maps.metric import check_k_min

        k = check_k_min(k_min, allow_no_floor)
        if self.demand == "customers":
            return self.cells["customers"].to_numpy() >= k
        return np.ones(len(self.cells), dtype=bool)

    def to_frame(self, *, min_probability: float = 0.0, k_min: int = 10, allow_no_floor: bool = False) -> pd.DataFrame:
        """Long table ``h3``, ``store_id``, ``brand``, ``probability``, ``expected_demand``.

        Rows below ``min_probability`` are left out, and so are cells under
        the k-anonymity floor (:meth:`floor_mask`).
        """
        keep = self.probabilities >= min_probability if min_probability > 0 else \
            np.ones_like(self.probabilities, dtype=bool)
        keep &= self.floor_mask(k_min, allow_no_floor=allow_no_floor)[:, None]
        ci, sj = np.nonzero(keep)
        demand = self.cells["demand"].to_numpy(dtype="float64")
        prob = self.probabilities[ci, sj]
        return pd.DataFrame({
            "h3": self.cells["h3"].to_numpy()[ci],
            "store_id": self.stores["store_id"].to_numpy()[sj],
            "brand": self.stores["brand"].to_numpy()[sj],
            "probability": prob,
            "expected_demand": demand[ci] * prob,
        })

    def save(self, path: str | Path, *, min_probability: float = 0.0, k_min: int = 10,
             allow_no_floor: bool = False) -> Path:
        """Write the long table (``.parquet`` or ``.csv``), or the cells with their dominant store (``.geojson``).

        Cells under the k-anonymity floor are left out (see :meth:`floor_mask`).
        """
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".csv"):
            frame = self.to_frame(min_probability=min_probability, k_min=k_min, allow_no_floor=allow_no_floor)
            frame.to_parquet(path, index=False) if suffix == ".parquet" else frame.to_csv(path, index=False)
        elif suffix in (".geojson", ".json"):
            gdf = self.to_geodataframe()
            gdf[self.floor_mask(k_min, allow_no_floor=allow_no_floor)].to_file(path, driver="GeoJSON")
        else:
            raise InvalidInputError(f"cannot write {str(path)!r}: use .parquet, .csv or .geojson")
        return path

    def to_geodataframe(self):
        """Every cell as a hexagon with its demand and dominant store (EPSG:4326; no floor applied)."""
        import geopandas as gpd

        from ..maps.geometry import cells_to_polygons

        frame = self.cells.drop(columns=["cell"]).copy()
        return gpd.GeoDataFrame(frame, geometry=cells_to_polygons(self.cells["cell"]), crs="EPSG:4326")

    def to_map(self, store_id: str | None = None, **options):
        """Folium map of the dominant store per cell, or of one store's probability surface."""
        from .maps import dominant_map, probability_map

        return dominant_map(self, **options) if store_id is None else probability_map(self, store_id, **options)

    def to_png(self, path: str | Path, store_id: str | None = None, **options) -> Path:
        """PNG of the dominant store per cell, or of one store's probability surface."""
        from .maps import huff_png

        return huff_png(self, Path(path), store_id=store_id, **options)


def huff_model(cells, demand, stores: pd.DataFrame, *, alpha: float = 1.0, beta: float = 2.0, res: int = 8,
               customers=None, spend=None, population=None, min_distance_m: float | None = None,
               demand_name: str = "customers") -> HuffResult:
    """The Huff model over given demand cells and stores (the array core of :func:`huff`).

    Parameters
    ----------
    cells : array-like of uint64
        H3 cells at ``res`` (their centres are the demand points).
    demand : array-like of float
        Demand weight per cell (customers or population).
    stores : DataFrame
        ``store_id``, ``lat``, ``lng``, ``brand``, ``attractiveness`` (and
        optionally ``name``).
    customers, spend, population : array-like, optional
        Per-cell totals carried into the result.
    min_distance_m : float, optional
        Floor on distances (default: half the cell edge at ``res``).

    Examples
    --------
    >>> import h3, pandas as pd
    >>> cells = [h3.str_to_int(h3.latlng_to_cell(40.75, -73.99, 8))]
    >>> stores = pd.DataFrame({"store_id": ["S1", "S2"], "lat": [40.75, 40.80], "lng": [-73.99, -73.99],
    ...                        "brand": "", "attractiveness": 1.0})
    >>> model = huff_model(cells, [100.0], stores, alpha=1.0, beta=2.0)
    >>> model.stores["expected_demand"].round(1).tolist()
    [99.8, 0.2]
    """
    alpha, beta = _check_params(alpha, beta)
    res = inputs.check_res(res)
    cells = np.asarray(cells, dtype="uint64")
    demand = np.asarray(demand, dtype="float64")
    floor = default_min_distance_m(res) if min_distance_m is None else float(min_distance_m)
    if floor <= 0:
        raise InvalidInputError(f"min_distance_m must be positive, got {min_distance_m!r}")
    stores = stores.reset_index(drop=True).copy()
    if "name" not in stores.columns:
        stores["name"] = None
    lat, lng = inputs.cell_centres(cells)
    dist = store_distances_m(lat, lng, stores["lat"], stores["lng"], min_distance_m=floor)
    prob, log_total = huff_probabilities(dist, stores["attractiveness"], alpha=alpha, beta=beta,
                                         return_log_total=True)
    del dist
    n = cells.size
    customers = np.zeros(n) if customers is None else np.asarray(customers, dtype="float64")
    spend = np.zeros(n) if spend is None else np.asarray(spend, dtype="float64")
    population = np.full(n, np.nan) if population is None else np.asarray(population, dtype="float64")
    top = prob.argmax(axis=1) if n and len(stores) else np.zeros(n, dtype=int)
    frame = pd.DataFrame({
        "cell": cells, "h3": inputs.cell_strings(cells), "lat": lat, "lng": lng, "demand": demand,
        "customers": customers, "spend": spend, "population": population,
        "dominant_store": stores["store_id"].to_numpy()[top] if len(stores) else None,
        "dominant_probability": prob[np.arange(n), top] if n and len(stores) else np.nan,
    })
    out = stores[["store_id", "name", "lat", "lng", "brand", "attractiveness"]].copy()
    out["expected_demand"] = demand @ prob
    out["expected_customers"] = customers @ prob
    out["expected_spend"] = spend @ prob
    total = float(demand.sum())
    out["share"] = out["expected_demand"] / total if total > 0 else np.nan
    return HuffResult(frame, out, prob, alpha, beta, res, floor, demand_name, log_total)


def huff(eng, *, res: int = 8, attract_col: str | None = None, brand_col: str | None = None,
         alpha: float = 1.0, beta: float = 2.0, spend_col: str | None = None, demand: str = "customers",
         region_layer: str | None = None, population_col: str | None = None,
         min_distance_m: float | None = None) -> HuffResult:
    """The Huff model of a database's stores over its demand cells (alpha and beta given; see calibrate_huff).

    Parameters
    ----------
    eng : Engine
    res : int
        H3 resolution of the demand cells (5-11).
    attract_col, brand_col : str, optional
        Store columns: attractiveness (positive; 1 for every store without
        one) and brand (competitors are stores of another brand).
    alpha, beta : float
        Exponents (see :func:`geotarget.trade.calibrate_huff` to fit them).
    spend_col : str, optional
        Numeric customer column summed per cell, for expected spend.
    demand : {"customers", "population"}
        Demand per cell: eligible customers in it, or the population of
        ``region_layer``'s ``population_col`` spread over the cells by area
        (then the cells are every cell overlapping the layer).
    region_layer, population_col : str, optional
        A region layer and its population property; with ``demand=
        "customers"`` each cell also carries its population.

    Returns
    -------
    HuffResult

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> model = huff(eng, res=8, brand_col="brand")
    >>> model.probabilities.sum(axis=1).round(12).tolist()
    [1.0, 1.0, 1.0]
    >>> model.brand_shares()["brand"].tolist()
    ['ours', 'rival']
    """
    res = inputs.check_res(res)
    if demand not in ("customers", "population"):
        raise InvalidInputError(f"demand must be 'customers' or 'population', got {demand!r}")
    if (region_layer is None) != (population_col is None):
        raise InvalidInputError("give region_layer and population_col together (e.g. hoods and population)")
    if demand == "population" and region_layer is None:
        raise InvalidInputError("demand='population' needs region_layer and population_col")
    stores = inputs.load_stores(eng, brand_col=brand_col, attract_col=attract_col)
    cust = inputs.load_customers(eng, columns=[spend_col] if spend_col else [])
    ccell = inputs.customer_cells(cust["lat"].to_numpy(), cust["lng"].to_numpy(), res)
    ucells, inverse = np.unique(ccell, return_inverse=True)
    counts = np.bincount(inverse, minlength=ucells.size).astype("float64")
    sums = np.bincount(inverse, weights=pd.to_numeric(cust[spend_col], errors="coerce").fillna(0.0).to_numpy(
        dtype="float64"), minlength=ucells.size) if spend_col else np.zeros(ucells.size)
    geoms = pops = None
    if region_layer is not None:
        geoms, pops, _ = inputs.region_population(eng, region_layer, population_col)
    charge_cells(ucells.size, what=f"the Huff model at res {res}", field="res", hint="ask for a coarser res")
    if demand == "population":
        cells = np.union1d(inputs.cells_covering(geoms, res), ucells)
        pos = np.searchsorted(cells, ucells)
        customers = np.zeros(cells.size)
        spend = np.zeros(cells.size)
        customers[pos] = counts
        spend[pos] = sums
        population = inputs.cell_population(cells, geoms, pops)
        weight = population
    else:
        cells, customers, spend = ucells, counts, sums
        population = inputs.cell_population(cells, geoms, pops) if geoms is not None else None
        weight = customers
    return huff_model(cells, weight, stores, alpha=alpha, beta=beta, res=res, customers=customers, spend=spend,
                      population=population, min_distance_m=min_distance_m, demand_name=demand)
