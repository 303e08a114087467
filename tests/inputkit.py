"""What the end-to-end input tests share: a real server over a temp log root, its HTTP API and a
WebSocket subscriber, with values read back exactly (``"NaN"`` and the infinities decoded).

Points are compared as ``(step, value)`` pairs, a NaN value spelled ``"nan"`` so that ``==`` holds.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from tailboard.sidecar.server import Server
from tailboard.sidecar.store.cursors import decode_cursor
from websockets.asyncio.client import ClientConnection, connect

TOKEN = "inputs-token"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

#: metric -> [(step, value)], NaN spelled "nan"
Points = dict[str, list[tuple[float, Any]]]


def number(v: Any) -> float:
    return NONFINITE[v] if isinstance(v, str) else float(v)


def point(step: Any, value: Any) -> tuple[float, Any]:
    v = number(value)
    return float(step), "nan" if math.isnan(v) else v


def points(steps: list[Any], values: list[Any]) -> list[tuple[float, Any]]:
    return [point(s, v) for s, v in zip(steps, values)]


class Served:
    """A started Server and an HTTP client that carries its token."""

    def __init__(self, server: Server, http: httpx.AsyncClient) -> None:
        self.server = server
        self.http = http

    async def get(self, path: str, **params: Any) -> Any:
        res = await self.http.get(path, params=params)
        assert res.status_code == 200, (path, params, res.status_code, res.text)
        return res.json()

    async def runs(self) -> dict[str, dict[str, Any]]:
        return {r["id"]: r for r in (await self.get("/api/runs"))["runs"]}

    async def files(self) -> dict[str, Any]:
        return (await self.get("/api/runs"))["loading"]["files"]

    async def series(self, run: str, metric: str) -> dict[str, Any]:
        return await self.get("/api/series", run=run, metric=metric)

    async def points(self, run: str, metric: str) -> list[tuple[float, Any]]:
        s = await self.series(run, metric)
        assert s["downsampled"] is False
        return points(s["steps"], s["values"])

    async def all_points(self, run: str) -> Points:
        info = (await self.runs())[run]
        return {m: await self.points(run, m) for m in info["metrics"]}

    async def wait(self, check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "") -> Any:
        """Poll ``check`` until it gives something truthy (returned); an AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = await check()
            if got:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what or check}")
            await asyncio.sleep(0.02)

    async def wait_points(self, run: str, metric: str, n: int, timeout: float = 10.0) -> list[tuple[float, Any]]:
        """The metric's points once there are ``n`` of them (exactly: more fails)."""

        async def check() -> list[tuple[float, Any]] | None:
            info = (await self.runs()).get(run)
            if info is None or metric not in info["metrics"]:
                return None
            got = await self.points(run, metric)
            assert len(got) <= n, f"{run} {metric}: {len(got)} points, expected {n}"
            return got if len(got) == n else None

        return await self.wait(check, timeout, f"{n} points of {run} {metric}")

    async def export(self, run: str, limit: int = 10_000) -> tuple[list[dict[str, Any]], int]:
        """Every record of ``/api/records`` walked page by page from the start, and the pages."""
        out: list[dict[str, Any]] = []
        cursor = None
        for pages in range(1, 10_000):
            params: dict[str, Any] = {"run": run, "limit": limit}
            if cursor is not None:
                params["cursor"] = cursor
            page = await self.get("/api/records", **params)
            assert "reset" not in page, page
            out += page["records"]
            cursor = page["cursor"]
            if not page["more"]:
                return out, pages
        raise AssertionError("the export never ends")

    def ws(self) -> Any:
        return connect(f"ws://127.0.0.1:{self.server.port}/ws?token={TOKEN}", max_size=None)


def exported_points(records: list[dict[str, Any]]) -> Points:
    """The scalar points of exported records (``{"k": "scalars", "step": S, "v": {...}}``)."""
    out: Points = {}
    for r in records:
        rec = r["record"]
        if rec.get("k") == "scalars":
            for name, v in rec["v"].items():
                out.setdefault(name, []).append(point(rec["step"], v))
    return out


def caught_up(server: Server, run: str, path: Path) -> bool:
    """Whether the server holds the file at ``path`` (a stream of ``run``) up to its end; safe to
    call from another thread (a training loop's callback)."""
    try:
        parts = decode_cursor(server.store.cursor(run)) or {}
        st = os.stat(path)
    except (KeyError, OSError):
        return False
    key, offset = parts.get(path.name, ("", -1))
    return key.startswith(f"{st.st_dev}:{st.st_ino}:") and offset == st.st_size


def wait_caught_up(server: Server, run: str, path: Path, timeout: float = 10.0) -> None:
    """Block (a writer's thread) until the server holds ``path`` to its end."""
    deadline = time.monotonic() + timeout
    while not caught_up(server, run, path):
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not read {path} to its end within {timeout} s")
        time.sleep(0.005)


@asynccontextmanager
async def serving(root: Path, *, follower_options: dict[str, Any] | None = None, **kw: Any) -> AsyncIterator[Served]:
    """A real Server on a loopback port over ``root``, started before anything is written to it."""
    server = Server(root, port=0, token=TOKEN, follower_options={**FAST, **(follower_options or {})}, **kw)
    await server.start(wait_for_backlog=True)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=20,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            yield Served(server, http)
    finally:
        await server.stop()


class Subscriber:
    """One run's series as a viewer holds them: a snapshot, then deltas appended; a reset empties."""

    def __init__(self, ws: ClientConnection, run: str) -> None:
        self.ws = ws
        self.run = run
        self.series: Points = {}
        self.cursor: str | None = None
        self.resets: list[str] = []
        self.deltas = 0

    async def subscribe(self, cursor: str | None = None) -> None:
        msg: dict[str, Any] = {"op": "subscribe", "runs": [self.run], "points": 100_000}
        if cursor is not None:
            msg["cursors"] = {self.run: cursor}
        await self.ws.send(json.dumps(msg))

    def apply(self, msg: dict[str, Any]) -> None:
        if msg.get("run") != self.run:
            return
        if msg["type"] == "snapshot":
            for s in msg["series"].values():
                assert s.get("downsampled") is False
            self.series = {m: points(s["steps"], s["values"]) for m, s in msg["series"].items()}
            self.cursor = msg["cursor"]
        elif msg["type"] == "delta":
            for m, s in msg["series"].items():
                self.series.setdefault(m, []).extend(points(s["steps"], s["values"]))
            self.cursor = msg["cursor"]
            self.deltas += 1
        elif msg["type"] == "reset":
            self.resets.append(msg["reason"])
            self.series, self.cursor = {}, None

    async def until(self, done: Callable[[Subscriber], bool], timeout: float = 10.0) -> None:
        """Apply messages until ``done(self)``; an AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while not done(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out: {self.run} holds {self.count()} points, resets {self.resets}")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), min(left, 0.5))
            except asyncio.TimeoutError:
                continue
            self.apply(json.loads(raw))

    def count(self, metric: str | None = None) -> int:
        if metric is not None:
            return len(self.series.get(metric, []))
        return sum(map(len, self.series.values()))

    def sorted(self) -> Points:
        return {m: sorted(p, key=lambda x: x[0]) for m, p in self.series.items()}
