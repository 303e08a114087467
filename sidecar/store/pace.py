"""How fast one stream of a run moves: its latest step and its steps per second over its last few
records. The ranks of a distributed run each write their own stream, so these per stream are what
tells a slow rank (a straggler) from the others.

Kept as chunks are applied, from the tail of each chunk's most logged metric: a chunk costs a
slice of at most ``WINDOW`` points, never a scan of what the stream holds.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

__all__ = ["WINDOW", "Pace"]

#: The rate is over (about) the stream's last this many logged steps.
WINDOW = 32


class Pace:
    """The latest step of a stream and the (step, time) of its last ``WINDOW`` logged points."""

    __slots__ = ("last_step", "points")

    def __init__(self) -> None:
        self.last_step: float | None = None
        self.points: deque[tuple[float, float]] = deque(maxlen=WINDOW)

    def add(self, segments: list[dict[str, Any]], last_step: float | None) -> None:
        """A chunk's columns (``Parsed.segments``: metric -> (steps, values, times)), in file order;
        ``last_step``: the chunk's latest step. A later segment is a restart of the stream: its
        window starts again."""
        for i, seg in enumerate(segments):
            if i > 0 and seg:
                self.points.clear()
            if not seg:
                continue
            # the metric logged most often in the chunk: one point per logged step, in order
            steps, _, times = max(seg.values(), key=lambda col: len(col[0]))
            for s, t in zip(np.asarray(steps[-WINDOW:], np.float64).tolist(), np.asarray(times[-WINDOW:], np.float64).tolist()):
                if not (math.isfinite(s) and math.isfinite(t)):
                    continue
                if self.points and s < self.points[-1][0]:
                    self.points.clear()  # steps went back (a restart the reader did not split): start again
                self.points.append((s, t))
        if last_step is not None and math.isfinite(last_step):
            last = float(last_step)
            self.last_step = last if len(segments) > 1 or self.last_step is None else max(self.last_step, last)

    def rate(self) -> float | None:
        """Steps per second over the window (None: fewer than two points, or no time between them)."""
        if len(self.points) < 2:
            return None
        (s0, t0), (s1, t1) = self.points[0], self.points[-1]
        if t1 <= t0:
            return None
        return (s1 - s0) / (t1 - t0)

    def to_json(self) -> dict[str, Any]:
        """The fields a stream's entry of the run object gets: ``last_step``, ``rate``."""
        rate, step = self.rate(), self.last_step
        # whole steps as integers, as the run's own last_step
        shown: float | int | None = int(step) if step is not None and step.is_integer() and abs(step) <= 2**53 else step
        return {"last_step": shown, "rate": None if rate is None else round(rate, 6)}
