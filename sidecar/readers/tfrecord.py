"""TFRecord framing, as TensorBoard's event files use it: records, their masked CRC32C, resynchronisation.

**Framing.** A file is a run of TFRecords: ``uint64 length``, ``uint32 masked_crc32c(length)``,
``length`` bytes of data, ``uint32 masked_crc32c(data)``, all little endian. ``complete`` ends at the
last whole record; a torn record (or header) at the end is held until the rest arrives. A record
whose data CRC does not match is skipped (``bad_crc``) and the next one is read: its length was
vouched for by the length CRC. A header whose length CRC does not match (``bad_length``), or that
announces more than ``MAX_RECORD_BYTES`` (``too_large``), cannot be trusted to say where the next
record starts, so the reader resynchronises: the next record starts at the first later offset that
holds a header with a valid length CRC and a length within the limit; the bytes in between are
skipped, counted once per corrupt stretch. With no such offset yet, every byte that can no longer
start a header is complete (and skipped) and only the last 11 are held, so a corrupt length never
makes the reader wait, nor hold more than one read. A record over the limit is skipped this way
too: its bytes pass through the reader without being kept (TensorBoard writes its largest records,
graphs and images, well below 16 MiB; its scalars, histograms and texts far below).

**Speed.** A chunk's records are found with numpy: every offset whose bytes 1 to 7 are zero (the
length of a record under 256 bytes) is a candidate, candidates' length CRCs are looked up together,
and the chain of records from offset 0 is checked in one pass; a Python step is taken only where it
breaks (a longer record, corruption, the end). Data CRCs are computed together for the few lengths
most records share, four bytes a step with two lookups. A record too long or too rare for the table
path has its CRC checked by a C implementation where one is installed (google-crc32c or crc32c:
SSE4.2), else in Python, two bytes a step.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HEAD", "MAX_RECORD_BYTES", "PACKAGED_CRC32C", "Frames", "crc32c", "data_crc_ok", "frame",
           "masked_crc32c", "unaligned_views"]

#: Records announcing more data than this are skipped (``too_large``) by resynchronising. At most
#: 2**24 - 1: candidate lengths are found as offsets whose bytes 3 to 7 are zero.
MAX_RECORD_BYTES = (1 << 24) - 1
HEAD = 12  # length and its CRC
_FRAME = 16  # head and the data CRC

# ---- CRC32C (Castagnoli, reflected), as TFRecord masks it ------------------------------------------

_POLY = 0x82F63B78


def _tables() -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        c = np.where(c & 1, (c >> 1) ^ np.uint32(_POLY), c >> 1).astype(np.uint32)
    t8 = c
    # two bytes a step: the state xor the next two bytes, advanced over two zero bytes
    w = np.arange(65536, dtype=np.uint32)
    for _ in range(2):
        w = t8[w & 0xFF] ^ (w >> 8)
    return t8, w


_T8, _T16 = _tables()
_T8_LIST: list[int] = _T8.tolist()
_T16_LIST: list[int] = _T16.tolist()


def _crc32c_python(data: bytes | memoryview) -> int:
    """CRC32C of ``data`` in Python, two bytes a step (the fallback without a C implementation)."""
    mv = memoryview(data).cast("B")
    c = 0xFFFFFFFF
    if len(mv) & 1:
        c = _T8_LIST[(c ^ mv[0]) & 0xFF] ^ (c >> 8)
        mv = mv[1:]
    if sys.byteorder == "little":
        words: Any = mv.cast("H")
    else:  # pragma: no cover - no big-endian machine here
        words = array("H", mv.tobytes())
        words.byteswap()
    t = _T16_LIST
    for w in words:
        c = t[(c ^ w) & 0xFFFF] ^ (c >> 16)
    return c ^ 0xFFFFFFFF


def _packaged_crc32c() -> dict[str, Callable[[bytes | memoryview], int]]:
    """The C implementations of CRC32C installed (SSE4.2 or ARMv8 CRC instructions), best first:
    google-crc32c (Apache-2.0), then crc32c (LGPL)."""
    found: dict[str, Callable[[bytes | memoryview], int]] = {}
    try:
        import google_crc32c

        if google_crc32c.implementation == "c":  # its pure-Python fallback is slower than ours
            value = google_crc32c.value
            found["google_crc32c"] = lambda data: int(value(bytes(data)))  # it takes no memoryview
    except ImportError:
        pass
    try:
        from crc32c import crc32c as ici_crc32c

        found["crc32c"] = ici_crc32c
    except ImportError:
        pass
    return found


PACKAGED_CRC32C = _packaged_crc32c()
#: CRC32C of one buffer: a C implementation where one is installed, else Python.
crc32c: Callable[[bytes | memoryview], int] = next(iter(PACKAGED_CRC32C.values()), _crc32c_python)


def _mask(c: Any) -> Any:
    """TFRecord's masking of a CRC (an int, or a uint32 array)."""
    if isinstance(c, np.ndarray):
        return ((c >> np.uint32(15)) | (c << np.uint32(17))) + np.uint32(0xA282EAD8)
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def masked_crc32c(data: bytes | memoryview) -> int:
    """The masked CRC32C a TFRecord stores after its length and after its data."""
    return int(_mask(crc32c(data)))


def _crc_columns(cols: np.ndarray) -> np.ndarray:
    """CRC32C of many byte strings of one length at once; ``cols`` is (length, count) uint8, one
    column per string."""
    c = np.full(cols.shape[1], 0xFFFFFFFF, dtype=np.uint32)
    k = 0
    if cols.shape[0] & 1:
        c = _T8[(c ^ cols[0]) & 0xFF] ^ (c >> np.uint32(8))
        k = 1
    pairs = cols[k::2].astype(np.uint32)
    pairs |= cols[k + 1 :: 2].astype(np.uint32) << np.uint32(8)
    for w in pairs:
        c ^= w
        c = _T16[c & 0xFFFF] ^ (c >> np.uint32(16))
    out: np.ndarray = c ^ np.uint32(0xFFFFFFFF)
    return out


def _crc_strided(arr: np.ndarray, u32: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """CRC32C of the ``size`` bytes at each of ``starts`` (all in ``arr``, whose uint32 view is
    ``u32``): a byte a step up to a multiple of 4, then four bytes a step with two lookups."""
    c = np.full(starts.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    lead = size & 3
    for k in range(lead):
        c = _T8[(c ^ arr[starts + k]) & 0xFF] ^ (c >> np.uint32(8))
    low, high = np.empty_like(c), np.empty_like(c)
    for at in range(lead, size, 4):
        c ^= u32[starts + at]
        np.bitwise_and(c, 0xFFFF, out=low)
        np.right_shift(c, 16, out=high)
        c = _T32_LOW[low]
        c ^= _T32_HIGH[high]
    out: np.ndarray = c ^ np.uint32(0xFFFFFFFF)
    return out


def _four_byte_tables() -> tuple[np.ndarray, np.ndarray]:
    # the state xor the next four bytes, advanced over four zero bytes: linear, so split in halves
    low = np.arange(65536, dtype=np.uint32)
    high = low << np.uint32(16)
    for _ in range(4):
        low = _T8[low & 0xFF] ^ (low >> np.uint32(8))
        high = _T8[high & 0xFF] ^ (high >> np.uint32(8))
    return low, high


_T32_LOW, _T32_HIGH = _four_byte_tables()


#: Records of one length are checked together (``_crc_strided``) from this many on, up to this
#: length, for the few lengths most records of a chunk share.
_TOGETHER_MIN_COUNT = 16
_TOGETHER_MAX_LENGTH = 1024
_TOGETHER_MAX_GROUPS = 8


# ---- framing ---------------------------------------------------------------------------------------


def unaligned_views(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unaligned little-endian uint64 and uint32 of a byte array, by start offset (views)."""
    n = arr.shape[0]
    u64 = np.ndarray(shape=(max(n - 7, 0),), dtype="<u8", buffer=arr, offset=0, strides=(1,))
    u32 = np.ndarray(shape=(max(n - 3, 0),), dtype="<u4", buffer=arr, offset=0, strides=(1,))
    return u64, u32


def _computed_length_crcs(lengths: np.ndarray) -> np.ndarray:
    as_bytes = np.ascontiguousarray(lengths, dtype="<u8").view(np.uint8).reshape(-1, 8)
    out: np.ndarray = _mask(_crc_columns(np.ascontiguousarray(as_bytes.T)))
    return out


# The CRC of a length below 2**24 from two lookups: the (unmasked) CRC of 8 bytes is affine in
# them, so crc(lo | hi << 16) = crc(lo) ^ crc(hi << 16) ^ crc(0).
_LOW_CRCS = _crc_columns(np.ascontiguousarray(
    np.arange(1 << 16, dtype="<u8").view(np.uint8).reshape(-1, 8).T))
_HIGH_CRCS = _crc_columns(np.ascontiguousarray(
    (np.arange(256, dtype="<u8") << np.uint64(16)).view(np.uint8).reshape(-1, 8).T)) ^ _LOW_CRCS[0]


def _length_crcs(lengths: np.ndarray) -> np.ndarray:
    """Masked CRC32C of each length's 8 little-endian bytes."""
    if lengths.shape[0] and int(lengths.max()) >= 1 << 24:
        return _computed_length_crcs(lengths)
    out: np.ndarray = _mask(_LOW_CRCS[(lengths & np.uint64(0xFFFF)).astype(np.intp)]
                            ^ _HIGH_CRCS[(lengths >> np.uint64(16)).astype(np.intp)])
    return out


@dataclass
class Frames:
    starts: np.ndarray  # offsets of complete records (their length field)
    lengths: np.ndarray  # their data lengths
    end: int  # bytes consumed: records, and corrupt stretches that cannot hold a header any more
    gaps: list[tuple[int, int, str]]  # corrupt stretches (start, stop, reason)
    torn: bool  # (final only) the data ended inside a record


def _headers(arr: np.ndarray, u64: np.ndarray, u32: np.ndarray, zero: np.ndarray, first_zero: int) -> tuple[
    np.ndarray, np.ndarray
]:
    """Offsets holding a header with a valid length CRC whose length has zero bytes from
    ``first_zero`` to 7 (below 2**8 for 1, below 2**24 for 3), and the lengths."""
    n = arr.shape[0]
    if n < HEAD:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    mask = zero[first_zero : n - 11 + first_zero].copy()
    for k in range(first_zero + 1, 8):
        mask &= zero[k : n - 11 + k]
    if np.count_nonzero(mask) > n // 32:  # runs of zeros make every offset a candidate; but no
        # length below 2**24 has a masked CRC of 0 (a test checks), so four zeros after it rule it out
        mask &= ~(zero[8 : n - 3] & zero[9 : n - 2] & zero[10 : n - 1] & zero[11:n])
    cand = np.flatnonzero(mask)
    lengths = u64[cand]
    keep = (_length_crcs(lengths) == u32[cand + 8]) & (lengths <= MAX_RECORD_BYTES)
    return cand[keep], lengths[keep].astype(np.int64)


def frame(arr: np.ndarray, *, final: bool) -> Frames:
    """Where the records of ``arr`` (which starts at a record boundary) are. ``final``: nothing
    follows ``arr`` (decode), so a corrupt stretch runs to its end; else (complete) the last 11
    bytes, which may be the start of a header, are held.

    The chain of records is checked in bulk among the headers of records under 256 bytes (nearly
    all, and few false candidates); a longer record is checked where the chain reaches it; the
    headers of any length are searched only to resynchronise after a corrupt one."""
    n = arr.shape[0]
    u64, u32 = unaligned_views(arr)
    zero = arr == 0
    v, lv = _headers(arr, u64, u32, zero, 1)
    nxt = v + _FRAME + lv
    breaks = np.flatnonzero(nxt[:-1] != v[1:])  # the chain from record i does not go on to i + 1
    every: np.ndarray | None = None  # every valid header, found at the first corrupt one
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    gaps: list[tuple[int, int, str]] = []
    target, end, torn = 0, 0, False
    while True:
        j = int(np.searchsorted(v, target))
        if j < v.shape[0] and v[j] == target:
            b = int(np.searchsorted(breaks, j))
            e = int(breaks[b]) if b < breaks.shape[0] else v.shape[0] - 1
            if nxt[e] <= n:
                parts.append((v[j : e + 1], lv[j : e + 1]))
                target = int(nxt[e])
                continue
            parts.append((v[j:e], lv[j:e]))  # the run's last record is torn
            end, torn = int(v[e]), final
            break
        if target > n - HEAD:  # the end, or a torn header
            end, torn = target, final and target < n
            break
        length = int(u64[target])
        length_ok = int(_length_crcs(u64[target : target + 1])[0]) == int(u32[target + 8])
        if length_ok and length <= MAX_RECORD_BYTES:  # a record of 256 bytes or more
            if target + _FRAME + length > n:
                end, torn = target, final
                break
            parts.append((np.array([target]), np.array([length])))
            target += _FRAME + length
            continue
        reason = "too_large" if length_ok else "bad_length"
        if every is None:
            every = _headers(arr, u64, u32, zero, 3)[0]
        k = int(np.searchsorted(every, target, side="right"))
        if k < every.shape[0]:
            gaps.append((target, int(every[k]), reason))
            target = int(every[k])
            continue
        # no header yet: the stretch runs to the end, or to where a header could still start
        end = n if final else n - HEAD + 1
        if end - target >= HEAD or final:
            gaps.append((target, end, reason))
        else:
            end = target
        break
    if not final and gaps and gaps[-1][1] == end and end - gaps[-1][0] < HEAD:
        # decode is given only the bytes up to ``end``: a stretch shorter than a header would look
        # like a torn one there, so it waits until the record after it is complete
        end = gaps.pop()[0]
    if len(parts) == 1:
        starts, lens = parts[0]
    elif parts:
        starts, lens = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    else:
        starts = lens = np.zeros(0, np.int64)
    return Frames(starts.astype(np.int64), lens.astype(np.int64), end, gaps, torn)


def data_crc_ok(buf: memoryview, arr: np.ndarray, u32: np.ndarray, ds: np.ndarray, dl: np.ndarray) -> np.ndarray:
    """Whether each record's data (offsets ``ds``, lengths ``dl``) matches its stored CRC. The
    lengths most records share are checked together; the other records one by one."""
    m = ds.shape[0]
    got = np.empty(m, dtype=np.uint32)
    counts = np.bincount(np.minimum(dl, _TOGETHER_MAX_LENGTH + 1)) if m else np.zeros(0, np.int64)
    counts[_TOGETHER_MAX_LENGTH + 1 :] = 0
    common = np.argsort(counts)[::-1][:_TOGETHER_MAX_GROUPS]
    common = common[counts[common] >= _TOGETHER_MIN_COUNT].tolist()
    alone = np.ones(m, dtype=bool)
    for size in common:
        idx = np.flatnonzero(dl == size) if len(common) > 1 or counts[size] < m else np.arange(m)
        got[idx] = _crc_strided(arr, u32, ds[idx], size)
        alone[idx] = False
    idx = np.flatnonzero(alone)
    got[idx] = [crc32c(buf[s : s + k]) for s, k in zip(ds[idx].tolist(), dl[idx].tolist())]
    ok: np.ndarray = _mask(got) == u32[ds + dl]
    return ok
