"""A distributed run's ranks through the real writer and server: each rank's stream carries its
latest step and steps per second (the straggler view's data), each rank's series is served, and the
run's entry is sent again as the ranks move, at most once a second."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tailboard
from tailboard.sidecar.hub import PACE_INTERVAL
from tailboard.sidecar.server import Server
from tailboard.sidecar.store.pace import WINDOW, Pace
from websockets.asyncio.client import connect

TOKEN = "tok-ranks"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RANKS = 4
TICKS = 40


def ranks(root: Path, run_id: str) -> list[tailboard.Run]:
    return [tailboard.init(root / run_id, rank=r, world_size=RANKS) for r in range(RANKS)]


def tick(runs: list[tailboard.Run], k: int) -> None:
    """Tick k: ranks 0-2 are at step 2k, the last rank (the straggler) at step k."""
    for r, run in enumerate(runs):
        step = k if r == RANKS - 1 else 2 * k
        run.log({"loss": 10.0 * r + step / 100}, step=step)


async def start(root: Path) -> Server:
    server = Server(root, port=0, token=TOKEN, follower_options=FAST)
    await server.start(wait_for_backlog=True)
    return server


def streams(body: dict[str, Any], run_id: str) -> dict[int, dict[str, Any]]:
    run = next(r for r in body["runs"] if r["id"] == run_id)
    return {s["rank"]: s for s in run["streams"]}


async def test_each_rank_stream_has_its_latest_step_and_rate_and_its_own_series(tmp_path: Path) -> None:
    runs = ranks(tmp_path, "ddp")
    for k in range(TICKS):
        tick(runs, k)
        await asyncio.sleep(0.005)  # the records' own times are what the rate is over
    for run in runs:
        run.finish()
    server = await start(tmp_path)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
            body = (await http.get("/api/runs")).json()
            by_rank = streams(body, "ddp")
            assert sorted(by_rank) == list(range(RANKS))
            assert [by_rank[r]["name"] for r in range(RANKS)] == [f"rank{r}.jsonl" for r in range(RANKS)]
            last = TICKS - 1
            assert [by_rank[r]["last_step"] for r in range(RANKS)] == [2 * last] * 3 + [last]
            assert all(isinstance(by_rank[r]["last_step"], int) for r in range(RANKS))
            rates = [by_rank[r]["rate"] for r in range(RANKS)]
            assert all(r is not None and r > 0 for r in rates), rates
            # the same ticks, half the steps: half the rate
            for r in range(3):
                assert rates[3] / rates[r] == pytest.approx(0.5, rel=0.15), rates
            # every rank's series: the run's metric is rank 0's, the others carry their rank
            for r in range(RANKS):
                metric = "loss" if r == 0 else f"loss@rank{r}"
                got = (await http.get("/api/series", params={"run": "ddp", "metric": metric})).json()
                step = (lambda k: k) if r == RANKS - 1 else (lambda k: 2 * k)
                assert got["steps"] == [step(k) for k in range(TICKS)]
                assert got["values"] == pytest.approx([10.0 * r + step(k) / 100 for k in range(TICKS)])
    finally:
        await server.stop()


def test_the_rate_is_over_the_last_points_and_starts_again_after_a_restart() -> None:
    import numpy as np

    pace = Pace()
    assert pace.to_json() == {"last_step": None, "rate": None}
    def col(steps: Any, times: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.asarray(steps, float), np.zeros(len(steps)), np.asarray(times, float)

    # 100 steps at 1 step/s, then the last WINDOW at 4 steps/s: only those count
    pace.add([{"loss": col(range(100), range(100)), "lr": col([99], [99])}], 99)
    assert pace.rate() == pytest.approx(1.0)
    pace.add([{"loss": col(range(100, 100 + WINDOW * 4, 4), [100 + i for i in range(WINDOW)])}], 100 + (WINDOW - 1) * 4)
    assert pace.rate() == pytest.approx(4.0)
    assert pace.to_json()["last_step"] == 100 + (WINDOW - 1) * 4
    # a restart (a new segment) from step 10: the window and the latest step start again
    pace.add([{}, {"loss": col([10, 11], [500.0, 500.5])}], 11)
    assert pace.to_json() == {"last_step": 11, "rate": 2.0}
    # a NaN time is no point; a chunk without scalars keeps what was there
    pace.add([{"loss": col([12], [float("nan")])}], 12)
    pace.add([{}], None)
    assert pace.to_json() == {"last_step": 12, "rate": 2.0}


async def test_a_live_run_of_ranks_is_sent_again_as_its_ranks_move_at_most_once_a_second(tmp_path: Path) -> None:
    runs = ranks(tmp_path, "ddp")
    solo = tailboard.init(tmp_path / "solo")
    tick(runs, 0)
    solo.log({"loss": 1.0}, step=0)
    server = await start(tmp_path)
    try:
        url = f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}"
        async with connect(url) as ws:
            entries: list[tuple[float, dict[int, dict[str, Any]]]] = []
            solo_entries = 0
            deadline = time.monotonic() + 3.5
            k = 1
            while time.monotonic() < deadline:
                # a record from every rank every 50 ms, and from the one-stream run
                tick(runs, k)
                solo.log({"loss": 1.0}, step=k)
                k += 1
                try:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 0.05))
                except TimeoutError:
                    continue
                if msg["type"] != "runs":
                    continue
                for run in msg["runs"]:
                    if run["id"] == "ddp" and not msg["full"]:
                        entries.append((time.monotonic(), {s["rank"]: s for s in run["streams"]}))
                    solo_entries += run["id"] == "solo" and not msg["full"]
            # the ranks' steps reached the page as they moved, about once a second (not once a record)
            assert 2 <= len(entries) <= 3.5 / PACE_INTERVAL + 1, [t for t, _ in entries]
            gaps = [b - a for (a, _), (b, _) in itertools.pairwise(entries)]
            assert all(g >= PACE_INTERVAL * 0.5 for g in gaps), gaps  # (as received: a busy loop may bunch them a little)
            steps = [e[3]["last_step"] for _, e in entries]
            assert steps == sorted(steps) and steps[-1] > steps[0], steps
            last = entries[-1][1]  # rank 0 twice as far as the straggler (give or take the tick in flight)
            assert abs(last[0]["last_step"] - 2 * last[3]["last_step"]) <= 2, last
            # a run of one stream gets nothing of the kind
            assert solo_entries == 0
    finally:
        for run in [*runs, solo]:
            run.finish()
        await server.stop()
