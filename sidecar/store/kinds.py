"""Record kinds other than scalars, declared once each: how a record is held, listed and answered.

A run keeps one holder per kind (``new``); ``keep`` adds a record (with the stream's rank suffix on
its name); ``names`` lists what the run list shows; ``answer`` is what the kind's route returns,
within a record limit. Eviction drops the holders; a re-read fills them again through ``keep``.
Adding a record kind is one class (or one instance) here, added to ``KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tailboard.format import K_HIST, K_TEXT, K_VECTOR, decode_float

__all__ = ["KINDS", "NamedRecords", "RecordKind", "TextRecords", "thin"]

Record = dict[str, Any]


def thin(recs: list[Record], limit: int | None) -> tuple[list[Record], int]:
    """At most ``limit`` records, evenly spaced, the first and the latest always included
    (deterministic); and how many there were."""
    n = len(recs)
    if limit is None or n <= limit:
        return recs, n
    if limit < 2:
        return recs[n - limit :], n  # room for the latest only
    keep = np.unique(np.linspace(0, n - 1, limit).round().astype(np.int64))
    return [recs[i] for i in keep.tolist()], n


class RecordKind:
    """The interface every kind implements (see the module docstring)."""

    kind: str  # the record's "k"
    listed_as: str  # its key in the run list (/api/runs)

    def new(self) -> Any:
        raise NotImplementedError

    def keep(self, held: Any, rec: Record, suffix: str) -> None:
        raise NotImplementedError

    def names(self, held: Any) -> tuple[str, ...]:
        raise NotImplementedError

    def answer(self, held: Any, name: str | None, *, limit: int | None = None, **options: Any) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class NamedRecords(RecordKind):
    """Records kept per name, in arrival order (histograms, vectors); ``columns`` maps each answer
    key to the record field it comes from. ``step=S`` answers the latest record at or before S."""

    kind: str
    listed_as: str
    columns: tuple[tuple[str, str], ...]

    def new(self) -> dict[str, list[Record]]:
        return {}

    def keep(self, held: dict[str, list[Record]], rec: Record, suffix: str) -> None:
        held.setdefault(str(rec.get("name", "")) + suffix, []).append(rec)

    def names(self, held: dict[str, list[Record]]) -> tuple[str, ...]:
        return tuple(sorted(held))

    def answer(
        self, held: dict[str, list[Record]], name: str | None, *, limit: int | None = None, **options: Any
    ) -> dict[str, Any]:
        recs = held.get(name or "")
        if recs is None:
            raise KeyError(f"unknown {self.kind} {name!r}")
        step = options.get("step")
        if step is not None:
            recs = [r for r in recs if (decode_float(r.get("step")) or 0) <= step][-1:]
        recs, total = thin(recs, limit)
        return {"total": total, **{key: [r.get(f) for r in recs] for key, f in self.columns}}


@dataclass(frozen=True)
class TextRecords(RecordKind):
    """Text records of every name in one list: read, not plotted, so a limit keeps the latest."""

    kind: str = K_TEXT
    listed_as: str = "texts"

    def new(self) -> list[Record]:
        return []

    def keep(self, held: list[Record], rec: Record, suffix: str) -> None:
        held.append(rec)

    def names(self, held: list[Record]) -> tuple[str, ...]:
        return tuple(sorted({str(t.get("name", "")) for t in held}))

    def answer(self, held: list[Record], name: str | None, *, limit: int | None = None, **options: Any) -> dict[str, Any]:
        recs = [r for r in held if name is None or r.get("name") == name]
        total = len(recs)
        if limit is not None and total > limit:
            recs = recs[-limit:]
        return {
            "total": total,
            "steps": [r.get("step") for r in recs],
            "times": [r.get("t") for r in recs],
            "names": [r.get("name") for r in recs],
            "texts": [r.get("text") for r in recs],
        }


#: Every kind the store keeps besides scalars and the run's own records (header, config, end).
KINDS: dict[str, RecordKind] = {
    k.kind: k
    for k in (
        NamedRecords(K_HIST, "histograms",
                     (("steps", "step"), ("times", "t"), ("lo", "lo"), ("hi", "hi"), ("counts", "counts"))),
        NamedRecords(K_VECTOR, "vectors", (("steps", "step"), ("times", "t"), ("values", "v"))),
        TextRecords(),
    )
}
