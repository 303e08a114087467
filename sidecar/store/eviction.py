"""Bounded memory: which runs give their data back when the resident points exceed the bound.

Past ``max_points`` resident points, runs nobody asked for in ``evict_idle`` seconds and that got no
records for ``ingest_idle`` seconds are evicted, least recently used first, down to 80% of the bound.
The run list keeps showing them (``summary``); a query, a subscription or new records read their
files again (``reread.reread_stream``). Streams that lived in several files (rotation, reset) stay
resident: only one file can be read again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .runs import Run

__all__ = ["EvictionPolicy", "summary", "trim_heap"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvictionPolicy:
    max_points: int | None = None
    evict_idle: float = 60.0
    ingest_idle: float = 5.0  # a run that received records this recently is never evicted

    def evictable(self, run: Run, now: float) -> bool:
        return (
            run.evicted is None
            and now - run.last_used >= self.evict_idle
            and now - run.last_ingest >= self.ingest_idle  # live runs stay: re-reading them would thrash
            and bool(run.streams)
            and all(s.files == 1 for s in run.streams.values())
        )

    def victims(self, runs: Iterable[Run], now: float) -> list[Run]:
        """The runs to evict now (none while under the bound)."""
        if self.max_points is None:
            return []
        runs = list(runs)
        resident = {r.id: r.resident_points() for r in runs}
        total = sum(resident.values())
        if total <= self.max_points:
            return []
        out = []
        for run in sorted(runs, key=lambda r: max(r.last_used, r.last_ingest)):
            if total <= self.max_points * 0.8:
                break
            if not self.evictable(run, now) or not resident[run.id]:
                continue
            out.append(run)
            total -= resident[run.id]
        return out


def summary(run: Run) -> dict[str, Any]:
    """What the run list shows of a run while its data is evicted."""
    return {"metrics": run.metric_names(), "listed": run.listed(), "attempts": len(run.attempts),
            "points": run.resident_points()}


def trim_heap() -> None:
    """glibc keeps freed heap pages mapped; after a large catch-up that is most of them."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
