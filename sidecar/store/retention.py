"""How much of a host's system run (``_system/<node>``, GPU samples) stays in memory.

A live system run is never evicted (it gets records every second, and ``eviction`` spares runs that
do), and at 1 Hz it grows without end: 8 GPUs with 2 processes each log about 136 figures a second,
82 million points (1.6 GB) a week. So its samples are kept in memory by age, measured from its own
latest sample (a replay of old logs keeps its figures):

- the last ``full`` seconds (6 hours) as they were logged;
- older ones, up to ``keep`` seconds (7 days), thinned to the first, smallest, largest and last
  sample of each ``bucket`` (a minute): a chart draws the same lines, at 4/60 of the points;
- older ones still are let go.

A week of those 8 GPUs is then about 8 million points (160 MB). The file keeps every sample (a
restart of the sidecar reads it again, and thins it again at its next tick). Only system runs are
thinned; a training run's points are its own to keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..gpu.layout import is_system_run
from ..series import ColumnarSeries
from .runs import Run

__all__ = ["SystemRetention"]


@dataclass
class SystemRetention:
    full: float = 6 * 3600.0
    keep: float = 7 * 86400.0
    bucket: float = 60.0
    every: float = 1800.0  # seconds of samples between two passes over a run
    # run id -> (the Run object thinned, the step thinned up to): a run re-read after an eviction
    # is another object, thinned again from its start
    _done: dict[str, tuple[Run, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.bucket <= self.full <= self.keep:
            raise ValueError(f"SystemRetention wants 0 < bucket <= full <= keep, not {self.bucket}, "
                             f"{self.full}, {self.keep}")

    def apply(self, run: Run) -> int:
        """Thin and cut ``run`` when it is a system run that is due; the points let go."""
        if not is_system_run(run.id) or run.last_step is None or run.evicted is not None:
            return 0
        latest = float(run.last_step)
        held = self._done.get(run.id)
        until = held[1] if held is not None and held[0] is run else -np.inf
        if latest - self.full - until < self.every:
            return 0
        # whole buckets only: a bucket is thinned once, with every sample it will ever hold
        cut = np.floor((latest - self.full) / self.bucket) * self.bucket
        drop = latest - self.keep
        before = run.resident_points()
        for att in run.attempts:
            for name, col in list(att.series.items()):
                att.series[name] = self._thinned(col, until, cut, drop)
        self._done[run.id] = (run, cut)
        run.effective_cache.clear()
        run.version += 1
        return before - run.resident_points()

    def _thinned(self, col: ColumnarSeries, until: float, cut: float, drop: float) -> ColumnarSeries:
        if not col.sorted:  # steps out of order: not a sampler's, leave it be
            return col
        s, v, t = col.steps, col.values, col.times
        lo = int(np.searchsorted(s, drop, side="left"))
        a = max(lo, int(np.searchsorted(s, until, side="left")))
        b = int(np.searchsorted(s, cut, side="left"))
        if lo == 0 and a >= b:
            return col
        keep = np.concatenate([np.arange(lo, a), a + self._m4(s[a:b], v[a:b]), np.arange(b, s.shape[0])])
        out = ColumnarSeries()
        out.append(s[keep], v[keep], t[keep])
        out.compact()
        return out

    def _m4(self, s: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Indices of the first, smallest, largest and last point of each bucket, in order (NaN
        is never the smallest or largest unless the bucket holds nothing else)."""
        if not s.shape[0]:
            return np.empty(0, dtype=np.int64)
        buckets = np.floor(s / self.bucket)
        starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
        ends = np.r_[starts[1:], s.shape[0]] - 1
        lo = np.lexsort((np.where(np.isnan(v), np.inf, v), buckets))  # by bucket, smallest first
        hi = np.lexsort((np.where(np.isnan(v), np.inf, -v), buckets))  # by bucket, largest first
        return np.unique(np.concatenate([starts, ends, lo[starts], hi[starts]]))
