"""Complete log lines -> parsed records, columnar scalars and counted skips.

The hot path is the catch-up of large backlogs: a chunk of lines is parsed with one orjson call
(lines joined into a JSON array) and scalars are gathered per metric into plain lists that the store
turns into numpy arrays once per chunk. A chunk with a bad line falls back to line-by-line parsing,
so one bad line costs only itself.
"""

from __future__ import annotations

import time
from itertools import chain
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from tailboard.format import (
    K_CONFIG,
    K_END,
    K_HEADER,
    K_HIST,
    K_SCALARS,
    K_TEXT,
    K_VECTOR,
    KIND,
    KINDS,
    decode_float,
    foreign_scalars,
)

__all__ = ["Parsed", "parse_chunk", "SKIP_REASONS"]

SKIP_REASONS = (
    "malformed_json",
    "not_object",
    "invalid_utf8",
    "nul_bytes",
    "bad_value",
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

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n


def _decode_lines(data: bytes, parsed: Parsed) -> list[Any]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    try:
        return list(orjson.loads(b"[" + b",".join(lines) + b"]"))
    except orjson.JSONDecodeError:
        pass
    out: list[Any] = []
    for line in lines:
        if not line.strip():
            continue
        if b"\x00" in line:
            parsed.skip("nul_bytes")
            continue
        try:
            out.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                parsed.skip("invalid_utf8")
                continue
            parsed.skip("malformed_json")
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
    """
    parsed = Parsed()
    wall_now = time.time() if now is None else now
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
        g_steps.clear(), g_times.clear(), g_rows.clear()
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

    objs = _decode_lines(data, parsed)
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
            t_arr = np.array([o.get("t", wall_now) for o in objs], dtype=np.float64)
        except (ValueError, TypeError):
            pass  # a bad value somewhere: the record-by-record path below counts it
        else:
            for j, name in enumerate(v0):
                seg[name] = [(s_arr, table[:, j], t_arr)]
            parsed.records = len(objs)
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
        if kind == K_SCALARS:
            v = obj.get("v")
            step = obj.get("step")
            if type(step) is not int and type(step) is not float or type(v) is not dict:
                parsed.skip("bad_value")
                continue
            t = obj.get("t")
            if type(t) is not float and type(t) is not int:
                t = wall_now
            keys = tuple(v)
            if keys != g_keys:
                flush_group()
                g_keys = keys
            g_steps.append(step)
            g_times.append(t)
            g_rows.append(list(v.values()))
            last_step, last_time = step, t
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
            if t is not None:
                last_time = t
            if kind in (K_VECTOR, K_HIST, K_TEXT):
                s = decode_float(obj.get("step"))
                if s is not None:
                    last_step = s
            parsed.others.append((len(parts) - 1, obj))
            parsed.records += 1
            index += 1
        else:
            step_f, t_f, metrics = foreign_scalars(obj)
            if step_f is None:
                step_f = float(index)
            if t_f is None:
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
    parsed.last_step = None if last_step is None else float(last_step)
    parsed.last_time = None if last_time is None else float(last_time)
    return parsed


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


# Kinds whose records the store keeps whole (not columnar).
RECORD_KINDS = (K_HEADER, K_CONFIG, K_VECTOR, K_HIST, K_TEXT, K_END)
