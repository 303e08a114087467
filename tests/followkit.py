"""Shared pieces of the following tests: unique records, waiting, and reading back from the Store.

Every record a test writes is ``{"step": n, "<file stem>": n}`` with ``n`` unique and increasing
across the whole test, so a stream's data in the store is the series of the metric named after its
file (the store suffixes ranks above 0 with ``@rankN``), and its values are exactly the ids written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from tailboard.sidecar.store import ResetRun, Store


def stem(stream: str) -> str:
    return stream[: -len(".jsonl")] if stream.endswith(".jsonl") else stream


class StoreView:
    """A real Store plus what the tests ask of it: held ids per stream, resets, skips."""

    def __init__(self, root: Path | str) -> None:
        self.store = Store(root)
        self.resets: list[tuple[str, str]] = []
        self.store.add_listener(self._hear)

    def _hear(self, event: Any) -> None:
        if isinstance(event, ResetRun):
            self.resets.append((event.run_id, event.reason))

    def held(self, run_id: str, stream: str) -> list[int]:
        """The ids the store holds for one stream, in step order."""
        try:
            names = self.store.metrics(run_id)
        except KeyError:
            return []
        name = stem(stream)
        for metric in names:
            if metric == name or metric.startswith(name + "@"):
                return [int(v) for v in self.store.series(run_id, metric).values]
        return []

    def runs(self) -> list[str]:
        return [r.id for r in self.store.runs()]

    def status(self, run_id: str) -> str | None:
        info = self.store.get_run(run_id)
        return None if info is None else info.status

    def skipped(self, run_id: str, reason: str) -> int:
        info = self.store.get_run(run_id)
        return 0 if info is None else int(info.skipped.get(reason, 0))


class Writer:
    """Appends unique records to files."""

    def __init__(self) -> None:
        self.n = 0

    def line(self, path: Path) -> tuple[int, bytes]:
        self.n += 1
        return self.n, b'{"step":%d,"%s":%d}' % (self.n, stem(path.name).encode(), self.n)

    def lines(self, path: Path, count: int) -> tuple[list[int], bytes]:
        made = [self.line(path) for _ in range(count)]
        return [i for i, _ in made], b"".join(x + b"\n" for _, x in made)

    def append(self, path: Path, count: int = 1) -> list[int]:
        ids, data = self.lines(path, count)
        with open(path, "ab") as f:
            f.write(data)
        return ids


def file_ids(path: Path) -> list[int]:
    """The ids of the complete records a file holds now."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    out = []
    for line in data[: end + 1].splitlines():
        line = line.lstrip(b"\0")
        if line:
            out.append(int(orjson.loads(line)["step"]))
    return out


async def until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or cond}")
        await asyncio.sleep(0.005)


class ErrorLog(logging.Handler):
    """Collects errors logged by the follower (a store call that raised, a failed batch)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> ErrorLog:
        logging.getLogger("tailboard.sidecar").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("tailboard.sidecar").removeHandler(self)


#: Both ways of being told about changes: every follower test runs in each.
MODES = ["inotify", "poll"]
