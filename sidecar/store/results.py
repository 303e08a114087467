"""What the store hands out: plain immutable values (the shapes of the HTTP answers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..series import Series

__all__ = ["Delta", "Progress", "RecordPage", "Reset", "RunInfo", "Series"]


@dataclass(frozen=True)
class RunInfo:
    """One run as the run list shows it. ``listed`` holds, per record kind that is listed (see
    ``kinds.KINDS``), the names the run holds of it: ``{"histograms": (...), "vectors": (...)}``.
    ``config`` is the run's merged config flattened and capped (``runs.config_summary``);
    ``config_truncated`` says that something of it was left out. ``gpus``: see ``gpus.GpuIndex.entries``."""

    id: str
    status: str
    metrics: tuple[str, ...]
    listed: Mapping[str, tuple[str, ...]]
    last_step: float | None
    updated: float | None
    started: float | None
    attempts: int
    records: int
    points: int
    skipped: dict[str, int]
    streams: tuple[dict[str, Any], ...]
    host: str | None = None
    pid: int | None = None
    reason: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    config_truncated: bool = False
    # the GPUs the run uses (a system run: every GPU it samples, with the runs on it); None: none
    gpus: tuple[Mapping[str, Any], ...] | None = None

    @property
    def histograms(self) -> tuple[str, ...]:
        return self.listed.get("histograms", ())

    @property
    def vectors(self) -> tuple[str, ...]:
        return self.listed.get("vectors", ())

    @property
    def texts(self) -> tuple[str, ...]:
        return self.listed.get("texts", ())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "metrics": list(self.metrics),
            **{key: list(names) for key, names in self.listed.items()},
            "last_step": _num(self.last_step),
            "updated": self.updated,
            "started": self.started,
            "attempts": self.attempts,
            "records": self.records,
            "points": self.points,
            "skipped": dict(self.skipped),
            "streams": [dict(s) for s in self.streams],
            "host": self.host,
            "pid": self.pid,
            "config": dict(self.config),
            "config_truncated": self.config_truncated,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.gpus is not None:
            out["gpus"] = [dict(g) for g in self.gpus]
        return out


def _num(x: float | None) -> float | int | None:
    if x is None:
        return None
    # whole steps as integers, where that is exact (int(1e300) is too big for JSON encoders)
    return int(x) if float(x).is_integer() and abs(x) <= 2**53 else x


@dataclass(frozen=True)
class Delta:
    """New points of a run (full resolution) and the cursor just after them."""

    cursor: str
    series: dict[str, Series]


@dataclass(frozen=True)
class Reset:
    """What a client holds of a run is void; ``reason`` says why (``truncated``, ``replaced``,
    ``attempt``, ``cursor``, ``far``, ``gone``, ``lagging``)."""

    reason: str


@dataclass(frozen=True)
class RecordPage:
    """A page of raw records: ``raw`` is the JSON array of ``{"stream": ..., "record": ...}``
    objects, each record the very bytes of its log line (a line is kept only when it is valid JSON,
    so the array is too: nothing is decoded and encoded again to serve it)."""

    raw: bytes
    count: int
    cursor: str
    more: bool

    @property
    def records(self) -> list[dict[str, Any]]:
        return orjson.loads(self.raw)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Progress:
    loaded_bytes: int = 0
    total_bytes: int = 0
    done: bool = False


