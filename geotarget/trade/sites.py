"""Site evaluation with the Huff model, and the maximal covering location problem.

**Evaluating a candidate.** A candidate site of attractiveness :math:`a` is
added to a fitted :class:`~geotarget.trade.HuffResult`. In cell *i* its
Huff probability is :math:`q_i = u_i / (S_i + u_i)`, with :math:`u_i =
a^{\\alpha} d_i^{-\\beta}` and :math:`S_i` the cell's total utility of the
existing stores; every existing store keeps the same proportions among
themselves, so store *j* loses :math:`w_i P_{ij} q_i` in cell *i*. Summed
over cells: the candidate's captured demand, the cannibalisation taken from
each store of its own brand, the demand taken from competitors, and the
**net gain** of its brand (captured minus cannibalised, which equals what
competitors lose). With no competitor in the model the market is closed and
every net gain is zero.

**Choosing k sites.** The maximal covering location problem (Church and
ReVelle, 1974): open ``k`` candidates so that the demand within
``radius_m`` (WGS84 geodesic, candidate to cell centre) of an open site is
largest. Solved exactly as a mixed-integer programme with
``scipy.optimize.milp`` (HiGHS, bundled with scipy; no network, no other
solver).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from .huff import HuffResult, store_distances_m

__all__ = ["choose_sites", "evaluate_sites", "rank_sites", "read_candidates"]


def read_candidates(source) -> pd.DataFrame:
    """Candidate sites from a CSV/Parquet file or a DataFrame: ``site_id``, ``lat``, ``lng`` (+ ``attractiveness``).

    ``site_id`` defaults to ``C1``, ``C2``...; ``lng`` may be called
    ``lon``/``longitude``; ``lat`` may be ``latitude``.

    Examples
    --------
    >>> import pandas as pd
    >>> read_candidates(pd.DataFrame({"latitude": [40.7], "lon": [-74.0]})).values.tolist()
    [['C1', 40.7, -74.0]]
    """
    from pathlib import Path

    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if not path.exists():
            raise InvalidInputError(f"candidate file {str(path)!r} does not exist")
        frame = pd.read_parquet(path) if path.suffix.lower() == ".parquet" else pd.read_csv(path)
    lower = {c.lower(): c for c in frame.columns}
    rename = {}
    for want, names in (("lat", ("lat", "latitude")), ("lng", ("lng", "lon", "long", "longitude")),
                        ("site_id", ("site_id", "id", "candidate", "name"))):
        for n in names:
            if n in lower:
                rename[lower[n]] = want
                break
    frame = frame.rename(columns=rename)
    if "lat" not in frame.columns or "lng" not in frame.columns:
        raise InvalidInputError(f"candidates need lat and lng columns; got {', '.join(map(str, frame.columns))}")
    lat = pd.to_numeric(frame["lat"], errors="coerce").to_numpy(dtype="float64")
    lng = pd.to_numeric(frame["lng"], errors="coerce").to_numpy(dtype="float64")
    bad = ~(np.isfinite(lat) & np.isfinite(lng) & (np.abs(lat) <= 90) & (np.abs(lng) <= 180))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(f"candidate row {i + 1} has lat={frame['lat'].iloc[i]!r}, lng={frame['lng'].iloc[i]!r}; "
                                "lat must be in [-90, 90] and lng in [-180, 180]")
    if "site_id" not in frame.columns:
        frame.insert(0, "site_id", [f"C{i + 1}" for i in range(len(frame))])
    frame["site_id"] = frame["site_id"].astype(str)
    frame["lat"], frame["lng"] = lat, lng
    return frame.reset_index(drop=True)


def evaluate_sites(model: HuffResult, candidates, *, brand: str | None = None,
                   attractiveness: float | str | None = None) -> pd.DataFrame:
    """Captured demand, cannibalisation and net gain of each candidate, ranked (each alone).

    Parameters
    ----------
    model : HuffResult
        The existing stores' Huff model (:func:`geotarget.trade.huff`).
    candidates : DataFrame or path
        ``site_id``, ``lat``, ``lng`` (see :func:`read_candidates`).
    brand : str, optional
        The candidates' brand (default: the brand of the model's first
        store; the only one when the model has no brand column).
    attractiveness : float or str, optional
        One attractiveness for every candidate, or the name of a candidate
        column (default: the median attractiveness of the brand's stores).

    Returns
    -------
    pandas.DataFrame
        One row per candidate, best first: ``rank``, ``site_id``, ``lat``,
        ``lng``, ``attractiveness``, ``captured_demand``,
        ``captured_customers``, ``captured_spend``, ``cannibalised``,
        ``from_competitors``, ``net_gain``, ``net_gain_spend`` and
        ``cannibalised_from`` (a dict: store id -> demand taken).

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> from geotarget.trade import huff
    >>> ranking = evaluate_sites(huff(eng, brand_col="brand"), pd.DataFrame({"lat": [40.72], "lng": [-73.98]}),
    ...                          brand="ours")
    >>> bool(abs(ranking["net_gain"][0] - ranking["from_competitors"][0]) < 1e-9)
    True
    """
    from scipy.special import expit

    cand = read_candidates(candidates)
    stores = model.stores
    brands = stores["brand"].astype(str).to_numpy()
    brand = str(brands[0]) if brand is None else str(brand)
    own = brands == brand
    if not own.any():
        raise InvalidInputError(f"no store of brand {brand!r} in the model; brands: "
                                f"{', '.join(sorted(set(brands)))}")
    if attractiveness is None:
        attract = np.full(len(cand), float(np.median(stores.loc[own, "attractiveness"])))
    elif isinstance(attractiveness, str):
        if attractiveness not in cand.columns:
            raise InvalidInputError(f"candidates have no column {attractiveness!r}")
        attract = pd.to_numeric(cand[attractiveness], errors="coerce").to_numpy(dtype="float64")
    else:
        attract = np.full(len(cand), float(attractiveness))
    if not np.all(np.isfinite(attract) & (attract > 0)):
        raise InvalidInputError("candidate attractiveness must be positive numbers")
    cells = model.cells
    dist = store_distances_m(cells["lat"], cells["lng"], cand["lat"], cand["lng"],
                             min_distance_m=model.min_distance_m)                       # (cells, candidates)
    log_u = model.alpha * np.log(attract)[None, :] - model.beta * np.log(dist)
    q = expit(log_u - model.log_total[:, None])  # the candidate's probability u / (S + u), without overflow
    weights = {"demand": cells["demand"].to_numpy(dtype="float64"),
               "customers": cells["customers"].to_numpy(dtype="float64"),
               "spend": cells["spend"].to_numpy(dtype="float64")}
    captured = {k: w @ q for k, w in weights.items()}
    # demand each store loses to each candidate: sum_i w_i P_ij q_i -> (stores, candidates)
    lost = (model.probabilities * weights["demand"][:, None]).T @ q
    lost_spend = (model.probabilities * weights["spend"][:, None]).T @ q
    cannibalised = lost[own].sum(axis=0)
    own_ids = stores["store_id"].to_numpy()[own]
    out = pd.DataFrame({
        "site_id": cand["site_id"], "lat": cand["lat"], "lng": cand["lng"], "attractiveness": attract,
        "captured_demand": captured["demand"], "captured_customers": captured["customers"],
        "captured_spend": captured["spend"], "cannibalised": cannibalised,
        # net gain = captured - cannibalised = taken from competitors (summed directly: exactly 0 without them)
        "from_competitors": lost[~own].sum(axis=0), "net_gain": lost[~own].sum(axis=0),
        "net_gain_spend": lost_spend[~own].sum(axis=0),
        "cannibalised_from": [{str(s): float(v) for s, v in zip(own_ids, lost[own][:, c]) if v > 1e-9}
                              for c in range(len(cand))],
    })
    out = out.sort_values(["net_gain", "captured_demand", "site_id"], ascending=[False, False, True],
                          kind="mergesort").reset_index(drop=True)
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    return out


def choose_sites(demand_lat, demand_lng, demand, cand_lat, cand_lng, *, k: int, radius_m: float,
                 time_limit: float = 60.0) -> tuple[np.ndarray, float]:
    """Choose ``k`` candidates that cover the most demand within ``radius_m`` (maximal covering).

    Parameters
    ----------
    demand_lat, demand_lng, demand : array-like
        Demand points (e.g. cell centres) and their weights.
    cand_lat, cand_lng : array-like
        Candidate sites.
    k : int
        Number of sites to open (at most the number of candidates).
    radius_m : float
        Coverage radius, WGS84 geodesic.

    Returns
    -------
    (numpy.ndarray of int, float)
        The chosen candidates' positions (sorted), and the demand they cover.

    Examples
    --------
    >>> chosen, covered = choose_sites([0.0, 0.0, 0.1], [0.0, 0.05, 0.0], [5.0, 3.0, 4.0],
    ...                                [0.0, 0.0, 0.1], [0.0, 0.05, 0.0], k=2, radius_m=1000.0)
    >>> chosen.tolist(), covered
    ([0, 2], 9.0)
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_matrix, hstack, identity

    w = np.asarray(demand, dtype="float64").ravel()
    n_c = np.asarray(cand_lat).size
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n_c:
        raise InvalidInputError(f"k must be a whole number in [1, {n_c}] (the number of candidates), got {k!r}")
    if not np.isfinite(radius_m) or radius_m <= 0:
        raise InvalidInputError(f"radius_m must be positive, got {radius_m!r}")
    dist = store_distances_m(demand_lat, demand_lng, cand_lat, cand_lng)
    cover = dist <= radius_m                                     # (points, candidates)
    useful = cover.any(axis=1) & (w > 0)
    a = csr_matrix(cover[useful].astype("float64"))
    wu = w[useful]
    n_p = int(useful.sum())
    # variables: x (candidates, binary), then y (covered points, in [0, 1]); maximise w . y
    c = np.concatenate([np.zeros(n_c), -wu])
    cons = [LinearConstraint(hstack([-a, identity(n_p)]).tocsr(), -np.inf, 0.0),      # y_i <= sum_j a_ij x_j
            LinearConstraint(np.concatenate([np.ones(n_c), np.zeros(n_p)])[None, :], k, k)]
    integrality = np.concatenate([np.ones(n_c), np.zeros(n_p)])
    res = milp(c, constraints=cons, integrality=integrality, bounds=Bounds(0, 1),
               options={"time_limit": float(time_limit)})
    if res.x is None:
        raise InvalidInputError(f"the covering problem found no solution: {res.message}")
    chosen = np.flatnonzero(res.x[:n_c] > 0.5)
    covered = float(w[cover[:, chosen].any(axis=1)].sum())
    return chosen, covered


def rank_sites(eng, candidates, *, pick: int | None = None, radius_m: float = 3218.688, res: int = 8,
               brand_col: str | None = None, brand: str | None = None, attract_col: str | None = None,
               alpha: float = 1.0, beta: float = 2.0, demand: str = "customers", region_layer: str | None = None,
               population_col: str | None = None, attractiveness: float | str | None = None) -> pd.DataFrame:
    """Rank candidate sites by net gain (:func:`evaluate_sites`); with ``pick``, also choose ``pick`` of them.

    The Huff model of the database's stores is built first (see
    :func:`geotarget.trade.huff` for the options). With ``pick`` the
    maximal covering location problem chooses that many candidates covering
    the most demand within ``radius_m`` that no existing store of the brand
    already covers; they get ``chosen = True``.

    Returns
    -------
    pandas.DataFrame
        The ranking of :func:`evaluate_sites`, with a ``chosen`` column.

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> cand = pd.DataFrame({"site_id": ["X", "Y"], "lat": [40.72, 40.9], "lng": [-73.98, -73.5]})
    >>> rank_sites(eng, cand, pick=1, brand_col="brand", brand="ours")[["site_id", "chosen"]].values.tolist()
    [['X', True], ['Y', False]]
    """
    from .huff import huff

    model = huff(eng, res=res, attract_col=attract_col, brand_col=brand_col, alpha=alpha, beta=beta,
                 demand=demand, region_layer=region_layer, population_col=population_col)
    ranking = evaluate_sites(model, candidates, brand=brand, attractiveness=attractiveness)
    ranking["chosen"] = False
    if pick is not None:
        cells, stores = model.cells, model.stores
        own = stores["brand"].astype(str).to_numpy() == (str(brand) if brand is not None
                                                          else str(stores["brand"].iloc[0]))
        weight = cells["demand"].to_numpy(dtype="float64").copy()
        if own.any():
            near = store_distances_m(cells["lat"], cells["lng"], stores.loc[own, "lat"], stores.loc[own, "lng"])
            weight[(near <= radius_m).any(axis=1)] = 0.0
        chosen, _ = choose_sites(cells["lat"], cells["lng"], weight, ranking["lat"], ranking["lng"], k=pick,
                                 radius_m=radius_m)
        ranking.loc[chosen, "chosen"] = True
    return ranking
