"""TensorBoard's scalar events read in bulk: a chunk's records of the ``add_scalar`` layout at once.

The usual backlog is a long run of one-scalar events. Records of exactly the scalar layout
(``wall_time, [step], summary{value{tag, simple_value}}``) are recognised and read in bulk with a
few 8-byte gathers per record; their tags are grouped without a Python string per record. Tensor
scalars (TF2, ``new_style``) are read in bulk too when their fields after the tag equal, byte for
byte but the value, a layout the first of them shows (``_tensor_scalar_at``) and their tag is known
to be a "scalars" one: from the chunks before, or, for a tag new in the chunk, once the other path
(``tfsummaries``) has read its first value. Every other record is left to that path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tfsummaries import DT_DOUBLE, DT_FLOAT

__all__ = ["Columns", "ScalarBulk"]

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
    if dtype == DT_FLOAT and size == 4 and key in (0x22, 0x2A):
        return at, "<f4"
    if dtype == DT_DOUBLE and size == 8 and key in (0x22, 0x32):
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


Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # record index, steps, values, times


class ScalarBulk:
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
