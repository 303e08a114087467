"""GPU telemetry: NVML sampled in the sidecar (``serve --gpu auto``) or alone, one per node
(``tailboard gpu LOGDIR``), written into the log tree as the system run of each host (docs/gpu.md).

Modules, one job each: ``layout`` (where samples go and what their metrics are called), ``nvml``
(loading NVML, what its errors call for, finding devices), ``probes`` (what is read from a device),
``sink`` (writing the system run), ``sampler`` (the schedule, backoff and ring), ``attribution``
(which GPUs a run uses, from headers and system runs), ``fake`` (made-up GPUs for tests and demos).
"""

from __future__ import annotations

from .layout import EVENTS, FIELDS, PROCESS_FIELDS, SYSTEM_DIR, bare_uuid, gpu_key, system_run_id
from .sampler import MIN_INTERVAL, GpuSampler, Sample, SamplerStatus

__all__ = [
    "GpuSampler",
    "Sample",
    "SamplerStatus",
    "MIN_INTERVAL",
    "SYSTEM_DIR",
    "EVENTS",
    "FIELDS",
    "PROCESS_FIELDS",
    "bare_uuid",
    "gpu_key",
    "system_run_id",
]
