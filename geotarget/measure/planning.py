"""Planning a holdout: how large a control group must be to detect an effect.

For an audience of N customers split into a control fraction f and a
treatment 1 - f, the two-sided two-proportion test (level ``alpha``) detects
a change of the conversion rate from ``baseline_rate`` to
``baseline_rate + mde`` with the power of
:func:`geotarget.measure.stats.power_two_proportions` (Cohen's h; the same
figure as statsmodels' ``NormalIndPower``). Power grows with f up to an even
split, so the smallest f reaching the wanted power is found by bisection;
when even an even split falls short, the audience is too small ever to
detect that effect, and the plan says so (with a warning).

With ``daily_customers`` (customers who enter the audience per day, e.g. a
delivery app's daily active users in the geofence), the plan also gives the
days needed to gather enough customers at that fraction.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from geotarget.errors import GeotargetWarning, InvalidInputError
from geotarget.measure.stats import power_two_proportions

__all__ = ["HoldoutPlan", "plan_holdout_for"]


@dataclass(frozen=True)
class HoldoutPlan:
    """The answer of :meth:`geotarget.Engine.plan_holdout`."""

    audience_n: int
    baseline_rate: float
    mde: float
    power: float
    alpha: float
    holdout: float | None
    control_n: int | None
    treatment_n: int | None
    achieved_power: float
    max_power: float
    detectable: bool
    required_n: int | None
    days: int | None
    message: str

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return dict(self.__dict__)

    def __str__(self) -> str:
        return self.message


def _check(name: str, value, low: float, high: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number in ({low}, {high}), got {value!r}") from None
    if not (low < v < high) or math.isnan(v):
        raise InvalidInputError(f"{name} must be in ({low}, {high}), got {value!r}")
    return v


def _total_needed(baseline: float, mde: float, fraction: float, power: float, alpha: float) -> int:
    """Smallest audience that reaches ``power`` with a control fraction ``fraction``."""
    lo, hi = 2, 2
    while power_two_proportions(baseline, mde, hi * (1 - fraction), hi * fraction, alpha=alpha) < power:
        lo, hi = hi, hi * 2
        if hi > 10**13:
            return -1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power_two_proportions(baseline, mde, mid * (1 - fraction), mid * fraction, alpha=alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi


def plan_holdout_for(audience_n: int, *, baseline_rate: float, mde: float, power: float = 0.8, alpha: float = 0.05,
                     daily_customers: float | None = None) -> HoldoutPlan:
    """The smallest control fraction of an audience of ``audience_n`` that detects ``mde`` with ``power``.

    Examples
    --------
    >>> plan = plan_holdout_for(100_000, baseline_rate=0.05, mde=0.01)
    >>> plan.detectable, round(plan.holdout, 3), plan.control_n
    (True, 0.043, 4253)
    """
    baseline = _check("baseline_rate", baseline_rate, 0.0, 1.0)
    mde = float(mde)
    if mde == 0 or not math.isfinite(mde) or not (0 < baseline + mde < 1):
        raise InvalidInputError(f"mde must be a non-zero change keeping the rate in (0, 1), got {mde!r} "
                                f"with baseline_rate {baseline}")
    power = _check("power", power, 0.0, 1.0)
    alpha = _check("alpha", alpha, 0.0, 1.0)
    if daily_customers is not None:
        daily_customers = float(daily_customers)
        if not daily_customers > 0:
            raise InvalidInputError(f"daily_customers must be positive, got {daily_customers!r}")
    n = int(audience_n)
    max_power = power_two_proportions(baseline, mde, n / 2, n / 2, alpha=alpha) if n >= 2 else 0.0
    detectable = max_power >= power
    if detectable:
        lo, hi = 0.0, 0.5
        for _ in range(60):
            mid = (lo + hi) / 2
            if power_two_proportions(baseline, mde, n * (1 - mid), n * mid, alpha=alpha) >= power:
                hi = mid
            else:
                lo = mid
        control_n = math.ceil(n * hi)
        fraction = control_n / n
        achieved = power_two_proportions(baseline, mde, n - control_n, control_n, alpha=alpha)
        needed = _total_needed(baseline, mde, fraction, power, alpha)
        message = (f"hold out {fraction:.1%} of {n:,} customers ({control_n:,} in control, {n - control_n:,} in "
                   f"treatment) to detect {baseline:.2%} -> {baseline + mde:.2%} with power {achieved:.2f} "
                   f"at alpha {alpha:g}")
    else:
        fraction, control_n, achieved = None, None, max_power
        needed = _total_needed(baseline, mde, 0.5, power, alpha)
        message = (f"an audience of {n:,} is too small ever to detect {baseline:.2%} -> {baseline + mde:.2%}: even "
                   f"an even split has power {max_power:.2f} < {power:.2f}; it needs about {needed:,} customers "
                   "(widen the geofence or the segment, run longer, or aim for a larger effect)")
        warnings.warn(message, GeotargetWarning, stacklevel=3)
    days = None
    if daily_customers is not None and needed > 0:
        days = math.ceil(needed / daily_customers)
        message += f"; at {daily_customers:,.0f} new customers a day that takes {days} day(s)"
    return HoldoutPlan(audience_n=n, baseline_rate=baseline, mde=mde, power=power, alpha=alpha, holdout=fraction,
                       control_n=control_n, treatment_n=None if control_n is None else n - control_n,
                       achieved_power=achieved, max_power=max_power, detectable=detectable,
                       required_n=needed if needed > 0 else None, days=days, message=message)
