"""The JSON-lines reader alone on another program's lines whose fields vary line by line: the
working tree against a commit, in one run.

    .venv/bin/python bench/jsonl_mixed.py [--commit HEAD] [--lines 100000] [--repeats 5] [--chunk 1048576]

Files of --lines lines each, written as Python's json.dumps writes a dict:
- half: a step and a random half of 10 float metrics (a logger writing only the metrics computed
  at that step; the names in one order), so no layout repeats enough to be read as a template;
- half, shuffled: the same with each line's names in a random order;
- half, words: the same with names of words (loss, acc...): its 252 layouts are told apart by
  their text, each of some 30 lines in a chunk, where m0..m9 look alike once digits are taken out;
- 8 layouts: each line one of 8 fixed subsets of the 10 metrics, at random;
- one layout: bench/ingest.py's foreign file (``write_foreign``: an iter and 20 metrics);
- mmcv: train lines (mode, epoch, iter restarting each epoch, lr, time, data_time, memory, losses)
  and a val line (mode, epoch, iter, accuracies) per epoch of 50.
Each reader decodes a file as the follower hands it over: ``--chunk`` bytes at a time, the bytes
after the last whole line held for the next chunk, the state carried. The reader of the working
tree and the one of ``--commit`` (a ``git archive`` in a temp folder, as bench/csv_decode.py does)
take turns in this process; the medians of ``--repeats`` CPU times (time.process_time) are printed
as points per CPU second, with the ratio. Both must read the same points.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest import decode_in_chunks, module_at, write_foreign

METRICS = [f"m{j}" for j in range(10)]
WORDS = ["loss", "acc", "lr", "grad_norm", "loss_cls", "loss_box", "top_x", "recall", "prec", "score"]


def reader_class(commit: str | None, tmp: Path) -> tuple[Any, str]:
    """``JsonlReader`` of the working tree (``commit`` None) or of a commit."""
    module, what = module_at(commit, tmp, "tailboard.sidecar.readers.jsonl")
    return module.JsonlReader, what


def write_half(folder: Path, lines: int, shuffled: bool = False, metrics: list[str] = METRICS) -> Path:
    rng = random.Random(0)
    path = folder / f"half_{shuffled}_{metrics[0]}.jsonl"
    with open(path, "w") as f:
        for i in range(lines):
            names = rng.sample(metrics, 5)
            if not shuffled:
                names.sort(key=metrics.index)
            f.write(json.dumps({"step": i, **{n: rng.random() for n in names}}) + "\n")
    return path


def write_layouts(folder: Path, lines: int) -> Path:
    rng = random.Random(1)
    layouts = [sorted(rng.sample(METRICS, rng.randint(3, 8)), key=METRICS.index) for _ in range(8)]
    path = folder / "layouts.jsonl"
    with open(path, "w") as f:
        for i in range(lines):
            f.write(json.dumps({"step": i, **{n: rng.random() for n in rng.choice(layouts)}}) + "\n")
    return path


def write_mmcv(folder: Path, lines: int) -> Path:
    rng = random.Random(2)
    path = folder / "mmcv.jsonl"
    with open(path, "w") as f:
        for i in range(lines):
            epoch, at = divmod(i, 50)
            if at == 49:
                rec = {"mode": "val", "epoch": epoch + 1, "iter": 2450, "lr": 0.01,
                       "accuracy_top-1": rng.random() * 100, "accuracy_top-5": rng.random() * 100}
            else:
                rec = {"mode": "train", "epoch": epoch + 1, "iter": 50 * (at + 1), "lr": 0.01 * rng.random(),
                       "memory": 3000 + rng.randint(0, 100), "data_time": rng.random() / 10, "loss": rng.random(),
                       "loss_cls": rng.random(), "loss_bbox": rng.random(), "time": 0.3 + rng.random() / 10}
            f.write(json.dumps(rec) + "\n")
    return path


def same(a: list[Any], b: list[Any]) -> bool:
    """The same points in every chunk's segments, bit for bit (the order of the series aside: older
    commits listed them in the order of their templates, not of the lines)."""
    def flat(x: list[Any]) -> list[Any]:
        return [[sorted((name, [c.tobytes() for c in cols]) for name, cols in seg.items()) for seg in segs] for segs in x]
    return flat(a) == flat(b)


def points(segments: list[Any]) -> int:
    return sum(len(cols[1]) for segs in segments for seg in segs for cols in seg.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--lines", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        writers: dict[str, Callable[[], Path]] = {
            "half": lambda: write_half(folder, args.lines),
            "half, shuffled": lambda: write_half(folder, args.lines, shuffled=True),
            "half, words": lambda: write_half(folder, args.lines, metrics=WORDS),
            "8 layouts": lambda: write_layouts(folder, args.lines),
            "one layout": lambda: write_foreign(folder, args.lines)[0],
            "mmcv": lambda: write_mmcv(folder, args.lines),
        }
        files = {name: write().read_bytes() for name, write in writers.items()}
        new, _ = reader_class(None, folder / "new")
        old, what = reader_class(args.commit, folder / "old")
    print(f"old: {what}; {args.chunk:,}-byte chunks, medians of {args.repeats} (CPU seconds)")
    print(f"{'file':<16}{'MB':>6}{'points':>11}{'old M/s':>9}{'new M/s':>9}{'new/old':>9}")
    for name, data in files.items():
        times: dict[str, list[float]] = {"old": [], "new": []}
        results: dict[str, list[Any]] = {}
        for i in range(args.repeats):
            for which in ("old", "new") if i % 2 == 0 else ("new", "old"):
                results[which], _, cpu = decode_in_chunks(old if which == "old" else new, data, args.chunk)
                times[which].append(cpu)
        if not same(results["old"], results["new"]):
            sys.exit(f"{name}: the two readers read different points")
        n = points(results["new"])
        old_s, new_s = statistics.median(times["old"]), statistics.median(times["new"])
        print(f"{name:<16}{len(data) / 1e6:>6.1f}{n:>11,}{n / old_s / 1e6:>9.2f}{n / new_s / 1e6:>9.2f}"
              f"{old_s / new_s:>8.2f}x")


if __name__ == "__main__":
    main()
