"""Each customer's standard H3 cell at any resolution, computed once per snapshot and kept.

The customer index (:mod:`geotarget.audience.index`) holds one fine cell per
customer, for coverings. The cell a customer is *in* at resolution ``r`` is
H3's ``latlng_to_cell(lat, lng, r)``, which is not always the ancestor of the
fine cell (children overhang their parents). This module computes it for a
whole snapshot the first time a resolution is asked for, on every core, and
keeps it beside the snapshot as dense codes. Each customer's guess is the
ancestor of its fine cell, right for about 93 % of them; a guess is kept
when the point lies in a cap around the cell's centre that is inside the
cell, and only the other customers (about one in six) go through the Rust
indexer (:mod:`geotarget.geo.incircle`). The codes:

- ``cells``: the distinct cells at that resolution, sorted (a few thousand);
- ``names``: the same cells as h3-py's hexadecimal strings;
- ``codes``: for each customer of the snapshot, the position of its cell in
  ``cells`` (int32);
- the same codes run-length encoded (``run_codes``, ``run_lengths``): one
  entry per run of neighbours in the snapshot that share their cell (kept
  when there are at most a quarter as many runs as customers).

A count per cell over every customer is a weighted ``numpy.bincount`` over
the runs (tens of thousands at a million customers), and over an audience a
``bincount`` over the runs of the audience's codes. Counting runs, not single
codes, matters for more than their number: a plain ``bincount`` over codes in
snapshot order adds one to the same counter many times in a row, and each
addition waits for the one before it (several times slower than over the
same codes shuffled). A cell column for an export is
``cells[codes[positions]]``.
The codes live as long as their snapshot (a write to the database brings a
new snapshot and new codes); the :data:`KEEP_RESOLUTIONS` most recently used
resolutions are kept per snapshot.

Because the snapshot is sorted by fine cell, neighbours in it nearly always
share their cell at any coarser resolution: the distinct cells are found
among the first customer of each run of equal cells, never with a sort of
every customer.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from geotarget.audience.index import CustomerIndex
from geotarget.errors import InvalidInputError
from geotarget.geo.cells import candidate_ranges, cells_to_parents, cells_to_str, in_cells, latlng_to_cells
from geotarget.geo.incircle import latlng_to_cells_guided

__all__ = [
    "KEEP_RESOLUTIONS",
    "CellCodes",
    "cell_codes",
    "cell_codes_from_cells",
    "known_cell_codes",
    "positions_in_cells",
]

#: Resolutions whose codes are kept per snapshot (4 bytes per customer each, and 16 per run).
KEEP_RESOLUTIONS = 4
#: Runs are kept when there are at most one per this many customers (res 10 and coarser, typically).
_RUNS_WORTH = 4


@dataclass(frozen=True, eq=False)
class CellCodes:
    """The standard cell of every customer of one snapshot at one resolution."""

    res: int
    cells: np.ndarray
    codes: np.ndarray
    run_codes: np.ndarray = field(default=None, repr=False)
    run_lengths: np.ndarray = field(default=None, repr=False)
    names: pd.api.extensions.ExtensionArray = field(init=False, repr=False)
    _kept_counts: list = field(init=False, repr=False, default_factory=list)

    def __post_init__(self):
        # h3-py's names of the cells, as a pandas string column made once: a result takes its rows
        object.__setattr__(self, "names", pd.array(cells_to_str(self.cells), dtype="str"))

    def counts(self, positions: np.ndarray | None = None) -> np.ndarray:
        """Customers per cell of :attr:`cells` (int64), over all customers or those at ``positions``.

        Without runs (fine resolutions, where nearly every customer is a run of
        its own) a plain ``bincount`` over the codes. The counts of a read-only
        ``positions`` array (a group kept per snapshot, such as the customers
        the heatmap suppression leaves out) are kept with the codes, matched
        by identity: they cannot change while the snapshot lives.
        """
        if positions is not None and not positions.flags.writeable:
            kept_now = tuple(self._kept_counts)  # a copy: another thread may replace the list meanwhile
            for kept, counted in kept_now:
                if kept is positions:
                    return counted
            counted = self._counts(positions)
            counted.setflags(write=False)
            self._kept_counts[:] = [(positions, counted), *kept_now[:3]]
            return counted
        return self._counts(positions)

    def _counts(self, positions: np.ndarray | None) -> np.ndarray:
        codes = self.codes if positions is None else self.codes[positions]
        if self.run_codes is None:
            return np.bincount(codes, minlength=self.cells.size).astype("int64")
        if positions is None:
            run_codes, run_lengths = self.run_codes, self.run_lengths
        else:
            run_codes, run_lengths = _runs(codes)
        counted = np.bincount(run_codes, weights=run_lengths, minlength=self.cells.size)
        return counted.astype("int64")  # exact: counts stay far below 2**53

    def cells_at(self, positions: np.ndarray) -> np.ndarray:
        """The cell (uint64) of the customers at ``positions``."""
        return self.cells[self.codes[positions]]


def _runs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run-length encoding of ``codes``: the code of each run of equal neighbours, and its length."""
    if codes.size == 0:
        return np.zeros(0, dtype=np.intp), np.zeros(0, dtype="float64")
    starts = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate((np.zeros(1, dtype=starts.dtype), starts))
    return codes[starts].astype(np.intp), np.diff(np.append(starts, codes.size)).astype("float64")


def _cells(index: CustomerIndex, res: int) -> np.ndarray:
    """``latlng_to_cell`` of every customer at ``res``: the ancestor of its fine cell, checked."""
    if index.res < res:
        return latlng_to_cells(index.lat, index.lng, res)
    return latlng_to_cells_guided(index.lat, index.lng, cells_to_parents(index.cells, res))


def _compute(index: CustomerIndex, res: int) -> CellCodes:
    return _from_cells(res, _cells(index, res))


def _from_cells(res: int, cells: np.ndarray) -> CellCodes:
    n = cells.size
    if n == 0:
        return CellCodes(res, np.zeros(0, dtype="uint64"), np.zeros(0, dtype="int32"))
    starts = np.flatnonzero(np.concatenate(([True], cells[1:] != cells[:-1])))
    distinct, run_codes = np.unique(cells[starts], return_inverse=True)
    run_lengths = np.diff(np.append(starts, n))
    codes = np.repeat(run_codes.astype("int32"), run_lengths)
    if starts.size * _RUNS_WORTH > n:  # runs would cost more memory (16 bytes each) than they save time
        return CellCodes(res, distinct, codes)
    return CellCodes(res, distinct, codes, run_codes.astype(np.intp), run_lengths.astype("float64"))


_KEPT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def cell_codes(index: CustomerIndex, res: int) -> CellCodes:
    """The :class:`CellCodes` of ``index`` at ``res``, computed on first use and kept with the snapshot.

    Examples
    --------
    >>> import h3, numpy as np, pyarrow as pa
    >>> from geotarget.audience.index import CustomerIndex
    >>> lat, lng = np.array([40.758, 40.7581, 40.70]), np.array([-73.9855, -73.9856, -73.90])
    >>> idx = CustomerIndex(1, 15, latlng_to_cells(lat, lng, 15), lat, lng, pa.array(["a", "b", "c"]))
    >>> cc = cell_codes(idx, 8)
    >>> [h3.int_to_str(int(c)) for c in cc.cells_at(np.arange(3))] == [h3.latlng_to_cell(a, b, 8)
    ...                                                                  for a, b in zip(lat, lng)]
    True
    >>> cc.counts().tolist()
    [1, 2]
    """
    res = int(res)
    with _LOCK:
        kept = _KEPT.get(index)
        if kept is not None and res in kept:
            kept.move_to_end(res)
            return kept[res]
    return _keep(index, res, _compute(index, res))  # computed outside the lock: others need not wait


def _keep(index: CustomerIndex, res: int, codes: CellCodes) -> CellCodes:
    with _LOCK:
        kept = _KEPT.setdefault(index, OrderedDict())
        kept[res] = codes
        kept.move_to_end(res)
        while len(kept) > KEEP_RESOLUTIONS:
            kept.popitem(last=False)
    return codes


def positions_in_cells(index: CustomerIndex, cells) -> np.ndarray:
    """Sorted positions of the customers whose standard cell is one of ``cells`` (any resolutions).

    The fine-cell ranges of the cells and their neighbours find the
    candidates (a conservative covering); ``latlng_to_cell`` decides.
    """
    cells = np.asarray(cells, dtype="uint64")
    if cells.size == 0 or len(index) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = np.sort(index.positions_in_ranges(candidate_ranges(cells, index.res)))
    return candidates[in_cells(index.lat[candidates], index.lng[candidates], cells)]


def known_cell_codes(index: CustomerIndex, res: int) -> CellCodes | None:
    """The :class:`CellCodes` of ``index`` at ``res`` when already kept; None (nothing computed) otherwise."""
    with _LOCK:
        kept = _KEPT.get(index)
        return None if kept is None else kept.get(int(res))


def cell_codes_from_cells(index: CustomerIndex, res: int, cells: np.ndarray) -> CellCodes:
    """Keep ``cells`` (the standard res-``res`` cell of every customer of ``index``, computed by the caller).

    For a caller that already holds them (the heatmap suppression carries
    them from the previous snapshot), so that :func:`cell_codes` does not
    index every customer again.
    """
    cells = np.asarray(cells, dtype="uint64")
    if cells.size != len(index):
        raise InvalidInputError(f"one cell per customer of the snapshot expected ({len(index)}), got {cells.size}; "
                                "pass the cells in the snapshot's order")
    return _keep(index, int(res), _from_cells(int(res), cells))
