"""``GET /metrics`` (``serve --metrics``): the sidecar's view in Prometheus' text exposition, through
``prometheus_client`` with a registry of its own (nothing of the process-global one leaks in).

One collector reads the store (and the alert engine, the GPU sampler, the server's health) at
scrape time: nothing is kept twice and nothing costs anything between scrapes. Names follow
Prometheus' conventions: the ``tailboard_`` prefix, base units (seconds, bytes, ratios, hertz,
watts, celsius), ``_total`` for counters, labels for what varies (``run``, ``metric``, ``uuid``,
``host``). A run's scalars are exported only for the metric names that ``--metrics-include REGEX``
matches (searched in the name), and at most ``MAX_SCALAR_SERIES`` of them: every metric of every
run would be a cardinality no Prometheus wants. System runs (GPU samples) are exported as GPU
figures, not as scalars.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry
from tailboard import __version__

from .alerts import AlertEngine, Webhooks
from .alerts.gpus import node_of
from .gpu import FIELDS, GpuSampler
from .gpu.layout import SYSTEM_DIR
from .health import LoopLag
from .store import Appended, Store
from .store.events import StoreEvent

__all__ = ["MAX_SCALAR_SERIES", "IngestLag", "StoreCollector", "exposition", "new_registry"]

#: Scalar series exported at most (past it: ``tailboard_scalars_left_out``).
MAX_SCALAR_SERIES = 10_000
_STATUSES = ("running", "finished", "failed", "stalled", "gone")
#: GPU fields: metric name, help, scale to base units.
_GPU = {
    "util": ("tailboard_gpu_utilization_ratio", "Share of the last sample period a kernel ran", 0.01),
    "mem_util": ("tailboard_gpu_memory_utilization_ratio", "Share of the last sample period memory was read or written", 0.01),
    "mem_used": ("tailboard_gpu_memory_used_bytes", "Device memory used", 1.0),
    "mem_total": ("tailboard_gpu_memory_total_bytes", "Device memory in all", 1.0),
    "temp": ("tailboard_gpu_temperature_celsius", "GPU temperature", 1.0),
    "power": ("tailboard_gpu_power_watts", "Power draw", 1.0),
    "sm_clock": ("tailboard_gpu_sm_clock_hertz", "SM clock", 1e6),
    "throttle": ("tailboard_gpu_throttle_reasons", "NVML's clocks event reasons, a bit mask (docs/gpu.md)", 1.0),
    "procs": ("tailboard_gpu_processes", "Compute processes on the device", 1.0),
}
_GPU_LABELS = ["host", "uuid", "gpu"]


class IngestLag:
    """A store listener: how late live records are read, their own time against the clock when
    they arrive (write -> file -> follower -> store; clocks of other hosts count too). Keeps the
    last ``window`` seconds; reads nothing while the backlog loads."""

    def __init__(self, store: Store, *, window: float = 60.0, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.window = window
        self.clock = clock
        self._seen: deque[tuple[float, float]] = deque(maxlen=10_000)
        self._lock = threading.Lock()

    def __call__(self, event: StoreEvent) -> None:
        if not isinstance(event, Appended) or not self.store.progress().done:
            return
        newest = max((float(s.times[-1]) for s in event.delta.series.values() if s.times.shape[0]), default=None)
        if newest is None or math.isnan(newest):
            return
        now = self.clock()
        with self._lock:
            self._seen.append((now, max(0.0, now - newest)))

    def worst(self) -> float:
        now = self.clock()
        with self._lock:
            while self._seen and now - self._seen[0][0] > self.window:
                self._seen.popleft()
            return max((lag for _, lag in self._seen), default=0.0)


class StoreCollector(Collector):
    def __init__(
        self,
        store: Store,
        *,
        include: str | None = None,
        alerts: AlertEngine | None = None,
        webhooks: Webhooks | None = None,
        sampler: GpuSampler | None = None,
        ingest: IngestLag | None = None,
        loop_lag: LoopLag | None = None,
        clients: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.include = None if include is None else re.compile(include)
        self.alerts = alerts
        self.webhooks = webhooks
        self.sampler = sampler
        self.ingest = ingest
        self.loop_lag = loop_lag
        self.clients = clients
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        yield from self._runs()
        yield from self._gpus()
        yield from self._alerts()
        yield from self._health()

    # ---- runs ------------------------------------------------------------------------------------

    def _runs(self) -> Iterator[Any]:
        now = self.clock()
        runs = [r for r in self.store.runs() if not r.id.startswith(SYSTEM_DIR + "/")]
        status = GaugeMetricFamily("tailboard_run_status", "1 for the run's status, 0 for the others",
                                   labels=["run", "status"])
        age = GaugeMetricFamily("tailboard_run_last_record_age_seconds", "Time since the run's last record",
                                labels=["run"])
        step = GaugeMetricFamily("tailboard_run_last_step", "The run's last step", labels=["run"])
        records = CounterMetricFamily("tailboard_run_records", "Records read of the run", labels=["run"])
        skipped = CounterMetricFamily("tailboard_run_skipped_records", "Lines of the run skipped as bad input",
                                      labels=["run"])
        counts = {s: 0 for s in _STATUSES}
        for r in runs:
            counts[r.status] = counts.get(r.status, 0) + 1
            for s in _STATUSES:
                status.add_metric([r.id, s], 1.0 if r.status == s else 0.0)
            if r.updated is not None:
                age.add_metric([r.id], max(0.0, now - r.updated))
            if r.last_step is not None:
                step.add_metric([r.id], r.last_step)
            records.add_metric([r.id], r.records)
            skipped.add_metric([r.id], r.skipped.get("total", 0))
        per_status = GaugeMetricFamily("tailboard_runs", "Runs by status", labels=["status"])
        for s, n in counts.items():
            per_status.add_metric([s], n)
        yield from (status, age, step, records, skipped, per_status)
        yield from self._scalars(runs)

    def _scalars(self, runs: Iterable[Any]) -> Iterator[Any]:
        scalar = GaugeMetricFamily("tailboard_run_scalar", "The latest value of a scalar a run logged "
                                   "(the metrics --metrics-include selects)", labels=["run", "metric"])
        left_out = 0
        if self.include is not None:
            exported = 0
            for r in runs:
                names = [m for m in r.metrics if self.include.search(m)]
                if not names:
                    continue
                latest = self.store.latest(r.id)
                for name in names:
                    got = latest.get(name)
                    if got is None:
                        continue
                    if exported >= MAX_SCALAR_SERIES:
                        left_out += 1
                        continue
                    scalar.add_metric([r.id, name], got[0])
                    exported += 1
        yield scalar
        yield GaugeMetricFamily("tailboard_scalars_left_out", f"Scalar series past the {MAX_SCALAR_SERIES} "
                                "exported", value=left_out)

    # ---- GPUs --------------------------------------------------------------------------------------

    def _gpus(self) -> Iterator[Any]:
        families = {f: GaugeMetricFamily(name, doc, labels=_GPU_LABELS) for f, (name, doc, _) in _GPU.items()}
        ecc = CounterMetricFamily("tailboard_gpu_ecc_errors", "ECC errors since the driver loaded",
                                  labels=[*_GPU_LABELS, "type"])
        age = GaugeMetricFamily("tailboard_gpu_sample_age_seconds", "Time since the GPU's last sample",
                                labels=_GPU_LABELS)
        now = self.clock()
        for host, gpus, values in self._gpu_sources():
            for key, uuid in gpus.items():
                labels = [host, uuid, key]
                newest = None
                for f, (_, _, scale) in _GPU.items():
                    got = values.get(f"gpu/{key}/{f}")
                    if got is not None:
                        families[f].add_metric(labels, got[0] * scale)
                        newest = got[1] if newest is None else max(newest, got[1])
                for kind in ("corrected", "uncorrected"):
                    got = values.get(f"gpu/{key}/ecc_{kind}")
                    if got is not None:
                        ecc.add_metric([*labels, kind], got[0])
                if newest is not None:
                    age.add_metric(labels, max(0.0, now - newest))
        yield from families.values()
        yield ecc
        yield age

    def _gpu_sources(self) -> Iterator[tuple[str, dict[str, str], dict[str, tuple[float, float]]]]:
        """(host, {key: uuid}, {metric: (value, time)}) of each system run, and of this sidecar's
        sampler when it keeps its samples in memory only (a read-only tree)."""
        for run_id in self.store.run_ids():
            if not run_id.startswith(SYSTEM_DIR + "/"):
                continue
            try:
                detail = self.store.run_detail(run_id)
            except KeyError:
                continue
            gpus = (detail.get("config") or {}).get("gpus")
            keys = {k: v["uuid"] for k, v in gpus.items()
                    if isinstance(v, dict) and isinstance(v.get("uuid"), str)} if isinstance(gpus, dict) else {}
            yield node_of(run_id, detail.get("config") or {}), keys, self.store.latest(run_id)
        sampler = self.sampler
        if sampler is not None and sampler.latest is not None and sampler.status().destination == "memory":
            sample = sampler.latest
            keys = {d["key"]: d["uuid"] for d in sampler.status().devices if "key" in d and "uuid" in d}
            yield sampler.node, keys, {m: (float(v), sample.t) for m, v in sample.values.items()
                                       if m.split("/")[-1] in FIELDS or m.endswith(("ecc_corrected", "ecc_uncorrected"))}

    # ---- alerts ------------------------------------------------------------------------------------

    def _alerts(self) -> Iterator[Any]:
        if self.alerts is None:
            return
        active = GaugeMetricFamily("tailboard_alerts_active", "Alerts active, by level", labels=["level"])
        for level, n in self.alerts.book.counts().items():
            active.add_metric([level], n)
        fired = CounterMetricFamily("tailboard_alerts_fired", "Alerts fired, by rule and level",
                                    labels=["rule", "level"])
        for (rule, level), n in sorted(self.alerts.book.fired.items()):
            fired.add_metric([rule, level], n)
        yield active
        yield fired
        yield CounterMetricFamily("tailboard_alert_events_dropped", "Store events the alert rules fell "
                                  "behind on", value=self.alerts.dropped)
        if self.webhooks:
            sent = CounterMetricFamily("tailboard_webhook_messages", "Webhook messages, by endpoint and result",
                                       labels=["endpoint", "result"])
            for box in self.webhooks.status():
                for result in ("sent", "failed", "dropped"):
                    sent.add_metric([f"{box['kind']}:{box['host']}", result], box[result])
            yield sent

    # ---- the sidecar itself ------------------------------------------------------------------------

    def _health(self) -> Iterator[Any]:
        yield _info(__version__)
        progress = self.store.progress()
        yield GaugeMetricFamily("tailboard_backlog_bytes", "Bytes of log found at start", value=progress.total_bytes)
        yield GaugeMetricFamily("tailboard_backlog_loaded_bytes", "Bytes of that backlog read",
                                value=progress.loaded_bytes)
        yield GaugeMetricFamily("tailboard_backlog_loaded", "1 once the backlog is read", value=float(progress.done))
        points = sum(r.points for r in self.store.runs())
        yield GaugeMetricFamily("tailboard_resident_points", "Scalar points held in memory", value=points)
        yield CounterMetricFamily("tailboard_evictions", "Runs evicted past --max-points", value=self.store.evictions)
        yield CounterMetricFamily("tailboard_reloads", "Evicted runs read back", value=self.store.reloads)
        if self.ingest is not None:
            yield GaugeMetricFamily("tailboard_ingest_lag_seconds", "The longest delay from a record's time to "
                                    "its arrival in the store over the last minute", value=self.ingest.worst())
        if self.loop_lag is not None:
            yield GaugeMetricFamily("tailboard_event_loop_lag_seconds", "The longest lateness of the server's "
                                    "event loop over the last minute", value=self.loop_lag.report()["max_ms"] / 1000)
        if self.clients is not None:
            yield GaugeMetricFamily("tailboard_websocket_clients", "Viewers connected by WebSocket",
                                    value=self.clients())


def _info(version: str) -> GaugeMetricFamily:
    info = GaugeMetricFamily("tailboard_build_info", "The sidecar's version", labels=["version"])
    info.add_metric([version], 1.0)
    return info


def new_registry(collector: StoreCollector) -> CollectorRegistry:
    """A registry of its own: the process-global one (and what other libraries put there) stays out."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and its content type, by what the scraper accepts (text, or OpenMetrics)."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type
