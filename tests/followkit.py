"""Shared pieces of the following tests: writing unique lines, waiting, reading back what is held."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path


class LineSink:
    """Keeps, per stream, the lines the follower handed over, with the store's semantics.

    It also checks the follower's side of the contract: offsets contiguous within a file, no
    ingest before open_stream, data always complete lines.
    """

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], list[bytes]] = {}
        self.keys: dict[tuple[str, str], str] = {}
        self.next_offset: dict[tuple[str, str], int] = {}
        self.skips: dict[tuple[str, str, str], int] = {}
        self.resets: list[tuple[str, str, str]] = []
        self.gone: set[str] = set()
        self.progress: list[tuple[int, int, bool]] = []
        self.errors: list[str] = []

    def open_stream(self, run_id: str, stream: str, path: str, file_key: str) -> None:
        k = (run_id, stream)
        self.lines.setdefault(k, [])
        self.keys[k] = file_key
        self.next_offset[k] = 0
        self.gone.discard(run_id)

    def ingest(self, run_id: str, stream: str, data: bytes, start: int, end: int) -> None:
        k = (run_id, stream)
        if k not in self.keys:
            self.errors.append(f"ingest before open_stream: {k}")
        if start < self.next_offset.get(k, 0):
            self.errors.append(f"overlapping chunk {k} at {start} < {self.next_offset[k]}")
        if end - start != len(data) or not data.endswith(b"\n"):
            self.errors.append(f"bad chunk {k} {start}-{end}")
        self.next_offset[k] = end
        self.lines.setdefault(k, []).extend(data.splitlines())

    def skip(self, run_id: str, stream: str, reason: str, count: int = 1) -> None:
        key = (run_id, stream, reason)
        self.skips[key] = self.skips.get(key, 0) + count

    def reset_stream(self, run_id: str, stream: str, reason: str, file_key: str) -> None:
        k = (run_id, stream)
        self.lines[k] = []
        self.keys[k] = file_key
        self.next_offset[k] = 0
        self.resets.append((run_id, stream, reason))

    def mark_gone(self, run_id: str) -> None:
        self.gone.add(run_id)

    def tick(self, now: float) -> None:
        pass

    def set_progress(self, loaded: int, total: int, done: bool) -> None:
        self.progress.append((loaded, total, done))

    def held(self, run_id: str, stream: str) -> list[bytes]:
        return list(self.lines.get((run_id, stream), []))


class Writer:
    """Appends unique lines to files and remembers what each file should hold."""

    def __init__(self) -> None:
        self.n = 0

    def line(self, tag: str) -> bytes:
        self.n += 1
        return b'{"step":%d,"x":%d,"tag":"%s"}' % (self.n, self.n, tag.encode())

    def append(self, path: Path, count: int = 1, tag: str = "") -> list[bytes]:
        lines = [self.line(tag) for _ in range(count)]
        with open(path, "ab") as f:
            f.write(b"".join(x + b"\n" for x in lines))
        return lines


def file_lines(path: Path) -> list[bytes]:
    """The complete lines a file holds now (NUL runs at line starts dropped)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return [x.lstrip(b"\0") for x in data[: end + 1].splitlines() if x.lstrip(b"\0")]


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.005)


def touch_dir(path: Path) -> Path:
    os.makedirs(path, exist_ok=True)
    return path
