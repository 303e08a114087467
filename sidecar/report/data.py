"""A report's data: the runs read from their folders, their series within a bound of points.

Each folder is read as ``tailboard top`` reads a log root, by the sidecar's own ``Follower``
catching up into a ``Store`` (every format the readers know, nothing outside the root), then
stopped. The series come out of the store: all of a metric's points while the total fits
``max_points``; beyond it, the budget is shared out (``shares``: a series smaller than its share
keeps every point, what it leaves goes to the others) and the bigger series are taken
M4-downsampled by the store (``downsample_m4``: each bucket of steps keeps its first, min, max and
last point, so spikes stay, and its first NaN), filled close to their share. Every series keeps at
least ``MIN_POINTS``. Values go out as the protocol spells them (``series_json``: NaN and the
infinities as strings, never null).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import time
from typing import Any

from ..cli import CliError
from ..follower import Follower
from ..protocol import series_json
from ..series import Series
from ..store import Store

__all__ = ["MIN_POINTS", "collect", "shares"]

#: Fewest points a series keeps, whatever the budget: the first, min, max and last of one bucket.
MIN_POINTS = 4
#: A downsampled series is asked again while it holds less than this share of its budget...
FILL = 0.9
#: ... once (each query of thousands of buckets costs about 0.1 s: downsample_m4 loops over them).
FILL_TRIES = 2


def shares(counts: list[int], budget: int) -> list[int]:
    """Points kept of each series (``counts``) within ``budget`` in all: every point of a series
    smaller than an equal share, what it leaves shared by the others; at least ``MIN_POINTS`` each."""
    out = [0] * len(counts)
    left, waiting = budget, len(counts)
    for i in sorted(range(len(counts)), key=counts.__getitem__):
        share = max(MIN_POINTS, left // waiting)
        out[i] = min(counts[i], share)
        left -= out[i]
        waiting -= 1
    return out


async def _read(root: str, *, poll: bool) -> tuple[Store, str]:
    """The tree under ``root`` read whole into a store, and what the follower found in it."""
    store = Store(root)
    follower = Follower(root, store, poll=poll)
    try:
        await follower.start()
    finally:
        await follower.stop()
    return store, follower.describe_files()


def _run_name(root: str, run_id: str, several: bool) -> str:
    base = os.path.basename(root.rstrip(os.sep)) or root
    if run_id == ".":
        return base
    return f"{base}/{run_id}" if several else run_id


def _downsampled(store: Store, run_id: str, metric: str, share: int) -> Series:
    """The metric M4-downsampled to at most ``share`` points, and close to it: a bucket keeps 4
    points or fewer (its first and last may be its min and max), 5 with a NaN, so the number of
    buckets is adjusted from what the first answers held (a few queries of the store's summary)."""
    best: Series | None = None
    points = share
    for _ in range(FILL_TRIES):
        s = store.series(run_id, metric, points=max(MIN_POINTS, points))
        if len(s) <= share and (best is None or len(s) > len(best)):
            best = s
        if share * FILL <= len(s) <= share:
            break
        # aim inside the band: the points a bucket keeps vary a little with their number
        points = int(points * share * (1 + FILL) / 2 / max(1, len(s)))
    return best if best is not None else s  # one bucket with a NaN: 5 points


def collect(paths: list[str], *, pattern: re.Pattern[str] | None = None, max_points: int = 500_000,
            title: str | None = None, poll: bool = True) -> dict[str, Any]:
    """The report's data from the log trees ``paths`` (see the module docstring): JSON-ready."""
    several = len(paths) > 1
    picked: list[tuple[Store, str, str, str, int]] = []  # store, run id, name, metric, points logged
    runs: list[dict[str, Any]] = []
    names: set[str] = set()
    every: set[str] = set()
    for path in paths:
        root = os.path.abspath(path)
        store, found = asyncio.run(_read(root, poll=poll))
        infos = store.runs()
        if not infos:
            raise CliError(f"no run in {path} (found {found}): give a run's folder or a log root holding JSON "
                           "lines, TensorBoard event files, CSV, JSON documents or text logs")
        for info in sorted(infos, key=lambda r: r.id):
            every.update(info.metrics)
            chosen = [m for m in info.metrics if pattern is None or pattern.search(m)]
            if not chosen:
                continue  # nothing of it is charted: no legend or table row for it either
            name = base = _run_name(root, info.id, several)
            for k in itertools.count(2):  # a run folder given twice, or as itself and in its root
                if name not in names:
                    break
                name = f"{base} ({k})"
            names.add(name)
            row = info.to_json()
            logged = 0
            for metric in chosen:
                # the count, from the store's summary: a 4-point answer says how many there are
                total = store.series(info.id, metric, points=MIN_POINTS).total
                picked.append((store, info.id, name, metric, total))
                logged += total
            runs.append({"id": name, "status": info.status, "last_step": row["last_step"], "started": info.started,
                         "config": row["config"], "points": logged, "kept": 0})
    if not picked:
        if pattern is None:
            raise CliError("no scalar metric in the runs given: a report charts scalars")
        some = ", ".join(sorted(every)[:8]) + (", ..." if len(every) > 8 else "")
        raise CliError(f"no metric matches --metrics {pattern.pattern!r} (the runs have {some})")
    kept = shares([p[4] for p in picked], max_points)
    charts: dict[str, list[dict[str, Any]]] = {}
    by_name = {r["id"]: r for r in runs}
    for (store, run_id, name, metric, total), share in zip(picked, kept):
        s = store.series(run_id, metric) if share >= total else _downsampled(store, run_id, metric, share)
        charts.setdefault(metric, []).append({"run": name, **series_json(s)})
        by_name[name]["kept"] += len(s)
    return {
        "version": 1,
        "title": title if title is not None else ", ".join(os.path.basename(os.path.abspath(p)) for p in paths),
        "created": time.time(),
        "max_points": max_points,
        "points": sum(r["kept"] for r in runs),
        "runs": runs,
        "charts": [{"metric": m, "series": charts[m]} for m in sorted(charts)],
    }
