"""Replay finished logs as if they were being written now, paced by their recorded wall times.

The records of every file under the source root are merged in order of their wall time and appended
to copies of the files in a scratch folder, sleeping (t - t0) / speed between them (records due
within 5 ms of each other are written together, one write per file, so a fast replay does not keep
the server's event loop to itself); the normal follower and server then serve the scratch folder,
so a replay goes through exactly the same protocol as a live run. At the end every copy equals its
source byte for byte.

A line's time is its record's (``t``, a header's ``start``, ...), never earlier than the time of a
line before it in the same file: a clock that stepped back does not reorder a file. Lines without a
usable time (none, non-finite, unreadable) go out with the line before them; lines before a file's
first time go out with that first line; a torn last line goes out right after the last complete one.

Every format the server reads is replayed (discovery and the readers decide, as when following).
JSON lines go out line by line; other formats (event files, CSV, text logs, JSON documents) in
pieces of about ``PIECE_BYTES`` cut where the file's reader says records end, each due at the
latest time the reader finds in it.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tailboard.format import TIME_KEYS, decode_float

from .discovery import scan
from .ingest import decode_line
from .readers.base import Reader
from .readers.registry import Registry

__all__ = ["Replayer", "record_time"]

#: Records due within this many seconds of each other are written together.
BATCH_SECONDS = 0.005
#: At most this many records are written before the event loop gets a turn.
BATCH_LINES = 2000
#: Lines of a file read ahead for its first time (the lines before it go out with it).
LOOKAHEAD = 1000
#: Size of the pieces a file that is not JSON lines is replayed in.
PIECE_BYTES = 4096
#: Bytes read at a time from such a file.
READ_BYTES = 1 << 20

logger = logging.getLogger(__name__)


def record_time(line: bytes) -> float | None:
    """The wall time of a record: `t`, else a header's `start` (or a foreign log's time field);
    None when the line has no finite one."""
    try:
        obj = decode_line(line)
    except ValueError:
        return None
    if isinstance(obj, dict):
        for key in (*TIME_KEYS, "start"):
            t = decode_float(obj.get(key))
            if t is not None and math.isfinite(t):
                return float(t)
    return None


def _files(root: Path, readers: Registry) -> list[tuple[Path, Reader]]:
    """The streams the server would follow under ``root`` (discovery and the readers decide what
    is a log), each file once, in path order, with its reader."""
    seen: set[tuple[int, int]] = set()
    out = []
    for ref in sorted(scan(str(root), candidate=readers.candidate).values(), key=lambda r: r.path):
        try:
            st = os.stat(ref.path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:  # a second name of one file is replayed once
            continue
        choice = readers.look(ref.path, os.path.relpath(ref.path, root).replace(os.sep, "/"))
        if choice.reader is not None:
            seen.add((st.st_dev, st.st_ino))
            out.append((Path(ref.path), readers[choice.reader]))
    return out


def _pieces(path: Path, reader: Reader) -> Iterator[bytes]:
    """A file cut into pieces of whole records of about PIECE_BYTES (a record longer than that is
    a piece of its own), the torn rest last."""
    held = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(READ_BYTES)
            held += block
            window = PIECE_BYTES
            while window <= len(held) or (not block and held):
                cut = reader.complete(held[:window])
                if cut:
                    yield held[:cut]
                    held, window = held[cut:], PIECE_BYTES
                elif window >= len(held):
                    break
                else:
                    window *= 2
            if not block:
                break
    if held:
        yield held


def _paced(items: Iterator[tuple[float | None, bytes]]) -> Iterator[tuple[float, bytes]]:
    """Pieces of one file with the time each is due: the latest time seen so far (never
    decreasing); pieces before the file's first time go out with it, -inf for pieces due at once
    (no time yet after LOOKAHEAD pieces, or none at all)."""
    latest = -math.inf
    held: list[bytes] = []  # pieces before the file's first time
    for t, piece in items:
        if t is not None and t > latest:
            latest = t
        if latest == -math.inf and len(held) < LOOKAHEAD:
            held.append(piece)
            continue
        for early in held:
            yield latest, early
        held.clear()
        yield latest, piece
    for early in held:  # the file holds no time at all
        yield latest, early


def _piece_times(path: Path, reader: Reader) -> Iterator[tuple[float | None, bytes]]:
    """The pieces of a file that is not JSON lines, each with the latest time its records hold."""
    state = reader.new_state()
    for piece in _pieces(path, reader):
        try:
            parsed, state = reader.decode(piece, state, now=math.nan)
        except Exception:  # a reader's bug must not end the replay: the piece goes out untimed
            yield None, piece
            continue
        times = [float(t[np.isfinite(t)].max()) for seg in parsed.segments for _, _, t in seg.values()
                 if np.isfinite(t).any()]
        times += [t for _, rec in parsed.others
                  if (t := decode_float(rec.get("t"))) is not None and math.isfinite(t)]
        yield (max(times) if times else None), piece


def _line_times(path: Path) -> Iterator[tuple[float | None, bytes]]:
    """The lines of one file (a torn last line included, without a time) with their records' times."""
    with open(path, "rb") as f:
        for line in f:
            yield (record_time(line) if line.endswith(b"\n") else None), line


def _tagged(i: int, lines: Iterator[tuple[float, bytes]]) -> Iterator[tuple[float, int, bytes]]:
    for t, line in lines:
        yield t, i, line


class Replayer:
    """Copies every log under ``source`` to the same path under ``target``, record by record,
    paced by the records' wall times compressed ``speed`` times (see the module docstring)."""

    def __init__(self, source: str | os.PathLike[str], target: str | os.PathLike[str], *, speed: float = 1.0,
                 readers: Registry | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.source = Path(os.path.abspath(source))
        self.target = Path(target)
        self.speed = speed
        self.readers = Registry() if readers is None else readers
        self.written = 0

    async def run(self) -> None:
        found = _files(self.source, self.readers)
        files = [p for p, _ in found]
        streams = []
        for i, (p, reader) in enumerate(found):
            rel = p.relative_to(self.source)
            (self.target / rel.parent).mkdir(parents=True, exist_ok=True)
            timed = _paced(_line_times(p) if reader.name == "jsonl" else _piece_times(p, reader))
            streams.append(_tagged(i, timed))
        outs = [open(self.target / p.relative_to(self.source), "ab", buffering=0) for p in files]
        loop = asyncio.get_running_loop()
        pending: dict[int, list[bytes]] = {}
        held = 0

        def flush() -> None:
            nonlocal held
            for j, lines in pending.items():
                outs[j].write(b"".join(lines))
            pending.clear()
            held = 0

        try:
            start_wall = loop.time()
            t0: float | None = None
            for t, i, line in heapq.merge(*streams, key=lambda x: (x[0], x[1])):
                if t0 is None and t > -math.inf:
                    t0 = t
                due = start_wall + (t - t0) / self.speed if t0 is not None and t > t0 else start_wall
                delay = due - loop.time()
                if delay > BATCH_SECONDS:
                    # what is due now goes out in one write per file; then wait for the next record
                    flush()
                    await asyncio.sleep(delay)
                pending.setdefault(i, []).append(line)
                held += 1
                self.written += line.endswith(b"\n")  # records: a torn tail is not one
                if held >= BATCH_LINES:  # a fast replay: let the server breathe between batches
                    flush()
                    await asyncio.sleep(0)
            flush()
        finally:
            for f in outs:
                f.close()
        logger.info("replay finished: %d records", self.written)
