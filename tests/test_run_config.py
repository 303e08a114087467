"""Each run object of /api/runs and of `runs` messages carries its config, flat and capped: the page
labels runs and fills its runs table from the run list, without a request per run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import tailboard
from tailboard.sidecar.server import Server
from websockets.asyncio.client import connect

TOKEN = "tok"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}


async def runs_message(server: Server, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
    """The first `runs` message over a real WebSocket whose run objects satisfy pred."""
    async with connect(f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}") as ws:
        async with asyncio.timeout(timeout):
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("type") == "runs" and msg.get("runs") and pred(msg["runs"]):
                    return msg


async def test_run_objects_carry_the_flat_config_capped(tmp_path: Path) -> None:
    nested = {"lr": 0.1, "optimizer": {"name": "adamw", "betas": [0.9, 0.999], "sched": {"warmup": 100}},
              "tags": ["a", "b"], "note": "x" * 500, "k" * 300: 1, "amp": True, "seed": None}
    with tailboard.init(tmp_path / "sweep/a", config=nested) as run:
        run.log({"loss": 1.0}, step=0)
    many = {f"key{i:03d}": i for i in range(100)}
    with tailboard.init(tmp_path / "sweep/wide", config=many) as run:
        run.log({"loss": 1.0}, step=0)
    with tailboard.init(tmp_path / "sweep/plain") as run:
        run.log({"loss": 1.0}, step=0)
    server = Server(tmp_path, port=0, token=TOKEN, follower_options=FAST)
    await server.start(wait_for_backlog=True)
    try:
        async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            body = (await http.get(f"{server.base_url}/api/runs")).json()
            runs = {r["id"]: r for r in body["runs"]}
            a = runs["sweep/a"]
            # flat dotted keys in the order given; lists as their JSON text; long strings cut at 200;
            # a key longer than 200 characters left out
            assert a["config"] == {"lr": 0.1, "optimizer.name": "adamw", "optimizer.betas": "[0.9,0.999]",
                                   "optimizer.sched.warmup": 100, "tags": '["a","b"]', "note": "x" * 200,
                                   "amp": True, "seed": None}
            assert list(a["config"]) == ["lr", "optimizer.name", "optimizer.betas", "optimizer.sched.warmup",
                                         "tags", "note", "amp", "seed"]
            assert a["config_truncated"] is True
            wide = runs["sweep/wide"]
            assert wide["config"] == {f"key{i:03d}": i for i in range(64)} and wide["config_truncated"] is True
            assert runs["sweep/plain"]["config"] == {} and runs["sweep/plain"]["config_truncated"] is False
            # /api/run keeps the whole config, as it nests
            detail = (await http.get(f"{server.base_url}/api/run", params={"run": "sweep/a"})).json()
            assert detail["config"]["optimizer"]["sched"] == {"warmup": 100} and len(detail["config"]["note"]) == 500
            assert "config_truncated" not in detail
            assert len((await http.get(f"{server.base_url}/api/run", params={"run": "sweep/wide"})).json()["config"]) == 100

        # runs messages carry it, and a config record written later reaches a connected client
        first = await runs_message(server, lambda rs: any(r["id"] == "sweep/a" for r in rs))
        assert next(r for r in first["runs"] if r["id"] == "sweep/a")["config"]["optimizer.name"] == "adamw"
        late = tailboard.init(tmp_path / "sweep/late")
        late.log({"loss": 1.0}, step=0)
        late.config({"batch": 64})
        late.finish()
        msg = await runs_message(server, lambda rs: any(r["id"] == "sweep/late" and r["config"] for r in rs))
        assert next(r for r in msg["runs"] if r["id"] == "sweep/late")["config"] == {"batch": 64}
    finally:
        await server.stop()
