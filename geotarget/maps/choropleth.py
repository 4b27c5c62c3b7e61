"""Region layers coloured by one or more metrics, with a control to switch between them."""

from __future__ import annotations

from geotarget.maps.folium import heatmap_map
from geotarget.maps.heatmap import heatmap
from geotarget.maps.metric import DEFAULT_K_MIN

__all__ = ["choropleth_map"]


def choropleth_map(eng, layer: str, metrics=("count",), *, audience=None, k_min: int | None = DEFAULT_K_MIN,
                   allow_no_floor: bool = False, **style):
    """Regions of ``layer`` coloured by each metric, with a layer control between metrics.

    Parameters
    ----------
    eng : Engine
    layer : str
        An ingested region layer.
    metrics : str or list of str
        Metric specs as in :func:`geotarget.maps.heatmap.parse_metric`.
    audience, k_min, allow_no_floor
        As in :func:`geotarget.maps.heatmap.heatmap`.
    **style
        Passed to :func:`heatmap_map` (scale, bins, palette, tiles, opacity, inline_js).

    Returns
    -------
    folium.Map
    """
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    results = [heatmap(eng, metric=mt, region_layer=layer, audience=audience, k_min=k_min,
                       allow_no_floor=allow_no_floor) for mt in metrics]
    return heatmap_map(results, **style)
