"""TensorBoard event files: tailboard's tfevents reader beside TensorBoard's own loaders, same files.

    .venv/bin/python bench/tfevents.py [--tags 10 --steps 20000 --runs 20] [--skip-rustboard]

torch's SummaryWriter.add_scalar writes --tags scalars over --steps steps into run00 (one event per
tag and step, as it always does); the file is copied into --runs runs. Each loader then runs in a
fresh process, the median of --repeats is printed:

- tailboard: ``TfEventsReader`` on every run as the follower feeds a reader: 1 MiB reads,
  ``complete`` then ``decode`` with the state carried, every point kept, in one process; the same
  in one process per core, each on its share of the runs (as the catch-up parses in a worker per
  core), timed from starting them; and ``decode`` alone on whole files;
- TensorBoard's EventAccumulator keeping every scalar (size_guidance 0), on run00 only (it is slow);
- TensorBoard's Rust loader (``tensorboard --load_fast=true``): from its start until its HTTP API
  shows every run's last step, measured as bench/ingest.py does. It keeps 1,000 points per tag.

This is the reader alone; bench/ingest.py loads the same kind of files through the Follower and the
Store, as ``tailboard serve`` does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

READ_BYTES = 1 << 20


def generate(root: Path, runs: int, tags: int, steps: int) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    first = root / "run00"
    w = SummaryWriter(str(first), max_queue=10_000, flush_secs=3600)
    names = [f"train/m{j}" for j in range(tags)]
    for i in range(steps):
        for j, name in enumerate(names):
            w.add_scalar(name, math.sin(i / 100 + j), i, walltime=1.7e9 + i * 0.1)
    w.close()
    (src,) = first.glob("events.out.tfevents.*")
    for r in range(1, runs):
        (root / f"run{r:02d}").mkdir()
        shutil.copyfile(src, root / f"run{r:02d}" / src.name)
    return src


def files(root: str) -> list[str]:
    return sorted(str(p) for p in Path(root).rglob("events.out.tfevents.*"))


def child_follow(root: str, part: int = 0, parts: int = 1) -> dict[str, float]:
    """complete() + decode() over 1 MiB reads, as a tail hands them out (of every ``parts``-th
    file from the ``part``-th)."""
    from tailboard.sidecar.readers.tfevents import TfEventsReader

    reader = TfEventsReader()
    paths = files(root)[part::parts]
    t0 = time.perf_counter()
    points = skipped = 0
    kept = []
    for path in paths:
        state = reader.new_state()
        held = b""
        with open(path, "rb") as f:
            while True:
                new = f.read(READ_BYTES)
                if not new:
                    break
                buf = held + new if held else new
                n = reader.complete(buf)
                parsed, state = reader.decode(buf[:n], state, now=0.0)
                held = buf[n:]
                points += sum(s.shape[0] for seg in parsed.segments for s, _, _ in seg.values())
                skipped += sum(parsed.skipped.values())
                kept.append(parsed.segments)
    return {"seconds": time.perf_counter() - t0, "points": points, "skipped": skipped,
            "bytes": sum(os.path.getsize(p) for p in paths)}


def child_follow_parallel(root: str) -> dict[str, float]:
    """child_follow in one process per core, each on its share of the files, as the sidecar's
    catch-up parses in a worker per core; wall time from starting them until both are done."""
    parts = os.cpu_count() or 1
    t0 = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, __file__, "--child", f"follow-part:{i}:{parts}", root],
                              stdout=subprocess.PIPE, text=True) for i in range(parts)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "points": sum(r["points"] for r in results),
            "skipped": sum(r["skipped"] for r in results), "bytes": sum(r["bytes"] for r in results)}


def child_decode(root: str) -> dict[str, float]:
    """decode() alone on whole files (read beforehand)."""
    from tailboard.sidecar.readers.tfevents import TfEventsReader

    reader = TfEventsReader()
    blobs = [Path(p).read_bytes() for p in files(root)]
    t0 = time.perf_counter()
    points = 0
    kept = []
    for data in blobs:
        parsed, _ = reader.decode(data, reader.new_state(), now=0.0)
        points += sum(s.shape[0] for seg in parsed.segments for s, _, _ in seg.values())
        kept.append(parsed.segments)
    return {"seconds": time.perf_counter() - t0, "points": points, "skipped": 0, "bytes": sum(map(len, blobs))}


def child_tensorboard(root: str) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = os.path.join(root, "run00")
    t0 = time.perf_counter()
    acc = EventAccumulator(path, size_guidance={"scalars": 0})
    acc.Reload()
    points = sum(len(acc.Scalars(tag)) for tag in acc.Tags()["scalars"])
    return {"seconds": time.perf_counter() - t0, "points": points, "skipped": 0, "bytes": 0}


def child_rustboard(root: str, runs: int, tags: int, steps: int) -> dict[str, float]:
    sys.path.insert(0, str(Path(__file__).parent))
    from ingest import child_rustboard as measure  # the same measure as the catch-up bench

    spec = {"runs": runs, "tags": tags, "steps": steps, "points": runs * tags * steps}
    return {**measure(root, spec), "skipped": 0, "bytes": 0}


def run_child(kind: str, root: Path, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(root), "--runs", str(args.runs),
                          "--tags", str(args.tags), "--steps", str(args.steps)],
                         capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-rustboard", action="store_true", help="do not run tensorboard --load_fast=true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, root = args.child
        if kind == "rustboard":
            result = child_rustboard(root, args.runs, args.tags, args.steps)
        elif kind.startswith("follow-part:"):
            _, part, parts = kind.split(":")
            result = child_follow(root, int(part), int(parts))
        else:
            result = {"follow": child_follow, "follow-parallel": child_follow_parallel, "decode": child_decode,
                      "tensorboard": child_tensorboard}[kind](root)
        print(json.dumps(result))
        return
    root = Path(tempfile.mkdtemp(prefix="tailboard-tfevents-"))
    try:
        t0 = time.perf_counter()
        src = generate(root, args.runs, args.tags, args.steps)
        size = src.stat().st_size
        print(f"SummaryWriter wrote {args.tags} tags x {args.steps:,} steps ({size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - t0:.0f} s; copied into {args.runs} runs ({args.runs * size / 1e6:.0f} MB)")

        def median_of(kind: str) -> dict[str, float]:
            results = sorted((run_child(kind, root, args) for _ in range(args.repeats)), key=lambda r: r["seconds"])
            return results[len(results) // 2]

        cores = os.cpu_count() or 1
        rows = [("tailboard TfEventsReader, 1 MiB reads (all kept)", median_of("follow")),
                ("tailboard TfEventsReader.decode, whole files", median_of("decode")),
                (f"tailboard, 1 MiB reads, {cores} processes", median_of("follow-parallel")),
                ("TensorBoard EventAccumulator (all kept, 1 run)", median_of("tensorboard"))]
        if not args.skip_rustboard:
            rows.append(("TensorBoard --load_fast=true (keeps 1,000/tag)", median_of("rustboard")))
        want = args.runs * args.tags * args.steps
        assert rows[0][1]["points"] == rows[1][1]["points"] == want and rows[0][1]["skipped"] == 0, rows
        print(f"{'loader':<50} {'points':>12} {'seconds':>8} {'points/s':>12} {'MB/s':>7}")
        for label, r in rows:
            mbs = f"{r['bytes'] / r['seconds'] / 1e6:>7.0f}" if r["bytes"] else f"{'':>7}"
            print(f"{label:<50} {r['points']:>12,.0f} {r['seconds']:>8.2f} {r['points'] / r['seconds']:>12,.0f} {mbs}")
        rate = rows[0][1]["points"] / rows[0][1]["seconds"]
        rate_all = rows[2][1]["points"] / rows[2][1]["seconds"]
        for label, r in rows[3:]:
            theirs = r["points"] / r["seconds"]
            print(f"tailboard (1 MiB reads) / {label.split(' (')[0]}: {rate / theirs:.2f}x on one core, "
                  f"{rate_all / theirs:.2f}x on {cores}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
