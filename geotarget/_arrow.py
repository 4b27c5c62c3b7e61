"""Arrow arrays and numpy arrays, viewed as each other without pandas.

pyarrow's ``pa.array``, ``pa.scalar`` and ``Array.to_numpy`` ask whether
pandas is installed, and importing pandas costs a one-shot command more than
the rest of its work. These helpers build and read plain fixed-width and
string arrays straight from their buffers instead (no copy where the layouts
agree), so a path that never needs a DataFrame never imports pandas.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["arrow_strings", "arrow_view", "numpy_view", "take_strings"]

_NUMPY_OF = {pa.uint64(): np.dtype("uint64"), pa.int64(): np.dtype("int64"), pa.uint32(): np.dtype("uint32"),
             pa.int32(): np.dtype("int32"), pa.float64(): np.dtype("float64"), pa.float32(): np.dtype("float32"),
             pa.int16(): np.dtype("int16"), pa.uint16(): np.dtype("uint16"), pa.int8(): np.dtype("int8"),
             pa.uint8(): np.dtype("uint8")}
_ARROW_OF = {v: k for k, v in _NUMPY_OF.items()}


def _one_chunk(array):
    if isinstance(array, pa.ChunkedArray):
        if array.num_chunks == 1:
            return array.chunk(0)
        return pa.concat_arrays(array.chunks) if array.num_chunks else pa.nulls(0, array.type)
    return array


def numpy_view(array, dtype) -> np.ndarray:
    """A numpy array of ``dtype`` over a numeric Arrow array (a view when it has one chunk, no nulls, same type).

    Examples
    --------
    >>> import numpy as np
    >>> numpy_view(arrow_view(np.array([1.5, 2.5])), "float64").tolist()
    [1.5, 2.5]
    """
    array = _one_chunk(array)
    dtype = np.dtype(dtype)
    own = _NUMPY_OF.get(array.type)
    if own is None or array.null_count:
        return np.asarray(array.to_numpy(zero_copy_only=False), dtype=dtype)
    view = np.frombuffer(array.buffers()[1], dtype=own, count=len(array), offset=array.offset * own.itemsize) \
        if len(array) else np.zeros(0, dtype=own)
    return view if own == dtype else view.astype(dtype)


def arrow_view(values: np.ndarray) -> pa.Array:
    """An Arrow array over a numeric numpy array, sharing its memory (other dtypes go through ``pa.array``)."""
    values = np.ascontiguousarray(values)
    kind = _ARROW_OF.get(values.dtype)
    if kind is None:
        return pa.array(values)
    return pa.Array.from_buffers(kind, values.size, [None, pa.py_buffer(values)])


def arrow_strings(values) -> pa.Array:
    """An Arrow string array of Python strings (None stays null).

    Examples
    --------
    >>> arrow_strings(["a", None, "ü"]).to_pylist()
    ['a', None, 'ü']
    """
    encoded = [None if v is None else str(v).encode("utf-8") for v in values]
    lengths = np.fromiter((0 if b is None else len(b) for b in encoded), dtype=np.int64, count=len(encoded))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    kind = pa.string() if offsets[-1] < 2**31 else pa.large_string()
    offsets = offsets.astype(np.int32) if kind == pa.string() else offsets
    valid = np.fromiter((b is not None for b in encoded), dtype=bool, count=len(encoded))
    mask = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = pa.py_buffer(b"".join(b for b in encoded if b is not None))
    return pa.Array.from_buffers(kind, len(encoded), [mask, pa.py_buffer(offsets), data],
                                 null_count=int((~valid).sum()))


def take_strings(array, positions: np.ndarray) -> pa.Array:
    """The strings of a string array (no nulls) at ``positions``, gathered in numpy.

    The same as ``array.take(positions)`` without loading ``pyarrow.compute``
    (a tenth of a second of a one-shot command's start); other arrays go
    through ``take``.

    Examples
    --------
    >>> import numpy as np
    >>> take_strings(arrow_strings(["ab", "", "cde"]), np.array([2, 0, 1, 2])).to_pylist()
    ['cde', 'ab', '', 'cde']
    """
    array = _one_chunk(array)
    positions = np.asarray(positions, dtype=np.int64)
    width = {pa.string(): np.int32, pa.large_string(): np.int64}.get(array.type)
    if width is None or array.null_count:
        return array.take(arrow_view(positions))
    buffers = array.buffers()
    offsets = np.frombuffer(buffers[1], dtype=width, count=len(array) + 1, offset=array.offset * np.dtype(width).itemsize)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, dtype=np.uint8)
    starts = offsets[positions].astype(np.int64)
    lengths = offsets[positions + 1].astype(np.int64) - starts
    new_offsets = np.zeros(positions.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    # byte k of the result comes from data[start of its string + its place in that string]
    gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(new_offsets[-1], dtype=np.int64)
    kind = pa.string() if new_offsets[-1] < 2**31 else pa.large_string()
    out_offsets = new_offsets.astype(np.int32) if kind == pa.string() else new_offsets
    return pa.Array.from_buffers(kind, positions.size, [None, pa.py_buffer(out_offsets), pa.py_buffer(data[gather])])
