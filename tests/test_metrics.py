"""``/metrics`` through the real server on a loopback port, over runs written by the real writer and
GPU samples of the real sampler (a fake NVML), parsed with prometheus_client's own parsers."""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tailboard
import tailboard.sidecar.metrics as metrics_module
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from tailboard.sidecar.gpu import gpu_key
from tailboard.sidecar.gpu.fake import FakeNvml, uuid_for
from tailboard.sidecar.server import Server
from websockets.asyncio.client import connect

TOKEN = "metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}


async def start(root: Path, **kw: Any) -> Server:
    server = Server(root, port=0, token=TOKEN, follower_options=FAST, metrics=True, **kw)
    await server.start(wait_for_backlog=True)
    return server


async def scrape(server: Server, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        return await http.get("/metrics", headers=headers)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by name and labels."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(got: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return got[(name, frozenset(labels.items()))]


async def wait_until(pred: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return got


async def test_metrics_of_runs_gpus_alerts_and_the_sidecar(tmp_path: Path) -> None:
    live = tailboard.init(tmp_path / "exp/a")
    for i in range(10):
        live.log({"train/loss": 1.0 / (i + 1), "acc": 0.1 * i}, step=i)
    done = tailboard.init(tmp_path / "exp/b")
    done.log({"train/loss": 0.5}, step=0)
    done.finish()
    nv = FakeNvml.with_gpus(1)
    nv.gpus[0].ecc = (3, 0)
    server = await start(tmp_path, metrics_include="loss", gpu="auto", nvml_module=nv)
    system = f"_system/{socket.gethostname()}"
    try:
        await wait_until(lambda: server.store.get_run(system) and server.store.latest(system), "a GPU sample")
        async with connect(f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}") as ws:
            assert json.loads(await ws.recv())["features"]["metrics"] is True
            live.log({"train/loss": float("nan"), "acc": 1.0}, step=10)
            await wait_until(lambda: server.alerts is not None and server.alerts.book.counts()["error"], "the alert")
            res = await scrape(server, **AUTH)
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/plain; version=0.0.4")
        got = samples(res.text)
        families = list(text_string_to_metric_families(res.text))
        assert all(f.name.startswith("tailboard_") for f in families)
        for f in families:
            if f.type == "counter":
                assert all(s.name.endswith("_total") for s in f.samples), f.name
        # runs
        assert value(got, "tailboard_run_status", run="exp/a", status="running") == 1
        assert value(got, "tailboard_run_status", run="exp/a", status="finished") == 0
        assert value(got, "tailboard_run_status", run="exp/b", status="finished") == 1
        assert value(got, "tailboard_runs", status="running") == 1
        assert 0 <= value(got, "tailboard_run_last_record_age_seconds", run="exp/a") < 60
        assert value(got, "tailboard_run_last_step", run="exp/a") == 10
        assert value(got, "tailboard_run_records_total", run="exp/a") == live.records
        assert math.isnan(value(got, "tailboard_run_scalar", run="exp/a", metric="train/loss"))
        assert value(got, "tailboard_run_scalar", run="exp/b", metric="train/loss") == 0.5
        assert not any(n == "tailboard_run_scalar" and ("metric", "acc") in labels for n, labels in got)
        assert not any(("run", system) in labels for _, labels in got)  # GPU samples are GPU figures
        # GPUs, in base units, by host and UUID
        gpu = {"host": socket.gethostname(), "uuid": uuid_for(0), "gpu": gpu_key(uuid_for(0))}
        assert value(got, "tailboard_gpu_utilization_ratio", **gpu) == 0.5
        assert value(got, "tailboard_gpu_memory_total_bytes", **gpu) == 80 * 2**30
        assert value(got, "tailboard_gpu_memory_used_bytes", **gpu) == 2**30
        assert value(got, "tailboard_gpu_sm_clock_hertz", **gpu) == 1410e6
        assert value(got, "tailboard_gpu_power_watts", **gpu) == 100.0
        assert value(got, "tailboard_gpu_temperature_celsius", **gpu) == 40
        assert value(got, "tailboard_gpu_ecc_errors_total", **gpu, type="corrected") == 3
        assert 0 <= value(got, "tailboard_gpu_sample_age_seconds", **gpu) < 60
        # alerts
        assert value(got, "tailboard_alerts_active", level="error") == 1
        assert value(got, "tailboard_alerts_active", level="warning") == 0
        assert value(got, "tailboard_alerts_fired_total", rule="nonfinite", level="error") == 1
        # the sidecar itself
        assert value(got, "tailboard_websocket_clients") == 1
        assert value(got, "tailboard_backlog_loaded") == 1
        assert value(got, "tailboard_backlog_loaded_bytes") == value(got, "tailboard_backlog_bytes") > 0
        assert value(got, "tailboard_resident_points") >= 21
        assert 0 <= value(got, "tailboard_ingest_lag_seconds") < 30
        assert value(got, "tailboard_event_loop_lag_seconds") >= 0
        assert value(got, "tailboard_build_info", version=tailboard.__version__) == 1
        # OpenMetrics for a scraper that asks for it
        om = await scrape(server, **AUTH, Accept="application/openmetrics-text; version=1.0.0")
        assert om.headers["content-type"].startswith("application/openmetrics-text")
        names = {f.name for f in openmetrics_families(om.text)}  # type: ignore[no-untyped-call]
        assert {"tailboard_run_status", "tailboard_gpu_utilization_ratio", "tailboard_alerts_fired"} <= names
        # the API's token, as everywhere
        assert (await scrape(server)).status_code == 401
        assert (await scrape(server, Authorization="Bearer nope")).status_code == 401
    finally:
        live.finish()
        await server.stop()


async def test_without_metrics_the_route_does_not_exist(tmp_path: Path) -> None:
    server = Server(tmp_path, port=0, token=TOKEN, follower_options=FAST)
    await server.start(wait_for_backlog=True)
    try:
        assert (await scrape(server, **AUTH)).status_code == 404
    finally:
        await server.stop()


async def test_exported_scalars_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_SCALAR_SERIES", 3)
    for name in ("a", "b"):
        run = tailboard.init(tmp_path / name)
        run.log({"loss": 1.0, "val/loss": 2.0, "acc": 3.0}, step=0)
        run.finish()
    server = await start(tmp_path, metrics_include="loss$")
    try:
        got = samples((await scrape(server, **AUTH)).text)
    finally:
        await server.stop()
    scalars = [labels for name, labels in got if name == "tailboard_run_scalar"]
    assert len(scalars) == 3 and value(got, "tailboard_scalars_left_out") == 1


@pytest.fixture
def read_only_tree(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root here")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tailboard-test", str(where)],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], timeout=30, check=False)


async def test_gpu_samples_kept_in_memory_are_exported_too(read_only_tree: Path) -> None:
    server = await start(read_only_tree, gpu="auto", nvml_module=FakeNvml.with_gpus(1))
    try:
        assert server.gpu is not None
        await wait_until(lambda: server.gpu is not None and server.gpu.latest, "a sample in memory")
        got = samples((await scrape(server, **AUTH)).text)
    finally:
        await server.stop()
    gpu = {"host": socket.gethostname(), "uuid": uuid_for(0), "gpu": gpu_key(uuid_for(0))}
    assert value(got, "tailboard_gpu_utilization_ratio", **gpu) == 0.5
    assert value(got, "tailboard_gpu_memory_used_bytes", **gpu) == 2**30
