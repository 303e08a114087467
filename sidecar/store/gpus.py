"""Which GPUs each run uses, kept current in the store (docs/gpu.md, "In the store and on the page").

``attribution.gpus_used`` over a run's headers and what the system runs (``_system/<node>``) say of
their hosts. It is computed again only when what it depends on changes: a run's new header (a rank,
an attempt), or a system run's new header, config (its devices) or metric names (a process appearing
on a GPU); never per record. A system run also says which of its GPUs are idle: the last
``IdleRule.samples`` values of their ``util`` all under ``IdleRule.util`` percent, looked at in each
chunk of the system run (a handful of array tails a second).

What a run's entry in the run list carries (``entries``): for a run, the GPUs it uses; for a system
run, every GPU it samples with the runs on it (none: unattributed). No locking and no I/O here: the
facade calls under its lock and tells listeners which runs changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..gpu.attribution import GpuUse, SystemGpus, gpus_used
from ..gpu.layout import is_system_run, metric
from .runs import RUNNING, Run

__all__ = ["IDLE_SAMPLES", "IDLE_UTIL", "GpuIndex", "IdleRule"]

#: A GPU under a running run is idle when its utilisation stayed under this many percent...
IDLE_UTIL = 5.0
#: ... for this many samples in a row (a minute at the sampler's 1 Hz).
IDLE_SAMPLES = 60


@dataclass(frozen=True)
class IdleRule:
    util: float = IDLE_UTIL
    samples: int = IDLE_SAMPLES

    def __post_init__(self) -> None:
        if type(self.samples) is not int or self.samples < 1:
            raise ValueError(f"IdleRule.samples must be a positive number of samples, not {self.samples!r}")


class GpuIndex:
    """Attribution and idle flags of every run the store holds."""

    def __init__(self, idle: IdleRule | None = None) -> None:
        self.rule = idle or IdleRule()
        self._systems: dict[str, SystemGpus] = {}  # system run -> what attribution needs of it
        self._about: dict[str, dict[str, dict[str, Any]]] = {}  # system run -> key -> name, index
        self._idle: dict[str, frozenset[str]] = {}  # system run -> keys of idle GPUs
        self._uses: dict[str, tuple[GpuUse, ...]] = {}  # run -> the GPUs it uses (runs using some)

    def update(self, run: Run, runs: Mapping[str, Run], *, meta: bool, names: bool) -> set[str]:
        """After a chunk of ``run`` was kept (``meta``: it held a header or a config record;
        ``names``: the run's metric names changed): the ids of the runs whose entries changed."""
        if not is_system_run(run.id):
            return self._attribute(run) if meta else set()
        changed: set[str] = set()
        if meta or names or run.id not in self._systems:
            header = run.headers[-1] if run.headers else None
            names_now = run.evicted["metrics"] if run.evicted is not None else run.metric_names()
            system = SystemGpus.from_records(run.id, header, run.config, names_now)
            before = self._systems.get(run.id)
            if system != before:
                self._systems[run.id] = system
                self._about[run.id] = _about(run.config)
                changed.add(run.id)
                # new metric names alone (a process appeared) matter only to the runs of the
                # processes they name, from the system run's host and PID namespace
                pids = None
                if before is not None and (before.gpus, before.host, before.pid_ns) == (
                        system.gpus, system.host, system.pid_ns):
                    pids = _pids(system.metrics - before.metrics)
                for other in runs.values():
                    if not is_system_run(other.id) and (pids is None or _among(other, system, pids)):
                        changed |= self._attribute(other)
        idle = self._idle_keys(run)
        if idle is not None and idle != self._idle.get(run.id, frozenset()):
            self._idle[run.id] = idle
            changed.add(run.id)
            changed.update(rid for rid, uses in self._uses.items() if any(u.system_run == run.id for u in uses))
        return changed

    def _attribute(self, run: Run) -> set[str]:
        systems = [self._systems[k] for k in sorted(self._systems)]
        uses = tuple(gpus_used(run.headers, systems)) if systems and run.headers else ()
        before = self._uses.get(run.id, ())
        if uses == before:
            return set()
        if uses:
            self._uses[run.id] = uses
        else:
            self._uses.pop(run.id, None)
        # the system runs' entries list the runs on their GPUs
        return {run.id, *(u.system_run for u in before), *(u.system_run for u in uses)}

    def _idle_keys(self, run: Run) -> frozenset[str] | None:
        """Keys of the GPUs whose last ``rule.samples`` utilisations are all under ``rule.util``
        (None: the run's data is evicted, nothing new to say)."""
        system = self._systems.get(run.id)
        if system is None or run.evicted is not None:
            return None
        out = []
        for key in system.gpus:
            col = run.attempts[-1].series.get(metric(key, "util"))
            if col is None or col.n < self.rule.samples:
                continue
            tail = col.values[-self.rule.samples:]
            if bool(np.all(tail < self.rule.util)):  # NaN is not idle
                out.append(key)
        return frozenset(out)

    # ---- what the run list shows -----------------------------------------------------------------

    def entries(self, run_id: str, status_of: Callable[[str], str | None]) -> tuple[dict[str, Any], ...] | None:
        """The ``gpus`` of a run's entry, or None when it has none to show. ``status_of(run_id)``:
        a run's status (a GPU is idle only under a running run)."""
        if is_system_run(run_id):
            return self._devices(run_id, status_of)
        uses = self._uses.get(run_id)
        if not uses:
            return None
        running = status_of(run_id) == RUNNING
        out = []
        for u in uses:
            system = self._systems[u.system_run]
            idle = (running and u.key in self._idle.get(u.system_run, frozenset())
                    and status_of(u.system_run) == RUNNING)
            out.append({**self._device(system, u.key, u.uuid), "by": u.by, "pids": list(u.pids), "idle": idle})
        return tuple(out)

    def _devices(self, run_id: str, status_of: Callable[[str], str | None]) -> tuple[dict[str, Any], ...]:
        """A system run's GPUs, each with the runs on it."""
        system = self._systems.get(run_id)
        if system is None:
            return ()
        on: dict[str, list[str]] = {key: [] for key in system.gpus}
        for rid, uses in self._uses.items():
            for u in uses:
                if u.system_run == run_id and u.key in on:
                    on[u.key].append(rid)
        idle = self._idle.get(run_id, frozenset()) if status_of(run_id) == RUNNING else frozenset()
        out = []
        for key, uuid in system.gpus.items():
            runs = sorted(on[key])
            busy = key in idle and any(status_of(r) == RUNNING for r in runs)
            out.append({**self._device(system, key, uuid), "runs": runs, "idle": busy})
        return tuple(out)

    def related(self, run_ids: Iterable[str]) -> set[str]:
        """The system runs the given runs use: their entries depend on those runs' status."""
        return {u.system_run for rid in run_ids for u in self._uses.get(rid, ())}

    def _device(self, system: SystemGpus, key: str, uuid: str) -> dict[str, Any]:
        about = self._about.get(system.run_id, {}).get(key, {})
        return {"system": system.run_id, "host": system.host, "key": key, "uuid": uuid,
                "name": about.get("name"), "index": about.get("index")}


def _pids(names: Iterable[str]) -> set[int]:
    """The PIDs that per-process metric names (``gpu/<key>/pid/<pid>/<field>``) are about."""
    out = set()
    for name in names:
        parts = name.split("/")
        if len(parts) == 5 and parts[0] == "gpu" and parts[2] == "pid" and parts[3].isdigit():
            out.add(int(parts[3]))
    return out


def _among(run: Run, system: SystemGpus, pids: set[int]) -> bool:
    """Whether a header of ``run`` is one of ``pids`` on the system run's host and PID namespace."""
    return system.pid_ns is not None and any(
        h.get("pid") in pids and h.get("pid_ns") == system.pid_ns and h.get("host") == system.host
        for h in run.headers)


def _about(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each device's name and NVML index from a system run's config (log content: checked)."""
    gpus = config.get("gpus")
    out: dict[str, dict[str, Any]] = {}
    if isinstance(gpus, Mapping):
        for key, about in gpus.items():
            if isinstance(key, str) and isinstance(about, Mapping):
                name, index = about.get("name"), about.get("index")
                out[key] = {"name": name[:200] if isinstance(name, str) else None,
                            "index": index if type(index) is int else None}
    return out
