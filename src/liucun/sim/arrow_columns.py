"""Build Arrow columns straight from NumPy buffers, without a Python object per value.

`valid` masks say which rows hold a value; the others are null.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from liucun.warehouse.schema import AMOUNT_TYPE, TS_TYPE

BoolArray = npt.NDArray[np.bool_]

_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# byte value -> its two hex digits, as a little-endian uint16 so a uint8 view reads them in order
_HEX_PAIRS = (_HEX_DIGITS[np.arange(256) >> 4].astype(np.uint16)) | (
    _HEX_DIGITS[np.arange(256) & 0x0F].astype(np.uint16) << 8
)
# the UUID's hex runs: (first hex digit, last hex digit + 1, first character) in 8-4-4-4-12
_UUID_RUNS = ((0, 8, 0), (8, 12, 9), (12, 16, 14), (16, 20, 19), (20, 32, 24))


def _validity(valid: BoolArray | None) -> pa.Buffer | None:
    if valid is None:
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def fixed_width_strings(chars: npt.NDArray[np.uint8]) -> pa.StringArray:
    """A string array from an (n, width) matrix of ASCII bytes, one row per string."""
    n, width = chars.shape
    if (n + 1) * width > np.iinfo(np.int32).max:
        raise ValueError("too many characters for one string array; use smaller chunks")
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars)
    array = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    assert isinstance(array, pa.StringArray)
    return array


def uuid4_strings(rng: np.random.Generator, n: int) -> pa.StringArray:
    """`n` random version-4 UUIDs in canonical lowercase form, drawn from `rng` (reproducible)."""
    raw = np.frombuffer(rng.bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    hex_digits = _HEX_PAIRS[raw].view(np.uint8)  # (n, 32)
    chars = np.full((n, 36), ord("-"), dtype=np.uint8)
    for first, stop, at in _UUID_RUNS:
        chars[:, at : at + stop - first] = hex_digits[:, first:stop]
    return fixed_width_strings(chars)


def decimal_digits(values: npt.NDArray[np.int64], width: int) -> npt.NDArray[np.uint8]:
    """The (n, width) ASCII matrix of non-negative integers, zero-padded to `width` digits."""
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def masked(values: np.ndarray, valid: BoolArray | None, arrow_type: pa.DataType) -> pa.Array:
    """A fixed-width Arrow array over `values` (already of the matching NumPy dtype)."""
    data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(arrow_type, len(data), [_validity(valid), pa.py_buffer(data)])


def timestamps_us(values: npt.NDArray[np.int64]) -> pa.Array:
    """UTC timestamps from integer microseconds since the Unix epoch."""
    return masked(values.astype(np.int64, copy=False), None, TS_TYPE)


def amounts_from_fen(fen: npt.NDArray[np.int64], valid: BoolArray | None) -> pa.Array:
    """Exact decimal(18, 2) yuan amounts from integer fen (the decimal's unscaled value)."""
    # decimal128 stores a 16-byte little-endian two's-complement integer per value
    words = np.empty((len(fen), 2), dtype=np.int64)
    words[:, 0] = fen
    words[:, 1] = np.where(fen < 0, -1, 0)
    return pa.Array.from_buffers(AMOUNT_TYPE, len(fen), [_validity(valid), pa.py_buffer(words)])


def take_strings(
    dictionary: pa.StringArray, indices: npt.NDArray[np.integer], valid: BoolArray | None = None
) -> pa.Array:
    """`dictionary[indices[i]]` for each row, null where `valid` is False."""
    if valid is not None:
        # null rows may hold placeholder indices; point them at a real entry anyway
        indices = np.where(valid, indices, 0)
    index_array = masked(indices.astype(np.int32, copy=False), valid, pa.int32())
    return dictionary.take(index_array)
