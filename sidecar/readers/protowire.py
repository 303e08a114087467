"""The protocol buffers wire format, read by hand: enough to take TensorBoard's event records apart.

A message is a run of fields, each a key (``field_number << 3 | wire_type``, a varint) and a value:
a varint (wire type 0), 8 little-endian bytes (1), a length-delimited run of bytes (2: a string, a
nested message or a packed repeated field) or 4 little-endian bytes (5). ``fields`` reads one level
of that into ``{field_number: [values]}``; a nested message is read by calling it again on its bytes.
No schema, no generated code, no protobuf runtime: the caller knows which number means what.

Malformed input (a varint running past the end, a length beyond the message, the deprecated group
wire types 3 and 4, unknown wire types) raises ``WireError``, a ``ValueError``.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = [
    "I32",
    "I64",
    "LEN",
    "VARINT",
    "WireError",
    "as_double",
    "as_float",
    "as_sint64",
    "fields",
    "packed_doubles",
    "packed_floats",
    "packed_varints",
    "read_varint",
]

VARINT, I64, LEN, I32 = 0, 1, 2, 5

#: A field's value as read: an int for a varint, the raw bytes for the three other wire types.
Value = int | bytes

_D = struct.Struct("<d")
_F = struct.Struct("<f")


class WireError(ValueError):
    """The bytes are not a well-formed protocol buffers message."""


def read_varint(buf: bytes, pos: int, end: int | None = None) -> tuple[int, int]:
    """The varint starting at ``pos`` (at most 10 bytes, read as an unsigned 64-bit number) and
    the position after it."""
    stop = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= stop or shift > 63:
            raise WireError("varint runs past the end of the message" if pos >= stop else "varint too long")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7


def fields(buf: bytes) -> dict[int, list[Value]]:
    """The fields of one message: field number -> its values in the order they appear (a field
    written twice, or a repeated field written unpacked, has several)."""
    out: dict[int, list[Value]] = {}
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0")
        value: Value
        if wire == VARINT:
            value, pos = read_varint(buf, pos, end)
        elif wire == LEN:
            size, pos = read_varint(buf, pos, end)
            if size > end - pos:
                raise WireError(f"field {number}: {size} bytes, {end - pos} left")
            value, pos = buf[pos : pos + size], pos + size
        elif wire == I64 or wire == I32:
            size = 8 if wire == I64 else 4
            if size > end - pos:
                raise WireError(f"field {number}: fixed{size * 8} runs past the end")
            value, pos = buf[pos : pos + size], pos + size
        else:
            raise WireError(f"field {number}: wire type {wire} is not supported")
        out.setdefault(number, []).append(value)
    return out


def as_double(v: Value) -> float:
    """A ``double`` field (wire type 1)."""
    if type(v) is not bytes or len(v) != 8:
        raise WireError("a double field must be 8 bytes")
    return float(_D.unpack(v)[0])


def as_float(v: Value) -> float:
    """A ``float`` field (wire type 5), widened exactly to a Python float."""
    if type(v) is not bytes or len(v) != 4:
        raise WireError("a float field must be 4 bytes")
    return float(_F.unpack(v)[0])


def as_sint64(v: Value) -> int:
    """An ``int64`` field: the varint's 64 bits as two's complement (negatives take 10 bytes)."""
    if type(v) is not int:
        raise WireError("an int64 field must be a varint")
    return v - (1 << 64) if v >= 1 << 63 else v


def packed_doubles(values: list[Value]) -> np.ndarray:
    """A ``repeated double``: packed runs of 8-byte values, single 8-byte values, or a mix."""
    return _packed(values, 8, "<f8")


def packed_floats(values: list[Value]) -> np.ndarray:
    """A ``repeated float``, widened to float64."""
    return _packed(values, 4, "<f4")


def _packed(values: list[Value], size: int, dtype: str) -> np.ndarray:
    parts = []
    for v in values:
        if type(v) is not bytes or len(v) % size:
            raise WireError(f"a packed field of {dtype} holds a partial value")
        parts.append(v)
    return np.frombuffer(b"".join(parts), dtype=dtype).astype(np.float64)


def packed_varints(values: list[Value]) -> list[int]:
    """A ``repeated`` integer field as unsigned 64-bit numbers: packed runs or single varints."""
    out: list[int] = []
    for v in values:
        if isinstance(v, int):
            out.append(v)
            continue
        pos = 0
        while pos < len(v):
            x, pos = read_varint(v, pos)
            out.append(x)
    return out
