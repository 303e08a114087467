"""The real server (uvicorn on a loopback port) over real log files, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import tailboard
from tailboard.sidecar.replay import Replayer
from tailboard.sidecar.server import Server
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from wskit import RawSocketClient

TOKEN = "test-token-123"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}


async def start(logdir: Path, port: int = 0, **kw: Any) -> Server:
    server = Server(logdir, port=port, token=TOKEN, follower_options=FAST, **kw)
    await server.start(wait_for_backlog=True)
    return server


def write_run(root: Path, run_id: str, n: int, start_step: int = 0) -> tailboard.Run:
    run = tailboard.init(root / run_id)
    for i in range(start_step, start_step + n):
        run.log({"train/loss": 1.0 / (i + 1), "eval/acc": float(i)}, step=i)
    return run


def ws_url(server: Server, token: str | None = TOKEN) -> str:
    return f"ws://127.0.0.1:{server.port}/ws" + (f"?token={token}" if token else "")


async def recv_json(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws: Any, pred: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Messages received until one satisfies pred (included)."""
    got = []
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        got.append(msg)
        if pred(msg):
            return got


@pytest.fixture
async def served(tmp_path: Path):
    run = write_run(tmp_path, "exp/lr_0.1", 50)
    server = await start(tmp_path)
    yield server, tmp_path, run
    run.finish()
    await server.stop()


async def test_every_data_route_needs_the_token(served: Any) -> None:
    """Every route but the viewer's own files and /healthz needs the token; no cookie is ever set
    (cookies are shared by every port of a host)."""
    server, _, _ = served
    base = server.base_url
    paths = []
    for route in server.app.app.routes:
        path = getattr(route, "path", None)
        if path and path != "/ws":
            paths.append(path.replace("{name:str}", "index.html"))
    assert "/api/series" in paths and "/api/poll" in paths
    public = {"/healthz", "/", "/index.html"}
    async with httpx.AsyncClient(timeout=10) as http:
        for path in paths:
            q = "?run=exp/lr_0.1&metric=train/loss&timeout=0"
            anon = await http.get(base + path + q)
            wrong = await http.get(base + path + q, headers={"Authorization": "Bearer nope"})
            good = await http.get(base + path + q, headers={"Authorization": f"Bearer {TOKEN}"})
            via_query = await http.get(base + path + q + f"&token={TOKEN}")
            if path in public:
                assert anon.status_code == 200, path
                assert b"exp/lr_0.1" not in anon.content  # the page shell holds no log data
            else:
                assert path.startswith("/api/"), path
                assert anon.status_code == 401, path
                assert wrong.status_code == 401, path
                assert good.status_code in (200, 404), (path, good.text)  # 404: no histogram named ""
                assert via_query.status_code == good.status_code, path
            for res in (anon, wrong, good, via_query):
                assert "set-cookie" not in res.headers, path
    # the WebSocket takes the token from its subprotocol list (what a browser can send)
    from tailboard.sidecar.auth import token_subprotocol

    url = f"ws://127.0.0.1:{server.port}/ws"
    async with connect(url, subprotocols=["tailboard", token_subprotocol(TOKEN)]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "tailboard"
        assert (await recv_json(ws))["type"] == "hello"
    with pytest.raises(InvalidStatus) as e:
        async with connect(url, subprotocols=["tailboard", token_subprotocol("nope")]):  # type: ignore[list-item]
            pass
    assert e.value.response.status_code == 403


async def test_security_headers_on_every_response(served: Any) -> None:
    server, _, _ = served
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        for path, headers in (
            ("/", {}),
            ("/app.js", {}),
            ("/api/runs", {}),
            ("/api/runs", {"Authorization": f"Bearer {TOKEN}"}),
            ("/api/series?run=nope", {"Authorization": f"Bearer {TOKEN}"}),
            ("/healthz", {}),
        ):
            res = await http.get(path, headers=headers)
            csp = res.headers.get("content-security-policy", "")
            assert "default-src 'none'" in csp and "script-src 'self'" in csp, path
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, path
            assert res.headers.get("x-content-type-options") == "nosniff", path
            assert res.headers.get("referrer-policy") == "no-referrer", path
            assert res.headers.get("x-frame-options") == "DENY", path
    assert "#token=" in server.url and "?token=" not in server.url


async def test_frame_ancestors_let_a_named_origin_frame_the_page(tmp_path: Path) -> None:
    """A notebook shows the page in a frame only when the operator names its origin; anything that is
    not one CSP source (a directive smuggled in) is refused before the server starts."""
    server = await start(tmp_path, frame_ancestors=["http://localhost:8888", "vscode-webview:"])
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            for path in ("/", "/app.js", "/healthz"):
                res = await http.get(path)
                csp = res.headers["content-security-policy"]
                assert "frame-ancestors http://localhost:8888 vscode-webview:" in csp, path
                assert "frame-ancestors 'none'" not in csp and "x-frame-options" not in res.headers, path
                assert "script-src 'self'" in csp, path
    finally:
        await server.stop()
    for bad in ("http://x; script-src *", "*", "http://a,http://b"):
        with pytest.raises(ValueError, match="frame-ancestors"):
            Server(tmp_path, port=0, token=TOKEN, frame_ancestors=[bad])


async def test_api_runs_series_and_downsampling(served: Any) -> None:
    server, _, _ = served
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=h, timeout=10) as http:
        runs = (await http.get("/api/runs")).json()["runs"]
        assert [r["id"] for r in runs] == ["exp/lr_0.1"]
        r = runs[0]
        assert r["status"] == "running" and r["last_step"] == 49 and set(r["metrics"]) == {"train/loss", "eval/acc"}
        full = (await http.get("/api/series", params={"run": "exp/lr_0.1", "metric": "eval/acc"})).json()
        assert full["steps"] == list(range(50)) and full["downsampled"] is False
        part = (await http.get("/api/series", params={"run": "exp/lr_0.1", "metric": "eval/acc", "start": 10, "end": 19})).json()
        assert part["steps"] == list(range(10, 20))
        ds = (await http.get("/api/series", params={"run": "exp/lr_0.1", "metric": "eval/acc", "points": 8})).json()
        assert ds["downsampled"] and len(ds["steps"]) <= 8 and ds["steps"][-1] == 49 and "envelope" in ds
        bad = await http.get("/api/series", params={"run": "exp/lr_0.1", "metric": "eval/acc", "points": "x"})
        assert bad.status_code == 400
        missing = await http.get("/api/series", params={"run": "exp/lr_0.1", "metric": "nope"})
        assert missing.status_code == 404


@pytest.mark.parametrize(
    "run",
    ["../etc", "/etc/passwd", "exp/../../etc", "exp/lr_0.1\x00", "%2e%2e/%2e%2e/etc", "exp%2flr_0.1/..", "", "."],
)
async def test_traversal_is_refused(served: Any, run: str) -> None:
    server, _, _ = served
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=h, timeout=10) as http:
        for path in ("/api/series", "/api/run", "/api/records", "/api/texts"):
            res = await http.get(path, params={"run": run, "metric": "train/loss"})
            assert res.status_code == 404, (path, run)
        for raw in ("/..%2f..%2fetc%2fpasswd", "/%2e%2e/pyproject.toml", "/__init__.py", "/tests/state.test.mjs"):
            res = await http.get(raw)
            assert res.status_code == 404, raw


async def test_foreign_origin_and_host_are_refused(served: Any) -> None:
    server, _, _ = served
    with pytest.raises(InvalidStatus) as e:
        async with connect(ws_url(server), origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert e.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        async with connect(ws_url(server, token=None)):
            pass
    # the scheme counts: an https page is another origin than this http server
    with pytest.raises(InvalidStatus) as e:
        async with connect(ws_url(server), origin=f"https://127.0.0.1:{server.port}"):  # type: ignore[arg-type]
            pass
    assert e.value.response.status_code == 403
    async with connect(ws_url(server), origin=f"http://127.0.0.1:{server.port}") as ws:  # type: ignore[arg-type]
        assert (await recv_json(ws))["type"] == "hello"
    async with httpx.AsyncClient(timeout=10) as http:
        res = await http.get(f"{server.base_url}/api/runs", headers={"Host": "evil.example", "Authorization": f"Bearer {TOKEN}"})
        assert res.status_code == 403


async def test_oversize_client_message_closes_the_socket(served: Any) -> None:
    server, _, _ = served
    async with connect(ws_url(server), max_size=None) as ws:
        await recv_json(ws)
        await ws.send("x" * (70 * 1024))
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(10):
                await recv_json(ws)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009


async def test_malformed_client_messages_get_errors(served: Any) -> None:
    server, _, _ = served
    async with connect(ws_url(server)) as ws:
        await until(ws, lambda m: m["type"] == "runs")
        await ws.send("{nope")
        assert (await until(ws, lambda m: m["type"] == "error"))[-1]["message"] == "message is not JSON"
        await ws.send(json.dumps({"op": "subscribe", "runs": ["exp/lr_0.1"], "points": 1}))
        assert "points" in (await until(ws, lambda m: m["type"] == "error"))[-1]["message"]
        await ws.send(json.dumps({"op": "ping"}))
        await until(ws, lambda m: m["type"] == "pong")


class Collector:
    """Applies snapshot / delta / reset messages of one run the way a viewer does."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.cursor: str | None = None
        self.resets: list[str] = []

    def apply(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "snapshot":
            self.steps = list(msg["series"].get("eval/acc", {}).get("steps", []))
            self.cursor = msg["cursor"]
        elif msg["type"] == "delta":
            self.steps += msg["series"].get("eval/acc", {}).get("steps", [])
            self.cursor = msg["cursor"]
        elif msg["type"] == "reset":
            self.resets.append(msg["reason"])
            self.steps = []
            self.cursor = None

    async def session(self, ws: Any, run: str, want: int, timeout: float = 15.0, subscribe: bool = True) -> None:
        if subscribe:  # a new connection: subscribe, resuming from the cursor held
            sub: dict[str, Any] = {"op": "subscribe", "runs": [run], "points": 100_000}
            if self.cursor:
                sub["cursors"] = {run: self.cursor}
            await ws.send(json.dumps(sub))
        deadline = time.monotonic() + timeout
        while len(self.steps) < want and time.monotonic() < deadline:
            try:
                msg = await recv_json(ws, 0.5)
            except asyncio.TimeoutError:
                continue
            if msg.get("run") == run:
                self.apply(msg)


async def writer_task(run: tailboard.Run, start: int, n: int, every: float) -> None:
    for i in range(start, start + n):
        run.log({"train/loss": 1.0 / (i + 1), "eval/acc": float(i)}, step=i)
        await asyncio.sleep(every)


async def test_resume_across_reconnect_is_lossless(served: Any) -> None:
    server, _, run = served
    c = Collector()
    writing = asyncio.create_task(writer_task(run, 50, 300, 0.003))
    async with connect(ws_url(server)) as ws:
        await c.session(ws, "exp/lr_0.1", 120)
    await asyncio.sleep(0.3)  # records keep coming while the client is away
    async with connect(ws_url(server)) as ws:
        await writing
        await c.session(ws, "exp/lr_0.1", 350)
    assert c.steps == list(range(350))
    assert c.resets == []


async def test_resume_across_server_restart_is_lossless(tmp_path: Path) -> None:
    run = write_run(tmp_path, "r", 20)
    server = await start(tmp_path)
    port = server.port
    c = Collector()
    writing = asyncio.create_task(writer_task(run, 20, 200, 0.005))
    try:
        async with connect(ws_url(server)) as ws:
            await c.session(ws, "r", 60)
        await server.stop()
        await asyncio.sleep(0.2)
        server = await start(tmp_path, port=port)
        async with connect(ws_url(server)) as ws:
            await writing
            await c.session(ws, "r", 220)
        assert c.steps == list(range(220))
        assert c.resets == []
    finally:
        run.finish()
        await server.stop()


async def test_truncated_file_gives_a_reset_then_a_snapshot(served: Any) -> None:
    server, root, run = served
    async with connect(ws_url(server)) as ws:
        c = Collector()
        await c.session(ws, "exp/lr_0.1", 50)
        run.finish()
        path = root / "exp" / "lr_0.1" / "rank0.jsonl"
        path.write_bytes(b"")  # copytruncate
        with tailboard.init(root / "exp" / "lr_0.1") as again:
            for i in range(5):
                again.log({"eval/acc": float(i)}, step=i)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not (c.resets and c.steps == list(range(5))):
            try:
                c.apply(await recv_json(ws, 0.5))
            except asyncio.TimeoutError:
                pass
        assert c.resets and c.resets[0] in ("truncated", "replaced", "attempt")
        assert c.steps == list(range(5))


async def test_a_stalled_client_does_not_hurt_the_others(tmp_path: Path) -> None:
    run = write_run(tmp_path, "busy", 10)
    server = Server(tmp_path, port=0, token=TOKEN, follower_options=FAST, queue_size=4)
    await server.start(wait_for_backlog=True)
    try:
        # blocking socket work in a thread: the server runs on this loop
        slow = await asyncio.to_thread(RawSocketClient, server.port, TOKEN)  # subscribes, then never reads
        await asyncio.to_thread(slow.send_text, json.dumps({"op": "subscribe", "runs": ["busy"], "points": 100}))
        fast = Collector()
        big = {f"m{j}": float(j) for j in range(500)}
        async with connect(ws_url(server), max_size=None) as ws:
            await fast.session(ws, "busy", 10)

            async def flood() -> None:
                for i in range(10, 3010):
                    run.log({**big, "eval/acc": float(i)}, step=i)
                    if i % 50 == 0:
                        await asyncio.sleep(0.01)

            t0 = time.monotonic()
            await flood()
            await fast.session(ws, "busy", 3010, timeout=40, subscribe=False)
            elapsed = time.monotonic() - t0
        assert fast.steps == list(range(3010)), len(fast.steps)
        assert elapsed < 40
        # the slow client, when it finally reads, is told it lagged and gets a fresh snapshot
        assert await asyncio.to_thread(slow.read_until, b'"reason":"lagging"', 20)
        slow.close()
    finally:
        run.finish()
        await server.stop()


async def test_long_poll_fallback_uses_the_same_cursors(served: Any) -> None:
    server, _, run = served
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=h, timeout=30) as http:
        first = (await http.get("/api/poll", params={"run": "exp/lr_0.1", "timeout": 0})).json()["messages"]
        snap = [m for m in first if m["type"] == "snapshot"][0]
        assert snap["series"]["eval/acc"]["steps"][-1] == 49

        async def later() -> None:
            await asyncio.sleep(0.3)
            run.log({"eval/acc": 50.0}, step=50)

        task = asyncio.create_task(later())
        t0 = time.monotonic()
        res = await http.get("/api/poll", params={"run": "exp/lr_0.1", "cursor.exp/lr_0.1": snap["cursor"], "timeout": 10})
        await task
        msgs = res.json()["messages"]
        deltas = [m for m in msgs if m["type"] == "delta"]
        assert deltas and deltas[0]["series"]["eval/acc"]["steps"] == [50]
        assert 0.2 < time.monotonic() - t0 < 5


async def test_records_export_is_exact(served: Any) -> None:
    server, _, run = served
    h = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=h, timeout=10) as http:
        page = (await http.get("/api/records", params={"run": "exp/lr_0.1", "limit": 30})).json()
        assert page["more"] is True and len(page["records"]) == 30
        rest = (await http.get("/api/records", params={"run": "exp/lr_0.1", "cursor": page["cursor"]})).json()
        recs = [r["record"] for r in page["records"] + rest["records"]]
        assert recs[0]["k"] == "header"
        assert [r["step"] for r in recs if r["k"] == "scalars"] == list(range(50))
        bogus = (await http.get("/api/records", params={"run": "exp/lr_0.1", "cursor": "garbage"})).json()
        assert "reset" in bogus


async def test_replay_paces_records_by_their_recorded_times(tmp_path: Path) -> None:
    src = tmp_path / "src" / "run"
    src.mkdir(parents=True)
    t0 = 1_700_000_000.0
    lines = [json.dumps({"k": "scalars", "step": i, "t": t0 + i, "v": {"x": float(i)}}) for i in range(6)]
    (src / "rank0.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    rep = Replayer(tmp_path / "src", out, speed=10.0)
    task = asyncio.create_task(rep.run())
    seen: list[tuple[float, int]] = []
    start = time.monotonic()
    target = out / "run" / "rank0.jsonl"
    while not task.done() or len(seen) < 6:
        if target.exists():
            n = len(target.read_text().splitlines())
            if not seen or seen[-1][1] != n:
                seen.append((time.monotonic() - start, n))
        await asyncio.sleep(0.005)
        if time.monotonic() - start > 5:
            break
    await task
    assert seen[-1][1] == 6
    # 5 s of recorded time at 10x: about 0.5 s, and not all at once
    elapsed = seen[-1][0]
    assert 0.4 < elapsed < 1.5, seen
    assert len(seen) >= 4


async def test_tls_with_certfile_and_keyfile(tmp_path: Path) -> None:
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    logs = tmp_path / "logs"
    run = write_run(logs, "r", 3)
    server = await start(logs, certfile=str(cert), keyfile=str(key))
    try:
        assert server.base_url.startswith("https://")
        ctx = ssl.create_default_context(cafile=str(cert))
        async with httpx.AsyncClient(verify=ctx, timeout=10) as http:
            res = await http.get(f"{server.base_url}/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
            assert res.status_code == 200 and res.json()["runs"][0]["id"] == "r"
            first = await http.get(f"{server.base_url}/?token={TOKEN}")
            assert first.status_code == 200 and "set-cookie" not in first.headers
        # a page served over https may open the wss socket; an http origin may not
        with pytest.raises(InvalidStatus):
            async with connect(f"wss://127.0.0.1:{server.port}/ws?token={TOKEN}", ssl=ctx,
                               origin=f"http://127.0.0.1:{server.port}"):  # type: ignore[arg-type]
                pass
        async with connect(f"wss://127.0.0.1:{server.port}/ws?token={TOKEN}", ssl=ctx,
                           origin=f"https://127.0.0.1:{server.port}") as ws:  # type: ignore[arg-type]
            assert (await recv_json(ws))["type"] == "hello"
        async with httpx.AsyncClient(timeout=5) as http:  # plain HTTP on a TLS port gets nowhere
            with pytest.raises(httpx.HTTPError):
                await http.get(f"http://127.0.0.1:{server.port}/healthz")
    finally:
        run.finish()
        await server.stop()


async def test_clients_hear_catch_up_progress_until_done(served: Any) -> None:
    server, root, _runs = served
    async with connect(ws_url(server), origin=f"http://127.0.0.1:{server.port}") as ws:
        first = await until(ws, lambda m: m["type"] == "runs")
        assert first[-1]["loading"]["done"]
        server.store.set_progress(5, 10, False)
        got = await until(ws, lambda m: m["type"] == "runs" and not m["loading"]["done"])
        assert got[-1]["loading"] == {"done": False, "bytes": 5, "total_bytes": 10,
                                  "files": {"formats": {"jsonl": 1}, "unrecognised": 0, "examples": []}}
        server.store.set_progress(10, 10, True)
        got = await until(ws, lambda m: m["type"] == "runs" and m["loading"]["done"])
        assert got[-1]["loading"]["bytes"] == 10 and got[-1]["runs"] == []


async def test_healthz_reports_how_late_the_event_loop_runs(served: Any) -> None:
    server, _, _ = served
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        await asyncio.sleep(0.2)
        quiet = (await http.get("/healthz")).json()["loop_lag"]
        time.sleep(0.3)  # hold this loop (the server's) on purpose
        await asyncio.sleep(0.05)
        held = (await http.get("/healthz")).json()["loop_lag"]
    assert quiet["max_ms"] < 300
    assert held["max_ms"] >= 250 and held["p99_ms"] <= held["max_ms"]


async def test_latest_answers_each_metrics_last_point_in_one_request(tmp_path: Path) -> None:
    """/api/latest: per metric, the point /api/series ends with (a resumed run's new attempt, a
    metric logged now and then, a NaN), as columns; capped at the record limit, the answer saying so."""
    from tailboard.sidecar.limits import Limits

    with tailboard.init(tmp_path / "r") as run:
        for i in range(100):
            run.log({"loss": 1.0 / (i + 1), **({"eval/acc": i / 100} if i % 30 == 0 else {}),
                     **({"grad": float("nan") if i == 2 else 1.0} if i < 8 else {})}, step=i)
    with tailboard.init(tmp_path / "r") as again:  # resumed at step 3
        for i in range(3, 11):
            again.log({"loss": 0.5 + i}, step=i)
    server = await start(tmp_path, limits=Limits(max_records=2))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            got = (await http.get("/api/latest", params={"run": "r"})).json()
            assert (got["metrics"], got["total"], got["truncated"]) == (["eval/acc", "grad"], 3, True)
            # as the charts draw them: the first attempt up to the second one's first step (3)
            assert got["steps"] == [0, 2] and got["values"] == [0.0, "NaN"]
            for name, step, value, t in zip(got["metrics"], got["steps"], got["values"], got["times"]):
                s = (await http.get("/api/series", params={"run": "r", "metric": name})).json()
                assert (s["steps"][-1], s["values"][-1], s["times"][-1]) == (step, value, t), name
            loss = (await http.get("/api/latest", params={"run": "r", "prefix": "lo"})).json()
            assert (loss["metrics"], loss["steps"], loss["values"]) == (["loss"], [10], [10.5])
            assert (loss["total"], loss["truncated"]) == (1, False) and loss["cursor"]
            none = (await http.get("/api/latest", params={"run": "r", "prefix": "nope/"})).json()
            assert (none["metrics"], none["steps"], none["total"], none["truncated"]) == ([], [], 0, False)
            assert (await http.get("/api/latest", params={"run": "nope"})).status_code == 404
            assert (await http.get("/api/latest", params={"run": "r"}, headers={"Authorization": "Bearer no"})
                    ).status_code == 401
    finally:
        await server.stop()
