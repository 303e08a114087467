"""How late the event loop runs: the sidecar's own health, reported by ``/healthz``.

A task sleeps ``interval`` seconds again and again and records how much later than asked it woke up:
that lateness is how long anything waiting on the loop (a WebSocket send, ``/healthz`` itself, a new
connection) was held up. The report covers the last ``window`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

__all__ = ["LoopLag"]


class LoopLag:
    def __init__(self, *, interval: float = 0.01, window: float = 60.0) -> None:
        self.interval = interval
        self.window = window
        self._samples: deque[tuple[float, float]] = deque()  # (when, lateness in seconds)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            asked = time.perf_counter()
            await asyncio.sleep(self.interval)
            now = time.perf_counter()
            self._samples.append((now, max(0.0, now - asked - self.interval)))
            while self._samples and now - self._samples[0][0] > self.window:
                self._samples.popleft()

    def report(self, window: float | None = None) -> dict[str, float]:
        """Milliseconds: the longest and the 99th-percentile lateness over the last ``window``
        seconds (at most the whole window kept)."""
        since = time.perf_counter() - (self.window if window is None else min(window, self.window))
        late = sorted(s for when, s in self._samples if when >= since)
        if not late:
            return {"max_ms": 0.0, "p99_ms": 0.0}
        p99 = late[min(len(late) - 1, int(0.99 * len(late)))]
        return {"max_ms": round(late[-1] * 1000, 2), "p99_ms": round(p99 * 1000, 2)}
