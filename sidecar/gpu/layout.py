"""Where GPU samples go in the log tree and what their metrics are called, defined once (docs/gpu.md).

A sampler writes the samples of one host as an ordinary tailboard run, ``_system/<node>``, with the
writer (one ``rank0.jsonl``): its header says who wrote it, its config records describe the GPUs,
each sample is one scalars record and each event (a GPU lost, back) a text record ``gpu/events``.
The step of a sample is its Unix second, so a step range of this run is a time range, and the
store's range queries and downsampling work on it as they are.

Metrics are ``gpu/<key>/<field>``, where ``key`` is short and stable for a GPU (``gpu_key``), and
per process ``gpu/<key>/pid/<pid>/<field>``. The store matches a GPU to the runs that use it by
``bare_uuid`` (the writer's header holds CUDA's bare UUIDs, NVML's carry a ``GPU-`` or ``MIG-``
prefix).
"""

from __future__ import annotations

import re

__all__ = [
    "EVENTS",
    "FIELDS",
    "PROCESS_FIELDS",
    "SYSTEM_DIR",
    "bare_uuid",
    "gpu_key",
    "is_system_run",
    "metric",
    "process_metric",
    "safe_node",
    "system_run_id",
]

#: The folder under the log root that holds one run per host.
SYSTEM_DIR = "_system"
#: The text record a sampler writes its events into (a GPU lost, back; NVML down, up).
EVENTS = "gpu/events"

#: Whole-device fields: name -> unit (what a chart's axis says). A field a GPU does not support is
#: absent for that GPU.
FIELDS = {
    "util": "%",  # percent of the last sample period a kernel ran
    "mem_util": "%",  # percent of the last sample period device memory was read or written
    "mem_used": "bytes",
    "mem_total": "bytes",
    "temp": "C",
    "power": "W",
    "sm_clock": "MHz",
    "throttle": "bitmask",  # NVML's clocks event reasons (docs/gpu.md lists the bits)
    "ecc_corrected": "count",  # volatile: since the driver loaded
    "ecc_uncorrected": "count",
    "procs": "count",  # compute processes on the device
    "unattributed_mem": "bytes",  # used by processes whose PID is not visible from the sampler
    "unattributed_util": "%",  # SM share of such processes (NVML's per-process samples)
}
#: Per-process fields, for processes whose PID the sampler can see.
PROCESS_FIELDS = {"mem": "bytes", "util": "%"}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_HEX = re.compile(r"[0-9a-fA-F]{8}")


def safe_node(name: str) -> str:
    """A host or node name as one folder name: no separators, no leading dot, never empty."""
    cleaned = _UNSAFE.sub("-", name).strip("-.")[:200]
    return cleaned or "unknown-host"


def system_run_id(node: str) -> str:
    return f"{SYSTEM_DIR}/{safe_node(node)}"


def is_system_run(run_id: str) -> bool:
    """Whether a run id is a host's system run: ``_system/<node>``, at the root of the log tree or
    of one of its folders (a sampler writing into a sub-tree that the sidecar follows)."""
    parts = run_id.split("/")
    return len(parts) >= 2 and parts[-2] == SYSTEM_DIR and bool(parts[-1])


def bare_uuid(uuid: str) -> str:
    """A UUID without NVML's ``GPU-`` / ``MIG-`` prefix, lower case: how CUDA (and so the
    writer's header) spells the same device."""
    u = uuid.strip()
    for prefix in ("GPU-", "MIG-"):
        if u.upper().startswith(prefix):
            u = u[len(prefix):]
            break
    return u.lower()


def gpu_key(uuid: str) -> str:
    """A short name for a GPU in metric names: the first 8 hex digits of its UUID (``5f2c1c7e``),
    ``mig-`` in front for a MIG device. Old-style MIG UUIDs (``MIG-GPU-<uuid>/<gi>/<ci>``) keep their
    instance numbers. The sampler lengthens a key that two of its devices would share."""
    u = uuid.strip()
    mig = u.upper().startswith("MIG-")
    rest = bare_uuid(u)
    suffix = ""
    if rest.startswith("gpu-"):  # old-style MIG: MIG-GPU-<uuid>/<gi>/<ci>
        rest, _, instances = rest[4:].partition("/")
        suffix = "-" + instances.replace("/", "-") if instances else ""
    head = _HEX.match(rest)
    short = head.group(0).lower() if head else _UNSAFE.sub("-", rest)[:16] or "unknown"
    return ("mig-" if mig else "") + short + suffix


def metric(key: str, field: str) -> str:
    return f"gpu/{key}/{field}"


def process_metric(key: str, pid: int, field: str) -> str:
    return f"gpu/{key}/pid/{pid}/{field}"
