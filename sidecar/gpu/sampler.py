"""The GPU sampler: every device NVML shows, read once per interval in a thread of its own, written
into its host's system run (``sink``) and kept in a bounded ring.

What goes wrong is handled where it happens, and said once (docs/gpu.md):

- no NVML library or no driver: one log line, no telemetry, the thread ends; nothing else changes;
- NVML fails to start for another reason: one log line, retried with backoff (1 s doubling to
  ``MAX_BACKOFF``), one line when it works again;
- a field a device does not support: dropped for that device at the first ``NotSupported`` (one
  info line), never asked again by this sampler;
- a lost GPU (``GpuIsLost``): an event in the run and a log line; the other devices go on; NVML is
  reopened with backoff until the GPU is back (another event and line);
- anything else an NVML call raises: that value is skipped this time and counted (``errors``).

``tick()`` is one round, public so that tests and the benchmark can drive the sampler without its
thread; ``start()`` / ``stop()`` run rounds on a fixed schedule (late rounds are skipped, not
bunched).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .nvml import (
    DEFAULT_MODULE,
    Device,
    Trouble,
    classify,
    code_of,
    describe,
    discover,
    errors_of,
    load,
    text,
)
from .probes import PROBES, Probe
from .sink import LOG, MEMORY, STANDBY, SystemRun

__all__ = ["GpuSampler", "Sample", "SamplerStatus", "MIN_INTERVAL", "MAX_BACKOFF"]

logger = logging.getLogger(__name__)

#: NVML's utilisation is "busy over the last sample period" (1/6 s to 1 s): faster gains nothing.
MIN_INTERVAL = 1.0
#: The longest wait between two attempts to reopen NVML.
MAX_BACKOFF = 60.0
#: How often the device list is read again (MIG devices come and go without an NVML error).
REDISCOVER_EVERY = 60.0
#: How often a sampler standing by tries again to become its host's writer.
STANDBY_RETRY = 10.0

# states
STARTING = "starting"
SAMPLING = "sampling"
STANDING_BY = "standby"
NO_GPU = "no_gpu"  # NVML works and shows no device
BACKOFF = "backoff"
NO_DRIVER = "no_driver"
STOPPED = "stopped"
_DONE = (NO_DRIVER, STOPPED)


@dataclass(frozen=True)
class Sample:
    """One round: ``step`` is its Unix second (strictly increasing), ``values`` metric -> number."""

    step: int
    t: float
    values: Mapping[str, float | int]


@dataclass(frozen=True)
class SamplerStatus:
    state: str  # starting, sampling, standby, no_gpu, backoff, no_driver, stopped
    destination: str | None  # "log", "memory", or None while nothing is kept
    detail: str  # why it is in this state, in a few words
    devices: tuple[Mapping[str, Any], ...]  # uuid, key, name, index, parent, dropped, lost
    samples: int
    errors: int


class GpuSampler:
    """Samples NVML every ``interval`` seconds into ``<logdir>/_system/<node>/`` (``node``: this
    host's name unless given), or only into memory when ``logdir`` is None. ``nvml`` is the module to
    use, or its name (``nvml.load``). ``keep`` bounds the ring of recent samples."""

    def __init__(
        self,
        logdir: str | None,
        *,
        interval: float = 1.0,
        node: str | None = None,
        nvml: str | Any = DEFAULT_MODULE,
        keep: int = 600,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not interval >= MIN_INTERVAL:
            raise ValueError(f"interval must be at least {MIN_INTERVAL} s (NVML's utilisation is an "
                             f"average over up to a second), not {interval!r}")
        if type(keep) is not int or keep < 1:
            raise ValueError(f"keep must be a positive number of samples, not {keep!r}")
        self.interval = float(interval)
        self.node = node or socket.gethostname()
        self.sink = None if logdir is None else SystemRun(logdir, self.node)
        self._spec = nvml if isinstance(nvml, str) else None
        self._nv: Any = None if isinstance(nvml, str) else nvml
        self._errors_of: tuple[type[BaseException], ...] = ()
        self._clock = clock
        self._wall = wall
        self._ring: deque[Sample] = deque(maxlen=keep)
        self.latest: Sample | None = None
        self._state = STARTING
        self._detail = ""
        self._where: str | None = None if self.sink is not None else MEMORY
        self._devices: list[Device] | None = None  # None: NVML is not open
        self._probes: dict[str, list[Probe]] = {}  # per UUID, kept across NVML sessions
        self._dropped: dict[str, list[str]] = {}
        self._lost: dict[str, tuple[Device, float]] = {}  # UUID -> (device, since)
        self._known: dict[str, Device] = {}  # every device seen, by UUID
        self._described: dict[str, dict[str, Any]] = {}
        self._config_due = False
        self._driver = ""
        self._retry_at = 0.0
        self._delay = 1.0
        self._failing_since: float | None = None
        self._rediscover_at = 0.0
        self._standby_until = 0.0
        self._step = -1
        self._samples = 0
        self._errors = 0
        self._said: set[tuple[Any, ...]] = set()
        self._events: list[str] = []  # written with the next sample
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        """Run rounds in a daemon thread until ``stop()``."""
        if self._thread is not None:
            raise RuntimeError("GpuSampler.start() was already called")
        self._thread = threading.Thread(target=self._loop, name="tailboard-gpu", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (at most ``timeout`` seconds: an NVML call on a hung GPU may not return)
        and write the run's final record. Idempotent."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("GPU telemetry: the sampler did not stop within %.0f s (an NVML call "
                               "does not return); leaving it behind", timeout)
                return
        if thread is None:
            self._close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        due = self._clock()
        try:
            while not self._stop.is_set():
                try:
                    self.tick()
                except Exception:  # a bug must not end telemetry silently, nor flood the log
                    self._errors += 1
                    if self._once(("tick",)):
                        logger.exception("GPU telemetry: a sampling round failed (later failures "
                                         "are counted)")
                if self._state in _DONE:
                    return
                now = self._clock()
                due += self.interval
                if due < now:  # late (a slow NVML call, a suspended process): skip, do not bunch
                    due += self.interval * (int((now - due) / self.interval) + 1)
                self._stop.wait(due - now)
        finally:
            self._close()

    def _close(self) -> None:
        if self._state != NO_DRIVER:
            self._state = STOPPED
        if self.sink is not None:
            self.sink.close()
        self._shutdown()

    # ---- one round -----------------------------------------------------------------------------

    def tick(self) -> Sample | None:
        """(Re)open NVML when due, read every device, keep and write the sample."""
        if self._state in _DONE:
            return None
        now = self._clock()
        if self._devices is None:
            if now < self._retry_at or not self._open(now):
                return None
        elif self._lost and now >= self._retry_at:
            self._shutdown()
            if not self._open(now):
                return None
        elif now >= self._rediscover_at:
            self._rediscover(now)
        if not self._devices:
            if self._devices is not None and not self._lost:  # NVML works, and shows nothing
                self._state = NO_GPU
            return None
        if not self._writer(now):
            return None
        self._state = SAMPLING
        return self._sample(now)

    def _sample(self, now: float) -> Sample:
        nv, errors = self._nv, self._errors_of
        t = self._wall()
        step = max(int(t), self._step + 1)
        values: dict[str, Any] = {}
        lost: list[tuple[Device, BaseException]] = []
        assert self._devices is not None
        for d in self._devices:
            for probe in tuple(d.probes):  # a probe found unsupported leaves the list
                try:
                    probe.read(nv, d, values)
                except errors as e:
                    if not self._trouble(d, probe, e, classify(e), values):
                        lost.append((d, e))
                        break
                except AttributeError as e:  # the module lacks the call: an older nvidia-ml-py
                    self._trouble(d, probe, e, Trouble.UNSUPPORTED, values)
                except Exception as e:  # a binding's bug: this value only, counted
                    self._trouble(d, probe, e, Trouble.OTHER, values)
        for d, why in lost:
            self._lose(d, why, now)
        self._step = step
        sample = Sample(step, t, MappingProxyType(values))
        self._ring.append(sample)
        self.latest = sample
        self._samples += 1
        if self._where == LOG and self.sink is not None:
            if self._config_due:
                self._config_due = False
                self.sink.config({"gpus": dict(self._described), "sampler": self._sampler_config()})
            for event in self._events:
                self.sink.event(step, event)
            if values:
                self.sink.write(step, values)
        self._events.clear()
        return sample

    def _trouble(self, d: Device, probe: Probe, exc: BaseException, trouble: Trouble,
                 values: dict[str, Any]) -> bool:
        """Deal with what one probe raised; False when the device is lost."""
        if trouble is Trouble.NO_DATA:
            return True
        if trouble is Trouble.UNSUPPORTED:
            i = d.probes.index(probe)
            missing = isinstance(exc, AttributeError) or code_of(exc) == 13  # FunctionNotFound
            if probe.fallback is not None and missing:
                d.probes[i] = fallback = probe.fallback  # from now on, and at once
                try:
                    fallback.read(self._nv, d, values)
                except self._errors_of as e:
                    return self._trouble(d, fallback, e, classify(e), values)
                except AttributeError as e:
                    return self._trouble(d, fallback, e, Trouble.UNSUPPORTED, values)
                return True
            del d.probes[i]
            d.dropped.append(probe.field)
            logger.info("GPU telemetry: %s does not give %s (%s); not asked again",
                        self._name(d), probe.field, describe(exc))
            return True
        if trouble in (Trouble.LOST, Trouble.NO_DRIVER):
            return False
        self._errors += 1
        if self._once(("error", d.uuid, probe.field, code_of(exc), type(exc).__name__)):
            logger.warning("GPU telemetry: %s: reading %s failed (%s); skipped, later failures "
                           "of this kind are counted", self._name(d), probe.field, describe(exc))
        return True

    # ---- NVML sessions -------------------------------------------------------------------------

    def _open(self, now: float) -> bool:
        """Start NVML and find the devices; False when it did not work (backoff, or no driver)."""
        try:
            if self._nv is None:
                self._nv = load(self._spec or DEFAULT_MODULE)
            self._errors_of = errors_of(self._nv)
        except (ImportError, ValueError, AttributeError) as e:
            what = "nvidia-ml-py is not installed" if isinstance(e, ImportError) else str(e)
            self._no_driver(f"{what} ({self._spec or DEFAULT_MODULE})")
            return False
        nv = self._nv
        started = False
        try:
            nv.nvmlInit()
            started = True
            devices, notes = discover(nv)
        except Exception as e:  # NVML's errors, or a broken binding: either way, not now
            if started:
                self._shutdown_quietly()
            if isinstance(e, self._errors_of) and classify(e) is Trouble.NO_DRIVER:
                self._no_driver(describe(e))
            else:
                self._backoff(now, f"NVML did not start: {describe(e)}")
            return False
        for note in notes:
            if self._once(("note", note)):
                logger.warning("GPU telemetry: %s", note)
        try:
            self._driver = text(nv.nvmlSystemGetDriverVersion())
        except Exception:
            self._driver = ""
        self._install(devices, now, fresh=True)
        if self._failing_since is not None:
            self._say(f"NVML works again after {now - self._failing_since:.0f} s")
            self._failing_since = None
        if not self._lost:
            self._delay = 1.0
        if not devices and self._once(("no devices",)):
            logger.warning("GPU telemetry: NVML shows no GPU here; looking again every %.0f s",
                           REDISCOVER_EVERY)
        return True

    def _rediscover(self, now: float) -> None:
        try:
            devices, _ = discover(self._nv)
        except self._errors_of as e:
            self._shutdown()
            self._backoff(now, f"NVML failed: {describe(e)}")
            return
        self._install(devices, now, fresh=False)

    def _install(self, devices: list[Device], now: float, *, fresh: bool) -> None:
        """Take ``devices`` as the ones to sample. Each UUID keeps its probes (what it was found
        not to support) across sessions; a lost one that is back is said to be back."""
        old = {d.uuid: d for d in (self._devices or ())}
        for d in devices:
            if d.uuid in self._lost:
                if not fresh:  # only a new session tells whether a lost GPU is back
                    continue
                _, since = self._lost.pop(d.uuid)
                self._say(f"{self._name(d)} is back after {now - since:.0f} s")
            d.probes = self._probes.setdefault(d.uuid, list(PROBES))
            d.dropped = self._dropped.setdefault(d.uuid, [])
            self._known[d.uuid] = d
            if d.uuid in old:
                d.last_seen = old[d.uuid].last_seen
            described = d.describe()
            if self._described.get(d.key) != described:
                self._described[d.key] = described
                self._config_due = True
            if d.uuid not in old and not fresh:
                self._say(f"{self._name(d)} appeared")
        if not fresh:
            found = {d.uuid for d in devices}
            for uuid, d in old.items():
                if uuid not in found:
                    self._say(f"{self._name(d)} is gone")
        self._devices = [d for d in devices if d.uuid not in self._lost]
        self._rediscover_at = now + REDISCOVER_EVERY
        if fresh and self._lost:  # still lost: the next session later
            self._retry_at = now + self._delay
            self._delay = min(self._delay * 2, MAX_BACKOFF)

    def _lose(self, d: Device, exc: BaseException, now: float) -> None:
        self._lost[d.uuid] = (d, now)
        if self._devices is not None:
            self._devices = [x for x in self._devices if x.uuid != d.uuid]
        self._retry_at = now + self._delay
        self._say(f"{self._name(d)} lost ({describe(exc)}); trying again in {self._delay:.0f} s, "
                  f"then less and less often (at most every {MAX_BACKOFF:.0f} s)")
        self._delay = min(self._delay * 2, MAX_BACKOFF)

    def _backoff(self, now: float, reason: str) -> None:
        if self._failing_since is None:
            self._failing_since = now
            logger.warning("GPU telemetry paused: %s; trying again in %.0f s, then less and less "
                           "often (at most every %.0f s)", reason, self._delay, MAX_BACKOFF)
        self._state = BACKOFF
        self._detail = reason
        self._devices = None
        self._retry_at = now + self._delay
        self._delay = min(self._delay * 2, MAX_BACKOFF)

    def _no_driver(self, reason: str) -> None:
        self._state = NO_DRIVER
        self._detail = reason
        logger.warning("GPU telemetry off: %s; no GPU figures from this host", reason)

    def _shutdown(self) -> None:
        if self._devices is not None:
            self._devices = None
            self._shutdown_quietly()

    def _shutdown_quietly(self) -> None:
        try:
            self._nv.nvmlShutdown()
        except Exception:  # NVML going away as we leave it: nothing to do about it
            pass

    # ---- where the samples go ------------------------------------------------------------------

    def _writer(self, now: float) -> bool:
        """Whether this sampler samples: it is its host's writer, or keeps samples in memory."""
        if self._where in (LOG, MEMORY):
            return True
        assert self.sink is not None
        if now < self._standby_until:
            return False
        where = self.sink.open()
        if where == STANDBY:
            self._standby_until = now + STANDBY_RETRY
            if self._state != STANDING_BY:
                logger.warning("GPU telemetry stands by: %s (checking again every %.0f s)",
                               self.sink.why, STANDBY_RETRY)
            self._state, self._detail = STANDING_BY, self.sink.why
            return False
        if where == MEMORY:
            logger.warning("GPU telemetry: the log tree is read-only here (%s): samples are kept in "
                           "memory only, the last %d", self.sink.why, self._ring.maxlen)
            self._detail = self.sink.why
        elif self._state == STANDING_BY:
            logger.warning("GPU telemetry: now writing %s", self.sink.file)
        self._where = where
        self._state = SAMPLING
        self._config_due = True
        return True

    def _sampler_config(self) -> dict[str, Any]:
        return {"node": self.node, "interval": self.interval, "driver": self._driver,
                "nvml": self._spec or type(self._nv).__name__}

    # ---- telling ---------------------------------------------------------------------------------

    def _say(self, event: str) -> None:
        """An event: logged, and written into the run with the next sample."""
        logger.warning("GPU telemetry: %s", event)
        self._events.append(event)

    def _once(self, key: tuple[Any, ...]) -> bool:
        if key in self._said:
            return False
        if len(self._said) < 10_000:
            self._said.add(key)
        return True

    @staticmethod
    def _name(d: Device) -> str:
        return f"GPU {d.key} ({d.name or d.uuid})"

    # ---- what it holds ---------------------------------------------------------------------------

    def samples(self) -> list[Sample]:
        """The ring: the most recent samples, oldest first."""
        return list(self._ring)

    def status(self) -> SamplerStatus:
        devices: list[Mapping[str, Any]] = []
        for d in list(self._known.values()):
            devices.append({**d.describe(), "key": d.key, "dropped": list(d.dropped),
                            "lost": d.uuid in self._lost})
        return SamplerStatus(self._state, self._where, self._detail,
                             tuple(devices), self._samples, self._errors)
