"""Columnar scalar series and the M4 downsample.

A series holds values and wall times as float64 and steps as int32 offsets from the first step where
they read back exactly (else float64): 20 bytes a point once compacted (``ColumnarSeries.compact``),
plus the unused tail of the last growth before that. ``downsample_m4`` keeps, per step bucket, the first, min, max and last
point: drawn as a line it is the same picture as all the points, and spikes never vanish.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Series", "ColumnarSeries", "downsample_m4", "concat"]

_EMPTY = np.empty(0, dtype=np.float64)


@dataclass(frozen=True)
class Series:
    """A query result: plain arrays, never views of the store's buffers."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray
    downsampled: bool = False
    total: int = 0
    # per bucket (start step, min, max) when downsampled
    envelope: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.steps.shape[0])


#: Points per group of the summary kept beside every series (see ``ColumnarSeries.downsample``).
GROUP = 256
#: Ranges of at most this many points are downsampled from the raw points directly.
DIRECT_MAX = 1 << 16
_I32 = np.iinfo(np.int32)
#: The largest base of int32 step offsets: up to here, base + offset and ceil(x) - base are exact.
_BASE_MAX = 2.0**52


def _offsets(s: np.ndarray, base: float) -> np.ndarray | None:
    """Float64 steps as int32 offsets from ``base`` when those give back exactly the same bits
    (not for fractions, -0.0, NaN or steps out of range), else None."""
    with np.errstate(invalid="ignore"):  # NaN, inf and out-of-range offsets fail the check below
        offsets = (s - base).astype(np.int32)
    if not bool(((offsets + base).view(np.int64) == np.ascontiguousarray(s).view(np.int64)).all()):
        return None
    return offsets


class ColumnarSeries:
    """Append-only steps/values/times of one metric in one attempt, compact, with a summary.

    Memory: values and wall times are float64 (lossless); steps are stored as int32 offsets from
    the first step while they are whole numbers within 2**31 of it and the first is a whole number
    within 2**52 of zero (the usual case), else as float64; either way they read back bit for bit
    as given. So a point costs 20 bytes, plus the growth slack (at most a quarter) until
    :meth:`compact` trims it. Each full group of ``GROUP`` points keeps its min, max and first NaN,
    so a downsample of millions of points reads a few thousand summaries and raw points at the
    bucket edges only, and still returns exactly what ``downsample_m4`` returns.
    """

    __slots__ = ("_steps", "_values", "_times", "_base", "_n", "version", "_sorted",
                 "_gmin", "_gmax", "_gmin_at", "_gmax_at", "_gnan_at", "_groups", "_pending", "_pending_n")

    def __init__(self) -> None:
        self._steps: np.ndarray = np.empty(64, dtype=np.int32)
        self._values = np.empty(64, dtype=np.float64)
        self._times = np.empty(64, dtype=np.float64)
        self._base: float | None = None
        self._n = 0
        self.version = 0
        self._sorted = True
        self._gmin = np.empty(0, dtype=np.float64)
        self._gmax = np.empty(0, dtype=np.float64)
        self._gmin_at = np.empty(0, dtype=np.uint8)
        self._gmax_at = np.empty(0, dtype=np.uint8)
        self._gnan_at = np.empty(0, dtype=np.int16)
        self._groups = 0
        # appended parts not merged yet: a catch-up appends many large parts, merged in one go
        self._pending: list[tuple[np.ndarray, Any, Any]] = []
        self._pending_n = 0

    @property
    def n(self) -> int:
        return self._n + self._pending_n

    @property
    def sorted(self) -> bool:
        self._flush()
        return self._sorted

    # -- writing ------------------------------------------------------------------------------

    def append(self, steps: Any, values: Any, times: Any) -> None:
        s = np.asarray(steps, dtype=np.float64)
        k = int(s.shape[0])
        if k == 0:
            return
        self._pending.append((s, values, times))
        self._pending_n += k
        self.version += 1
        if len(self._pending) >= 64:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        parts, self._pending, self._pending_n = self._pending, [], 0
        if len(parts) == 1:
            s, v, t = parts[0]
        else:
            s = np.concatenate([p[0] for p in parts])
            v = np.concatenate([np.asarray(p[1], np.float64) for p in parts])
            t = np.concatenate([np.asarray(p[2], np.float64) for p in parts])
        self._commit(s, v, t)

    def _commit(self, s: np.ndarray, values: Any, times: Any) -> None:
        k = int(s.shape[0])
        need = self._n + k
        if need > self._values.shape[0]:
            self._resize(max(need, int(self._values.shape[0] * 1.25) + 64))
        if self._sorted and (
            (self._n and s[0] < self._step_at(self._n - 1)) or (k > 1 and bool(np.any(s[1:] < s[:-1])))
        ):
            self._sorted = False
        if self._steps.dtype == np.int32:
            if self._base is None:
                first = float(s[0]) + 0.0  # -0.0 -> 0.0: a base gives back no sign of zero
                self._base = first if first.is_integer() and abs(first) <= _BASE_MAX else 0.0
            offsets = _offsets(s, self._base)
            if offsets is not None:
                self._steps[self._n : need] = offsets
            else:  # fractional, far-apart, huge, -0.0 or NaN steps: float64 from now on
                wide = np.empty(self._values.shape[0], dtype=np.float64)
                wide[: self._n] = self._steps[: self._n] + self._base
                self._steps = wide
                self._steps[self._n : need] = s
        else:
            self._steps[self._n : need] = s
        self._values[self._n : need] = values
        self._times[self._n : need] = times
        self._n = need
        self._summarise()

    def _resize(self, cap: int) -> None:
        for name in ("_steps", "_values", "_times"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def compact(self) -> None:
        """Give back the growth slack (after a catch-up, or for a series that stopped growing)."""
        self._flush()
        if self._values.shape[0] != self._n:
            self._resize(self._n)

    def _summarise(self) -> None:
        full = self._n // GROUP
        if full <= self._groups:
            return
        g0 = self._groups
        v = self._values[g0 * GROUP : full * GROUP].reshape(full - g0, GROUP)
        isnan = np.isnan(v)
        low = np.where(isnan, np.inf, v)
        high = np.where(isnan, -np.inf, v)
        gmin, gmax = low.min(axis=1), high.max(axis=1)
        # the first point holding the extreme, never a NaN (an infinity ties with the NaN stand-ins)
        min_at = np.argmax((low == gmin[:, None]) & ~isnan, axis=1)
        max_at = np.argmax((high == gmax[:, None]) & ~isnan, axis=1)
        # an all-NaN group has no min or max: NaN marks it (and min_at/max_at are 0)
        allnan = isnan.all(axis=1)
        gmin[allnan] = np.nan
        gmax[allnan] = np.nan
        nan_at = np.where(isnan.any(axis=1), np.argmax(isnan, axis=1), -1)
        self._gmin = np.concatenate((self._gmin, gmin))
        self._gmax = np.concatenate((self._gmax, gmax))
        self._gmin_at = np.concatenate((self._gmin_at, min_at.astype(np.uint8)))
        self._gmax_at = np.concatenate((self._gmax_at, max_at.astype(np.uint8)))
        self._gnan_at = np.concatenate((self._gnan_at, nan_at.astype(np.int16)))
        self._groups = full

    # -- reading ------------------------------------------------------------------------------

    def _wide(self, index: Any) -> np.ndarray:
        """Stored steps at ``index`` (a slice or indices) as float64 step values."""
        raw: np.ndarray = self._steps[index]
        return raw + (self._base or 0.0) if raw.dtype == np.int32 else raw

    def _step_at(self, i: int) -> float:
        return float(self._wide(slice(i, i + 1))[0])

    @property
    def steps(self) -> np.ndarray:
        self._flush()
        return self._wide(slice(0, self._n))

    @property
    def values(self) -> np.ndarray:
        self._flush()
        return self._values[: self._n]

    @property
    def times(self) -> np.ndarray:
        self._flush()
        return self._times[: self._n]

    def nbytes(self) -> int:
        self._flush()
        return int(self._steps.nbytes + self._values.nbytes + self._times.nbytes + self._gmin.nbytes
                   + self._gmax.nbytes + self._gmin_at.nbytes + self._gmax_at.nbytes + self._gnan_at.nbytes)

    def _index(self, x: float, side: str) -> int:
        """searchsorted on the stored steps without widening them."""
        return int(self._indices(np.asarray([x], dtype=np.float64), side)[0])

    def _indices(self, xs: np.ndarray, side: str = "left") -> np.ndarray:
        raw = self._steps[: self._n]
        if raw.dtype != np.int32:
            return np.searchsorted(raw, xs, side=side)  # type: ignore[call-overload,no-any-return]
        # whole-number steps: "first >= x" is "first >= ceil(x)", "first > x" is "first > floor(x)"
        y = (np.ceil(xs) if side == "left" else np.floor(xs)) - (self._base or 0.0)
        out = np.searchsorted(raw, np.clip(np.nan_to_num(y), _I32.min, _I32.max).astype(np.int32), side=side)  # type: ignore[call-overload]
        out[y > _I32.max] = self._n
        out[y < _I32.min] = 0
        out[np.isnan(y)] = self._n  # where searchsorted puts NaN in float64 steps
        return out  # type: ignore[no-any-return]

    def downsample(self, points: int, *, start: float | None = None, end: float | None = None) -> Series:
        """``downsample_m4`` of this (step-sorted) series, the same result, from the summary."""
        if points < 4:
            raise ValueError("points must be at least 4")
        self._flush()
        lo = 0 if start is None else self._index(start, "left")
        hi = self._n if end is None else self._index(end, "right")
        total = hi - lo
        # the summary pays when buckets span many groups; else the raw edges cost more than a scan
        if total <= DIRECT_MAX or total <= points or total < 8 * GROUP * (points // 4):
            seg = slice(lo, hi)
            return downsample_m4(self._wide(seg), self._values[seg], self._times[seg], points, start=start, end=end)
        buckets = points // 4
        a = self._step_at(lo) if start is None else float(start)
        b = self._step_at(hi - 1) if end is None else float(end)
        if b <= a:
            b = a + 1.0
        edges = a + (b - a) * np.arange(1, buckets, dtype=np.float64) / buckets
        bounds = np.concatenate(([lo], np.clip(self._indices(edges), lo, hi), [hi]))
        starts, ends = bounds[:-1], bounds[1:]
        keep_b = ends > starts
        starts, ends = starts[keep_b], ends[keep_b]
        mins_at, maxs_at, nan_at = self._extremes(starts, ends)
        keep = np.unique(np.concatenate((starts, ends - 1, mins_at, maxs_at, nan_at)))
        values = self._values  # fancy indexing copies: nothing returned is a view of the store
        envelope = (self._wide(starts), values[mins_at], values[maxs_at])
        return Series(self._wide(keep), values[keep], self._times[keep], True, total, envelope)

    def _extremes(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per bucket [start, end): index of the first min and first max (NaN ignored; the bucket's
        start when all are NaN), and the first NaN's index for buckets that hold one."""
        G = GROUP
        g_first = -(-starts // G)  # first group wholly inside the bucket
        g_last = ends // G  # one past the last such group
        g_last = np.maximum(g_last, g_first)
        inner = g_last > g_first
        left_end = np.where(inner, g_first * G, ends)
        right_start = np.where(inner, g_last * G, ends)
        nb = starts.shape[0]
        n_left = left_end - starts
        n_grp = g_last - g_first
        n_right = ends - right_start
        counts = n_left + n_grp + n_right
        offs = np.concatenate(([0], np.cumsum(counts)))
        total = int(offs[-1])
        # Candidates in index order per bucket: raw points of the left edge, one entry per inner
        # group, raw points of the right edge.
        bucket = np.repeat(np.arange(nb), counts)
        pos = np.arange(total) - offs[bucket]
        nl, ng = n_left[bucket], n_grp[bucket]
        is_left = pos < nl
        is_grp = (pos >= nl) & (pos < nl + ng)
        raw_idx = np.where(is_left, starts[bucket] + pos, right_start[bucket] + (pos - nl - ng))
        grp = np.where(is_grp, g_first[bucket] + (pos - nl), 0)
        is_raw = ~is_grp
        raw_idx = np.where(is_raw, raw_idx, 0)
        vals = self._values
        rv = vals[raw_idx]
        rnan = np.isnan(rv) & is_raw

        def first_per_bucket(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            hit = np.flatnonzero(mask)
            at = np.searchsorted(hit, offs[:-1], side="left")
            found = at < hit.shape[0]
            found[found] = hit[at[found]] < offs[1:][found]
            return found, hit[np.minimum(at, max(hit.shape[0] - 1, 0))] if hit.shape[0] else at

        out = []
        for gval, gat, fill in ((self._gmin, self._gmin_at, np.inf), (self._gmax, self._gmax_at, -np.inf)):
            cand_idx = np.where(is_grp, grp * G + gat[grp].astype(np.int64), raw_idx)
            cv = np.where(is_grp, gval[grp], rv)
            cnan = np.isnan(cv)
            key = np.where(cnan, fill, cv)
            if fill > 0:
                best = np.minimum.reduceat(key, offs[:-1]) if total else key
            else:
                best = np.maximum.reduceat(key, offs[:-1]) if total else key
            found, first = first_per_bucket((key == best[bucket]) & ~cnan)
            out.append(np.where(found, cand_idx[first] if total else starts, starts))
        gnan = self._gnan_at[grp].astype(np.int64)
        nan_idx = np.where(is_grp, grp * G + gnan, raw_idx)
        found, first = first_per_bucket(np.where(is_grp, gnan >= 0, rnan))
        nan_at = nan_idx[first[found]] if total else np.empty(0, np.int64)
        return out[0].astype(np.int64), out[1].astype(np.int64), np.asarray(nan_at, np.int64)


def concat(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return _EMPTY, _EMPTY, _EMPTY
    if len(parts) == 1:
        return parts[0]
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
    )


def bucket_extremes(v: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For buckets ``[starts[i], ends[i])`` that follow one another without gaps and are not empty:
    the index of each one's first smallest and first largest value that is not NaN (its start when
    all are NaN), and the index of the first NaN of each bucket holding one. A few passes over the
    values, whatever the number of buckets."""
    if not starts.shape[0]:
        empty = np.empty(0, np.int64)
        return empty, empty, empty
    lo, hi = int(starts[0]), int(ends[-1])
    seg = v[lo:hi]
    at = starts - lo
    isnan = np.isnan(seg)
    bucket = np.repeat(np.arange(at.shape[0]), ends - starts)

    def first(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per bucket: whether ``mask`` holds there, and the first index where it does."""
        hit = np.flatnonzero(mask)
        k = np.searchsorted(hit, at)
        found = k < hit.shape[0]
        found[found] = bucket[hit[k[found]]] == np.flatnonzero(found)
        return found, np.where(found, hit[np.minimum(k, max(hit.shape[0] - 1, 0))] if hit.shape[0] else 0, at)

    out = []
    for fill, reduce in ((np.inf, np.minimum), (-np.inf, np.maximum)):
        key = np.where(isnan, fill, seg)
        best = reduce.reduceat(key, at)
        _, where = first((key == best[bucket]) & ~isnan)
        out.append(where + lo)
    found, where = first(isnan)
    return out[0].astype(np.int64), out[1].astype(np.int64), (where[found] + lo).astype(np.int64)


def downsample_m4(
    steps: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    points: int,
    *,
    start: float | None = None,
    end: float | None = None,
) -> Series:
    """At most ``points`` points of a step-sorted series between ``start`` and ``end`` (inclusive).

    The range is cut into ``points // 4`` equal step buckets; each keeps its first, min, max and last
    point (NaN values are ignored for min/max, but a bucket's first NaN is kept so the gap shows). The
    latest point of the range is always included. Deterministic: the same input gives the same output.
    """
    if points < 4:
        raise ValueError("points must be at least 4")
    lo = 0 if start is None else int(np.searchsorted(steps, start, side="left"))
    hi = steps.shape[0] if end is None else int(np.searchsorted(steps, end, side="right"))
    s, v, t = steps[lo:hi], values[lo:hi], times[lo:hi]
    total = int(s.shape[0])
    if total <= points:
        return Series(s.copy(), v.copy(), t.copy(), False, total, None)
    buckets = points // 4
    a = float(s[0]) if start is None else float(start)
    b = float(s[-1]) if end is None else float(end)
    if b <= a:
        b = a + 1.0
    edges = a + (b - a) * np.arange(1, buckets, dtype=np.float64) / buckets
    bounds = np.concatenate(([0], np.searchsorted(s, edges, side="left"), [total]))
    starts = bounds[:-1]
    ends = bounds[1:]
    nonempty = ends > starts
    starts, ends = starts[nonempty], ends[nonempty]
    mins_at, maxs_at, nan_at = bucket_extremes(v, starts, ends)
    keep = np.unique(np.concatenate((starts, ends - 1, mins_at, maxs_at, nan_at)))
    envelope = (s[starts].copy(), v[mins_at].copy(), v[maxs_at].copy())
    return Series(s[keep], v[keep], t[keep], True, total, envelope)
