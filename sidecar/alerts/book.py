"""The alerts themselves: which are active, which ended lately, and who is told when one starts or
ends. Bounded: at most ``max_active`` active (a new one past that is counted, not kept) and the
latest ``max_recent`` ended ones.

An alert is keyed by what it is about (``"spike:exp/a"``, ``"gpu_memory:_system/node7:5f2c1c7e"``):
a condition that holds on is one alert, however many records show it; it fires when the condition
starts and clears when it ends. Subscribers hear each change (``Change``) synchronously, in the
thread that made it (the engine's): they must only hand it on.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from .config import LEVELS

__all__ = ["CLEARED", "FIRED", "Alert", "AlertBook", "Change"]

logger = logging.getLogger(__name__)

FIRED = "fired"
CLEARED = "cleared"


@dataclass(frozen=True)
class Alert:
    id: str  # what it is about: one active alert per id
    seq: int  # the how-manieth alert this sidecar fired: unique
    rule: str
    level: str
    title: str
    text: str
    started: float  # Unix seconds, the sidecar's clock
    run: str | None = None
    gpu: dict[str, Any] | None = None  # uuid, key, host, system run
    step: float | None = None  # the step of the record that started it, when one did
    ended: float | None = None
    count: int = 1  # times the trainer sent it again while it was active
    backlog: bool = False  # found while the backlog was read: listed, never sent
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "seq": self.seq, "rule": self.rule, "level": self.level, "title": self.title,
            "text": self.text, "run": self.run, "gpu": self.gpu, "step": _num(self.step),
            "started": self.started, "ended": self.ended, "active": self.ended is None,
            "count": self.count, "backlog": self.backlog, "details": self.details,
        }


def _num(x: float | None) -> float | int | None:
    if x is None or not math.isfinite(x):
        return None
    return int(x) if float(x).is_integer() and abs(x) <= 2**53 else x


@dataclass(frozen=True)
class Change:
    event: str  # FIRED or CLEARED
    alert: Alert


Subscriber = Callable[[Change], None]


class AlertBook:
    def __init__(self, *, max_active: int = 1000, max_recent: int = 500) -> None:
        self.max_active = max_active
        self._active: OrderedDict[str, Alert] = OrderedDict()
        self._recent: deque[Alert] = deque(maxlen=max_recent)
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._seq = 0
        self.fired: Counter[tuple[str, str]] = Counter()  # (rule, level) -> alerts fired
        self._by_run: dict[str, Counter[str]] = {}  # run -> active alerts per level
        self.refused = 0  # fired past max_active

    def subscribe(self, fn: Subscriber) -> None:
        self._subscribers.append(fn)

    # ---- changes (the engine's thread) ---------------------------------------------------------

    def fire(self, id: str, rule: str, level: str, title: str, text: str, now: float, **about: Any) -> Alert | None:
        """Start the alert ``id`` unless it is active; returns it when it started."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, not {level!r}")
        with self._lock:
            if id in self._active:
                return None
            if len(self._active) >= self.max_active:
                self.refused += 1
                if self.refused == 1:
                    logger.warning("more than %d alerts active: later ones are counted, not kept", self.max_active)
                return None
            self._seq += 1
            alert = Alert(id, self._seq, rule, level, title, text, now, **about)
            self._active[id] = alert
            self.fired[(rule, level)] += 1
            self._count(alert, 1)
        self._tell(Change(FIRED, alert))
        return alert

    def again(self, id: str, text: str, now: float, level: str | None = None) -> Alert | None:
        """The alert ``id`` was raised again while active (a trainer's alert of the same title):
        counted, its text updated; nobody is told again."""
        with self._lock:
            alert = self._active.get(id)
            if alert is None:
                return None
            self._count(alert, -1)
            alert = replace(alert, text=text, count=alert.count + 1,
                            level=level if level is not None else alert.level)
            self._active[id] = alert
            self._count(alert, 1)
            return alert

    def _count(self, alert: Alert, by: int) -> None:
        if alert.run is None:
            return
        per = self._by_run.setdefault(alert.run, Counter())
        per[alert.level] += by
        if per[alert.level] <= 0:
            del per[alert.level]
        if not per:
            del self._by_run[alert.run]

    def clear(self, id: str, now: float, why: str | None = None) -> Alert | None:
        with self._lock:
            alert = self._active.pop(id, None)
            if alert is None:
                return None
            self._count(alert, -1)
            details = alert.details if why is None else {**alert.details, "cleared_by": why}
            alert = replace(alert, ended=now, details=details)
            self._recent.append(alert)
        self._tell(Change(CLEARED, alert))
        return alert

    def clear_where(self, pred: Callable[[Alert], bool], now: float, why: str) -> list[Alert]:
        with self._lock:
            ids = [a.id for a in self._active.values() if pred(a)]
        return [a for a in (self.clear(i, now, why) for i in ids) if a is not None]

    def _tell(self, change: Change) -> None:
        for fn in list(self._subscribers):
            try:
                fn(change)
            except Exception:
                logger.exception("an alert subscriber failed")

    # ---- asking (any thread) -------------------------------------------------------------------

    def is_active(self, id: str) -> bool:
        return id in self._active

    def get(self, id: str) -> Alert | None:
        return self._active.get(id)

    def active(self, run: str | None = None) -> list[Alert]:
        with self._lock:
            return [a for a in self._active.values() if run is None or a.run == run]

    def recent(self, run: str | None = None, limit: int | None = None) -> list[Alert]:
        """Ended alerts, the latest first."""
        with self._lock:
            out = [a for a in reversed(self._recent) if run is None or a.run == run]
        return out if limit is None else out[:limit]

    def counts(self) -> dict[str, int]:
        """Active alerts per level."""
        with self._lock:
            got = Counter(a.level for a in self._active.values())
        return {level: got.get(level, 0) for level in LEVELS}

    def run_counts(self, run: str) -> dict[str, int]:
        """A run's active alerts per level (empty: none)."""
        with self._lock:
            per = self._by_run.get(run)
            return {} if per is None else dict(per)
