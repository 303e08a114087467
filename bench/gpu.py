"""GPU sampler cost: CPU time per sample with 8 GPUs, tailboard's sampler beside a naive one.

    .venv/bin/python bench/gpu.py [--gpus 8] [--samples 1000] [--repeats 5]

No GPU is needed: NVML is faked at two depths.

- ``python``: ``tailboard.sidecar.gpu.fake``, a Python object with pynvml's functions: the sampler's
  own work (probes, the record, its write) and little else.
- ``ctypes``: the real ``pynvml`` module over a fake C library: pynvml's ``nvmlLib`` is replaced by C
  function pointers (``ctypes.CFUNCTYPE``) that fill the structs pynvml passes. This adds pynvml's
  wrappers and the ctypes calls as they run on a real machine, plus the callbacks' own cost (which a
  real driver does not have), and leaves out what the driver does in its own code and in the kernel
  (which cannot be measured without a GPU).

The naive sampler is how NVML calls are usually written in a script: each sample enumerates the
devices again (count, handle, UUID, name), asks every field in its own try/except (so a field a GPU
does not support raises every second), builds a dict per GPU and appends it with ``json.dumps`` to a
file opened and closed each time.

Each GPU has two compute processes and per-process utilisation samples. "consumer" GPUs do not
support ECC counters nor per-process utilisation (NotSupported), as on most GeForce boards.
Prints milliseconds of CPU (process time) per sample and the share of one core at 1 Hz.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pynvml
from tailboard.sidecar.gpu import GpuSampler
from tailboard.sidecar.gpu.fake import FakeGpu, FakeNvml, uuid_for

SUCCESS, NOT_SUPPORTED, INSUFFICIENT_SIZE = 0, 3, 7
GiB = 2**30
P = ctypes.c_void_p
U = ctypes.c_uint


class FakeLibrary:
    """What pynvml finds in ``nvmlLib``: C function pointers over made-up GPUs."""

    def __init__(self, gpus: int, *, consumer: bool) -> None:
        self.gpus = gpus
        self.unsupported = {"nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetProcessUtilization"} if consumer else set()
        self.pids = [(os.getpid(), 3 * GiB), (4_000_000, 5 * GiB)]  # one visible here, one not
        self._keep: list[Any] = []  # the C pointers must outlive their calls
        self.calls = 0
        plain = (P, P)  # (handle, out pointer)
        for name, args, impl in (
            ("nvmlInitWithFlags", (U,), lambda flags: SUCCESS),
            ("nvmlShutdown", (), lambda: SUCCESS),
            ("nvmlSystemGetDriverVersion", (P, U), lambda buf, n: self._text(buf, "550.54.15")),
            ("nvmlDeviceGetCount_v2", (P,), lambda out: self._put(out, U, gpus)),
            ("nvmlDeviceGetHandleByIndex_v2", (U, P), lambda i, out: self._put(out, P, i + 1)),
            ("nvmlDeviceGetUUID", (P, P, U), lambda h, buf, n: self._text(buf, uuid_for(h - 1))),
            ("nvmlDeviceGetName", (P, P, U), lambda h, buf, n: self._text(buf, "NVIDIA H100 80GB HBM3")),
            ("nvmlDeviceGetMigMode", (P, P, P), lambda h, a, b: NOT_SUPPORTED),
            ("nvmlDeviceGetUtilizationRates", plain, self._utilization),
            ("nvmlDeviceGetMemoryInfo", plain, self._memory),
            ("nvmlDeviceGetTemperature", (P, U, P), lambda h, s, out: self._put(out, U, 61)),
            ("nvmlDeviceGetPowerUsage", plain, lambda h, out: self._put(out, U, 412_345)),
            ("nvmlDeviceGetClockInfo", (P, U, P), lambda h, c, out: self._put(out, U, 1980)),
            ("nvmlDeviceGetCurrentClocksEventReasons", plain, lambda h, out: self._put(out, ctypes.c_ulonglong, 0)),
            ("nvmlDeviceGetTotalEccErrors", (P, U, U, P),
             lambda h, e, c, out: self._put(out, ctypes.c_ulonglong, 0)),
            ("nvmlDeviceGetComputeRunningProcesses_v3", (P, P, P), self._processes),
            ("nvmlDeviceGetProcessUtilization", (P, P, P, ctypes.c_ulonglong), self._process_util),
        ):
            fn = self._define(name, args, impl)
            setattr(self, name, fn)

    def _define(self, name: str, args: tuple[Any, ...], impl: Callable[..., int]) -> Any:
        def call(*a: Any) -> int:
            self.calls += 1
            return NOT_SUPPORTED if name in self.unsupported else impl(*a)

        fn = ctypes.CFUNCTYPE(ctypes.c_int, *args)(call)
        self._keep.append(fn)
        return fn

    @staticmethod
    def _put(address: int, ctype: Any, value: int) -> int:
        ctype.from_address(address).value = value
        return SUCCESS

    @staticmethod
    def _text(address: int, text: str) -> int:
        data = text.encode() + b"\0"
        ctypes.memmove(address, data, len(data))
        return SUCCESS

    @staticmethod
    def _utilization(handle: int, out: int) -> int:
        u = pynvml.c_nvmlUtilization_t.from_address(out)
        u.gpu, u.memory = 97, 41
        return SUCCESS

    @staticmethod
    def _memory(handle: int, out: int) -> int:
        m = pynvml.c_nvmlMemory_t.from_address(out)
        m.total, m.used = 80 * GiB, 61 * GiB
        m.free = m.total - m.used
        return SUCCESS

    def _processes(self, handle: int, count: int, array: int | None) -> int:
        n = U.from_address(count)
        if array is None:
            n.value = len(self.pids)
            return INSUFFICIENT_SIZE
        procs = (pynvml.c_nvmlProcessInfo_v3_t * n.value).from_address(array)
        for i, (pid, used) in enumerate(self.pids):
            procs[i].pid, procs[i].usedGpuMemory = pid, used
        n.value = len(self.pids)
        return SUCCESS

    def _process_util(self, handle: int, array: int | None, count: int, last_seen: int) -> int:
        n = U.from_address(count)
        if array is None:
            n.value = len(self.pids)
            return INSUFFICIENT_SIZE
        samples = (pynvml.c_nvmlProcessUtilizationSample_t * n.value).from_address(array)
        now = int(time.time() * 1e6)
        for i, (pid, _) in enumerate(self.pids):
            samples[i].pid, samples[i].timeStamp, samples[i].smUtil = pid, now, 45
        n.value = len(self.pids)
        return SUCCESS


def use_fake_library(lib: FakeLibrary) -> Any:
    """The real pynvml module, calling ``lib`` instead of libnvidia-ml.so."""
    pynvml.nvmlLib = lib
    pynvml._nvmlGetFunctionPointer_cache.clear()
    return pynvml


def python_fake(gpus: int, *, consumer: bool) -> FakeNvml:
    fail = {"nvmlDeviceGetTotalEccErrors": NOT_SUPPORTED,
            "nvmlDeviceGetProcessUtilization": NOT_SUPPORTED} if consumer else {}
    return FakeNvml([FakeGpu(uuid_for(i), util=97, mem_used=61 * GiB, temp=61, power_mw=412_345,
                             processes=[(os.getpid(), 3 * GiB), (4_000_000, 5 * GiB)],
                             process_util={os.getpid(): 45, 4_000_000: 45}, fail=dict(fail))
                     for i in range(gpus)])


# ---- the naive sampler ------------------------------------------------------------------------------

NAIVE_FIELDS: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("utilization", lambda nv, h: {"gpu": nv.nvmlDeviceGetUtilizationRates(h).gpu,
                                   "memory": nv.nvmlDeviceGetUtilizationRates(h).memory}),
    ("memory", lambda nv, h: {"used": nv.nvmlDeviceGetMemoryInfo(h).used,
                              "total": nv.nvmlDeviceGetMemoryInfo(h).total}),
    ("temperature", lambda nv, h: nv.nvmlDeviceGetTemperature(h, 0)),
    ("power", lambda nv, h: nv.nvmlDeviceGetPowerUsage(h) / 1000.0),
    ("sm_clock", lambda nv, h: nv.nvmlDeviceGetClockInfo(h, 1)),
    ("throttle", lambda nv, h: nv.nvmlDeviceGetCurrentClocksEventReasons(h)),
    ("ecc_corrected", lambda nv, h: nv.nvmlDeviceGetTotalEccErrors(h, 0, 0)),
    ("ecc_uncorrected", lambda nv, h: nv.nvmlDeviceGetTotalEccErrors(h, 1, 0)),
    ("processes", lambda nv, h: [{"pid": p.pid, "used": p.usedGpuMemory}
                                 for p in nv.nvmlDeviceGetComputeRunningProcesses(h)]),
    ("process_util", lambda nv, h: [{"pid": s.pid, "sm": s.smUtil}
                                    for s in nv.nvmlDeviceGetProcessUtilization(h, 0)]),
]


def naive_sample(nv: Any, path: Path) -> None:
    gpus = []
    for i in range(nv.nvmlDeviceGetCount()):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        g: dict[str, Any] = {"index": i, "uuid": nv.nvmlDeviceGetUUID(h), "name": nv.nvmlDeviceGetName(h)}
        for name, read in NAIVE_FIELDS:
            try:
                g[name] = read(nv, h)
            except nv.NVMLError:
                g[name] = None
        gpus.append(g)
    with open(path, "a") as f:
        f.write(json.dumps({"t": time.time(), "gpus": gpus}) + "\n")


# ---- measuring --------------------------------------------------------------------------------------


def cpu_ms(step: Callable[[], Any], samples: int, repeats: int) -> float:
    """Median over repeats of CPU milliseconds (this process) per call of ``step``."""
    out = []
    for _ in range(repeats):
        t0 = time.process_time()
        for _ in range(samples):
            step()
        out.append((time.process_time() - t0) / samples * 1000)
    return statistics.median(out)


def ours(nv: Any, root: Path) -> Callable[[], Any]:
    sampler = GpuSampler(str(root), nvml=nv, node="bench")
    first = sampler.tick()
    assert first is not None and first.values, "the sampler took no sample"
    step: Callable[[], Any] = sampler.tick
    return step


def naive(nv: Any, root: Path) -> Callable[[], Any]:
    nv.nvmlInit()
    path = root / "naive.jsonl"
    return lambda: naive_sample(nv, path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for consumer in (False, True):
        kind = "consumer" if consumer else "data centre"
        for depth in ("python", "ctypes"):
            for who, make in (("tailboard", ours), ("naive", naive)):
                root = Path(tempfile.mkdtemp(prefix="tailboard-bench-gpu-"))
                lib = None
                if depth == "python":
                    nv: Any = python_fake(args.gpus, consumer=consumer)
                else:
                    lib = FakeLibrary(args.gpus, consumer=consumer)
                    nv = use_fake_library(lib)
                step = make(nv, root)
                calls = None
                if lib is not None:
                    before = lib.calls
                    step()
                    calls = lib.calls - before
                rows.append((kind, depth, who, cpu_ms(step, args.samples, args.repeats), calls))
    print(f"{args.gpus} GPUs, 2 processes each; CPU per sample (median of {args.repeats} x {args.samples})")
    print(f"{'GPUs':12} {'NVML fake':10} {'sampler':10} {'ms/sample':>10} {'% core at 1 Hz':>15} "
          f"{'vs tailboard':>13} {'NVML calls':>11}")
    base = {(k, d): ms for k, d, who, ms, _ in rows if who == "tailboard"}
    for kind, depth, who, ms, calls in rows:
        ratio = ms / base[(kind, depth)]
        print(f"{kind:12} {depth:10} {who:10} {ms:10.3f} {ms / 10:14.3f}% {ratio:12.2f}x "
              f"{'' if calls is None else calls:>11}")
    worst = max(ms for _, depth, who, ms, _ in rows if who == "tailboard" and depth == "ctypes")
    most = max(c for _, _, who, _, c in rows if who == "tailboard" and c)
    spare = (10.0 - worst) / most * 1000
    print(f"1% of a core at 1 Hz is 10 ms per sample: {10.0 - worst:.2f} ms are left for the driver's own "
          f"time, {spare:.0f} us for each of the {most} NVML calls")


if __name__ == "__main__":
    main()
