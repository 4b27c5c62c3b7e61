"""Maximum-likelihood calibration of the Huff model's alpha and beta from observed choices.

Each observation is a customer (or a cell) with the store it chose among all
stores. The Huff probability is a conditional logit with two covariates per
store, ``log(A_j)`` and ``-log(d_ij)``, whose coefficients are alpha and
beta, so the log-likelihood

.. math::

    \\ell(\\alpha, \\beta) = \\sum_i w_i \\left[\\alpha \\log A_{c_i} - \\beta \\log d_{i c_i}
        - \\log \\sum_k A_k^{\\alpha} d_{ik}^{-\\beta}\\right]

is concave. It is maximised with ``scipy.optimize.minimize`` (trust-region,
exact gradient and Hessian); standard errors are the square roots of the
diagonal of the inverse observed information (the Hessian at the optimum).
When every store is equally attractive alpha is not identified: only beta
is fitted and alpha is reported as NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import InvalidInputError
from . import inputs

__all__ = ["HuffFit", "calibrate_huff", "fit_huff"]


@dataclass(frozen=True)
class HuffFit:
    """Fitted Huff exponents with their standard errors.

    ``alpha`` is NaN (and ``alpha_se`` too) when attractiveness does not vary.
    """

    alpha: float
    beta: float
    alpha_se: float
    beta_se: float
    log_likelihood: float
    observations: float
    converged: bool
    message: str = ""

    def summary(self) -> str:
        """One line: estimates with standard errors, log-likelihood and sample size."""
        a = "alpha not identified (attractiveness is constant)" if np.isnan(self.alpha) else \
            f"alpha = {self.alpha:.4f} (se {self.alpha_se:.4f})"
        return (f"{a}; beta = {self.beta:.4f} (se {self.beta_se:.4f}); log-likelihood {self.log_likelihood:,.2f} "
                f"over {self.observations:,.0f} observations")

    def to_dict(self) -> dict:
        """Plain floats, NaN as None (JSON-safe)."""
        def num(v):
            return None if v is None or not np.isfinite(v) else float(v)

        return {"alpha": num(self.alpha), "beta": num(self.beta), "alpha_se": num(self.alpha_se),
                "beta_se": num(self.beta_se), "log_likelihood": num(self.log_likelihood),
                "observations": float(self.observations), "converged": bool(self.converged)}


def _covariates(distance_m: np.ndarray, attractiveness: np.ndarray, fit_alpha: bool) -> np.ndarray:
    """(observations, stores, parameters) covariates: log A (when fitted) and -log d."""
    neg_log_d = -np.log(distance_m)
    if not fit_alpha:
        return neg_log_d[:, :, None]
    log_a = np.broadcast_to(np.log(attractiveness)[None, :], distance_m.shape)
    return np.stack([log_a, neg_log_d], axis=2)


def _objective(theta, x, chosen, w):
    """Negative log-likelihood, its gradient and Hessian."""
    v = x @ theta                                   # (n, J)
    top = v.max(axis=1, keepdims=True)
    e = np.exp(v - top)
    tot = e.sum(axis=1, keepdims=True)
    p = e / tot
    rows = np.arange(x.shape[0])
    ll = np.sum(w * (v[rows, chosen] - (np.log(tot[:, 0]) + top[:, 0])))
    mean_x = np.einsum("nj,njk->nk", p, x)          # E_P[x]
    grad = np.sum(w[:, None] * (x[rows, chosen] - mean_x), axis=0)
    centred = x - mean_x[:, None, :]
    wp = w[:, None] * p
    k = x.shape[2]
    hess = np.empty((k, k))  # the information: positive semi-definite
    for a in range(k):
        for b in range(a, k):
            hess[a, b] = hess[b, a] = np.sum(wp * centred[:, :, a] * centred[:, :, b])
    return -ll, -grad, hess


def fit_huff(distance_m, attractiveness, chosen, *, weights=None, start=(1.0, 2.0)) -> HuffFit:
    """Fit alpha and beta by maximum likelihood from a distance matrix and the chosen stores.

    Parameters
    ----------
    distance_m : array-like, shape (observations, stores)
        Positive distances from each observation to every store.
    attractiveness : array-like, shape (stores,)
        Positive attractiveness per store.
    chosen : array-like of int, shape (observations,)
        Column of the store each observation chose.
    weights : array-like, optional
        Observation weights (e.g. customers per cell); 1 each by default.
    start : (float, float)
        Starting (alpha, beta).

    Returns
    -------
    HuffFit

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> d = rng.uniform(500, 5000, (4000, 5)); a = np.array([1.0, 2.0, 4.0, 1.5, 3.0])
    >>> u = 1.0 * np.log(a) - 2.0 * np.log(d); p = np.exp(u) / np.exp(u).sum(1, keepdims=True)
    >>> chosen = (p.cumsum(1) > rng.uniform(size=(4000, 1))).argmax(1)
    >>> fit = fit_huff(d, a, chosen)
    >>> abs(fit.alpha - 1.0) < 4 * fit.alpha_se and abs(fit.beta - 2.0) < 4 * fit.beta_se
    True
    """
    from scipy.optimize import minimize

    dist = np.atleast_2d(np.asarray(distance_m, dtype="float64"))
    attract = np.asarray(attractiveness, dtype="float64").ravel()
    chosen = np.asarray(chosen).ravel()
    n, j = dist.shape
    if attract.size != j:
        raise InvalidInputError(f"attractiveness has {attract.size} values for {j} stores; give one per store")
    if chosen.size != n:
        raise InvalidInputError(f"chosen has {chosen.size} values for {n} observations; give one per observation")
    if n == 0 or j < 2:
        raise InvalidInputError(f"calibration needs observations and at least 2 stores, got {n} and {j}")
    if not np.all(dist > 0) or not np.all(attract > 0):
        raise InvalidInputError("distances and attractiveness must be positive")
    if not np.issubdtype(chosen.dtype, np.integer) or chosen.min() < 0 or chosen.max() >= j:
        raise InvalidInputError(f"chosen must hold store columns in [0, {j - 1}]")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype="float64").ravel()
    if w.size != n or not np.all(w >= 0):
        raise InvalidInputError("weights must be one non-negative number per observation")
    fit_alpha = bool(np.ptp(np.log(attract)) > 1e-12)
    x = _covariates(dist, attract, fit_alpha)
    theta0 = np.asarray(start if fit_alpha else start[1:], dtype="float64")
    res = minimize(lambda t: _objective(t, x, chosen, w)[:2], theta0, jac=True,
                   hess=lambda t: _objective(t, x, chosen, w)[2], method="trust-exact")
    nll, _, info = _objective(res.x, x, chosen, w)
    try:
        cov = np.linalg.inv(info)
        se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    except np.linalg.LinAlgError:
        se = np.full(theta0.size, np.nan)
    if fit_alpha:
        alpha, beta = res.x
        alpha_se, beta_se = se
    else:
        alpha, alpha_se = float("nan"), float("nan")
        beta, beta_se = res.x[0], se[0]
    return HuffFit(float(alpha), float(beta), float(alpha_se), float(beta_se), float(-nll), float(w.sum()),
                   bool(res.success), str(res.message))


def calibrate_huff(eng, *, home_store_col: str, attract_col: str | None = None, brand_col: str | None = None,
                   sample: int | None = 20_000, seed: int = 0, min_distance_m: float = 50.0) -> HuffFit:
    """Fit alpha and beta from the customers' observed stores (a customer column of store ids).

    Each eligible customer whose ``home_store_col`` names a known store is an
    observation; the choice set is every store, at WGS84 geodesic distance
    from the customer's own point (floored at ``min_distance_m``). At most
    ``sample`` customers are used, drawn with ``seed`` (None: all).

    Examples
    --------
    >>> import geotarget, pandas as pd
    >>> eng = geotarget.open(":memory:")
    >>> _ = eng.ingest_stores(pd.DataFrame({"store_id": ["S1", "S2", "R1"], "lat": [40.75, 40.70, 40.72],
    ...                                     "lng": [-73.99, -73.95, -73.97], "brand": ["ours", "ours", "rival"]}))
    >>> _ = eng.ingest_customers(pd.DataFrame({"customer_id": ["a", "b", "c"], "lat": [40.751, 40.752, 40.701],
    ...                                        "lng": [-73.99, -73.98, -73.95], "home": ["S1", "S2", "S2"]}))
    >>> fit = calibrate_huff(eng, home_store_col="home")
    >>> bool(np.isnan(fit.alpha)), fit.beta > 0, fit.observations
    (True, True, 3.0)
    """
    stores = inputs.load_stores(eng, brand_col=brand_col, attract_col=attract_col)
    cust = inputs.load_customers(eng, columns=[home_store_col], ordered=True)
    pos = {s: i for i, s in enumerate(stores["store_id"])}
    chosen = cust[home_store_col].map(lambda s: pos.get(str(s), -1) if pd.notna(s) else -1).to_numpy()
    cust = cust.loc[chosen >= 0]
    chosen = chosen[chosen >= 0]
    if len(cust) == 0:
        raise InvalidInputError(f"no customer's {home_store_col!r} names a known store; "
                                f"stores are e.g. {', '.join(stores['store_id'][:5])}")
    if sample is not None and len(cust) > sample:
        take = np.sort(np.random.default_rng(seed).choice(len(cust), size=int(sample), replace=False))
        cust, chosen = cust.iloc[take], chosen[take]
    from .huff import store_distances_m

    dist = store_distances_m(cust["lat"], cust["lng"], stores["lat"], stores["lng"], min_distance_m=min_distance_m)
    return fit_huff(dist, stores["attractiveness"].to_numpy(), chosen)
