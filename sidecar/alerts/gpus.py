"""The rules about GPUs, over the system runs' samples (``_system/<node>``, docs/gpu.md), one alert per
GPU and rule:

- ``gpu_idle`` (warning): utilisation under ``gpu_idle_util`` % for ``gpu_idle_for`` seconds, by the
  samples' own clock (a sample's step is its Unix second), while a running run uses the GPU (``attribution.gpus_used``: by UUID or by PID).
  It clears when the GPU works again or no running run uses it.
- ``gpu_memory`` (warning): memory used over ``gpu_memory_used`` of the total; it clears 2 points
  below.
- ``gpu_throttle`` (warning): a clocks event reason of ``gpu_throttle_mask`` is set (named in the
  text); it clears when none is.
- ``gpu_ecc`` (error): uncorrected ECC errors since the driver loaded. NVML's count only goes back to
  0 when the driver is reloaded, which is when it clears.

Which runs use which GPU is worked out again only when a header, a system run's device list or its
per-process metric names change. When a system run ends (its sampler stopped), its GPUs' alerts clear.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tailboard.format import K_CONFIG, K_END, K_HEADER, KIND

from ..gpu.attribution import SystemGpus, gpus_used
from ..gpu.layout import SYSTEM_DIR
from .book import AlertBook
from .config import AlertConfig
from .runs import MetricNews

__all__ = ["THROTTLE_REASONS", "GpuRules", "is_system_run", "node_of"]

#: NVML's clocks event reasons, by bit (docs/gpu.md).
THROTTLE_REASONS = {
    0x1: "GPU idle", 0x2: "application clocks setting", 0x4: "software power cap",
    0x8: "hardware slowdown", 0x10: "sync boost", 0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown", 0x80: "hardware power brake", 0x100: "display clock setting",
}
#: Headers kept per run for attribution (every rank's, the latest attempts).
HEADERS_KEPT = 16
#: Per-process metric names kept per system run (PIDs come and go).
PROCESS_NAMES_KEPT = 10_000
_FIELDS = ("util", "mem_used", "mem_total", "throttle", "ecc_uncorrected")
_RUNNING = "running"


def is_system_run(run: str) -> bool:
    return run.startswith(SYSTEM_DIR + "/")


def node_of(run: str, config: dict[str, Any]) -> str:
    """The name of a system run's host: the sampler's ``node`` (its ``--node``), else the folder's."""
    sampler = config.get("sampler")
    node = sampler.get("node") if isinstance(sampler, dict) else None
    return node if isinstance(node, str) and node else run[len(SYSTEM_DIR) + 1:]


@dataclass
class GpuWatch:
    latest: dict[str, tuple[float, float]] = field(default_factory=dict)  # field -> (value, its second)
    idle_since: float | None = None  # the second since which utilisation is under the threshold


@dataclass
class SystemWatch:
    header: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    process_names: set[str] = field(default_factory=set)
    gpus: dict[str, GpuWatch] = field(default_factory=dict)


class GpuRules:
    """``status_of(run)``: the run's status now (the store's), None for an unknown run."""

    def __init__(self, book: AlertBook, config: AlertConfig, status_of: Callable[[str], str | None]) -> None:
        self.book = book
        self.config = config
        self.status_of = status_of
        self.systems: dict[str, SystemWatch] = {}
        self.headers: dict[str, deque[dict[str, Any]]] = {}
        self._users: dict[tuple[str, str], tuple[str, ...]] | None = None  # None: to work out again

    def forget(self, run: str, now: float) -> None:
        if self.headers.pop(run, None) is not None:
            self._users = None
        if self.systems.pop(run, None) is not None:
            self._users = None
            self.book.clear_where(lambda a: (a.gpu or {}).get("system") == run, now, "gone")

    # ---- records -----------------------------------------------------------------------------

    def records(self, run: str, records: Iterable[dict[str, Any]], now: float) -> None:
        for rec in records:
            kind = rec.get(KIND)
            if kind == K_HEADER:
                if is_system_run(run):
                    self._system(run).header = rec
                else:
                    self.headers.setdefault(run, deque(maxlen=HEADERS_KEPT)).append(rec)
                self._users = None
            elif kind == K_CONFIG and is_system_run(run) and isinstance(rec.get("config"), dict):
                self._system(run).config.update(rec["config"])
                self._users = None
            elif kind == K_END and is_system_run(run):
                self.book.clear_where(lambda a: (a.gpu or {}).get("system") == run, now, "the sampler stopped")
                for g in self._system(run).gpus.values():
                    g.idle_since = None

    def _system(self, run: str) -> SystemWatch:
        s = self.systems.get(run)
        if s is None:
            s = self.systems[run] = SystemWatch()
        return s

    # ---- samples -----------------------------------------------------------------------------

    def samples(self, run: str, news: Iterable[MetricNews], now: float, backlog: bool) -> None:
        system = self._system(run)
        touched: set[str] = set()
        for m in news:
            parts = m.name.split("/")
            if len(parts) < 3 or parts[0] != "gpu":
                continue
            key = parts[1]
            if len(parts) == 5 and parts[2] == "pid":
                if m.name not in system.process_names and len(system.process_names) < PROCESS_NAMES_KEPT:
                    system.process_names.add(m.name)
                    self._users = None
                continue
            if len(parts) != 3 or parts[2] not in _FIELDS or not m.values.shape[0]:
                continue
            g = system.gpus.get(key)
            if g is None:
                g = system.gpus[key] = GpuWatch()
            if parts[2] == "util":
                self._idle_span(g, m)
            g.latest[parts[2]] = (float(m.values[-1]), float(m.steps[-1]))
            touched.add(key)
        for key in sorted(touched):
            self._evaluate(run, system, key, system.gpus[key], now, backlog)

    def _idle_span(self, g: GpuWatch, m: MetricNews) -> None:
        """Since when (a sample's second: its step) utilisation has stayed under the threshold,
        through these points."""
        below = m.values < self.config.gpu_idle_util
        if bool(below.all()):
            if g.idle_since is None:
                g.idle_since = float(m.steps[0])
            return
        busy = int(np.flatnonzero(~below)[-1])
        g.idle_since = float(m.steps[busy + 1]) if busy + 1 < m.values.shape[0] else None

    def _about(self, run: str, system: SystemWatch, key: str) -> dict[str, Any]:
        gpus = system.config.get("gpus")
        about = gpus.get(key) if isinstance(gpus, dict) else None
        about = about if isinstance(about, dict) else {}
        return {"system": run, "key": key, "uuid": about.get("uuid") if isinstance(about.get("uuid"), str) else None,
                "name": about.get("name") if isinstance(about.get("name"), str) else None,
                "host": node_of(run, system.config)}

    def _evaluate(self, run: str, system: SystemWatch, key: str, g: GpuWatch, now: float, backlog: bool) -> None:
        cfg = self.config
        where = f"{run}:{key}"
        about = self._about(run, system, key)
        label = f"GPU {key} on {about['host']}"
        latest = g.latest
        if cfg.enabled("gpu_memory") and "mem_used" in latest and "mem_total" in latest and latest["mem_total"][0] > 0:
            share = latest["mem_used"][0] / latest["mem_total"][0]
            if share > cfg.gpu_memory_used:
                self.book.fire(f"gpu_memory:{where}", "gpu_memory", "warning", f"{label}: memory {share:.0%} used",
                               f"{latest['mem_used'][0] / 2**30:.1f} of {latest['mem_total'][0] / 2**30:.1f} GiB",
                               now, gpu=about, backlog=backlog, details={"used": share})
            elif share < cfg.gpu_memory_used - 0.02:
                self.book.clear(f"gpu_memory:{where}", now, "memory freed")
        if cfg.enabled("gpu_throttle") and "throttle" in latest:
            bits = int(latest["throttle"][0]) & cfg.gpu_throttle_mask
            if bits:
                reasons = [name for bit, name in THROTTLE_REASONS.items() if bits & bit]
                self.book.fire(f"gpu_throttle:{where}", "gpu_throttle", "warning", f"{label} is throttled",
                               ", ".join(reasons), now, gpu=about, backlog=backlog, details={"reasons": bits})
            else:
                self.book.clear(f"gpu_throttle:{where}", now, "no longer throttled")
        if cfg.enabled("gpu_ecc") and "ecc_uncorrected" in latest:
            errors = latest["ecc_uncorrected"][0]
            if errors > 0:
                self.book.fire(f"gpu_ecc:{where}", "gpu_ecc", "error", f"{label}: uncorrected ECC errors",
                               f"{errors:.0f} since the driver loaded", now, gpu=about, backlog=backlog,
                               details={"uncorrected": errors})
            else:
                self.book.clear(f"gpu_ecc:{where}", now, "the count went back to 0")
        if cfg.enabled("gpu_idle") and "util" in latest:
            self._idle(run, key, g, about, label, now, backlog)

    def _idle(self, run: str, key: str, g: GpuWatch, about: dict[str, Any], label: str, now: float,
              backlog: bool) -> None:
        id = f"gpu_idle:{run}:{key}"
        users = [r for r in self.users().get((run, key), ()) if self.status_of(r) == _RUNNING]
        last_t = g.latest["util"][1]
        idle_for = None if g.idle_since is None else last_t - g.idle_since
        if users and idle_for is not None and idle_for >= self.config.gpu_idle_for:
            self.book.fire(id, "gpu_idle", "warning", f"{label} idle under {_names(users)}",
                           f"utilisation under {self.config.gpu_idle_util:g}% for {idle_for:.0f} s "
                           f"while {_names(users)} {'is' if len(users) == 1 else 'are'} running",
                           now, run=users[0], gpu=about, backlog=backlog,
                           details={"runs": users, "idle_for": idle_for})
        elif not users or idle_for is None:
            self.book.clear(id, now, "busy again" if users else "no running run on it")

    # ---- attribution -------------------------------------------------------------------------

    def users(self) -> dict[tuple[str, str], tuple[str, ...]]:
        """(system run, GPU key) -> the runs that use that GPU."""
        if self._users is None:
            systems = [SystemGpus.from_records(run, s.header, s.config, s.process_names)
                       for run, s in self.systems.items()]
            users: dict[tuple[str, str], list[str]] = {}
            for run, headers in self.headers.items():
                for use in gpus_used(headers, systems):
                    users.setdefault((use.system_run, use.key), []).append(run)
            self._users = {k: tuple(sorted(v)) for k, v in users.items()}
        return self._users


def _names(runs: list[str]) -> str:
    return ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
