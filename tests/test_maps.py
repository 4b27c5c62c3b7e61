"""Folium maps and PNG pictures: what they show, and what they must never show."""

import re
import subprocess
import sys
import time

import h3
import numpy as np
import pandas as pd
import pytest
from _mapdata import embedded_geojson, leaked_customers, sample_engine
from typer.testing import CliRunner

import geotarget
from geotarget.geo.geodesy import geodesic_distance_m
from geotarget.maps import choropleth_map, heatmap_map, save_html
from geotarget.maps.assets import ASSETS, LEAFLET_VERSION, asset_code
from geotarget.maps.heatmap import HeatmapResult, Metric


@pytest.fixture(scope="module")
def city():
    eng = sample_engine()
    yield eng
    eng.close()


def _html(m) -> str:
    return m.get_root().render()


def test_heatmap_shows_exactly_the_cells_above_the_floor(city):
    hm = city.heatmap(8, "mean:spend_12m")
    hidden = set(city.heatmap(8, "mean:spend_12m", k_min=0, allow_no_floor=True).cells["h3"]) - set(hm.cells["h3"])
    html = _html(hm.to_map(tiles=None))
    fc, hatched = embedded_geojson(html)
    assert sorted(f["properties"]["h3"] for f in fc["features"]) == sorted(hm.cells["h3"])
    assert all(f["properties"]["customers"] >= 10 for f in fc["features"])
    assert not [h for h in hidden if h in html]
    assert leaked_customers(city, html) == []
    assert hm.caption in html and "mean spend_12m" in html  # legend and tooltip alias
    # the hidden cells are drawn hatched, with no id and no count: only "fewer than 10"
    assert len(hatched["features"]) == hm.suppressed_cells == len(hidden) > 0
    assert {tuple(f["properties"].items()) for f in hatched["features"]} == {(("note", "fewer than 10 customers "
                                                                                       "(hidden)"),)}
    drawn = {h3.latlng_to_cell(*np.asarray(f["geometry"]["coordinates"][0]).mean(axis=0)[::-1], 8)
             for f in hatched["features"]}
    assert drawn == hidden and "url(#gt-hatch)" in html
    assert "tile.openstreetmap" not in html


def test_coordinates_are_rounded_to_6_decimals(city):
    for fc in embedded_geojson(_html(city.heatmap(8).to_map(tiles=None))):
        coords = np.concatenate([np.asarray(f["geometry"]["coordinates"][0]) for f in fc["features"]])
        assert (np.round(coords, 6) == coords).all()


def test_tiles_are_optional(city):
    hm = city.heatmap(8)
    assert "tile.openstreetmap.org" in _html(hm.to_map())
    assert "tile.openstreetmap.org" not in _html(hm.to_map(tiles=None))


# what would make a browser fetch a script, a stylesheet or a font
_FETCHES = re.compile(r"<script[^>]*\ssrc=|<link[^>]*\shref=|@import|url\(\s*['\"]?(https?:)?//",
                      re.IGNORECASE)


def _without_libraries(html: str) -> str:
    """The page less the Leaflet code (and d3, for a page with a branca legend) written into it."""
    for url in ASSETS:
        assert asset_code(url) in html or "d3" in url, url
        html = html.replace(asset_code(url), "")
    return html


def test_saved_maps_are_self_contained(city, tmp_path):
    maps = {"heatmap": city.heatmap(8).to_map(tiles=None),
            "coverage": city.coverage(["S001", "S002"], "2mi").to_map(tiles=None),
            "choropleth": choropleth_map(city, "hoods", ["count", "mean:spend_12m"], tiles=None)}
    for name, m in maps.items():
        html = save_html(m, tmp_path / f"{name}.html").read_text(encoding="utf-8")
        assert _FETCHES.findall(html) == [], name
        assert re.findall(r"https?://\S*", _without_libraries(html)) == [], name
    html = _without_libraries(save_html(city.heatmap(8).to_map(), tmp_path / "tiles.html").read_text(encoding="utf-8"))
    assert _FETCHES.findall(html) == []
    assert {u.split("/")[2] for u in re.findall(r"https?://[^\s\"'\\]+", html)} == {"tile.openstreetmap.org",
                                                                                 "www.openstreetmap.org"}


def test_cdn_links_on_request(city):
    html = _html(city.coverage(["S001"], "2mi").to_map(tiles=None, inline_js=False))
    assert sorted(re.findall(r'<script src="([^"]+)"|<link rel="stylesheet" href="([^"]+)"', html)) == sorted(
        [(u, "") if u.endswith(".js") else ("", u) for u in ASSETS if "d3" not in u])  # the legends need no d3
    assert not [u for u in ASSETS if asset_code(u) in html]


def test_inlined_libraries_are_the_versions_folium_and_branca_expect():
    import folium

    from geotarget.maps.assets import version

    assert version("leaflet") == LEAFLET_VERSION
    assert f"/leaflet@{LEAFLET_VERSION}/" in dict(folium.Map.default_js)["leaflet"]
    assert version("d3").split(".")[0] == "3"  # branca's legend: d3.scale.threshold, d3.svg.axis
    css = asset_code(next(u for u in ASSETS if u.endswith(".css")))
    assert "url(images/" not in css and css.count("url(data:image/png;base64,") == 3


def test_inline_code_cannot_end_its_tag_early():
    from geotarget.maps.assets import _safe_in_tag

    assert _safe_in_tag('s = "</SCRIPT><!--";', "script") == 's = "<\\/SCRIPT><\\!--";'
    assert _safe_in_tag("a::after {content: '</style>'}", "style") == "a::after {content: '<\\/style>'}"


def test_missing_asset_package_says_what_to_install(monkeypatch):
    from geotarget.maps.assets import data_dir

    monkeypatch.setitem(sys.modules, "xstatic.pkg.d3", None)
    with pytest.raises(geotarget.MissingDependencyError, match="pip install xstatic-d3.*inline_js=False"):
        data_dir("d3")


@pytest.mark.parametrize("scale", ["quantile", "linear"])
def test_scales(city, scale):
    html = _html(city.heatmap(8).to_map(scale=scale, tiles=None))
    assert "gt-legend" in html and "Customers per hexagon (about 1 km across)" in html
    with pytest.raises(geotarget.InvalidInputError, match="scale must be one of"):
        city.heatmap(8).to_map(scale="log")


def test_quantile_legend_takes_equal_steps_with_whole_numbers():
    from geotarget.maps.style import colormap, legend_html

    values = [10, 11, 12, 12, 13, 15, 20, 40, 100, 900]
    text = legend_html(colormap(values, bins=4), "Customers per hexagon", hidden="fewer than 10 customers (hidden)")
    steps = re.findall(r'<span style="background:(#[0-9a-f]{6})"></span>', text)
    ticks = re.findall(r'<span style="left:([0-9.]+)%">([^<]*)</span>', text)
    assert len(steps) == 4 and len(set(steps)) == 4
    assert [float(x) for x, _ in ticks] == [0.0, 25.0, 50.0, 75.0, 100.0]  # equal steps, whatever the values
    assert [t for _, t in ticks][0] == "10" and [t for _, t in ticks][-1] == "900"
    assert ".0<" not in text and "fewer than 10 customers (hidden)" in text


def test_choropleth_switches_metrics_and_legends(city):
    m = choropleth_map(city, "hoods", ["count", "mean:spend_12m", "penetration:hoods:population"], tiles=None)
    html = _html(m)
    assert html.count("L.control.layers") == 1 and "baselayerchange" in html
    layers = [fc for fc in embedded_geojson(html) if fc["features"] and "value" in fc["features"][0]["properties"]]
    assert len(layers) == 3 and all({"name", "value", "customers"} <= set(f["properties"]) for f in
                                    layers[0]["features"])
    assert "Customers per person (population) per area of hoods" in html
    assert leaked_customers(city, html) == []


def test_choropleth_leaves_out_small_regions(city):
    small = city.heatmap(metric="count", region_layer="hoods", k_min=0, allow_no_floor=True).regions
    k = int(small["customers"].median())
    hidden = small[small["customers"] < k]
    html = _html(choropleth_map(city, "hoods", "count", k_min=k, tiles=None))
    layers = embedded_geojson(html)
    shown = {f["properties"]["name"] for fc in layers for f in fc["features"] if "name" in f["properties"]}
    assert shown and not shown & set(hidden["name"])
    hatched = [f for fc in layers for f in fc["features"] if f["properties"] == {"note": f"fewer than {k} customers "
                                                                                         "(hidden)"}]
    assert len(hatched) == len(hidden) > 0


def test_coverage_map(city):
    cov = city.coverage(["S001", "S002", "S003"], "2mi", k_min=5)
    html = _html(cov.to_map(tiles=None))
    density, uncovered, overlaps, rings = None, None, None, None
    for fc in embedded_geojson(html):
        keys = set(fc["features"][0]["properties"]) if fc["features"] else set()
        if keys == {"store_id", "radius"}:
            rings = fc
            assert {f["properties"]["radius"] for f in fc["features"]} == {"2 mi"}
        elif keys == {"stores", "shared"}:
            overlaps = fc
        elif "value" in keys:
            density = fc
        elif keys == {"h3", "customers"}:
            uncovered = fc
    assert len(rings["features"]) == 3
    for f, row in zip(rings["features"], cov.stores.itertuples()):
        lng, lat = np.asarray(f["geometry"]["coordinates"][0]).T
        np.testing.assert_allclose(geodesic_distance_m(row.lat, row.lng, lat, lng), 3218.688, atol=0.2)
    assert len(density["features"]) == len(cov.density.cells) > 0
    assert len(uncovered["features"]) == len(cov.uncovered.cells) > 0
    assert all(f["properties"]["customers"] >= 5 for f in density["features"] + uncovered["features"])
    assert overlaps is None or len(overlaps["features"]) == len(cov.overlaps)
    text = html.replace("\\u003c", "<").replace("\\u003e", ">")  # popups travel as JSON strings
    for row in cov.stores.itertuples():
        assert f"<b>{row.store_id}</b> {row.name}" in text and f"{row.customers:,} customers" in text
    assert leaked_customers(city, html) == []
    assert cov.covered_customers + cov.uncovered_customers == city.heatmap(8).total_customers


def test_coverage_counts_and_overlaps_are_exact():
    eng = geotarget.open(":memory:")
    eng.ingest_stores(pd.DataFrame({"store_id": ["A", "B", "C"], "name": ["a", "b", "c"],
                                    "lat": [40.70, 40.70, 41.5], "lng": [-74.00, -73.99, -74.0]}))
    rng = np.random.default_rng(3)
    lat, lng = rng.uniform(40.66, 40.74, 3000), rng.uniform(-74.05, -73.94, 3000)
    eng.ingest_customers(pd.DataFrame({"customer_id": [f"x{i}" for i in range(3000)], "lat": lat, "lng": lng}))
    cov = eng.coverage(["A", "B", "C"], "1.5km", k_min=3)
    inside = {s: geodesic_distance_m(a, b, lat, lng) <= 1500.0 for s, a, b in [("A", 40.70, -74.00),
                                                                               ("B", 40.70, -73.99),
                                                                               ("C", 41.5, -74.0)]}
    assert cov.stores["customers"].tolist() == [int(v.sum()) for v in inside.values()]
    assert cov.overlaps.values.tolist() == [["A", "B", int((inside["A"] & inside["B"]).sum())]]
    assert cov.covered_customers == int((inside["A"] | inside["B"]).sum())
    assert cov.density.total_customers == cov.covered_customers
    html = _html(cov.to_map(tiles=None))
    assert "fewer than 3 customers" in html  # store C reaches nobody: no exact small count is shown


def test_small_counts_in_popups_follow_the_floor():
    from types import SimpleNamespace

    from geotarget.maps.folium import _store_popup

    row = SimpleNamespace(store_id="S<1>", name="A & B", customers=4)
    assert _store_popup(row, 10, "2 mi") == ("<b>S&lt;1&gt;</b> A &amp; B<br>"
                                             "audience within 2 mi: fewer than 10 customers")


def test_twenty_thousand_hexes_stay_under_10_mb():
    cells = np.unique(np.array([h3.str_to_int(c) for c in h3.grid_disk(h3.latlng_to_cell(40.73, -73.95, 9), 90)],
                               dtype="uint64"))[:20_000]
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"cell": cells, "h3": [h3.int_to_str(int(c)) for c in cells],
                          "customers": rng.integers(10, 500, cells.size)})
    frame["value"] = frame["customers"] * rng.gamma(2.0, 50.0, cells.size)
    result = HeatmapResult(frame, Metric("sum", "spend"), 10, res=9)
    start = time.perf_counter()
    html = _html(heatmap_map(result, tiles=None))
    seconds = time.perf_counter() - start
    assert len(cells) == 20_000
    assert len(html.encode()) < 10_000_000, f"{len(html.encode()) / 1e6:.1f} MB for 20,000 hexes in {seconds:.1f} s"
    assert len(embedded_geojson(html)[0]["features"]) == 20_000


def test_pngs(city, tmp_path):
    for name, obj in [("cells", city.heatmap(8)), ("regions", city.heatmap(metric="mean:spend_12m",
                                                                            region_layer="hoods")),
                      ("coverage", city.coverage(["S001", "S002"], "2mi"))]:
        path = obj.to_png(tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_import_geotarget_stays_light():
    heavy = ("folium", "branca", "matplotlib", "shapely", "geopandas")
    code = f"import sys, geotarget; print(','.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _cli(db, *args):
    from geotarget.cli import app

    return CliRunner().invoke(app, ["--db", str(db), *args])


@pytest.fixture(scope="module")
def city_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "city.duckdb"
    eng = sample_engine()
    eng.store.con.execute(f"ATTACH '{path}' AS target")
    eng.store.con.execute("COPY FROM DATABASE memory TO target")
    eng.store.con.execute("DETACH target")
    eng.close()
    return path


def test_cli_heatmap_and_coverage(city_db, tmp_path):
    res = _cli(city_db, "heatmap", "--res", "8", "--metric", "sum:spend_12m", "--tiles", "none",
               "-o", str(tmp_path / "h.html"), "--cells-out", str(tmp_path / "c.csv"), "--png", str(tmp_path / "h.png"))
    assert res.exit_code == 0, res.output
    assert "suppressed below k=10" in res.output
    cells = pd.read_csv(tmp_path / "c.csv")
    assert (cells["customers"] >= 10).all() and (tmp_path / "h.png").exists()
    assert "<script src=" not in (tmp_path / "h.html").read_text()
    res = _cli(city_db, "heatmap", "--region-layer", "hoods", "--metric", "count", "--metric", "mean:age",
               "-o", str(tmp_path / "r.html"))
    assert res.exit_code == 0, res.output
    assert "baselayerchange" in (tmp_path / "r.html").read_text()
    res = _cli(city_db, "map", "coverage", "--radius", "2mi", "--store", "S001", "--store", "S002", "--cdn",
               "-o", str(tmp_path / "cov.html"), "--png", str(tmp_path / "cov.png"))
    assert res.exit_code == 0, res.output
    assert '<script src="https://' in (tmp_path / "cov.html").read_text()
    assert "covered" in res.output and (tmp_path / "cov.png").exists()
    res = _cli(city_db, "heatmap", "--all-stores", "--radius", "1mi", "--k-min", "3", "--no-privacy-floor",
               "-o", str(tmp_path / "a.html"))
    assert res.exit_code == 0, res.output
    assert "audience:" in res.output


@pytest.mark.parametrize("args, message", [
    (["heatmap", "--k-min", "0", "-o", "x.html"], "--no-privacy-floor"),
    (["heatmap", "--metric", "mean:tier", "-o", "x.html"], "not numeric"),
    (["heatmap", "--radius", "2mi", "-o", "x.html"], "--radius needs --store"),
    (["heatmap", "--metric", "count", "--metric", "mean:age", "--png", "x.png", "-o", "x.html"], "single --metric"),
    (["map", "coverage", "--radius", "2mi", "-o", "x.html"], "name the stores"),
    (["map", "coverage", "--radius", "2mi", "--store", "S999", "-o", "x.html"], "S999"),
])
def test_cli_errors_are_one_line(city_db, tmp_path, args, message):
    out = subprocess.run([sys.executable, "-m", "geotarget", "--db", str(city_db), *args], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2  # rich may wrap one long line
    assert not list(tmp_path.glob("x.*"))
