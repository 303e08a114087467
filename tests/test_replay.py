"""Replay of a real log tree: every file comes out as its own copy, records go out in wall-time order
across files, the real server shows each run with its own records, and odd files (a torn last line,
an empty file, times that go backwards or are missing) replay without loss or hang."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx

from tailboard.format import encode
from tailboard.sidecar.replay import Replayer
from tailboard.sidecar.server import Server

T0 = 1_700_000_000.0
TOKEN = "test-token-123"
#: Three runs: one with two rank files, one plain, one nested two folders deep.
FILES = ["a/rank0.jsonl", "a/rank1.jsonl", "b/rank0.jsonl", "deep/x/c/rank0.jsonl"]
RUNS = {"a": FILES[:2], "b": FILES[2:3], "deep/x/c": FILES[3:]}


def header(run: str, rank: int, start: float) -> bytes:
    return encode({"k": "header", "format": "tailboard", "version": 1, "run": run, "host": "h", "pid": 7,
                   "rank": rank, "world_size": 2, "start": start, "argv": ["train.py"]})


def write_tree(root: Path, per_file: int = 12, gap: float = 1.0) -> dict[str, list[float]]:
    """Interleaved records over FILES, one every ``gap`` recorded seconds across the tree (never two
    at the same time); returns each file's record times, line by line."""
    times: dict[str, list[float]] = {f: [] for f in FILES}
    lines: dict[str, list[bytes]] = {f: [] for f in FILES}
    order = [FILES[(k * 3 + k // 4) % len(FILES)] for k in range(per_file * len(FILES))]
    t = T0
    for f in FILES:  # each file opens with its header, the headers one gap apart
        run = f.rsplit("/", 1)[0]
        lines[f].append(header(run, int(f[-7]), t))
        times[f].append(t)
        t += gap
    steps = dict.fromkeys(FILES, 0)
    for f in order:
        lines[f].append(encode({"k": "scalars", "step": steps[f], "t": t, "v": {"loss": 1.0 / (1 + steps[f])}}))
        times[f].append(t)
        steps[f] += 1
        t += gap
    for f in FILES:
        lines[f].append(encode({"k": "end", "t": t, "status": "finished", "dropped": 0}))
        times[f].append(t)
        t += gap
        (root / f).parent.mkdir(parents=True, exist_ok=True)
        (root / f).write_bytes(b"".join(lines[f]))
    return times


def lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


async def test_a_tree_of_runs_replays_file_by_file_in_wall_time_order(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    times = write_tree(src)
    # one recorded second is 8 ms: every record is due on its own (batches are 5 ms)
    task = asyncio.create_task(Replayer(src, out, speed=125.0).run())
    ticks: list[dict[str, int]] = []  # complete lines in each target, at each look
    deadline = time.monotonic() + 20
    while not task.done() and time.monotonic() < deadline:
        ticks.append({f: lines_in(out / f) for f in FILES})
        await asyncio.sleep(0.001)
    await asyncio.wait_for(task, 1)
    ticks.append({f: lines_in(out / f) for f in FILES})
    for f in FILES:
        assert (out / f).read_bytes() == (src / f).read_bytes(), f
    # the look at which each line was first seen, taken in the order of the lines' recorded times
    seen = sorted(
        (times[f][j], next(i for i, tick in enumerate(ticks) if tick[f] > j))
        for f in FILES
        for j in range(len(times[f]))
    )
    looks = [i for _, i in seen]
    assert looks == sorted(looks), "a record went out before an earlier one"
    assert len(set(looks)) > len(looks) // 4, "the records were not paced"


async def test_the_server_shows_each_replayed_run_with_its_own_records(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    times = write_tree(src)
    out.mkdir()
    server = Server(out, port=0, token=TOKEN, follower_options={"poll_interval": 0.05, "sweep_interval": 0.2})
    await server.start(wait_for_backlog=True)
    try:
        await asyncio.wait_for(Replayer(src, out, speed=1e4).run(), 10)
        want = {run: sum(len(times[f]) for f in files) for run, files in RUNS.items()}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=5) as http:
            deadline = time.monotonic() + 10
            while True:
                runs = (await http.get("/api/runs")).json()["runs"]
                got = {r["id"]: r["records"] for r in runs}
                if got == want or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            assert got == want
            assert {r["id"]: r["attempts"] for r in runs} == dict.fromkeys(RUNS, 1)
            for run, files in RUNS.items():
                for f in files:
                    rank = int(f[-7])
                    metric = "loss" if rank == 0 else f"loss@rank{rank}"
                    s = (await http.get("/api/series", params={"run": run, "metric": metric})).json()
                    assert s["steps"] == list(range(len(times[f]) - 2)), (run, metric)
    finally:
        await server.stop()


async def test_odd_files_replay_whole_without_hanging(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"

    def rec(step: int, t: float) -> bytes:
        return encode({"k": "scalars", "step": step, "t": t, "v": {"x": 1.0}})

    files = {
        # the writer died mid-line: the complete lines replay, and so does the torn tail, last
        "torn/rank0.jsonl": rec(0, T0) + rec(1, T0 + 1) + b'{"k":"scalars","step":2,"t":17',
        "empty/rank0.jsonl": b"",
        # the clock stepped back: file order is kept
        "back/rank0.jsonl": rec(0, T0 + 2) + rec(1, T0 + 3) + rec(2, T0 - 50) + rec(3, T0 + 4),
        # lines without a usable time: before the first time, a non-finite time, a foreign line
        "untimed/log.jsonl": (json.dumps({"note": "no time yet"}) + "\n").encode() + rec(0, T0 + 1)
        + b'{"k":"scalars","step":1,"t":"Infinity","v":{"x":2.0}}\n' + b'{"epoch": 3, "loss": NaN}\n'
        + rec(2, T0 + 5),
        "notime/foreign.jsonl": b'{"epoch": 1, "loss": 0.5}\n{"epoch": 2, "loss": 0.25}\n',
    }
    for name, data in files.items():
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_bytes(data)
    rep = Replayer(src, out, speed=1000.0)
    await asyncio.wait_for(rep.run(), 10)
    for name, data in files.items():
        assert (out / name).read_bytes() == data, name
    assert rep.written == sum(data.count(b"\n") for data in files.values())
