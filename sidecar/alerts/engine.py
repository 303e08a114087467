"""The alert engine: a store listener that hands what arrives to a thread of its own, where the rules
(``runs``, ``gpus``) run and the ``AlertBook`` changes.

The listener runs in the follower's thread, so it only takes what the rules need from each event
(the last ``TAIL`` points of each metric, where a chunk holds its first non-finite value, the few
records the rules read) into a bounded queue and returns: it never waits, never reads a file, and
an event that finds the queue full is counted (``dropped``) and logged once. Nothing the rules do
runs on the event loop either.

Time comes from ``clock`` (Unix seconds): when records arrived, when a run has been quiet for too
long. Tests give a clock of their own and call ``tick()``; the thread calls it every ``tick_every``
seconds. While the backlog is read, rules see what it holds (so the state is right once it is read),
but what they find is marked ``backlog`` and sent nowhere; failures and stalls are only looked for in
what arrives afterwards.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tailboard.format import K_CONFIG, K_END, K_HEADER, K_TEXT, KIND
from tailboard.run import ALERT_TEXT

from ..store import Appended, RunsChanged, Store
from ..store.events import RecordsKept, StoreEvent
from .book import AlertBook
from .config import AlertConfig
from .gpus import GpuRules, is_system_run
from .runs import MetricNews, RunRules

__all__ = ["MAX_QUEUE", "TAIL", "AlertEngine"]

logger = logging.getLogger(__name__)

#: Points of each metric per chunk the spike rule looks at (a live chunk holds a few; a chunk of
#: the backlog may hold millions, of which only the latest matter once it is read).
TAIL = 256
#: Store events waiting for the engine at most.
MAX_QUEUE = 4096
_GONE = ("gone", None)
_ENDED = ("finished", "failed", "gone")


@dataclass(frozen=True)
class _Points:
    run: str
    news: tuple[MetricNews, ...]
    times: np.ndarray  # the distinct record times of the chunk's last points
    live: bool
    at: float


@dataclass(frozen=True)
class _Records:
    run: str
    records: tuple[dict[str, Any], ...]
    live: bool
    at: float


@dataclass(frozen=True)
class _Status:
    runs: tuple[str, ...]


@dataclass(frozen=True)
class _Flush:
    done: threading.Event


class AlertEngine:
    def __init__(
        self,
        store: Store,
        config: AlertConfig | None = None,
        *,
        book: AlertBook | None = None,
        clock: Callable[[], float] = time.time,
        tick_every: float = 1.0,
    ) -> None:
        self.store = store
        self.config = config or AlertConfig()
        self.book = book or AlertBook()
        self.clock = clock
        self.tick_every = tick_every
        self.runs = RunRules(self.book, self.config)
        self.gpus = GpuRules(self.book, self.config, self._status_of)
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(MAX_QUEUE)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("AlertEngine.start() was already called")
        self.store.add_listener(self.on_store_event)
        self._thread = threading.Thread(target=self._loop, name="tailboard-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.store.remove_listener(self.on_store_event)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event handed over so far is evaluated (tests, shutdown)."""
        if self._thread is None or not self._thread.is_alive():
            return False
        done = threading.Event()
        self._queue.put(_Flush(done), timeout=timeout)
        return done.wait(timeout)

    # ---- the listener (the follower's thread) --------------------------------------------------

    def on_store_event(self, event: StoreEvent) -> None:
        item: Any = None
        if isinstance(event, Appended):
            item = self._points(event)
        elif isinstance(event, RecordsKept):
            wanted = tuple(r for r in event.records if _wanted(r))
            item = _Records(event.run_id, wanted, event.live, self.clock())
        elif isinstance(event, RunsChanged):
            item = _Status(event.run_ids)
        if item is None:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("the alert rules fall behind: store events are dropped (counted)")

    def _points(self, event: Appended) -> _Points | None:
        news = []
        tails = []
        for name, s in event.delta.series.items():
            values = s.values
            n = int(values.shape[0])
            if n == 0:
                continue
            bad = None
            finite = np.isfinite(values)
            if not bool(finite.all()):
                i = int(np.argmin(finite))
                bad = (float(s.steps[i]), float(values[i]))
            cut = slice(max(0, n - TAIL), n)
            news.append(MetricNews(name, s.steps[cut].copy(), values[cut].copy(), s.times[cut].copy(), bad))
            tails.append(s.times[cut])
        if not news:
            return None
        times = np.unique(np.concatenate(tails))[-TAIL:]
        return _Points(event.run_id, tuple(news), times, self.store.progress().done, self.clock())

    # ---- the engine's thread -------------------------------------------------------------------

    def _loop(self) -> None:
        next_tick = time.monotonic() + self.tick_every
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self.handle(item)
                if time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_every
                    self.tick()
            except Exception:
                logger.exception("alert rules failed")

    def handle(self, item: Any) -> None:
        if isinstance(item, _Flush):
            item.done.set()
        elif isinstance(item, _Points):
            backlog = not item.live
            if is_system_run(item.run):
                self.gpus.samples(item.run, item.news, item.at, backlog)
            else:
                self.runs.points(item.run, item.news, item.times, item.live, item.at, backlog)
        elif isinstance(item, _Records):
            if not is_system_run(item.run):
                self.runs.records(item.run, item.records, item.live, item.at, not item.live)
            self.gpus.records(item.run, item.records, item.at)
        elif isinstance(item, _Status):
            now = self.clock()
            for run in item.runs:
                status = self._status_of(run)
                if status in _GONE:
                    self.runs.forget(run, now)
                    self.gpus.forget(run, now)

    def tick(self, now: float | None = None) -> None:
        """The rules that time alone can trigger (a stall)."""
        self.runs.tick(self.clock() if now is None else now)

    def _status_of(self, run: str) -> str | None:
        info = self.store.get_run(run)
        return None if info is None else info.status

    # ---- asking ----------------------------------------------------------------------------------

    def report(self, run: str | None = None, *, recent: int = 100) -> dict[str, Any]:
        """What ``GET /api/alerts`` answers."""
        return {
            "active": [a.to_json() for a in self.book.active(run)],
            "recent": [a.to_json() for a in self.book.recent(run, recent)],
            "counts": self.book.counts(),
            "rules": self.config.to_json(),
            "dropped": self.dropped,
            "refused": self.book.refused,
        }


def _wanted(rec: dict[str, Any]) -> bool:
    """The records the rules read: headers, configs and ends; the trainer's alerts."""
    kind = rec.get(KIND)
    return kind in (K_HEADER, K_END, K_CONFIG) or (kind == K_TEXT and rec.get("name") == ALERT_TEXT)
