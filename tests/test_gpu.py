"""GPU telemetry (tailboard.sidecar.gpu) and the writer's attribution fields.

There is no GPU here: a fake NVML (tailboard.sidecar.gpu.fake) raises the real ``pynvml``
exceptions; the real ``pynvml`` is exercised up to ``nvmlInit`` failing; the records are read back
by the real Store and Follower; ``tailboard gpu`` and ``tailboard serve`` run as real processes;
the header is checked in real processes with and without torch. The tests marked ``needs_driver``
run only where an NVIDIA driver is present.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tailboard
from tailboard.sidecar.follower import Follower
from tailboard.sidecar.gpu import GpuSampler, bare_uuid, gpu_key, system_run_id
from tailboard.sidecar.gpu.attribution import SystemGpus, gpus_used
from tailboard.sidecar.gpu.fake import FakeGpu, FakeNvml, uuid_for
from tailboard.sidecar.gpu.nvml import Trouble, classify
from tailboard.sidecar.gpu.sampler import MAX_BACKOFF, REDISCOVER_EVERY, STANDBY_RETRY
from tailboard.sidecar.server import serve_in_thread
from tailboard.sidecar.store import Store

pynvml = pytest.importorskip("pynvml")

NODE = "node-a"
LOGGER = "tailboard.sidecar.gpu"
GiB = 2**30


def _driver_present() -> bool:
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


#: The smoke tests on a real GPU (a `gpu` marker needs registering in pyproject.toml; until then
#: select them with `-k needs_driver`).
needs_driver = pytest.mark.skipif(not _driver_present(), reason="no NVIDIA driver here")


class Clock:
    """The sampler's monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(root: Path | None, nv: Any, **kw: Any) -> tuple[GpuSampler, Clock]:
    clock = Clock()
    return GpuSampler(None if root is None else str(root), nvml=nv, node=NODE, clock=clock, **kw), clock


def stream(root: Path, node: str = NODE) -> Path:
    return Path(root, system_run_id(node), "rank0.jsonl")


def records(root: Path, node: str = NODE) -> list[dict[str, Any]]:
    path = stream(root, node)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def events(root: Path) -> list[str]:
    return [r["text"] for r in records(root) if r["k"] == "text"]


def gpu_lines(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith(LOGGER) and r.levelno >= level]


def key(i: int) -> str:
    return str(gpu_key(uuid_for(i)))


def wait_for(pred: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---- names -----------------------------------------------------------------------------------------


def test_system_runs_are_told_from_runs_by_their_id() -> None:
    """The rule viewer/gpu.js's isSystemRun keeps too (viewer/tests/gpu.test.mjs, the same cases)."""
    from tailboard.sidecar.gpu.layout import is_system_run

    for run_id in ("_system/node7", "team/_system/n"):
        assert is_system_run(run_id), run_id
    for run_id in ("_system", "_system/", "exp/_systemx/n", "sys/node7", "_system/a/b"):
        assert not is_system_run(run_id), run_id
    assert is_system_run(system_run_id("node 7/a"))


def test_keys_and_bare_uuids_of_gpus_and_mig_devices() -> None:
    assert gpu_key("GPU-5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a") == "5f2c1c7e"
    assert gpu_key("MIG-9a1b2c3d-0000-1111-2222-333344445555") == "mig-9a1b2c3d"
    assert gpu_key("MIG-GPU-5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a/1/0") == "mig-5f2c1c7e-1-0"
    # CUDA (torch) spells a UUID bare: the sidecar matches on that
    assert bare_uuid("GPU-5F2C1C7E-3b8e-2b61-7d0b-0a4c8a3b1f9a") == "5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a"
    assert bare_uuid("MIG-9a1b2c3d-0000-1111-2222-333344445555") == "9a1b2c3d-0000-1111-2222-333344445555"
    assert system_run_id("gpu-node/7") == "_system/gpu-node-7"
    assert system_run_id("..") == "_system/unknown-host"


def test_two_gpus_whose_short_keys_clash_get_longer_ones(tmp_path: Path) -> None:
    a, b = "GPU-5f2c1c7e-0000-0000-0000-00000000000a", "GPU-5f2c1c7e-0000-0000-0000-00000000000b"
    sampler, _ = make(tmp_path, FakeNvml([FakeGpu(a, util=1), FakeGpu(b, util=2)]))
    values = sampler.tick().values
    utils = {k: v for k, v in values.items() if k.endswith("/util")}
    assert len(utils) == 2 and sorted(utils.values()) == [1, 2]
    sampler.stop()


def test_an_interval_under_a_second_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        GpuSampler(None, interval=0.5)


# ---- no driver -------------------------------------------------------------------------------------


@pytest.mark.skipif(_driver_present(), reason="an NVIDIA driver is present")
def test_the_real_pynvml_fails_at_init_and_the_sampler_says_so_once(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(pynvml.NVMLError) as raised:
        pynvml.nvmlInit()
    assert classify(raised.value) is Trouble.NO_DRIVER
    caplog.set_level(logging.INFO, LOGGER)
    sampler = GpuSampler(str(tmp_path), nvml="pynvml", node=NODE)
    sampler.start()
    wait_for(lambda: not sampler.running, 5, "the sampler thread to end by itself")
    assert sampler.tick() is None  # not retried
    sampler.stop()
    assert sampler.status().state == "no_driver"
    lines = gpu_lines(caplog)
    assert len(lines) == 1 and "GPU telemetry off" in lines[0] and "NVML" in lines[0]
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a folder


def test_a_missing_library_leaves_the_server_serving(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml([FakeGpu(uuid_for(0))], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)
    handle = serve_in_thread(tmp_path, token="t", gpu="auto", nvml_module=nv)
    try:
        assert handle.server.gpu is not None
        wait_for(lambda: not handle.server.gpu.running, 5, "the sampler to end")
        reply = httpx.get(handle.base_url + "/api/runs", headers={"Authorization": "Bearer t"}, timeout=5)
        assert reply.status_code == 200 and reply.json()["runs"] == []
    finally:
        handle.stop()
    assert nv.total("nvmlInit") == 1
    lines = gpu_lines(caplog)
    assert len(lines) == 1 and "NVML Shared Library Not Found" in lines[0]
    assert list(tmp_path.iterdir()) == []


# ---- fields, lost GPUs, failed init ------------------------------------------------------------------


def test_a_field_that_is_not_supported_is_dropped_once(tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml.with_gpus(2)
    g0, g1 = nv.gpus
    g0.fail["nvmlDeviceGetPowerUsage"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    g1.fail["nvmlDeviceGetTotalEccErrors"] = pynvml.NVML_ERROR_NOT_SUPPORTED
    nv.nvmlInit()
    with pytest.raises(pynvml.NVMLError_NotSupported):  # the real exception class
        nv.nvmlDeviceGetPowerUsage(g0)
    nv.calls.clear()
    sampler, clock = make(tmp_path, nv)
    for _ in range(5):
        values = sampler.tick().values
        clock.now += 1
    sampler.stop()
    assert nv.calls[("nvmlDeviceGetPowerUsage", g0.uuid)] == 1
    assert nv.calls[("nvmlDeviceGetPowerUsage", g1.uuid)] == 5
    assert nv.calls[("nvmlDeviceGetTotalEccErrors", g1.uuid)] == 2  # corrected, uncorrected: once each
    assert nv.calls[("nvmlDeviceGetTotalEccErrors", g0.uuid)] == 10
    assert f"gpu/{key(0)}/power" not in values and values[f"gpu/{key(1)}/power"] == 100.0
    assert f"gpu/{key(1)}/ecc_corrected" not in values and values[f"gpu/{key(0)}/ecc_corrected"] == 0
    dropped = {d["key"]: d["dropped"] for d in sampler.status().devices}
    assert dropped == {key(0): ["power"], key(1): ["ecc_corrected", "ecc_uncorrected"]}
    assert len(gpu_lines(caplog)) == 3 and not gpu_lines(caplog, logging.WARNING)
    scalars = [r for r in records(tmp_path) if r["k"] == "scalars"]
    assert len(scalars) == 5 and all(f"gpu/{key(0)}/power" not in r["v"] for r in scalars)


def test_throttle_reasons_fall_back_to_the_call_older_drivers_have(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml.with_gpus(1)
    nv.gpus[0].throttle = 0x4
    nv.gpus[0].fail["nvmlDeviceGetCurrentClocksEventReasons"] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    sampler, clock = make(None, nv)
    sampler.tick()
    clock.now += 1
    assert sampler.tick().values[f"gpu/{key(0)}/throttle"] == 0x4
    assert nv.total("nvmlDeviceGetCurrentClocksEventReasons") == 1
    assert nv.total("nvmlDeviceGetCurrentClocksThrottleReasons") == 2
    assert gpu_lines(caplog) == []


def test_a_lost_gpu_backs_off_and_comes_back(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml.with_gpus(2)
    sampler, clock = make(tmp_path, nv)
    util1 = f"gpu/{key(1)}/util"
    assert util1 in sampler.tick().values
    nv.gpus[1].lost = True
    clock.now += 1
    values = sampler.tick().values
    assert util1 not in values and f"gpu/{key(0)}/util" in values  # the other GPU goes on
    lost_at = clock.now
    reopened = []  # when NVML was opened again, relative to the loss
    for _ in range(16):  # 8 seconds in half seconds
        clock.now += 0.5
        before = nv.total("nvmlInit")
        sample = sampler.tick()
        if nv.total("nvmlInit") > before:
            reopened.append(clock.now - lost_at)
        assert sample is not None and util1 not in sample.values
    assert reopened == [1.0, 3.0, 7.0]  # 1 s, then 2, then 4: backing off
    nv.gpus[1].lost = False
    clock.now += 8
    assert util1 in sampler.tick().values
    clock.now += 1
    assert util1 in sampler.tick().values
    assert nv.total("nvmlInit") == 5  # back: no more reopening
    sampler.stop()
    said = events(tmp_path)
    assert len(said) == 2 and "lost" in said[0] and "GPU is lost" in said[0] and "back after" in said[1]
    assert len([line for line in gpu_lines(caplog, logging.WARNING) if key(1) in line]) == 2


def test_the_wait_between_reopenings_is_bounded(tmp_path: Path) -> None:
    nv = FakeNvml.with_gpus(1)
    sampler, clock = make(None, nv)
    sampler.tick()
    nv.gpus[0].lost = True
    opened = []
    for _ in range(int(6 * MAX_BACKOFF)):
        clock.now += 1
        before = nv.total("nvmlInit")
        sampler.tick()
        if nv.total("nvmlInit") > before:
            opened.append(clock.now)
    gaps = [b - a for a, b in itertools.pairwise(opened)]
    assert max(gaps) == MAX_BACKOFF and gaps[:4] == [2, 4, 8, 16]


def test_nvml_failing_to_start_backs_off_and_recovers(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml.with_gpus(1, init_errors=[pynvml.NVML_ERROR_UNKNOWN, pynvml.NVML_ERROR_UNKNOWN])
    sampler, clock = make(tmp_path, nv)
    got = []
    for _ in range(8):
        got.append(sampler.tick() is not None)
        clock.now += 0.5
    assert got == [False, False, False, False, False, False, True, True]  # tried at 0, 1, 3 s
    assert nv.total("nvmlInit") == 3
    sampler.stop()
    lines = gpu_lines(caplog)
    assert len(lines) == 2 and "paused" in lines[0] and "Unknown Error" in lines[0]
    assert "works again after 3 s" in lines[1]
    assert records(tmp_path)[0]["k"] == "header"  # nothing was written before NVML worked


def test_nvml_failing_while_sampling_is_shut_down_and_reopened(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml.with_gpus(1)
    sampler, clock = make(None, nv)
    assert sampler.tick() is not None
    nv.fail["nvmlDeviceGetCount"] = pynvml.NVML_ERROR_UNKNOWN  # the periodic look at the devices fails
    clock.now += REDISCOVER_EVERY
    assert sampler.tick() is None and sampler.status().state == "backoff"
    assert nv.initialised == 0  # the session was closed, not leaked
    del nv.fail["nvmlDeviceGetCount"]
    clock.now += 1
    assert sampler.tick() is not None
    assert (nv.total("nvmlInit"), nv.total("nvmlShutdown"), nv.initialised) == (2, 1, 1)
    lines = gpu_lines(caplog)
    assert len(lines) == 2 and "paused" in lines[0] and "works again" in lines[1]


def test_a_binding_that_returns_nonsense_costs_that_value_only(tmp_path: Path) -> None:
    nv = FakeNvml.with_gpus(1)
    nv.nvmlDeviceGetTemperature = lambda handle, sensor: 1 / 0
    sampler, _ = make(None, nv)
    values = sampler.tick().values
    assert f"gpu/{key(0)}/temp" not in values and f"gpu/{key(0)}/util" in values
    assert sampler.status().errors == 1


def test_no_gpu_at_first_then_one_appears(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml([])
    sampler, clock = make(tmp_path, nv)
    assert sampler.tick() is None and sampler.status().state == "no_gpu"
    clock.now += 1
    assert sampler.tick() is None
    assert not (tmp_path / "_system").exists()  # nothing to write: no run
    nv.gpus.append(FakeGpu(uuid_for(0), util=7))
    clock.now += REDISCOVER_EVERY
    assert sampler.tick().values[f"gpu/{key(0)}/util"] == 7
    sampler.stop()
    assert nv.total("nvmlInit") == 1  # the device list is read again, NVML not restarted
    assert "appeared" in events(tmp_path)[0]
    lines = gpu_lines(caplog)
    assert len(lines) == 2 and "shows no GPU" in lines[0] and "appeared" in lines[1]


def test_mig_devices_are_sampled_as_devices_of_their_own(tmp_path: Path) -> None:
    mig_a = FakeGpu.mig_device("MIG-9a1b2c3d-0000-1111-2222-333344445555", 10 * GiB, mem_used=GiB,
                               processes=[(os.getpid(), GiB)])
    mig_b = FakeGpu.mig_device("MIG-7e6f5a4b-0000-1111-2222-333344445555", 20 * GiB, mem_used=3 * GiB)
    parent = FakeGpu(uuid_for(0), mig=[mig_a, mig_b], temp=55)
    sampler, clock = make(tmp_path, FakeNvml([parent]))
    sampler.tick()
    clock.now += 1
    values = sampler.tick().values
    sampler.stop()
    p = key(0)
    assert f"gpu/{p}/util" not in values  # a GPU in MIG mode gives no whole-GPU utilisation
    assert values[f"gpu/{p}/temp"] == 55 and values[f"gpu/{p}/mem_used"] == 4 * GiB
    assert values["gpu/mig-9a1b2c3d/mem_used"] == GiB and values["gpu/mig-9a1b2c3d/mem_total"] == 10 * GiB
    assert values["gpu/mig-7e6f5a4b/mem_total"] == 20 * GiB
    assert values[f"gpu/mig-9a1b2c3d/pid/{os.getpid()}/mem"] == GiB
    assert "gpu/mig-9a1b2c3d/util" not in values and "gpu/mig-9a1b2c3d/temp" not in values
    config = next(r for r in records(tmp_path) if r["k"] == "config")["config"]
    assert config["gpus"]["mig-9a1b2c3d"] == {"uuid": mig_a.uuid, "name": mig_a.name, "index": 0,
                                              "parent": parent.uuid}
    assert "parent" not in config["gpus"][p]


def test_processes_of_another_pid_namespace_are_counted_as_unattributed(tmp_path: Path) -> None:
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    here, elsewhere = os.getpid(), pid_max + 7  # a PID no process here can have
    gpu = FakeGpu(uuid_for(0), processes=[(here, 3 * GiB), (elsewhere, 5 * GiB), (elsewhere + 1, None)],
                  process_util={here: 40, elsewhere: 25})
    sampler, _ = make(tmp_path, FakeNvml([gpu]))
    values = dict(sampler.tick().values)
    sampler.stop()
    k = key(0)
    per_process = {name: v for name, v in values.items() if "/pid/" in name}
    assert per_process == {f"gpu/{k}/pid/{here}/mem": 3 * GiB, f"gpu/{k}/pid/{here}/util": 40}
    assert values[f"gpu/{k}/procs"] == 3
    assert values[f"gpu/{k}/unattributed_mem"] == 5 * GiB  # the one NVML could not size is left out
    assert values[f"gpu/{k}/unattributed_util"] == 25


def test_a_failing_call_is_skipped_and_counted_not_fatal(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    nv = FakeNvml.with_gpus(1)
    nv.gpus[0].fail["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_TIMEOUT
    sampler, clock = make(None, nv)
    for _ in range(3):
        values = sampler.tick().values
        clock.now += 1
    assert f"gpu/{key(0)}/temp" not in values and f"gpu/{key(0)}/util" in values
    assert nv.total("nvmlDeviceGetTemperature") == 3  # asked again: it may work next time
    assert sampler.status().errors == 3
    assert len(gpu_lines(caplog)) == 1


# ---- where records go ------------------------------------------------------------------------------


async def test_samples_are_a_run_the_store_and_follower_read(tmp_path: Path) -> None:
    nv = FakeNvml.with_gpus(2)
    nv.gpus[1].processes = [(os.getpid(), GiB)]
    sampler = GpuSampler(str(tmp_path), nvml=nv, node=NODE)
    written = [sampler.tick() for _ in range(3)]
    store = Store(tmp_path)
    follower = Follower(tmp_path, store, poll_interval=0.05, sweep_interval=0.2)
    await follower.start(wait=True)
    try:
        run_id = system_run_id(NODE)
        assert [r.id for r in store.runs()] == [run_id]
        util = f"gpu/{key(0)}/util"
        s = store.series(run_id, util)
        assert list(s.steps) == [w.step for w in written]
        assert list(s.values) == [50.0] * 3
        assert list(s.times) == pytest.approx([w.t for w in written])
        assert s.steps[-1] - int(time.time()) in (0, 1, 2, 3)  # steps are Unix seconds
        assert f"gpu/{key(1)}/pid/{os.getpid()}/mem" in store.metrics(run_id)
        # followed live
        nv.gpus[0].util = 99
        sampler.tick()
        deadline = time.monotonic() + 10
        while store.series(run_id, util).values[-1] != 99:
            assert time.monotonic() < deadline, "the new sample did not arrive"
            await asyncio.sleep(0.02)
        sampler.stop()
        deadline = time.monotonic() + 10
        while store.get_run(run_id).status != "finished":
            assert time.monotonic() < deadline, "the final record did not arrive"
            await asyncio.sleep(0.02)
        detail = store.run_detail(run_id)
        header = detail["header"]
        assert header["run"] == run_id and header["pid"] == os.getpid()
        assert header["argv"] == ["tailboard", "gpu"]  # never the sidecar's command line (--token)
        assert header["pid_ns"] == _pid_ns()
    finally:
        await follower.stop()


def _pid_ns(pid: int | str = "self") -> int:
    link = os.readlink(f"/proc/{pid}/ns/pid")  # "pid:[4026531836]"
    return int(link[link.index("[") + 1 : -1])


@pytest.fixture
def read_only_tree(tmp_path: Path) -> Iterator[Path]:
    """A log tree that cannot be written: a read-only tmpfs (root ignores permission bits)."""
    where = tmp_path / "ro"
    where.mkdir()
    if os.geteuid() != 0:
        where.chmod(0o555)
        yield where
        where.chmod(0o755)
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tailboard-test", str(where)],
                          capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], timeout=30, check=False)


def test_a_read_only_tree_keeps_samples_in_memory_and_says_so(read_only_tree: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    sampler, clock = make(read_only_tree, FakeNvml.with_gpus(1), keep=3)
    taken = []
    for _ in range(5):
        taken.append(sampler.tick())
        clock.now += 1
    sampler.stop()
    status = sampler.status()
    assert status.destination == "memory" and status.samples == 5
    assert sampler.samples() == taken[-3:]  # bounded
    assert sampler.latest == taken[-1]
    lines = gpu_lines(caplog)
    assert len(lines) == 1 and "read-only" in lines[0] and "memory only" in lines[0]
    assert list(read_only_tree.iterdir()) == []


def test_one_sampler_per_host_writes_the_other_stands_by(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER)
    first, _ = make(tmp_path, FakeNvml.with_gpus(1))
    second, clock2 = make(tmp_path, FakeNvml.with_gpus(1))
    assert first.tick() is not None
    assert second.tick() is None and second.status().state == "standby"
    first.tick()
    first.stop()
    clock2.now += STANDBY_RETRY / 2
    assert second.tick() is None  # not asked again yet
    clock2.now += STANDBY_RETRY / 2
    assert second.tick() is not None  # the first is gone: it takes over
    second.stop()
    kinds = [r["k"] for r in records(tmp_path)]
    assert kinds == ["header", "config", "scalars", "scalars", "end",
                     "header", "config", "scalars", "end"]
    assert any("stands by" in line for line in gpu_lines(caplog))


def test_the_thread_samples_on_schedule_and_stops(tmp_path: Path) -> None:
    sampler = GpuSampler(str(tmp_path), nvml=FakeNvml.with_gpus(1), node=NODE)
    sampler.start()
    wait_for(lambda: sampler.status().samples >= 2, 5, "two samples")
    started = time.monotonic()
    sampler.stop()
    assert time.monotonic() - started < 1 and not sampler.running
    got = records(tmp_path)
    assert got[-1]["k"] == "end" and got[-1]["status"] == "finished"
    steps = [r["step"] for r in got if r["k"] == "scalars"]
    assert steps == sorted(set(steps))


# ---- the commands ----------------------------------------------------------------------------------


FAKE_MODULE = """
from tailboard.sidecar.gpu.fake import FakeNvml
nvml = FakeNvml.with_gpus(2)
nvml.gpus[1].fail["nvmlDeviceGetPowerUsage"] = 3
"""


def command(tmp_path: Path, *args: str, module: str = FAKE_MODULE) -> subprocess.Popen[str]:
    modules = tmp_path / "modules"
    modules.mkdir(exist_ok=True)
    (modules / "fakenvml.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": str(modules)}
    return subprocess.Popen([sys.executable, "-m", "tailboard.sidecar", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_tailboard_gpu_samples_until_terminated(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    proc = command(tmp_path, "gpu", str(logdir), "--nvml-module", "fakenvml:nvml", "--node", "n1")
    try:
        wait_for(lambda: sum(r["k"] == "scalars" for r in records(logdir, "n1")) >= 2, 15, "two samples")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    got = records(logdir, "n1")
    assert got[0]["k"] == "header" and got[0]["argv"] == ["tailboard", "gpu"] and got[0]["pid"] == proc.pid
    assert got[1]["k"] == "config" and set(got[1]["config"]["gpus"]) == {key(0), key(1)}
    assert got[-1]["k"] == "end" and got[-1]["status"] == "finished"
    last = [r for r in got if r["k"] == "scalars"][-1]["v"]
    assert f"gpu/{key(0)}/power" in last and f"gpu/{key(1)}/power" not in last
    assert "sampling GPUs every 1 s" in out and "Traceback" not in err


@pytest.mark.skipif(_driver_present(), reason="an NVIDIA driver is present")
def test_tailboard_gpu_without_a_driver_says_so_and_exits(tmp_path: Path) -> None:
    proc = command(tmp_path, "gpu", str(tmp_path / "modules"))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "GPU telemetry off" in lines[0]
    assert not (tmp_path / "modules" / "_system").exists()


def served_at(proc: subprocess.Popen[str]) -> str:
    """The base URL a `tailboard serve` child prints, once it serves."""
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(r"open (http://[^/]+)/", proc.stdout.readline())
        if found:
            return found.group(1)
    raise AssertionError("the server did not start")


def test_the_idle_rule_and_the_gpu_history_are_set_from_the_command_line(tmp_path: Path) -> None:
    """`--gpu-idle 50/2`: a GPU at 30% under a running run is idle after two samples (under the
    default 5/60 it is not). Bad values are one line each."""
    logdir = tmp_path / "logs"
    logdir.mkdir()
    run = tailboard.init(logdir / "train")
    run.log({"loss": 1.0})
    module = FAKE_MODULE + f"nvml.gpus[0].util = 30\nnvml.gpus[0].processes = [({os.getpid()}, 2**30)]\n"
    for rule, idle in (("50/2", True), (None, False)):
        extra = ["--gpu-idle", rule, "--gpu-history", "1/2"] if rule else []
        proc = command(tmp_path, "serve", str(logdir), "--port", "0", "--no-auth", "--nvml-module", "fakenvml:nvml",
                       *extra, module=module)
        try:
            url = served_at(proc)

            def flags() -> list[bool] | None:
                runs = {r["id"]: r for r in httpx.get(url + "/api/runs", timeout=5).json()["runs"]}
                system = runs.get(system_run_id(socket.gethostname()), {})
                if len(system.get("metrics", [])) == 0 or "train" not in runs or not runs["train"]["gpus"]:
                    return None
                return [g["idle"] for g in runs["train"]["gpus"]]

            assert wait_for(flags, 20, "the run's GPU") is not None
            if idle:
                wait_for(lambda: flags() == [True], 20, "the GPU flagged idle")
            else:
                time.sleep(3)  # three samples at 30%: busy under the default rule
                assert flags() == [False]
        finally:
            proc.kill()
            proc.communicate()
    run.finish()
    for bad in (["--gpu-idle", "101/5"], ["--gpu-idle", "5"], ["--gpu-history", "48/1"], ["--gpu-history", "x/y"]):
        proc = command(tmp_path, "serve", str(logdir), *bad)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and err.strip().splitlines()[-1].startswith("tailboard serve: error: argument"), err


def test_tailboard_serve_samples_gpus_and_stops_them_with_the_server(tmp_path: Path) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    proc = command(tmp_path, "serve", str(logdir), "--port", "0", "--token", "secret-token",
                   "--nvml-module", "fakenvml:nvml")
    try:
        url = served_at(proc)
        run_id = system_run_id(socket.gethostname())

        def system_run() -> dict[str, Any] | None:
            runs = httpx.get(url + "/api/runs", headers={"Authorization": "Bearer secret-token"},
                             timeout=5).json()["runs"]
            return next((r for r in runs if r["id"] == run_id and r["metrics"]), None)

        listed = wait_for(system_run, 20, "the system run")
        assert f"gpu/{key(0)}/util" in listed["metrics"]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    got = [json.loads(line) for line in (logdir / run_id / "rank0.jsonl").read_text().splitlines()]
    assert got[-1]["k"] == "end" and got[-1]["status"] == "finished"
    assert "secret-token" not in json.dumps(got[0])


def test_serve_in_thread_stops_the_sampler_with_the_server(tmp_path: Path) -> None:
    handle = serve_in_thread(tmp_path, token="t", gpu="auto", nvml_module=FakeNvml.with_gpus(1))
    sampler = handle.server.gpu
    try:
        wait_for(lambda: sampler.status().samples >= 1, 5, "a sample")
    finally:
        handle.stop()
    assert not sampler.running and sampler.status().state == "stopped"


# ---- the writer's attribution --------------------------------------------------------------------------


def header_of(tmp_path: Path, prelude: str,
              env: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a real process that does ``prelude`` then ``tailboard.init``; its header and what it said."""
    script = textwrap.dedent(prelude) + textwrap.dedent(f"""
        import json, sys, warnings
        warnings.simplefilter("error")
        import tailboard
        run = tailboard.init({str(tmp_path / "run")!r})
        run.log({{"x": 1.0}})
        run.finish()
        said = {{"torch": "torch" in sys.modules, "dropped": run.dropped}}
        if "torch" in sys.modules:
            said["cuda_initialised"] = sys.modules["torch"].cuda.is_initialized()
        print(json.dumps(said))
    """)
    clean = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES")}
    done = subprocess.run([sys.executable, "-c", script], env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    header = json.loads((tmp_path / "run" / "rank0.jsonl").read_text().splitlines()[0])
    return header, json.loads(done.stdout)


def test_the_header_says_where_the_process_runs_without_importing_torch(tmp_path: Path) -> None:
    header, said = header_of(tmp_path, "", {"CUDA_VISIBLE_DEVICES": "1,0",
                                            "NVIDIA_VISIBLE_DEVICES": "GPU-5f2c1c7e-3b8e"})
    assert said == {"torch": False, "dropped": 0}
    assert header["host"] == socket.gethostname() and type(header["pid"]) is int
    assert header["pid_ns"] == _pid_ns()  # the child shares the test's PID namespace
    assert header["cuda_visible_devices"] == "1,0"
    assert header["nvidia_visible_devices"] == "GPU-5f2c1c7e-3b8e"
    assert "cuda_uuids" not in header


def test_the_header_leaves_cuda_alone_when_torch_has_not_initialised_it(tmp_path: Path) -> None:
    header, said = header_of(tmp_path, "import torch\n")
    assert said == {"torch": True, "cuda_initialised": False, "dropped": 0}
    assert "cuda_uuids" not in header and "cuda_visible_devices" not in header
    assert header["pid_ns"] == _pid_ns()


CUDA_STANDIN = """
import torch, types
# CUDA cannot start here: the four functions the writer asks of an initialised torch.cuda answer as
# they would on a machine with two GPUs, the current one being the second.
torch.cuda.is_initialized = lambda: True
torch.cuda.device_count = lambda: 2
torch.cuda.current_device = lambda: 1
torch.cuda.get_device_properties = lambda i: types.SimpleNamespace(
    uuid=["5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a", "9a1b2c3d-0000-1111-2222-333344445555"][i])
"""


def test_the_header_names_the_cuda_devices_of_a_process_that_uses_them(tmp_path: Path) -> None:
    header, _ = header_of(tmp_path, CUDA_STANDIN)
    assert header["cuda_uuids"] == ["5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a",
                                    "9a1b2c3d-0000-1111-2222-333344445555"]
    assert header["cuda_device"] == 1
    assert bare_uuid("GPU-5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a") == header["cuda_uuids"][0]


def test_the_header_is_written_when_attribution_fails(tmp_path: Path) -> None:
    prelude = CUDA_STANDIN + textwrap.dedent("""
        import os
        def refuse(*a, **k):
            raise PermissionError("no /proc here")
        def broken(i):
            raise RuntimeError("CUDA error: device-side assert")
        os.readlink = refuse
        torch.cuda.get_device_properties = broken
    """)
    header, said = header_of(tmp_path, prelude)
    assert said["dropped"] == 0 and header["k"] == "header"
    assert "pid_ns" not in header and "cuda_uuids" not in header


# ---- runs <-> GPUs ---------------------------------------------------------------------------------------


async def test_runs_are_matched_to_the_gpus_they_use(tmp_path: Path) -> None:
    """Real headers (a process whose CUDA names GPU 0, one whose NVIDIA_VISIBLE_DEVICES gives a
    prefix of GPU 1's UUID, this process on GPU 2 without either) against a real sampler's run,
    all read back by the real Store."""
    logs = tmp_path / "logs"
    nv = FakeNvml.with_gpus(3)
    nv.gpus[2].processes = [(os.getpid(), GiB)]
    sampler = GpuSampler(str(logs), nvml=nv, node=NODE)
    sampler.tick()
    sampler.stop()
    header_of(tmp_path / "a", CUDA_STANDIN.replace("5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a", bare_uuid(uuid_for(0))))
    header_of(tmp_path / "b", "", {"NVIDIA_VISIBLE_DEVICES": uuid_for(1)[:12]})
    for name in ("a", "b"):
        (logs / name).mkdir()
        (tmp_path / name / "run" / "rank0.jsonl").rename(logs / name / "rank0.jsonl")
    here = tailboard.init(logs / "c")
    here.finish()
    store = Store(logs)
    follower = Follower(logs, store, poll_interval=0.05, sweep_interval=0.2)
    await follower.start(wait=True)
    await follower.stop()
    system_id = system_run_id(NODE)
    detail = store.run_detail(system_id)
    system = SystemGpus.from_records(system_id, detail["header"], detail["config"], store.metrics(system_id))
    assert set(system.gpus) == {key(0), key(1), key(2)}

    def used(run_id: str) -> list[tuple[str, str, tuple[int, ...]]]:
        return [(u.key, u.by, u.pids) for u in gpus_used(store.run_detail(run_id)["headers"], [system])]

    assert used("a") == [(key(0), "uuid", ())]
    assert used("b") == [(key(1), "uuid", ())]
    assert used("c") == [(key(2), "pid", (os.getpid(),))]
    # the same PID from another PID namespace, or another host, is not this process
    c = dict(store.run_detail("c")["header"])
    assert gpus_used([{**c, "pid_ns": c["pid_ns"] + 1}], [system]) == []
    assert gpus_used([{**c, "host": "elsewhere"}], [system]) == []
    # what a log says is log content: malformed fields are ignored
    odd = SystemGpus.from_records("_system/x", {"host": 3}, {"gpus": {"k": "not a dict", 5: {}}})
    assert odd.gpus == {} and odd.host is None
    assert gpus_used([{"cuda_uuids": [None, 7], "nvidia_visible_devices": "GPU-5f"}], [system]) == []


# ---- on a machine with a GPU ---------------------------------------------------------------------------


@needs_driver
def test_needs_driver_the_real_nvml_is_sampled(tmp_path: Path) -> None:
    sampler = GpuSampler(str(tmp_path), nvml="pynvml", node=NODE)
    sample = sampler.tick()
    sampler.stop()
    assert sample is not None and sampler.status().state in ("sampling", "stopped")
    keys = {d["key"] for d in sampler.status().devices if d.get("parent") is None}
    assert keys and all(any(name.startswith(f"gpu/{k}/") for name in sample.values) for k in keys)
    assert records(tmp_path)[-1]["k"] == "end"


@needs_driver
def test_needs_driver_the_header_names_the_gpus_nvml_shows(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this torch has no CUDA")
    header, _ = header_of(tmp_path, "import torch\ntorch.cuda.init()\n")
    pynvml.nvmlInit()
    try:
        shown = {bare_uuid(pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(i)))
                 for i in range(pynvml.nvmlDeviceGetCount())}
    finally:
        pynvml.nvmlShutdown()
    assert header["cuda_uuids"] and set(header["cuda_uuids"]) <= shown


# ---- in the store and the run list --------------------------------------------------------------------


def _move_run(src: Path, logs: Path, name: str, stream: str = "rank0.jsonl") -> Path:
    """A run written by ``header_of`` in its own folder, moved under ``logs`` as ``name``."""
    (logs / name).mkdir(parents=True, exist_ok=True)
    return (src / "run" / "rank0.jsonl").rename(logs / name / stream)


async def test_the_run_list_says_which_gpus_each_run_uses(tmp_path: Path) -> None:
    """Real writers' headers and a real sampler's run, served by the real server: each run object
    of /api/runs and of the WebSocket's runs messages carries its GPUs; the system run lists every GPU
    with the runs on it (none: unattributed); a PID counts only from the sampler's PID namespace;
    a new header (a rank joining) is attributed as it arrives."""
    from tailboard.sidecar.server import Server
    from websockets.asyncio.client import connect

    logs = tmp_path / "logs"
    nv = FakeNvml.with_gpus(4)
    nv.gpus[1].processes = [(os.getpid(), GiB)]
    sampler = GpuSampler(str(logs), nvml=nv, node=NODE)
    sampler.tick()
    header_of(tmp_path / "a", CUDA_STANDIN.replace("5f2c1c7e-3b8e-2b61-7d0b-0a4c8a3b1f9a", bare_uuid(uuid_for(0))))
    _move_run(tmp_path / "a", logs, "a")
    here = tailboard.init(logs / "c")  # this process: its PID is on GPU 1
    here.log({"x": 1.0})
    # the same PID logged from another container (another PID namespace) is another process
    other = tailboard.init(logs / "d")
    other.finish()
    lines = (logs / "d" / "rank0.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["pid_ns"] += 1
    (logs / "d" / "rank0.jsonl").write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
    header_of(tmp_path / "b", "")  # no GPU named
    _move_run(tmp_path / "b", logs, "b")

    server = Server(logs, port=0, token="t", follower_options={"poll_interval": 0.05, "sweep_interval": 0.2})
    await server.start(wait_for_backlog=True)
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient(headers={"authorization": "Bearer t"}) as http:

            async def runs() -> dict[str, Any]:
                got = (await http.get(f"{base}/api/runs")).json()["runs"]
                return {r["id"]: r for r in got}

            listed = await runs()
            sys_id = system_run_id(NODE)
            used = {rid: [(g["key"], g["by"], g["pids"]) for g in r.get("gpus", [])]
                    for rid, r in listed.items() if rid != sys_id}
            assert used == {"a": [(key(0), "uuid", [])], "b": [], "c": [(key(1), "pid", [os.getpid()])], "d": []}
            assert "gpus" not in listed["b"] and "gpus" not in listed["d"]
            g = listed["a"]["gpus"][0]
            assert g["system"] == sys_id and g["host"] == socket.gethostname() and g["uuid"] == uuid_for(0)
            assert g["name"] == "NVIDIA Fake GPU 80GB" and g["index"] == 0 and g["idle"] is False
            devices = {d["key"]: d["runs"] for d in listed[sys_id]["gpus"]}
            assert devices == {key(0): ["a"], key(1): ["c"], key(2): [], key(3): []}  # 2, 3 unattributed
            detail = (await http.get(f"{base}/api/run", params={"run": "a"})).json()
            assert [d["key"] for d in detail["gpus"]] == [key(0)]

            async with connect(f"ws://127.0.0.1:{server.port}/ws?token=t") as ws:
                first_runs = None
                while first_runs is None:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if msg["type"] == "runs" and msg["full"]:
                        first_runs = {r["id"]: r for r in msg["runs"]}
                assert first_runs["c"]["gpus"] == listed["c"]["gpus"]
                # a second rank of b joins, on GPU 2: b and the system run are sent again
                header_of(tmp_path / "b2", "", {"NVIDIA_VISIBLE_DEVICES": uuid_for(2)[:12]})
                _move_run(tmp_path / "b2", logs, "b", "rank1.jsonl")
                seen: dict[str, Any] = {}
                deadline = time.monotonic() + 10
                while not (seen.get("b", {}).get("gpus") and sys_id in seen):
                    msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
                    if msg["type"] == "runs":
                        seen.update({r["id"]: r for r in msg["runs"]})
                assert [(g["key"], g["by"]) for g in seen["b"]["gpus"]] == [(key(2), "uuid")]
                assert {d["key"]: d["runs"] for d in seen[sys_id]["gpus"]}[key(2)] == ["b"]
            listed = await runs()
            assert {d["key"]: d["runs"] for d in listed[sys_id]["gpus"]} == {
                key(0): ["a"], key(1): ["c"], key(2): ["b"], key(3): []}
    finally:
        await server.stop()
        here.finish()
        sampler.stop()


async def test_a_gpu_idle_under_a_running_run_is_flagged(tmp_path: Path) -> None:
    """The idle rule over a real sampler's samples: under IdleRule(util=5, samples=3), three
    samples under 5% flag the GPU idle in the run's entry and the system run's; a busy sample clears
    it; a run that finished has no idle GPU."""
    from tailboard.sidecar.store.gpus import IdleRule

    nv = FakeNvml.with_gpus(2)
    nv.gpus[0].processes = [(os.getpid(), GiB)]
    sampler = GpuSampler(str(tmp_path), nvml=nv, node=NODE)
    sampler.tick()
    run = tailboard.init(tmp_path / "train")
    run.log({"loss": 1.0})
    store = Store(tmp_path, gpu_idle=IdleRule(util=5.0, samples=3))
    heard: list[tuple[str, ...]] = []
    store.add_listener(lambda e: heard.append(e.run_ids) if hasattr(e, "run_ids") else None)
    follower = Follower(tmp_path, store, poll_interval=0.05, sweep_interval=0.2)
    await follower.start(wait=True)
    sys_id = system_run_id(NODE)

    def flags() -> tuple[list[bool], list[bool]]:
        info = {r.id: r.to_json() for r in store.runs()}
        return [g["idle"] for g in info["train"]["gpus"]], [g["idle"] for g in info[sys_id]["gpus"]]

    async def until_flags(want: tuple[list[bool], list[bool]]) -> None:
        deadline = time.monotonic() + 10
        while flags() != want:
            assert time.monotonic() < deadline, f"flags stayed {flags()}, not {want}"
            await asyncio.sleep(0.02)

    try:
        assert flags() == ([False], [False, False])
        nv.gpus[0].util = 4
        nv.gpus[1].util = 0  # idle too, but under no run: never flagged
        sampler.tick()
        sampler.tick()
        await asyncio.sleep(0.3)
        assert flags() == ([False], [False, False])  # two samples are not three
        heard.clear()
        sampler.tick()
        await until_flags(([True], [True, False]))
        assert any("train" in ids and sys_id in ids for ids in heard)  # the change is sent
        nv.gpus[0].util = 30
        sampler.tick()
        await until_flags(([False], [False, False]))
        nv.gpus[0].util = 0
        for _ in range(3):
            sampler.tick()
        await until_flags(([True], [True, False]))
        run.finish()
        await until_flags(([False], [False, False]))
        # another run of this process on the idle GPU; its folder deleted: gone, not idle
        late = tailboard.init(tmp_path / "late")
        late.log({"loss": 1.0})

        def late_idle() -> bool:
            return bool(store.get_run("late").to_json()["gpus"][0]["idle"])  # type: ignore[union-attr]

        deadline = time.monotonic() + 10
        while not (store.get_run("late") and late_idle() and flags()[1] == [True, False]):
            assert time.monotonic() < deadline, "the new run's GPU was not flagged idle"
            await asyncio.sleep(0.02)
        heard.clear()
        shutil.rmtree(tmp_path / "late")
        await until_flags(([False], [False, False]))
        assert store.get_run("late").status == "gone" and not late_idle()  # type: ignore[union-attr]
        assert any("late" in ids and sys_id in ids for ids in heard)
        late.finish()
    finally:
        await follower.stop()
        sampler.stop()


async def test_a_system_run_is_kept_in_memory_by_age(tmp_path: Path) -> None:
    """A real sampler's run of 1,000 samples (one a second, by a clock of the test) under a
    retention of 100 s as logged, 600 s in all, 10 s buckets: the tail is whole, the middle is the
    first, smallest, largest and last sample of each bucket, the oldest are let go; a training run
    is not touched; a second tick does nothing until more samples are due."""
    from tailboard.sidecar.store.retention import SystemRetention

    nv = FakeNvml.with_gpus(1)
    wall = [1_700_000_000.0]
    sampler = GpuSampler(str(tmp_path), nvml=nv, node=NODE, wall=lambda: wall[0])
    for i in range(1000):
        nv.gpus[0].util = (i * 37) % 101
        sampler.tick()
        wall[0] += 1.0
    sampler.stop()
    train = tailboard.init(tmp_path / "train")
    for i in range(1000):
        train.log({"loss": float(i)}, step=1_700_000_000 + i)
    train.finish()
    store = Store(tmp_path, system_retention=SystemRetention(full=100, keep=600, bucket=10, every=50))
    follower = Follower(tmp_path, store, poll_interval=0.05, sweep_interval=0.2)
    await follower.start(wait=True)
    await follower.stop()
    run_id, util = system_run_id(NODE), f"gpu/{key(0)}/util"
    raw = store.series(run_id, util)
    points = store.get_run(run_id).points
    assert len(raw) == 1000
    store.tick()
    got = store.series(run_id, util)
    latest = float(raw.steps[-1])
    cut = (latest - 100) // 10 * 10
    assert got.steps[0] >= latest - 600  # older ones let go
    tail = raw.steps >= cut
    assert list(got.steps[got.steps >= cut]) == list(raw.steps[tail])  # as logged
    assert list(got.values[got.steps >= cut]) == list(raw.values[tail])
    for b in range(int((latest - 600) // 10 + 1), int(cut // 10)):  # every whole bucket between
        mine = (raw.steps >= b * 10) & (raw.steps < b * 10 + 10)
        kept = (got.steps >= b * 10) & (got.steps < b * 10 + 10)
        values = raw.values[mine]
        assert 2 <= kept.sum() <= 4
        assert got.values[kept].min() == values.min() and got.values[kept].max() == values.max()
        assert got.steps[kept][0] == raw.steps[mine][0] and got.steps[kept][-1] == raw.steps[mine][-1]
    assert store.get_run(run_id).points < points / 3
    assert len(store.series("train", "loss")) == 1000  # a training run is its own
    version = store.version(run_id)
    store.tick()
    assert store.version(run_id) == version  # nothing new to thin


async def test_a_process_that_appears_on_a_gpu_later_is_attributed_then(tmp_path: Path) -> None:
    """A run's header first, its process on a GPU later (the sampler's new per-process figures):
    the run is matched by PID as those figures arrive, and its entry is sent again."""
    nv = FakeNvml.with_gpus(2)
    sampler = GpuSampler(str(tmp_path), nvml=nv, node=NODE)
    sampler.tick()
    run = tailboard.init(tmp_path / "late")
    run.log({"loss": 1.0})
    store = Store(tmp_path)
    heard: list[tuple[str, ...]] = []
    store.add_listener(lambda e: heard.append(e.run_ids) if hasattr(e, "run_ids") else None)
    follower = Follower(tmp_path, store, poll_interval=0.05, sweep_interval=0.2)
    await follower.start(wait=True)
    try:
        assert store.get_run("late").gpus is None  # type: ignore[union-attr]
        heard.clear()
        nv.gpus[1].processes = [(os.getpid(), GiB)]
        sampler.tick()
        deadline = time.monotonic() + 10
        while not store.get_run("late").gpus:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the process's new figures were not attributed"
            await asyncio.sleep(0.02)
        gpus = store.get_run("late").to_json()["gpus"]  # type: ignore[union-attr]
        assert [(g["key"], g["by"], g["pids"]) for g in gpus] == [(key(1), "pid", [os.getpid()])]
        assert any("late" in ids for ids in heard)
    finally:
        await follower.stop()
        sampler.stop()
        run.finish()
