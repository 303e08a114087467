"""The server's caps (sidecar/limits.py) against real sockets on loopback: connections, header time and
size, slow WebSocket readers, resumes from far behind, export pages and long-poll requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import tailboard
from tailboard.sidecar.limits import Limits
from tailboard.sidecar.server import Server
from websockets.asyncio.client import connect
from wskit import RawSocketClient

TOKEN = "limits-token"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def start(root: Path, **limits: Any) -> Server:
    server = Server(root, port=0, token=TOKEN, follower_options=FAST, limits=Limits(**limits))
    await server.start(wait_for_backlog=True)
    return server


def write_run(root: Path, run_id: str, n: int, width: int = 2) -> tailboard.Run:
    run = tailboard.init(root / run_id)
    for i in range(n):
        run.log({"eval/acc": float(i), **{f"m{j}": float(j) for j in range(width - 1)}}, step=i)
    return run


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it is still open."""
    sock.settimeout(0.2)
    got = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk
    return None


async def test_a_request_whose_headers_never_end_is_closed(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r", 3)
    server = await start(tmp_path, header_timeout=0.5)
    try:
        def slowloris() -> bytes | None:
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                return closed_within(s, 5.0)

        def silent() -> bytes | None:
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                return closed_within(s, 5.0)

        answer = await asyncio.to_thread(slowloris)
        assert answer is not None, "a half-sent request held its connection open"
        assert answer.startswith(b"HTTP/1.1 408")
        assert await asyncio.to_thread(silent) is not None
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        run.finish()
        await server.stop()


async def test_endless_header_values_are_cut_off(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r", 3)
    server = await start(tmp_path, max_header_bytes=16 * 1024)
    try:
        def stream_header() -> tuple[int, bytes | None]:
            sent = 0
            with socket.create_connection(("127.0.0.1", server.port)) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
                piece = b"a" * 8192
                try:
                    while sent < 64 << 20:  # the server must stop this long before 64 MB
                        s.sendall(piece)
                        sent += len(piece)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return sent, closed_within(s, 5.0)

        sent, answer = await asyncio.to_thread(stream_header)
        assert sent < 16 << 20, sent
        assert answer is not None and answer.startswith(b"HTTP/1.1 431"), answer
    finally:
        run.finish()
        await server.stop()


async def test_connections_over_the_cap_make_room_or_are_closed(tmp_path: Path) -> None:
    """Past the cap, the connection that waited longest for its headers is closed to make room: a
    flood of half-sent requests cannot lock out a health check. Connections in use are never closed
    for a newcomer; when all of them are in use, the newcomer is closed at once."""
    run = write_run(tmp_path, "r", 3)
    server = await start(tmp_path, max_open_connections=8, header_timeout=30.0)
    socks: list[socket.socket] = []
    try:
        def flood() -> list[bytes | None]:
            for _ in range(20):
                s = socket.create_connection(("127.0.0.1", server.port))
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the end
                socks.append(s)
                time.sleep(0.02)
            time.sleep(0.3)
            return [closed_within(s, 0.3) for s in socks]

        states = await asyncio.to_thread(flood)
        assert [s is None for s in states] == [False] * 12 + [True] * 8  # the newest eight held
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
            assert (await http.get("/healthz")).status_code == 200  # room was made for it
        for s in socks:
            s.close()
        socks.clear()

        # eight WebSockets in use, none waiting for headers: the ninth connection is closed at once
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(8):
                await stack.enter_async_context(connect(f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}"))
            await asyncio.sleep(0.2)

            def newcomer() -> bytes | None:
                with socket.create_connection(("127.0.0.1", server.port)) as s:
                    return closed_within(s, 2.0)

            assert await asyncio.to_thread(newcomer) is not None
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as http:
            assert (await http.get("/api/runs", headers=AUTH)).status_code == 200
    finally:
        for s in socks:
            s.close()
        run.finish()
        await server.stop()


def silent_websocket(port: int, runs: list[str]) -> RawSocketClient:
    """A WebSocket client with a tiny receive window that subscribes, then never reads."""
    client = RawSocketClient(port, TOKEN)
    client.send_text(json.dumps({"op": "subscribe", "runs": runs, "points": 100_000}))
    return client


async def test_a_client_that_never_reads_is_dropped(tmp_path: Path) -> None:
    run = write_run(tmp_path, "busy", 10)
    server = await start(tmp_path, send_timeout=1.0, queue_size=4)
    silent: list[RawSocketClient] = []
    try:
        silent = [await asyncio.to_thread(silent_websocket, server.port, ["busy"]) for _ in range(3)]
        async with connect(f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}", max_size=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "runs": ["busy"], "points": 100}))
            big = {f"m{j}": float(j) for j in range(300)}
            deadline = time.monotonic() + 20
            i = 10
            # keep writing until the silent clients' sockets fill up and the server drops them
            while len(server.hub.clients) > 1 and time.monotonic() < deadline:
                for _ in range(50):
                    run.log({**big, "eval/acc": float(i)}, step=i)
                    i += 1
                await asyncio.sleep(0.05)
                while True:  # the good client keeps reading
                    try:
                        await asyncio.wait_for(ws.recv(), 0.01)
                    except asyncio.TimeoutError:
                        break
            assert len(server.hub.clients) == 1, "clients that never read are still held"
            assert server.limits.send_timeout == 1.0
    finally:
        for s in silent:
            s.close()
        run.finish()
        await server.stop()


async def test_a_resume_from_far_behind_gets_a_snapshot_not_the_gap(tmp_path: Path) -> None:
    run = write_run(tmp_path, "big", 5)
    server = await start(tmp_path, max_resume_bytes=64 * 1024)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
            old = (await http.get("/api/records", params={"run": "big", "limit": 2})).json()["cursor"]
            for i in range(5, 5000):  # about 300 KB after the cursor
                run.log({"eval/acc": float(i), "m0": 0.0}, step=i)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                info = (await http.get("/api/run", params={"run": "big"})).json()
                if info["last_step"] == 4999:
                    break
                await asyncio.sleep(0.05)
        async with connect(f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}", max_size=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "runs": ["big"], "points": 500, "cursors": {"big": old}}))
            got: list[dict[str, Any]] = []
            while not any(m["type"] in ("snapshot", "delta") for m in got):
                got.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            kinds = [(m["type"], m.get("reason")) for m in got if m["type"] in ("reset", "snapshot", "delta")]
            assert kinds == [("reset", "far"), ("snapshot", None)], kinds
            snap = got[-1]["series"]["eval/acc"]
            assert snap["steps"][-1] == 4999 and len(snap["steps"]) <= 500
            # a near cursor still resumes exactly
            near = got[-1]["cursor"]
            run.log({"eval/acc": 5000.0, "m0": 0.0}, step=5000)
            await asyncio.sleep(0.3)
        async with connect(f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}", max_size=None) as ws:
            await ws.send(json.dumps({"op": "subscribe", "runs": ["big"], "cursors": {"big": near}}))
            while True:
                m = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if m["type"] == "delta":
                    assert m["series"]["eval/acc"]["steps"] == [5000]
                    break
                assert m["type"] in ("hello", "runs"), m
    finally:
        run.finish()
        await server.stop()


async def test_export_pages_are_bounded_and_lossless(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r", 3000, width=5)
    run.finish()
    server = await start(tmp_path, max_page_bytes=16 * 1024)
    try:
        steps: list[int] = []
        pages = 0
        cursor = None
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
            while True:
                params: dict[str, Any] = {"run": "r", "limit": 100_000}
                if cursor:
                    params["cursor"] = cursor
                page = (await http.get("/api/records", params=params)).json()
                pages += 1
                size = sum(len(json.dumps(r["record"])) for r in page["records"])
                assert size < 20 * 1024, size  # about the byte budget, not the 100k records asked for
                steps += [r["record"]["step"] for r in page["records"] if r["record"]["k"] == "scalars"]
                cursor = page["cursor"]
                if not page["more"]:
                    break
                assert pages < 1000
        assert steps == list(range(3000))
        assert pages > 5
    finally:
        await server.stop()


async def test_long_poll_requests_are_capped(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r", 50)
    server = await start(tmp_path, max_runs_per_request=4)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
            same = [("run", "r")] * 200 + [("timeout", "0"), ("points", "100000")]
            msgs = (await http.get("/api/poll", params=same)).json()["messages"]
            assert [m["type"] for m in msgs].count("snapshot") == 1  # one run named 200 times is one run
            for i in range(5):
                (tmp_path / f"x{i}").mkdir()
                with tailboard.init(tmp_path / f"x{i}") as r:
                    r.log({"a": 1.0}, step=0)
            deadline = time.monotonic() + 10
            while len((await http.get("/api/runs")).json()["runs"]) < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            many = [("run", f"x{i}") for i in range(5)] + [("timeout", "0")]
            res = await http.get("/api/poll", params=many)
            assert res.status_code == 400 and "at most 4 runs" in res.json()["error"]
    finally:
        run.finish()
        await server.stop()


async def test_bulk_answers_share_a_byte_budget(tmp_path: Path) -> None:
    """A client asking for big answers as fast as it can is slowed to the bulk budget; /healthz (and
    whatever else waits on the event loop) is not."""
    run = write_run(tmp_path, "r", 8000, width=8)  # an export page of the whole run: about 1 MB
    run.finish()
    server = await start(tmp_path, bulk_bytes_per_second=1 << 20, bulk_burst_bytes=1 << 20)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=30) as http:
            one = await http.get("/api/records", params={"run": "r", "limit": 100_000})
            size = len(one.content)
            assert 600_000 < size < 4 << 20, size

            async def greedy() -> None:
                for _ in range(4):
                    res = await http.get("/api/records", params={"run": "r", "limit": 100_000})
                    assert res.status_code == 200

            health: list[float] = []

            async def probe() -> None:
                while not task.done():
                    t0 = time.perf_counter()
                    assert (await http.get("/healthz")).status_code == 200
                    health.append(time.perf_counter() - t0)
                    await asyncio.sleep(0.05)

            t0 = time.perf_counter()
            task = asyncio.create_task(greedy())
            await probe()
            await task
            elapsed = time.perf_counter() - t0
        # 5 answers of `size` bytes at 1 MiB/s with a 1 MiB burst: the last four wait their turn
        assert elapsed >= (5 * size - (2 << 20)) / (1 << 20) * 0.9, (elapsed, size)
        assert max(health) < 0.5, max(health)
    finally:
        await server.stop()
