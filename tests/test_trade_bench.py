"""The trade benchmark's two sides compute the same answers (never a timing assertion)."""

from __future__ import annotations

import numpy as np

from benchmarks import trade as bench
from geotarget.trade import nearest_store


def test_benchmark_sides_agree_at_a_small_size():
    lat, lng, slat, slng, attract, _ = bench._data(5000, 20, seed=3)
    home, _ = nearest_store(lat, lng, slat, slng)
    g, g_cells = bench.huff_geotarget(lat, lng, slat, slng, attract)
    p, p_cells = bench.huff_numpy(lat, lng, slat, slng, attract)
    assert g_cells == p_cells
    np.testing.assert_allclose(g, p, rtol=1e-9)
    assert abs(g.sum() - 5000) < 1e-6
    got, _ = bench.areas_geotarget(lat, lng, slat, slng, home)
    assert got == bench.areas_numpy(lat, lng, slat, slng, home)
