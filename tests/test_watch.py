"""The watcher's hints on real folders: inotify via watchfiles, the stat poller, the sweep."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from tailboard.sidecar.watch import Hints, StatPoller, Watcher


async def next_hints(hints: Hints, timeout: float = 3.0) -> tuple[set[str], bool]:
    return await asyncio.wait_for(hints.wait(), timeout)


async def collect(hints: Hints, want: str, timeout: float = 3.0) -> set[str]:
    """Gather hinted paths until ``want`` is among them."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while want not in seen:
        paths, _ = await next_hints(hints, max(0.01, deadline - time.monotonic()))
        seen |= paths
    return seen


async def test_hints_merge() -> None:
    hints = Hints()
    hints.add(["a", "b"])
    hints.add(["b", "c"])
    hints.add([])
    assert await next_hints(hints) == ({"a", "b", "c"}, False)
    hints.add_full()
    assert await next_hints(hints) == (set(), True)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(hints.wait(), 0.05)


def test_poller_sees_changes_within_one_second(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"1\n")
    poller = StatPoller()
    assert poller.check([str(p)], 0.0, baseline=True) == []
    assert poller.check([str(p)], 0.1) == []
    st = os.stat(p)
    with open(p, "ab") as f:
        f.write(b"2\n")
    # Same whole-second mtime as before: size alone must be enough.
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert poller.check([str(p)], 0.2) == [str(p)]
    assert poller.hot(0.3) == [str(p)]
    assert poller.hot(100.0) == []
    # same size, new content (a rewrite): mtime in nanoseconds tells
    with open(p, "r+b") as f:
        f.write(b"3")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1000))
    assert poller.check([str(p)], 0.4) == [str(p)]
    # replaced by another file of the same size and time: the inode tells
    q = tmp_path / "b.jsonl"
    q.write_bytes(p.read_bytes())
    st = os.stat(p)
    os.utime(q, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(q, p)
    assert poller.check([str(p)], 0.5) == [str(p)]
    p.unlink()
    assert poller.check([str(p)], 0.6) == [str(p)]
    # a path seen for the first time after the baseline counts as changed
    assert poller.check([str(tmp_path / "new.jsonl")], 0.7) == [str(tmp_path / "new.jsonl")]


async def test_inotify_hints_include_paths_the_default_filter_drops(tmp_path: Path) -> None:
    hints = Hints()
    watcher = Watcher(str(tmp_path), hints, lambda: (), sweep_interval=30.0)
    await watcher.start()
    try:
        assert watcher.mode == "inotify"
        git = tmp_path / ".git" / "r"
        git.mkdir(parents=True)
        # Files made in a folder before its watch exists get no event (the follower rescans on
        # the folder's own event); once the watch is there, they do.
        seen = await collect(hints, str(tmp_path / ".git"))
        await asyncio.sleep(0.1)
        (git / "a.jsonl").write_bytes(b"x\n")
        seen |= await collect(hints, str(git / "a.jsonl"))
        assert not any("tailboard-watch-" in p for p in seen)
        # a modified non-stream file gives no hint; a stream next to it does
        (tmp_path / "ckpt.pt").write_bytes(b"")
        # its creation is a hint (it could have been a folder)
        await collect(hints, str(tmp_path / "ckpt.pt"))
        with open(tmp_path / "ckpt.pt", "ab") as f:
            f.write(b"weights")
        with open(git / "a.jsonl", "ab") as f:
            f.write(b"y\n")
        seen = await collect(hints, str(git / "a.jsonl"))
        assert str(tmp_path / "ckpt.pt") not in seen
    finally:
        await watcher.stop()
    assert watcher._sentinel_dir is None


async def test_inotify_latency_is_milliseconds(tmp_path: Path) -> None:
    hints = Hints()
    watcher = Watcher(str(tmp_path), hints, lambda: (), sweep_interval=30.0)
    await watcher.start()
    try:
        p = tmp_path / "a.jsonl"
        t0 = time.monotonic()
        p.write_bytes(b"x\n")
        await collect(hints, str(p))
        # debounce 50 ms, step 5 ms: one quiet change comes back well under watchfiles' defaults
        assert time.monotonic() - t0 < 1.0
    finally:
        await watcher.stop()


async def test_poll_mode_and_sweep(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"")
    hints = Hints()
    watcher = Watcher(str(tmp_path), hints, lambda: (str(p), str(tmp_path)), poll=True,
                      poll_interval=0.05, hot_interval=0.01, sweep_interval=0.2)
    await watcher.start()
    try:
        assert watcher.mode == "poll"
        with open(p, "ab") as f:
            f.write(b"1\n")
        await collect(hints, str(p))
        (tmp_path / "new").mkdir()  # the folder's mtime changes
        await collect(hints, str(tmp_path))
        full = False
        deadline = time.monotonic() + 2
        while not full and time.monotonic() < deadline:
            _, full = await next_hints(hints)
        assert full
    finally:
        await watcher.stop()


async def test_misuse(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        Watcher(str(tmp_path), Hints(), lambda: (), poll_interval=0)
    watcher = Watcher(str(tmp_path), Hints(), lambda: (), poll=True)
    await watcher.start()
    try:
        with pytest.raises(RuntimeError, match="twice"):
            await watcher.start()
    finally:
        await watcher.stop()


@pytest.mark.parametrize("hot", [True, False])
async def test_inotify_streams_with_recent_events_are_also_stat_polled(tmp_path: Path, hot: bool) -> None:
    """watchfiles yields a batch one step (here 50 ms) after its set of changes stops growing, so a
    stream under steady appends is hinted about every other step; a stream that had events lately is
    stat-ed every hot_interval (10 ms) as well."""
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"")
    hints = Hints()
    watcher = Watcher(str(tmp_path), hints, lambda: [str(path)], hot_interval=0.01, sweep_interval=30.0,
                      debounce_ms=3000, step_ms=50, inotify_hot=hot)
    await watcher.start()
    try:
        assert watcher.mode == "inotify"
        with open(path, "ab") as f:
            f.write(b"first\n")
        await collect(hints, str(path))  # the first event: the stream is hot from now on

        async def append_steadily() -> None:  # every 5 ms: the inotify batch never settles
            with open(path, "ab", buffering=0) as f:
                for i in range(200):
                    f.write(b"%d\n" % i)
                    await asyncio.sleep(0.005)

        writer = asyncio.create_task(append_steadily())
        count = 0
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                paths, _ = await next_hints(hints, max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            count += str(path) in paths
        writer.cancel()
        if hot:
            assert count >= 30, f"{count} hints in 1 s of steady appends"
        else:
            assert count <= 15, f"{count} hints in 1 s from inotify alone"
    finally:
        await watcher.stop()


def test_the_hot_list_can_be_limited_to_the_most_recent(tmp_path: Path) -> None:
    poller = StatPoller()
    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.jsonl"
        p.write_bytes(b"x")
        paths.append(str(p))
        poller.check([str(p)], float(i))  # changed at t = i
    assert sorted(poller.hot(4.0)) == sorted(paths)
    assert poller.hot(4.0, limit=2) == [paths[4], paths[3]]
    assert poller.hot(13.5, limit=2) == [paths[4]]  # the others went quiet


async def test_poll_passes_over_a_big_tree_keep_to_their_budget(tmp_path: Path) -> None:
    """10,000 paths polled every 10 ms would take most of a core; a pass waits 20 times its own
    duration instead, and the loop stays free between its slices."""
    paths = []
    for i in range(10_000):
        p = tmp_path / f"{i}.jsonl"
        p.write_bytes(b"")
        paths.append(str(p))
    old = time.time() - 3600
    for p in paths:
        os.utime(p, (old, old))
    hints = Hints()
    watcher = Watcher(str(tmp_path), hints, lambda: paths, poll=True, poll_interval=0.01,
                      hot_interval=0.01, sweep_interval=30.0)
    await watcher.start()
    try:
        await asyncio.sleep(0.3)
        c0, t0 = time.process_time(), time.monotonic()
        late = 0.0  # how late a 5 ms timer fires: the loop is never held for a whole pass
        while time.monotonic() - t0 < 1.0:
            t = time.monotonic()
            await asyncio.sleep(0.005)
            late = max(late, time.monotonic() - t - 0.005)
        share = (time.process_time() - c0) / (time.monotonic() - t0)
        assert share < 0.2, f"{share:.0%} of a core polling 10,000 idle paths"
        assert late < 0.1
        assert watcher.poll_pass_cost > 0
        with open(paths[4321], "ab") as f:  # still seen
            f.write(b"1\n")
        await collect(hints, paths[4321])
    finally:
        await watcher.stop()


async def test_the_sweep_waits_twenty_times_its_own_duration(tmp_path: Path) -> None:
    watcher = Watcher(str(tmp_path), Hints(), lambda: (), sweep_interval=0.5)
    assert watcher.sweep_wait() == 0.5
    watcher.swept(0.01)  # cheap: the interval stands
    assert watcher.sweep_wait() == 0.5
    watcher.swept(0.2)
    assert watcher.sweep_wait() == pytest.approx(4.0)


async def test_the_next_sweep_is_timed_from_the_end_of_the_last(tmp_path: Path) -> None:
    """A sweep of a big tree takes seconds: the wait for the next one runs from when it ended
    (as told by swept()), so sweeps never follow one another back to back."""
    hints = Hints()
    watcher = Watcher(str(tmp_path), hints, lambda: (), poll=True, sweep_interval=0.05)
    watcher.swept(0.01)  # the first walk of the tree, before following starts
    await watcher.start()
    gaps = []
    try:
        ended = None
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            _, full = await next_hints(hints)
            if not full:
                continue
            if ended is not None:
                gaps.append(time.monotonic() - ended)
            await asyncio.sleep(0.15)  # the sweep's work (in the follower, a worker thread)
            watcher.swept(0.01)  # its cost: the next one waits max(0.05, 20 x 0.01) = 0.2 s
            ended = time.monotonic()
    finally:
        await watcher.stop()
    assert len(gaps) >= 2 and min(gaps) >= 0.18, gaps


def test_the_hot_list_is_bounded(tmp_path: Path) -> None:
    poller = StatPoller(hot_limit=3)
    paths = []
    for i in range(10):
        p = tmp_path / f"{i}.jsonl"
        p.write_bytes(b"x")
        paths.append(str(p))
    poller.check(paths, 1.0)  # all new: all changed
    assert poller.hot(2.0) == paths[-3:]
