"""JSON lines: tailboard's own records, and any other file of one JSON object per line.

A file is JSON lines by name (``.jsonl``, ``.ndjson``) or by content: its first complete lines are
JSON objects (``metrics.json``, ``*.log.json``, ``scalars.json`` of detection frameworks). One line
alone is weak evidence: a whole JSON document written on one line looks the same, and the document
reader is surer of those it knows (a trainer state).

tailboard's own streams (a header first, or lines of the writer's layout) are decoded by
``ingest.parse_chunk``, which has the fast path for the writer's scalars. Lines that another program
wrote ("foreign") are read by the rules below. A program writes its lines from one dict, so lines of
one layout differ only in their numbers: a chunk's lines are grouped by layout and each group of
``MIN_TEMPLATE`` lines or more is read as a template of its first line (every other byte compared,
the numbers read by one orjson call: ``ingest.read_layout``, the writer's fast path made general);
the other lines, and groups that differ anywhere, are read one object at a time. Both give the same
columns (``Fields``) and the rest is shared, so the points are the same (bench/jsonl_decode.py
measures this against pyarrow's JSON reader, which was slower).

What a foreign line holds (``format.foreign_scalars`` is the same rules for one object):
- Nested objects are flattened with "/". Every field holding a number (or the strings "NaN",
  "Infinity", "-Infinity"; bare ``NaN`` / ``Infinity`` tokens read as numbers too) is a metric,
  except the line's step, its wall clock and its discriminators. Strings, booleans, lists and nulls
  are not points.
- Discriminators (``format.DISCRIMINATOR_KEYS``: mode, split, phase, stage) holding a string prefix
  the line's metrics: ``{"mode": "val", "loss": 1}`` is ``val/loss``.
- The wall clock is the first ``format.TIME_KEYS`` field holding a plausible absolute time (Unix
  seconds or milliseconds, ISO 8601); else the time the line was read. A ``time`` of 0.41 s
  (a duration, as mmcv and detectron2 write) is a metric, as are ``data_time``, ``eta_seconds``...

Steps. A line's counters are its ``format.STEP_KEYS`` fields holding numbers; its step is the finest
one (the first in that order), the coarser ones stay metrics. So per-iteration lines
(``{"iter": 120, "loss": ..}``) and per-epoch lines (``{"epoch": 2, "val_acc": ..}``) in one file
each keep their own counter, and neither cuts the other's points. A line with no counter takes its
record number.

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
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import orjson
from tailboard.format import (
    DISCRIMINATOR_KEYS,
    KINDS,
    STEP_KEYS,
    TIME_KEYS,
    UNIX_MILLISECONDS,
    UNIX_SECONDS,
    absolute_time,
    decode_float,
    discriminator_prefix,
    flatten,
)

from ..ingest import Parsed, decode_line, decode_lines, parse_chunk, read_layout

__all__ = ["Fields", "JsonlReader", "JsonlState", "discriminator_hash", "field_hash", "fields_from_objects"]

#: Names that are JSON lines whatever they hold.
SUFFIXES = (".jsonl", ".ndjson")
#: Layouts whose last step is kept (to tell a restart); the least recently seen goes first.
MAX_LAYOUTS = 256
#: Epoch offsets kept per restarting counter.
MAX_OFFSETS = 256
#: The start of every line tailboard's writer writes (its kind, a string; a foreign "k" may be anything).
NATIVE_HEAD = b'{"k":"'

_M64 = (1 << 64) - 1
_TIME = frozenset(TIME_KEYS)
_DISC = frozenset(DISCRIMINATOR_KEYS)


@dataclasses.dataclass(frozen=True)
class JsonlState:
    """What one chunk of a JSON-lines file leaves for the next (small and picklable)."""

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


class JsonlReader:
    name = "jsonl"
    #: records end at newlines: the tail cuts lines itself (over-long lines and NUL runs skipped)
    lines = True
    #: lines of one layout read as templates (tests switch it off to compare with one at a time)
    fast = True
    #: a decoder of the other lines into columns, tried before one object at a time (returning None
    #: where it cannot be exact); bench/jsonl_decode.py puts pyarrow's JSON reader here
    bulk: Callable[[bytes], Fields | None] | None = None

    def claims(self, filename: str, head: bytes) -> float:
        if filename.lower().endswith(SUFFIXES):
            return 1.0
        objects = 0
        for line in head.split(b"\n")[:-1][:8]:  # complete lines only
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                try:
                    obj = decode_line(line)  # bare NaN / Infinity, as Python's json writes them
                except ValueError:
                    return 0.0
            if type(obj) is not dict:
                return 0.0
            objects += 1
        return 0.0 if objects == 0 else 0.3 if objects == 1 else 0.8

    def complete(self, buf: bytes) -> int:
        return buf.rfind(b"\n") + 1

    def new_state(self) -> JsonlState:
        return JsonlState()

    def state_before(self, data: bytes, after: JsonlState) -> JsonlState:
        """The state to decode ``data`` with, when all that is known is the state after it (a cursor
        of an earlier process): the records are numbered back from ``after``; the offsets of
        restarting counters are ``after``'s (kept per epoch, they hold for earlier lines too); the
        steps before are unknown, so steps going back inside ``data`` still start an attempt, before
        it none does."""
        before = dataclasses.replace(after, last_step=None, started=True, counters=(), layouts=())
        if after.native or data.startswith(NATIVE_HEAD):
            parsed = parse_chunk(data, prev_step=None, next_index=0, attempt_started=True, native=after.native)
        else:
            parsed, _ = self.decode(data, before, now=0.0)
        return dataclasses.replace(before, index=max(0, after.index - parsed.records))

    def decode(self, data: bytes, state: JsonlState, *, now: float) -> tuple[Parsed, JsonlState]:
        if not (state.native or data.startswith(NATIVE_HEAD)):
            got = decode_foreign(data, state, now=now, fast=self.fast, bulk=self.bulk)
            if got is not None:
                return got
        parsed = parse_chunk(data, prev_step=state.last_step, next_index=state.index,
                             attempt_started=state.started, native=state.native, now=now)
        return parsed, dataclasses.replace(
            state,
            last_step=parsed.last_step if parsed.last_step is not None else state.last_step,
            index=state.index + parsed.records,
            started=parsed.started,
            native=state.native or parsed.native,
        )


# ---- columns: what both decoders give --------------------------------------------------------


@dataclasses.dataclass
class Fields:
    """A chunk's foreign records as columns, before steps (one row per record, in file order)."""

    n: int
    #: flattened field -> (values, where the row holds a number); fields with no number are absent
    numbers: dict[str, tuple[np.ndarray, np.ndarray]]
    #: TIME_KEYS field -> the absolute time its string spells, NaN where none
    iso: dict[str, np.ndarray]
    #: per row: the sum of the hashes of its present fields and of its discriminator values
    layout: np.ndarray
    #: per row: index into ``prefixes`` (discriminator prefix; "" first)
    prefix: np.ndarray
    prefixes: list[str]
    _present: tuple[list[str], np.ndarray] | None = dataclasses.field(default=None, repr=False)

    def names_at(self, row: int) -> tuple[str, ...]:
        """The fields holding a number in ``row``, sorted (one matrix per chunk, made when first
        asked: a restart is rare, and a chunk may have thousands of fields)."""
        if self._present is None:
            names = sorted(self.numbers)
            self._present = names, np.stack([self.numbers[k][1] for k in names], axis=1) if names else \
                np.zeros((self.n, 0), bool)
        names, present = self._present
        return tuple(names[j] for j in np.flatnonzero(present[row]).tolist())


_hashes: dict[str, int] = {}


def field_hash(text: str) -> int:
    """A 64-bit hash of a name, the same in every process (the catch-up decodes in children)."""
    h = _hashes.get(text)
    if h is None:
        if len(_hashes) > 100_000:
            _hashes.clear()
        h = _hashes[text] = int.from_bytes(
            hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    return h


def discriminator_hash(key: str, value: str) -> int:
    return field_hash(key + "\x00" + value)


def fields_from_objects(objs: list[Any], parsed: Parsed, kept: list[int] | None = None) -> Fields:
    """Columns of decoded lines, one object at a time (what is not an object is counted). ``kept``,
    if given, gets the index in ``objs`` of each row."""
    numbers: dict[str, tuple[list[int], list[float]]] = {}
    iso: dict[str, tuple[list[int], list[float]]] = {}
    layout: list[int] = []
    prefix: list[int] = []
    prefixes: dict[str, int] = {"": 0}
    n = 0
    for i, obj in enumerate(objs):
        if type(obj) is not dict:
            parsed.skip("not_object")
            continue
        try:
            flat = flatten(obj)
        except RecursionError:  # orjson reads 1,024 levels; flattening them recurses deeper
            parsed.skip("bad_value")
            continue
        h = 0
        for name, v in flat.items():
            if v is None:
                continue
            h += field_hash(name)
            if type(v) is str:
                if name in _DISC:
                    h += discriminator_hash(name, v)
                    continue
                if name in _TIME:
                    t = absolute_time(v)
                    if t is not None:
                        rows, ts = iso.setdefault(name, ([], []))
                        rows.append(n)
                        ts.append(t)
                        continue
            x = decode_float(v)
            if x is not None:
                rows, xs = numbers.setdefault(name, ([], []))
                rows.append(n)
                xs.append(x)
        layout.append(h & _M64)
        p = discriminator_prefix(flat)
        prefix.append(prefixes.setdefault(p, len(prefixes)))
        if kept is not None:
            kept.append(i)
        n += 1
    out_numbers = {}
    for name, (rows, xs) in numbers.items():
        values, has = np.full(n, np.nan), np.zeros(n, bool)
        values[rows] = xs
        has[rows] = True
        out_numbers[name] = (values, has)
    out_iso = {}
    for name, (rows, ts) in iso.items():
        out_iso[name] = np.full(n, np.nan)
        out_iso[name][rows] = ts
    return Fields(n, out_numbers, out_iso, np.array(layout, np.uint64), np.array(prefix, np.int64),
                  list(prefixes))


#: Fewest lines of one layout read as a template; fewer are read with the rest of their chunk.
MIN_TEMPLATE = 16
_NUMBER = b"0123456789.-+eENaIfinty"  # the bytes of number tokens: NaN, Infinity and -Infinity too


def fields_from_template(data: bytes) -> Fields | None:
    """Columns of lines that all have the layout of the first: the same bytes everywhere but in the
    numbers (as one program's ``json.dumps`` of one dict writes them). The text between numbers is
    compared at every line and the numbers are read in one call (``ingest.read_layout``);
    the rest of the first line (strings, booleans, nulls) is read once and holds for every line.
    None when the first line is not a flat object with a number and no ':' but its separators, or
    when any line differs."""
    first = data[: data.find(b"\n")]
    if b"\\" in first:
        return None
    try:
        obj = decode_line(first)  # bare NaN / Infinity too
    except ValueError:
        return None
    if type(obj) is not dict or first.count(b":") != len(obj) or type(obj.get("k")) is str:
        return None
    consts: list[bytes] = []
    anchors: list[int] = []
    before: list[int] = []
    numeric: list[str] = []
    at = 0  # end of the last number
    colon = -1
    for j, (name, value) in enumerate(obj.items()):
        colon = first.index(b":", colon + 1)
        if type(value) is dict or type(value) is list:
            return None
        if type(value) is not int and type(value) is not float:
            continue
        start = colon + 1
        while first[start : start + 1] in (b" ", b"\t"):
            start += 1
        end = start
        while end < len(first) and first[end] in _NUMBER:
            end += 1
        consts.append(first[at:start])
        anchors.append(colon - at)
        before.append(j)
        numeric.append(name)
        at = end
    if not numeric:
        return None
    consts.append(first[at:] + b"\n")
    table = read_layout(data, consts, anchors, before, len(obj))
    if table is None:
        return None
    one = fields_from_objects([obj], Parsed())  # what the first line holds besides its numbers
    n = table.shape[0]
    numbers = {name: (np.full(n, values[0]), np.full(n, has[0])) for name, (values, has) in one.numbers.items()}
    columns = np.ascontiguousarray(table.T)  # a row per column: cheap to append and to pickle
    for j, name in enumerate(numeric):
        numbers[name] = (columns[j], np.ones(n, bool))
    return Fields(n, numbers, {name: np.full(n, t[0]) for name, t in one.iso.items()},
                  np.full(n, one.layout[0], np.uint64), np.full(n, int(one.prefix[0]), np.int64), one.prefixes)


def fields_by_layout(data: bytes, parsed: Parsed, fast: bool = True,
                     bulk: Callable[[bytes], Fields | None] | None = None) -> Fields | None:
    """A chunk's columns: lines of each layout met ``MIN_TEMPLATE`` times or more read as a
    template (``fast``), the others by ``bulk`` if given, else one object at a time; rows in file
    order. None when the chunk holds tailboard's own records."""
    if data and not data.endswith(b"\n"):
        data += b"\n"  # a last line without its newline (a reader's chunks end with one)
    whole = fields_from_template(data) if fast else None
    if whole is not None:
        return whole
    lines = data.split(b"\n")
    lines.pop()
    groups: dict[bytes, list[int]] = {}
    if fast:  # the lines of a layout are alike once their numbers are taken out
        for i, shape in enumerate(data.translate(None, _NUMBER).split(b"\n")[:-1]):
            groups.setdefault(shape, []).append(i)
    else:
        groups[b""] = list(range(len(lines)))
    parts: list[tuple[Fields, np.ndarray]] = []
    rest: list[int] = []
    for rows in groups.values():
        got = None
        if fast and len(rows) >= MIN_TEMPLATE:
            got = fields_from_template(b"\n".join([lines[i] for i in rows]) + b"\n")
        if got is None:
            rest.extend(rows)
        else:
            parts.append((got, np.array(rows)))
    if rest:
        rest.sort()
        text = b"\n".join([lines[i] for i in rest]) + b"\n"
        got = bulk(text) if bulk is not None else None
        if got is not None:
            parts.append((got, np.array(rest)))
        else:
            where: list[int] = []
            objs = decode_lines(text, parsed, where)
            if any(type(o) is dict and type(o.get("k")) is str and o["k"] in KINDS for o in objs):
                return None
            kept: list[int] = []
            got = fields_from_objects(objs, parsed, kept)
            parts.append((got, np.array([rest[where[k]] for k in kept], np.int64)))
    if not parts:
        return fields_from_objects([], parsed)
    return parts[0][0] if len(parts) == 1 else merged(parts)  # one part: its rows are in order


def merged(parts: list[tuple[Fields, np.ndarray]]) -> Fields:
    """Columns of several sets of rows (each with the line number of its rows), in line order."""
    lines = np.concatenate([where for _, where in parts])
    order = np.argsort(lines, kind="stable")
    n = int(lines.shape[0])
    place = np.empty(n, np.int64)
    place[order] = np.arange(n)  # row i of the concatenation goes to place[i]
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    iso: dict[str, np.ndarray] = {}
    layout = np.empty(n, np.uint64)
    prefix = np.empty(n, np.int64)
    prefixes: dict[str, int] = {"": 0}
    at = 0
    for f, _ in parts:
        mine = place[at : at + f.n]
        at += f.n
        for name, (values, has) in f.numbers.items():
            if name not in numbers:
                numbers[name] = (np.full(n, np.nan), np.zeros(n, bool))
            numbers[name][0][mine] = values
            numbers[name][1][mine] = has
        for name, t in f.iso.items():
            iso.setdefault(name, np.full(n, np.nan))[mine] = t
        layout[mine] = f.layout
        ids = np.array([prefixes.setdefault(p, len(prefixes)) for p in f.prefixes], np.int64)
        prefix[mine] = ids[f.prefix]
    return Fields(n, numbers, iso, layout, prefix, list(prefixes))


# ---- steps, attempts and series: shared by both decoders --------------------------------------


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


def points(fields: Fields, tracker: _Tracker, now: float) -> Parsed:
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
        coarser[has] = values[has]
    wall = np.full(n, np.nan)
    clock: dict[str, np.ndarray] = {}
    for name in reversed(TIME_KEYS):
        t = _absolute(numbers.get(name), fields.iso.get(name), n)
        if t is not None:
            clock[name] = ~np.isnan(t)
            wall[clock[name]] = t[clock[name]]
    wall[np.isnan(wall)] = now
    steps, starts = tracker.steps(fields, key, raw, outer)

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
    if col is not None:
        values, has = col
        secs = has & (values >= UNIX_SECONDS[0]) & (values < UNIX_SECONDS[1])
        ms = has & (values >= UNIX_MILLISECONDS[0]) & (values < UNIX_MILLISECONDS[1])
        t[secs] = values[secs]
        t[ms] = values[ms] / 1000.0
    return t


def decode_foreign(data: bytes, state: JsonlState, *, now: float, fast: bool = True,
                   bulk: Callable[[bytes], Fields | None] | None = None) -> tuple[Parsed, JsonlState] | None:
    """Foreign lines by the rules of the module docstring; None when the chunk holds tailboard's own
    records (``ingest.parse_chunk`` reads those)."""
    skipped = Parsed()
    fields = fields_by_layout(data, skipped, fast, bulk)
    if fields is None:
        return None
    tracker = _Tracker(state)
    parsed = points(fields, tracker, now)
    parsed.skipped = skipped.skipped
    return parsed, tracker.saved(state, parsed.last_step)
