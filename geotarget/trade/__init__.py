"""Trade areas and site planning: where each store's customers come from, and where to open next.

- :func:`trade_areas`: customer-derived trade areas (the cells nearest a
  store that hold a share of its customers), as polygons with area,
  customers, population and penetration;
- :func:`huff`: the Huff gravity model over demand cells, with competitors
  by brand; :func:`calibrate_huff` / :func:`fit_huff` fit alpha and beta by
  maximum likelihood, with standard errors;
- :func:`trade_area_shares`, :func:`region_shares`: market share and
  penetration per trade area and per region;
- :func:`evaluate_sites`: captured demand, cannibalisation and net gain of
  candidate sites, ranked; :func:`choose_sites`: the k sites covering the
  most demand (maximal covering location problem).

Every cell is the standard H3 cell of a point (``latlng_to_cell``); every
distance is WGS84 geodesic (pyproj).
"""

from .areas import TradeAreas, trade_area_cells, trade_areas
from .calibrate import HuffFit, calibrate_huff, fit_huff
from .huff import HuffResult, huff, huff_model, huff_probabilities, store_distances_m
from .nearest import nearest_store
from .share import region_shares, trade_area_shares
from .sites import choose_sites, evaluate_sites, rank_sites, read_candidates

__all__ = [
    "HuffFit",
    "HuffResult",
    "TradeAreas",
    "calibrate_huff",
    "choose_sites",
    "evaluate_sites",
    "fit_huff",
    "huff",
    "huff_model",
    "huff_probabilities",
    "nearest_store",
    "rank_sites",
    "read_candidates",
    "region_shares",
    "store_distances_m",
    "trade_area_cells",
    "trade_area_shares",
    "trade_areas",
]
