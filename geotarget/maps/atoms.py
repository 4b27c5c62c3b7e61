"""The atoms of the point set that heatmap suppression works on, carried from one snapshot to the next.

:mod:`geotarget.maps.suppression` gives each customer one key per published
partition and calls a set of customers sharing every key an *atom*. The keys
of a customer, for the policy's resolutions ``R`` and the database's region
layers:

- for each ``r`` in ``R``, the standard cell ``h3.latlng_to_cell(lat, lng, r)``;
- for each ``r`` in ``R``, the res-``r`` ancestor of the stored res-15 cell.
  Ancestors nest, so sharing the ancestor at the finest ``r`` means sharing
  it at every coarser one: one key (the finest ancestor) gives the same atoms
  as all of them;
- for each region layer, the region the customer counts in
  (:func:`geotarget.geo.regions.assign_regions`, as region heatmaps assign it),
  or none.

**Why they are cheap after a write.** Every key is a function of the
customer's coordinates (and of the layer's polygons) alone. The keys of the
last snapshot are kept per engine (:class:`AtomKeys`); a new snapshot
(after an ingest, an upsert, a consent or suppression change) takes each
customer's keys from the old one when the same point (same fine cell,
latitude and longitude, compared exactly) is there, and computes them only
for the customers that are new or moved. A layer whose polygons changed
(its fingerprint: region ids and WKB) is assigned again for everyone, by
the layer's write when keys are kept (:func:`assign_layer_now`); a
resolution not known before is computed for everyone. The result is always
the atoms of the current snapshot, never of an older one: reuse is decided
per point by exact equality of the inputs.

The standard cells computed here are handed to
:mod:`geotarget.audience.cellcodes`, so the heatmap that asked for the atoms
does not index the customers again.

The keys are combined into one integer per customer (dense codes packed into
int64, factorised whenever the next key would overflow), and the atom of a
customer is the dense code of that integer.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from geotarget.audience.cellcodes import cell_codes, cell_codes_from_cells, known_cell_codes
from geotarget.geo.cells import latlng_to_cells
from geotarget.geo.regions import assign_regions

__all__ = ["AtomKeys", "assign_layer_now", "atom_codes", "atom_keys", "atom_keys_reused", "forget_atom_keys"]

_STATE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # per engine's index cache: the newest AtomKeys
_LOCK = threading.Lock()
_INT64_ROOM = 1 << 62


@dataclass(eq=False)
class AtomKeys:
    """Every customer's keys in one snapshot of the customer index (rows in the snapshot's order)."""

    version: int
    cells: np.ndarray
    lat: np.ndarray
    lng: np.ndarray
    std: dict = field(default_factory=dict)  # res -> standard cell of each customer (uint64)
    regions: dict = field(default_factory=dict)  # layer -> (fingerprint, region of each customer or -1, polygons)
    reused: int = 0  # customers whose keys came from the previous snapshot (for tests and benchmarks)


def _layer(eng, layer: str) -> tuple[str, list]:
    """(fingerprint, WKB of each polygon) of a layer, in the order region heatmaps use (by region_id)."""
    rows = eng.store.con.execute(
        "SELECT region_id, geometry FROM regions WHERE layer = $l ORDER BY region_id", {"l": layer}).fetchall()
    digest = hashlib.sha256()
    for rid, wkb in rows:
        digest.update(str(rid).encode() + b"\0" + bytes(wkb) + b"\1")
    return digest.hexdigest(), [bytes(wkb) for _, wkb in rows]


def _polygons(wkbs: list) -> np.ndarray:
    """The polygons of a layer, as :meth:`Engine.regions` parses them."""
    import shapely

    return shapely.from_wkb(np.asarray(wkbs, dtype=object))


def _sources(prev: AtomKeys | None, index) -> np.ndarray:
    """For each customer of ``index``, the row of ``prev`` holding the same point, or -1."""
    n = len(index)
    if prev is None or prev.cells.size == 0 or n == 0:
        return np.full(n, -1, dtype=np.int64)
    if (prev.cells.size == n and np.array_equal(prev.cells, index.cells) and np.array_equal(prev.lat, index.lat)
            and np.array_equal(prev.lng, index.lng)):
        return np.arange(n, dtype=np.int64)
    runs = np.flatnonzero(np.concatenate(([True], index.cells[1:] != index.cells[:-1])))
    run_start = np.repeat(runs, np.diff(np.append(runs, n)))
    if prev.cells.size == n and np.array_equal(prev.cells, index.cells):  # nobody moved: ties may be reordered
        first = run_start
    else:
        first = np.searchsorted(prev.cells, index.cells, side="left")
    # customers sharing a fine cell: the k-th of a run in the new snapshot is compared with the k-th in the old
    rank = np.arange(n) - run_start
    j = np.minimum(first + rank, prev.cells.size - 1)
    same = (prev.cells[j] == index.cells) & (prev.lat[j] == index.lat) & (prev.lng[j] == index.lng)
    src = np.where(same, j, -1)
    missed = np.flatnonzero(~same)
    if missed.size:  # customers sharing a fine cell may come in another order: match those by their point
        cells = index.cells[missed]
        lo, hi = np.searchsorted(prev.cells, cells, "left"), np.searchsorted(prev.cells, cells, "right")
        tied = hi - lo > 1
        if tied.any():
            rows = np.unique(np.concatenate([np.arange(a, b) for a, b in zip(lo[tied], hi[tied])]))
            old = pd.DataFrame({"c": prev.cells[rows], "y": prev.lat[rows], "x": prev.lng[rows], "row": rows})
            new = pd.DataFrame({"c": cells[tied], "y": index.lat[missed[tied]], "x": index.lng[missed[tied]],
                                "at": missed[tied]})
            found = new.merge(old.drop_duplicates(["c", "y", "x"]), on=["c", "y", "x"], how="inner")
            src[found["at"].to_numpy(dtype=np.int64)] = found["row"].to_numpy(dtype=np.int64)
    return src


def _carried(old: np.ndarray | None, src: np.ndarray, todo: np.ndarray, compute) -> np.ndarray:
    """Values taken from ``old`` where a source row exists, ``compute(todo)`` for the rest."""
    if old is None:
        return compute(np.arange(src.size))
    out = np.empty(src.size, dtype=old.dtype)
    has = src >= 0
    out[has] = old[src[has]]
    if todo.size:
        out[todo] = compute(todo)
    return out


def atom_keys(eng, index, heatmap_res) -> AtomKeys:
    """The keys of every customer of ``index`` for the policy's ``heatmap_res`` and the current layers.

    Carried from the engine's previous snapshot where the points are the same
    (see the module docstring); the standard cells are handed to the
    snapshot's cell codes.
    """
    cache_key = eng._index_cache
    with _LOCK:
        prev = _STATE.get(cache_key)
    src = _sources(prev, index)
    todo = np.flatnonzero(src < 0)
    keys = AtomKeys(index.version, index.cells, index.lat, index.lng, reused=int(src.size - todo.size))
    for res in heatmap_res:
        known = known_cell_codes(index, res)
        if known is not None:
            keys.std[res] = known.cells[known.codes]
            continue
        old = prev.std.get(res) if prev is not None else None
        if old is None:  # a resolution not known before: every customer, shared with the heatmaps
            codes = cell_codes(index, res)
            keys.std[res] = codes.cells[codes.codes]
            continue
        keys.std[res] = _carried(old, src, todo, lambda rows, r=res: latlng_to_cells(index.lat[rows],
                                                                                      index.lng[rows], r))
        cell_codes_from_cells(index, res, keys.std[res])
    for layer in eng.layers():
        fingerprint, wkbs = _layer(eng, layer)
        hit = prev.regions.get(layer) if prev is not None else None
        if hit is not None and hit[0] == fingerprint:
            old, polys = hit[1], hit[2]
        else:
            old, polys = None, _polygons(wkbs)
        which = _carried(old, src, todo, lambda rows, p=polys: assign_regions(p, index.lat[rows], index.lng[rows]))
        keys.regions[layer] = (fingerprint, which, polys)
    with _LOCK:
        current = _STATE.get(cache_key)
        if current is None or current.version <= keys.version:
            _STATE[cache_key] = keys
    return keys


def assign_layer_now(eng, layer: str) -> None:
    """After ``layer`` was written: assign the kept keys' customers to its regions now.

    Called by the layer's ingest, so the write pays for the region of every
    customer rather than the first published heatmap after it. Only when
    keys are kept (a published heatmap was made in this engine); the next
    snapshot carries the assignment point by point, as for any other key,
    and checks the layer's fingerprint as always.
    """
    from dataclasses import replace

    cache_key = eng._index_cache
    with _LOCK:
        prev = _STATE.get(cache_key)
    if prev is None or prev.cells.size == 0:
        return
    fingerprint, wkbs = _layer(eng, layer)
    hit = prev.regions.get(layer)
    if hit is not None and hit[0] == fingerprint:
        return
    polys = _polygons(wkbs)
    entry = (fingerprint, assign_regions(polys, prev.lat, prev.lng), polys)
    with _LOCK:
        if _STATE.get(cache_key) is prev:  # nothing newer was kept meanwhile
            _STATE[cache_key] = replace(prev, regions={**prev.regions, layer: entry})


def atom_keys_reused(eng) -> int:
    """How many customers of the newest keys kept for ``eng`` had them carried from the snapshot before."""
    with _LOCK:
        keys = _STATE.get(eng._index_cache)
    return 0 if keys is None else keys.reused


def forget_atom_keys(eng) -> None:
    """Drop the keys kept for ``eng`` (erasure calls it: they hold customers' coordinates)."""
    with _LOCK:
        _STATE.pop(eng._index_cache, None)


def _pack(joint: np.ndarray, room: int, codes: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Refine the partition ``joint`` (values below ``room``) by dense ``codes`` (values below ``size``)."""
    if room * size >= _INT64_ROOM:
        joint, uniques = pd.factorize(joint, sort=False)
        joint, room = joint.astype(np.int64), max(len(uniques), 1)
    return joint * np.int64(size) + codes.astype(np.int64), room * size


def atom_codes(eng, index, heatmap_res) -> np.ndarray:
    """Dense atom codes, one per customer of ``index`` (customers share a code when they share every key)."""
    n = len(index)
    if n == 0 or not len(heatmap_res):
        return np.zeros(n, dtype=np.int64)
    keys = atom_keys(eng, index, heatmap_res)
    finest = max(heatmap_res)
    ancestor = index.cells >> np.uint64(3 * (index.res - finest))
    if np.all(ancestor[1:] >= ancestor[:-1]):  # sorted, as the snapshot's cells are: runs are the codes
        joint = np.concatenate(([0], np.cumsum(ancestor[1:] != ancestor[:-1]))).astype(np.int64)
        room = int(joint[-1]) + 1
    else:
        room, joint = _dense(ancestor)
        joint = joint.astype(np.int64)
    for res in heatmap_res:
        known = known_cell_codes(index, res)
        size, codes = (known.cells.size, known.codes) if known is not None else _dense(keys.std[res])
        joint, room = _pack(joint, room, codes, size)
    for layer in sorted(keys.regions):
        which = keys.regions[layer][1]
        joint, room = _pack(joint, room, which + 1, int(which.max()) + 2)
    return pd.factorize(joint, sort=False)[0].astype(np.int64)


def _dense(values: np.ndarray) -> tuple[int, np.ndarray]:
    """(number of distinct values, dense code of each value)."""
    codes, uniques = pd.factorize(values, sort=False)
    return len(uniques), codes
