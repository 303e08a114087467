"""The store: every run's data in memory, columnar, behind one boundary (docs/design.md).

The follower is the only writer (open_stream / ingest / skip / reset_stream / mark_gone / tick /
set_progress); routes and WebSocket handlers only ask (runs, series, histograms, vectors, texts,
cursor, since, records). Listeners hear about every change right after it is applied.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import orjson

from tailboard.format import (
    MAX_LINE_BYTES,
    K_CONFIG,
    K_END,
    K_HEADER,
    K_HIST,
    K_TEXT,
    K_VECTOR,
    KIND,
    STATUS_FAILED,
    decode_float,
)

from .ingest import Parsed, parse_chunk
from .series import ColumnarSeries, Series, concat, downsample_m4
from .tail import open_regular

__all__ = [
    "BatchDone",
    "ProgressChanged",
    "Store",
    "RunInfo",
    "Series",
    "Delta",
    "Reset",
    "RecordPage",
    "Progress",
    "RunsChanged",
    "Appended",
    "ResetRun",
    "covered",
]

logger = logging.getLogger(__name__)

RUNNING, FINISHED, FAILED, STALLED, GONE = "running", "finished", "failed", "stalled", "gone"


# ---- values handed out -------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    id: str
    status: str
    metrics: tuple[str, ...]
    histograms: tuple[str, ...]
    vectors: tuple[str, ...]
    texts: tuple[str, ...]
    last_step: float | None
    updated: float | None
    started: float | None
    attempts: int
    records: int
    points: int
    skipped: dict[str, int]
    streams: tuple[dict[str, Any], ...]
    host: str | None = None
    pid: int | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "metrics": list(self.metrics),
            "histograms": list(self.histograms),
            "vectors": list(self.vectors),
            "texts": list(self.texts),
            "last_step": _num(self.last_step),
            "updated": self.updated,
            "started": self.started,
            "attempts": self.attempts,
            "records": self.records,
            "points": self.points,
            "skipped": dict(self.skipped),
            "streams": [dict(s) for s in self.streams],
            "host": self.host,
            "pid": self.pid,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        return out


def _num(x: float | None) -> float | int | None:
    if x is None:
        return None
    return int(x) if float(x).is_integer() else x


@dataclass(frozen=True)
class Delta:
    cursor: str
    series: dict[str, Series]


@dataclass(frozen=True)
class Reset:
    reason: str


@dataclass(frozen=True)
class RecordPage:
    records: list[dict[str, Any]]
    cursor: str
    more: bool


@dataclass(frozen=True)
class Progress:
    loaded_bytes: int = 0
    total_bytes: int = 0
    done: bool = False


@dataclass(frozen=True)
class RunsChanged:
    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class Appended:
    run_id: str
    delta: Delta


@dataclass(frozen=True)
class ResetRun:
    run_id: str
    reason: str


@dataclass(frozen=True)
class ProgressChanged:
    """Catch-up progress moved (see ``Store.progress``)."""


@dataclass(frozen=True)
class BatchDone:
    """The follower handed over everything one wake-up found: a good moment to send it on."""


Listener = Callable[[Any], None]

# ---- internal state ----------------------------------------------------------------------------


@dataclass
class _Stream:
    name: str
    path: str
    file_key: str
    offset: int = 0  # bytes of the current file ingested (always at a line boundary)
    records: int = 0
    index: int = 0  # records numbered across the stream's lifetime (foreign step fallback)
    skipped: dict[str, int] = field(default_factory=dict)
    last_step: float | None = None
    started: bool = False  # holds records of the current attempt
    native: bool = False  # a tailboard stream (has a header): steps may go back within an attempt
    rank: int | None = None
    suffix: str = ""  # metric name suffix for ranks other than 0
    files: int = 1  # files the stream has lived in (rotations, resets): only 1 can be re-read


@dataclass
class _Attempt:
    series: dict[str, ColumnarSeries] = field(default_factory=dict)
    first_step: float | None = None


@dataclass
class _Run:
    id: str
    streams: dict[str, _Stream] = field(default_factory=dict)
    attempts: list[_Attempt] = field(default_factory=lambda: [_Attempt()])
    headers: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    hists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    vectors: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    texts: list[dict[str, Any]] = field(default_factory=list)
    last_step: float | None = None
    updated: float | None = None
    gone: bool = False
    stalled: bool = False
    # time.time() when records of the run last arrived while following live (not during the
    # catch-up): a file being appended to now is alive whatever times its records carry (a replay
    # of old logs, a clock that is off)
    arrived: float | None = None
    records: int = 0
    version: int = 0
    last_used: float = 0.0  # time.monotonic() of the last query
    last_ingest: float = 0.0  # time.monotonic() of the last chunk kept
    # set while the run's data is evicted: what the run list shows of it meanwhile
    evicted: dict[str, Any] | None = None
    effective_cache: dict[str, tuple[int, tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(
        default_factory=dict
    )


#: Bytes read at a time when a stream is parsed again (after eviction or a reset of another stream).
REREAD_BYTES = 8 << 20
#: Fewest points per series a budgeted snapshot gives (first, min, max, last of one bucket).
MIN_SNAPSHOT_POINTS = 4
#: Defaults of the bounds on reading a log again for a resume or an export page (see limits.py).
MAX_RESUME_BYTES = 16 << 20
MAX_PAGE_BYTES = 8 << 20


def _parse_state(st: _Stream) -> dict[str, Any]:
    """``parse_chunk``'s keyword arguments for the next chunk of a stream."""
    return {"prev_step": st.last_step, "next_index": st.index, "attempt_started": st.started, "native": st.native}


def _resident_points(run: _Run) -> int:
    return sum(c.n for a in run.attempts for c in a.series.values())


def _thin(recs: list[dict[str, Any]], limit: int | None) -> tuple[list[dict[str, Any]], int]:
    """At most ``limit`` records, evenly spaced, the first and the latest always included
    (deterministic); and how many there were."""
    n = len(recs)
    if limit is None or n <= limit:
        return recs, n
    keep = np.unique(np.linspace(0, n - 1, max(limit, 2)).round().astype(np.int64))
    return [recs[i] for i in keep.tolist()], n


def _trim_heap() -> None:
    """glibc keeps freed heap pages mapped; after a large catch-up that is most of them."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _stream_suffix(name: str) -> str:
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    if stem.startswith("rank") and stem[4:].isdigit() and int(stem[4:]) > 0:
        return f"@{stem}"
    return ""


def encode_cursor(parts: dict[str, tuple[str, int]]) -> str:
    raw = orjson.dumps({k: [v[0], v[1]] for k, v in sorted(parts.items())})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def covered(cursor: str, mark: str | None) -> bool:
    """True when everything up to ``cursor`` is already included at ``mark`` (both cursors of one
    run). Cursors are opaque outside this module: this is how others compare them."""
    if mark is None:
        return False
    d, m = decode_cursor(cursor), decode_cursor(mark)
    if d is None or m is None:
        return False
    for stream, (key, off) in d.items():
        got = m.get(stream)
        if got is None or got[0] != key or got[1] < off:
            return False
    return True


def decode_cursor(cursor: str) -> dict[str, tuple[str, int]] | None:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = orjson.loads(raw)
        out: dict[str, tuple[str, int]] = {}
        for k, v in obj.items():
            if not (isinstance(k, str) and isinstance(v, list) and len(v) == 2):
                return None
            if not (isinstance(v[0], str) and type(v[1]) is int and v[1] >= 0):
                return None
            out[k] = (v[0], v[1])
        return out
    except (ValueError, TypeError, orjson.JSONDecodeError, AttributeError):
        return None


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
    ) -> None:
        self.root = None if root is None else os.fspath(root)
        self.stall_after = stall_after
        # Bounded memory: past max_points resident points, runs nobody asked for or appended to in
        # evict_idle seconds give their data back and are re-read from their files when asked for.
        self.max_points = max_points
        self.evict_idle = evict_idle
        self.ingest_idle = ingest_idle  # a run that received records this recently is never evicted
        self.evictions = 0
        self.reloads = 0
        self._runs: dict[str, _Run] = {}
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._progress = Progress()

    # ---- listeners -----------------------------------------------------------------------------

    def add_listener(self, fn: Listener) -> None:
        with self._lock:
            self._listeners.append(fn)

    def remove_listener(self, fn: Listener) -> None:
        with self._lock:
            if fn in self._listeners:
                self._listeners.remove(fn)

    def _emit(self, event: Any) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except Exception:
                logger.exception("store listener failed")

    # ---- feeding (the follower) ----------------------------------------------------------------

    def open_stream(self, run_id: str, stream_name: str, path: str, file_key: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            new_run = run is None
            if run is None:
                run = self._runs[run_id] = _Run(run_id)
            revived = run.gone
            run.gone = False
            st = run.streams.get(stream_name)
            if st is None:
                run.streams[stream_name] = _Stream(
                    stream_name, path, file_key, suffix=_stream_suffix(stream_name)
                )
            elif st.file_key != file_key:
                # rename rotation: the stream goes on in another file, from its offset 0
                st.path, st.file_key, st.offset = path, file_key, 0
                st.files += 1
            else:
                st.path = path
            run.version += 1
        if new_run or revived:
            self._emit(RunsChanged((run_id,)))

    def ingest(self, run_id: str, stream_name: str, data: bytes, start: int, end: int) -> None:
        """Parse complete lines ``data`` (file bytes ``start``..``end``) of a stream and keep them."""
        # The follower is the only feeder: the state cannot move between these calls, and the
        # parsing, the costly part, holds no lock.
        self._resident(run_id)
        state = self.parse_state(run_id, stream_name)
        self.ingest_parsed(run_id, stream_name, parse_chunk(data, **state), start, end)

    def parse_state(self, run_id: str, stream_name: str) -> dict[str, Any]:
        """The keyword arguments ``parse_chunk`` needs for the next chunk of a stream. Whoever parses
        elsewhere (the parallel catch-up) must hand the result to ``ingest_parsed`` before asking again."""
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or stream_name not in run.streams:
                raise KeyError(f"ingest before open_stream: {run_id!r} {stream_name!r}")
            return _parse_state(run.streams[stream_name])

    def ingest_parsed(self, run_id: str, stream_name: str, parsed: Parsed, start: int, end: int) -> None:
        """Keep a chunk parsed with ``parse_state``'s arguments."""
        self._resident(run_id)
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or stream_name not in run.streams:
                raise KeyError(f"ingest before open_stream: {run_id!r} {stream_name!r}")
            if run.evicted is not None:
                run = self._reload(run)
            run.last_ingest = time.monotonic()
            st = run.streams[stream_name]
            names_before = self._names(run)
            status_before = self._status(run, time.time())
            delta_series, new_attempt = self._apply(run, st, parsed, want_delta=bool(self._listeners))
            st.offset = end
            cursor = self._cursor(run)
            status_changed = self._status(run, time.time()) != status_before
            listed_changed = self._names(run) != names_before
        if new_attempt:
            self._emit(ResetRun(run_id, "attempt"))
        elif delta_series:
            self._emit(Appended(run_id, Delta(cursor, delta_series)))
        if new_attempt or status_changed or listed_changed or parsed.skipped or parsed.others:
            self._emit(RunsChanged((run_id,)))

    def _names(self, run: _Run) -> tuple[Any, ...]:
        return (
            len({n for a in run.attempts for n in a.series}),
            len(run.hists),
            len(run.vectors),
            len(run.texts) > 0,
        )

    def _apply(self, run: _Run, st: _Stream, parsed: Parsed, *, want_delta: bool = True) -> tuple[dict[str, Series], bool]:
        now = time.time()
        new_attempt = False
        delta: dict[str, Series] = {}
        for i, seg in enumerate(parsed.segments):
            if i > 0:
                run.attempts.append(_Attempt())
                run.effective_cache.clear()
                new_attempt = True
            att = run.attempts[-1]
            for name, (steps, values, times) in seg.items():
                key = name + st.suffix
                col = att.series.get(key)
                if col is None:
                    col = att.series[key] = ColumnarSeries()
                if att.first_step is None and len(steps):
                    att.first_step = float(steps[0])
                col.append(steps, values, times)
                if want_delta and not new_attempt:
                    d = delta.get(key)
                    arr = (np.asarray(steps, np.float64), np.asarray(values, np.float64), np.asarray(times, np.float64))
                    if d is not None:
                        arr = concat([(d.steps, d.values, d.times), arr])
                    delta[key] = Series(arr[0], arr[1], arr[2], False, int(arr[0].shape[0]))
            for seg_index, rec in parsed.others:
                if seg_index == i:
                    self._keep_record(run, st, rec)
        for reason, n in parsed.skipped.items():
            st.skipped[reason] = st.skipped.get(reason, 0) + n
        if parsed.records:
            st.started = True
        st.native = st.native or parsed.native
        st.records += parsed.records
        st.index += parsed.records
        run.records += parsed.records
        if parsed.last_step is not None:
            st.last_step = parsed.last_step
            run.last_step = parsed.last_step if run.last_step is None or new_attempt else max(run.last_step, parsed.last_step)
        if parsed.records:
            run.updated = parsed.last_time if parsed.last_time is not None else now
            if self._progress.done:
                run.arrived = now
            run.stalled = False
        run.version += 1
        return delta, new_attempt

    def _keep_record(self, run: _Run, st: _Stream, rec: dict[str, Any]) -> None:
        kind = rec.get(KIND)
        name = str(rec.get("name", ""))
        if kind == K_HEADER:
            if len(run.headers) and st.started:
                pass
            run.headers.append(rec)
            rank = rec.get("rank")
            if type(rank) is int:
                st.rank = rank
            run.final = None
        elif kind == K_CONFIG:
            cfg = rec.get("config")
            if isinstance(cfg, dict):
                run.config.update(cfg)
        elif kind == K_END:
            run.final = rec
        elif kind == K_HIST:
            run.hists.setdefault(name + st.suffix, []).append(rec)
        elif kind == K_VECTOR:
            run.vectors.setdefault(name + st.suffix, []).append(rec)
        elif kind == K_TEXT:
            run.texts.append(rec)

    def skip(self, run_id: str, stream_name: str, reason: str, count: int = 1) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or stream_name not in run.streams:
                return
            st = run.streams[stream_name]
            st.skipped[reason] = st.skipped.get(reason, 0) + count
        self._emit(RunsChanged((run_id,)))

    def reset_stream(self, run_id: str, stream_name: str, reason: str, file_key: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or stream_name not in run.streams:
                return
            old = run.streams[stream_name]
            # The stream's data is void: rebuild the run from its other streams is not possible without
            # re-reading them, so drop everything this stream contributed by dropping the run's data and
            # re-reading the other streams from their files.
            others = [s for s in run.streams.values() if s.name != stream_name]
            fresh = _Run(run_id, last_used=time.monotonic())
            fresh.streams[stream_name] = _Stream(stream_name, old.path, file_key, suffix=old.suffix,
                                                 files=old.files + 1)
            self._runs[run_id] = fresh
            for s in others:
                fresh.streams[s.name] = _Stream(s.name, s.path, s.file_key, suffix=s.suffix)
            for s in others:
                self._reread(fresh, fresh.streams[s.name], s.offset)
        self._emit(ResetRun(run_id, reason))
        self._emit(RunsChanged((run_id,)))

    def _reread(self, run: _Run, st: _Stream, upto: int) -> None:
        """Parse a stream's current file again, from its start to ``upto``, in bounded pieces."""
        try:
            with open(open_regular(st.path), "rb") as f:
                info = os.fstat(f.fileno())
                if not st.file_key.startswith(f"{info.st_dev}:{info.st_ino}:"):
                    # the path now names another file (a rotation not yet followed): start that
                    # stream over from offset 0 of its current key rather than mix two files
                    st.offset = 0
                    return
                offset = 0
                rest = b""
                while offset < upto:
                    data = f.read(min(REREAD_BYTES, upto - offset))
                    if not data:
                        break
                    offset += len(data)
                    data = rest + data
                    cut = data.rfind(b"\n") + 1
                    rest = data[cut:]
                    if cut:
                        self._apply(run, st, parse_chunk(data[:cut], **_parse_state(st)), want_delta=False)
                    st.offset = offset - len(rest)
        except OSError:
            return

    def _evictable(self, run: _Run, now: float) -> bool:
        return (
            run.evicted is None
            and now - run.last_used >= self.evict_idle
            and now - run.last_ingest >= self.ingest_idle  # live runs stay: re-reading them would thrash
            and bool(run.streams)
            and all(s.files == 1 for s in run.streams.values())
        )

    def _evict_if_needed(self) -> None:
        if self.max_points is None:
            return
        with self._lock:
            resident = {r.id: _resident_points(r) for r in self._runs.values()}
            total = sum(resident.values())
            if total <= self.max_points:
                return
            now = time.monotonic()
            for run in sorted(self._runs.values(), key=lambda r: max(r.last_used, r.last_ingest)):
                if total <= self.max_points * 0.8:
                    break
                if not self._evictable(run, now) or not resident[run.id]:
                    continue
                self._evict(run)
                total -= resident[run.id]

    def _evict(self, run: _Run) -> None:
        info = self._info(run, time.time())
        run.evicted = {"metrics": info.metrics, "histograms": info.histograms, "vectors": info.vectors,
                       "texts": info.texts, "attempts": info.attempts, "points": info.points}
        run.attempts = [_Attempt()]
        run.hists, run.vectors, run.texts = {}, {}, []
        run.effective_cache.clear()
        self.evictions += 1
        logger.info("run %s evicted (%d points); it is re-read when asked for", run.id, info.points)

    def _reload(self, run: _Run) -> _Run:
        """Read an evicted run's files again, up to where they were read, and put it back."""
        fresh = self._reread_run(run)
        self._install(run, fresh)
        return fresh

    def _reread_run(self, run: _Run) -> _Run:
        """An evicted run rebuilt from its files. Touches nothing of the store: callers run it
        outside the lock (see ``_resident``) and install the result under it."""
        fresh = _Run(run.id, last_used=time.monotonic(), last_ingest=run.last_ingest)
        for old in run.streams.values():
            fresh.streams[old.name] = _Stream(old.name, old.path, old.file_key, suffix=old.suffix)
        for old in run.streams.values():
            st = fresh.streams[old.name]
            self._reread(fresh, st, old.offset)
            # what only the tail saw (over-long lines, NUL runs) is not in the file's lines
            st.skipped = dict(old.skipped)
            st.records, st.index, st.rank = old.records, old.index, old.rank
            st.offset = old.offset
        return fresh

    def _install(self, run: _Run, fresh: _Run) -> None:
        fresh.gone, fresh.stalled, fresh.updated, fresh.arrived = run.gone, run.stalled, run.updated, run.arrived
        fresh.records, fresh.last_step = run.records, run.last_step
        fresh.version = run.version + 1
        self._runs[run.id] = fresh
        self.reloads += 1
        logger.info("run %s re-read after eviction", run.id)

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

    def mark_gone(self, run_id: str) -> None:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None or run.gone:
                return
            run.gone = True
        self._emit(RunsChanged((run_id,)))

    def tick(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        changed = []
        with self._lock:
            for run in self._runs.values():
                stalled = run.final is None and self._quiet(run, now)
                if stalled != run.stalled:
                    run.stalled = stalled
                    changed.append(run.id)
        self._evict_if_needed()
        if changed:
            self._emit(RunsChanged(tuple(changed)))

    def batch_done(self) -> None:
        self._emit(BatchDone())

    def set_progress(self, loaded_bytes: int, total_bytes: int, done: bool) -> None:
        self._progress = Progress(loaded_bytes, total_bytes, done)
        if done:
            self.compact()
        self._evict_if_needed()
        self._emit(ProgressChanged())

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
        _trim_heap()

    def progress(self) -> Progress:
        return self._progress

    # ---- asking (routes, WebSocket) ------------------------------------------------------------

    def _quiet(self, run: _Run, now: float) -> bool:
        """Nothing new for ``stall_after`` seconds, by the records' own times or by their arrival."""
        last = max(run.updated or 0.0, run.arrived or 0.0)
        return (run.updated is not None or run.arrived is not None) and now - last > self.stall_after

    def _status(self, run: _Run, now: float) -> str:
        if run.gone:
            return GONE
        if run.final is not None:
            return FAILED if run.final.get("status") == STATUS_FAILED else FINISHED
        if run.stalled or self._quiet(run, now):
            return STALLED
        return RUNNING

    def _info(self, run: _Run, now: float) -> RunInfo:
        ev = run.evicted
        metrics = ev["metrics"] if ev is not None else sorted({n for a in run.attempts for n in a.series})
        skipped: dict[str, int] = {}
        for st in run.streams.values():
            for k, v in st.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
        skipped_total = sum(skipped.values())
        header = run.headers[-1] if run.headers else {}
        started = decode_float(run.headers[0].get("start")) if run.headers else None
        status = self._status(run, now)
        reason = None
        if status == FAILED and run.final is not None:
            reason = str(run.final.get("reason", ""))
        return RunInfo(
            id=run.id,
            status=status,
            metrics=tuple(metrics),
            histograms=ev["histograms"] if ev is not None else tuple(sorted(run.hists)),
            vectors=ev["vectors"] if ev is not None else tuple(sorted(run.vectors)),
            texts=ev["texts"] if ev is not None else tuple(sorted({str(t.get("name", "")) for t in run.texts})),
            last_step=run.last_step,
            updated=run.updated,
            started=started,
            attempts=ev["attempts"] if ev is not None else len(run.attempts),
            records=run.records,
            points=ev["points"] if ev is not None else _resident_points(run),
            skipped={"total": skipped_total, **skipped},
            streams=tuple(
                {"name": s.name, "rank": s.rank, "records": s.records, "skipped": sum(s.skipped.values())}
                for s in sorted(run.streams.values(), key=lambda s: s.name)
            ),
            host=header.get("host") if isinstance(header.get("host"), str) else None,
            pid=header.get("pid") if type(header.get("pid")) is int else None,
            reason=reason,
        )

    def runs(self) -> list[RunInfo]:
        now = time.time()
        with self._lock:
            return [self._info(r, now) for r in sorted(self._runs.values(), key=lambda r: r.id)]

    def run_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
            return None if run is None else self._info(run, time.time())

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            raise KeyError(f"unknown run: {run_id!r}")
        if run.evicted is not None:
            run = self._reload(run)
        run.last_used = time.monotonic()
        return run

    def run_detail(self, run_id: str) -> dict[str, Any]:
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            out = self._info(run, time.time()).to_json()
            out["header"] = run.headers[-1] if run.headers else None
            out["headers"] = list(run.headers)
            out["config"] = dict(run.config)
            out["final"] = run.final
            return out

    def _effective(self, run: _Run, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The metric's history across attempts: each attempt up to the next one's first step."""
        hit = run.effective_cache.get(metric)
        version = sum(a.series[metric].version for a in run.attempts if metric in a.series)
        if hit is not None and hit[0] == version:
            return hit[1]
        parts = []
        for i, att in enumerate(run.attempts):
            col = att.series.get(metric)
            if col is None or col.n == 0:
                continue
            s, v, t = col.steps, col.values, col.times
            if not col.sorted:
                order = np.argsort(s, kind="stable")
                s, v, t = s[order], v[order], t[order]
            later = [a.first_step for a in run.attempts[i + 1 :] if a.first_step is not None]
            if later:
                cut = int(np.searchsorted(s, min(later), side="left"))
                s, v, t = s[:cut], v[:cut], t[:cut]
            parts.append((s, v, t))
        result = concat(parts)
        if len(parts) > 1 or any(not a.series[metric].sorted for a in run.attempts if metric in a.series):
            run.effective_cache[metric] = (version, result)
        return result

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
                s, v, t = self._effective(run, metric)
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
            names = sorted({n for a in run.attempts for n in a.series})
            if metrics is not None:
                wanted = set(metrics)
                names = [n for n in names if n in wanted]
            if budget is not None and names:
                points = max(MIN_SNAPSHOT_POINTS, min(points, budget // len(names)))
            series = {n: self.series(run_id, n, points=points) for n in names}
            return self._cursor(run), series

    def version(self, run_id: str) -> int:
        """A number that changes whenever anything of the run changes (cache keys)."""
        with self._lock:
            run = self._runs.get(run_id) if isinstance(run_id, str) else None
            if run is None:
                raise KeyError(f"unknown run: {run_id!r}")
            return run.version

    def metrics(self, run_id: str) -> list[str]:
        self._resident(run_id)
        with self._lock:
            run = self._run(run_id)
            return sorted({n for a in run.attempts for n in a.series})

    def histograms(self, run_id: str, name: str, *, limit: int | None = None) -> dict[str, Any]:
        self._resident(run_id)
        with self._lock:
            recs = self._run(run_id).hists.get(name)
            if recs is None:
                raise KeyError(f"unknown histogram {name!r}")
            recs, thinned = _thin(recs, limit)
            return {
                "total": thinned,
                "steps": [r.get("step") for r in recs],
                "times": [r.get("t") for r in recs],
                "lo": [r.get("lo") for r in recs],
                "hi": [r.get("hi") for r in recs],
                "counts": [r.get("counts") for r in recs],
            }

    def vectors(
        self, run_id: str, name: str, *, step: float | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        self._resident(run_id)
        with self._lock:
            recs = self._run(run_id).vectors.get(name)
            if recs is None:
                raise KeyError(f"unknown vector {name!r}")
            if step is not None:
                before = [r for r in recs if (decode_float(r.get("step")) or 0) <= step]
                recs = before[-1:]
            recs, thinned = _thin(recs, limit)
            return {
                "total": thinned,
                "steps": [r.get("step") for r in recs],
                "times": [r.get("t") for r in recs],
                "values": [r.get("v") for r in recs],
            }

    def texts(self, run_id: str, name: str | None = None, *, limit: int | None = None) -> dict[str, Any]:
        self._resident(run_id)
        with self._lock:
            recs = [r for r in self._run(run_id).texts if name is None or r.get("name") == name]
            total = len(recs)
            if limit is not None and total > limit:
                recs = recs[-limit:]  # text is read, not plotted: the most recent ones
            return {
                "total": total,
                "steps": [r.get("step") for r in recs],
                "times": [r.get("t") for r in recs],
                "names": [r.get("name") for r in recs],
                "texts": [r.get("text") for r in recs],
            }

    # ---- cursors -------------------------------------------------------------------------------

    def _cursor(self, run: _Run) -> str:
        return encode_cursor({s.name: (s.file_key, s.offset) for s in run.streams.values()})

    def cursor(self, run_id: str) -> str:
        self._resident(run_id)
        with self._lock:
            return self._cursor(self._run(run_id))

    def _spans(self, run: _Run, parts: dict[str, tuple[str, int]]) -> list[_Span] | Reset:
        """What of each stream lies between a cursor and what the store holds (no I/O: under the
        lock only this is decided; the bytes are read after the lock is released)."""
        for name in parts:
            if name not in run.streams:
                return Reset("replaced")
        out = []
        for st in run.streams.values():
            key, off = parts.get(st.name, (st.file_key, 0))
            if key != st.file_key:
                return Reset("replaced")
            if off > st.offset:
                return Reset("cursor")
            out.append(_Span(st.name, st.path, st.file_key, off, st.offset, st.native, st.suffix))
        return out

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
            spans = self._spans(run, parts)
            if isinstance(spans, Reset):
                return spans
            new_cursor = self._cursor(run)
        if sum(sp.end - sp.start for sp in spans) > max_bytes:
            return Reset("far")
        series: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for sp in spans:
            if sp.end == sp.start:
                continue
            data = _read_span(sp, sp.end - sp.start)
            if isinstance(data, Reset):
                return data
            if not data.endswith(b"\n") or len(data) != sp.end - sp.start:
                return Reset("truncated")
            parsed = parse_chunk(data, prev_step=None, next_index=0, attempt_started=True, native=sp.native)
            if len(parsed.segments) > 1:
                return Reset("attempt")
            for name, (s, v, t) in parsed.segments[0].items():
                key = name + sp.suffix
                if metrics is not None and key not in metrics:
                    continue
                series.setdefault(key, []).append(
                    (np.asarray(s, np.float64), np.asarray(v, np.float64), np.asarray(t, np.float64))
                )
        out = {}
        for name, parts_ in series.items():
            s, v, t = concat(parts_)
            out[name] = Series(s, v, t, False, int(s.shape[0]))
        return Delta(new_cursor, out)

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
            run = self._run(run_id)
            spans = self._spans(run, parts)
            if isinstance(spans, Reset):
                return spans
        positions = {sp.name: (sp.key, sp.start) for sp in spans}
        out: list[dict[str, Any]] = []
        budget = max_bytes
        for sp in spans:
            if sp.start == sp.end:
                continue
            if len(out) >= limit or budget <= 0:
                break
            fd = _open_span(sp)
            if isinstance(fd, Reset):
                return fd
            try:
                pos = sp.start
                while pos < sp.end and len(out) < limit and budget > 0:
                    data = os.pread(fd, min(sp.end - pos, max(budget, MAX_LINE_BYTES)), pos)
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:
                        if len(data) < min(sp.end - pos, MAX_LINE_BYTES):
                            return Reset("truncated")
                        # a line over the cap, which the tail skipped: step over it
                        nl = _find_newline(fd, pos + len(data), sp.end)
                        if nl < 0:
                            return Reset("truncated")
                        budget -= nl + 1 - pos
                        pos = nl + 1
                        continue
                    for line in data[:cut].splitlines(keepends=True):
                        if len(out) >= limit or budget <= 0:
                            break  # the page is full (it always holds at least one line)
                        pos += len(line)
                        budget -= len(line)
                        try:
                            rec = orjson.loads(line)
                        except orjson.JSONDecodeError:
                            continue
                        out.append({"stream": sp.name, "record": rec})
            except OSError:
                return Reset("replaced")
            finally:
                os.close(fd)
            positions[sp.name] = (sp.key, pos)
        more = any(positions[sp.name][1] < sp.end for sp in spans)
        return RecordPage(out, encode_cursor(positions), more)


@dataclass(frozen=True)
class _Span:
    """Bytes ``[start, end)`` of a stream's current file, to read again."""

    name: str
    path: str
    key: str
    start: int
    end: int
    native: bool
    suffix: str


def _open_span(sp: _Span) -> int | Reset:
    """A descriptor of a span's file, after checking that it is still the file the cursor names and
    that the span starts at a line boundary; a Reset when it is not."""
    try:
        fd = open_regular(sp.path)
    except OSError:
        return Reset("replaced")
    try:
        info = os.fstat(fd)
        if not sp.key.startswith(f"{info.st_dev}:{info.st_ino}:"):
            os.close(fd)
            return Reset("replaced")
        if sp.start and os.pread(fd, 1, sp.start - 1) != b"\n":
            os.close(fd)
            return Reset("cursor")
    except OSError:
        os.close(fd)
        return Reset("replaced")
    return fd


def _read_span(sp: _Span, size: int) -> bytes | Reset:
    """Up to ``size`` bytes of a span from its start (see ``_open_span``)."""
    fd = _open_span(sp)
    if isinstance(fd, Reset):
        return fd
    try:
        return os.pread(fd, size, sp.start)
    except OSError:
        return Reset("replaced")
    finally:
        os.close(fd)


def _find_newline(fd: int, pos: int, end: int) -> int:
    """Offset of the first newline in ``[pos, end)`` of a file, read in bounded pieces; -1 if none."""
    while pos < end:
        piece = os.pread(fd, min(REREAD_BYTES, end - pos), pos)
        if not piece:
            return -1
        nl = piece.find(b"\n")
        if nl >= 0:
            return pos + nl
        pos += len(piece)
    return -1
