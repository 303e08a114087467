"""Model test of following: random writes, truncations, rotations, deletions and restarts.

Hypothesis draws a sequence of operations on a few files in two runs; each is applied to the real
files while a real follower (inotify, or the poller) runs, and to a model that says which lines the
store must hold for each stream. After the sequence, and before each rotation or deletion, the held
lines must equal the model's exactly: none lost, none duplicated, in order.

Model rules: a truncation voids what the stream held (the store is told to reset); a rename
rotation keeps it and goes on in the new file; a file deleted and re-created is read from its
start; after a restart the store holds what the files hold. A trailing partial line is held back
until its newline, and never counted if its file is rotated, truncated or deleted first.
Rotations and deletions wait for the follower to have caught up first: a file generation that is
renamed away before the follower ever saw it cannot be followed by anyone who follows by path. So
does a truncation of a stream that also holds a rotated-away file's lines: a truncation is seen
only when lines the follower read disappear.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from followkit import LineSink, until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tailboard.sidecar.follower import Follower

FILES = [("r0", "a.jsonl"), ("r0", "b.jsonl"), ("deep/r1", "a.jsonl")]

write_op = st.tuples(
    st.just("write"),
    st.integers(0, len(FILES) - 1),
    st.integers(1, 30),  # lines
    st.lists(st.floats(0, 1), max_size=4),  # where to cut the bytes into separate writes
    st.floats(0, 1),  # how much of the last line to leave unwritten (0: all of it)
)
other_op = st.tuples(
    st.sampled_from(["truncate", "rotate", "delete", "restart", "pause"]),
    st.integers(0, len(FILES) - 1),
)
ops_strategy = st.lists(st.one_of(write_op, write_op, other_op), min_size=1, max_size=14)


@dataclass
class Model:
    root: Path
    expected: dict[int, list[bytes]] = field(default_factory=dict)  # held by the store
    disk: dict[int, list[bytes]] = field(default_factory=dict)  # complete lines in the file
    # unwritten end of a line left partial, and that whole line
    pending: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    n: int = 0
    rotations: int = 0

    def path(self, i: int) -> Path:
        run, name = FILES[i]
        return self.root / run / name

    def _created(self, i: int) -> None:
        # A deleted file written again is a new file: what its stream held is void.
        if i in self.deleted or not self.path(i).exists():
            if i in self.deleted:
                self.expected[i] = []
            self.deleted.discard(i)

    def write(self, i: int, count: int, cuts: list[float], leave: float) -> None:
        self._created(i)
        lines = []
        for _ in range(count):
            self.n += 1
            lines.append(b'{"step":%d,"x":%d,"f":%d}' % (self.n, self.n, i))
        data = b"".join(x + b"\n" for x in lines)
        if i in self.pending:  # the line left partial by the last write completes now
            rest, line = self.pending.pop(i)
            data = rest + data
            lines.insert(0, line)
        keep = int(len(lines[-1]) * leave)
        if keep:
            self.pending[i] = (data[len(data) - keep - 1 :], lines[-1])
            data = data[: len(data) - keep - 1]
            lines = lines[:-1]
        points = sorted({int(c * len(data)) for c in cuts} | {0, len(data)})
        with open(self.path(i), "ab", buffering=0) as f:
            for a, b in zip(points, points[1:]):
                f.write(data[a:b])
        self.expected.setdefault(i, []).extend(lines)
        self.disk.setdefault(i, []).extend(lines)

    def truncate(self, i: int) -> None:
        self._created(i)
        with open(self.path(i), "wb"):
            pass
        if self.disk.get(i):
            # Lines of this file were there to be seen go: the stream is void. Truncating a
            # file that never held a complete line changes nothing anyone could see.
            self.expected[i] = []
        self.disk[i] = []
        self.pending.pop(i, None)

    def rotate(self, i: int) -> None:
        if not self.path(i).exists():
            return
        self.rotations += 1
        os.rename(self.path(i), f"{self.path(i)}.{self.rotations}")
        self.disk[i] = []
        self.pending.pop(i, None)

    def delete(self, i: int) -> None:
        if not self.path(i).exists():
            return
        os.unlink(self.path(i))
        if self.disk.get(i):
            # A file that never held a complete line gave nothing: its loss voids nothing.
            self.deleted.add(i)
        self.disk[i] = []
        self.pending.pop(i, None)

    def restarted(self) -> None:
        # A new follower and store see only what the files hold now.
        self.expected = {i: list(v) for i, v in self.disk.items()}
        self.deleted.clear()


def held(sink: LineSink, i: int) -> list[bytes]:
    return sink.held(*FILES[i])


async def settle(sink: LineSink, model: Model) -> None:
    def ok() -> bool:
        return all(held(sink, i) == model.expected.get(i, []) for i in range(len(FILES)))

    try:
        await until(ok, timeout=5.0, what="the model")
    except AssertionError:
        detail = {FILES[i]: (held(sink, i), model.expected.get(i, [])) for i in range(len(FILES))}
        raise AssertionError(f"held != model: {detail}") from None


async def run_ops(root: Path, ops: list[Any], poll: bool) -> None:
    for run, _ in FILES:
        (root / run).mkdir(parents=True, exist_ok=True)
    model = Model(root)

    def start() -> tuple[LineSink, Follower]:
        sink = LineSink()
        return sink, Follower(root, sink, poll=poll, poll_interval=0.02, hot_interval=0.005,
                              sweep_interval=0.5 if poll else 30.0)

    sink, follower = start()
    await follower.start()
    try:
        for op in ops:
            kind, i = op[0], op[1]
            if kind == "write":
                model.write(i, op[2], op[3], op[4])
            elif kind == "truncate":
                if model.expected.get(i, []) != model.disk.get(i, []):
                    # The stream holds lines of a rotated-away file too: whether a truncation of
                    # the current file voids them depends on the follower having seen the
                    # current file's lines, so let it see them first.
                    await settle(sink, model)
                model.truncate(i)
            elif kind in ("rotate", "delete"):
                await settle(sink, model)
                getattr(model, kind)(i)
            elif kind == "restart":
                await follower.stop()
                assert sink.errors == []
                model.restarted()
                sink, follower = start()
                await follower.start()
            else:
                await asyncio.sleep(0.03)
        await settle(sink, model)
        assert sink.errors == []
    finally:
        await follower.stop()


@pytest.mark.parametrize("mode", ["inotify", "poll"])
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=ops_strategy)
def test_follow_model(mode: str, ops: list[Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="tailboard-model-") as tmp:
        asyncio.run(run_ops(Path(tmp), ops, mode == "poll"))
