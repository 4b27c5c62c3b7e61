"""PNG pictures: Web Mercator over a basemap served on 127.0.0.1, offline outlines, scale bar, labels."""

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from _mapdata import sample_engine
from PIL import Image
from pyproj import Geod, Transformer

from geotarget.errors import InvalidInputError
from geotarget.maps import png

TILE_RGB = (40, 170, 70)  # a green no heat palette, outline or hatch uses


def _tile_png() -> bytes:
    img = Image.new("RGB", (256, 256), TILE_RGB)
    for i in range(0, 256, 32):  # a grid, so the tile is a real picture, not one colour
        for j in range(256):
            img.putpixel((i, j), (20, 90, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture()
def tile_server():
    body = _tile_png()
    served = []

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            parts = self.path.strip("/").removesuffix(".png").split("/")
            if len(parts) != 3 or not all(p.isdigit() for p in parts):
                self.send_error(404)
                return
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def city():
    eng = sample_engine()
    yield eng
    eng.close()


def _share_of(path, rgb, tol: int = 12) -> float:
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    return float((np.abs(pixels - np.array(rgb)).max(axis=2) <= tol).mean())


def test_basemap_from_a_tile_server(city, tile_server, tmp_path, monkeypatch):
    url, served = tile_server
    monkeypatch.delenv(png.OFFLINE_ENV, raising=False)
    path = city.heatmap(8).to_png(tmp_path / "tiles.png", tiles=url)
    assert served and all(p.endswith(".png") for p in served)
    assert _share_of(path, TILE_RGB) > 0.05  # the basemap shows between the hexagons
    cov = city.coverage(["S001", "S002"], "2mi").to_png(tmp_path / "cov.png", tiles=url)
    assert _share_of(cov, TILE_RGB) > 0.05


def test_offline_pictures_draw_the_region_outlines(city, tile_server, tmp_path, monkeypatch):
    url, served = tile_server
    path = city.heatmap(8).to_png(tmp_path / "offline.png", tiles=url, context=city)  # GEOTARGET_OFFLINE is set
    assert served == [] and _share_of(path, TILE_RGB) == 0.0
    assert _share_of(path, (0x9A, 0x9A, 0x9A), tol=6) > 0.0005  # the outlines of the hoods layer
    monkeypatch.delenv(png.OFFLINE_ENV, raising=False)
    dead = url.replace(url.split("/")[2], "127.0.0.1:9")  # nothing listens there: the fallback, not an error
    path = city.heatmap(8).to_png(tmp_path / "dead.png", tiles=dead, context=city)
    assert _share_of(path, (0x9A, 0x9A, 0x9A), tol=6) > 0.0005
    with pytest.raises(InvalidInputError, match="tile provider"):
        city.heatmap(8).to_png(tmp_path / "x.png", tiles="NoSuchProvider.Anywhere")


@pytest.mark.parametrize("unit", ["mi", "km", None])
def test_scale_bar_is_true_at_the_centre(city, unit):
    fig, ax = png._axes((-74.1, 40.6, -73.8, 40.9), "t", "s")
    metres, length = png._scale_bar(ax, unit)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    to_ll = Transformer.from_crs("EPSG:3857", "EPSG:4326", always_xy=True)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    (lng_a, lng_b), (lat_a, lat_b) = to_ll.transform([cx - length / 2, cx + length / 2], [cy, cy])
    ground = Geod(ellps="WGS84").inv(lng_a, lat_a, lng_b, lat_b)[2]
    assert abs(ground - metres) / metres < 0.005
    label = next(t.get_text() for t in ax.texts if t.get_gid() == "gt-scale")
    assert label.split()[1] == (unit or label.split()[1]) and ".0 " not in label


def test_store_labels_do_not_overlap(city):
    import pandas as pd

    rng = np.random.default_rng(5)
    stores = pd.DataFrame({"store_id": [f"STORE-{i:03d}" for i in range(60)],
                           "lat": 40.75 + rng.normal(0, 0.01, 60), "lng": -73.98 + rng.normal(0, 0.01, 60)})
    fig, ax = png._axes((-74.02, 40.72, -73.94, 40.78), "t", "s")
    placed = png._label_stores(ax, stores)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert 5 <= placed == len(boxes) < 60  # crowded: some labels are left out rather than overlap
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b)
