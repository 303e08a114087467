"""JSON lines: tailboard's own records, and any other file of one JSON object per line.

A file is JSON lines by name (``.jsonl``, ``.ndjson``) or by content: its first complete lines are
JSON objects (``metrics.json``, ``*.log.json``, ``scalars.json`` of detection frameworks). One line
alone is weak evidence: a whole JSON document written on one line looks the same, and the document
reader is surer of those it knows (a trainer state).

tailboard's own streams (a header first, or lines of the writer's layout) are decoded by
``ingest.parse_chunk``, which has the fast path for the writer's scalars. Lines that another program
wrote ("foreign") are read by the rules below, decoded in bulk by pyarrow's JSON reader (one C++
pass per chunk into columns) or, where it is not installed or refuses a chunk, one line at a time;
both give the same columns (``Fields``) and the rest is shared, so the points are the same.

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
evidence: the step going back on lines of the same layout (the same fields present, the same
discriminator values), which is what a run started again from the beginning or from a checkpoint
writes. Lines of another layout may go back without it (an evaluation logged late, a per-epoch line
after per-iteration lines): their points are placed by step. The last step of the last
``MAX_LAYOUTS`` layouts is kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
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

from ..ingest import Parsed, decode_line, decode_lines, parse_chunk

try:  # the bulk decoder (the sidecar extra installs it); without it, lines are read one by one
    import pyarrow
    import pyarrow.compute as pc
    import pyarrow.json as pajson
except ImportError:  # pragma: no cover - exercised by the tests that switch it off
    pyarrow = None

__all__ = ["Fields", "JsonlReader", "JsonlState"]

#: Names that are JSON lines whatever they hold.
SUFFIXES = (".jsonl", ".ndjson")
#: Layouts whose last step is kept (to tell a restart); the least recently seen goes first.
MAX_LAYOUTS = 256
#: Epoch offsets kept per restarting counter.
MAX_OFFSETS = 256
#: Nesting deeper than this is flattened one line at a time (and counted when it is too deep).
MAX_DEPTH = 64
#: The start of every line tailboard's writer writes.
NATIVE_HEAD = b'{"k":'

_M64 = (1 << 64) - 1
_NONFINITE = ("NaN", "Infinity", "-Infinity")
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
    #: the bulk decoder, when pyarrow is installed (tests switch it off to compare)
    bulk = pyarrow is not None

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
        of an earlier process): the records are numbered back from ``after``; the counters' offsets
        are ``after``'s (kept per epoch, they hold for earlier lines too); the steps before are
        unknown, so steps going back inside ``data`` still start an attempt, before it none does."""
        if after.native or data.startswith(NATIVE_HEAD):
            parsed = parse_chunk(data, prev_step=None, next_index=0, attempt_started=True, native=after.native)
        else:
            parsed, _ = self.decode(data, dataclasses.replace(after, layouts=()), now=0.0)
        return dataclasses.replace(after, last_step=None, index=max(0, after.index - parsed.records),
                                   started=True, layouts=())

    def decode(self, data: bytes, state: JsonlState, *, now: float) -> tuple[Parsed, JsonlState]:
        if not (state.native or data.startswith(NATIVE_HEAD)):
            got = decode_foreign(data, state, now=now, bulk=self.bulk)
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


_hashes: dict[str, int] = {}


def _hash(text: str) -> int:
    """A 64-bit hash of a name, the same in every process (the catch-up decodes in children)."""
    h = _hashes.get(text)
    if h is None:
        if len(_hashes) > 100_000:
            _hashes.clear()
        h = _hashes[text] = int.from_bytes(
            hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    return h


def _disc_hash(key: str, value: str) -> int:
    return _hash(key + "\x00" + value)


def fields_from_objects(objs: list[Any], parsed: Parsed) -> Fields:
    """Columns of decoded lines, one object at a time (what is not an object is counted)."""
    numbers: dict[str, tuple[list[int], list[float]]] = {}
    iso: dict[str, tuple[list[int], list[float]]] = {}
    layout: list[int] = []
    prefix: list[int] = []
    prefixes: dict[str, int] = {"": 0}
    n = 0
    for obj in objs:
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
            h += _hash(name)
            if type(v) is str:
                if name in _DISC:
                    h += _disc_hash(name, v)
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


def fields_from_arrow(data: bytes) -> Fields | None:
    """Columns of complete lines by pyarrow's JSON reader, or None where its reading could differ
    from one line at a time (then the caller reads them so): a line it refuses (not JSON, a
    number out of range, a type that changes from line to line, a key twice), the spellings it
    takes that JSON does not (``-NaN``, ``Inf``), two objects on a line, a byte-order mark, an
    integer ``-0`` in a float column, nesting past ``MAX_DEPTH``, names that flatten alike, or
    tailboard's own records (a string ``k``)."""
    if pyarrow is None or not data or data.startswith(b"\xef\xbb\xbf") or b"-NaN" in data:
        return None
    if b"Inf" in data and data.count(b"Inf") != data.count(b"Infinity"):
        return None
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(
            use_threads=False, block_size=max(len(data) + 1, 1 << 16)))
    except (pyarrow.ArrowException, ValueError):  # not JSON, or not UTF-8 (UnicodeDecodeError)
        return None
    n = table.num_rows
    if n != data.count(b"\n"):
        return None  # a blank line, or two objects on one line
    leaves: list[tuple[str, Any]] = []
    if not _leaves(leaves, "", table.column_names, [c.combine_chunks() for c in table.columns], 0):
        return None
    if len({name for name, _ in leaves}) != len(leaves):
        return None
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    iso: dict[str, np.ndarray] = {}
    layout = np.zeros(n, np.uint64)
    prefix_parts: dict[str, tuple[list[str], np.ndarray]] = {}
    for name, arr in leaves:
        kind = arr.type
        if pyarrow.types.is_null(kind):
            continue
        has = np.ones(n, bool) if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)
        layout += has.astype(np.uint64) * np.uint64(_hash(name))
        if pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind):
            values = arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            if pyarrow.types.is_floating(kind) and bool((np.signbit(values) & (values == 0)).any()):
                return None  # -0.0 or an integer -0 (which is 0): they read alike here
            numbers[name] = (values, has)
        elif pyarrow.types.is_string(kind) or pyarrow.types.is_large_string(kind):
            if name == "k" and bool(pc.any(pc.is_in(arr, pyarrow.array(sorted(KINDS)))).as_py()):
                return None
            if name in _DISC:
                enc = arr.dictionary_encode()
                words = enc.dictionary.to_pylist()
                idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
                layout += np.array([_disc_hash(name, w) for w in words], np.uint64)[idx] * has
                prefix_parts[name] = (words, np.where(has, idx, -1))
                continue
            texts = arr.to_pylist() if name in _TIME else None
            if texts is not None:
                ts = np.array([np.nan if x is None else (absolute_time(x) or np.nan) for x in texts], np.float64)
                if not np.isnan(ts).all():
                    iso[name] = ts
                spelled = has & np.isnan(ts)
            else:
                spelled = has
            code = pc.index_in(arr, pyarrow.array(_NONFINITE)).to_numpy(zero_copy_only=False)
            hit = spelled & ~np.isnan(code.astype(np.float64))
            if hit.any():
                values = np.full(n, np.nan)
                values[hit] = np.array([math.nan, math.inf, -math.inf])[code[hit].astype(np.int64)]
                numbers[name] = (values, hit)
    prefix, prefixes = _prefixes(n, prefix_parts)
    return Fields(n, numbers, iso, layout, prefix, prefixes)


def _leaves(out: list[tuple[str, Any]], at: str, names: list[str], arrays: list[Any], depth: int) -> bool:
    """Flatten struct columns into ``out`` as (name joined with "/", array); False when too deep."""
    if depth > MAX_DEPTH:
        return False
    for name, arr in zip(names, arrays):
        full = at + "/" + name if at else name
        if pyarrow.types.is_struct(arr.type):
            kids = [arr.type.field(i).name for i in range(arr.type.num_fields)]
            if not _leaves(out, full, kids, arr.flatten(), depth + 1):
                return False
        else:
            out.append((full, arr))
    return True


def _prefixes(n: int, parts: dict[str, tuple[list[str], np.ndarray]]) -> tuple[np.ndarray, list[str]]:
    """Per row, the index of its discriminator prefix, from each discriminator's distinct values
    and per-row codes into them (-1: none)."""
    if not parts:
        return np.zeros(n, np.int64), [""]
    keys = [k for k in DISCRIMINATOR_KEYS if k in parts]
    combined = np.zeros(n, np.int64)
    for k in keys:  # one number per combination of values
        words, codes = parts[k]
        combined = combined * (len(words) + 1) + (codes + 1)
    found, inverse = np.unique(combined, return_inverse=True)
    names = []
    for c in found.tolist():
        picked = []
        for k in reversed(keys):
            words, _ = parts[k]
            c, code = divmod(c, len(words) + 1)
            if code and words[code - 1]:
                picked.append(words[code - 1])
        names.append("/".join(reversed(picked)) + "/" if picked else "")
    index: dict[str, int] = {"": 0}
    ids = np.array([index.setdefault(p, len(index)) for p in names], np.int64)
    return ids[inverse.reshape(-1)], list(index)


# ---- steps, attempts and series: shared by both decoders --------------------------------------


class _Tracker:
    """The counters' state while a chunk is read (a working copy of the JsonlState's)."""

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
        if not self._in_order(fields, key, raw, outer, steps):
            return steps, self._one_by_one(fields, key, raw, outer, steps)
        self.index += n
        self.started = self.started or n > 0
        return steps, []

    def _in_order(self, fields: Fields, key: np.ndarray, raw: np.ndarray, outer: np.ndarray,
                  steps: np.ndarray) -> bool:
        """The common case in whole arrays: every counter goes forward, no offset moves and no layout
        is behind its last step. Fills ``steps`` and the state when so; False (the state unchanged)
        otherwise."""
        counted = key >= 0
        plan = []
        for k in np.unique(key[counted]).tolist():
            sel = np.flatnonzero(key == k)
            r = raw[sel]
            c = self.counters.get(k)
            if self.offsets.get(k) or not bool((r[1:] >= r[:-1]).all()):
                return False
            if c is not None and not r[0] >= c[0]:
                return False
            plan.append((k, sel, r))
        for k, sel, r in plan:
            steps[sel] = r
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
        for k, sel, r in plan:
            self.counters[k] = self._last(fields, int(sel[-1]), float(r[-1]), float(outer[sel[-1]]), 0.0)
        return True

    @staticmethod
    def _last(fields: Fields, row: int, value: float, outer: float, off: float) -> list[Any]:
        """A counter's entry after ``row``: its value, its coarser counter's, its offset, and the
        row's prefix and numeric fields (what a restart's line is compared with)."""
        names = tuple(sorted(name for name, (_, has) in fields.numbers.items() if has[row]))
        return [value, outer, off, fields.prefixes[int(fields.prefix[row])], names]

    def _one_by_one(self, fields: Fields, key: np.ndarray, raw: np.ndarray, outer: np.ndarray,
                    steps: np.ndarray) -> list[int]:
        starts = []
        last_row: dict[int, int] = {}
        rows = zip(key.tolist(), raw.tolist(), outer.tolist(), fields.layout.tolist())
        for i, (k, v, o, lid) in enumerate(rows):
            if k < 0:
                self.started = True
                continue
            if k in last_row:  # the entry of the counter's previous row in this chunk, made now
                j = last_row[k]
                self.counters[k] = self._last(fields, j, *self.counters[k][:3])
            c = self.counters.get(k)
            restart = False
            if c is None:
                off = 0.0 if math.isnan(o) else self.offset_at(k, o)
            else:
                last, lo, off, prefix, names = c
                both = not (math.isnan(o) or math.isnan(lo))  # both lines have the coarser counter
                if both and o > lo and v < last:  # it restarted as the coarser one moved on
                    off += last + (1.0 - v if v <= 0 else 0.0)
                    table = self.offsets.setdefault(k, {})
                    table.pop(o, None)
                    table[o] = off
                    if len(table) > MAX_OFFSETS:
                        del table[next(iter(table))]
                elif both and o < lo:  # back to an earlier epoch: its offset
                    off = self.offset_at(k, o)
                if v + off < last + c[2] and prefix == fields.prefixes[int(fields.prefix[i])]:
                    # the counter went back on a line holding no field its previous line did not
                    mine = self._last(fields, i, v, o, off)[4]
                    restart = set(mine) <= set(names)
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
        for name, (values, has) in numbers.items():
            keep = has[a:b]
            if name in _STEP_INDEX:
                keep = keep & (key[a:b] != _STEP_INDEX[name])
            if name in clock:
                keep = keep & ~clock[name][a:b]
            if single:
                parts.setdefault(name, []).append((np.flatnonzero(keep) + a, values[a:b][keep]))
                continue
            pre = fields.prefix[a:b]
            for pid in np.unique(pre[keep]).tolist():
                mine = keep & (pre == pid)
                parts.setdefault(fields.prefixes[pid] + name, []).append((np.flatnonzero(mine) + a, values[a:b][mine]))
        seg = {}
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


def decode_foreign(data: bytes, state: JsonlState, *, now: float, bulk: bool = True) -> tuple[Parsed, JsonlState] | None:
    """Foreign lines by the rules of the module docstring; None when the chunk holds tailboard's own
    records (``ingest.parse_chunk`` reads those)."""
    fields = fields_from_arrow(data) if bulk else None
    skipped = Parsed()
    if fields is None:
        objs = decode_lines(data, skipped)
        if any(type(o) is dict and type(o.get("k")) is str and o["k"] in KINDS for o in objs):
            return None
        fields = fields_from_objects(objs, skipped)
    tracker = _Tracker(state)
    parsed = points(fields, tracker, now)
    parsed.skipped = skipped.skipped
    return parsed, tracker.saved(state, parsed.last_step)
