"""The scripts and stylesheets of a map page, written into the page itself.

A saved map must open on a machine with no internet. folium and branca link
Leaflet and d3 from CDNs; here those links are swapped, when the page is
rendered, for the same files read from installed PyPI packages:

- Leaflet's script and stylesheet from ``xstatic-leaflet`` (the Leaflet
  version folium links), with the stylesheet's images as ``data:`` URIs;
- d3 from ``xstatic-d3`` (3.5.17, the d3 v3 that branca's legends are
  written for: ``d3.scale.threshold``, ``d3.svg.axis``).

Nothing is downloaded. With ``inline=False`` the page links the CDNs as
folium does. A link this module does not know (a folium plugin added by the
caller) is left as a link.
"""

from __future__ import annotations

import base64
import functools
import importlib
import re
from pathlib import Path

from branca.element import CssLink, Element, JavascriptLink

from geotarget.errors import MissingDependencyError

__all__ = [
    "asset_code",
    "AssetHeader",
    "ASSETS",
    "BRANCA_D3",
    "data_dir",
    "LEAFLET_CSS",
    "LEAFLET_JS",
    "LEAFLET_VERSION",
    "use_assets",
    "version",
]

LEAFLET_VERSION = "1.9.3"
LEAFLET_JS = f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist/leaflet.js"
LEAFLET_CSS = f"https://cdn.jsdelivr.net/npm/leaflet@{LEAFLET_VERSION}/dist/leaflet.css"
#: The address branca's colormap legend links for d3.
BRANCA_D3 = "https://cdnjs.cloudflare.com/ajax/libs/d3/3.5.5/d3.min.js"

#: CDN address -> (xstatic package, file in its data folder).
ASSETS = {
    LEAFLET_JS: ("leaflet", "leaflet.js"),
    LEAFLET_CSS: ("leaflet", "leaflet.css"),
    BRANCA_D3: ("d3", "d3.js"),
}
_PIP_NAMES = {"leaflet": "xstatic-leaflet", "d3": "xstatic-d3"}

# Leaflet finds its default marker icon through the stylesheet's address,
# which an inline stylesheet does not have: give it the images themselves.
_DEFAULT_ICON = """
L.Icon.Default.imagePath = "";
L.Icon.Default.mergeOptions({iconUrl: "%(marker-icon.png)s", iconRetinaUrl: "%(marker-icon-2x.png)s",
                             shadowUrl: "%(marker-shadow.png)s"});
"""


def _module(package: str):
    try:
        return importlib.import_module(f"xstatic.pkg.{package}")
    except ImportError as exc:
        raise MissingDependencyError(
            f"{_PIP_NAMES[package]} is needed to write {package} into a map page; "
            f"pip install {_PIP_NAMES[package]}, or pass inline_js=False to link the CDN") from exc


def data_dir(package: str) -> Path:
    """The data folder of the xstatic package ``package`` (``leaflet`` or ``d3``).

    Raises
    ------
    MissingDependencyError
        When the package is not installed.
    """
    return Path(_module(package).BASE_DIR)


def version(package: str) -> str:
    """The upstream version of the files an xstatic package ships, e.g. ``"1.9.3"``."""
    return str(_module(package).VERSION)


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _safe_in_tag(text: str, tag: str) -> str:
    """Text that cannot end its ``<script>`` or ``<style>`` early: ``</tag`` becomes ``<\\/tag``, ``<!--`` ``<\\!--``."""
    return re.sub(rf"</({tag})", r"<\\/\1", text, flags=re.IGNORECASE).replace("<!--", "<\\!--")


@functools.cache
def asset_code(url: str) -> str:
    """The content of a known CDN ``url``, ready to sit between ``<script>`` or ``<style>`` tags.

    Examples
    --------
    >>> code = asset_code(LEAFLET_JS)
    >>> 'version="1.9.3"' in code, "sourceMappingURL" in code
    (True, False)
    """
    package, name = ASSETS[url]
    folder = data_dir(package)
    text = (folder / name).read_text(encoding="utf-8")
    if name.endswith(".css"):
        text = re.sub(r"url\((['\"]?)images/([\w.-]+\.png)\1\)",
                      lambda m: f"url({_data_uri(folder / 'images' / m.group(2))})", text)
        return _safe_in_tag(text, "style")
    text = re.sub(r"^//# sourceMappingURL=.*$", "", text, flags=re.MULTILINE)
    if name == "leaflet.js":
        icons = ("marker-icon.png", "marker-icon-2x.png", "marker-shadow.png")
        text += _DEFAULT_ICON % {n: _data_uri(folder / "images" / n) for n in icons}
    return _safe_in_tag(text, "script")


class AssetHeader(Element):
    """The ``<head>`` of a map page: known CDN links are written inline when ``inline`` is true."""

    def __init__(self, *, inline: bool = True):
        super().__init__()
        self.inline = inline

    def _render_child(self, child: Element, **kwargs) -> str:
        if self.inline and isinstance(child, (JavascriptLink, CssLink)) and child.url in ASSETS:
            tag = "script" if isinstance(child, JavascriptLink) else "style"
            return f"<{tag}>{asset_code(child.url)}</{tag}>"
        return child.render(**kwargs)

    def render(self, **kwargs) -> str:
        """The header's elements, one a line."""
        return "\n".join(self._render_child(child, **kwargs) for child in self._children.values())


def use_assets(m, *, inline: bool = True) -> None:
    """Make the page of folium map ``m`` write Leaflet and d3 inline (or link the CDNs).

    The page (``m.get_root()``) gets an :class:`AssetHeader` holding what its
    header held before.
    """
    figure = m.get_root()
    header = AssetHeader(inline=inline)
    for name, child in figure.header._children.items():
        header.add_child(child, name=name)
    header._parent = figure
    figure.header = header
