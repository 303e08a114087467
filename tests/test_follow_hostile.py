"""The follower against a hostile or huge log tree: a FIFO, a device node or a symlink to one at a
followed path, thousands of files under a low descriptor limit, the cost of idling over a big tree.

Nothing may block the follower or exhaust the process: every other file keeps being followed, and
what cannot be read is reported once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from followkit import StoreView, Writer, until
from tailboard.sidecar.follower import Follower



@pytest.fixture(autouse=True)
def _no_errors(no_errors: None) -> None:
    pass


class Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def about(self, path: Path) -> list[str]:
        return [m for m in self.messages if str(path) in m]


@pytest.fixture
def warnings() -> Iterator[Warnings]:
    handler = Warnings()
    logging.getLogger("tailboard.sidecar").addHandler(handler)
    yield handler
    logging.getLogger("tailboard.sidecar").removeHandler(handler)


def unblock(fifo: Path) -> None:
    """Let go of a reader stuck opening the FIFO (what the follower did before it used
    open_regular), so that a failing test still ends: a writer's open completes the reader's."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


@pytest.fixture
async def two_runs(tmp_path: Path, mode: str) -> AsyncIterator[tuple[Path, StoreView, Writer, dict[str, list[int]]]]:
    """Runs ``a`` and ``b`` with a few records each, followed; yields the root, the store view, the
    writer and the ids written so far per run."""
    root = tmp_path / "logs"
    w = Writer()
    ids = {}
    for run in ("a", "b"):
        (root / run).mkdir(parents=True)
        ids[run] = w.append(root / run / "rank0.jsonl", 2)
    view = StoreView(root)
    follower = Follower(root, view.store, poll=mode == "poll", poll_interval=0.05,
                        hot_interval=0.01, sweep_interval=0.2)
    await follower.start()
    try:
        assert follower.mode == mode
        assert view.held("a", "rank0.jsonl") == ids["a"]
        yield root, view, w, ids
    finally:
        unblock(root / "a" / "rank0.jsonl")
        await follower.stop()


async def others_still_followed(root: Path, view: StoreView, w: Writer, ids: dict[str, list[int]]) -> None:
    for _ in range(3):
        ids["b"] += w.append(root / "b" / "rank0.jsonl", 2)
        await until(lambda: view.held("b", "rank0.jsonl") == ids["b"], timeout=3.0,
                    what="run b, written while a's path holds something unreadable")


async def test_a_fifo_replacing_a_followed_file_blocks_nothing(
    two_runs: tuple[Path, StoreView, Writer, dict[str, list[int]]], warnings: Warnings
) -> None:
    root, view, w, ids = two_runs
    path = root / "a" / "rank0.jsonl"
    path.unlink()
    os.mkfifo(path)
    await until(lambda: view.skipped("a", "not_regular") == 1, timeout=3.0, what="the FIFO reported")
    await others_still_followed(root, view, w, ids)
    assert view.skipped("a", "not_regular") == 1  # told once, however often it was looked at
    assert len(warnings.about(path)) == 1
    assert view.held("a", "rank0.jsonl") == ids["a"]  # what was read stays
    # a regular file back at the path is followed again, from its start (the old one was deleted)
    path.unlink()
    new = w.append(path, 2)
    await until(lambda: view.held("a", "rank0.jsonl") == new, what="the new file at a's path")


async def test_a_character_device_replacing_a_followed_file_is_not_read(
    two_runs: tuple[Path, StoreView, Writer, dict[str, list[int]]]
) -> None:
    root, view, w, ids = two_runs
    path = root / "a" / "rank0.jsonl"
    path.unlink()
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
    except PermissionError:
        pytest.skip("creating device nodes is not permitted here")
    await until(lambda: view.skipped("a", "not_regular") == 1, timeout=3.0, what="the device reported")
    busy = time.process_time()
    await others_still_followed(root, view, w, ids)
    assert view.skipped("a", "nul_bytes") == 0  # not one byte of it was read
    # reading /dev/zero would take a core; following run b takes a few milliseconds
    assert time.process_time() - busy < 1.0


async def test_a_symlink_to_dev_zero_is_never_read(
    two_runs: tuple[Path, StoreView, Writer, dict[str, list[int]]], warnings: Warnings
) -> None:
    root, view, w, ids = two_runs
    (root / "c").mkdir()
    (root / "c" / "rank0.jsonl").symlink_to("/dev/zero")  # a new run made of a symlink
    path = root / "a" / "rank0.jsonl"
    path.unlink()
    path.symlink_to("/dev/zero")  # a followed file replaced by one
    for _ in range(3):
        os.utime(path, follow_symlinks=False)  # an event on the path (with inotify)
        await others_still_followed(root, view, w, ids)  # a few sweeps later
    assert view.skipped("a", "nul_bytes") == 0 and "c" not in view.runs()
    assert view.held("a", "rank0.jsonl") == ids["a"]
    assert len(warnings.about(path)) == 1  # logged once, not at every look


CHILD = textwrap.dedent("""
    import asyncio, json, os, resource, sys, time
    from tailboard.sidecar.follower import Follower
    from tailboard.sidecar.store import Store

    root, nofile, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    def fds():
        return len(os.listdir("/proc/self/fd"))

    async def main():
        store = Store(root)
        follower = Follower(root, store, poll=mode == "poll", sweep_interval=0.2)
        base = fds()
        most = [base]
        async def sample():
            while True:
                most[0] = max(most[0], fds())
                await asyncio.sleep(0.002)
        sampler = asyncio.create_task(sample())
        await follower.start()
        await asyncio.sleep(1.0)  # a few sweeps over the tree
        target = os.path.join(root, "r0007", "rank0.jsonl")
        with open(target, "ab") as f:
            f.write(b'{"step":1,"late":1.0}\\n')
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            try:
                if "late" in store.metrics("r0007"):
                    break
            except KeyError:
                pass
            await asyncio.sleep(0.01)
        seen = time.monotonic() - t0
        sampler.cancel()
        await follower.stop()
        print(json.dumps({"base": base, "most": most[0], "budget": follower.max_open_files,
                          "seen": seen, "followed": "late" in store.metrics("r0007")}))

    asyncio.run(main())
""")


def run_child(script: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def empty_tree(root: Path, runs: int, per_run: int) -> None:
    for r in range(runs):
        run = root / f"r{r:04d}"
        run.mkdir(parents=True)
        for k in range(per_run):
            (run / f"rank{k}.jsonl").touch()  # written just now: not idle, nothing to park for


def test_thousands_of_empty_files_under_a_low_descriptor_limit(tmp_path: Path, mode: str) -> None:
    """3,000 fresh empty files, 256 descriptors in all: the follower keeps to half of them, and a
    file appended to afterwards is still followed."""
    root = tmp_path / "logs"
    empty_tree(root, 1000, 3)
    got = run_child(CHILD, str(root), "256", mode)
    assert got["budget"] == 128
    assert got["followed"] and got["seen"] < 5.0, got
    # the store, inotify, the event loop and the sampler's own listing hold a few more
    assert got["most"] - got["base"] <= got["budget"] + 8, got


IDLE_CPU = textwrap.dedent("""
    import asyncio, json, sys, time
    from tailboard.sidecar.follower import Follower
    from tailboard.sidecar.store import Store

    async def main():
        root, mode = sys.argv[1], sys.argv[2]
        follower = Follower(root, Store(root), poll=mode == "poll")
        await follower.start()
        await asyncio.sleep(2.0)
        t0, c0 = time.monotonic(), time.process_time()
        await asyncio.sleep(4.0)
        share = (time.process_time() - c0) / (time.monotonic() - t0)
        await follower.stop()
        print(json.dumps({"cpu": share}))

    asyncio.run(main())
""")


def test_idling_over_a_big_tree_is_cheap(tmp_path: Path, mode: str) -> None:
    """10,000 runs, nothing written: the sweep (and the poll passes) keep to their budget. Before
    it they took about 35% of a core with inotify and more with polling; figures in
    bench/follow_tree.py."""
    root = tmp_path / "logs"
    empty_tree(root, 10_000, 1)
    old = time.time() - 3600
    for run in root.iterdir():
        os.utime(run / "rank0.jsonl", (old, old))
    got = run_child(IDLE_CPU, str(root), mode, timeout=90.0)
    assert got["cpu"] < 0.15, got


async def test_many_busy_files_through_a_few_descriptors(tmp_path: Path, mode: str) -> None:
    """20 files written in turn, at most 4 open at once: each write re-opens a parked file (the
    least recently active are parked), and not one record is lost or doubled."""
    root = tmp_path / "logs"
    w = Writer()
    ids = {}
    for i in range(20):
        (root / f"r{i}").mkdir(parents=True)
        ids[f"r{i}"] = w.append(root / f"r{i}" / "rank0.jsonl", 1)
    view = StoreView(root)
    before = len(os.listdir("/proc/self/fd"))
    most = before

    async def sample() -> None:
        nonlocal most
        while True:
            most = max(most, len(os.listdir("/proc/self/fd")))
            await asyncio.sleep(0.001)

    sampler = asyncio.create_task(sample())
    follower = Follower(root, view.store, poll=mode == "poll", poll_interval=0.05,
                        hot_interval=0.01, sweep_interval=0.2, max_open_files=4)
    await follower.start()
    try:
        for _ in range(3):
            for i in range(20):
                ids[f"r{i}"] += w.append(root / f"r{i}" / "rank0.jsonl", 1)
                await asyncio.sleep(0.002)
            await until(lambda: all(view.held(r, "rank0.jsonl") == v for r, v in ids.items()))
    finally:
        await follower.stop()
        sampler.cancel()
    # besides the 4 log files: inotify's descriptor and the watcher's own, a folder listing
    assert most - before <= 4 + 4, f"{most - before} descriptors more than before the start"


FAILING = textwrap.dedent("""
    import asyncio, json, logging, os, resource, sys, time
    from tailboard.sidecar.follower import Follower
    from tailboard.sidecar.store import Store

    class Warnings(logging.Handler):
        def __init__(self):
            super().__init__(logging.WARNING)
            self.lines = []
        def emit(self, record):
            self.lines.append(record.getMessage())

    root, path, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    warnings = Warnings()
    logging.getLogger("tailboard").addHandler(warnings)

    def held(store):
        try:
            return [int(v) for v in store.series("r", "rank0").values]
        except KeyError:
            return []

    async def main():
        store = Store(root)
        follower = Follower(root, store, sweep_interval=0.1)
        await follower.start()  # the file is a finished log: parked after the catch-up
        hog = []
        try:
            while True:  # take every descriptor left, as a flood of connections would
                hog.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            pass
        print("hogging", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the parent appends meanwhile
        for fd in hog:
            os.close(fd)
        t0 = time.monotonic()  # nothing is written any more: a sweep must read what failed
        while len(held(store)) < want and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.01)
        await follower.stop()
        print(json.dumps({"held": held(store), "about": [m for m in warnings.lines if path in m],
                          "warnings": len(warnings.lines)}))

    asyncio.run(main())
""")


def test_a_file_that_cannot_be_opened_is_logged_once_and_retried(tmp_path: Path) -> None:
    """No descriptor left (EMFILE) while a parked file is appended to 20 times: one warning, not
    one per attempt, and the sweep reads the file once descriptors are back."""
    root = tmp_path / "logs"
    (root / "r").mkdir(parents=True)
    path = root / "r" / "rank0.jsonl"
    w = Writer()
    ids = w.append(path, 2)
    old = time.time() - 3600
    os.utime(path, (old, old))
    proc = subprocess.Popen([sys.executable, "-c", FAILING, str(root), str(path), str(len(ids) + 20)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "hogging"
        for _ in range(20):
            ids += w.append(path, 1)  # an event each: each a try to open it
            time.sleep(0.03)
        out, err = proc.communicate("go\n", timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err[-3000:]
    got = json.loads(out.strip().splitlines()[-1])
    assert len(got["about"]) == 1 and "Too many open files" in got["about"][0], got
    assert got["held"] == ids


async def test_parallel_catch_up_of_many_runs_keeps_to_the_bound(tmp_path: Path) -> None:
    """60 runs of several chunks each, read by worker processes: a run being read holds its file
    open between chunks, so only a few runs are read at once; the others wait their turn."""
    root = tmp_path / "logs"
    w = Writer()
    ids = {}
    for r in range(60):
        (root / f"r{r}").mkdir(parents=True)
        ids[f"r{r}"] = w.append(root / f"r{r}" / "rank0.jsonl", 400)  # about 6 chunks of 2 KiB
    view = StoreView(root)
    before = len(os.listdir("/proc/self/fd"))
    most = before

    def watch_fds() -> None:
        nonlocal most
        while not done:
            most = max(most, len(os.listdir("/proc/self/fd")))
            time.sleep(0.0005)

    done = False
    sampler = threading.Thread(target=watch_fds)
    sampler.start()
    follower = Follower(root, view.store, read_bytes=2048, sweep_interval=30.0, workers=2,
                        parallel_min_bytes=0, max_open_files=16)
    try:
        await follower.start()
        assert follower.catch_up_workers == 2
    finally:
        await follower.stop()
        done = True
        sampler.join()
    assert all(view.held(r, "rank0.jsonl") == v for r, v in ids.items())
    # 16 log files, and 2 workers with 3 pipes and a memory file each (inotify's are few)
    assert most - before <= 16 + 2 * 4 + 6, f"{most - before} descriptors more than before"
