"""Reading logs again: the only file access in the store.

A stream is parsed again from its file after an eviction or when another stream of its run was reset
(``reread_stream``); a client resumes from a cursor by reading the bytes between its cursor and what
the store holds (``read_since``); an export page reads raw records from a cursor (``read_records``).
Every read is bounded in bytes, checks that the file is still the one the cursor names, and happens
outside the store's lock (the facade decides under the lock what to read: ``spans_after``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from tailboard.format import MAX_LINE_BYTES, encode_float, scalars_record

from ..ingest import Parsed
from ..readers.base import Reader
from ..series import Series, concat
from ..tail import open_regular
from .cursors import Parts
from .results import Reset
from .runs import Run, Stream

__all__ = ["REREAD_BYTES", "Span", "read_records", "read_since", "reread_stream", "spans_after"]

#: Bytes read at a time when a stream is parsed again.
REREAD_BYTES = 8 << 20


@dataclass(frozen=True)
class Span:
    """Bytes ``[start, end)`` of a stream's current file, to read again with ``reader`` from the
    state it had at ``start``: ``state`` is the one kept at ``base`` (``runs.Marks``; ``base`` is
    ``start`` when it is still kept, -1 when none before it is), and the bytes from ``base`` to
    ``start`` decode to it; ``stop``: where an export page from ``start`` ends, when the stream is
    not JSON lines."""

    name: str
    path: str
    key: str
    start: int
    end: int
    suffix: str
    reader: Reader
    base: int
    state: Any
    stop: int
    after: Any  # the reader's state at ``end``


def spans_after(run: Run, parts: Parts, readers: Any, page_bytes: int = 0) -> list[Span] | Reset:
    """What of each stream lies between a cursor and what the store holds (no I/O). ``readers``:
    the store's ``Registry``; ``page_bytes``: the size of an export page."""
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
        base, state = st.marks.before(off) or (-1, None)
        stop = st.marks.stop(off, page_bytes, st.offset)
        out.append(Span(st.name, st.path, st.file_key, off, st.offset, st.suffix, readers[st.reader],
                        base, state, stop, st.state))
    return out


def reread_stream(run: Run, st: Stream, upto: int, reader: Reader) -> None:
    """Parse a stream's current file again into ``run``, from its start to ``upto``, in bounded
    pieces. A path that now names another file starts the stream over at offset 0."""
    try:
        with open(open_regular(st.path), "rb") as f:
            info = os.fstat(f.fileno())
            if not st.file_key.startswith(f"{info.st_dev}:{info.st_ino}:"):
                # a rotation not yet followed: start over rather than mix two files
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
                cut = reader.complete(data) if offset < upto else len(data)
                rest = data[cut:]
                if cut:
                    parsed, state = reader.decode(data[:cut], st.state, now=time.time())
                    run.apply(st, parsed, live=False, want_delta=False)
                    st.advance(offset - len(rest), state)
    except OSError:
        return


def read_since(spans: list[Span], metrics: list[str] | None, max_bytes: int) -> dict[str, Series] | Reset:
    """The points in ``spans`` (a Reset when they are over ``max_bytes`` in all: ``far``, or the
    files no longer match the cursor)."""
    spans = [sp for sp in spans if sp.end > sp.start]
    # a reader that can tell its state from the bytes after it (state_before) needs no more; else
    # the bytes from the latest state kept decode to it
    before = [getattr(sp.reader, "state_before", None) if sp.base != sp.start else None for sp in spans]
    if any(sp.base < 0 and b is None for sp, b in zip(spans, before)):
        return Reset("far")
    froms = [sp.start if b is not None else sp.base for sp, b in zip(spans, before)]
    if sum(sp.end - a for sp, a in zip(spans, froms)) > max_bytes:
        return Reset("far")
    series: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    for sp, state_before, a in zip(spans, before, froms):
        got = _state_and_bytes(sp, a, sp.end)
        if isinstance(got, Reset):
            return got
        state, data = got
        if state_before is not None:
            state = state_before(data, sp.after)
        parsed, _ = sp.reader.decode(data, state, now=time.time())
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
    for name, parts in series.items():
        s, v, t = concat(parts)
        out[name] = Series(s, v, t, False, int(s.shape[0]))
    return out


def read_records(
    spans: list[Span], limit: int, max_bytes: int
) -> tuple[list[bytes], dict[str, tuple[str, int]], bool] | Reset:
    """Raw records from the spans' starts: at most ``limit`` records and about ``max_bytes`` of log
    (always at least one line). Returns the records (each ``{"stream": S, "record": LINE}`` with
    the line's own bytes), the position reached in each stream, and whether more follow.

    A stream that is not JSON lines has no lines to send: its page is the bytes from the cursor to
    a place where the reader's state is known (``Span.stop``), decoded, each point sent as a scalars
    record of its own (``{"k": "scalars", "step": S, "t": T, "v": {NAME: V}}``) and every other
    record (histogram, text, config) as the reader gave it. Such a page is whole: it may hold more
    than ``limit`` records. It holds every record of those bytes, also those a reader held back as
    already read when it read them again after a rewrite (the reader's ``first_read`` state)."""
    positions = {sp.name: (sp.key, sp.start) for sp in spans}
    out: list[bytes] = []
    budget = max_bytes
    for sp in spans:
        if sp.start == sp.end:
            continue
        if len(out) >= limit or budget <= 0:
            break
        if sp.reader.name != "jsonl":
            got = _decoded_page(sp)
            if isinstance(got, Reset):
                return got
            out.extend(got)
            budget -= sp.stop - sp.start
            positions[sp.name] = (sp.key, sp.stop)
            continue
        fd = _open(sp)
        if isinstance(fd, Reset):
            return fd
        stream = orjson.dumps(sp.name)
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
                        orjson.loads(line)  # strict JSON: then the line itself can be sent
                    except orjson.JSONDecodeError:
                        continue
                    out.append(b'{"stream":%s,"record":%s}' % (stream, line.rstrip()))
        except OSError:
            return Reset("replaced")
        finally:
            os.close(fd)
        positions[sp.name] = (sp.key, pos)
    more = any(positions[sp.name][1] < sp.end for sp in spans)
    return out, positions, more


def _decoded_page(sp: Span) -> list[bytes] | Reset:
    """The records of bytes ``[start, stop)`` of a stream that is not JSON lines (see read_records)."""
    if sp.base < 0:
        return Reset("cursor")
    got = _state_and_bytes(sp, sp.base, sp.stop)
    if isinstance(got, Reset):
        return got
    state, data = got
    # the records the file holds, whatever was held back as already read when following it (a
    # CSV or JSON document read again after a rewrite): the reader's first_read state
    first_read = getattr(sp.reader, "first_read", None)
    state = state if first_read is None else first_read(state)
    parsed, _ = sp.reader.decode(data, state, now=time.time())
    return _as_records(parsed, orjson.dumps(sp.name))


def _state_and_bytes(sp: Span, at: int, end: int) -> tuple[Any, bytes] | Reset:
    """Bytes ``[start, end)`` of a span's file, read from ``at`` (``start``, or ``base`` when the
    state at ``start`` is to be found by decoding the bytes before it), and the reader's state at
    ``start`` (from ``at == base``; else unknown, None); a Reset when the file no longer holds them."""
    data = _read(sp, at, end)
    if isinstance(data, Reset):
        return data
    if len(data) != end - at:
        return Reset("truncated")
    cut = sp.start - at
    head, data = data[:cut], data[cut:]
    if sp.reader.complete(data) != len(data) or (head and sp.reader.complete(head) != len(head)):
        return Reset("truncated")
    state = sp.state if at == sp.base else None
    if head:
        _, state = sp.reader.decode(head, state, now=time.time())
    return state, data


def _as_records(parsed: Parsed, stream: bytes) -> list[bytes]:
    out: list[bytes] = []
    for i, seg in enumerate(parsed.segments):
        for name, (steps, values, times) in seg.items():
            for s, v, t in zip(steps.tolist(), values.tolist(), times.tolist()):
                step = int(s) if s.is_integer() and abs(s) <= 2**53 else encode_float(s)
                rec = scalars_record(step, encode_float(t), {name: encode_float(v)})
                out.append(b'{"stream":%s,"record":%s}' % (stream, orjson.dumps(rec)))
        for seg_index, rec in parsed.others:
            if seg_index == i:
                out.append(b'{"stream":%s,"record":%s}' % (stream, orjson.dumps(rec)))
    return out


def _open(sp: Span, *, lines: bool = True) -> int | Reset:
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
        if lines and sp.start and os.pread(fd, 1, sp.start - 1) != b"\n":
            os.close(fd)
            return Reset("cursor")
    except OSError:
        os.close(fd)
        return Reset("replaced")
    return fd


def _read(sp: Span, start: int, end: int) -> bytes | Reset:
    # a record of a format that is not lines ends anywhere: only lines are checked for a newline
    fd = _open(sp, lines=getattr(sp.reader, "lines", False))
    if isinstance(fd, Reset):
        return fd
    try:
        return os.pread(fd, end - start, start)
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
