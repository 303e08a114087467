"""Stop control: the real server (``allow_control``) on a loopback port, a real trainer process that
loops on ``run.should_stop()``, the control file in a real run folder, and every way the request is
refused; the writer's side with a clock the test moves."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import timeit
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tailboard
import tailboard.run
from tailboard.run import CONTROL_FILE, TailboardWarning
from tailboard.sidecar.server import Server

TOKEN = "control-token"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}
AUTH = {"Authorization": f"Bearer {TOKEN}"}

TRAINER = """
import sys, time, tailboard
called = []
run = tailboard.init(sys.argv[1], on_stop=lambda: called.append(1))
step = 0
while not run.should_stop():
    run.log({"loss": 1.0 / (step + 1)}, step=step)
    step += 1
    time.sleep(0.02)
    if step > 3000:
        sys.exit(3)  # never asked to stop: bounded all the same
print("on_stop called", len(called), flush=True)
time.sleep(1.0)  # a checkpoint being saved
run.finish()
"""


async def start(root: Path, **kw: Any) -> Server:
    server = Server(root, port=0, token=TOKEN, follower_options=FAST, **kw)
    await server.start(wait_for_backlog=True)
    return server


def post(server: Server, run: str, body: bytes | None = b"{}", **headers: str) -> httpx.Response:
    """A stop request as the page sends it, unless ``headers`` say otherwise (None drops a header)."""
    sent = {"Origin": server.base_url, "Content-Type": "application/json", **AUTH}
    sent.update(headers)
    sent = {k.replace("_", "-"): v for k, v in sent.items() if v != ""}
    return httpx.post(f"{server.base_url}/api/runs/{run}/stop", content=body, headers=sent, timeout=10)


async def run_entry(server: Server, run: str) -> dict[str, Any] | None:
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
        runs = (await http.get("/api/runs")).json()["runs"]
    return next((r for r in runs if r["id"] == run), None)


async def test_page_to_trainer_and_back_requested_acknowledged_finished(tmp_path: Path) -> None:
    server = await start(tmp_path, allow_control=True)
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    proc = await asyncio.to_thread(subprocess.Popen, [sys.executable, str(script), str(tmp_path / "exp/a")],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while (entry := await run_entry(server, "exp/a")) is None or entry["status"] != "running":
            assert time.monotonic() < deadline and proc.poll() is None, "the trainer's run did not show"
            await asyncio.sleep(0.05)
        assert "stop" not in entry
        res = await asyncio.to_thread(post, server, "exp/a", b'{"reason": "loss diverged"}')
        assert res.status_code == 202, res.text
        stop = res.json()["stop"]
        assert stop["state"] == "requested" and stop["reason"] == "loss diverged" and stop["acknowledged"] is None
        written = json.loads((tmp_path / "exp/a" / CONTROL_FILE).read_text())
        assert written["action"] == "stop" and written["nonce"] == stop["nonce"]
        assert [p.name for p in (tmp_path / "exp/a").iterdir() if p.name.endswith(".tmp")] == []
        again = await asyncio.to_thread(post, server, "exp/a")  # a second click: the same request
        assert again.status_code == 202 and again.json()["stop"]["nonce"] == stop["nonce"]
        states = ["requested"]
        deadline = time.monotonic() + 20
        while states[-1] != "finished":
            assert time.monotonic() < deadline, f"stop states seen: {states}"
            entry = await run_entry(server, "exp/a")
            assert entry is not None
            if entry["stop"]["state"] != states[-1]:
                states.append(entry["stop"]["state"])
            await asyncio.sleep(0.05)
        assert states == ["requested", "acknowledged", "finished"]
        assert entry["status"] == "finished" and entry["stop"]["nonce"] == stop["nonce"]
        assert entry["stop"]["acknowledged"] >= stop["requested"]
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "on_stop called 1" in out
        records = [json.loads(line) for line in (tmp_path / "exp/a/rank0.jsonl").read_text().splitlines()]
        [ack] = [r for r in records if r.get("name") == "tailboard/control"]
        assert ack["nonce"] == stop["nonce"] and ack["action"] == "stop" and "loss diverged" in ack["text"]
        assert records[-1]["k"] == "end" and records[-1]["status"] == "finished"
        # the page's detail view says the same
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
            detail = (await http.get("/api/run?run=exp/a")).json()
        assert detail["stop"]["state"] == "finished"
        # a finished run cannot be asked again
        late = await asyncio.to_thread(post, server, "exp/a")
        assert late.status_code == 409 and "finished" in late.json()["error"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        await server.stop()


async def test_every_request_that_is_not_the_pages_is_refused(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "exp/a")
    run.log({"loss": 1.0}, step=0)
    done = tailboard.init(tmp_path / "exp/done")
    done.finish()
    server = await start(tmp_path, allow_control=True)
    try:
        cases = [
            ({"Authorization": ""}, b"{}", 401),
            ({"Authorization": "Bearer nope"}, b"{}", 401),
            ({"Origin": "http://evil.example"}, b"{}", 403),
            ({"Origin": server.base_url.replace("http:", "https:")}, b"{}", 403),
            ({"Origin": f"http://127.0.0.1:{server.port + 1}"}, b"{}", 403),
            ({"Origin": "null"}, b"{}", 403),
            ({"Sec-Fetch-Site": "cross-site"}, b"{}", 403),
            ({"Sec-Fetch-Site": "same-site"}, b"{}", 403),
            ({"Content-Type": "application/x-www-form-urlencoded"}, b"reason=x", 415),  # a cross-site form
            ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415),
            ({"Content-Type": "text/plain"}, b"{}", 415),
            ({"Content-Type": ""}, b"{}", 415),
            ({}, b"[]", 400),
            ({}, b"not json", 400),
            ({}, b'{"reason": 5}', 400),
            ({}, b"{" + b" " * 5000 + b"}", 413),
        ]
        for headers, body, status in cases:
            res = await asyncio.to_thread(post, server, "exp/a", body, **headers)
            assert res.status_code == status, (headers, body[:20], res.text)
            assert "error" in res.json()
        assert (await asyncio.to_thread(post, server, "nope")).status_code == 404
        assert (await asyncio.to_thread(post, server, "exp/a/%2e%2e/done")).status_code == 404  # never a path
        assert (await asyncio.to_thread(post, server, "exp/done")).status_code == 409
        assert list(tmp_path.rglob(CONTROL_FILE + "*")) == []  # nothing refused was written
        # a script (no Origin, no Sec-Fetch-Site) with the token and a JSON body is a client too
        res = await asyncio.to_thread(post, server, "exp/a", b"{}", Origin="", Sec_Fetch_Site="")
        assert res.status_code == 202, res.text
        assert (tmp_path / "exp/a" / CONTROL_FILE).exists()
        # only POST: a link or an image cannot do it
        get = await asyncio.to_thread(httpx.get, f"{server.base_url}/api/runs/exp/a/stop", headers=AUTH, timeout=10)
        assert get.status_code == 405
    finally:
        run.finish()
        await server.stop()


async def test_without_allow_control_the_route_does_not_exist(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "exp/a")
    run.log({"loss": 1.0}, step=0)
    server = await start(tmp_path)
    try:
        res = await asyncio.to_thread(post, server, "exp/a")
        assert res.status_code == 404
        async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as http:
            assert (await http.get("/api/runs")).json()["features"]["control"] is False
        assert not (tmp_path / "exp/a" / CONTROL_FILE).exists()
    finally:
        run.finish()
        await server.stop()
    with pytest.raises(ValueError, match="needs auth"):
        Server(tmp_path, port=0, auth=False, allow_control=True)


@pytest.fixture
def read_only_tree(tmp_path: Path) -> Iterator[Path]:
    """A log tree holding a run killed mid-training (no final record), then made read-only: a tmpfs
    remounted read-only (root ignores permission bits), or a folder without write permission."""
    where = tmp_path / "ro"
    where.mkdir()
    mounted = False
    if os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tailboard-test", str(where)],
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted = True
    killed = "import os, sys, tailboard\nrun = tailboard.init(sys.argv[1])\nrun.log({'loss': 1.0})\nos._exit(0)\n"
    subprocess.run([sys.executable, "-c", killed, str(where / "exp/a")], check=True, timeout=60)
    try:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True, timeout=30)
        else:
            (where / "exp/a").chmod(0o555)
        yield where
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(where)], timeout=30, check=False)
        else:
            (where / "exp/a").chmod(0o755)


async def test_a_read_only_tree_answers_a_clear_error(read_only_tree: Path) -> None:
    server = await start(read_only_tree, allow_control=True, gpu="off")
    try:
        assert server.store.get_run("exp/a").status == "running"
        res = await asyncio.to_thread(post, server, "exp/a")
        assert res.status_code == 409
        assert "read-only" in res.json()["error"]
        entry = await run_entry(server, "exp/a")
        assert entry is not None and "stop" not in entry  # nothing was requested
    finally:
        await server.stop()


# ---- the writer's side ------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(folder: Path, nonce: str, **extra: Any) -> None:
    """What the sidecar writes (the test writes it the same way: a rename over the old one)."""
    temp = folder / f"{CONTROL_FILE}.tmp"
    temp.write_text(json.dumps({"action": "stop", "nonce": nonce, "requested": time.time(), **extra}))
    os.replace(temp, folder / CONTROL_FILE)


def acks(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "rank0.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("name") == "tailboard/control"]


def test_should_stop_looks_at_most_once_a_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(tailboard.run, "_monotonic", clock)
    called: list[int] = []
    run = tailboard.init(tmp_path / "r", on_stop=lambda: called.append(1))
    assert run.should_stop() is False  # looked: nothing there
    request(tmp_path / "r", "n1")
    clock.now += 0.5
    assert run.should_stop() is False  # not looked again yet
    clock.now += 0.6
    assert run.should_stop() is True
    assert run.should_stop() is True and called == [1]
    assert [a["nonce"] for a in acks(tmp_path / "r")] == ["n1"]  # acknowledged once
    assert run.stop_request is not None and run.stop_request["nonce"] == "n1"
    run.finish()


def test_log_calls_on_stop_and_a_failing_callback_is_only_warned(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(tailboard.run, "_monotonic", clock)

    def boom() -> None:
        raise RuntimeError("callback bug")

    run = tailboard.init(tmp_path / "r", on_stop=boom)
    run.log({"x": 1.0}, step=0)
    request(tmp_path / "r", "n1")
    clock.now += 1.0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log({"x": 2.0}, step=1)  # sees the request, calls on_stop, goes on
    assert any("on_stop raised RuntimeError: callback bug" in str(w.message) for w in caught)
    assert all(issubclass(w.category, TailboardWarning) for w in caught)
    assert run.should_stop() and len(acks(tmp_path / "r")) == 1
    run.finish()
    with pytest.raises(TypeError, match="callable"):
        tailboard.init(tmp_path / "s", on_stop="not callable")


def test_a_request_made_to_an_earlier_process_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(tailboard.run, "_monotonic", clock)
    folder = tmp_path / "r"
    folder.mkdir()
    request(folder, "old")
    run = tailboard.init(folder)  # a restart after a stop: the old file is still there
    assert run.should_stop() is False
    clock.now += 5
    assert run.should_stop() is False
    for bad in ("not json", "[1]", json.dumps({"action": "pause", "nonce": "x"}),
                json.dumps({"action": "stop"}), json.dumps({"action": "stop", "nonce": "x" * 5000})):
        (folder / CONTROL_FILE).write_text(bad)  # log content: ignored, never raised
        clock.now += 5
        assert run.should_stop() is False
    request(folder, "new")
    clock.now += 5
    assert run.should_stop() is True and run.stop_request["nonce"] == "new"
    run.finish()


def test_every_rank_stops_and_only_enabled_ones_acknowledge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(tailboard.run, "_monotonic", clock)
    zero = tailboard.Run(tmp_path / "r", rank=0, rank_zero_only=True)
    one = tailboard.Run(tmp_path / "r", rank=1, rank_zero_only=True)
    request(tmp_path / "r", "n1")
    clock.now += 1
    assert zero.should_stop() and one.should_stop()
    assert len(acks(tmp_path / "r")) == 1 and not (tmp_path / "r/rank1.jsonl").exists()
    zero.finish()
    one.finish()


def test_should_stop_costs_a_clock_read_between_looks(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "r")
    run.should_stop()
    per_call = min(timeit.repeat(run.should_stop, number=100_000, repeat=3)) / 100_000
    assert per_call < 2e-6, f"{per_call * 1e9:.0f} ns per call"
    run.finish()
    with pytest.raises(RuntimeError, match="init"):
        tailboard._current = None
        tailboard.should_stop()
