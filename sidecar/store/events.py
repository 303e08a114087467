"""What listeners of the store hear, as a closed union of small values, and the listener list."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .results import Delta

__all__ = [
    "Appended",
    "BatchDone",
    "Listener",
    "Listeners",
    "ProgressChanged",
    "RecordsKept",
    "ResetRun",
    "RunsChanged",
    "StoreEvent",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunsChanged:
    """New runs, status or listed-name changes, runs gone."""

    run_ids: tuple[str, ...]


@dataclass(frozen=True)
class Appended:
    """New points of a run (full resolution) and the cursor after them."""

    run_id: str
    delta: Delta


@dataclass(frozen=True)
class RecordsKept:
    """Records of a run other than scalars that a chunk brought (headers, configs, texts, ends...),
    in file order, as decoded: for listeners that act on them (alerts, control acknowledgements).
    Heard before the same chunk's points (a header opens the attempt they belong to). ``live``:
    they arrived while following, not while the backlog was read."""

    run_id: str
    records: tuple[dict[str, Any], ...]
    live: bool


@dataclass(frozen=True)
class ResetRun:
    """What was sent of a run is void (truncation, replacement, a new attempt)."""

    run_id: str
    reason: str


@dataclass(frozen=True)
class ProgressChanged:
    """Catch-up progress moved (see ``Store.progress``)."""


@dataclass(frozen=True)
class BatchDone:
    """The follower handed over everything one wake-up found: a good moment to send it on."""


StoreEvent = RunsChanged | Appended | RecordsKept | ResetRun | ProgressChanged | BatchDone
Listener = Callable[[StoreEvent], None]


class Listeners:
    """Listeners are called synchronously in the thread that changed the store, after the change;
    one that raises is logged and the others still hear the event."""

    def __init__(self) -> None:
        self._fns: list[Listener] = []
        self._lock = threading.Lock()

    def add(self, fn: Listener) -> None:
        with self._lock:
            self._fns.append(fn)

    def remove(self, fn: Listener) -> None:
        with self._lock:
            if fn in self._fns:
                self._fns.remove(fn)

    def __bool__(self) -> bool:
        return bool(self._fns)

    def emit(self, event: StoreEvent) -> None:
        for fn in list(self._fns):
            try:
                fn(event)
            except Exception:
                logger.exception("store listener failed")
