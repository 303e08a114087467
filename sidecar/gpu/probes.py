"""What is read from a device: one probe per NVML call, each putting its metrics into the sample.

A probe raises what NVML raises; the sampler decides what that means (``nvml.classify``): a field a
device does not support is dropped from that device's probes once, not asked again every second.

Per-process figures need the PID NVML reports to be one this sampler can see (``/proc/<pid>``
exists here). Older drivers report every PID in the host's namespace; newer ones translate the
processes' list into the caller's namespace but not always the per-process utilisation samples. A
process the sampler cannot see is counted in ``unattributed_mem`` / ``unattributed_util`` rather
than under a PID that would mean another process here (docs/gpu.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .layout import process_metric
from .nvml import (
    CLOCK_SM,
    MEMORY_ERROR_CORRECTED,
    MEMORY_ERROR_UNCORRECTED,
    TEMPERATURE_GPU,
    VOLATILE_ECC,
    Device,
)

__all__ = ["Probe", "PROBES", "MAX_PID_NAMES"]

#: Per-process metric names remembered per device; past it the memo starts again (PIDs churn).
MAX_PID_NAMES = 4096


@dataclass(frozen=True)
class Probe:
    field: str  # what a log line names when the device does not give it
    read: Callable[[Any, Device, dict[str, Any]], None]
    fallback: Probe | None = None  # asked instead when the driver lacks this call (FunctionNotFound)


def _utilization(nv: Any, d: Device, out: dict[str, Any]) -> None:
    u = nv.nvmlDeviceGetUtilizationRates(d.handle)
    out[d.names["util"]] = u.gpu
    out[d.names["mem_util"]] = u.memory


def _memory(nv: Any, d: Device, out: dict[str, Any]) -> None:
    m = nv.nvmlDeviceGetMemoryInfo(d.handle)
    out[d.names["mem_used"]] = m.used
    out[d.names["mem_total"]] = m.total


def _temperature(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["temp"]] = nv.nvmlDeviceGetTemperature(d.handle, TEMPERATURE_GPU)


def _power(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["power"]] = nv.nvmlDeviceGetPowerUsage(d.handle) / 1000.0  # milliwatts


def _sm_clock(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["sm_clock"]] = nv.nvmlDeviceGetClockInfo(d.handle, CLOCK_SM)


def _throttle(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["throttle"]] = nv.nvmlDeviceGetCurrentClocksEventReasons(d.handle)


def _throttle_before_r535(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["throttle"]] = nv.nvmlDeviceGetCurrentClocksThrottleReasons(d.handle)


def _ecc_corrected(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["ecc_corrected"]] = nv.nvmlDeviceGetTotalEccErrors(
        d.handle, MEMORY_ERROR_CORRECTED, VOLATILE_ECC)


def _ecc_uncorrected(nv: Any, d: Device, out: dict[str, Any]) -> None:
    out[d.names["ecc_uncorrected"]] = nv.nvmlDeviceGetTotalEccErrors(
        d.handle, MEMORY_ERROR_UNCORRECTED, VOLATILE_ECC)


def _visible(d: Device, pids: list[int]) -> dict[int, bool]:
    """Which PIDs exist in this sampler's namespace; looked up once per PID while NVML lists it."""
    known = d.visible
    d.visible = {pid: known[pid] if pid in known else os.path.exists(f"/proc/{pid}") for pid in pids}
    return d.visible


def _pid_name(d: Device, pid: int, field: str) -> str:
    name = d.pid_names.get((pid, field))
    if name is None:
        if len(d.pid_names) >= MAX_PID_NAMES:
            d.pid_names.clear()
        name = d.pid_names[(pid, field)] = process_metric(d.key, pid, field)
    return name


def _processes(nv: Any, d: Device, out: dict[str, Any]) -> None:
    procs = nv.nvmlDeviceGetComputeRunningProcesses(d.handle)
    visible = _visible(d, [p.pid for p in procs])
    other = 0
    for p in procs:
        used = p.usedGpuMemory  # None where NVML cannot tell (MIG without privileges, WDDM)
        if used is None:
            continue
        if visible[p.pid]:
            out[_pid_name(d, p.pid, "mem")] = used
        else:
            other += used
    out[d.names["procs"]] = len(procs)
    out[d.names["unattributed_mem"]] = other


def _process_utilization(nv: Any, d: Device, out: dict[str, Any]) -> None:
    samples = nv.nvmlDeviceGetProcessUtilization(d.handle, d.last_seen)
    newest: dict[int, Any] = {}
    for s in samples:
        seen = newest.get(s.pid)
        if seen is None or s.timeStamp >= seen.timeStamp:
            newest[s.pid] = s
    if not newest:
        return
    d.last_seen = max(s.timeStamp for s in newest.values())
    other = 0
    for pid, s in newest.items():
        if d.visible.get(pid) or (pid not in d.visible and os.path.exists(f"/proc/{pid}")):
            out[_pid_name(d, pid, "util")] = s.smUtil
        else:
            other += s.smUtil
    out[d.names["unattributed_util"]] = other


#: Every probe, in the order they are asked.
PROBES: tuple[Probe, ...] = (
    Probe("util", _utilization),
    Probe("memory", _memory),
    Probe("temp", _temperature),
    Probe("power", _power),
    Probe("sm_clock", _sm_clock),
    Probe("throttle", _throttle, fallback=Probe("throttle", _throttle_before_r535)),
    Probe("ecc_corrected", _ecc_corrected),
    Probe("ecc_uncorrected", _ecc_uncorrected),
    Probe("processes", _processes),
    Probe("process_util", _process_utilization),
)
