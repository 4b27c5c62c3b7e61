"""Differential privacy through OpenDP: Laplace noise on counts, paid for from a per-key budget.

``privacy="dp", epsilon=...`` on a heatmap or an audience count:

- **Heatmaps** (``count`` only): every cell (or region) at a policy
  resolution gets its customer count plus Laplace noise of scale
  ``1 / epsilon`` (a customer is in one cell, so the counts together have L1
  sensitivity 1); a cell is published when its noisy count reaches the
  policy's ``k_min``, its value rounded to a whole number. Choosing cells by a
  noisy threshold is the stability-based histogram: ``(epsilon, delta)``-DP
  with ``delta`` about ``exp(-epsilon * (k_min - 1)) / 2``, tiny for
  ``k_min = 10``. Nothing about the suppressed cells is told.
- **Audience counts**: the total and each per-store ``within`` count, each a
  count with sensitivity 1, share ``epsilon`` equally (basic composition);
  overlaps and ``assigned`` counts are not released in this mode.

Each call charges ``epsilon`` to the caller's key in the database
(:func:`geotarget.store.policy.spend_budget`) *before* anything is computed;
when the key's spend would pass the policy's ``dp_budget``, the call is
refused. OpenDP (the ``dp`` extra) is imported only here, on first use.
"""

from __future__ import annotations

import numpy as np

from geotarget.errors import MissingDependencyError

__all__ = ["laplace_counts"]

INSTALL_HINT = "privacy='dp' needs OpenDP: pip install 'geotarget[dp]'"


def laplace_counts(counts, epsilon: float) -> np.ndarray:
    """Counts (L1 sensitivity 1 together) plus Laplace noise of scale ``1 / epsilon``, via OpenDP.

    Examples
    --------
    >>> noisy = laplace_counts([100, 200], epsilon=1000.0)
    >>> bool(np.all(np.abs(noisy - [100, 200]) < 1))
    True
    """
    try:
        import opendp.prelude as dp
    except ImportError:  # pragma: no cover - the dp extra is installed in CI
        raise MissingDependencyError(INSTALL_HINT) from None
    dp.enable_features("contrib")
    values = [float(c) for c in np.asarray(counts, dtype=np.float64)]
    if not values:
        return np.zeros(0, dtype=np.float64)
    space = dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float)
    measurement = dp.m.make_laplace(*space, scale=1.0 / float(epsilon))
    return np.asarray(measurement(values), dtype=np.float64)
