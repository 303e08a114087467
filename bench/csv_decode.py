"""The CSV reader alone on a Lightning ``metrics.csv``: the working tree against a commit, in one run.

    .venv/bin/python bench/csv_decode.py [--commit HEAD] [--steps 90000] [--repeats 5] [--chunk 1048576]

The file is bench/ingest.py's csv run (``write_csv``: Lightning's CSV writer, a row of 10 train
metrics and the epoch every step, a row of 10 validation metrics every 50 steps, the other cells
empty); 90,000 steps hold 1,009,800 points (19.8 MB). Each reader decodes it as the follower
hands it over: ``--chunk`` bytes at a time, the bytes after the last whole record held for the
next chunk. The reader of the working tree and the one of ``--commit`` (from a ``git archive`` in
a temp folder, as ``bench/ingest.py --commit`` runs it) take turns in this process; the medians
of ``--repeats`` are printed as points/s of wall time and of CPU time, with the ratio. Both must
read the same points.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from ingest import decode_in_chunks, module_at, write_csv


def reader_class(commit: str | None, tmp: Path) -> tuple[Any, str]:
    """``CsvReader`` of the working tree (``commit`` None) or of a commit."""
    module, what = module_at(commit, tmp, "tailboard.sidecar.readers.csvlog")
    return module.CsvReader, what


def same(a: list[Any], b: list[Any]) -> bool:
    flat = [[(name, [x.tobytes() for x in cols]) for seg in segs for name, cols in seg.items()] for segs in a]
    return flat == [[(name, [x.tobytes() for x in cols]) for seg in segs for name, cols in seg.items()] for segs in b]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--steps", type=int, default=90_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, points = write_csv(Path(tmp), args.steps)
        data = path.read_bytes()
        new, _ = reader_class(None, Path(tmp) / "new")
        old, what = reader_class(args.commit, Path(tmp) / "old")
    print(f"{points:,} points, {len(data) / 1e6:.1f} MB, {args.chunk:,}-byte chunks; old: {what}")
    times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    results: dict[str, list[Any]] = {}
    for i in range(args.repeats):
        for name in ("old", "new") if i % 2 == 0 else ("new", "old"):
            results[name], wall, cpu = decode_in_chunks(old if name == "old" else new, data, args.chunk)
            times[name].append((wall, cpu))
    if not same(results["old"], results["new"]):
        sys.exit("the two readers read different points")
    med = {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}
    for k in ("old", "new"):
        wall, cpu = med[k]
        print(f"{k}: {wall:.3f} s wall, {points / wall / 1e6:.2f}M points/s; {cpu:.3f} s CPU, "
              f"{points / cpu / 1e6:.2f}M points/s")
    print(f"new / old: {med['old'][0] / med['new'][0]:.2f}x wall, {med['old'][1] / med['new'][1]:.2f}x CPU "
          f"(medians of {args.repeats})")


if __name__ == "__main__":
    main()
