"""Pictures of a readout: a lift map, and cumulative conversion over time by group.

- :func:`lift_geometries` gives each breakdown cell its shape: the geodesic
  ring of a store (``by="store"``), an H3 hexagon (``by="h3_8"``) or a region
  polygon (``by=LAYER``). :func:`lift_map` draws them with Folium (colour:
  absolute lift, diverging around zero; a cell under k is grey and shows no
  figure) and :func:`lift_png` with matplotlib.
- :func:`cumulative_conversion` counts, day by day, the share of each group
  that has converted since the start; :func:`cumulative_png` and
  :func:`cumulative_html` draw it.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd

from geotarget.errors import InvalidInputError
from geotarget.measure.assignment import parse_instant, require_launch

__all__: list[str] = []  # drawn through LiftResult.to_map, to_png, cumulative_png and cumulative_html

_COLORS = {"treatment": "#1b7837", "control": "#762a83"}
_SUPPRESSED = "#bdbdbd"


def lift_geometries(engine, result):
    """The breakdown of ``result`` as a GeoDataFrame (EPSG:4326), one shape per cell."""
    import geopandas as gpd
    import shapely

    if result.breakdown is None:
        raise InvalidInputError("a lift map needs a breakdown: call lift(..., by='store') or by='h3_8' or a layer")
    frame = result.breakdown.copy()
    by = result.by
    keys = frame[by].astype("string")
    if by == "store":
        from geotarget.maps.geometry import geodesic_ring

        campaign = engine.campaign(result.campaign_id)
        radius_m = float(campaign.geofence.get("radius_m", 0.0))
        stores = engine.stores().set_index("store_id")
        geoms = [geodesic_ring(float(stores.at[k, "lat"]), float(stores.at[k, "lng"]), radius_m)
                 if k in stores.index else None for k in keys]
    elif by.lower().startswith("h3_"):
        import h3

        geoms = [shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(k)]) if k else None for k in keys]
    else:
        regions = engine.regions(by).set_index("region_id")
        geoms = [regions.geometry.get(k) for k in keys]
    keep = np.array([g is not None for g in geoms], dtype=bool)
    return gpd.GeoDataFrame(frame[keep].reset_index(drop=True), geometry=[g for g in geoms if g is not None],
                            crs="EPSG:4326")


def _diverging(values):
    import branca.colormap as bcm

    finite = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype="float64")
    top = float(np.max(np.abs(finite))) if finite.size else 1.0
    top = top or 1.0
    return bcm.LinearColormap(["#b2182b", "#f7f7f7", "#1b7837"], vmin=-top, vmax=top, caption="absolute lift")


def _fmt(v, metric: str) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f"{v:+.2%}" if metric == "conversion" else f"{v:+,.2f}"


def lift_map(engine, result, *, tiles: str | None = "OpenStreetMap", inline_js: bool = True):
    """A Folium map of the lift per store ring, cell or region (cells under k in grey, without figures)."""
    import folium

    from geotarget.maps.style import new_map

    gdf = lift_geometries(engine, result)
    if gdf.empty:
        raise InvalidInputError(f"no breakdown cell of {result.by!r} has a shape to draw")
    cm = _diverging(gdf["abs_lift"].tolist())
    m = new_map(gdf.total_bounds, tiles=tiles, inline_js=inline_js)
    for row in gdf.itertuples(index=False):
        label = html.escape(str(getattr(row, result.by) if result.by in gdf.columns else ""))
        if row.suppressed:
            color, tip = _SUPPRESSED, f"{label}: fewer than {result.details['k_min']} customers in a group; no readout"
        else:
            color = cm(row.abs_lift)
            tip = (f"{label}: lift {_fmt(row.abs_lift, result.metric)} (q = {row.q_value:.3g}); "
                   f"treatment {row.treatment_n:,}, control {row.control_n:,}")
        folium.GeoJson(row.geometry.__geo_interface__, tooltip=tip,
                       style_function=lambda _f, c=color: {"color": "#333333", "weight": 1, "fillColor": c,
                                                           "fillOpacity": 0.6}).add_to(m)
    cm.add_to(m)
    return m


def lift_png(engine, result, path, *, dpi: int = 120) -> Path:
    """The lift map as a static PNG (matplotlib)."""
    from matplotlib.collections import PathCollection

    from geotarget.maps.png import _axes, _mercator, _paths

    gdf = lift_geometries(engine, result)
    if gdf.empty:
        raise InvalidInputError(f"no breakdown cell of {result.by!r} has a shape to draw")
    cm = _diverging(gdf["abs_lift"].tolist())
    fig, ax = _axes(tuple(gdf.total_bounds), f"{result.campaign}: {result.metric} lift by {result.by} "
                    f"(grey: under k, no readout)", "")
    colours = [_SUPPRESSED if s else cm(v) for s, v in zip(gdf["suppressed"], gdf["abs_lift"])]
    ax.add_collection(PathCollection(_paths(_mercator(gdf.geometry)), facecolors=colours, edgecolors="#333333",
                                     linewidths=0.5, alpha=0.8))
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    cmap = LinearSegmentedColormap.from_list("lift", ["#b2182b", "#f7f7f7", "#1b7837"])
    fig.colorbar(ScalarMappable(Normalize(cm.vmin, cm.vmax), cmap), ax=ax, label="absolute lift", shrink=0.7)
    path = Path(path)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def cumulative_conversion(engine, campaign, *, start=None, end=None, kind: str | None = None,
                          freq: str = "D") -> pd.DataFrame:
    """Per day (``freq``) and group: customers converted so far, group size, and the cumulative rate.

    Groups are the frozen assignment (intent-to-treat); a customer counts
    from the day of their first outcome in the window.
    """
    store = engine.store
    launch = require_launch(store, campaign)
    start = parse_instant(start, "start") or launch.launched_at
    end = parse_instant(end, "end")
    first = store.frame("""
        SELECT a.grp, f.first_ts FROM campaign_assignments a
        LEFT JOIN (SELECT customer_id, min(ts) AS first_ts FROM outcomes
                   WHERE ts >= $s AND ($e IS NULL OR ts < $e) AND ($k IS NULL OR kind = $k)
                   GROUP BY customer_id) f ON f.customer_id = a.customer_id
        WHERE a.campaign_id = $c""", {"c": campaign.id, "s": start.to_pydatetime(),
                                       "e": None if end is None else end.to_pydatetime(), "k": kind})
    sizes = first.groupby("grp").size()
    conv = first.dropna(subset=["first_ts"])
    if conv.empty:
        periods = pd.DatetimeIndex([start.floor(freq)])
    else:
        last = pd.Timestamp(conv["first_ts"].max()).tz_convert("UTC")
        periods = pd.date_range(start.floor(freq), last.floor(freq), freq=freq)
    rows = []
    for grp in ("treatment", "control"):
        days = pd.to_datetime(conv.loc[conv["grp"] == grp, "first_ts"], utc=True).dt.floor(freq)
        counts = days.value_counts().reindex(periods, fill_value=0).cumsum()
        n = int(sizes.get(grp, 0))
        rows.append(pd.DataFrame({"period": periods, "group": grp, "converted": counts.to_numpy(dtype="int64"),
                                  "n": n, "rate": counts.to_numpy(dtype="float64") / n if n else np.nan}))
    return pd.concat(rows, ignore_index=True)


def _cumulative_figure(frame: pd.DataFrame, title: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for grp, part in frame.groupby("group", sort=False):
        ax.step(part["period"], part["rate"], where="post", color=_COLORS.get(grp),
                label=f"{grp} (n={part['n'].iloc[0]:,})")
    ax.set_ylabel("converted since start")
    ax.yaxis.set_major_formatter(lambda v, _pos: f"{v:.1%}")
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    return fig


def cumulative_png(frame: pd.DataFrame, path, *, title: str = "cumulative conversion by group", dpi: int = 120) -> Path:
    """Draw :func:`cumulative_conversion` as a PNG."""
    path = Path(path)
    _cumulative_figure(frame, title).savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def cumulative_html(frame: pd.DataFrame, path, *, title: str = "cumulative conversion by group") -> Path:
    """Draw :func:`cumulative_conversion` as one self-contained HTML page (an inline SVG and the table)."""
    import io

    buf = io.StringIO()
    _cumulative_figure(frame, title).savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    wide = frame.pivot(index="period", columns="group", values="rate")
    table = "".join(
        f"<tr><td>{html.escape(str(p.date()))}</td>"
        + "".join(f"<td>{wide.at[p, g]:.2%}</td>" for g in wide.columns) + "</tr>" for p in wide.index)
    head = "".join(f"<th>{html.escape(str(g))}</th>" for g in wide.columns)
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 10px;text-align:right}</style>"
            f"</head><body><h2>{html.escape(title)}</h2>{svg}<table><tr><th>period</th>{head}</tr>{table}</table>"
            "</body></html>")
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path

