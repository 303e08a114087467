"""Columnar scalar series and the M4 downsample.

A series holds steps, values and wall times in growable numpy arrays (24 bytes per point plus the
unused tail of the last growth). ``downsample_m4`` keeps, per step bucket, the first, min, max and last
point: drawn as a line it is the same picture as all the points, and spikes never vanish.
"""

from __future__ import annotations

from dataclasses import dataclass

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


class ColumnarSeries:
    """Append-only steps/values/times of one metric in one attempt."""

    __slots__ = ("_steps", "_values", "_times", "n", "version", "sorted")

    def __init__(self) -> None:
        self._steps = np.empty(64, dtype=np.float64)
        self._values = np.empty(64, dtype=np.float64)
        self._times = np.empty(64, dtype=np.float64)
        self.n = 0
        self.version = 0
        self.sorted = True

    def append(self, steps: list[float], values: list[float], times: list[float]) -> None:
        k = len(steps)
        if k == 0:
            return
        need = self.n + k
        if need > self._steps.shape[0]:
            cap = max(need, int(self._steps.shape[0] * 1.5) + 64)
            for name in ("_steps", "_values", "_times"):
                old = getattr(self, name)
                new = np.empty(cap, dtype=np.float64)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        s = np.asarray(steps, dtype=np.float64)
        if self.sorted and (
            (self.n and s[0] < self._steps[self.n - 1]) or (k > 1 and bool(np.any(s[1:] < s[:-1])))
        ):
            self.sorted = False
        self._steps[self.n : need] = s
        self._values[self.n : need] = values
        self._times[self.n : need] = times
        self.n = need
        self.version += 1

    @property
    def steps(self) -> np.ndarray:
        return self._steps[: self.n]

    @property
    def values(self) -> np.ndarray:
        return self._values[: self.n]

    @property
    def times(self) -> np.ndarray:
        return self._times[: self.n]

    def nbytes(self) -> int:
        return int(self._steps.nbytes + self._values.nbytes + self._times.nbytes)


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
    mins_at = np.empty(starts.shape[0], dtype=np.int64)
    maxs_at = np.empty(starts.shape[0], dtype=np.int64)
    nan_at: list[int] = []
    for i, (b0, b1) in enumerate(zip(starts.tolist(), ends.tolist())):
        seg = v[b0:b1]
        j = int(np.argmin(seg))  # argmin/argmax land on the first NaN when there is one
        k = int(np.argmax(seg))
        if seg[j] != seg[j] or seg[k] != seg[k]:
            isnan = np.isnan(seg)
            nan_at.append(b0 + int(np.argmax(isnan)))
            if bool(isnan.all()):
                j = k = 0
            else:
                j = int(np.nanargmin(seg))
                k = int(np.nanargmax(seg))
        mins_at[i] = b0 + j
        maxs_at[i] = b0 + k
    keep = np.unique(
        np.concatenate((starts, ends - 1, mins_at, maxs_at, np.asarray(nan_at, dtype=np.int64)))
    )
    envelope = (s[starts].copy(), v[mins_at].copy(), v[maxs_at].copy())
    return Series(s[keep], v[keep], t[keep], True, total, envelope)
