"""Replay finished logs as if they were being written now, paced by their recorded wall times.

The records of every file under the source root are merged in order of their wall time and appended
to copies of the files in a scratch folder, sleeping (t - t0) / speed between them (records due
within 5 ms of each other are written together, one write per file, so a fast replay does not keep
the server's event loop to itself); the normal
follower and server then serve the scratch folder, so a replay goes through exactly the same
protocol as a live run.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
from pathlib import Path
from typing import Iterator

import orjson

from tailboard.format import decode_float

__all__ = ["Replayer", "record_time"]

#: Records due within this many seconds of each other are written together.
BATCH_SECONDS = 0.005
#: At most this many records are written before the event loop gets a turn.
BATCH_LINES = 2000

logger = logging.getLogger(__name__)


def record_time(line: bytes, previous: float | None) -> float | None:
    """The wall time of a record: `t`, else a header's `start`, else the previous record's."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return previous
    if isinstance(obj, dict):
        for key in ("t", "start", "time", "timestamp", "wall_time"):
            t = decode_float(obj.get(key))
            if t is not None:
                return float(t)
    return previous


def _files(root: Path) -> list[Path]:
    root_real = root.resolve()
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            p = Path(dirpath, name)
            if name.endswith(".jsonl") and not p.is_symlink() and p.resolve().is_relative_to(root_real):
                out.append(p)
    return out


def _timed_lines(path: Path) -> Iterator[tuple[float, bytes]]:
    t: float | None = None
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break  # a torn last line is not replayed
            t = record_time(line, t)
            yield (t if t is not None else 0.0), line


class Replayer:
    def __init__(self, source: str | os.PathLike[str], target: str | os.PathLike[str], *, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.source = Path(source)
        self.target = Path(target)
        self.speed = speed
        self.written = 0

    async def run(self) -> None:
        files = _files(self.source)
        streams = []
        for i, p in enumerate(files):
            rel = p.relative_to(self.source)
            (self.target / rel.parent).mkdir(parents=True, exist_ok=True)
            streams.append(((t, i, line) for t, line in _timed_lines(p)))
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
                if t0 is None:
                    t0 = t
                due = start_wall + max(0.0, t - t0) / self.speed
                delay = due - loop.time()
                if delay > BATCH_SECONDS:
                    # what is due now goes out in one write per file; then wait for the next record
                    flush()
                    await asyncio.sleep(delay)
                pending.setdefault(i, []).append(line)
                held += 1
                self.written += 1
                if held >= BATCH_LINES:  # a fast replay: let the server breathe between batches
                    flush()
                    await asyncio.sleep(0)
            flush()
        finally:
            for f in outs:
                f.close()
        logger.info("replay finished: %d records", self.written)
