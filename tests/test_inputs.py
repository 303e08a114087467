"""Every input format end to end: files written by the real libraries while a real server follows them,
read back through its HTTP API and WebSocket exactly as the libraries were given them.

Each test starts the server on an empty log root, then writes with the library (torch's and
tensorboardX's SummaryWriter, Lightning's CSVLogger, transformers' Trainer): the run is found while its
writer runs, every point comes back exact (steps too), appends arrive live, bad records are counted,
cursors resume exactly and rewrites neither duplicate nor lose points.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inputkit import Points, Served, Subscriber, exported_points, point, serving
from tailboard.sidecar.limits import Limits

WALL = 1_700_000_000.0


def f32(x: float) -> float:
    """What an event file's ``simple_value`` (a float32) holds of ``x``."""
    return float(np.float32(x))


def given(steps: range | list[int], fn: Any) -> list[tuple[float, Any]]:
    return [point(s, f32(fn(s))) for s in steps]


def loss(step: int) -> float:
    return 1.0 / (step + 1) + math.sin(step) / 7


def acc(step: int) -> float:
    return math.cos(step) * 3.25


# ---- TensorBoard event files -------------------------------------------------------------------


async def test_torch_summary_writer_found_live_exact_appends_and_resume(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    async with serving(tmp_path) as s:
        w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600)
        try:
            for step in range(30):
                w.add_scalar("train/loss", loss(step), step, walltime=WALL + step)
                w.add_scalar("eval/acc", acc(step), step * 10, walltime=WALL + step + 0.5)
            w.flush()
            # found while the writer is open, every point exact
            assert await s.wait_points("exp", "train/loss", 30) == given(range(30), loss)
            assert await s.wait_points("exp", "eval/acc", 30) == [point(10 * i, f32(acc(i))) for i in range(30)]
            ser = await s.series("exp", "train/loss")
            assert ser["times"] == [WALL + step for step in range(30)]
            info = (await s.runs())["exp"]
            assert info["streams"][0]["format"] == "tfevents" and info["skipped"] == {"total": 0}

            async with s.ws() as ws:
                sub = Subscriber(ws, "exp")
                await sub.subscribe()
                await sub.until(lambda c: c.count("train/loss") == 30)
                early = sub.cursor
                # appends arrive live as deltas
                for step in range(30, 50):
                    w.add_scalar("train/loss", loss(step), step, walltime=WALL + step)
                w.flush()
                await sub.until(lambda c: c.count("train/loss") == 50)
                assert sub.series["train/loss"] == given(range(50), loss) and sub.resets == []

            # missed points: a subscription resumed from an earlier cursor gets exactly them
            for step in range(50, 60):
                w.add_scalar("train/loss", loss(step), step, walltime=WALL + step)
            w.flush()
            await s.wait_points("exp", "train/loss", 60)
            async with s.ws() as ws:
                sub = Subscriber(ws, "exp")
                await sub.subscribe(early)
                await sub.until(lambda c: c.deltas > 0 or bool(c.resets))
                assert sub.resets == []
                assert sub.series == {"train/loss": given(range(30, 60), loss)}
        finally:
            w.close()
