"""Foreign JSON lines: each row's step, the attempts, and the series of a chunk's columns.

Given a chunk's ``Fields`` (``jsonl_columns``) and the state the chunk before left, ``points``
gives the chunk's points (one series per metric, a segment per attempt) and the state for the next.
The rules below hold for every record another program wrote as a JSON object: lines of a JSON-lines
file (``jsonl``) and the entries of a document's history (``jsondoc``).

Steps. A line's counters are its ``format.STEP_KEYS`` fields holding numbers; its step is the finest
one (the first in that order), the coarser ones stay metrics. So per-iteration lines
(``{"iter": 120, "loss": ..}``) and per-epoch lines (``{"epoch": 2, "val_acc": ..}``) in one file
each keep their own counter, and neither cuts the other's points. A line with no counter takes its
record number; so does a line whose finest counter holds NaN or +-Infinity (no place on an axis),
that field staying a metric.

A counter that restarts while the next coarser counter of the line moves on (``iter`` counted
within each ``epoch``) is not a restart of the run: the steps carry on from the last one before it.
The offset added is the last value (plus one minus the new value when the counter counts from 0 or
below), so ``iter`` 1..500 then 1.. reads 1..500, 501..; 0..499 then 0.. reads 0..499, 500... The
offset of each epoch is kept (the last ``MAX_OFFSETS``), so that a run resumed at an earlier epoch
gets the steps it had there.

A new attempt (the store shows each attempt up to the next one's first step) starts only on real
evidence, what a run started again from the beginning or from a checkpoint writes: the step going
back on lines of the same layout (the same fields present, the same discriminator values), or going
back on the counter of the line before it with the same discriminators and no field that line did
not have (a resumed run's first line may log less). Lines of another layout may go back without it
(an evaluation logged late, a per-epoch line after per-iteration lines): their points are placed by
step. The last step of the last ``MAX_LAYOUTS`` layouts is kept. Lines with no counter never start
an attempt.

Images (tailboard's ``image`` records, which other programs may write too) are rows of no fields
(``Fields.records``): numbered as a line with no counter is, in the attempt their place gives them,
never starting one; their own step and time are the chunk's last when one is its last record.

Steps are found in whole arrays when nothing happens in a chunk (every counter going forward, or
back only as its coarser counter moves on), else line by line; both give the same steps and state.
"""

from __future__ import annotations

import dataclasses
import math
from bisect import bisect_right
from itertools import pairwise
from typing import Any

import numpy as np
from tailboard.format import STEP_KEYS, TIME_KEYS, decode_float

from ..ingest import Parsed
from .jsonl_columns import Fields
from .wallclock import absolute_times

__all__ = ["MAX_LAYOUTS", "MAX_OFFSETS", "JsonlState", "points"]

#: Layouts whose last step is kept (to tell a restart); the least recently seen goes first.
MAX_LAYOUTS = 256
#: Epoch offsets kept per restarting counter.
MAX_OFFSETS = 256


@dataclasses.dataclass(frozen=True)
class JsonlState:
    """What one chunk of a JSON-lines file (or one version of a document's history) leaves for the
    next (small and picklable)."""

    last_step: float | None = None  # the last step seen
    index: int = 0  # records read: the step of a foreign line that carries none
    started: bool = False  # the current attempt holds records
    native: bool = False  # tailboard's own stream (it has a header)
    # foreign lines, per counter (index in STEP_KEYS): its last value, the coarser counter's value
    # beside it, its offset, and that line's prefix and numeric fields
    counters: tuple[tuple[Any, ...], ...] = ()
    # per restarting counter: ((outer value, offset), ...), oldest first
    offsets: tuple[tuple[int, tuple[tuple[float, float], ...]], ...] = ()
    # (layout, last step) of the layouts seen, least recently seen first
    layouts: tuple[tuple[int, float], ...] = ()


class _Tracker:
    """The counters' state while a chunk is read (a working copy of the JsonlState's)."""

    #: whole arrays when nothing happens in a chunk (tests switch it off to compare with the loop)
    whole = True

    def __init__(self, state: JsonlState) -> None:
        self.counters = {c[0]: list(c[1:]) for c in state.counters}
        self.offsets = {k: dict(pairs) for k, pairs in state.offsets}
        self.layouts = dict(state.layouts)
        self.index = state.index
        self.started = state.started

    def saved(self, state: JsonlState, last_step: float | None) -> JsonlState:
        return dataclasses.replace(
            state, last_step=last_step if last_step is not None else state.last_step, index=self.index,
            started=self.started, counters=tuple((k, *c) for k, c in sorted(self.counters.items())),
            offsets=tuple((k, tuple(d.items())) for k, d in sorted(self.offsets.items()) if d),
            layouts=tuple(self.layouts.items()))

    def offset_at(self, key: int, outer: float) -> float:
        """The offset a restarting counter had at ``outer`` (the latest entry at or below it)."""
        best, off = -math.inf, 0.0
        for o, x in self.offsets.get(key, {}).items():
            if best < o <= outer:
                best, off = o, x
        return off

    def moved(self, key: int, outer: float, off: float) -> None:
        """A restarting counter's offset from ``outer`` on."""
        table = self.offsets.setdefault(key, {})
        table.pop(outer, None)
        table[outer] = off
        if len(table) > MAX_OFFSETS:
            del table[next(iter(table))]

    def seen(self, layout: int, step: float) -> None:
        self.layouts.pop(layout, None)
        self.layouts[layout] = step
        if len(self.layouts) > MAX_LAYOUTS:
            del self.layouts[next(iter(self.layouts))]

    def steps(self, fields: Fields, key: np.ndarray, raw: np.ndarray, outer: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Each row's step, and the rows that start a new attempt."""
        n = key.shape[0]
        steps = np.empty(n)
        plain = key < 0
        steps[plain] = self.index + np.flatnonzero(plain)
        if not (self.whole and self._in_order(fields, key, raw, outer, steps)):
            return steps, self._one_by_one(fields, key, raw, outer, steps)
        self.index += n
        self.started = self.started or n > 0
        return steps, []

    def _in_order(self, fields: Fields, key: np.ndarray, raw: np.ndarray, outer: np.ndarray,
                  steps: np.ndarray) -> bool:
        """The common case in whole arrays: every counter goes forward, or back only as the coarser
        counter beside it moves on (``iter`` within ``epoch``), and no layout is behind its last
        step. Fills ``steps`` and the state when so; False (the state unchanged) otherwise."""
        counted = key >= 0
        plan = []
        for k in np.unique(key[counted]).tolist():
            sel = np.flatnonzero(key == k)
            r, o = raw[sel], outer[sel]
            if bool(np.isnan(r).any()):
                return False
            c = self.counters.get(k)
            if c is None:
                off0 = 0.0 if math.isnan(o[0]) else self.offset_at(k, float(o[0]))
                r_prev, o_prev = np.concatenate((r[:1], r[:-1])), np.concatenate((o[:1], o[:-1]))
            else:
                off0 = c[2]
                r_prev, o_prev = np.concatenate(([c[0]], r[:-1])), np.concatenate(([c[1]], o[:-1]))
            if bool((o < o_prev).any()):
                return False  # back to an earlier epoch: the loop looks its offset up
            back = r < r_prev
            nested = back & (o > o_prev)  # False where either is NaN
            if bool((back & ~nested).any()):
                return False  # going back otherwise: the loop judges it
            if nested.any():  # the offsets in the loop's order of additions
                bump = np.where(nested, r_prev + np.where(r <= 0, 1.0 - r, 0.0), 0.0)
                off = np.cumsum(np.concatenate(([off0], bump)))[1:]
                before = np.concatenate(([off0], off[:-1]))
                if bool((r + off < r_prev + before)[nested].any()):
                    return False  # forward only on paper: rounded back past 2**53; the loop judges it
            else:
                off = np.full(r.shape[0], off0)
            plan.append((k, sel, r, o, off, np.flatnonzero(nested)))
        for k, sel, r, _, off, _ in plan:
            steps[sel] = np.where(off != 0, r + off, r)
        rows = np.flatnonzero(counted)
        if rows.shape[0]:
            ids, first = np.unique(fields.layout[rows], return_index=True)
            if self.started and self.layouts:  # a layout behind where it was (another went back before)
                for lid, at in zip(ids.tolist(), first.tolist()):
                    prev = self.layouts.get(lid)
                    if prev is not None and steps[rows[at]] < prev:
                        return False
            _, last = np.unique(fields.layout[rows][::-1], return_index=True)
            for at in sorted((rows.shape[0] - 1 - last).tolist()):
                self.seen(int(fields.layout[rows[at]]), float(steps[rows[at]]))
        for k, sel, r, o, off, events in plan:
            for i in events.tolist():
                self.moved(k, float(o[i]), float(off[i]))
            self.counters[k] = self._last(fields, int(sel[-1]), float(r[-1]), float(o[-1]), float(off[-1]))
        return True

    @staticmethod
    def _last(fields: Fields, row: int, value: float, outer: float, off: float) -> list[Any]:
        """A counter's entry after ``row``: its value, its coarser counter's, its offset, and the
        row's prefix and numeric fields (what a restart's line is compared with)."""
        return [value, outer, off, fields.prefixes[int(fields.prefix[row])], fields.names_at(row)]

    def _one_by_one(self, fields: Fields, key: np.ndarray, raw: np.ndarray, outer: np.ndarray,
                    steps: np.ndarray) -> list[int]:
        starts = []
        last_row: dict[int, int] = {}  # counter -> its last row in this chunk
        rows = zip(key.tolist(), raw.tolist(), outer.tolist(), fields.layout.tolist())
        for i, (k, v, o, lid) in enumerate(rows):
            if k < 0:
                self.started = True
                continue
            c = self.counters.get(k)
            restart = False
            if c is None:
                off = 0.0 if math.isnan(o) else self.offset_at(k, o)
            else:
                last, lo, off = c[:3]
                both = not (math.isnan(o) or math.isnan(lo))  # both lines have the coarser counter
                if both and o > lo and v < last:  # it restarted as the coarser one moved on
                    off += last + (1.0 - v if v <= 0 else 0.0)
                    self.moved(k, o, off)
                elif both and o < lo:  # back to an earlier epoch: its offset
                    off = self.offset_at(k, o)
                if v + off < last + c[2]:
                    # back on a line of the same prefix holding no field the previous one did not
                    if k in last_row:
                        c = self._last(fields, last_row[k], *c[:3])
                    mine = self._last(fields, i, v, o, off)
                    restart = mine[3] == c[3] and set(mine[4]) <= set(c[4])
            step = v + off if off else v
            self.counters[k] = [v, o, off, *(c[3:] if c is not None else ("", ()))]
            last_row[k] = i
            prev = self.layouts.get(lid)
            if self.started and (restart or prev is not None and step < prev):
                starts.append(i)
                self.layouts.clear()
            self.seen(lid, step)
            steps[i] = step
            self.started = True
        for k, j in last_row.items():
            self.counters[k] = self._last(fields, j, *self.counters[k][:3])
        self.index += key.shape[0]
        return starts


def _series(fields: Fields, tracker: _Tracker, now: float) -> Parsed:
    """The parsed chunk of ``fields``: steps, wall times, attempts and one series per metric."""
    n = fields.n
    numbers = fields.numbers
    key = np.full(n, -1, np.int64)
    raw = np.full(n, np.nan)
    outer = np.full(n, np.nan)
    coarser = np.full(n, np.nan)  # the value of the finest counter coarser than the one looked at
    for j in range(len(STEP_KEYS) - 1, -1, -1):
        col = numbers.get(STEP_KEYS[j])
        if col is None:
            continue
        values, has = col
        key[has] = j
        raw[has] = values[has]
        outer[has] = coarser[has]
        coarser[has] = np.where(np.isfinite(values[has]), values[has], np.nan)  # unknown when not finite
    off_axis = (key >= 0) & ~np.isfinite(raw)
    if off_axis.any():  # NaN or +-Infinity for the finest counter: a line with no counter
        key[off_axis] = -1
    wall = np.full(n, np.nan)
    clock: dict[str, np.ndarray] = {}
    for name in reversed(TIME_KEYS):
        t = _absolute(numbers.get(name), fields.iso.get(name), n)
        if t is not None:
            clock[name] = ~np.isnan(t)
            wall[clock[name]] = t[clock[name]]
    wall[np.isnan(wall)] = now
    steps, starts = tracker.steps(fields, key, raw, outer)
    for row, rec in fields.records:  # an image: its own step and time (for the chunk's last ones)
        s, t = decode_float(rec.get("step")), decode_float(rec.get("t"))
        if s is not None and math.isfinite(s):
            steps[row] = s
        if t is not None and math.isfinite(t):
            wall[row] = t

    parsed = Parsed(segments=[])
    bounds = [0, *starts, n]
    single = len(fields.prefixes) == 1
    for a, b in pairwise(bounds):
        parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        seg: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for name, (values, has) in numbers.items():
            keep = has[a:b]
            if name in _STEP_INDEX:
                keep = keep & (key[a:b] != _STEP_INDEX[name])
            if name in clock:
                keep = keep & ~clock[name][a:b]
            if single:  # one name per field: the series straight away, slices when every row holds it
                if b > a and keep.all():
                    seg[name] = (steps[a:b], values[a:b], wall[a:b])
                elif keep.any():
                    rows = np.flatnonzero(keep) + a
                    seg[name] = (steps[rows], values[rows], wall[rows])
                continue
            pre = fields.prefix[a:b]
            for pid in np.unique(pre[keep]).tolist():
                mine = keep & (pre == pid)
                parts.setdefault(fields.prefixes[pid] + name, []).append((np.flatnonzero(mine) + a, values[a:b][mine]))
        for name, got in parts.items():
            rows = got[0][0] if len(got) == 1 else np.concatenate([r for r, _ in got])
            values = got[0][1] if len(got) == 1 else np.concatenate([v for _, v in got])
            if len(got) > 1:  # names alike from two fields (``val/x`` and ``x`` under mode=val)
                order = np.argsort(rows, kind="stable")
                rows, values = rows[order], values[order]
            if rows.shape[0]:
                seg[name] = (steps[rows], values, wall[rows])
        parsed.segments.append(seg)
    parsed.others = [(bisect_right(starts, row), rec) for row, rec in fields.records]
    parsed.records = n
    parsed.started = tracker.started
    if n:
        parsed.last_step = float(steps[-1])
        parsed.last_time = float(wall[-1])
    return parsed


_STEP_INDEX = {k: j for j, k in enumerate(STEP_KEYS)}


def _absolute(col: tuple[np.ndarray, np.ndarray] | None, iso: np.ndarray | None, n: int) -> np.ndarray | None:
    """A time field's absolute times (``format.absolute_time`` on whole columns), NaN elsewhere."""
    if col is None and iso is None:
        return None
    t = np.full(n, np.nan) if iso is None else iso.copy()
    return t if col is None else absolute_times(*col, out=t)



def points(fields: Fields, state: JsonlState, *, now: float) -> tuple[Parsed, JsonlState]:
    """The points of a chunk's columns read after ``state`` (steps, wall times, attempts and one
    series per metric, by the rules of the module docstring), and the state after them. ``now``
    is the wall clock of rows that carry none."""
    tracker = _Tracker(state)
    parsed = _series(fields, tracker, now)
    return parsed, tracker.saved(state, parsed.last_step)
