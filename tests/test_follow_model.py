"""Model test of following: random writes, truncations, rotations, deletions and restarts.

Hypothesis draws a sequence of operations on a few files in two runs; each is applied to the real
files while a real follower (inotify, or the poller) runs, and to a model that says which lines the
store must hold for each stream. After the sequence, and before each rotation or deletion, the held
lines must equal the model's exactly: none lost, none duplicated, in order.

Model rules: a truncation voids what the stream held (the store is told to reset, and rebuilds
the run's other streams from their current files); a rename rotation keeps it and goes on in the
new file; a file deleted and re-created is read from its start; after a restart the store holds
what the files hold. What a stream holds is read back from the real Store. A trailing partial
line is held back until its newline, and never counted if its file is rotated, truncated or
deleted first.
Rotations and deletions wait for the follower to have caught up first: a file generation that is
renamed away before the follower ever saw it cannot be followed by anyone who follows by path. So
does a void of a stream whose run holds other data (see needs_settle): a truncation is seen only
when lines the follower read disappear.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from followkit import ErrorLog, StoreView, until
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
    expected: dict[int, list[int]] = field(default_factory=dict)  # ids held by the store
    disk: dict[int, list[int]] = field(default_factory=dict)  # ids of complete lines in the file
    # unwritten end of a line left partial, and that line's id
    pending: dict[int, tuple[bytes, int]] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    n: int = 0
    rotations: int = 0

    def path(self, i: int) -> Path:
        run, name = FILES[i]
        return self.root / run / name

    def others(self, i: int) -> list[int]:
        return [j for j in range(len(FILES)) if j != i and FILES[j][0] == FILES[i][0]]

    def recreates(self, i: int) -> bool:
        return i in self.deleted

    def _void(self, i: int) -> None:
        # The store drops the stream's data; it rebuilds the run's other streams from their
        # current files, so their rotated-away lines go too.
        self.expected[i] = []
        for j in self.others(i):
            self.expected[j] = list(self.disk.get(j, []))

    def _created(self, i: int) -> None:
        # A deleted file written again is a new file: what its stream held is void.
        if i in self.deleted:
            self._void(i)
            self.deleted.discard(i)

    def write(self, i: int, count: int, cuts: list[float], leave: float) -> None:
        self._created(i)
        key = FILES[i][1][: -len(".jsonl")].encode()
        ids, lines = [], []
        for _ in range(count):
            self.n += 1
            ids.append(self.n)
            lines.append(b'{"step":%d,"%s":%d}' % (self.n, key, self.n))
        data = b"".join(x + b"\n" for x in lines)
        if i in self.pending:  # the line left partial by the last write completes now
            rest, n = self.pending.pop(i)
            data = rest + data
            ids.insert(0, n)
        keep = int(len(lines[-1]) * leave)
        if keep:
            self.pending[i] = (data[len(data) - keep - 1 :], ids[-1])
            data = data[: len(data) - keep - 1]
            ids = ids[:-1]
        points = sorted({int(c * len(data)) for c in cuts} | {0, len(data)})
        with open(self.path(i), "ab", buffering=0) as f:
            for a, b in zip(points, points[1:], strict=False):
                f.write(data[a:b])
        self.expected.setdefault(i, []).extend(ids)
        self.disk.setdefault(i, []).extend(ids)

    def truncate(self, i: int) -> None:
        self._created(i)
        with open(self.path(i), "wb"):
            pass
        if self.disk.get(i):
            # Lines of this file were there to be seen go: the stream is void. Truncating a
            # file that never held a complete line changes nothing anyone could see.
            self._void(i)
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


def held(view: StoreView, i: int) -> list[int]:
    return view.held(*FILES[i])


async def settle(view: StoreView, model: Model) -> None:
    def ok() -> bool:
        return all(held(view, i) == model.expected.get(i, []) for i in range(len(FILES)))

    try:
        await until(ok, timeout=5.0, what="the model")
    except AssertionError:
        detail = {FILES[i]: (held(view, i), model.expected.get(i, [])) for i in range(len(FILES))}
        raise AssertionError(f"held != model: {detail}") from None


async def run_ops(root: Path, ops: list[Any], poll: bool) -> None:
    for run, _ in FILES:
        (root / run).mkdir(parents=True, exist_ok=True)
    model = Model(root)

    def start() -> tuple[StoreView, Follower]:
        view = StoreView(root)
        return view, Follower(root, view.store, poll=poll, poll_interval=0.02, hot_interval=0.005,
                              sweep_interval=0.5 if poll else 30.0)

    def needs_settle(i: int) -> bool:
        # Whether a void of stream i drops lines depends on what the follower has seen: of the
        # stream itself when it also holds a rotated-away file's lines, and of the run's other
        # streams, which the store rebuilds from their current files. Let it see everything
        # first; a stream alone in its run is voided while the follower races it.
        return model.expected.get(i, []) != model.disk.get(i, []) or any(
            model.expected.get(j) or model.path(j).exists() for j in model.others(i))

    view, follower = start()
    with ErrorLog() as errors:
        await follower.start()
        try:
            for op in ops:
                kind, i = op[0], op[1]
                if kind == "write":
                    if model.recreates(i) and needs_settle(i):
                        await settle(view, model)
                    model.write(i, op[2], op[3], op[4])
                elif kind == "truncate":
                    if needs_settle(i):
                        await settle(view, model)
                    model.truncate(i)
                elif kind in ("rotate", "delete"):
                    await settle(view, model)
                    getattr(model, kind)(i)
                elif kind == "restart":
                    await follower.stop()
                    model.restarted()
                    view, follower = start()
                    await follower.start()
                else:
                    await asyncio.sleep(0.03)
            await settle(view, model)
        finally:
            await follower.stop()
    assert errors.messages == []


@pytest.mark.parametrize("mode", ["inotify", "poll"])
@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=ops_strategy)
def test_follow_model(mode: str, ops: list[Any]) -> None:
    with tempfile.TemporaryDirectory(prefix="tailboard-model-") as tmp:
        asyncio.run(run_ops(Path(tmp), ops, mode == "poll"))
