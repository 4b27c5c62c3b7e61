"""The maps in a real browser: Debian's headless Chromium driven by playwright.

No browser is downloaded: playwright launches /usr/bin/chromium, which
`make test` installs with scripts/ensure-chromium.sh. Every request that
leaves the machine is refused, tiles included: a saved map carries Leaflet and
d3 itself, and its vector layers must render with no tile server.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import h3
import numpy as np
import pandas as pd
import pytest
from _mapdata import sample_engine

from geotarget.maps import choropleth_map, heatmap_map, save_html
from geotarget.maps.heatmap import HeatmapResult, Metric

CHROMIUM = Path(os.environ.get("GEOTARGET_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
LOCAL = re.compile(r"(file|data|blob):|https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found; run `bash scripts/ensure-chromium.sh` (Debian package chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is in the test extra")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


class Page:
    """A loaded map page with what went wrong on it."""

    def __init__(self, browser, path: Path):
        self.errors: list[str] = []
        self.refused: list[str] = []
        self.page = browser.new_page(viewport={"width": 1200, "height": 900})
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", lambda msg: self.errors.append(msg.text)
                     if msg.type == "error" and not msg.text.startswith("Failed to load resource") else None)
        self.page.route("**/*", self._route)
        start = time.perf_counter()
        self.page.goto(path.as_uri(), wait_until="load")
        self.page.wait_for_function("document.querySelectorAll('.leaflet-overlay-pane path').length > 0",
                                    timeout=60_000)
        # then settled: the same number of paths 100 ms apart, no zoom animation running, two frames painted
        # (on a loaded machine the first path can come well before the rest of the layer)
        self.page.wait_for_function(
            "() => { const n = document.querySelectorAll('.leaflet-overlay-pane path').length;"
            " const same = window.__gtPaths === n; window.__gtPaths = n;"
            " return same && !document.querySelector('.leaflet-zoom-anim'); }",
            polling=100, timeout=60_000)
        self.page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.seconds = time.perf_counter() - start

    def _route(self, route):
        url = route.request.url
        if LOCAL.match(url):
            return route.continue_()
        self.refused.append(url)
        return route.abort()

    def count(self, css: str) -> int:
        return self.page.locator(css).count()

    def legends(self) -> list[str]:
        return self.page.locator(".gt-legend .caption").all_text_contents()

    def visible_legends(self) -> list[str]:
        return self.page.eval_on_selector_all(
            ".gt-legend",
            "els => els.filter(e => e.style.display !== 'none').map(e => e.querySelector('.caption').textContent)")

    def screenshot(self, path: Path) -> Path:
        self.page.screenshot(path=str(path))
        assert path.read_bytes()[:4] == b"\x89PNG"
        return path

    def box(self, css: str) -> dict:
        return self.page.locator(css).first.bounding_box()

    def check(self, path: Path) -> None:
        """What every map must pass: no console errors, not blank, a visible legend the layer control leaves free."""
        from PIL import Image

        assert self.errors == [] and self.refused == []
        pixels = np.asarray(Image.open(self.screenshot(path)).convert("RGB")).reshape(-1, 3)
        colours = np.unique(pixels // 8, axis=0)
        assert len(colours) > 20 and (pixels.min(axis=1) < 200).mean() > 0.05, "the page looks blank"
        legend = self.page.locator(".gt-legend:visible").first  # one per metric; the selected one shows
        assert legend.is_visible()
        lb = legend.bounding_box()
        assert lb["width"] > 150 and lb["height"] > 30 and lb["y"] + lb["height"] <= 900 and lb["x"] >= 0
        control = self.box(".leaflet-control-layers")
        if control is not None:  # collapsed to an icon: it covers no data and not the legend
            assert control["width"] * control["height"] < 0.01 * 1200 * 900
            assert control["y"] + control["height"] < lb["y"] or control["x"] + control["width"] < lb["x"]


@pytest.fixture(scope="module")
def city():
    eng = sample_engine()
    yield eng
    eng.close()


def test_heatmap_in_chromium(browser, city, tmp_path):
    hm = city.heatmap(8, "mean:spend_12m")
    page = Page(browser, save_html(hm.to_map(tiles=None), tmp_path / "heatmap.html"))
    page.check(tmp_path / "heatmap.png")
    assert page.count("path.gt-hex") == len(hm.cells) > 50
    assert page.legends() == [hm.caption] == ["Mean spend_12m per hexagon (about 1 km across)"]
    assert "fewer than 10 customers (hidden)" in page.page.locator(".gt-legend").inner_text()
    # hidden cells: hatched with the SVG pattern, one path each
    assert page.count("path.gt-hidden") == hm.suppressed_cells > 0
    assert page.count(".leaflet-overlay-pane svg pattern#gt-hatch") == 1
    assert page.page.locator("path.gt-hidden").first.get_attribute("fill") == "url(#gt-hatch)"
    page.page.hover("path.gt-hex >> nth=0", force=True)
    tip = page.page.locator(".leaflet-tooltip").inner_text()
    assert "mean spend_12m" in tip and "customers" in tip


def test_vector_layers_render_when_tiles_cannot_load(browser, city, tmp_path):
    hm = city.heatmap(8)
    page = Page(browser, save_html(hm.to_map(tiles="OpenStreetMap"), tmp_path / "tiles.html"))
    assert page.errors == [] and page.refused and all("tile.openstreetmap" in u for u in page.refused)
    assert page.count("path.gt-hex") == len(hm.cells)


def test_coverage_in_chromium(browser, city, tmp_path):
    cov = city.coverage(["S001", "S002", "S003", "S004"], "2mi", k_min=5)
    page = Page(browser, save_html(cov.to_map(tiles=None), tmp_path / "coverage.html"))
    page.check(tmp_path / "coverage.png")
    assert page.legends() == ["Customers within 2 mi per hexagon (about 400 m across)"]
    assert page.page.locator("path.gt-overlap").first.get_attribute("fill") == "url(#gt-cross)"
    assert page.count("path.gt-ring") == 4
    assert page.count("path.gt-store") == 4
    assert page.count("path.gt-hex") == len(cov.density.cells) > 0
    assert page.count("path.gt-uncovered") == len(cov.uncovered.cells) > 0
    assert page.count("path.gt-overlap") == len(cov.overlaps)
    assert len(page.legends()) == 1
    assert page.count(".leaflet-control-layers-overlays input") == 6
    page.page.locator("path.gt-store").first.click(force=True)
    first = cov.stores.iloc[0]
    popup = page.page.locator(".leaflet-popup-content").inner_text()
    assert first["store_id"] in popup and first["name"] in popup and "audience within 2 mi" in popup


def test_choropleth_layer_control_switches_metric_and_legend(browser, city, tmp_path):
    m = choropleth_map(city, "hoods", ["count", "mean:spend_12m"], tiles=None)
    page = Page(browser, save_html(m, tmp_path / "choropleth.html"))
    page.check(tmp_path / "choropleth.png")
    n = page.count("path.gt-region")
    assert n > 0 and len(page.legends()) == 2
    assert page.visible_legends() == ["Customers per area of hoods"]
    page.page.hover(".leaflet-control-layers")  # the control opens on hover
    page.page.get_by_text("mean spend_12m", exact=True).click()
    page.page.wait_for_timeout(200)
    assert page.visible_legends() == ["Mean spend_12m per area of hoods"]
    assert page.count("path.gt-region") == n


def test_twenty_thousand_hexes_open(browser, tmp_path):
    cells = np.unique(np.array([h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(40.73, -73.95, 9), 90)],
                               dtype="uint64"))[:20_000]
    frame = pd.DataFrame({"cell": cells, "h3": [h3.int_to_str(int(c)) for c in cells], "customers": 10 + cells % 97})
    frame["value"] = frame["customers"].astype(float)
    path = save_html(heatmap_map(HeatmapResult(frame, Metric("count"), 10, res=9), tiles=None), tmp_path / "big.html")
    page = Page(browser, path)
    page.check(tmp_path / "big.png")
    assert page.count("path.gt-hex") == 20_000
    assert path.stat().st_size < 10_000_000
    print(f"20,000 hexes: {path.stat().st_size / 1e6:.1f} MB, loaded in {page.seconds:.1f} s")


def test_share_index_and_world_wide_maps_in_chromium(browser, tmp_path):
    """A segment index map, and world-wide data fitted to where the customers are."""
    import geotarget

    rng = np.random.default_rng(2)
    n = 4000
    far = [(51.5, -0.12), (-33.87, 151.21), (35.68, 139.69)]  # three small groups far away, above the floor
    lat = np.concatenate([rng.normal(40.75, 0.03, n - 18), np.repeat([f[0] for f in far], 6)])
    lng = np.concatenate([rng.normal(-73.97, 0.03, n - 18), np.repeat([f[1] for f in far], 6)])
    eng = geotarget.open(":memory:")
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"w{i}" for i in range(n)], "lat": lat, "lng": lng,
                                       "vip": np.r_[rng.random(n - 18) < 0.3, np.ones(18, dtype=bool)]}))
    segment = eng.store.frame("SELECT customer_id FROM customers WHERE vip")
    hm = eng.heatmap(7, "index", audience=segment, k_min=2, allow_no_floor=True)
    assert (hm.cells["customers"] >= 2).sum() > 3 and hm.cells["h3"].map(lambda c: h3.cell_to_latlng(c)[0]).min() < 0
    page = Page(browser, save_html(hm.to_map(tiles=None), tmp_path / "index.html"))
    page.check(tmp_path / "index.png")
    assert page.legends() == ["Where the segment over-indexes per hexagon (about 3 km across), 100 = overall share"]
    zoom = page.page.evaluate("Object.values(window).find(v => v && v._leaflet_id && v.getZoom).getZoom()")
    assert zoom >= 8  # fitted to the city, not to the whole world
    eng.close()
