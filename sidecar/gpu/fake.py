"""A stand-in for ``pynvml`` whose GPUs are made up: for tests, the benchmark and demos on machines
without a GPU (``tailboard gpu LOGDIR --nvml-module tailboard.sidecar.gpu.fake:demo``).

It answers the calls the sampler makes, the way NVML does, and raises the real ``pynvml``
exceptions (``pynvml.NVMLError(code)`` is the subclass of that code: ``NVMLError_NotSupported``,
``NVMLError_GpuIsLost``...) when nvidia-ml-py is installed, an ``NVMLError`` of its own with the
same codes otherwise. Faults are set on a ``FakeGpu``: ``fail`` maps a call to the code it raises,
``lost`` makes every call on it raise ``GpuIsLost``; ``FakeNvml.init_error`` fails ``nvmlInit``,
``FakeNvml.fail`` the calls that are not about one GPU (``nvmlDeviceGetCount``).
``calls`` counts every call by name and GPU, so a test can tell what was asked and how often.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

try:
    from pynvml import NVMLError
except ImportError:  # the same codes, without nvidia-ml-py

    class NVMLError(Exception):  # type: ignore[no-redef]
        def __init__(self, value: int) -> None:
            super().__init__(value)
            self.value = value

        def __str__(self) -> str:
            return f"NVML error {self.value}"


__all__ = ["FakeGpu", "FakeNvml", "NVMLError", "demo", "MIG_UNSUPPORTED"]

NOT_SUPPORTED = 3
NOT_FOUND = 6
UNINITIALIZED = 1
GPU_IS_LOST = 15
INVALID_ARGUMENT = 2

#: What a MIG device does not report (NVML: utilisation, sensors and clocks are the whole GPU's).
MIG_UNSUPPORTED = (
    "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature", "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetClockInfo", "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetCurrentClocksThrottleReasons", "nvmlDeviceGetTotalEccErrors",
    "nvmlDeviceGetProcessUtilization", "nvmlDeviceGetMigMode",
)


@dataclass
class Utilization:
    gpu: int
    memory: int


@dataclass
class Memory:
    total: int
    free: int
    used: int


@dataclass
class Process:
    pid: int
    usedGpuMemory: int | None  # pynvml's names


@dataclass
class ProcessSample:
    pid: int
    timeStamp: int
    smUtil: int
    memUtil: int
    encUtil: int = 0
    decUtil: int = 0


@dataclass(eq=False)
class FakeGpu:
    """One device. ``processes``: (pid, bytes used or None); ``process_util``: pid -> SM percent.
    ``mig``: the MIG devices of a GPU in MIG mode (None: not MIG-capable)."""

    uuid: str
    name: str = "NVIDIA Fake GPU 80GB"
    util: int = 0
    mem_util: int = 0
    mem_used: int = 0
    mem_total: int = 80 * 2**30
    temp: int = 40
    power_mw: int = 100_000
    sm_clock: int = 1410
    throttle: int = 0
    ecc: tuple[int, int] = (0, 0)  # corrected, uncorrected
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    process_util: dict[int, int] = field(default_factory=dict)
    fail: dict[str, int] = field(default_factory=dict)  # call -> NVML error code
    lost: bool = False
    mig: list[FakeGpu] | None = None
    wave: float | None = None  # a phase: util, power, temperature and memory move with time

    @classmethod
    def mig_device(cls, uuid: str, mem_total: int, **kw: Any) -> FakeGpu:
        fail = {name: NOT_SUPPORTED for name in MIG_UNSUPPORTED}
        return cls(uuid, name="NVIDIA Fake GPU MIG 1g.10gb", mem_total=mem_total, fail=fail, **kw)


def uuid_for(i: int) -> str:
    """A made-up UUID whose first 8 hex digits differ by ``i``."""
    return f"GPU-{0x5f2c1c70 + i:08x}-3b8e-2b61-7d0b-{i:012x}"


class FakeNvml:
    """A ``pynvml`` look-alike over ``gpus``. ``init_error``: the code every ``nvmlInit`` raises
    (12: library not found); ``init_errors``: codes the next calls raise, one each, first."""

    NVMLError = NVMLError

    def __init__(self, gpus: Iterable[FakeGpu], *, init_error: int | None = None,
                 init_errors: Iterable[int] = (), driver: str = "550.54.15",
                 clock: Callable[[], float] = time.time) -> None:
        self.gpus = list(gpus)
        self.init_error = init_error
        self.init_errors = list(init_errors)
        self.driver = driver
        self.clock = clock
        self.calls: Counter[tuple[str, str | None]] = Counter()
        self.fail: dict[str, int] = {}  # a call that is not about one GPU -> the code it raises
        self.initialised = 0

    @classmethod
    def with_gpus(cls, count: int, **kw: Any) -> FakeNvml:
        gpus = [FakeGpu(uuid_for(i), util=50, mem_used=2**30 * (i + 1), temp=40 + i) for i in range(count)]
        return cls(gpus, **kw)

    @classmethod
    def demo(cls, count: int = 2) -> FakeNvml:
        """GPUs whose figures move, for a page to draw."""
        gpus = [FakeGpu(uuid_for(i), wave=1.7 * i) for i in range(count)]
        return cls(gpus)

    def total(self, name: str) -> int:
        """How many times ``name`` was called, on every GPU."""
        return sum(n for (call, _), n in self.calls.items() if call == name)

    # ---- the library -------------------------------------------------------------------------------

    def _count(self, name: str, gpu: FakeGpu | None = None) -> None:
        self.calls[(name, None if gpu is None else gpu.uuid)] += 1

    def nvmlInit(self) -> None:
        self._count("nvmlInit")
        if self.init_errors:
            raise NVMLError(self.init_errors.pop(0))
        if self.init_error is not None:
            raise NVMLError(self.init_error)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self._count("nvmlShutdown")
        if not self.initialised:
            raise NVMLError(UNINITIALIZED)
        self.initialised -= 1

    def _ready(self, name: str) -> None:
        self._count(name)
        if not self.initialised:
            raise NVMLError(UNINITIALIZED)
        if name in self.fail:
            raise NVMLError(self.fail[name])

    def nvmlSystemGetDriverVersion(self) -> str:
        self._ready("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlDeviceGetCount(self) -> int:
        self._ready("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        self._ready("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise NVMLError(INVALID_ARGUMENT)
        gpu = self.gpus[index]
        if gpu.lost:
            raise NVMLError(GPU_IS_LOST)
        return gpu

    def _use(self, name: str, gpu: FakeGpu) -> FakeGpu:
        self._count(name, gpu)
        if not self.initialised:
            raise NVMLError(UNINITIALIZED)
        if gpu.lost:
            raise NVMLError(GPU_IS_LOST)
        code = gpu.fail.get(name)
        if code is not None:
            raise NVMLError(code)
        if gpu.wave is not None:
            _move(gpu, self.clock())
        return gpu

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        return self._use("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return self._use("nvmlDeviceGetName", handle).name

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        gpu = self._use("nvmlDeviceGetMigMode", handle)
        if gpu.mig is None:
            raise NVMLError(NOT_SUPPORTED)
        return [1, 1]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        self._use("nvmlDeviceGetMaxMigDeviceCount", handle)
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeGpu:
        gpu = self._use("nvmlDeviceGetMigDeviceHandleByIndex", handle)
        if gpu.mig is None or not 0 <= index < len(gpu.mig):
            raise NVMLError(NOT_FOUND)
        return gpu.mig[index]

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> Utilization:
        gpu = self._use("nvmlDeviceGetUtilizationRates", handle)
        if gpu.mig is not None:  # a GPU in MIG mode: utilisation is per instance, not reported
            raise NVMLError(NOT_SUPPORTED)
        return Utilization(gpu.util, gpu.mem_util)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> Memory:
        gpu = self._use("nvmlDeviceGetMemoryInfo", handle)
        used = gpu.mem_used + sum(m.mem_used for m in gpu.mig or ())
        return Memory(gpu.mem_total, gpu.mem_total - used, used)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        return self._use("nvmlDeviceGetTemperature", handle).temp

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        return self._use("nvmlDeviceGetPowerUsage", handle).power_mw

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, clock: int) -> int:
        return self._use("nvmlDeviceGetClockInfo", handle).sm_clock

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: FakeGpu) -> int:
        return self._use("nvmlDeviceGetCurrentClocksEventReasons", handle).throttle

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeGpu) -> int:
        return self._use("nvmlDeviceGetCurrentClocksThrottleReasons", handle).throttle

    def nvmlDeviceGetTotalEccErrors(self, handle: FakeGpu, error_type: int, counter: int) -> int:
        return self._use("nvmlDeviceGetTotalEccErrors", handle).ecc[error_type]

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu) -> list[Process]:
        gpu = self._use("nvmlDeviceGetComputeRunningProcesses", handle)
        return [Process(pid, used) for pid, used in gpu.processes]

    def nvmlDeviceGetProcessUtilization(self, handle: FakeGpu, last_seen: int) -> list[ProcessSample]:
        gpu = self._use("nvmlDeviceGetProcessUtilization", handle)
        now = int(self.clock() * 1e6)
        if not gpu.process_util or now <= last_seen:
            raise NVMLError(NOT_FOUND)  # what NVML says when it has no sample newer than last_seen
        return [ProcessSample(pid, now, sm, sm // 2) for pid, sm in gpu.process_util.items()]


def _move(gpu: FakeGpu, t: float) -> None:
    """Demo figures: a busy GPU that breathes, warmer and hungrier when busier."""
    phase = (gpu.wave or 0.0) + t / 20.0
    busy = 0.5 + 0.45 * math.sin(phase)
    gpu.util = round(100 * busy)
    gpu.mem_util = round(60 * busy)
    gpu.mem_used = int(gpu.mem_total * (0.55 + 0.1 * math.sin(phase / 3)))
    gpu.temp = round(45 + 30 * busy)
    gpu.power_mw = round(90_000 + 300_000 * busy)
    gpu.sm_clock = 1980 if busy < 0.9 else 1755
    gpu.throttle = 0 if busy < 0.9 else 0x4  # software power cap when near the top


#: A ready fake with two moving GPUs: ``--nvml-module tailboard.sidecar.gpu.fake:demo``.
demo = FakeNvml.demo(2)
