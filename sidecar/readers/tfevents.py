"""TensorBoard event files (``events.out.tfevents.*``), read without TensorBoard or protobuf.

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

**Events.** ``Event.wall_time`` and ``step``; the first record's ``file_version``
("brain.Event:2"); ``SessionLog.START`` (a restart, written by ``SummaryWriter(purge_step=...)``):
after records it starts a new segment, a new attempt to the store, whose display keeps each
attempt up to the next one's first step, as TensorBoard purges the orphaned steps. Steps going
back without it are kept as they are (TensorBoard too keeps them for file version 2). Summary
values become:

- ``simple_value`` (``add_scalar`` of torch and tensorboardX, TF1): a scalar point under its tag;
- a tensor whose plugin is "scalars" (TF2, ``new_style=True``): a scalar point, from a float,
  double, half, bfloat16, int32 or int64 tensor holding one value (``*_val`` or ``tensor_content``).
  TF2 writes a tag's plugin metadata only with its first value; a tag's first plugin holds for
  good (as in TensorBoard) and is carried in the state;
- ``histo`` (``add_histogram``): ``{"k": "hist", ...}`` with TensorBoard's own reading of its
  buckets: empty buckets at both ends dropped, the first bucket starting at ``min`` and the last
  ending at ``max`` (its outer limits are +-DBL_MAX), so bins are ``edges[i]..edges[i+1]`` holding
  ``counts[i]``; ``lo``/``hi`` are ``min``/``max`` and ``n``, ``sum``, ``sumsq`` as written. The
  buckets are not of equal width, hence ``edges`` (``len(counts) + 1`` values);
- a "histograms" tensor of ``[k, 3]`` (left edge, right edge, count; TF2): the same record, from
  those edges;
- a "text" string tensor (``add_text``): ``{"k": "text", ...}``, its strings joined by newlines;
- "hparams" ``session_start_info`` (``add_hparams``): ``{"k": "config", "t": T, "config": {...}}``
  with the hyper-parameter values;
- anything else (images, audio, graphs, run metadata, other plugins, the hparams experiment and
  session end): counted as ``unsupported_summary`` (per value) or ``unsupported_event``, never an
  error. A record that is not a well-formed event is ``malformed_event``; a value that cannot be
  read as its kind (a "scalars" tensor of two values) is ``bad_value``. Non-finite floats in
  records are spelled as the JSONL writer spells them (``"NaN"``, ``"Infinity"``).

An event without a wall time (proto3 cannot tell 0.0 from none) or with a non-finite one takes
``now``. Tags are metric names unchanged; steps and times are float64 arrays; every point is kept.
A ``SessionLog.START`` before any record of its file (what ``purge_step`` writes at the head of a
new file) starts nothing here: purging across the files of a run is the store's to decide.

**Speed.** The usual backlog is a long run of one-scalar events (``add_scalar``). A chunk's records
are found with numpy: every offset whose bytes 1 to 7 are zero (the length of a record under 256
bytes) is a candidate, candidates' length CRCs are looked up together, and the chain of records
from offset 0 is checked in one pass; a Python step is taken only where it breaks (a longer
record, corruption, the end). Data CRCs are computed together for the few lengths most records
share, four bytes a step with two lookups. Records of exactly the scalar layout (``wall_time,
[step], summary{value{tag, simple_value}}``) are recognised and read in bulk with a few 8-byte
gathers per record; their tags are grouped without a Python string per record. Tensor scalars
(TF2, ``new_style``) are read in bulk too when their fields after the tag equal, byte for byte but
the value, a layout the first of them shows (``_tensor_scalar_at``) and their tag is known to be a
"scalars" one: from the chunks before, or, for a tag new in the chunk, once the other path has
read its first value. Every other record goes through the hand-written wire decoder
(``protowire``) one by one. A record too long or too rare for the table path has its CRC checked
by a C implementation where one is installed (google-crc32c or crc32c: SSE4.2), else in Python,
two bytes a step.
"""

from __future__ import annotations

import math
import os
import sys
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from tailboard.format import K_CONFIG, K_HIST, K_TEXT, KIND, encode_float, to_json_value

from ..ingest import Parsed
from . import protowire as pw

__all__ = ["MAX_RECORD_BYTES", "TfEventsReader", "TfEventsState", "masked_crc32c"]

#: Records announcing more data than this are skipped (``too_large``) by resynchronising. At most
#: 2**24 - 1: candidate lengths are found as offsets whose bytes 3 to 7 are zero.
MAX_RECORD_BYTES = (1 << 24) - 1
FILE_PREFIX = "events.out.tfevents."
_HEAD = 12  # length and its CRC
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


def _views(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
class _Frames:
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
    if n < _HEAD:
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


def _frame(arr: np.ndarray, *, final: bool) -> _Frames:
    """Where the records of ``arr`` (which starts at a record boundary) are. ``final``: nothing
    follows ``arr`` (decode), so a corrupt stretch runs to its end; else (complete) the last 11
    bytes, which may be the start of a header, are held.

    The chain of records is checked in bulk among the headers of records under 256 bytes (nearly
    all, and few false candidates); a longer record is checked where the chain reaches it; the
    headers of any length are searched only to resynchronise after a corrupt one."""
    n = arr.shape[0]
    u64, u32 = _views(arr)
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
        if target > n - _HEAD:  # the end, or a torn header
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
        end = n if final else n - _HEAD + 1
        if end - target >= _HEAD or final:
            gaps.append((target, end, reason))
        else:
            end = target
        break
    if not final and gaps and gaps[-1][1] == end and end - gaps[-1][0] < _HEAD:
        # decode is given only the bytes up to ``end``: a stretch shorter than a header would look
        # like a torn one there, so it waits until the record after it is complete
        end = gaps.pop()[0]
    if len(parts) == 1:
        starts, lens = parts[0]
    elif parts:
        starts, lens = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    else:
        starts = lens = np.zeros(0, np.int64)
    return _Frames(starts.astype(np.int64), lens.astype(np.int64), end, gaps, torn)


def _data_crc_ok(buf: memoryview, arr: np.ndarray, u32: np.ndarray, ds: np.ndarray, dl: np.ndarray) -> np.ndarray:
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


# ---- the scalar layout, in bulk --------------------------------------------------------------------

_HIGH_BITS = np.uint64(0x0080808080808080)  # 7 bytes
_LOW_7S = np.uint64(0x7F7F7F7F7F7F7F7F)


@dataclass
class _Layout:
    """Records of the layout ``Event{wall_time, [step], summary{value{tag, ...}}}`` with one-byte
    lengths and a step below 2**49, as add_scalar writes them (``_events_layout``)."""

    index: np.ndarray  # into the chunk's records
    walls: np.ndarray
    steps: np.ndarray
    tag_at: np.ndarray
    tag_len: np.ndarray
    after_at: np.ndarray  # the value's fields after its tag
    after_len: np.ndarray
    after_head: np.ndarray  # their first 8 bytes (as uint64): a simple_value's key and its 4 bytes


def _events_layout(arr: np.ndarray, u64: np.ndarray, ds: np.ndarray, dl: np.ndarray) -> _Layout:
    """The records of ``ds``/``dl`` in the layout of ``_Layout``, read with a few 8-byte gathers
    per record."""
    top = u64.shape[0] - 1
    ok = (dl >= 20) & (dl <= 160) & (arr[np.minimum(ds, arr.shape[0] - 1)] == 0x09)
    g = u64[np.minimum(ds + 9, top)]  # the step's key, then up to 7 bytes of varint
    has_step = (g & np.uint64(0xFF)) == 0x10
    w = g >> np.uint64(8)
    stop = ~w & _HIGH_BITS  # the high bit of each byte that ends the varint
    ok &= (stop != 0) | ~has_step
    stop[stop == 0] = np.uint64(0x80)
    low = stop & (~stop + np.uint64(1))  # the first one
    size = ((np.log2(low.astype(np.float64)).astype(np.int64) - 7) >> 3) + 1
    w &= ((low << np.uint64(1)) - np.uint64(1)) & _LOW_7S
    step = w & np.uint64(0x7F)
    for b in range(1, 7):
        step |= (w >> np.uint64(b)) & np.uint64(0x7F << (7 * b))
    q = ds + 9 + np.where(has_step, 1 + size, 0)  # the summary's key
    h = u64[np.minimum(q, top)]  # summary key and length, value key and length, tag key and length

    def byte(k: int) -> np.ndarray:
        out: np.ndarray = ((h >> np.uint64(8 * k)) & np.uint64(0xFF)).astype(np.int64)
        return out

    s_len, v_len, t_len = byte(1), byte(3), byte(5)
    ok &= (byte(0) == 0x2A) & (byte(2) == 0x0A) & (byte(4) == 0x0A) & (s_len < 128)
    ok &= (v_len == s_len - 2) & (t_len <= v_len - 7) & (q + 4 + v_len == ds + dl)
    sel = np.flatnonzero(ok)
    qs, ts = q[sel], t_len[sel]
    after_at = qs + 6 + ts
    return _Layout(
        index=sel,
        walls=u64[ds[sel] + 1].view(np.float64).astype(np.float64),
        steps=np.where(has_step[sel], step[sel], np.uint64(0)).astype(np.float64),
        tag_at=qs + 6,
        tag_len=ts,
        after_at=after_at,
        after_len=v_len[sel] - 2 - ts,
        after_head=u64[after_at],  # at least 5 bytes of value and the 4 of the data CRC follow
    )


def _tensor_scalar_at(fields: bytes) -> tuple[int, str] | None:
    """Where the value is in a summary value's fields after its tag, when they are a tensor of one
    float (float_val or tensor_content) or double (double_val or tensor_content) with no shape,
    and maybe a node name and metadata: (offset, dtype). None for anything else."""
    found: tuple[int, str] | None = None
    pos = 0
    while pos < len(fields):
        if pos + 1 >= len(fields) or fields[pos + 1] >= 128 or pos + 2 + fields[pos + 1] > len(fields):
            return None
        key, size = fields[pos], fields[pos + 1]
        if key == 0x42 and found is None:  # tensor
            found = _tensor_value_at(fields, pos + 2, pos + 2 + size)
            if found is None:
                return None
        elif key not in (0x3A, 0x4A):  # node_name and metadata: the plugin is the tag's first
            return None
        pos += 2 + size
    return found


def _tensor_value_at(t: bytes, a: int, b: int) -> tuple[int, str] | None:
    dtype, value = None, None
    while a < b:
        if a + 1 >= b or t[a + 1] >= 128:
            return None
        key = t[a]
        if key == 0x08 and dtype is None:  # dtype
            dtype, a = t[a + 1], a + 2
        elif key == 0x12 and t[a + 1] == 0:  # an empty shape: a scalar
            a += 2
        elif key in (0x22, 0x2A, 0x32) and value is None:  # tensor_content, float_val, double_val
            value, a = (key, a + 2, t[a + 1]), a + 2 + t[a + 1]
        else:
            return None
    if a != b or value is None:
        return None
    key, at, size = value
    if dtype == _DT_FLOAT and size == 4 and key in (0x22, 0x2A):
        return at, "<f4"
    if dtype == _DT_DOUBLE and size == 8 and key in (0x22, 0x32):
        return at, "<f8"
    return None


#: Layouts of tensor scalars looked for in one chunk (one per writer and dtype, usually).
_TENSOR_LAYOUTS = 8


def _tensor_values(arr: np.ndarray, at: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For value fields at ``at`` (``length`` bytes each): which are a tensor scalar in a layout
    the first of them shows (``_tensor_scalar_at``), equal to it byte for byte but for the value,
    and those values."""
    m = at.shape[0]
    ok = np.zeros(m, dtype=bool)
    values = np.zeros(m, dtype=np.float64)
    pending = np.arange(m)
    for _ in range(_TENSOR_LAYOUTS):
        if not pending.shape[0]:
            break
        first = int(pending[0])
        size = int(length[first])
        template = arr[at[first] : at[first] + size]
        where = _tensor_scalar_at(template.tobytes())
        group = pending[length[pending] == size]
        rows = arr[at[group][:, None] + np.arange(size)]
        same = rows == template
        if where is not None:
            off, dtype = where
            width = 4 if dtype == "<f4" else 8
            same[:, off : off + width] = True
        match = same.all(axis=1)
        if where is not None:
            off, dtype = where
            width = 4 if dtype == "<f4" else 8
            ok[group[match]] = True
            values[group[match]] = np.ascontiguousarray(rows[match, off : off + width]).view(dtype).ravel()
        pending = np.setdiff1d(pending, group[match], assume_unique=True)
    return ok, values


_MIX = np.uint64(0x9E3779B97F4A7C15)
_FEW_TAGS = 32
_TAG_SAMPLE = 256


def _group_tags(u64: np.ndarray, start: np.ndarray, length: np.ndarray) -> tuple[list[bytes], np.ndarray]:
    """The distinct tags among the byte strings at ``start`` of ``length`` bytes (each followed by
    at least 7 more bytes), and each one's index into them. Exact: hashes only find candidates,
    which are then compared word for word."""
    m = start.shape[0]
    ids = np.empty(m, dtype=np.int64)
    names: list[bytes] = []
    sizes = np.unique(length)
    for size in sizes.tolist():
        idx = np.arange(m) if sizes.shape[0] == 1 else np.flatnonzero(length == size)
        at = start[idx]
        width = max(1, (size + 7) // 8)
        words = np.empty((idx.shape[0], width), dtype=np.uint64)
        for j in range(width):
            words[:, j] = u64[at + 8 * j]
        tail = size - 8 * (width - 1)  # bytes of the tag in the last word
        if tail < 8:
            words[:, -1] &= np.uint64((1 << (8 * tail)) - 1)
        h = words[:, 0].copy()
        for j in range(1, width):
            h = h * _MIX ^ words[:, j]
        # the tags of a chunk are nearly always among those of its first records: look them up
        keys, first = np.unique(h[:_TAG_SAMPLE], return_index=True)
        inverse = np.minimum(np.searchsorted(keys, h), keys.shape[0] - 1)
        if not (keys[inverse] == h).all():
            _, first, inverse = np.unique(h, return_index=True, return_inverse=True)
        if width > 1 and not (words == words[first[inverse]]).all():  # a hash collision
            _, first, inverse = np.unique(words, axis=0, return_index=True, return_inverse=True)
            inverse = inverse.ravel()
        ids[idx] = inverse + len(names)
        names.extend(words[f].astype("<u8").tobytes()[:size] for f in first.tolist())
    return names, ids


# ---- everything else, one event at a time ------------------------------------------------------------

_DT_FLOAT, _DT_DOUBLE, _DT_INT32, _DT_STRING, _DT_INT64, _DT_BFLOAT16, _DT_HALF = 1, 2, 3, 7, 9, 14, 19
_CONTENT_DTYPES = {_DT_FLOAT: "<f4", _DT_DOUBLE: "<f8", _DT_INT32: "<i4", _DT_INT64: "<i8", _DT_HALF: "<f2",
                   _DT_BFLOAT16: "<u2"}
_SESSION_START = 1
_MAX_NESTING = 32  # of hparams values (structs and lists)
_MAX_TENSOR_VALUES = 1 << 20  # a shape that asks for more is not a scalar or a histogram


def _text(b: pw.Value) -> str:
    return b.decode("utf-8", "replace") if type(b) is bytes else ""


def _last(f: dict[int, list[pw.Value]], number: int) -> pw.Value | None:
    got = f.get(number)
    return got[-1] if got else None


def _message(f: dict[int, list[pw.Value]], number: int) -> dict[int, list[pw.Value]]:
    """A nested message field (read as empty when absent)."""
    got = _last(f, number)
    if got is None:
        return {}
    if type(got) is not bytes:
        raise pw.WireError(f"field {number} must be a message")
    return pw.fields(got)


def _tensor_numbers(t: dict[int, list[pw.Value]]) -> tuple[int, np.ndarray]:
    """A numeric TensorProto's dtype and values as float64, shaped; ``ValueError`` for others."""
    dtype = _last(t, 1) or 0
    dims = [pw.as_sint64(_last(pw.fields(d), 1) or 0) for d in _message(t, 2).get(2, []) if type(d) is bytes]
    count = math.prod(dims)
    content = _last(t, 4)
    if dtype not in _CONTENT_DTYPES:
        raise ValueError(f"dtype {dtype!r}")
    if count > _MAX_TENSOR_VALUES:
        raise ValueError(f"a tensor of shape {dims}")
    if type(content) is bytes and content:
        if len(content) % int(_CONTENT_DTYPES[dtype][-1]):
            raise ValueError("tensor_content holds a partial value")
        raw = np.frombuffer(content, dtype=_CONTENT_DTYPES[dtype])
        values = ((raw.astype(np.uint32) << 16).view(np.float32) if dtype == _DT_BFLOAT16 else raw).astype(np.float64)
    elif dtype == _DT_FLOAT:
        values = pw.packed_floats(t.get(5, []))
    elif dtype == _DT_DOUBLE:
        values = pw.packed_doubles(t.get(6, []))
    elif dtype in (_DT_INT32, _DT_INT64):
        values = np.array([pw.as_sint64(x) for x in pw.packed_varints(t.get(7 if dtype == _DT_INT32 else 10, []))],
                          dtype=np.float64)
    else:  # half and bfloat16: the 16 bits in an int32
        bits = np.array(pw.packed_varints(t.get(13, [])), dtype=np.uint64).astype(np.uint16)
        values = ((bits.astype(np.uint32) << 16).view(np.float32) if dtype == _DT_BFLOAT16
                  else bits.view(np.float16)).astype(np.float64)
    if values.shape[0] < count:  # TensorFlow's short form: the last value repeats (none: zeros)
        fill = values[-1] if values.shape[0] else 0.0
        values = np.concatenate((values, np.full(count - values.shape[0], fill)))
    if values.shape[0] != count:
        raise ValueError(f"{values.shape[0]} values for shape {dims}")
    return dtype, values.reshape(dims) if dims else values


def _pb_value(b: pw.Value, depth: int = 0) -> Any:
    """A ``google.protobuf.Value`` as the JSON value it stands for."""
    if depth > _MAX_NESTING or type(b) is not bytes:
        raise pw.WireError("an hparams value nested too deeply, or not a message")
    f = pw.fields(b)
    if 2 in f:
        return pw.as_double(f[2][-1])
    if 3 in f:
        return _text(f[3][-1])
    if 4 in f:
        return bool(f[4][-1])
    if 5 in f:
        return _pb_map(_message(f, 5).get(1, []), depth + 1)
    if 6 in f:
        return [_pb_value(x, depth + 1) for x in _message(f, 6).get(1, [])]
    return None


def _pb_map(entries: list[pw.Value], depth: int) -> dict[str, Any]:
    out = {}
    for entry in entries:
        e = pw.fields(entry) if type(entry) is bytes else {}
        out[_text(_last(e, 1) or b"")] = _pb_value(_last(e, 2) or b"", depth)
    return out


def _json_floats(x: np.ndarray) -> list[Any]:
    """Floats as a JSON list, non-finite ones spelled out (checked for the whole array at once)."""
    out: list[Any] = x.tolist()
    return out if np.isfinite(x).all() else [encode_float(v) for v in out]


def _hist_record(step: int, t: float, name: str, lo: float, hi: float, counts: np.ndarray, edges: np.ndarray,
                 extra: dict[str, float]) -> dict[str, Any]:
    whole = bool(np.all(np.abs(counts) < 2.0**53) and np.all(counts == np.floor(counts)))
    rec = {KIND: K_HIST, "step": step, "t": t, "name": name, "lo": encode_float(lo), "hi": encode_float(hi),
           "counts": counts.astype(np.int64).tolist() if whole else _json_floats(counts),
           "edges": _json_floats(edges)}
    rec.update({k: encode_float(v) for k, v in extra.items()})
    return rec


class _Events:
    """What the events of one chunk that are not in the bulk scalar layout hold, in record order."""

    def __init__(self, parsed: Parsed, plugins: dict[str, str], now: float) -> None:
        self.parsed = parsed
        self.plugins = plugins
        self.now = now
        self.points: dict[str, tuple[list[int], list[float], list[float], list[float]]] = {}
        self.others: list[tuple[int, dict[str, Any]]] = []
        self.restarts: list[int] = []  # records holding SessionLog.START
        self.kept: list[int] = []  # records that gave points, histograms or texts
        self.last: tuple[int, float, float] | None = None  # (record, step, time) of the last of them
        self.last_config: tuple[int, float] | None = None  # (record, time)
        self.configs = 0  # hparams records
        self.file_version: str | None = None

    def event(self, i: int, data: bytes) -> None:
        skip = self.parsed.skip
        try:
            f = pw.fields(data)
            wall_v, step_v = _last(f, 1), _last(f, 2)
            wall = pw.as_double(wall_v) if wall_v is not None else 0.0
            step = pw.as_sint64(step_v) if step_v is not None else 0
            if wall == 0.0 or not math.isfinite(wall):
                wall = self.now
            if 5 in f:
                values = [v for s in f[5] for v in (pw.fields(s).get(1, []) if type(s) is bytes else [])]
                kept = False
                for value in values:
                    try:
                        kept = self._value(i, step, wall, value) or kept
                    except (ValueError, TypeError):  # this value only: the event's others are read
                        skip("malformed_event")
                if kept:
                    self.kept.append(i)
                    self.last = (i, float(step), wall)
            elif 3 in f:
                self.file_version = _text(f[3][-1])
            elif 7 in f and _last(_message(f, 7), 1) == _SESSION_START:
                self.restarts.append(i)
            else:
                skip("unsupported_event")
        except (ValueError, TypeError):  # WireError, or a value of the wrong wire type
            skip("malformed_event")

    def _value(self, i: int, step: int, wall: float, raw: pw.Value) -> bool:
        """One summary value; whether it gave a point, a histogram or a text."""
        skip = self.parsed.skip
        if type(raw) is not bytes:
            raise pw.WireError("a summary value must be a message")
        v = pw.fields(raw)
        tag = _text(_last(v, 1) or b"")
        meta = _message(v, 9)
        plugin_data = _message(meta, 1)
        plugin = self.plugins.get(tag)
        if plugin is None:  # a tag's first plugin holds for good, as in TensorBoard
            plugin = _text(_last(plugin_data, 1) or b"")
            if plugin:
                self.plugins[tag] = plugin
        if 2 in v:
            self._point(tag, i, step, pw.as_float(v[2][-1]), wall)
            return True
        if 5 in v:
            h = _message(v, 5)
            mn, mx, num, total, squares = (pw.as_double(_last(h, k) or bytes(8)) for k in (1, 2, 3, 4, 5))
            limits, counts = pw.packed_doubles(h.get(6, [])), pw.packed_doubles(h.get(7, []))
            if limits.shape != counts.shape:
                skip("bad_value")
                return False
            full = np.flatnonzero(counts > 0)
            if full.shape[0]:  # TensorBoard's reading: outer empty buckets dropped, min and max as the ends
                a, b = int(full[0]), int(full[-1])
                counts, edges = counts[a : b + 1], np.concatenate(([mn], limits[a:b], [mx]))
            else:
                counts, edges = counts[:0], counts[:0]
            extra = {"n": num, "sum": total, "sumsq": squares, "min": mn, "max": mx}
            self.others.append((i, _hist_record(step, wall, tag, mn, mx, counts, edges, extra)))
            return True
        if plugin == "hparams":
            content = _last(plugin_data, 2)
            hparams = pw.fields(content) if type(content) is bytes else {}
            if 3 not in hparams:  # the experiment or the session's end
                skip("unsupported_summary")
                return False
            config = _pb_map(_message(hparams, 3).get(1, []), 0)  # session_start_info.hparams
            self.others.append((i, {KIND: K_CONFIG, "t": wall, "config": to_json_value(config)}))
            self.last_config = (i, wall)
            self.configs += 1
            return False
        if 8 in v and plugin in ("scalars", "histograms", "text"):
            t = _message(v, 8)
            try:
                if plugin == "text":
                    if (_last(t, 1) or 0) != _DT_STRING:
                        raise ValueError("text must be a string tensor")
                    text = "\n".join(_text(s) for s in t.get(8, []))
                    self.others.append((i, {KIND: K_TEXT, "step": step, "t": wall, "name": tag, "text": text}))
                    return True
                _, values = _tensor_numbers(t)
                if plugin == "scalars":
                    if values.size != 1:
                        raise ValueError("a scalar holds one value")
                    self._point(tag, i, step, float(values.ravel()[0]), wall)
                    return True
                if values.ndim != 2 or values.shape[1] != 3:
                    raise ValueError("a histogram tensor is [k, 3]")
                left, right, counts = values[:, 0], values[:, 1], values[:, 2]
                lo = float(left[0]) if left.shape[0] else 0.0
                hi = float(right[-1]) if left.shape[0] else 0.0
                edges = np.append(left, hi) if left.shape[0] else left
                extra = {"n": float(counts.sum()), "min": lo, "max": hi}
                self.others.append((i, _hist_record(step, wall, tag, lo, hi, counts, edges, extra)))
                return True
            except ValueError:
                skip("bad_value")
                return False
        skip("unsupported_summary")
        return False

    def _point(self, tag: str, i: int, step: int, value: float, wall: float) -> None:
        col = self.points.get(tag)
        if col is None:
            col = self.points[tag] = ([], [], [], [])
        col[0].append(i)
        col[1].append(float(step))
        col[2].append(value)
        col[3].append(wall)


# ---- the reader --------------------------------------------------------------------------------------


@dataclass
class TfEventsState:
    """What one chunk of an event file leaves for the next (small and picklable)."""

    started: bool = False  # the current attempt holds points, histograms or texts
    last_step: float | None = None
    in_gap: bool = False  # the last chunk ended inside a corrupt stretch (counted already)
    file_version: str | None = None
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin, as first written


class TfEventsReader:
    """Reads TensorBoard event files; see the module docstring.

    ``complete`` remembers where the records of the buffer it framed last are, so that ``decode``
    of the bytes it said were complete (as a tail calls them, one after the other) does not frame
    them again. The bytes are compared, not trusted: any other call frames its data itself, so
    one reader may serve several streams and threads."""

    name = "tfevents"

    def __init__(self) -> None:
        self._framed: tuple[bytes, _Frames] | None = None

    def claims(self, filename: str, head: bytes) -> float:
        if os.path.basename(filename).startswith(FILE_PREFIX):
            return 1.0
        if len(head) < _HEAD:
            return 0.0
        length = int.from_bytes(head[:8], "little")
        if length > MAX_RECORD_BYTES or masked_crc32c(head[:8]) != int.from_bytes(head[8:12], "little"):
            return 0.0
        end = _HEAD + length
        if len(head) >= end + 4 and masked_crc32c(head[_HEAD:end]) == int.from_bytes(head[end : end + 4], "little"):
            return 0.95
        return 0.9

    def complete(self, buf: bytes) -> int:
        frames = _frame(np.frombuffer(buf, dtype=np.uint8), final=False)
        self._framed = (buf, frames) if type(buf) is bytes else None
        return frames.end

    def _framing(self, data: bytes, arr: np.ndarray) -> _Frames:
        """The records of ``data``: as ``complete`` found them when ``data`` is the complete part
        of the buffer it framed last (the same records, corrupt stretches and end: a stretch is
        complete only when ``data`` shows it as one), else framed here."""
        framed = self._framed
        if framed is not None and type(data) is bytes and framed[1].end == len(data) and framed[0].startswith(data):
            return framed[1]
        return _frame(arr, final=True)

    def new_state(self) -> TfEventsState:
        return TfEventsState()

    def decode(self, data: bytes, state: TfEventsState, *, now: float) -> tuple[Parsed, TfEventsState]:
        if not isinstance(state, TfEventsState):
            raise TypeError(f"decode needs the state new_state() or decode() returned, not {type(state).__name__}")
        parsed = Parsed()
        buf = memoryview(data).cast("B")
        arr = np.frombuffer(buf, dtype=np.uint8)
        frames = self._framing(data, arr)
        for start, _, reason in frames.gaps:
            if not (start == 0 and state.in_gap):  # else counted with the chunk before
                parsed.skip(reason)
        if frames.torn:
            parsed.skip("truncated")
        u64, u32 = _views(arr)
        ds, dl = frames.starts + _HEAD, frames.lengths
        good = _data_crc_ok(buf, arr, u32, ds, dl)
        if not good.all():
            parsed.skip("bad_crc", int((~good).sum()))
            ds, dl = ds[good], dl[good]
        bulk = _Bulk(arr, u64, ds, dl, state.plugins)
        events = _Events(parsed, dict(state.plugins), now)
        rest = np.ones(ds.shape[0], dtype=bool)
        rest[bulk.taken()] = False
        deferred, plugins = bulk.deferred, events.plugins
        for i, s, k in zip(np.flatnonzero(rest).tolist(), ds[rest].tolist(), dl[rest].tolist()):
            later = deferred.get(i) if deferred else None
            if later is not None and plugins.get(later[0]) == "scalars":
                bulk.take(later[1])
                continue
            events.event(i, bytes(buf[s : s + k]))
        bulk.finish(now)
        _assemble(parsed, state, bulk, events)
        in_gap = bool(frames.gaps) and frames.gaps[-1][1] == arr.shape[0]
        new_state = replace(state, started=parsed.started, last_step=parsed.last_step, in_gap=in_gap,
                            file_version=events.file_version or state.file_version, plugins=events.plugins)
        return parsed, new_state


Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # record index, steps, values, times


class _Bulk:
    """The records of a chunk read together: simple_value scalars, and tensor scalars of tags whose
    plugin is "scalars". A tag's plugin is its first (as in TensorBoard), so when the chunks before
    made it "scalars", no record of this chunk can change it and its tensor scalars are taken
    here. A tag not seen yet is *deferred*: the other path goes through the chunk in order and
    takes such a record here (``take``) once its tag turned out to be "scalars"."""

    def __init__(self, arr: np.ndarray, u64: np.ndarray, ds: np.ndarray, dl: np.ndarray,
                 plugins: dict[str, str]) -> None:
        lay = self.layout = _events_layout(arr, u64, ds, dl)
        head = lay.after_head
        self.accept = (lay.after_len == 5) & ((head & np.uint64(0xFF)) == 0x15)  # simple_value
        self.values = ((head >> np.uint64(8)) & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.float32)
        self.values = self.values.astype(np.float64)
        self.names, self.ids = _group_tags(u64, lay.tag_at, lay.tag_len)
        self.deferred: dict[int, tuple[str, int]] = {}  # record -> (its tag, its place in the layout)
        tensors = np.flatnonzero(~self.accept & (lay.after_len >= 8) & ((head & np.uint64(0xFF)) == 0x42))
        if not tensors.shape[0]:
            return
        tags = [n.decode("utf-8", "replace") for n in self.names]
        known = np.array([plugins.get(t) == "scalars" for t in tags], dtype=bool)
        unknown = np.array([t not in plugins for t in tags], dtype=bool)
        tensors = tensors[known[self.ids[tensors]] | unknown[self.ids[tensors]]]
        got, values = _tensor_values(arr, lay.after_at[tensors], lay.after_len[tensors])
        tensors, values = tensors[got], values[got]
        self.values[tensors] = values
        now_known = known[self.ids[tensors]]
        self.accept[tensors[now_known]] = True
        later = tensors[~now_known]
        self.deferred = dict(zip(lay.index[later].tolist(),
                                 zip([tags[k] for k in self.ids[later].tolist()], later.tolist())))

    def taken(self) -> np.ndarray:
        """The records taken here so far (those the other path need not read, but the deferred)."""
        out: np.ndarray = self.layout.index[self.accept]
        return out

    def take(self, at: int) -> None:
        self.accept[at] = True

    def finish(self, now: float) -> None:
        keep = np.flatnonzero(self.accept)
        lay = self.layout
        self.index, self.steps, self.values = lay.index[keep], lay.steps[keep], self.values[keep]
        self.walls = lay.walls[keep]
        no_time = ~np.isfinite(self.walls) | (self.walls == 0.0)  # as the other path reads them
        if no_time.any():
            self.walls[no_time] = now
        ids = self.ids[keep]
        used = np.zeros(len(self.names), dtype=bool)
        used[ids] = True
        if not used.all():  # tags of records left to the other path
            self.names = [n for n, u in zip(self.names, used.tolist()) if u]
            ids = (np.cumsum(used) - 1)[ids]
        self.ids = ids

    def columns(self) -> dict[str, Columns]:
        """Per tag: the records' indices, steps, values and times, in record order."""
        names, ids = self.names, self.ids
        out: dict[str, Columns] = {}
        if len(names) > _FEW_TAGS:  # else a pass per tag is cheaper than sorting
            order = np.argsort(ids, kind="stable")
            edges = np.searchsorted(ids[order], np.arange(len(names) + 1))
        for k, name in enumerate(names):
            if len(names) == 1:
                sel = np.arange(ids.shape[0])
            elif len(names) <= _FEW_TAGS:
                sel = np.flatnonzero(ids == k)
            else:
                sel = order[edges[k] : edges[k + 1]]
            out[name.decode("utf-8", "replace")] = (self.index[sel], self.steps[sel], self.values[sel], self.walls[sel])
        return out


def _attempts(state: TfEventsState, kept: np.ndarray, restarts: list[int]) -> tuple[list[int], bool]:
    """The restarts that start a new segment (those after records of the current attempt), and
    whether the last attempt holds records. ``kept``: the sorted indices of records that gave
    points, histograms or texts."""
    bounds: list[int] = []
    started, since = state.started, -1
    for r in restarts:
        if started or np.searchsorted(kept, r) > np.searchsorted(kept, since, side="right"):
            bounds.append(r)
            started, since = False, r
    if bounds:
        return bounds, bool(kept.shape[0] and kept[-1] > bounds[-1])
    return bounds, state.started or bool(kept.shape[0])


def _assemble(parsed: Parsed, state: TfEventsState, bulk: _Bulk, events: _Events) -> None:
    """Points of both paths per tag in record order, cut into segments at restarts; the counts."""
    if events.restarts:
        bounds, parsed.started = _attempts(state, np.union1d(bulk.index, events.kept), events.restarts)
    else:  # the usual chunk: one segment
        bounds, parsed.started = [], state.started or bool(bulk.index.shape[0] or events.kept)
    cuts = np.asarray(bounds, np.int64)
    parsed.segments = [{} for _ in range(len(bounds) + 1)]
    columns = bulk.columns()
    for tag, lists in events.points.items():
        more = (np.asarray(lists[0], np.int64), np.asarray(lists[1], np.float64),
                np.asarray(lists[2], np.float64), np.asarray(lists[3], np.float64))
        if tag in columns:  # the same tag in both paths: back into record order
            both = [np.concatenate(pair) for pair in zip(columns[tag], more)]
            order = np.argsort(both[0], kind="stable")
            columns[tag] = (both[0][order], both[1][order], both[2][order], both[3][order])
        else:
            columns[tag] = more
    for tag, (i, s, v, t) in columns.items():
        if not bounds:
            parsed.segments[0][tag] = (s, v, t)
            continue
        seg = np.searchsorted(cuts, i, side="right")
        for k in np.unique(seg).tolist():
            m = seg == k
            parsed.segments[k][tag] = (s[m], v[m], t[m])
    parsed.others = [(int(np.searchsorted(cuts, i, side="right")), rec) for i, rec in events.others]
    parsed.records = int(bulk.index.shape[0]) + len(events.kept) + events.configs
    last = events.last
    if bulk.index.shape[0] and (last is None or int(bulk.index[-1]) > last[0]):
        last = (int(bulk.index[-1]), float(bulk.steps[-1]), float(bulk.walls[-1]))
    parsed.last_step = last[1] if last is not None else state.last_step
    parsed.last_time = last[2] if last is not None else None
    if events.last_config is not None and (last is None or events.last_config[0] > last[0]):
        parsed.last_time = events.last_config[1]
