"""Follower end to end: real files in a temp tree, real watchfiles or poller, the real Store.

What a stream holds is read back from the store (see followkit): the ids of its records, which
must equal exactly the ids written, in order: none lost, none duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import resource
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from followkit import StoreView, Writer, file_ids, until
from tailboard.sidecar.follower import Follower



def make_follower(root: Path, view: StoreView, mode: str, **kw: Any) -> Follower:
    opts: dict[str, Any] = {"poll": mode == "poll", "poll_interval": 0.05, "hot_interval": 0.01}
    # inotify tests use a long sweep so that they prove events do the work; the poller relies on
    # the sweep for folders it does not stat.
    opts["sweep_interval"] = 0.3 if mode == "poll" else 30.0
    opts.update(kw)
    return Follower(root, view.store, **opts)


@pytest.fixture(autouse=True)
def _no_errors(no_errors: None) -> None:
    pass


@pytest.fixture
async def running(tmp_path: Path, mode: str) -> AsyncIterator[tuple[Path, StoreView, Follower]]:
    root = tmp_path / "logs"
    root.mkdir()
    view = StoreView(root)
    follower = make_follower(root, view, mode)
    await follower.start()
    assert follower.mode == mode
    try:
        yield root, view, follower
    finally:
        await follower.stop()


async def test_backlog_then_live_with_partial_line(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "logs"
    run = root / "lr_0.1" / "seed0"
    run.mkdir(parents=True)
    path = run / "rank0.jsonl"
    w = Writer()
    expected = w.append(path, 100)
    n, line = w.line(path)
    with open(path, "ab") as f:
        f.write(line[:9])  # a partial line at the end of the backlog
    view = StoreView(root)
    follower = make_follower(root, view, mode)
    await follower.start()
    try:
        assert view.held("lr_0.1/seed0", "rank0.jsonl") == expected
        progress = view.store.progress()
        assert progress.done and progress.loaded_bytes == progress.total_bytes > 0
        with open(path, "ab") as f:
            f.write(line[9:] + b"\n")
        expected.append(n)
        expected += w.append(path, 5)
        await until(lambda: view.held("lr_0.1/seed0", "rank0.jsonl") == expected)
    finally:
        await follower.stop()


async def test_new_runs_and_files_at_any_depth(running: tuple[Path, StoreView, Follower]) -> None:
    root, view, _ = running
    w = Writer()
    deep = root / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)  # folders and file created at once: no watch on them yet
    exp_deep = w.append(deep / "rank0.jsonl", 3)
    (root / ".git").mkdir()  # watchfiles' default filter would drop this one
    exp_git = w.append(root / ".git" / "x.jsonl", 2)
    exp_top = w.append(root / "top.jsonl", 2)
    await until(lambda: view.held("a/b/c/d", "rank0.jsonl") == exp_deep, what="deep run")
    await until(lambda: view.held(".git", "x.jsonl") == exp_git, what=".git run")
    await until(lambda: view.held(".", "top.jsonl") == exp_top, what="root run")
    exp_r1 = w.append(deep / "rank1.jsonl", 4)  # a second stream of an existing run
    exp_deep += w.append(deep / "rank0.jsonl", 2)
    await until(lambda: view.held("a/b/c/d", "rank1.jsonl") == exp_r1)
    await until(lambda: view.held("a/b/c/d", "rank0.jsonl") == exp_deep)
    (root / "notes.txt").write_text("not a stream")
    await asyncio.sleep(0.1)
    assert sorted(view.runs()) == [".", ".git", "a/b/c/d"]


async def test_run_folder_removed_is_gone(running: tuple[Path, StoreView, Follower]) -> None:
    root, view, _ = running
    w = Writer()
    run = root / "exp" / "r1"
    run.mkdir(parents=True)
    exp = w.append(run / "rank0.jsonl", 3)
    await until(lambda: view.held("exp/r1", "rank0.jsonl") == exp)
    assert view.status("exp/r1") == "running"
    for p in run.iterdir():
        p.unlink()
    run.rmdir()
    await until(lambda: view.status("exp/r1") == "gone", what="gone")
    # a run with the same id that comes back is followed again
    run.mkdir()
    exp2 = w.append(run / "rank0.jsonl", 2)
    await until(lambda: view.held("exp/r1", "rank0.jsonl")[-2:] == exp2)
    assert view.status("exp/r1") == "running"


async def test_truncation_and_copytruncate_with_stale_writer(
    running: tuple[Path, StoreView, Follower],
) -> None:
    root, view, _ = running
    w = Writer()
    run = root / "r"
    run.mkdir()
    path = run / "rank0.jsonl"
    stale = open(path, "wb", buffering=0)  # keeps its own offset, as a non-O_APPEND writer does
    ids, data = w.lines(path, 20)
    stale.write(data)
    await until(lambda: view.held("r", "rank0.jsonl") == ids)
    os.truncate(path, 0)  # copytruncate
    after, data = w.lines(path, 3)
    stale.write(data)  # lands past a hole of NULs
    await until(lambda: view.held("r", "rank0.jsonl") == after, what="after copytruncate")
    assert ("r", "truncated") in view.resets
    assert view.skipped("r", "nul_bytes") >= 1
    stale.close()
    # a plain truncation to a shorter file
    with open(path, "wb") as f:
        f.write(b"")
    short = w.append(path, 1)
    await until(lambda: view.held("r", "rank0.jsonl") == short, what="after truncate")


async def test_rapid_rename_rotations(running: tuple[Path, StoreView, Follower]) -> None:
    root, view, _ = running
    w = Writer()
    run = root / "r"
    run.mkdir()
    path = run / "rank0.jsonl"
    expected: list[int] = []
    # A generation must live at the path for one wake-up (an event batch or a poll) to be seen.
    gap = 0.12
    for gen in range(6):
        f = open(path, "ab", buffering=0)
        for _ in range(10):
            n, line = w.line(path)
            f.write(line + b"\n")
            expected.append(n)
            await asyncio.sleep(0.005)
        await asyncio.sleep(gap)
        os.rename(path, run / f"rank0.jsonl.{gen}")
        n, line = w.line(path)
        f.write(line + b"\n")  # written after the rename, before the writer reopens
        expected.append(n)
        f.close()
    expected += w.append(path, 3)
    await until(lambda: view.held("r", "rank0.jsonl") == expected, what="all generations")
    assert ("r", "truncated") not in view.resets


async def test_delete_and_recreate_same_path(running: tuple[Path, StoreView, Follower]) -> None:
    root, view, _ = running
    w = Writer()
    run = root / "r"
    run.mkdir()
    keep = w.append(run / "keep.jsonl", 2)
    path = run / "rank0.jsonl"
    first = w.append(path, 5)
    await until(lambda: view.held("r", "rank0.jsonl") == first)
    path.unlink()
    second = w.append(path, 4)  # same name, new file (often the same inode number)
    await until(lambda: view.held("r", "rank0.jsonl") == second, what="re-read from start")
    assert ("r", "replaced") in view.resets
    assert view.held("r", "keep.jsonl") == keep  # the other stream of the run is intact
    assert view.status("r") == "running"


async def test_symlink_escaping_root_is_ignored(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "logs"
    outside = tmp_path / "outside"
    (root / "run").mkdir(parents=True)
    outside.mkdir()
    w = Writer()
    w.append(outside / "secret.jsonl", 2)
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "run" / "leak.jsonl").symlink_to(outside / "secret.jsonl")
    inside = w.append(root / "run" / "rank0.jsonl", 2)
    (root / "alias").symlink_to(root / "run", target_is_directory=True)  # inside: fine, once
    view = StoreView(root)
    follower = make_follower(root, view, mode)
    await follower.start()
    try:
        w.append(outside / "secret.jsonl", 2)
        inside += w.append(root / "run" / "rank0.jsonl", 1)
        run_id = view.runs()[0]
        await until(lambda: view.held(run_id, "rank0.jsonl") == inside)
        await asyncio.sleep(0.2)
        assert view.runs() in (["run"], ["alias"])
        assert view.held(run_id, "leak.jsonl") == [] and view.held(run_id, "secret.jsonl") == []
    finally:
        await follower.stop()


async def test_huge_line_skipped_between_good_lines(
    running: tuple[Path, StoreView, Follower],
) -> None:
    root, view, _ = running
    w = Writer()
    run = root / "r"
    run.mkdir()
    path = run / "rank0.jsonl"
    before = w.append(path, 3)
    with open(path, "ab") as f:
        f.write(b'{"step":0,"rank0":"')
        for _ in range(12):  # a 12 MB line written in pieces
            f.write(b"x" * (1 << 20))
            f.flush()
        f.write(b'"}\n')
    after = w.append(path, 3)
    await until(lambda: view.held("r", "rank0.jsonl") == before + after, timeout=10)
    assert view.skipped("r", "line_too_long") == 1


async def test_appends_in_the_startup_window(tmp_path: Path, mode: str) -> None:
    """Write at each point of start(): between the scan and the watcher going live, between that
    and the catch-up, and between the catch-up and the first hint being consumed."""
    root = tmp_path / "logs"
    run = root / "r"
    run.mkdir(parents=True)
    w = Writer()
    expected = {("r", "rank0.jsonl"): w.append(run / "rank0.jsonl", 2)}

    def inject(tag: str) -> None:
        expected[("r", "rank0.jsonl")] += w.append(run / "rank0.jsonl", 2)
        new_run = root / f"new_{tag}"
        new_run.mkdir()
        expected[(f"new_{tag}", "a.jsonl")] = w.append(new_run / "a.jsonl", 1)
        expected[("r", f"{tag}.jsonl")] = w.append(run / f"{tag}.jsonl", 1)

    class Racy(Follower):
        calls = 0

        def _rediscover(self) -> Any:
            found = super()._rediscover()
            Racy.calls += 1
            if Racy.calls == 1:
                inject("before_watch")  # the scan is done, the watcher not yet live
            return found

        def _catch_up(self) -> None:
            inject("before_catch_up")  # the watcher is live, nothing read yet
            super()._catch_up()
            inject("after_catch_up")  # read, but the consumer has not started

    view = StoreView(root)
    # A long sweep: only events (or the poller) may find these in time.
    follower = Racy(root, view.store, poll=mode == "poll", poll_interval=0.05,
                    sweep_interval=30.0)
    await follower.start()
    try:
        def done() -> bool:
            return all(view.held(*k) == v for k, v in expected.items())

        await until(done, timeout=5, what="every line written during start-up")
    finally:
        await follower.stop()


async def test_partial_line_completed_across_restart(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "logs"
    (root / "r").mkdir(parents=True)
    path = root / "r" / "rank0.jsonl"
    w = Writer()
    ids = w.append(path, 3)
    n, line = w.line(path)
    with open(path, "ab") as f:
        f.write(line[:7])
    view1 = StoreView(root)
    f1 = make_follower(root, view1, mode)
    await f1.start()
    await until(lambda: view1.held("r", "rank0.jsonl") == ids)
    await f1.stop()
    with open(path, "ab") as f:
        f.write(line[7:] + b"\n")
    view2 = StoreView(root)
    f2 = make_follower(root, view2, mode)
    await f2.start()
    try:
        assert view2.held("r", "rank0.jsonl") == [*ids, n]
        more = w.append(path, 2)
        await until(lambda: view2.held("r", "rank0.jsonl") == [*ids, n, *more])
    finally:
        await f2.stop()


async def test_writer_keeps_appending_through_restarts(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "logs"
    runs = [root / f"run{i}" for i in range(3)]
    for r in runs:
        r.mkdir(parents=True)
    stop = threading.Event()

    def write() -> None:
        w = Writer()
        files = [(open(r / "rank0.jsonl", "ab", buffering=0), r / "rank0.jsonl") for r in runs]
        while not stop.is_set():
            for f, path in files:
                _, line = w.line(path)
                f.write(line[:10])  # two writes: partial lines are common
                f.write(line[10:] + b"\n")
            time.sleep(0.0005)
        for f, _ in files:
            f.close()

    t = threading.Thread(target=write)
    t.start()
    try:
        for _ in range(3):
            view = StoreView(root)
            follower = make_follower(root, view, mode)
            await follower.start()
            await asyncio.sleep(0.15)
            await follower.stop()
    finally:
        stop.set()
        t.join()
    view = StoreView(root)
    follower = make_follower(root, view, mode)
    await follower.start()
    try:
        for r in runs:
            want = file_ids(r / "rank0.jsonl")
            assert len(want) > 100
            await until(lambda r=r, want=want: view.held(r.name, "rank0.jsonl") == want)
    finally:
        await follower.stop()


async def test_live_follow_while_writer_runs(tmp_path: Path, mode: str) -> None:
    """Start while a writer is busy and stop the writer later: all lines, once, in order."""
    root = tmp_path / "logs"
    (root / "r").mkdir(parents=True)
    path = root / "r" / "rank0.jsonl"
    stop = threading.Event()

    def write() -> None:
        w = Writer()
        with open(path, "ab", buffering=0) as f:
            while not stop.is_set():
                n, line = w.line(path)
                f.write(line + b"\n")
                if n % 7 == 0:
                    time.sleep(0.001)

    t = threading.Thread(target=write)
    t.start()
    view = StoreView(root)
    follower = make_follower(root, view, mode)
    try:
        await asyncio.sleep(0.05)
        await follower.start()
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        t.join()
    try:
        want = file_ids(path)
        await until(lambda: view.held("r", "rank0.jsonl") == want)
    finally:
        await follower.stop()


async def test_falls_back_to_polling_when_inotify_cannot_start(tmp_path: Path) -> None:
    """No descriptor left for inotify: watchfiles raises OSError, the follower polls instead."""
    root = tmp_path / "logs"
    (root / "r").mkdir(parents=True)
    w = Writer()
    ids = w.append(root / "r" / "rank0.jsonl", 2)
    view = StoreView(root)
    follower = Follower(root, view.store, poll_interval=0.05, sweep_interval=30.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    try:
        # The follower lifts the soft limit to the hard one: fill up to that, leaving two
        # descriptors (enough for the scan and the sentinel, not for inotify's three).
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        with contextlib.suppress(OSError):
            while len(fillers) < 100_000:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        for _ in range(2):
            os.close(fillers.pop())
        await follower.start(wait=False)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert follower.mode == "poll"
        ids += w.append(root / "r" / "rank0.jsonl", 3)
        await until(lambda: view.held("r", "rank0.jsonl") == ids)
    finally:
        await follower.stop()


async def test_start_twice_is_an_error(tmp_path: Path) -> None:
    follower = Follower(tmp_path, StoreView(tmp_path).store, poll=True)
    await follower.start()
    try:
        with pytest.raises(RuntimeError, match="twice"):
            await follower.start()
    finally:
        await follower.stop()


async def test_sweep_catches_writes_that_give_no_event(tmp_path: Path) -> None:
    """Writes through a hard link outside the root notify only that other folder (as writes from
    another NFS client notify nobody): the stat sweep must find them."""
    root = tmp_path / "logs"
    (root / "r").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    w = Writer()
    ids = w.append(root / "r" / "rank0.jsonl", 2)
    os.link(root / "r" / "rank0.jsonl", elsewhere / "rank0.jsonl")
    view = StoreView(root)
    follower = Follower(root, view.store, sweep_interval=0.3)
    await follower.start()
    try:
        assert follower.mode == "inotify"
        ids += w.append(elsewhere / "rank0.jsonl", 3)
        await until(lambda: view.held("r", "rank0.jsonl") == ids, what="the sweep")
    finally:
        await follower.stop()


async def test_idle_files_hold_no_descriptor(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "logs"
    w = Writer()
    old = time.time() - 3600
    expected = {}
    for i in range(30):
        run = root / f"old{i}"
        run.mkdir(parents=True)
        expected[f"old{i}"] = w.append(run / "rank0.jsonl", 2)
        os.utime(run / "rank0.jsonl", (old, old))
    view = StoreView(root)
    follower = make_follower(root, view, mode, idle_close_after=0.3, sweep_interval=0.1)
    before = len(os.listdir("/proc/self/fd"))
    await follower.start()
    try:
        assert all(view.held(k, "rank0.jsonl") == v for k, v in expected.items())
        # finished logs were parked right after the catch-up
        assert len(os.listdir("/proc/self/fd")) < before + 10
        expected["old3"] += w.append(root / "old3" / "rank0.jsonl", 2)  # wakes one up
        await until(lambda: view.held("old3", "rank0.jsonl") == expected["old3"])
        tail = follower._files[str(root / "old3" / "rank0.jsonl")].tail
        await until(lambda: tail.parked, what="idle again: parked by a sweep")
        expected["old3"] += w.append(root / "old3" / "rank0.jsonl", 1)
        await until(lambda: view.held("old3", "rank0.jsonl") == expected["old3"])
        assert all(view.held(k, "rank0.jsonl") == v for k, v in expected.items())
    finally:
        await follower.stop()


async def test_polling_finds_new_deep_runs_before_the_sweep(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    (root / "group").mkdir(parents=True)
    view = StoreView(root)
    follower = Follower(root, view.store, poll=True, poll_interval=0.05, sweep_interval=30.0)
    await follower.start()
    try:
        w = Writer()
        (root / "group" / "new").mkdir()
        ids = w.append(root / "group" / "new" / "rank0.jsonl", 2)
        await until(lambda: view.held("group/new", "rank0.jsonl") == ids, what="the new run")
        (root / "group" / "new" / "deeper").mkdir()
        more = w.append(root / "group" / "new" / "deeper" / "rank0.jsonl", 2)
        await until(lambda: view.held("group/new/deeper", "rank0.jsonl") == more)
    finally:
        await follower.stop()


async def test_bad_input_never_stops_the_file(running: tuple[Path, StoreView, Follower]) -> None:
    root, view, _ = running
    w = Writer()
    run = root / "r"
    run.mkdir()
    path = run / "rank0.jsonl"
    ids = w.append(path, 2)
    garbage = [b"not json", b"[1,2,3]", b"\xff\xfe\xfa invalid utf-8", b'{"a":1\x00}', b"{}" * 3,
               bytes(range(1, 256)).replace(b"\n", b"")]
    with open(path, "ab") as f:
        f.write(b"\n".join(garbage) + b"\n\n")
    ids += w.append(path, 2)
    await until(lambda: view.held("r", "rank0.jsonl") == ids)
    info = view.store.get_run("r")
    assert info is not None and info.skipped["total"] >= 4


def trainer_state(path: Path, steps: range, mtime: float | None = None) -> None:
    """A Trainer's history of ``steps`` (loss = step), as save_to_json writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    history = [{"step": i, "loss": float(i)} for i in steps]
    path.write_text(json.dumps({"global_step": steps[-1], "log_history": history}, indent=2))
    if mtime is not None:
        os.utime(path, (mtime, mtime))


async def test_checkpoint_histories_are_versions_of_the_run_s_one_stream(tmp_path: Path, mode: str) -> None:
    """checkpoint-N/trainer_state.json are versions of the run's history: the newest is read (the
    latest modified; checkpoint-10 after checkpoint-4), a stale one of the run's own folder is
    passed over, and each newer version adds only what is new."""
    root = tmp_path / "logs"
    run = root / "hf"
    old = time.time() - 100
    trainer_state(run / "trainer_state.json", range(90, 91), old)  # another training's, stale
    trainer_state(run / "checkpoint-2" / "trainer_state.json", range(2), old + 1)
    trainer_state(run / "checkpoint-4" / "trainer_state.json", range(3), old + 2)
    trainer_state(run / "checkpoint-10" / "trainer_state.json", range(5), old + 3)
    view = StoreView(root)

    def held() -> list[int]:
        return [int(v) for v in view.store.series("hf", "loss").values]

    follower = make_follower(root, view, mode)
    await follower.start()
    try:
        assert view.runs() == ["hf"]
        assert held() == list(range(5))
        trainer_state(run / "checkpoint-12" / "trainer_state.json", range(6))
        await until(lambda: held() == list(range(6)), what="checkpoint-12")
        trainer_state(run / "trainer_state.json", range(7))  # save_state() at the end
        await until(lambda: held() == list(range(7)), what="save_state")
        info = view.store.get_run("hf")
        assert info is not None and info.attempts == 1 and view.runs() == ["hf"] and view.resets == []
        assert follower.files_seen() == ({"jsondoc": 1}, 0, [])
    finally:
        await follower.stop()


async def test_parallel_catch_up_equals_the_serial_one(tmp_path: Path) -> None:
    """The backlog parsed in worker processes gives the very same store as parsing it here: every
    point, attempt, record and skipped line, across chunk boundaries."""
    import math

    import numpy as np

    from tailboard.sidecar.store import Store

    root = tmp_path / "logs"
    for r in range(4):
        folder = root / f"grid/r{r}"
        folder.mkdir(parents=True)
        lines = []
        for attempt in range(2):
            lines.append(b'{"k":"header","format":"tailboard","version":1,"pid":%d,"rank":0}' % attempt)
            for i in range(0, 6000 - 2000 * attempt):
                lines.append(b'{"k":"scalars","step":%d,"t":%d,"v":{"a":%r,"b":%d}}' % (i, 1000 + i, math.sin(i + r), i % 7))
                if i % 997 == 0:
                    lines.append(b'{"k":"text","step":%d,"name":"n","text":"x"}' % i)
                if i % 1499 == 0:
                    lines.append(b'{"broken json')
        (folder / "rank0.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        # a foreign log beside it: steps going back start a new attempt there
        (folder / "other.jsonl").write_bytes(b"".join(b'{"epoch":%d,"loss":%d}\n' % (i % 900, i) for i in range(3000)))

    async def load(workers: int, **kw: Any) -> Store:
        store = Store(root)
        follower = Follower(root, store, read_bytes=64 << 10, sweep_interval=30.0, workers=workers, **kw)
        await follower.start()
        await follower.stop()
        assert follower.catch_up_workers == workers
        return store

    serial = await load(0)
    parallel = await load(2, parallel_min_bytes=0)
    assert [r.to_json() | {"updated": 0} for r in serial.runs()] == [r.to_json() | {"updated": 0} for r in parallel.runs()]
    assert serial.progress().done and parallel.progress().done
    checked = 0
    for run_id in serial.run_ids():
        for metric in serial.metrics(run_id):
            a, b = serial.series(run_id, metric), parallel.series(run_id, metric)
            assert np.array_equal(a.steps, b.steps) and np.array_equal(a.values, b.values)
            checked += len(a)
        assert serial.texts(run_id) == parallel.texts(run_id)
        assert serial.run_detail(run_id)["attempts"] == parallel.run_detail(run_id)["attempts"]
    assert checked > 30_000


async def test_catch_up_without_worker_processes_falls_back_to_this_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Where no child interpreter can be started, the backlog is parsed here: nothing is lost."""
    import sys

    from tailboard.sidecar.store import Store

    root = tmp_path / "logs"
    for r in range(3):
        (root / f"r{r}").mkdir(parents=True)
        (root / f"r{r}" / "rank0.jsonl").write_bytes(
            b"".join(b'{"k":"scalars","step":%d,"t":1,"v":{"x":%d}}\n' % (i, i) for i in range(2000)))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    store = Store(root)
    follower = Follower(root, store, workers=2, parallel_min_bytes=0, sweep_interval=30.0)
    with caplog.at_level(logging.WARNING, logger="tailboard.sidecar"):
        await follower.start()
        await follower.stop()
    assert follower.catch_up_workers == 0
    assert any("no parse workers" in r.getMessage() for r in caplog.records)
    assert [store.series(f"r{r}", "x").values.tolist() for r in range(3)] == [list(map(float, range(2000)))] * 3


def write_parallel_backlog(root: Path, fmt: str) -> dict[str, list[float]]:
    """Four runs of 20,000 steps of ``x`` and ``y`` in the format, and the steps each holds."""
    for r in range(4):
        (root / f"r{r}").mkdir(parents=True)
        if fmt == "jsonl":
            (root / f"r{r}" / "rank0.jsonl").write_bytes(b"".join(
                b'{"k":"scalars","step":%d,"t":1,"v":{"x":%d,"y":%d}}\n' % (i, i * r, -i) for i in range(20_000)))
            continue
        from torch.utils.tensorboard import SummaryWriter

        w = SummaryWriter(str(root / f"r{r}"), max_queue=50_000, flush_secs=3600)
        for i in range(20_000):
            w.add_scalar("x", i * r, i, walltime=1.7e9 + i)
            w.add_scalar("y", -i, i, walltime=1.7e9 + i)
        w.close()
    return {m: list(map(float, range(20_000))) for m in ("x", "y")}


async def load_backlog(root: Path, workers: int, read_bytes: int = 32 << 10) -> Any:
    """The store after a catch-up of ``root`` with that many parse workers (0: in this process)."""
    from tailboard.sidecar.store import Store

    store = Store(root)
    follower = Follower(root, store, read_bytes=read_bytes, sweep_interval=30.0, workers=workers,
                        parallel_min_bytes=0)
    await follower.start()
    await follower.stop()
    assert follower.catch_up_workers == workers
    return store


@pytest.mark.parametrize("fmt", ["jsonl", "tfevents"])
async def test_a_parse_worker_killed_mid_catch_up_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fmt: str
) -> None:
    """A worker process killed (SIGKILL) while it holds chunks: those chunks are parsed here, the
    worker is replaced, and the store ends up as after a serial catch-up. Event files: the workers
    frame what they decode (the follower's thread does not), and a chunk parsed here instead is
    framed here, its torn last record held for the next."""
    import signal

    from tailboard.sidecar import parallel

    if fmt == "tfevents":
        pytest.importorskip("torch.utils.tensorboard")
    root = tmp_path / "logs"
    steps = write_parallel_backlog(root, fmt)
    submits = {"n": 0, "killed": 0}
    real_submit = parallel.ParsePool.submit

    def submit_then_kill(self: Any, tag: Any, data: bytes, state: dict[str, Any], **kw: Any) -> None:
        real_submit(self, tag, data, state, **kw)
        submits["n"] += 1
        if submits["n"] == 5:  # two chunks are queued at that worker by now
            victim = max(self.workers, key=lambda w: len(w.busy))
            os.kill(victim.proc.pid, signal.SIGKILL)
            submits["killed"] += 1

    serial = await load_backlog(root, 0)
    monkeypatch.setattr(parallel.ParsePool, "submit", submit_then_kill)
    with caplog.at_level(logging.WARNING, logger="tailboard.sidecar"):
        parallel_store = await load_backlog(root, 2)
    assert submits["killed"] == 1
    assert any("parse worker failed" in r.getMessage() for r in caplog.records)
    for r in range(4):
        assert serial.get_run(f"r{r}").skipped == parallel_store.get_run(f"r{r}").skipped == {"total": 0}
        for m in ("x", "y"):
            a, b = serial.series(f"r{r}", m), parallel_store.series(f"r{r}", m)
            assert a.steps.tolist() == b.steps.tolist() == steps[m]
            assert a.values.tolist() == b.values.tolist()


@pytest.mark.parametrize("fmt", ["jsonl", "tfevents"])
async def test_chunks_that_cannot_go_to_a_worker_are_parsed_here_and_the_catch_up_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fmt: str
) -> None:
    """Every hand-over to the workers fails (not with OSError): each chunk is parsed in this thread
    and the catch-up moves on (it used to retry the same chunk for ever)."""
    from tailboard.sidecar import parallel

    if fmt == "tfevents":
        pytest.importorskip("torch.utils.tensorboard")
    root = tmp_path / "logs"
    steps = write_parallel_backlog(root, fmt)

    def refuse(self: Any, *args: Any, **kw: Any) -> None:
        raise RuntimeError("no worker takes it")

    monkeypatch.setattr(parallel.ParsePool, "submit", refuse)
    with caplog.at_level(logging.WARNING, logger="tailboard.sidecar"):
        store = await asyncio.wait_for(load_backlog(root, 2), 60)
    assert any("parsing" in r.getMessage() and "here" in r.getMessage() for r in caplog.records)
    for r in range(4):
        assert store.get_run(f"r{r}").skipped == {"total": 0}
        for m in ("x", "y"):
            assert store.series(f"r{r}", m).steps.tolist() == steps[m]


async def test_a_parallel_catch_up_of_event_files_with_records_longer_than_a_read_equals_the_serial_one(
    tmp_path: Path,
) -> None:
    """Event files holding images (records of 60 KB, longer than the 16 KiB reads), histograms and
    texts between scalars, a torn last record and a corrupt one: the workers frame what they decode
    and the store ends up exactly as after a serial catch-up."""
    pytest.importorskip("torch.utils.tensorboard")
    import numpy as np
    from torch.utils.tensorboard import SummaryWriter

    root = tmp_path / "logs"
    rng = np.random.default_rng(7)
    for r in range(3):
        w = SummaryWriter(str(root / f"tb{r}"), max_queue=10_000, flush_secs=3600)
        for i in range(300):
            w.add_scalar("loss", 1 / (i + 1 + r), i, walltime=1.7e9 + i)
            if i % 50 == 0:
                w.add_image("sample", rng.integers(0, 255, (3, 150, 150), dtype=np.uint8), i, walltime=1.7e9 + i)
                w.add_histogram("weights", rng.normal(size=500), i, walltime=1.7e9 + i)
                w.add_text("note", f"step {i} of run {r}", i, walltime=1.7e9 + i)
        w.close()
    (path,) = (root / "tb1").glob("events.out.tfevents.*")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # inside some record: counted, the rest kept
    path.write_bytes(bytes(data[:-5]))  # and a torn last record, held

    def contents(store: Any) -> dict[str, Any]:
        out = {}
        for r in range(3):
            run = f"tb{r}"
            s = store.series(run, "loss")
            images = store.images(run, "sample")
            out[run] = (s.steps.tolist(), s.values.tolist(), s.times.tolist(), store.get_run(run).skipped,
                        store.histograms(run, "weights"), store.texts(run),
                        [(step, store.image(run, at)) for step, at in zip(images["steps"], images["paths"])])
        return out

    serial, parallel = contents(await load_backlog(root, 0, 16 << 10)), contents(await load_backlog(root, 2, 16 << 10))
    assert parallel == serial
    assert len(serial["tb0"][0]) == 300 and len(serial["tb0"][6]) == 6 and serial["tb0"][3] == {"total": 0}
    assert serial["tb1"][3]["total"] >= 1 and len(serial["tb1"][0]) >= 290


def test_a_parse_worker_hands_over_its_results_without_waiting_for_the_parent() -> None:
    """A worker writes each chunk's result into its pipe and goes on to the next one while the
    parent is busy elsewhere: the pipe holds both queued results (with the default 64 KiB pipe the
    worker stalled after the first 64 KiB until the parent read)."""
    import fcntl
    import struct
    import termios

    from tailboard.sidecar import parallel
    from tailboard.sidecar.readers.jsonl import JsonlReader

    reader = JsonlReader()
    chunk = b"".join(b'{"iter":%d,"loss":%d.5,"acc":%d.25,"lr":0.1}\n' % (i, i, i) for i in range(10_000))
    with parallel.ParsePool(1) as pool:
        for tag in range(parallel.DEPTH):
            pool.submit(tag, chunk, (reader, reader.new_state()))
        out = pool.workers[0].proc.stdout
        assert out is not None

        def waiting() -> int:
            return struct.unpack("i", fcntl.ioctl(out.fileno(), termios.FIONREAD, b"\0" * 4))[0]

        deadline = time.monotonic() + 20
        while waiting() < 2 * 70_000 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # both answers written whole: the worker has nothing left to wait for
        size = waiting()
        got = [pool.collect()[0] for _ in range(parallel.DEPTH)]
    assert size > 2 * 70_000, size  # each answer holds 30,000 points: about 0.5 MB
    for tag, (parsed, _) in got:
        assert sum(len(s[0]) for seg in parsed.segments for s in seg.values()) == 30_000, tag


@pytest.mark.parametrize("load, workers", [(0.3, 2), (64.0, 0)])
async def test_a_backlog_is_parsed_in_workers_only_while_some_core_is_free(
    tmp_path: Path, load: float, workers: int
) -> None:
    """With the default workers, a machine whose load average is at least its cores catches up in
    one process (workers would cost more than they bring and take CPU from the jobs there); asked
    for workers explicitly, it gets them whatever the load."""
    from tailboard.sidecar import follower as follower_module
    from tailboard.sidecar.store import Store

    if follower_module._usable_cores() < 2:
        pytest.skip("one usable core: no parse workers by default")
    steps = write_parallel_backlog(tmp_path / "logs", "jsonl")
    root = tmp_path / "logs"

    async def load_with(**options: Any) -> Any:
        store = Store(root)
        follower = Follower(root, store, sweep_interval=30.0, parallel_min_bytes=0, **options)
        await follower.start()
        await follower.stop()
        return follower, store

    cores = follower_module._usable_cores()
    follower, store = await load_with(load_average=lambda: load * cores / 2)
    assert follower.catch_up_workers == (cores if workers else 0)
    assert store.series("r3", "y").steps.tolist() == steps["y"]
    busy, _ = await load_with(workers=2, load_average=lambda: 1e9)  # explicit: the load is not asked
    assert busy.catch_up_workers == 2


async def test_csv_is_read_by_the_follower_itself_during_a_parallel_catch_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSV decodes faster than a worker's result travels back: its chunks are read in the
    follower's process, the JSON lines beside it by the workers, and the store is the serial one's.
    A backlog of CSV alone starts no worker."""
    from tailboard.sidecar import parallel
    from tailboard.sidecar.store import Store

    root = tmp_path / "logs"
    steps = write_parallel_backlog(root, "jsonl")
    for r in range(3):
        (root / f"c{r}").mkdir()
        (root / f"c{r}" / "metrics.csv").write_text(
            "step,loss,acc\n" + "".join(f"{i},{i * r / 7},{'' if i % 3 else i / 9}\n" for i in range(20_000)))
    shipped: list[str] = []
    real_submit = parallel.ParsePool.submit

    def submit(self: Any, tag: Any, data: bytes, state: Any, **kw: Any) -> None:
        shipped.append(tag[1].ref.path)
        real_submit(self, tag, data, state, **kw)

    monkeypatch.setattr(parallel.ParsePool, "submit", submit)

    async def load(workers: int, where: Path = root) -> Any:
        store = Store(where)
        follower = Follower(where, store, read_bytes=32 << 10, sweep_interval=30.0, workers=workers,
                            parallel_min_bytes=0)
        await follower.start()
        await follower.stop()
        return follower, store

    (_, serial), (both, parallel_store) = await load(0), await load(2)
    assert both.catch_up_workers == 2 and shipped and not [p for p in shipped if p.endswith(".csv")]
    for r in range(3):
        for m in ("loss", "acc"):
            a, b = serial.series(f"c{r}", m), parallel_store.series(f"c{r}", m)
            assert a.steps.tolist() == b.steps.tolist() and a.values.tolist() == b.values.tolist()
        assert len(parallel_store.series(f"c{r}", "loss").steps) == 20_000
    assert parallel_store.series("r2", "y").steps.tolist() == steps["y"]
    import shutil

    for r in range(4):
        shutil.rmtree(root / f"r{r}")  # CSV alone now
    alone, _ = await load(2)
    assert alone.catch_up_workers == 0
