"""Complete log lines -> parsed records, columnar scalars and counted skips.

The hot path is the catch-up of large backlogs: a chunk of lines is parsed with one orjson call
(lines joined into a JSON array) and scalars are gathered per metric into plain lists that the store
turns into numpy arrays once per chunk. A chunk with a bad line falls back to line-by-line parsing,
so one bad line costs only itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

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

    # metric -> ([steps], [values], [times]); a new attempt inside the chunk splits it (see `segments`)
    segments: list[dict[str, tuple[list[float], list[float], list[float]]]] = field(
        default_factory=lambda: [{}]
    )
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
    seg = parsed.segments[0]
    started = attempt_started
    last_step = prev_step
    last_time: float | None = None
    index = next_index

    def new_segment() -> dict[str, tuple[list[float], list[float], list[float]]]:
        parsed.segments.append({})
        return parsed.segments[-1]

    for obj in _decode_lines(data, parsed):
        if type(obj) is not dict:
            parsed.skip("not_object")
            continue
        kind = obj.get(KIND)
        if kind == K_SCALARS:
            step = decode_float(obj.get("step"))
            v = obj.get("v")
            if step is None or type(v) is not dict:
                parsed.skip("bad_value")
                continue
            t = decode_float(obj.get("t"))
            if t is None:
                t = wall_now
            for name, value in v.items():
                x = decode_float(value)
                if x is None:
                    parsed.skip("bad_value")
                    continue
                col = seg.get(name)
                if col is None:
                    col = seg[name] = ([], [], [])
                col[0].append(step)
                col[1].append(x)
                col[2].append(t)
            last_step, last_time = step, t
            started = True
            parsed.records += 1
            index += 1
        elif kind in KINDS:
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
            parsed.others.append((len(parsed.segments) - 1, obj))
            parsed.records += 1
            index += 1
        else:
            step, t, metrics = foreign_scalars(obj)
            if step is None:
                step = float(index)
            if t is None:
                t = wall_now
            if not native and last_step is not None and step < last_step and started:
                seg = new_segment()
            for name, x in metrics.items():
                col = seg.get(name)
                if col is None:
                    col = seg[name] = ([], [], [])
                col[0].append(step)
                col[1].append(x)
                col[2].append(t)
            last_step, last_time = step, t
            started = True
            parsed.records += 1
            index += 1
    parsed.native = native
    parsed.last_step = last_step
    parsed.last_time = last_time
    return parsed


# Kinds whose records the store keeps whole (not columnar).
RECORD_KINDS = (K_HEADER, K_CONFIG, K_VECTOR, K_HIST, K_TEXT, K_END)
