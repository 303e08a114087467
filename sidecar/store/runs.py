"""A run's state and the rules over it: streams, attempts, the run's own records, status, and how a
parsed chunk is applied. No locking and no I/O here: the facade (``Store``) holds the lock, and
``reread`` does the reading.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tailboard.format import K_CONFIG, K_END, K_HEADER, KIND, STATUS_FAILED, STREAM_SUFFIX, decode_float

from ..ingest import Parsed
from ..series import ColumnarSeries, Series, concat
from .kinds import KINDS
from .pace import Pace
from .results import RunInfo

__all__ = ["FAILED", "FINISHED", "GONE", "RUNNING", "STALLED", "Attempt", "Marks", "Run", "Stream", "config_summary"]

RUNNING, FINISHED, FAILED, STALLED, GONE = "running", "finished", "failed", "stalled", "gone"

Columns = tuple[np.ndarray, np.ndarray, np.ndarray]


#: What a run object carries of a run's config (the whole of it is in ``/api/run``): at most this
#: many flattened keys, in the order the config records gave them...
CONFIG_KEYS = 64
#: ... and strings (keys too) cut to this many characters: a page asking for a thousand runs gets
#: each run's hyper-parameters for its labels and runs table, not a thousand config dumps.
CONFIG_TEXT = 200


def config_summary(config: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A config as the run list carries it, and whether something was left out: nested dicts
    flattened to dotted keys (``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``); numbers, booleans and
    null kept, strings cut to ``CONFIG_TEXT`` characters, other values (lists) as their JSON text,
    cut alike; a key longer than ``CONFIG_TEXT`` left out; the first ``CONFIG_KEYS`` keys."""
    out: dict[str, Any] = {}
    cut = False
    for key, v in _flat(config, ""):
        if len(key) > CONFIG_TEXT:
            cut = True
            continue
        if len(out) == CONFIG_KEYS:
            return out, True
        if not (v is None or isinstance(v, (bool, int, float, str))):
            v = orjson.dumps(v, default=str).decode()
        if isinstance(v, str) and len(v) > CONFIG_TEXT:
            v, cut = v[:CONFIG_TEXT], True
        out[key] = v
    return out, cut


def _flat(node: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of a nested config, depth first in order (an empty dict is a value)."""
    for k, v in node.items():
        if isinstance(v, dict) and v:
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


#: Reader states kept at the latest chunk ends of a stream (a live client's cursor is one of them)...
RECENT_MARKS = 8
#: ... and one at least every this many bytes of the file (export pages start at them).
MARK_EVERY = 4 << 20


class Marks:
    """The reader's state at chunk ends of a stream's current file, so that its bytes can be decoded
    again from there (a resume from a cursor, an export page) exactly as when they were first read:
    the latest few, and one every ``MARK_EVERY`` bytes."""

    def __init__(self, state: Any = None) -> None:
        self.recent: deque[tuple[int, Any]] = deque(maxlen=RECENT_MARKS)
        self.sparse: list[tuple[int, Any]] = []
        if state is not None:
            self.add(0, state)

    def add(self, offset: int, state: Any) -> None:
        if not self.sparse or offset >= self.sparse[-1][0] + MARK_EVERY:
            self.sparse.append((offset, state))
        self.recent.append((offset, state))

    def before(self, offset: int) -> tuple[int, Any] | None:
        """The latest kept ``(offset, state)`` at or before ``offset`` (None: none is). The bytes
        from there to ``offset`` decode to the state at ``offset``: about ``MARK_EVERY`` of them at
        most when the stream was read from its start."""
        best = None
        for off, state in reversed(self.recent):
            if off <= offset:
                best = (off, state)
                break
        i = bisect.bisect_right(self.sparse, offset, key=lambda m: m[0])
        if i and (best is None or self.sparse[i - 1][0] > best[0]):
            best = self.sparse[i - 1]
        return best

    def stop(self, start: int, budget: int, end: int) -> int:
        """Where a page of about ``budget`` bytes from ``start`` should end: the farthest known
        state within the budget (at least the nearest one after ``start``), or ``end``."""
        offsets = sorted({o for o, _ in self.sparse} | {o for o, _ in self.recent} | {end})
        after = [o for o in offsets if start < o <= end]
        if not after:
            return end
        within = [o for o in after if o <= start + budget]
        return within[-1] if within else after[0]


@dataclass
class Stream:
    """One file of a run (one writer process), followed from its own offset."""

    name: str
    path: str
    file_key: str
    offset: int = 0  # bytes of the current file ingested (always at a record boundary)
    records: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    rank: int | None = None
    suffix: str = ""  # metric name suffix for ranks other than 0
    files: int = 1  # files the stream has lived in (rotations, resets): only 1 can be re-read
    reader: str = "jsonl"  # the name of the reader of its format (readers.Registry)
    state: Any = None  # the reader's state after ``offset``
    marks: Marks = field(default_factory=Marks)
    pace: Pace = field(default_factory=Pace)  # its latest step and steps/s (a straggler among ranks)
    # as the run's own ``updated`` and ``arrived``, for this file alone: one rank's file that stops
    # growing while the others go on is a stalled node, which the run's times do not show. Not in
    # the stream's JSON: read at catch-up, records without a time of their own get the reading's
    # time, which no two loads share; the entry says ``"stalled": true`` instead
    updated: float | None = None
    arrived: float | None = None

    def fresh(self, state: Any, **changes: Any) -> Stream:
        """The same file, nothing read of it yet; ``state``: the reader's state at its start. When
        it last grew is kept: reading it again is no news of the node that writes it."""
        return Stream(self.name, self.path, self.file_key, suffix=self.suffix, reader=self.reader,
                      state=state, marks=Marks(state), arrived=self.arrived, **changes)

    def advance(self, end: int, state: Any) -> None:
        """The bytes up to ``end`` are kept; the reader's state after them is ``state``."""
        self.offset = end
        self.state = state
        self.marks.add(end, state)


def stream_suffix(name: str) -> str:
    """Metric name suffix of a stream: ``@rank3`` for ``rank3.jsonl``, nothing for rank 0."""
    stem = name.removesuffix(STREAM_SUFFIX)
    if stem.startswith("rank") and stem[4:].isdigit() and int(stem[4:]) > 0:
        return f"@{stem}"
    return ""


@dataclass
class Attempt:
    series: dict[str, ColumnarSeries] = field(default_factory=dict)
    first_step: float | None = None


@dataclass
class Run:
    id: str
    streams: dict[str, Stream] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=lambda: [Attempt()])
    headers: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    kept: dict[str, Any] = field(default_factory=lambda: {k: kind.new() for k, kind in KINDS.items()})
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
    effective_cache: dict[str, tuple[int, Columns]] = field(default_factory=dict)

    # ---- what it holds ---------------------------------------------------------------------

    def metric_names(self) -> list[str]:
        return sorted({n for a in self.attempts for n in a.series})

    def resident_points(self) -> int:
        return sum(c.n for a in self.attempts for c in a.series.values())

    def listed(self) -> dict[str, tuple[str, ...]]:
        return {kind.listed_as: kind.names(self.kept[k]) for k, kind in KINDS.items()}

    def fingerprint(self) -> tuple[Any, ...]:
        """Changes when what the run list shows of the run's names changes."""
        return (len({n for a in self.attempts for n in a.series}),
                *(len(names) for names in self.listed().values()))

    def drop_data(self) -> None:
        """Give back everything parsed (eviction); streams and counters stay."""
        self.attempts = [Attempt()]
        self.kept = {k: kind.new() for k, kind in KINDS.items()}
        self.effective_cache.clear()

    # ---- status ----------------------------------------------------------------------------

    def quiet(self, now: float, stall_after: float) -> bool:
        """Nothing new for ``stall_after`` seconds, by the records' own times or by their arrival."""
        return _quiet(self.updated, self.arrived, now, stall_after)

    def status(self, now: float, stall_after: float) -> str:
        if self.gone:
            return GONE
        if self.final is not None:
            return FAILED if self.final.get("status") == STATUS_FAILED else FINISHED
        if self.stalled or self.quiet(now, stall_after):
            return STALLED
        return RUNNING

    def info(self, now: float, stall_after: float) -> RunInfo:
        ev = self.evicted
        skipped: dict[str, int] = {}
        for st in self.streams.values():
            for k, v in st.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
        header = self.headers[-1] if self.headers else {}
        config, config_cut = config_summary(self.config)
        status = self.status(now, stall_after)
        # a stream is stalled while the run runs on without it (a stalled run's streams all are)
        stalled = {s.name for s in self.streams.values()
                   if status == RUNNING and len(self.streams) > 1 and _quiet(s.updated, s.arrived, now, stall_after)}
        reason = None
        if status == FAILED and self.final is not None:
            reason = str(self.final.get("reason", ""))
        return RunInfo(
            id=self.id,
            status=status,
            metrics=tuple(ev["metrics"] if ev is not None else self.metric_names()),
            listed=ev["listed"] if ev is not None else self.listed(),
            last_step=self.last_step,
            updated=self.updated,
            started=decode_float(self.headers[0].get("start")) if self.headers else None,
            attempts=ev["attempts"] if ev is not None else len(self.attempts),
            records=self.records,
            points=ev["points"] if ev is not None else self.resident_points(),
            skipped={"total": sum(skipped.values()), **skipped},
            streams=tuple(
                {"name": s.name, "format": s.reader, "rank": s.rank, "records": s.records,
                 "skipped": sum(s.skipped.values()), **s.pace.to_json(),
                 **({"stalled": True} if s.name in stalled else {})}
                for s in sorted(self.streams.values(), key=lambda s: s.name)
            ),
            host=header.get("host") if isinstance(header.get("host"), str) else None,
            pid=header.get("pid") if type(header.get("pid")) is int else None,
            reason=reason,
            config=config,
            config_truncated=config_cut,
        )

    def detail(self, now: float, stall_after: float) -> dict[str, Any]:
        out = self.info(now, stall_after).to_json()
        out["header"] = self.headers[-1] if self.headers else None
        out["headers"] = list(self.headers)
        out["config"] = dict(self.config)  # the whole of it
        out.pop("config_truncated")
        out["final"] = self.final
        return out

    # ---- applying a parsed chunk -------------------------------------------------------------

    def apply(self, st: Stream, parsed: Parsed, *, live: bool, want_delta: bool) -> tuple[dict[str, Series], bool]:
        """Keep a chunk of ``st`` decoded with ``st.state``. Returns the new points (when
        ``want_delta``) and whether the chunk started a new attempt. ``live``: the chunk arrived
        while following (its arrival keeps the run running)."""
        now = time.time()
        new_attempt = False
        delta: dict[str, Series] = {}
        for i, seg in enumerate(parsed.segments):
            if i > 0 and self.attempts[-1].first_step is not None:
                # a restart (a segment boundary) after points of the run; before any, nothing restarts
                self.attempts.append(Attempt())
                self.effective_cache.clear()
                new_attempt = True
            att = self.attempts[-1]
            for name, (steps, values, times) in seg.items():
                steps, values, times = _on_axis(steps, values, times, parsed)
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
                    self._keep(st, rec)
        for reason, n in parsed.skipped.items():
            st.skipped[reason] = st.skipped.get(reason, 0) + n
        st.records += parsed.records
        self.records += parsed.records
        st.pace.add(parsed.segments, parsed.last_step)
        # The chunk's last step counts only when the chunk holds records with steps (after a header
        # or a config alone it is the reader's, of the attempt before), and it is the new attempt's
        # only when the last segment holds them (a chunk may end with a new attempt's header).
        def stepped(segments: range) -> bool:
            return any(len(s[0]) for i in segments for s in parsed.segments[i].values()) or \
                any(i in segments and "step" in rec for i, rec in parsed.others)

        last_step = parsed.last_step if parsed.last_step is not None and math.isfinite(parsed.last_step) else None
        if new_attempt:
            last = len(parsed.segments) - 1
            self.last_step = last_step if stepped(range(last, last + 1)) else None
        elif last_step is not None and stepped(range(len(parsed.segments))):
            self.last_step = last_step if self.last_step is None else max(self.last_step, last_step)
        if parsed.records:
            self.updated = st.updated = parsed.last_time if parsed.last_time is not None else now
            if live:
                self.arrived = st.arrived = now
            self.stalled = False
        self.version += 1
        return delta, new_attempt

    def _keep(self, st: Stream, rec: dict[str, Any]) -> None:
        if not _servable(rec):
            st.skipped["too_deep"] = st.skipped.get("too_deep", 0) + 1
            return
        kind = rec.get(KIND)
        if kind == K_HEADER:
            self.headers.append(rec)
            rank = rec.get("rank")
            if type(rank) is int:
                st.rank = rank
            self.final = None
        elif kind == K_CONFIG:
            cfg = rec.get("config")
            if isinstance(cfg, dict):
                self.config.update(cfg)
        elif kind == K_END:
            self.final = rec
        elif isinstance(kind, str) and kind in KINDS:
            step = rec.get("step")
            at = decode_float(step)
            if step is not None and (at is None or not math.isfinite(at)):  # no place on an axis
                st.skipped["bad_step"] = st.skipped.get("bad_step", 0) + 1
                return
            refused = KINDS[kind].keep(self.kept[kind], rec, st.suffix)
            if refused:
                st.skipped[refused] = st.skipped.get(refused, 0) + 1

    # ---- reading series ----------------------------------------------------------------------

    def effective(self, metric: str) -> Columns:
        """The metric's history across attempts: each attempt up to the next one's first step."""
        hit = self.effective_cache.get(metric)
        version = sum(a.series[metric].version for a in self.attempts if metric in a.series)
        if hit is not None and hit[0] == version:
            return hit[1]
        parts = []
        for i, att in enumerate(self.attempts):
            col = att.series.get(metric)
            if col is None or col.n == 0:
                continue
            s, v, t = col.steps, col.values, col.times
            if not col.sorted:
                order = np.argsort(s, kind="stable")
                s, v, t = s[order], v[order], t[order]
            later = [a.first_step for a in self.attempts[i + 1 :] if a.first_step is not None]
            if later:
                cut = int(np.searchsorted(s, min(later), side="left"))
                s, v, t = s[:cut], v[:cut], t[:cut]
            parts.append((s, v, t))
        result = concat(parts)
        if len(parts) > 1 or any(not a.series[metric].sorted for a in self.attempts if metric in a.series):
            self.effective_cache[metric] = (version, result)
        return result


def _quiet(updated: float | None, arrived: float | None, now: float, stall_after: float) -> bool:
    """Nothing new for ``stall_after`` seconds, by the records' own times or by their arrival
    (None: nothing yet)."""
    last = max(updated or 0.0, arrived or 0.0)
    return (updated is not None or arrived is not None) and now - last > stall_after


def _servable(rec: dict[str, Any]) -> bool:
    """A record kept whole is served again as JSON: one nested deeper than the encoder goes (254
    levels; the decoder reads 1,024) would make every answer that holds it fail."""
    try:
        orjson.dumps(rec)
    except orjson.JSONEncodeError:
        return False
    return True


def _on_axis(steps: Any, values: Any, times: Any, parsed: Parsed) -> tuple[Any, Any, Any]:
    """The points of a series whose step is a finite number; the others are counted in ``parsed``
    (``bad_step``), so that no reader's slip (a counter of 400 digits reads as infinity) puts a
    point off every axis. The readers skip such steps themselves; this is the store's own check."""
    ok = np.isfinite(np.asarray(steps, np.float64))
    if ok.all():
        return steps, values, times
    parsed.skip("bad_step", int(ok.shape[0] - np.count_nonzero(ok)))
    return (np.asarray(steps, np.float64)[ok], np.asarray(values, np.float64)[ok], np.asarray(times, np.float64)[ok])
