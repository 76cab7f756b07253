"""ClickHouse's Native format -> numpy columns, without a copy.

Native is the engine's own columnar wire format: per block, a column count, a row count, then
per column its name, its type and its values back to back (an array column: the cumulative end
offset of every row as UInt64, then all the values). Fixed-width values are read in place with
``numpy.frombuffer``, so decoding a block costs a few Python calls per column, whatever its rows.
The same bytes come from a ClickHouse server (``client.raw_query(sql, fmt="Native")``) and from the
embedded engine, so one decoder serves both.

Only what the store's readers select is understood: integers, floats and one-level arrays of
them (queries cast anything else, e.g. ``toUnixTimestamp64Nano(ts)``, ``CAST(enum AS UInt8)``).
Any other type is an error that names it, never a misread.

    for block in read_native(buffer):
        block.rows, block["seq"], block["bid_px"].values, block["bid_px"].offsets
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_SCALARS = {
    "Int8": np.dtype("<i1"), "UInt8": np.dtype("<u1"), "Int16": np.dtype("<i2"), "UInt16": np.dtype("<u2"),
    "Int32": np.dtype("<i4"), "UInt32": np.dtype("<u4"), "Int64": np.dtype("<i8"), "UInt64": np.dtype("<u8"),
    "Float32": np.dtype("<f4"), "Float64": np.dtype("<f8"),
}
_OFFSET = np.dtype("<u8")


class NativeFormatError(ValueError):
    """Bytes that are not a Native result this decoder understands (type named in the message)."""


@dataclass(frozen=True)
class ArrayColumn:
    """An ``Array(T)`` column: row i holds ``values[offsets[i-1]:offsets[i]]`` (offsets[-1] = 0)."""
    offsets: np.ndarray
    values: np.ndarray


@dataclass(frozen=True)
class Block:
    rows: int
    columns: dict[str, np.ndarray | ArrayColumn]

    def __getitem__(self, name: str) -> np.ndarray | ArrayColumn:
        return self.columns[name]


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise NativeFormatError("truncated Native data (in a length)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    n, pos = _varint(buf, pos)
    if pos + n > len(buf):
        raise NativeFormatError("truncated Native data (in a name)")
    return bytes(buf[pos:pos + n]).decode(), pos + n


def _values(buf, dtype: np.dtype, count: int, pos: int) -> tuple[np.ndarray, int]:
    end = pos + count * dtype.itemsize
    if end > len(buf):
        raise NativeFormatError(f"truncated Native data ({count} values of {dtype} at byte {pos})")
    return np.frombuffer(buf, dtype, count, pos), end


def read_native(data) -> list[Block]:
    """The blocks of a Native result (``bytes``, ``memoryview`` or any buffer), their columns
    viewing ``data`` in place: keep ``data`` alive (and unchanged) while they are in use."""
    buf = memoryview(data).cast("B")
    blocks, pos = [], 0
    while pos < len(buf):
        n_cols, pos = _varint(buf, pos)
        n_rows, pos = _varint(buf, pos)
        columns: dict[str, np.ndarray | ArrayColumn] = {}
        for _ in range(n_cols):
            name, pos = _string(buf, pos)
            type_name, pos = _string(buf, pos)
            scalar = _SCALARS.get(type_name)
            if scalar is not None:
                columns[name], pos = _values(buf, scalar, n_rows, pos)
                continue
            is_array = type_name.startswith("Array(") and type_name.endswith(")")
            inner = type_name[len("Array("):-1] if is_array else None
            if inner not in _SCALARS:
                raise NativeFormatError(f"column {name!r} has type {type_name}: the Native reader takes "
                                        f"{', '.join(_SCALARS)} and one-level arrays of them")
            offsets, pos = _values(buf, _OFFSET, n_rows, pos)
            total = int(offsets[-1]) if n_rows else 0
            values, pos = _values(buf, _SCALARS[inner], total, pos)
            columns[name] = ArrayColumn(offsets, values)
        blocks.append(Block(n_rows, columns))
    return blocks


__all__ = ["ArrayColumn", "Block", "NativeFormatError", "read_native"]
