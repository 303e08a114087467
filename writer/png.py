"""PNG files from 8-bit pixels, with the standard library alone (``zlib``).

``encode`` writes the four chunks a decoder needs: the signature, ``IHDR``, one ``IDAT`` and
``IEND``, each with its CRC (``zlib.crc32``). Every row is filtered with PNG's "Up" filter (each
byte minus the byte above it), computed for the whole image at once: the rows are two big integers
and one subtraction per 8-bit lane (``_lane_sub``), so no Python loop runs per byte.

Measured on 512x512 RGB on a quiet machine (bench/images.py has the method, docs/benchmarks.md the
figures): "Up" at zlib level 1 makes a smooth image 10x smaller than no filter at level 6, and a
smooth one with some noise 1.4x smaller, each in about half the time (zlib has less to do); plain
noise costs 15% more time for the same size. Level 6 halves a clean image again but takes 2-4x the
time on a noisy one: level 1 is the writer's (the training loop pays for it). Paeth, and libpng's
choice of a filter per row, would need a Python loop per byte.

Colour types by channels: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["COLOUR_TYPES", "SIGNATURE", "encode"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: PNG colour type of each channel count.
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_FILTER_UP = b"\x02"
#: zlib level (see the module docstring).
LEVEL = 1


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _lane_sub(a: bytes, b: bytes) -> bytes:
    """``a - b`` byte by byte, modulo 256 (``len(a) == len(b)``), with whole-buffer integer
    arithmetic: setting the top bit of each byte of ``a`` and clearing it in ``b`` keeps a borrow
    from crossing into the next byte, and the top bits are put right after."""
    n = len(a)
    high = int.from_bytes(b"\x80" * n, "big")
    x, y = int.from_bytes(a, "big"), int.from_bytes(b, "big")
    d = ((x | high) - (y & ~high)) ^ ((x ^ y ^ high) & high)
    return d.to_bytes(n, "big")


def encode(width: int, height: int, channels: int, pixels: bytes) -> bytes:
    """A PNG file of ``height`` rows of ``width`` pixels of ``channels`` bytes each, ``pixels``
    in row order (HWC, 8 bits a sample). Raises ``ValueError`` when the sizes do not agree."""
    if channels not in COLOUR_TYPES:
        raise ValueError(f"an image has 1 to 4 channels, not {channels}")
    if width < 1 or height < 1 or width >= 1 << 31 or height >= 1 << 31:
        raise ValueError(f"an image of {width}x{height} pixels")
    stride = width * channels
    if len(pixels) != stride * height:
        raise ValueError(f"{len(pixels)} bytes for {width}x{height}x{channels}")
    pixels = bytes(pixels)
    if height > 1:  # the first row stays as it is: "Up" takes the row above it as zeros
        filtered = pixels[:stride] + _lane_sub(pixels[stride:], pixels[:-stride])
    else:
        filtered = pixels
    raw = b"".join(_FILTER_UP + filtered[i : i + stride] for i in range(0, len(filtered), stride))
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    return (SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, LEVEL))
            + _chunk(b"IEND", b""))
