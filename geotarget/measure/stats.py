"""The statistics of a lift readout, from per-group summaries.

Everything here takes counts, means and variances (what one SQL aggregate
gives), never rows, except the bootstrap, which takes the non-zero values.

- **Conversion**: two-proportion z test (pooled standard error for the
  p-value, unpooled Wald interval for the difference); when an expected cell
  count is under 5, Fisher's exact test and the Newcombe hybrid score
  interval instead. These are statsmodels' ``proportions_ztest``,
  ``confint_proportions_2indep(method="wald"|"newcomb")`` and scipy's
  ``fisher_exact``.
- **Revenue per customer**: Welch's t test; a bootstrap percentile interval
  for the difference of means, since revenue is heavy-tailed.
- **CUPED**: ``y - theta * (x - mean(x))`` with ``theta = cov(x, y) / var(x)``
  over both groups, ``x`` the same metric in the pre-period.
- **Benjamini-Hochberg** q-values across breakdown cells.
- **Power** of a two-proportion test through Cohen's h (statsmodels'
  ``NormalIndPower`` with ``proportion_effectsize``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["GroupSummary", "NonZero", "benjamini_hochberg", "bootstrap_diff_ci", "cuped", "power_two_proportions",
           "two_proportions", "welch"]


@dataclass(frozen=True)
class GroupSummary:
    """One group's outcome ``y`` (and pre-period ``x``): size, means, variances, covariance."""

    n: int
    mean_y: float
    var_y: float
    mean_x: float = 0.0
    var_x: float = 0.0
    cov_xy: float = 0.0


_NORMAL = NormalDist()


def _z(alpha: float) -> float:
    return _NORMAL.inv_cdf(1 - alpha / 2)


def _normal_sf(x: float) -> float:
    """P(Z > x) for a standard normal Z, accurate far in the tail."""
    return 0.5 * math.erfc(x / math.sqrt(2))


def _wilson(x: int, n: int, z: float) -> tuple[float, float]:
    p = x / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


def two_proportions(xt: int, nt: int, xc: int, nc: int, *, alpha: float = 0.05, exact: bool | None = None) -> dict:
    """Treatment vs control conversion: rates, absolute and relative lift, interval, two-sided p-value.

    ``exact=None`` picks Fisher's exact test and the Newcombe interval when
    an expected cell count is under 5, the z test and Wald interval otherwise.

    Examples
    --------
    >>> r = two_proportions(120, 1000, 100, 1000)
    >>> round(r["abs_lift"], 3), r["test"], round(r["p_value"], 3)
    (0.02, 'z', 0.153)
    """
    if min(nt, nc) <= 0:
        raise ValueError("both groups need at least one customer")
    pt, pc = xt / nt, xc / nc
    diff = pt - pc
    pooled = (xt + xc) / (nt + nc)
    expected = min(nt * pooled, nt * (1 - pooled), nc * pooled, nc * (1 - pooled))
    if exact is None:
        exact = expected < 5
    z = _z(alpha)
    if exact:
        from scipy.stats import fisher_exact  # only for small counts: scipy.stats is slow to import

        p_value = float(fisher_exact([[xt, nt - xt], [xc, nc - xc]]).pvalue)
        lt, ut = _wilson(xt, nt, z)
        lc, uc = _wilson(xc, nc, z)
        low = diff - math.sqrt((pt - lt) ** 2 + (uc - pc) ** 2)
        high = diff + math.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)
        test = "fisher"
    else:
        se0 = math.sqrt(pooled * (1 - pooled) * (1 / nt + 1 / nc))
        p_value = 1.0 if se0 == 0 else 2 * _normal_sf(abs(diff) / se0)
        se = math.sqrt(pt * (1 - pt) / nt + pc * (1 - pc) / nc)
        low, high = diff - z * se, diff + z * se
        test = "z"
    return {"treatment_rate": pt, "control_rate": pc, "abs_lift": diff,
            "rel_lift": diff / pc if pc > 0 else None, "ci_low": low, "ci_high": high,
            "p_value": min(1.0, p_value), "test": test}


def welch(t: GroupSummary, c: GroupSummary, *, alpha: float = 0.05) -> dict:
    """Welch's t test for the difference of means, with its t interval (``scipy.stats.ttest_ind(equal_var=False)``).

    Examples
    --------
    >>> r = welch(GroupSummary(50, 10.0, 4.0), GroupSummary(40, 9.0, 9.0))
    >>> round(r["abs_lift"], 2), round(r["p_value"], 3)
    (1.0, 0.075)
    """
    from scipy.special import stdtr, stdtrit  # Student's t, without importing all of scipy.stats

    if t.n < 2 or c.n < 2:
        raise ValueError("Welch's test needs at least two customers in each group")
    vt, vc = t.var_y / t.n, c.var_y / c.n
    diff = t.mean_y - c.mean_y
    se = math.sqrt(vt + vc)
    if se == 0:
        df, p_value, half = float(t.n + c.n - 2), (1.0 if diff == 0 else 0.0), 0.0
    else:
        df = (vt + vc) ** 2 / (vt ** 2 / (t.n - 1) + vc ** 2 / (c.n - 1))
        p_value = float(2 * stdtr(df, -abs(diff) / se))
        half = float(stdtrit(df, 1 - alpha / 2)) * se
    return {"treatment_rate": t.mean_y, "control_rate": c.mean_y, "abs_lift": diff,
            "rel_lift": diff / c.mean_y if c.mean_y else None, "ci_low": diff - half, "ci_high": diff + half,
            "p_value": p_value, "df": df, "test": "welch"}


def cuped(t: GroupSummary, c: GroupSummary) -> tuple[GroupSummary, GroupSummary, float]:
    """Both groups' summaries of ``y - theta (x - mean x)``, and ``theta``.

    ``theta`` is ``cov(x, y) / var(x)`` over both groups pooled (one
    regression of y on x, ignoring the groups); the mean of ``x`` is the
    overall mean, so the adjusted means keep the scale of ``y``.

    Examples
    --------
    >>> t = GroupSummary(100, mean_y=11.0, var_y=4.0, mean_x=10.0, var_x=4.0, cov_xy=3.6)
    >>> c = GroupSummary(100, mean_y=10.0, var_y=4.0, mean_x=10.0, var_x=4.0, cov_xy=3.6)
    >>> ta, ca, theta = cuped(t, c)
    >>> round(theta, 2), round(ta.mean_y - ca.mean_y, 2), round(ta.var_y, 2)
    (0.9, 1.0, 0.76)
    """
    n = t.n + c.n
    mx = (t.n * t.mean_x + c.n * c.mean_x) / n
    my = (t.n * t.mean_y + c.n * c.mean_y) / n
    sxx = sum((g.n - 1) * g.var_x + g.n * (g.mean_x - mx) ** 2 for g in (t, c))
    sxy = sum((g.n - 1) * g.cov_xy + g.n * (g.mean_x - mx) * (g.mean_y - my) for g in (t, c))
    theta = sxy / sxx if sxx > 0 else 0.0

    def adjusted(g: GroupSummary) -> GroupSummary:
        var = max(0.0, g.var_y + theta * theta * g.var_x - 2 * theta * g.cov_xy)
        return GroupSummary(g.n, g.mean_y - theta * (g.mean_x - mx), var)

    return adjusted(t), adjusted(c), theta


@dataclass(frozen=True)
class NonZero:
    """A group's non-zero values, or only their count, mean and standard deviation (population)."""

    k: int
    mean: float
    sd: float
    values: np.ndarray | None = None

    @classmethod
    def of(cls, values) -> NonZero:
        """From the values themselves."""
        v = np.asarray(values, dtype="float64")
        return cls(int(v.size), float(v.mean()) if v.size else 0.0, float(v.std()) if v.size else 0.0, v)


#: Resampled values drawn one by one at most, per group; past it the bootstrap uses the normal law of a sum.
EXACT_BUDGET = 10_000_000


def _resampled_means(nz: NonZero, n: int, draws: int, rng, exact_budget: int) -> np.ndarray:
    """Means of ``draws`` bootstrap resamples of a group of ``n`` values, zeros apart from the ``nz.k`` others.

    A resample of n values takes m ~ Binomial(n, k/n) of the k non-zero ones;
    their sum is drawn exactly (m draws with replacement) while the values
    are at hand and that costs at most ``exact_budget`` draws in all, else
    from the normal law of a sum of m such draws (the central limit theorem
    at that size).
    """
    if nz.k == 0:
        return np.zeros(draws)
    m = rng.binomial(n, nz.k / n, size=draws)
    if nz.values is not None and int(m.sum()) <= exact_budget:
        sums = np.array([nz.values[rng.integers(0, nz.k, size=mi)].sum() for mi in m])
    else:
        sums = m * nz.mean + np.sqrt(m) * nz.sd * rng.standard_normal(draws)
    return sums / n


def bootstrap_diff_ci(treatment_nonzero, nt: int, control_nonzero, nc: int, *, alpha: float = 0.05,
                      draws: int = 2000, seed: int = 0, exact_budget: int = 2 * EXACT_BUDGET) -> tuple[float, float]:
    """Percentile bootstrap interval for mean(treatment) - mean(control).

    Each group is resampled on its own (n values with replacement); only its
    non-zero values are passed (an array, or a :class:`NonZero`), with the
    group size, since most customers spend nothing. Seeded, so a readout is
    reproducible.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> low, high = bootstrap_diff_ci(rng.lognormal(3, 1, 300) + 5, 1000, rng.lognormal(3, 1, 300), 1000)
    >>> bool(low < 1.5 < high)
    True
    """
    rng = np.random.default_rng(seed)
    t = treatment_nonzero if isinstance(treatment_nonzero, NonZero) else NonZero.of(treatment_nonzero)
    c = control_nonzero if isinstance(control_nonzero, NonZero) else NonZero.of(control_nonzero)
    diffs = (_resampled_means(t, nt, draws, rng, exact_budget // 2)
             - _resampled_means(c, nc, draws, rng, exact_budget // 2))
    low, high = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def benjamini_hochberg(p_values) -> np.ndarray:
    """Benjamini-Hochberg q-values (``statsmodels`` ``multipletests(method="fdr_bh")``).

    Examples
    --------
    >>> benjamini_hochberg([0.01, 0.04, 0.03]).round(3).tolist()
    [0.03, 0.04, 0.04]
    """
    p = np.asarray(p_values, dtype="float64")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p)
    scaled = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def cohens_h(p1: float, p2: float) -> float:
    """Cohen's h between two proportions: ``2 asin(sqrt p1) - 2 asin(sqrt p2)``."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def power_two_proportions(baseline: float, mde: float, n_treatment: float, n_control: float, *,
                          alpha: float = 0.05) -> float:
    """Power of a two-sided two-proportion test to detect ``baseline + mde`` against ``baseline``.

    Examples
    --------
    >>> round(power_two_proportions(0.05, 0.01, 8000, 8000), 3)
    0.793
    """
    if n_treatment <= 0 or n_control <= 0:
        return 0.0
    h = abs(cohens_h(baseline + mde, baseline))
    z = h * math.sqrt(n_treatment * n_control / (n_treatment + n_control))
    za = _z(alpha)
    return _normal_sf(za - z) + _normal_sf(za + z)
