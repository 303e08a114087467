"""``Store``: the one boundary between the follower and the server (docs/design.md).

The follower (and any other producer, through ``feed.Feed``) writes; routes and WebSocket handlers
only ask. This class holds the lock and composes the pieces: ``runs`` (a run's state and rules),
``kinds`` (record kinds), ``cursors``, ``reread`` (the only file access), ``eviction`` and
``events``. File reading and parsing happen outside the lock; only merging into a run holds it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from typing import Any

import numpy as np

from tailboard.format import K_CONFIG, K_HEADER, KIND

from ..ingest import Parsed
from ..readers.base import Reader
from ..readers.registry import Registry
from ..series import Series, downsample_m4
from . import images, reread
from .cursors import decode_cursor, encode_cursor
from .eviction import EvictionPolicy, summary, trim_heap
from .events import Appended, BatchDone, Listener, Listeners, ProgressChanged, RecordsKept, ResetRun, RunsChanged
from .gpus import GpuIndex, IdleRule
from .kinds import KINDS
from .results import Delta, Progress, RecordPage, Reset, RunInfo
from .retention import SystemRetention
from .runs import Marks, Run, Stream, stream_suffix

__all__ = ["MAX_PAGE_BYTES", "MAX_RESUME_BYTES", "MIN_SNAPSHOT_POINTS", "Store"]

logger = logging.getLogger(__name__)

#: Fewest points per series a budgeted snapshot gives (first, min, max, last of one bucket).
MIN_SNAPSHOT_POINTS = 4
#: Defaults of the bounds on reading a log again for a resume or an export page (see limits.py).
MAX_RESUME_BYTES = 16 << 20
MAX_PAGE_BYTES = 8 << 20


class Store:
    """Runs, their columnar series, and everything else a run logged. Thread-safe."""

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        stall_after: float = 120.0,
        max_points: int | None = None,
        evict_idle: float = 60.0,
        ingest_idle: float = 5.0,
        readers: Registry | None = None,
        gpu_idle: IdleRule | None = None,
        system_retention: SystemRetention | None = None,
    ) -> None:
        self.root = None if root is None else os.fspath(root)
        self.readers = Registry() if readers is None else readers
        self._files: dict[str, Any] = {"formats": {}, "unrecognised": 0, "examples": []}
        self.stall_after = stall_after
        self.eviction = EvictionPolicy(max_points, evict_idle, ingest_idle)
        self.evictions = 0
        self.reloads = 0
        self._runs: dict[str, Run] = {}
        self._lock = threading.RLock()
        self._listeners = Listeners()
        self._progress = Progress()
        self._gpus = GpuIndex(gpu_idle)
        self.retention = system_retention or SystemRetention()

    # ---- listeners -----------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        self._listeners.add(fn)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners.remove(fn)

    # ---- feeding (feed.Feed) -------------------------------------------------------------------

    def open_stream(self, run_id: str, stream_name: str, path: str, file_key: str, reader: str = "jsonl") -> None:
        """The stream continues in the file ``file_key`` at ``path``, read by the reader ``reader``."""
        fmt = self.readers[reader]
        with self._lock:
            run = self._runs.get(run_id)
            new_run = run is None
            if run is None:
                run = self._runs[run_id] = Run(run_id)
            revived = run.gone
            run.gone = False
            st = run.streams.get(stream_name)
            if st is None:
                state = fmt.new_state()
                run.streams[stream_name] = Stream(stream_name, path, file_key, suffix=stream_suffix(stream_name),
                                                  reader=reader, state=state, marks=Marks(state))
            elif st.file_key != file_key:
                # rename rotation: the stream goes on in another file, from its offset 0, with the
                # state it had (the new file continues the same log)
                st.path, st.file_key, st.offset = path, file_key, 0
                st.marks = Marks(st.state)
                st.files += 1
            else:
                st.path = path
            run.version += 1
        if new_run or revived:
            self._listeners.emit(RunsChanged((run_id,)))

    def ingest(self, run_id: str, stream_name: str, data: bytes, start: int, end: int) -> None:
        """Decode complete records ``data`` (file bytes ``start``..``end``) of a stream and keep them."""
        # The follower is the only feeder: the state cannot move between these calls, and the
        # decoding, the costly part, holds no lock.
        self._resident(run_id)
        reader, state = self.parse_state(run_id, stream_name)
        parsed, after = reader.decode(data, state, now=time.time())
        self.ingest_parsed(run_id, stream_name, parsed, after, start, end)

    def parse_state(self, run_id: str, stream_name: str) -> tuple[Reader, Any]:
        """The reader of a stream and its state for the next chunk. Whoever decodes elsewhere (the
        parallel catch-up) must hand the result to ``ingest_parsed`` before asking again."""
        with self._lock:
            st = self._stream(run_id, stream_name)[1]
            return self.readers[st.reader], st.state

    def ingest_parsed(self, run_id: str, stream_name: str, parsed: Parsed, state: Any, start: int, end: int) -> None:
        """Keep a chunk decoded with ``parse_state``'s reader and state; ``state``: the reader's
        state after it."""
        self._resident(run_id)
        with self._lock:
            run, st = self._stream(run_id, stream_name)
            if run.evicted is not None:  # evicted again since: rare, read it under the lock
                run = self._reload(run)
                st = run.streams[stream_name]
            run.last_ingest = time.monotonic()
            now = time.time()
            names_before = run.fingerprint()
            status_before = run.status(now, self.stall_after)
            delta_series, new_attempt = run.apply(st, parsed, live=self._progress.done,
                                                  want_delta=bool(self._listeners))
            st.advance(end, state)
            cursor = self._cursor(run)
            status_changed = run.status(time.time(), self.stall_after) != status_before
            listed_changed = run.fingerprint() != names_before
            meta = any(rec.get(KIND) in (K_HEADER, K_CONFIG) for _, rec in parsed.others)
            gpus_changed = self._gpus.update(run, self._runs, meta=meta, names=listed_changed)
        if parsed.others and self._listeners:
            self._listeners.emit(RecordsKept(run_id, tuple(rec for _, rec in parsed.others), self._progress.done))
        if new_attempt:
            self._listeners.emit(ResetRun(run_id, "attempt"))
        elif delta_series:
            self._listeners.emit(Appended(run_id, Delta(cursor, delta_series)))
        if status_changed:  # a GPU is idle only under a running run: its system run's entry says so
            gpus_changed |= self._gpus.related((run_id,))
        if new_attempt or status_changed or listed_changed or parsed.skipped or parsed.others:
            self._listeners.emit(RunsChanged((run_id, *sorted(gpus_changed - {run_id}))))
        elif gpus_changed:
            self._listeners.emit(RunsChanged(tuple(sorted(gpus_changed))))

    def _stream(self, run_id: str, stream_name: str) -> tuple[Run, Stream]:
        run = self._runs.get(run_id)
        if run is None or stream_name not in run.streams:
            raise KeyError(f"ingest before open_stream: {run_id!r} {stream_name!r}")
        return run, run.streams[stream_name]

    def skip(self, run_id: str, stream_name: str, reason: str, count: int = 1) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or stream_name not in run.streams:
                return
            st = run.streams[stream_name]
            st.skipped[reason] = st.skipped.get(reason, 0) + count
        self._listeners.emit(RunsChanged((run_id,)))

    def reset_stream(self, run_id: str, stream_name: str, reason: str, file_key: str) -> None:
        """The stream's file was truncated, rewritten or replaced. A reader that can tell what of a
        new version it already holds (``rewound``: CSV rewritten with a new column, a JSON document
        rewritten whole) reads it again from its start keeping the points. Otherwise the stream's
        data is void: what it contributed cannot be taken out of the run's series, so the run is
        rebuilt from its other streams' files and the stream starts over."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or stream_name not in run.streams:
                return
            old = run.streams[stream_name]
            fmt = self.readers[old.reader]
            rewound = getattr(fmt, "rewound", None)
            if rewound is not None:
                old.state = rewound(old.state)
                old.path, old.file_key, old.offset = old.path, file_key, 0
                old.marks = Marks(old.state)
                old.files += 1
                run.version += 1
                return
            others = [s for s in run.streams.values() if s.name != stream_name]
            fresh = Run(run_id, last_used=time.monotonic())
            state = fmt.new_state()
            fresh.streams[stream_name] = Stream(stream_name, old.path, file_key, suffix=old.suffix,
                                                files=old.files + 1, reader=old.reader, state=state,
                                                marks=Marks(state))
            self._runs[run_id] = fresh
            for s in others:
                fresh.streams[s.name] = s.fresh(self.readers[s.reader].new_state())
            for s in others:
                reread.reread_stream(fresh, fresh.streams[s.name], s.offset, self.readers[s.reader])
            gpus_changed = self._gpus.update(fresh, self._runs, meta=True, names=True)
        self._listeners.emit(ResetRun(run_id, reason))
        self._listeners.emit(RunsChanged((run_id, *sorted(gpus_changed - {run_id}))))

    def mark_gone(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.gone:
                return
            run.gone = True
            systems = sorted(self._gpus.related((run_id,)))  # their GPUs are no longer idle under it
        self._listeners.emit(RunsChanged((run_id, *systems)))

    def tick(self, now: float | None = None) -> None:
        """Status changes that come with time (stalled), the system runs' retention (``retention``)
        and eviction past the memory bound."""
        now = time.time() if now is None else now
        changed = []
        with self._lock:
            for run in self._runs.values():
                stalled = run.final is None and run.quiet(now, self.stall_after)
                if stalled != run.stalled:
                    run.stalled = stalled
                    changed.append(run.id)
            changed.extend(sorted(self._gpus.related(changed) - set(changed)))
            for run in self._runs.values():  # hosts' system runs: thinned and cut by age
                self.retention.apply(run)
        self._evict_if_needed()
        if changed:
            self._listeners.emit(RunsChanged(tuple(changed)))

    def batch_done(self) -> None:
        self._listeners.emit(BatchDone())

    def set_progress(self, loaded_bytes: int, total_bytes: int, done: bool) -> None:
        self._progress = Progress(loaded_bytes, total_bytes, done)
        if done:
            self.compact()
        self._evict_if_needed()
        self._listeners.emit(ProgressChanged())

    def compact_run(self, run_id: str) -> None:
        """Merge and trim one run's series (its backlog is read: the catch-up goes on with others)."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                for att in run.attempts:
                    for col in att.series.values():
                        col.compact()

    def compact(self) -> None:
        """Trim every series' growth slack (the backlog is loaded; live growth is small), and give
        the heap the parsing left behind back to the system."""
        with self._lock:
            for run_id in list(self._runs):
                self.compact_run(run_id)
        trim_heap()

    def progress(self) -> Progress:
        return self._progress

    def set_files(self, formats: dict[str, int], unrecognised: int, examples: list[str]) -> None:
        """What the follower found: log files per format, and the files no reader claims (how
        many, and a few of their paths relative to the root)."""
        files = {"formats": dict(formats), "unrecognised": unrecognised, "examples": list(examples)}
        if files != self._files:
            self._files = files
            self._listeners.emit(ProgressChanged())

    def files(self) -> dict[str, Any]:
        return self._files

    @property
    def gpu_idle(self) -> IdleRule:
        """When a GPU under a running run is idle (``gpus.IdleRule``); settable."""
        return self._gpus.rule

    @gpu_idle.setter
    def gpu_idle(self, rule: IdleRule) -> None:
        if not isinstance(rule, IdleRule):
            raise TypeError(f"gpu_idle must be an IdleRule, not {type(rule).__name__}")
        with self._lock:
            self._gpus.rule = rule

    # ---- eviction ------------------------------------------------------------------------------

    @property
    def max_points(self) -> int | None:
        return self.eviction.max_points

    def _evict_if_needed(self) -> None:
        with self._lock:
            for run in self.eviction.victims(self._runs.values(), time.monotonic()):
                run.evicted = summary(run)
                points = run.evicted["points"]
                run.drop_data()
                self.evictions += 1
                logger.info("run %s evicted (%d points); it is re-read when asked for", run.id, points)

    def _reread_run(self, run: Run) -> Run:
        """An evicted run rebuilt from its files. Touches nothing of the store: ``_resident`` runs
        it outside the lock and installs the result under it."""
        fresh = Run(run.id, last_used=time.monotonic(), last_ingest=run.last_ingest)
        for old in run.streams.values():
            fresh.streams[old.name] = old.fresh(self.readers[old.reader].new_state())
        for old in run.streams.values():
            st = fresh.streams[old.name]
            reread.reread_stream(fresh, st, old.offset, self.readers[old.reader])
            # what only the tail saw (over-long lines, NUL runs) is not in the file's lines
            st.skipped = dict(old.skipped)
            st.records, st.rank = old.records, old.rank
            st.offset, st.state, st.files = old.offset, old.state, old.files
        return fresh

    def _install(self, run: Run, fresh: Run) -> None:
        fresh.gone, fresh.stalled, fresh.updated, fresh.arrived = run.gone, run.stalled, run.updated, run.arrived
        fresh.records, fresh.last_step = run.records, run.last_step
        fresh.version = run.version + 1
        self._runs[run.id] = fresh
        self.reloads += 1
        logger.info("run %s re-read after eviction", run.id)

    def _reload(self, run: Run) -> Run:
        fresh = self._reread_run(run)
        self._install(run, fresh)
        return fresh

    def _resident(self, run_id: Any) -> None:
        """Bring an evicted run back before a query or new records need it, reading and parsing its
        files outside the lock (a multi-GB run must not hold every other reader and the ingest)."""
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
            if run is None or run.evicted is None:
                return
        fresh = self._reread_run(run)
        with self._lock:
            if self._runs.get(run_id) is run and run.evicted is not None:
                self._install(run, fresh)

    # ---- asking (routes, WebSocket) ------------------------------------------------------------

    def runs(self) -> list[RunInfo]:
        now = time.time()
        with self._lock:
            infos = [r.info(now, self.stall_after) for r in sorted(self._runs.values(), key=lambda r: r.id)]
            status = {i.id: i.status for i in infos}
            return [self._with_gpus(i, status.get) for i in infos]

    def run_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
            return None if run is None else self._with_gpus(run.info(time.time(), self.stall_after), self._status)

    def _status(self, run_id: str) -> str | None:
        run = self._runs.get(run_id)
        return None if run is None else run.status(time.time(), self.stall_after)

    def _with_gpus(self, info: RunInfo, status_of: Any) -> RunInfo:
        """A run's entry with its GPUs (``gpus.GpuIndex.entries``), under the lock."""
        gpus = self._gpus.entries(info.id, status_of)
        return info if gpus is None else dataclasses.replace(info, gpus=gpus)

    def version(self, run_id: str) -> int:
        """A number that changes whenever anything of the run changes (cache keys)."""
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
            if run is None:
                raise KeyError(f"unknown run: {run_id!r}")
            return run.version

    def _run(self, run_id: str) -> Run:
        """A run, under the lock. Callers first call ``_resident`` outside the lock."""
        run = self._runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            raise KeyError(f"unknown run: {run_id!r}")
        if run.evicted is not None:  # evicted again since: rare, read it under the lock
            run = self._reload(run)
        run.last_used = time.monotonic()
        return run

    def latest(self, run_id: str) -> dict[str, tuple[float, float]]:
        """The last value kept of each scalar of a run, and its time: ``{metric: (value, time)}``,
        from the latest attempt that has the metric. Nothing for an evicted run: a scrape does not
        read it back (``/metrics``)."""
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
            if run is None or run.evicted is not None:
                return {}
            out: dict[str, tuple[float, float]] = {}
            for att in reversed(run.attempts):
                for name, col in att.series.items():
                    if name not in out and col.n:
                        out[name] = (float(col.values[-1]), float(col.times[-1]))
            return out

    def run_detail(self, run_id: str) -> dict[str, Any]:
        self._resident(run_id)
        with self._lock:
            detail = self._run(run_id).detail(time.time(), self.stall_after)
            gpus = self._gpus.entries(run_id, self._status)
            if gpus is not None:
                detail["gpus"] = [dict(g) for g in gpus]
            return detail

    def metrics(self, run_id: str) -> list[str]:
        self._resident(run_id)
        with self._lock:
            return self._run(run_id).metric_names()

    def series(
        self,
        run_id: str,
        metric: str,
        *,
        start: float | None = None,
        end: float | None = None,
        points: int | None = None,
        attempt: int | None = None,
        max_raw: int | None = None,
    ) -> Series:
        """A metric's points from ``start`` to ``end``: all of them, or M4-downsampled to ``points``
        columns. ``max_raw`` bounds an answer without ``points``: a wider range is downsampled to it."""
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            if attempt is not None:
                if not 0 <= attempt < len(run.attempts) or metric not in run.attempts[attempt].series:
                    raise KeyError(f"no metric {metric!r} in attempt {attempt} of {run_id!r}")
                col = run.attempts[attempt].series[metric]
                if points is not None and col.sorted:
                    return col.downsample(points, start=start, end=end)
                s, v, t = col.steps, col.values, col.times
            else:
                holders = [a.series[metric] for a in run.attempts if metric in a.series]
                if not holders:
                    raise KeyError(f"unknown metric {metric!r} in run {run_id!r}")
                last = run.attempts[-1].series.get(metric)
                if points is not None and len(holders) == 1 and last is not None and last.sorted:
                    # the usual case: answered from the series' summary, no full scan
                    return last.downsample(points, start=start, end=end)
                s, v, t = run.effective(metric)
            if points is not None:
                return downsample_m4(s, v, t, points, start=start, end=end)
            lo = 0 if start is None else int(np.searchsorted(s, start, side="left"))
            hi = s.shape[0] if end is None else int(np.searchsorted(s, end, side="right"))
            if max_raw is not None and hi - lo > max_raw:
                return downsample_m4(s, v, t, max_raw, start=start, end=end)
            return Series(s[lo:hi].copy(), v[lo:hi].copy(), t[lo:hi].copy(), False, hi - lo)

    def snapshot(
        self, run_id: str, *, metrics: list[str] | None = None, points: int = 2000, budget: int | None = None
    ) -> tuple[str, dict[str, Series]]:
        """Every (or the given) metric downsampled to ``points``, and the cursor they are exact to.

        ``budget`` bounds the points of the whole answer: with many metrics, each gets fewer points
        (never fewer than ``MIN_SNAPSHOT_POINTS``)."""
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            names = run.metric_names()
            if metrics is not None:
                wanted = set(metrics)
                names = [n for n in names if n in wanted]
            if budget is not None and names:
                points = max(MIN_SNAPSHOT_POINTS, min(points, budget // len(names)))
            series = {n: self.series(run_id, n, points=points) for n in names}
            return self._cursor(run), series

    def kept(self, kind: str, run_id: str, name: str | None, *, limit: int | None = None, **options: Any) -> dict[str, Any]:
        """The records of a kind (``kinds.KINDS``) a run holds under ``name``, within ``limit``."""
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            return KINDS[kind].answer(run.kept[kind], name, limit=limit, **options)

    def histograms(self, run_id: str, name: str, *, limit: int | None = None) -> dict[str, Any]:
        return self.kept("hist", run_id, name, limit=limit)

    def vectors(self, run_id: str, name: str, *, step: float | None = None, limit: int | None = None) -> dict[str, Any]:
        return self.kept("vector", run_id, name, limit=limit, step=step)

    def texts(self, run_id: str, name: str | None = None, *, limit: int | None = None) -> dict[str, Any]:
        return self.kept("text", run_id, name, limit=limit)

    def images(self, run_id: str, name: str, *, step: float | None = None, limit: int | None = None) -> dict[str, Any]:
        return self.kept("image", run_id, name, limit=limit, step=step)

    def image(self, run_id: str, path: str) -> bytes:
        """The PNG bytes of an image of the run (``images.py``): from memory, or read (outside the
        lock) from the file ``path`` inside the run's folder; ``images.ImageError`` says why not."""
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            if path.startswith("@"):
                return images.read_blob(run.kept["image"], path)
            folders = {os.path.dirname(st.path) for st in run.streams.values()}
        folder = os.path.join(self.root, *run_id.split("/")) if self.root is not None else min(folders, default="")
        if not folder or (self.root is not None and not images.contained(self.root, folder)):
            raise images.ImageError("the run has no folder under the log root")
        return images.read_file(folder, path)

    # ---- cursors -------------------------------------------------------------------------------

    def _cursor(self, run: Run) -> str:
        return encode_cursor({s.name: (s.file_key, s.offset) for s in run.streams.values()})

    def cursor(self, run_id: str) -> str:
        self._resident(run_id)
        with self._lock:
            return self._cursor(self._run(run_id))

    def since(
        self, run_id: str, cursor: str, *, metrics: list[str] | None = None, max_bytes: int = MAX_RESUME_BYTES
    ) -> Delta | Reset:
        """The points after ``cursor``, read again from the files (so a cursor survives a restart),
        or a Reset: ``"far"`` when more than ``max_bytes`` lie between it and now (a fresh snapshot
        is cheaper than the gap), ``"replaced"`` / ``"truncated"`` / ``"cursor"`` when the files no
        longer match it. The reading happens outside the store's lock."""
        parts = decode_cursor(cursor) if isinstance(cursor, str) else None
        if parts is None:
            return Reset("cursor")
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            spans = reread.spans_after(run, parts, self.readers)
            if isinstance(spans, Reset):
                return spans
            new_cursor = self._cursor(run)
        got = reread.read_since(spans, metrics, max_bytes)
        return got if isinstance(got, Reset) else Delta(new_cursor, got)

    def records(
        self, run_id: str, cursor: str | None = None, *, limit: int = 10_000, max_bytes: int = MAX_PAGE_BYTES
    ) -> RecordPage | Reset:
        """One page of a run's raw records (exact export), from ``cursor`` (the start when None):
        at most ``limit`` records and about ``max_bytes`` of log (at least one line), read outside
        the lock; a page costs what it holds, whatever its position in the files."""
        parts = {} if cursor is None else decode_cursor(cursor)
        if parts is None:
            return Reset("cursor")
        self._resident(run_id)
        with self._lock:
            spans = reread.spans_after(self._run(run_id), parts, self.readers, max_bytes)
        if isinstance(spans, Reset):
            return spans
        got = reread.read_records(spans, limit, max_bytes)
        if isinstance(got, Reset):
            return got
        out, positions, more = got
        return RecordPage(b"[" + b",".join(out) + b"]", len(out), encode_cursor(positions), more)
