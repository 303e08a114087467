"""Which GPUs a run uses: its headers matched against what the system runs say about their hosts.

Plain functions over what the store already holds (a run's headers; a system run's header, config
and metric names), so that the store and the viewer ask without reading files (docs/gpu.md):

- by UUID: the UUIDs a header names (``cuda_uuids``, and UUIDs in ``nvidia_visible_devices`` /
  ``cuda_visible_devices``, which may be prefixes) against each system run's devices. UUIDs are
  unique, so the host does not matter: a per-node sampler's figures match too;
- by PID: a header whose ``host`` and ``pid_ns`` are a system run's own, and whose ``pid`` has
  per-process figures there (``gpu/<key>/pid/<pid>/...``): that process was on that GPU.

Device indices (``CUDA_VISIBLE_DEVICES=0,1``) are not matched: CUDA's order is not NVML's, and a
container numbers its devices from 0. Whether a PID's figures fall within the run's own time span
(PIDs are reused) is for the caller to check against the series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .layout import bare_uuid, process_metric

__all__ = ["SystemGpus", "GpuUse", "uuids_named", "gpus_used"]

#: The shortest UUID prefix taken from a visible-devices variable (CUDA accepts prefixes).
MIN_PREFIX = 8


@dataclass(frozen=True)
class SystemGpus:
    """One system run as attribution needs it."""

    run_id: str
    host: str | None
    pid_ns: int | None
    gpus: Mapping[str, str]  # key -> NVML UUID
    metrics: frozenset[str] = frozenset()

    @classmethod
    def from_records(cls, run_id: str, header: Mapping[str, Any] | None,
                     config: Mapping[str, Any] | None, metrics: Iterable[str] = ()) -> SystemGpus:
        """From the run's latest header, its merged config and its metric names; anything
        malformed (these are log contents) is left out."""
        header = header or {}
        gpus = (config or {}).get("gpus")
        found = {}
        if isinstance(gpus, Mapping):
            for key, about in gpus.items():
                uuid = about.get("uuid") if isinstance(about, Mapping) else None
                if isinstance(key, str) and isinstance(uuid, str):
                    found[key] = uuid
        host = header.get("host")
        pid_ns = header.get("pid_ns")
        return cls(run_id, host if isinstance(host, str) else None,
                   pid_ns if type(pid_ns) is int else None, found, frozenset(metrics))


@dataclass(frozen=True)
class GpuUse:
    """A GPU a run uses: ``by`` is ``"uuid"`` (its header names it) or ``"pid"`` (one of its
    processes has per-process figures on it); ``pids`` are its processes whose per-process figures
    the system run holds for this GPU."""

    system_run: str
    key: str
    uuid: str
    by: str
    pids: tuple[int, ...] = ()


def uuids_named(header: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """The bare UUIDs a header names, and the bare prefixes its visible-devices variables give."""
    whole: set[str] = set()
    prefixes: set[str] = set()
    cuda = header.get("cuda_uuids")
    if isinstance(cuda, list):
        whole.update(bare_uuid(u) for u in cuda if isinstance(u, str) and u)
    for variable in ("nvidia_visible_devices", "cuda_visible_devices"):
        value = header.get(variable)
        if not isinstance(value, str):
            continue
        for token in value.split(","):
            token = token.strip()
            if token.upper().startswith(("GPU-", "MIG-")) and len(bare_uuid(token)) >= MIN_PREFIX:
                prefixes.add(bare_uuid(token))
    return whole, prefixes


def gpus_used(headers: Iterable[Mapping[str, Any]], systems: Iterable[SystemGpus]) -> list[GpuUse]:
    """The GPUs the run whose ``headers`` these are (every rank's, every attempt's) uses, over the
    ``systems`` known; in the order of ``systems`` and of their devices."""
    whole: set[str] = set()
    prefixes: set[str] = set()
    processes: list[tuple[str | None, int, int]] = []  # (host, pid_ns, pid)
    for h in headers:
        named, given = uuids_named(h)
        whole |= named
        prefixes |= given
        pid, pid_ns = h.get("pid"), h.get("pid_ns")
        if type(pid) is int and type(pid_ns) is int:
            host = h.get("host")
            processes.append((host if isinstance(host, str) else None, pid_ns, pid))
    used = []
    for system in systems:
        mine = [pid for host, ns, pid in processes
                if system.pid_ns is not None and ns == system.pid_ns and host == system.host]
        for key, uuid in system.gpus.items():
            bare = bare_uuid(uuid)
            pids = tuple(sorted({pid for pid in mine if _on(system, key, pid)}))
            if bare in whole or any(bare.startswith(p) for p in prefixes):
                used.append(GpuUse(system.run_id, key, uuid, "uuid", pids))
            elif pids:
                used.append(GpuUse(system.run_id, key, uuid, "pid", pids))
    return used


def _on(system: SystemGpus, key: str, pid: int) -> bool:
    return any(process_metric(key, pid, f) in system.metrics for f in ("mem", "util"))
