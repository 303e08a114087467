"""Catch-up ingest: the sidecar loading a log tree, beside TensorBoard loading the same data.

    .venv/bin/python bench/ingest.py [--runs 20 --tags 10 --steps 50000] [--tb-runs 2]

Generates --runs runs of --tags scalar metrics over --steps steps, as tailboard JSONL (one scalars
record per step) and as TensorBoard tfevents (SummaryWriter.add_scalar). Each loader runs in a fresh
subprocess, so its resident memory is its own:
- tailboard: the real Follower feeding the real Store, from start to "backlog loaded";
- TensorBoard: EventAccumulator keeping every scalar (size_guidance 0), on --tb-runs of the runs
  (it is slow), reported per point;
- the floor: orjson parsing the same JSONL, line by line, without keeping anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def generate(root: Path, runs: int, tags: int, steps: int, tb_runs: int) -> None:
    names = [f"train/m{j}" for j in range(tags)]
    for r in range(runs):
        folder = root / "jsonl" / f"run{r:02d}"
        folder.mkdir(parents=True)
        with open(folder / "rank0.jsonl", "wb") as f:
            f.write(b'{"k":"header","format":"tailboard","version":1,"run":"r","host":"h","pid":1,"rank":0,'
                    b'"world_size":1,"start":1.7e9,"argv":[]}\n')
            buf = []
            for i in range(steps):
                vals = ",".join(f'"{n}":{math.sin(i / 100 + j) + r:.6f}' for j, n in enumerate(names))
                buf.append(f'{{"k":"scalars","step":{i},"t":{1.7e9 + i * 0.1:.3f},"v":{{{vals}}}}}\n')
                if len(buf) == 20_000:
                    f.write("".join(buf).encode())
                    buf = []
            f.write("".join(buf).encode())
    from torch.utils.tensorboard import SummaryWriter

    for r in range(tb_runs):
        w = SummaryWriter(str(root / "tb" / f"run{r:02d}"), max_queue=10_000, flush_secs=3600)
        for i in range(steps):
            for j, n in enumerate(names):
                w.add_scalar(n, math.sin(i / 100 + j) + r, i, walltime=1.7e9 + i * 0.1)
        w.close()


def child_tailboard(root: str) -> dict[str, float]:
    from tailboard.sidecar.follower import Follower
    from tailboard.sidecar.store import Store

    base = rss_bytes()
    store = Store(root)
    follower = Follower(root, store)

    async def load() -> float:
        t0 = time.perf_counter()
        await follower.start()
        dt = time.perf_counter() - t0
        await follower.stop()
        return dt

    dt = asyncio.run(load())
    points = sum(r.points for r in store.runs())
    return {"seconds": dt, "points": points, "rss": rss_bytes() - base}


def child_tensorboard(root: str) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = rss_bytes()
    t0 = time.perf_counter()
    points = 0
    keep = []
    for run in sorted(os.listdir(root)):
        acc = EventAccumulator(os.path.join(root, run), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            points += len(acc.Scalars(tag))
        keep.append(acc)
    return {"seconds": time.perf_counter() - t0, "points": points, "rss": rss_bytes() - base}


def child_orjson(root: str) -> dict[str, float]:
    import orjson

    t0 = time.perf_counter()
    points = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(dirpath, name), "rb") as f:
                for line in f:
                    obj = orjson.loads(line)
                    v = obj.get("v")
                    if v:
                        points += len(v)
    return {"seconds": time.perf_counter() - t0, "points": points, "rss": 0}


def run_child(kind: str, root: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(root)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--tb-runs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        fn = {"tailboard": child_tailboard, "tensorboard": child_tensorboard, "orjson": child_orjson}[args.child[0]]
        print(json.dumps(fn(args.child[1])))
        return
    root = Path(tempfile.mkdtemp(prefix="tailboard-ingest-"))
    t0 = time.perf_counter()
    generate(root, args.runs, args.tags, args.steps, args.tb_runs)
    size = sum(f.stat().st_size for f in (root / "jsonl").rglob("*.jsonl"))
    print(f"generated {args.runs} runs x {args.tags} tags x {args.steps:,} steps ({size / 1e6:.0f} MB of JSONL) "
          f"in {time.perf_counter() - t0:.0f} s")

    def median_of(kind: str, where: Path) -> dict[str, float]:
        results = [run_child(kind, where) for _ in range(args.repeats)]
        results.sort(key=lambda r: r["seconds"])
        return results[len(results) // 2]

    ours = median_of("tailboard", root / "jsonl")
    floor = median_of("orjson", root / "jsonl")
    tb = median_of("tensorboard", root / "tb") if args.tb_runs else None
    rate = ours["points"] / ours["seconds"]
    print(f"{'loader':<44} {'points':>12} {'seconds':>8} {'points/s':>12} {'bytes/pt':>9}")
    print(f"{'tailboard Follower + Store (all kept)':<44} {ours['points']:>12,.0f} {ours['seconds']:>8.2f} "
          f"{rate:>12,.0f} {ours['rss'] / ours['points']:>9.1f}")
    print(f"{'orjson.loads per line, nothing kept':<44} {floor['points']:>12,.0f} {floor['seconds']:>8.2f} "
          f"{floor['points'] / floor['seconds']:>12,.0f}")
    if tb:
        tb_rate = tb["points"] / tb["seconds"]
        print(f"{'TensorBoard EventAccumulator (all kept)':<44} {tb['points']:>12,.0f} {tb['seconds']:>8.2f} "
              f"{tb_rate:>12,.0f} {tb['rss'] / tb['points']:>9.1f}")
        print(f"\ntailboard / EventAccumulator: {rate / tb_rate:.0f}x the points per second")
    print(f"tailboard / orjson parse alone: {rate / (floor['points'] / floor['seconds']):.2f}x")


if __name__ == "__main__":
    main()
