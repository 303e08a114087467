"""Complete log lines -> parsed records, columnar scalars and counted skips.

The hot path is the catch-up of large backlogs. A chunk in which every line is a scalars record of
the writer's own layout with the same metric names (the usual backlog) is parsed without building a
dict or a string per record: its structure is checked with numpy on the raw bytes, everything but the
numbers is blanked out, and one call reads the numbers as one flat JSON array (``read_layout``,
which the JSON-lines reader also uses for lines of one layout that another program wrote). Any
other chunk is parsed with one orjson call (lines joined into a JSON array) and scalars are gathered
per metric into arrays once per chunk. A chunk with a bad line falls back to line-by-line parsing,
so one bad line costs only itself.

Logs that tailboard did not write may hold numbers orjson refuses: out of float range (``1e400``)
or the bare ``NaN`` / ``Infinity`` / ``-Infinity`` of Python's json module. What orjson refuses is
read again by the standard library (``decode_line``; in ``read_layout``, the flat array of
numbers), giving +-inf and nan, so a line loses none of its other metrics and keeps its fast path;
a line that is not JSON for any other reason is still malformed. A record time that is not finite
counts as no time (the wall clock at reading stands in for it).
"""

from __future__ import annotations

import json
import math
import time
from itertools import chain
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tailboard.format import (
    K_CONFIG,
    K_HEADER,
    K_HIST,
    K_IMAGE,
    K_SCALARS,
    K_TEXT,
    K_VECTOR,
    KIND,
    KINDS,
    SCALARS_KEYS,
    decode_float,
    foreign_scalars,
)

__all__ = ["SKIP_REASONS", "Parsed", "decode_line", "decode_lines", "parse_chunk", "read_layout"]

SKIP_REASONS = (
    "malformed_json",
    "not_object",
    "invalid_utf8",
    "nul_bytes",
    "bad_value",
    "bad_step",
    "line_too_long",
)


@dataclass
class Parsed:
    """What one chunk of lines held, in file order where order matters."""

    # metric -> (steps, values, times) float64 arrays; a new attempt inside the chunk starts a new
    # segment
    segments: list[dict[str, Any]] = field(default_factory=lambda: [{}])
    # records that are not scalars, with the segment index they belong to: (segment, record)
    others: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    records: int = 0
    last_step: float | None = None
    last_time: float | None = None
    native: bool = False
    # the stream's current attempt holds records after this chunk (a header or config alone is not
    # one: a header right after them starts no new attempt)
    started: bool = False

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def _int_token(text: str) -> int | float:
    # as orjson reads integers: exact within 64 bits, else the nearest float (never a huge int,
    # which float() and numpy refuse with OverflowError)
    if len(text) <= 20:
        n = int(text)
        if -(2**63) <= n < 2**64:
            return n
    return float(text)


def _has_lone_surrogate(obj: Any) -> bool:
    """True when a string (or key) holds an unpaired surrogate escape, which orjson rejects."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if type(x) is str:
            try:
                x.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif type(x) is dict:
            stack.extend(x)
            stack.extend(x.values())
        elif type(x) is list:
            stack.extend(x)
    return False


def decode_line(line: bytes) -> Any:
    """One JSON line as orjson reads it, except that numbers out of float range and the
    ``NaN`` / ``Infinity`` / ``-Infinity`` tokens read as nan and +-inf. ValueError when it is not
    JSON (UnicodeDecodeError, a ValueError too, when it is not UTF-8)."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    text = line.decode("utf-8")
    try:
        obj = json.loads(text, parse_int=_int_token)  # floats: 1e400 -> inf; NaN, +-Infinity as is
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if _has_lone_surrogate(obj):
        raise ValueError("unpaired surrogate escape")
    return obj


def decode_lines(data: bytes, parsed: Parsed, where: list[int] | None = None) -> list[Any]:
    """The JSON values of complete lines (one orjson call when all are well formed); lines that are
    not JSON are counted in ``parsed`` and left out. ``where``, if given, gets the line number of
    each value."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        values = orjson.loads(b"[" + b",".join(lines) + b"]")
    except orjson.JSONDecodeError:
        pass
    else:
        if len(values) == len(lines):  # else a line held more than one value ("1, 2"): not JSON
            if where is not None:
                where.extend(range(len(lines)))
            return list(values)
    out: list[Any] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if b"\x00" in line:
            parsed.skip("nul_bytes")
            continue
        try:
            out.append(decode_line(line))
        except UnicodeDecodeError:
            parsed.skip("invalid_utf8")
            continue
        except ValueError:
            parsed.skip("malformed_json")
            continue
        if where is not None:
            where.append(i)
    return out


def parse_chunk(
    data: bytes,
    *,
    prev_step: float | None,
    next_index: int,
    attempt_started: bool,
    native: bool = False,
    now: float | None = None,
) -> Parsed:
    """Parse complete lines.

    ``prev_step`` is the last step seen in the stream (for foreign logs a lower step starts a new
    attempt), ``next_index`` numbers foreign lines that carry no step, ``attempt_started`` tells whether
    the stream already holds records (so that a header starts a new attempt), ``native`` whether the
    stream is tailboard's own (there, only a header starts an attempt).

    The chunk is cut into runs of the writer's scalars lines and runs of anything else (a header, an
    occasional histogram or text record), each parsed as if it were a chunk of its own: the result
    is the same as the store feeding the pieces one after the other.
    """
    ends = _newlines(data)  # found once, for the cutting and for the fast path
    pieces = _runs_of_scalars(data, ends)
    wall_now = time.time() if now is None else now
    if len(pieces) == 1:
        return _parse(data, prev_step, next_index, attempt_started, native, wall_now, pieces[0][1], ends)
    total: Parsed | None = None
    at = 0
    for piece, uniform in pieces:
        mine = ends[np.searchsorted(ends, at) : np.searchsorted(ends, at + len(piece))] - at
        at += len(piece)
        part = _parse(piece, prev_step, next_index, attempt_started, native, wall_now, uniform, mine)
        prev_step = part.last_step  # it starts from prev_step: None only after a new attempt
        next_index += part.records
        attempt_started = part.started
        native = native or part.native
        total = part if total is None else _merge(total, part)
    assert total is not None
    return total


#: Most pieces a chunk is cut into; a chunk that alternates more often is parsed whole.
MAX_PIECES = 16


def _newlines(data: bytes) -> np.ndarray:
    found: np.ndarray = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
    return found


def _runs_of_scalars(data: bytes, ends: np.ndarray | None = None) -> list[tuple[bytes, bool]]:
    """Cut ``data`` into runs of lines that start as the writer's scalars records and runs of other
    lines: ``[(bytes, starts_as_scalars)]``. ``ends``: the positions of its newlines, if known."""
    if len(data) < 64 or b"\n" not in data[:-1]:
        return [(data, data[: len(_HEAD)] == _HEAD)]
    arr = np.frombuffer(data, np.uint8)
    if ends is None:
        ends = _newlines(data)
    starts = np.concatenate(([0], ends[:-1] + 1))
    ok = starts + len(_HEAD) <= arr.shape[0]
    win = _windows(arr)
    heads = np.where(ok, starts, 0)
    is_s = ok.copy()
    for off in (0, 8, len(_HEAD) - 8):
        at = np.minimum(heads + off, win.shape[0] - 1)
        is_s &= win[at] == np.uint64(int.from_bytes(_HEAD[off : off + 8], "little"))
    change = np.flatnonzero(is_s[1:] != is_s[:-1]) + 1
    if change.shape[0] == 0:
        return [(data, bool(is_s[0]))]
    if change.shape[0] + 1 > MAX_PIECES:
        return [(data, False)]
    cuts = [0] + [int(starts[c]) for c in change] + [len(data)]
    return [(data[a:b], bool(is_s[0]) if i % 2 == 0 else not bool(is_s[0]))
            for i, (a, b) in enumerate(zip(cuts, cuts[1:]))]


def _merge(a: Parsed, b: Parsed) -> Parsed:
    """``b`` parsed right after ``a``, as one result."""
    last = dict(a.segments[-1])
    for name, (s, v, t) in b.segments[0].items():
        if name in last:
            s0, v0, t0 = last[name]
            last[name] = (np.concatenate((s0, s)), np.concatenate((v0, v)), np.concatenate((t0, t)))
        else:
            last[name] = (s, v, t)
    shift = len(a.segments) - 1
    out = Parsed(
        segments=a.segments[:-1] + [last] + b.segments[1:],
        others=a.others + [(i + shift, rec) for i, rec in b.others],
        skipped=dict(a.skipped),
        records=a.records + b.records,
        last_step=b.last_step,  # b started from a's: it is the stream's last step after both
        last_time=b.last_time if b.last_time is not None else a.last_time,
        native=a.native or b.native,
        started=b.started,  # b started from a's state
    )
    for reason, n in b.skipped.items():
        out.skip(reason, n)
    return out


def _parse(
    data: bytes,
    prev_step: float | None,
    next_index: int,
    attempt_started: bool,
    native: bool,
    wall_now: float,
    try_uniform: bool,
    ends: np.ndarray | None = None,
) -> Parsed:
    parsed = Parsed()
    # per segment: metric -> list of (steps, values, times) parts, arrays or lists
    parts: list[dict[str, list[tuple[Any, Any, Any]]]] = [{}]
    seg = parts[0]
    started = attempt_started
    last_step = prev_step
    last_time: float | None = None
    index = next_index
    # the current run of scalars records that share one key order: converted in one numpy call
    g_keys: tuple[str, ...] | None = None
    g_steps: list[Any] = []
    g_times: list[Any] = []
    g_rows: list[list[Any]] = []

    def flush_group() -> None:
        nonlocal g_keys
        if g_keys is None:
            return
        keys, steps, times, rows = g_keys, g_steps[:], g_times[:], g_rows[:]
        g_keys = None
        g_steps.clear()
        g_times.clear()
        g_rows.clear()
        try:
            table = np.array(rows, dtype=np.float64)
            s_arr = np.array(steps, dtype=np.float64)
            t_arr = np.array(times, dtype=np.float64)
        except (ValueError, TypeError):
            for st_, t_, row in zip(steps, times, rows):
                for name, x in zip(keys, row):
                    value = native_value(x)
                    if value is None:
                        parsed.skip("bad_value")
                        continue
                    seg.setdefault(name, []).append(([float(st_)], [value], [float(t_)]))
            return
        for j, name in enumerate(keys):
            seg.setdefault(name, []).append((s_arr, table[:, j], t_arr))

    def new_segment() -> dict[str, list[tuple[Any, Any, Any]]]:
        flush_group()
        parts.append({})
        return parts[-1]

    uniform = _parse_uniform(data, ends) if try_uniform else None
    if uniform is not None and not np.isfinite(uniform[1][:, 0]).all():
        uniform = None  # a step that is not a finite number: the general path counts and skips it
    if uniform is not None:
        names, table = uniform
        cols = np.ascontiguousarray(table.T)  # one contiguous row per column: cheap to append and to pickle
        s_arr, t_arr = cols[0], _finite_times(cols[1], wall_now)
        parsed.segments = [{name: (s_arr, cols[2 + j], t_arr) for j, name in enumerate(names)}]
        parsed.records = int(table.shape[0])
        parsed.started = True
        parsed.native = native
        parsed.last_step = float(s_arr[-1])
        parsed.last_time = float(t_arr[-1])
        return parsed

    objs = decode_lines(data, parsed)
    if objs and _all_same_scalars(objs):
        # the common case (a backlog of one writer's scalars): whole columns in a few C-level passes
        v0 = objs[0]["v"]
        try:
            n, k = len(objs), len(v0)
            try:
                table = np.fromiter(
                    chain.from_iterable(map(dict.values, map(_V, objs))), dtype=np.float64, count=n * k
                ).reshape(n, k)
            except (ValueError, TypeError):  # "NaN" spellings: numpy's own string parsing
                table = np.array(list(map(list, map(dict.values, map(_V, objs)))), dtype=np.float64)
            s_arr = np.fromiter(map(_STEP, objs), dtype=np.float64, count=n)
            if not np.isfinite(s_arr).all():
                raise ValueError("a step that is not a finite number")
            t_arr = _finite_times(np.array([o.get("t", wall_now) for o in objs], dtype=np.float64), wall_now)
        except (ValueError, TypeError):
            pass  # a bad value somewhere: the record-by-record path below counts it
        else:
            for j, name in enumerate(v0):
                seg[name] = [(s_arr, table[:, j], t_arr)]
            parsed.records = len(objs)
            parsed.started = True
            parsed.segments = [{name: _concat(ps) for name, ps in seg.items()}]
            parsed.native = native
            parsed.last_step = float(s_arr[-1])
            parsed.last_time = float(t_arr[-1])
            return parsed

    for obj in objs:
        if type(obj) is not dict:
            parsed.skip("not_object")
            continue
        kind = obj.get(KIND)
        if type(kind) is not str:  # a foreign line (its "k" may hold anything)
            kind = None
        if kind == K_SCALARS:
            v = obj.get("v")
            step = obj.get("step")
            if type(step) is not int and type(step) is not float or type(v) is not dict:
                parsed.skip("bad_value")
                continue
            if not math.isfinite(step):  # NaN, +-Infinity or past float range: no place on an axis
                parsed.skip("bad_step")
                continue
            t = obj.get("t")
            if type(t) is not float and type(t) is not int or not math.isfinite(t):
                t = wall_now
            keys = tuple(v)
            if keys != g_keys:
                flush_group()
                g_keys = keys
            g_steps.append(step)
            g_times.append(t)
            g_rows.append(list(v.values()))
            last_step, last_time = float(step), t  # as the fast paths keep it (2**53 + 1 is 2**53)
            started = True
            parsed.records += 1
            index += 1
            continue
        flush_group()
        if kind in KINDS:
            if kind == K_HEADER:
                native = True
                if started:
                    seg = new_segment()
                    last_step = None
            started = started or kind not in (K_HEADER, K_CONFIG)
            t = decode_float(obj.get("t"))
            if t is not None and math.isfinite(t):
                last_time = t
            if kind in (K_VECTOR, K_HIST, K_TEXT, K_IMAGE):  # records of a step
                s = decode_float(obj.get("step"))
                if s is not None and math.isfinite(s):
                    last_step = s
            parsed.others.append((len(parts) - 1, obj))
            parsed.records += 1
            index += 1
        else:
            try:
                step_f, t_f, metrics = foreign_scalars(obj)
            except RecursionError:  # orjson reads 1,024 levels; flattening them recurses deeper
                parsed.skip("bad_value")
                continue
            if step_f is None:
                step_f = float(index)
            if t_f is None or not math.isfinite(t_f):
                t_f = wall_now
            if not native and last_step is not None and step_f < last_step and started:
                seg = new_segment()
            for name, x in metrics.items():
                seg.setdefault(name, []).append(([step_f], [x], [t_f]))
            last_step, last_time = step_f, t_f
            started = True
            parsed.records += 1
            index += 1
    flush_group()
    parsed.segments = [
        {name: _concat(ps) for name, ps in seg_parts.items()} for seg_parts in parts
    ]
    parsed.native = native
    parsed.started = started
    parsed.last_step = None if last_step is None else float(last_step)
    parsed.last_time = None if last_time is None else float(last_time)
    return parsed


def _finite_times(t: np.ndarray, wall_now: float) -> np.ndarray:
    """Record times with the non-finite ones (no time at all) replaced by ``wall_now``, in place."""
    bad = ~np.isfinite(t)
    if bad.any():
        t[bad] = wall_now
    return t


_SPACES = np.uint64(0x2020202020202020)
_ALL = (1 << 64) - 1
_NUMBER_BYTES = b"0123456789.-+eE, "
# the letters of NaN, Infinity and -Infinity, which Python's json module writes bare
_NONFINITE_BYTES = b"NaIfinty"
# the start of every line of the writer's scalars layout (format.SCALARS_KEYS)
_HEAD = orjson.dumps({SCALARS_KEYS[0]: K_SCALARS})[:-1] + b',"%s":' % SCALARS_KEYS[1].encode()


def _windows(a: np.ndarray) -> np.ndarray:
    """Every 8-byte window of a uint8 array as one (unaligned) little-endian uint64: a view."""
    view: np.ndarray = np.ndarray(shape=(a.shape[0] - 7,), dtype="<u8", buffer=a, offset=0, strides=(1,))
    return view


def _parse_uniform(data: bytes, ends: np.ndarray | None = None) -> tuple[list[str], np.ndarray] | None:
    """Lines that are all ``{"k":"scalars","step":S,"t":T,"v":{"m1":V1,...}}`` with the same names
    in the same order, as the writer writes them: the names and an (n, 2 + names) float64 table of
    step, time and values. None for anything else (the general path then parses the chunk). ``ends``:
    the positions of its newlines, if known.

    Exact, not heuristic: every byte that is not a number is compared with the layout the first line
    gives, the numbers are read as line-by-line reading reads them (bare NaN and Infinity, numbers
    out of float range included), and anything else (escapes, quoted or literal values, a name
    holding ':') sends the chunk down the general path.
    """
    if len(data) < 64 or b"\\" in data or data[:len(_HEAD)] != _HEAD:
        return None
    first = data[: data.find(b"\n")]
    try:
        obj = decode_line(first)  # bare NaN / Infinity too
    except ValueError:
        return None
    if type(obj) is not dict or tuple(obj) != SCALARS_KEYS or obj["k"] != K_SCALARS:
        return None
    v = obj["v"]
    if type(v) is not dict or not v or any(":" in k for k in v):
        return None
    keys = list(v)
    nk = len(keys)
    consts = [_HEAD, b',"%s":' % SCALARS_KEYS[2].encode(), b',"%s":{' % SCALARS_KEYS[3].encode() + orjson.dumps(keys[0]) + b":"]
    consts += [b"," + orjson.dumps(k) + b":" for k in keys[1:]]
    consts.append(b"}}\n")
    # colons per line: k, step, t, v and one per name; the colon each number follows
    table = read_layout(data, consts, [len(c) - 1 for c in consts], [1, 2, *range(4, nk + 4)], nk + 4, ends)
    return None if table is None else (keys, table)


def read_layout(data: bytes, consts: list[bytes], anchors: list[int], before: list[int], per: int,
                ends: np.ndarray | None = None) -> np.ndarray | None:
    """The numbers of lines that all have one layout: ``consts[j]`` is the text before number j
    (``consts[-1]``, after the last, ends with the newline), ``anchors[j]`` the offset in it of the
    colon the number follows, ``before[j]`` which of the line's ``per`` colons that is. An (n, numbers)
    float64 table, or None when a line differs anywhere: every byte that is not a number is compared,
    and the numbers, JSON number tokens only, are read by one orjson call."""
    arr = np.frombuffer(data, np.uint8)
    if ends is None:
        ends = _newlines(data)
    n = int(ends.shape[0])
    colons = np.flatnonzero(arr == 58)
    if n == 0 or colons.shape[0] != n * per or ends[-1] != arr.shape[0] - 1:
        return None
    if not np.array_equal(np.searchsorted(colons, ends), per * np.arange(1, n + 1)):
        return None
    col = colons.reshape(n, per)
    starts = [col[:, before[j]] - anchors[j] for j in range(len(consts) - 1)]
    if starts[0][0] != 0 or not np.array_equal(starts[0][1:], ends[:-1] + 1):
        return None
    head = consts[0][:8]
    if len(head) == 8 and starts[0][-1] + 8 <= arr.shape[0] and \
            not bool((_windows(arr)[starts[0]] == np.uint64(int.from_bytes(head, "little"))).all()):
        return None  # lines of another layout: said early, before the full comparison below
    starts.append(ends - (len(consts[-1]) - 1))
    for j in range(1, len(consts)):  # no empty number
        if not bool((starts[j] > starts[j - 1] + len(consts[j - 1])).all()):
            return None
    # Check every constant at every line by 8-byte windows (one gather for all), then blank them:
    # spaces, and a comma in each one's first byte to separate the numbers. A constant shorter
    # than a window is checked through a window that ends with it (starts with it, for the head of
    # a line), the other bytes masked out.
    cols: list[np.ndarray] = []
    want: list[int] = []
    mask: list[int] = []
    full: list[np.ndarray] = []
    short: list[np.ndarray] = []
    for j, c in enumerate(consts):
        size = len(c)
        if size >= 8:
            offs = list(range(0, size - 7, 8))
            if offs[-1] != size - 8:
                offs.append(size - 8)
            words = [int.from_bytes(c[o : o + 8], "little") for o in offs]
            masks = [_ALL] * len(offs)
            full.append(starts[j][:, None] + np.asarray(offs, dtype=np.int64))
            cols.append(full[-1])
        elif j == 0:  # a short head: the window that starts with it (a line has 8 bytes or more)
            offs = [0]
            words = [int.from_bytes(c, "little")]
            masks = [(1 << (8 * size)) - 1]
            cols.append(starts[j][:, None] + np.asarray(offs, dtype=np.int64))
            short.append((starts[j][:, None] + np.arange(size, dtype=np.int64)).ravel())
        else:
            offs = [size - 8]
            words = [int.from_bytes(c, "little") << (8 * (8 - size))]
            masks = [_ALL ^ ((1 << (8 * (8 - size))) - 1)]
            cols.append(starts[j][:, None] + np.asarray(offs, dtype=np.int64))
            short.append((starts[j][:, None] + np.arange(size, dtype=np.int64)).ravel())
        want.extend(words)
        mask.extend(masks)
    at = np.concatenate(cols, axis=1)
    if int(at.max()) + 8 > arr.shape[0] or int(at.min()) < 0:
        return None
    buf = arr.copy()
    src, dst = _windows(arr), _windows(buf)
    m = np.asarray(mask, dtype=np.uint64)
    if not bool(((src[at] & m) == np.asarray(want, dtype=np.uint64)).all()):
        return None
    if full:
        dst[np.concatenate(full, axis=1)] = _SPACES
    if short:
        buf[np.concatenate(short)] = 32
    buf[np.concatenate(starts[1:])] = 44
    buf[starts[-1][-1]] = 32  # no comma after the last number
    flat = buf.tobytes()
    if flat.translate(None, _NUMBER_BYTES).translate(None, _NONFINITE_BYTES):
        return None  # something else than numbers: strings, true/false/null
    values = _numbers(b"[" + flat + b"]")
    if values is None:
        return None
    try:
        table = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    nums = len(consts) - 1
    if table.shape != (n * nums,):
        return None
    return table.reshape(n, nums)


def _numbers(text: bytes) -> list[Any] | None:
    """A JSON array of number tokens as line-by-line reading reads them (``decode_line``): orjson,
    else, for what it refuses (``NaN``, ``Infinity``, out of float range), Python's json module;
    None when it is not such an array."""
    try:
        values: list[Any] = orjson.loads(text)
        return values
    except orjson.JSONDecodeError:
        pass
    try:
        values = json.loads(text, parse_int=_int_token)
    except ValueError:  # JSONDecodeError, and UnicodeDecodeError (not reached: ASCII only)
        return None
    return values if type(values) is list else None


def _V(o: dict[str, Any]) -> Any:
    return o["v"]


def _STEP(o: dict[str, Any]) -> Any:
    return o["step"]


def _all_same_scalars(objs: list[Any]) -> bool:
    """True when every object is a scalars record with a numeric step, a numeric or absent time, and
    the same metric names in the same order (checked in C-level passes, no Python loop per record)."""
    try:
        if set(map(dict.get, objs, ["k"] * len(objs))) != {K_SCALARS}:
            return False
        vs = list(map(_V, objs))
        if len(set(map(type, vs))) != 1 or type(vs[0]) is not dict:
            return False
        if len(set(map(tuple, vs))) != 1:
            return False
        if not set(map(type, map(_STEP, objs))) <= {int, float}:
            return False
        return set(map(type, map(dict.get, objs, ["t"] * len(objs)))) <= {int, float}
    except (TypeError, KeyError):
        return False


def native_value(x: Any) -> float | None:
    """A value of a tailboard scalars record as a float, as numpy reads it: numbers, booleans,
    numeric strings and the non-finite spellings; null is NaN. None for anything else."""
    try:
        return float(np.float64(x))
    except (ValueError, TypeError):
        return None


def _concat(ps: list[tuple[Any, Any, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if len(ps) == 1:
        s, v, t = ps[0]
        return (np.asarray(s, np.float64), np.asarray(v, np.float64), np.asarray(t, np.float64))
    return (
        np.concatenate([np.asarray(p[0], np.float64) for p in ps]),
        np.concatenate([np.asarray(p[1], np.float64) for p in ps]),
        np.concatenate([np.asarray(p[2], np.float64) for p in ps]),
    )

