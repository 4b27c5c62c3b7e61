"""Per-group summaries of a campaign's outcomes: one SQL pass over the store, no per-customer rows in Python.

A readout's statistics (:mod:`geotarget.measure.stats`) need, per group
(and per breakdown key), the size ``n``, the means and variances of the
outcome ``y`` in the window and ``x`` in the pre-period, and their
covariance. This module computes them in DuckDB from the frozen assignment
and the outcomes:

- **Conversion** (``y``, ``x`` are 0/1): the sufficient statistics are
  counts, ``n``, ``sum y``, ``sum x`` and ``sum x*y``, from one grouped pass
  over the assignment and the outcomes of both periods together (one flag
  per customer: a bit for the group, bit 1 for an outcome in the window,
  bit 2 for one in the pre-period), so one hash table of customers.
  The moments follow exactly from the integer counts
  (:func:`binary_summary`).
- **Revenue**: per customer, the sum of values in each period (one grouped
  pass), then the moments by DuckDB's ``var_samp``/``covar_samp``, and for
  the bootstrap the count, mean and deviation of the non-zero values.

Only the conditions that apply are written, with bound values, so DuckDB can
prune on the timestamps.
"""

from __future__ import annotations

from geotarget.measure.stats import EXACT_BUDGET, GroupSummary, NonZero

__all__ = ["binary_summary", "conversion_summaries", "revenue_small_values", "revenue_summaries", "revenue_values"]


def _periods(campaign_id: str, start, end, pre_start, kind) -> tuple[list[str], list[str], dict]:
    """The conditions on outcomes for the window (``post``) and the pre-period (``pre``), and their parameters."""
    params = {"c": campaign_id, "s": start.to_pydatetime()}
    post, pre = ["ts >= $s"], ["ts < $s"]
    if pre_start is not None:
        params["p"] = pre_start.to_pydatetime()
        pre.insert(0, "ts >= $p")
    if end is not None:
        params["e"] = end.to_pydatetime()
        post.append("ts < $e")
    if kind is not None:
        params["k"] = kind
        post.append("kind = $k")
        pre.append("kind = $k")
    return post, pre, params


def _key(key_sql: str | None, key_source: str | None) -> tuple[str, str]:
    key = "NULL" if key_sql is None else key_sql
    join = "" if key_source is None else f"LEFT JOIN {key_source} kt ON kt.customer_id = a.customer_id"
    return key, join


def binary_summary(n: int, sy: int, sx: int = 0, sxy: int = 0) -> GroupSummary:
    """The summary of 0/1 outcomes from counts: ``n`` customers, ``sy`` with y = 1, ``sx`` with x = 1, ``sxy`` both.

    The sample variances and covariance (``n - 1`` in the denominator, 0 for
    a single customer) come from integer numerators, so they are exact up to
    one rounding.

    Examples
    --------
    >>> s = binary_summary(4, sy=2, sx=1, sxy=1)
    >>> s.mean_y, round(s.var_y, 4), s.mean_x, s.var_x, round(s.cov_xy, 4)
    (0.5, 0.3333, 0.25, 0.25, 0.1667)
    """
    if n < 2:
        return GroupSummary(n, sy / n if n else 0.0, 0.0, sx / n if n else 0.0, 0.0, 0.0)
    d = n * (n - 1)
    return GroupSummary(n, sy / n, sy * (n - sy) / d, sx / n, sx * (n - sx) / d, (n * sxy - sx * sy) / d)


#: The group flags of the conversion pass (bits 4 and 8; bits 1 and 2 are the periods' outcomes).
_GROUP_BITS = {4: "treatment", 8: "control"}


def conversion_summaries(store, campaign_id: str, start, end, pre_start, kind=None, key_sql: str | None = None,
                         key_source: str | None = None) -> dict:
    """``{key: {group: GroupSummary}}`` of conversion (``y``) and pre-period conversion (``x``, 0 without one).

    With a pre-period, one grouped pass over the assignment's rows and the
    outcomes of both periods together gives each customer one flag: bit 4
    or 8 for the group they were assigned to, bit 1 for an outcome in the
    window, bit 2 for one in the pre-period (``bit_or`` over a ``UNION
    ALL``). The customers with a group bit are then counted per key and
    group. So only one hash table of customers is built (the per-customer
    aggregate); joining a per-customer aggregate of the outcomes to the
    assignment would build a second one of the same size, and it costs more
    time and memory. Without a pre-period, each assigned customer is tested
    against the distinct customers with an outcome in the window (a mark
    join), which is cheaper still.
    """
    post, pre, params = _periods(campaign_id, start, end, pre_start, kind)
    key, join = _key(key_sql, key_source)
    if pre_start is None:  # a membership test against the distinct customers with an outcome (a mark join)
        rows = store.con.execute(f"""
            SELECT {key} AS key, a.grp, count(*) AS n,
                   count(*) FILTER (WHERE a.customer_id IN (SELECT DISTINCT customer_id FROM outcomes
                                                            WHERE {' AND '.join(post)})) AS sy, 0, 0
            FROM campaign_assignments a {join}
            WHERE a.campaign_id = $c
            GROUP BY 1, 2""", params).fetchall()
    else:
        window = [pre[0], *post[1:]]  # from the pre-period's start to the window's end
        store_id = key_sql == "a.store_id"  # the one breakdown key read from the assignment itself
        rows = store.con.execute(f"""
            SELECT {key} AS key, a.f & 12 AS grp, count(*) AS n, count(*) FILTER (WHERE a.f & 1 = 1) AS sy,
                   count(*) FILTER (WHERE a.f & 2 = 2) AS sx, count(*) FILTER (WHERE a.f & 3 = 3) AS sxy
            FROM (SELECT customer_id, bit_or(f) AS f{', any_value(store_id) AS store_id' if store_id else ''}
                  FROM (SELECT customer_id, CAST(CASE grp WHEN 'treatment' THEN 4 WHEN 'control' THEN 8 ELSE 0 END
                                                 AS UTINYINT) AS f{', store_id' if store_id else ''}
                        FROM campaign_assignments WHERE campaign_id = $c
                        UNION ALL
                        SELECT customer_id, CAST(CASE WHEN ts >= $s THEN 1 ELSE 2 END AS UTINYINT)
                               {', NULL' if store_id else ''}
                        FROM outcomes WHERE {' AND '.join(window)})
                  GROUP BY customer_id) a {join}
            WHERE a.f & 12 <> 0
            GROUP BY 1, 2""", params).fetchall()
        rows = [(k, _GROUP_BITS[g], *counts) for k, g, *counts in rows]
    out: dict = {}
    for k, grp, n, sy, sx, sxy in rows:
        out.setdefault(k, {})[grp] = binary_summary(int(n), int(sy), int(sx), int(sxy))
    return out


def revenue_values(campaign_id: str, start, end, pre_start, kind) -> tuple[str, dict]:
    """SQL for each assigned customer: ``customer_id``, ``grp``, ``store_id``, the sum of outcome values in the
    window (``y``) and in the pre-period (``x``, 0 without one), from one grouped pass over the outcomes."""
    post, pre, params = _periods(campaign_id, start, end, pre_start, kind)
    window = post if pre_start is None else [pre[0], *post[1:]]
    sql = f"""SELECT a.customer_id, a.grp, a.store_id, coalesce(per.y, 0) AS y, coalesce(per.x, 0) AS x
              FROM campaign_assignments a LEFT JOIN (
                  SELECT customer_id, sum(CASE WHEN ts >= $s THEN coalesce(value, 0) ELSE 0 END) AS y,
                         sum(CASE WHEN ts < $s THEN coalesce(value, 0) ELSE 0 END) AS x
                  FROM outcomes WHERE {' AND '.join(window)} GROUP BY customer_id) per
                ON per.customer_id = a.customer_id
              WHERE a.campaign_id = $c"""
    return sql, params


def revenue_summaries(store, values: str, params: dict, key_sql: str | None = None, key_source: str | None = None,
                      nonzero: dict | None = None) -> dict:
    """Per breakdown key and group: n, mean and variance of y and x, their covariance (one SQL aggregate).

    With a ``nonzero`` dict, the same pass also fills it, per group, with the
    count, mean and deviation of the non-zero values of y (for the bootstrap).
    """
    key, join = _key(key_sql, key_source)
    rows = store.con.execute(f"""
        SELECT {key} AS key, a.grp, count(*) AS n, avg(y) AS my, coalesce(var_samp(y), 0) AS vy,
               avg(x) AS mx, coalesce(var_samp(x), 0) AS vx, coalesce(covar_samp(x, y), 0) AS cxy,
               count(*) FILTER (WHERE y <> 0) AS k, coalesce(avg(y) FILTER (WHERE y <> 0), 0) AS mk,
               coalesce(stddev_pop(y) FILTER (WHERE y <> 0), 0) AS sk
        FROM ({values}) a {join}
        GROUP BY ALL""", params).fetchall()
    out: dict = {}
    for k, grp, n, my, vy, mx, vx, cxy, nz, mk, sk in rows:
        out.setdefault(k, {})[grp] = GroupSummary(int(n), float(my or 0), float(vy), float(mx or 0), float(vx),
                                                 float(cxy))
        if nonzero is not None:
            nonzero[grp] = NonZero(int(nz), float(mk), float(sk))
    return out


def revenue_small_values(store, values: str, params: dict, nonzero: dict, draws: int) -> None:
    """Fetch the non-zero values of the groups small enough for the bootstrap to resample them one by one."""
    small = [g for g, nz in nonzero.items() if 0 < nz.k and nz.k * draws <= EXACT_BUDGET]
    if small:
        fetched = store.con.execute(f"SELECT grp, list(y) FROM ({values}) a WHERE y <> 0 AND grp IN "
                                    "(SELECT unnest($groups)) GROUP BY grp", {**params, "groups": small}).fetchall()
        for g, v in fetched:
            nonzero[g] = NonZero.of(v)
