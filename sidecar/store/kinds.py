"""Record kinds other than scalars, declared once each: how a record is held, listed and answered.

A run keeps one holder per kind (``new``); ``keep`` adds a record (with the stream's rank suffix on
its name), or refuses one it cannot serve and says why (the stream counts the reason as a skipped
record); ``names`` lists what the run list shows; ``answer`` is what the kind's route returns,
within a record limit. Eviction drops the holders; a re-read fills them again through ``keep``.
Adding a record kind is one class (or one instance) here, added to ``KINDS``; the bytes of images
(blobs, not records) are ``images``'s.

Histograms (``Histograms``) have bins of equal width between ``lo`` and ``hi`` (the writer's), or
the bins' own bounds in ``edges`` (TensorBoard's buckets are not of equal width): ``len(counts) + 1``
finite numbers, none below the one before it (a bin of width zero is a constant tensor's). A record
whose ``edges`` are not that is refused (``bad_edges``): drawing its counts over bins it does not
have would show a distribution the run never logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tailboard.format import K_HIST, K_TEXT, K_VECTOR, decode_float
from tailboard.values import K_IMAGE

from . import images

__all__ = ["BAD_EDGES", "KINDS", "Histograms", "ImageRecords", "NamedRecords", "RecordKind", "TextRecords",
           "at_or_before", "edges_ok", "thin"]

Record = dict[str, Any]

#: The skip reason of a histogram record whose ``edges`` cannot be the bounds of its bins.
BAD_EDGES = "bad_edges"


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

    def keep(self, held: Any, rec: Record, suffix: str) -> str | None:
        """Hold ``rec``; or, for a record the kind cannot serve, hold nothing and return why (the
        name of a skip counter)."""
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

    def keep(self, held: dict[str, list[Record]], rec: Record, suffix: str) -> str | None:
        held.setdefault(str(rec.get("name", "")) + suffix, []).append(rec)
        return None

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
            recs = at_or_before(recs, step)
        recs, total = thin(recs, limit)
        return {"total": total, **{key: [r.get(f) for r in recs] for key, f in self.columns}}


def at_or_before(recs: list[Record], step: float) -> list[Record]:
    """The last record (in arrival order) at or before ``step``, as a list of one or none; a record
    without a step counts as step 0."""
    return [r for r in recs if (decode_float(r.get("step")) or 0) <= step][-1:]


def edges_ok(rec: Record) -> bool:
    """Whether a histogram record's ``edges``, when it has any, bound its bins (module docstring).
    No bins and no edges (an empty histogram) is fine too."""
    edges, counts = rec.get("edges"), rec.get("counts")
    if edges is None:
        return True
    if type(edges) is not list or type(counts) is not list:
        return False
    if not edges and not counts:
        return True
    if len(edges) != len(counts) + 1 or not all(type(e) is float or type(e) is int for e in edges):
        return False
    try:
        bounds = np.asarray(edges, dtype=np.float64)
    except OverflowError:  # an integer past the largest float: not a bound either
        return False
    return bool(np.isfinite(bounds).all() and (np.diff(bounds) >= 0).all())


@dataclass(frozen=True)
class Histograms(NamedRecords):
    """Histogram records, each with equal-width bins or with its bins' ``edges`` (served as
    ``None`` for the former)."""

    kind: str = K_HIST
    listed_as: str = "histograms"
    columns: tuple[tuple[str, str], ...] = (
        ("steps", "step"), ("times", "t"), ("lo", "lo"), ("hi", "hi"), ("counts", "counts"), ("edges", "edges"))

    def keep(self, held: dict[str, list[Record]], rec: Record, suffix: str) -> str | None:
        if not edges_ok(rec):
            return BAD_EDGES
        return super().keep(held, rec, suffix)


@dataclass(frozen=True)
class TextRecords(RecordKind):
    """Text records of every name in one list: read, not plotted, so a limit keeps the latest."""

    kind: str = K_TEXT
    listed_as: str = "texts"

    def new(self) -> list[Record]:
        return []

    def keep(self, held: list[Record], rec: Record, suffix: str) -> str | None:
        held.append(rec)
        return None

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


_IMAGE_FIELDS = ("step", "t", "path", "w", "h", "c", "bytes")


def _size(x: Any) -> bool:
    return type(x) is int and 0 < x < 1 << 31


@dataclass(frozen=True)
class ImageRecords(RecordKind):
    """Image records per name (``images.py``: where their bytes are). ``step=S`` answers the
    latest at or before S."""

    kind: str = K_IMAGE
    listed_as: str = "images"

    def new(self) -> images.ImagesHeld:
        return images.ImagesHeld()

    def keep(self, held: images.ImagesHeld, rec: Record, suffix: str) -> str | None:
        if not (_size(rec.get("w")) and _size(rec.get("h")) and rec.get("c") in (1, 2, 3, 4)):
            return images.BAD_IMAGE
        kept = {k: rec.get(k) for k in _IMAGE_FIELDS}
        if "png" in rec:  # an image of an event file: its bytes are held here
            blob = held.hold_base64(rec["png"])
            if blob is None:
                return images.BAD_IMAGE
            kept["path"], kept["bytes"] = blob
        elif not images.path_ok(kept["path"]):
            return images.BAD_IMAGE
        held.by_name.setdefault(str(rec.get("name", "")) + suffix, []).append(kept)
        return None

    def names(self, held: images.ImagesHeld) -> tuple[str, ...]:
        return tuple(sorted(held.by_name))

    def answer(self, held: images.ImagesHeld, name: str | None, *, limit: int | None = None, **options: Any) -> dict[str, Any]:
        recs = held.by_name.get(name or "")
        if recs is None:
            raise KeyError(f"unknown image {name!r}")
        step = options.get("step")
        if step is not None:
            recs = at_or_before(recs, step)
        recs, total = thin(recs, limit)
        out: dict[str, Any] = {"total": total}
        for key, f in (("steps", "step"), ("times", "t"), ("paths", "path"), ("widths", "w"),
                       ("heights", "h"), ("channels", "c"), ("bytes", "bytes")):
            out[key] = [r.get(f) for r in recs]
        return out


#: Every kind the store keeps besides scalars and the run's own records (header, config, end).
KINDS: dict[str, RecordKind] = {
    k.kind: k
    for k in (
        Histograms(),
        NamedRecords(K_VECTOR, "vectors", (("steps", "step"), ("times", "t"), ("values", "v"))),
        TextRecords(),
        ImageRecords(),
    )
}
