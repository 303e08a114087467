"""Catch-up ingest: the sidecar loading a log tree, beside TensorBoard loading the same data.

    .venv/bin/python bench/ingest.py [--runs 20 --tags 10 --steps 50000] [--tb-runs 2]

Generates --runs runs of --tags scalar metrics over --steps steps, as tailboard JSONL (one scalars
record per step) and as TensorBoard tfevents (SummaryWriter.add_scalar). Each loader runs in a fresh
subprocess, so its resident memory is its own:
- tailboard: the real Follower feeding the real Store, from start to "backlog loaded";
- TensorBoard: EventAccumulator keeping every scalar (size_guidance 0), on --tb-runs of the runs
  (it is slow), reported per point;
- TensorBoard's Rust loader (`tensorboard --load_fast=true`, the tensorboard-data-server binary) on
  all the runs, as tfevents holding one event per tag and step as SummaryWriter writes them (encoded
  here, since SummaryWriter would take many minutes for 10M points; the data CRC is left zero, which
  the Rust loader does not check by default): the time from starting it until its HTTP API shows
  every run's last step. It then serves 1,000 samples per tag;
- the floor: orjson parsing the same JSONL, line by line, without keeping anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from loopback import free_port


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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def _masked_crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for x in data:
        c = _CRC_TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    c ^= 0xFFFFFFFF
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", _masked_crc32c(head)) + data + b"\0\0\0\0"


def generate_tfevents(root: Path, runs: int, tags: int, steps: int) -> None:
    """tfevents as SummaryWriter.add_scalar writes them: one Event(wall_time, step, Summary(value(tag,
    simple_value))) per tag and step, framed as TFRecords."""
    names = [f"train/m{j}".encode() for j in range(tags)]
    for r in range(runs):
        folder = root / f"run{r:02d}"
        folder.mkdir(parents=True)
        keys = [b"\x0a" + _varint(len(n)) + n + b"\x15" for n in names]
        with open(folder / "events.out.tfevents.1700000000.bench", "wb") as f:
            f.write(_record(b"\x09" + struct.pack("<d", 1.7e9) + b"\x1a\x0dbrain.Event:2"))
            buf = []
            for i in range(steps):
                head = b"\x09" + struct.pack("<d", 1.7e9 + i * 0.1) + b"\x10" + _varint(i) + b"\x2a"
                for j, k in enumerate(keys):
                    value = b"\x0a" + _varint(len(k) + 4) + k + struct.pack("<f", math.sin(i / 100 + j) + r)
                    buf.append(_record(head + _varint(len(value)) + value))
                if len(buf) >= 50_000:
                    f.write(b"".join(buf))
                    buf = []
            f.write(b"".join(buf))


def child_rustboard(root: str, runs: int, tags: int, steps: int) -> dict[str, float]:
    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", root, "--load_fast=true",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = f"train/m{tags - 1}"
    waiting = {f"run{r:02d}" for r in range(runs)}
    try:
        deadline = time.monotonic() + 600
        while waiting and time.monotonic() < deadline:
            for run in sorted(waiting):
                url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={run}&tag={last}"
                try:
                    with urllib.request.urlopen(url, timeout=5) as res:
                        pts = json.loads(res.read())
                except (OSError, ValueError):
                    break
                if pts and pts[-1][1] == steps - 1:
                    waiting.discard(run)
                else:
                    break
            else:
                continue
            time.sleep(0.05)
        seconds = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(10)
    if waiting:
        raise RuntimeError(f"the Rust loader did not load {sorted(waiting)} in time")
    return {"seconds": seconds, "points": runs * tags * steps, "rss": 0}


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


def run_child(kind: str, root: Path, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(root), "--runs", str(args.runs),
                          "--tags", str(args.tags), "--steps", str(args.steps)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--steps", type=int, default=50_000)
    ap.add_argument("--tb-runs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-rustboard", action="store_true", help="do not run tensorboard --load_fast=true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child[0] == "rustboard":
            print(json.dumps(child_rustboard(args.child[1], args.runs, args.tags, args.steps)))
            return
        fn = {"tailboard": child_tailboard, "tensorboard": child_tensorboard, "orjson": child_orjson}[args.child[0]]
        print(json.dumps(fn(args.child[1])))
        return
    root = Path(tempfile.mkdtemp(prefix="tailboard-ingest-"))
    t0 = time.perf_counter()
    generate(root, args.runs, args.tags, args.steps, args.tb_runs)
    size = sum(f.stat().st_size for f in (root / "jsonl").rglob("*.jsonl"))
    print(f"generated {args.runs} runs x {args.tags} tags x {args.steps:,} steps ({size / 1e6:.0f} MB of JSONL) "
          f"in {time.perf_counter() - t0:.0f} s")
    if not args.skip_rustboard:
        t0 = time.perf_counter()
        generate_tfevents(root / "tbfast", args.runs, args.tags, args.steps)
        tb_size = sum(f.stat().st_size for f in (root / "tbfast").rglob("*tfevents*"))
        print(f"generated the same as tfevents for the Rust loader ({tb_size / 1e6:.0f} MB) in "
              f"{time.perf_counter() - t0:.0f} s")

    def median_of(kind: str, where: Path) -> dict[str, float]:
        results = [run_child(kind, where, args) for _ in range(args.repeats)]
        results.sort(key=lambda r: r["seconds"])
        return results[len(results) // 2]

    ours = median_of("tailboard", root / "jsonl")
    floor = median_of("orjson", root / "jsonl")
    tb = median_of("tensorboard", root / "tb") if args.tb_runs else None
    rust = None if args.skip_rustboard else median_of("rustboard", root / "tbfast")
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
    if rust:
        rust_rate = rust["points"] / rust["seconds"]
        print(f"{'TensorBoard --load_fast=true (keeps 1,000/tag)':<44} {rust['points']:>12,.0f} "
              f"{rust['seconds']:>8.2f} {rust_rate:>12,.0f}")
        print(f"tailboard / TensorBoard Rust loader: {rate / rust_rate:.2f}x the points per second")
    print(f"tailboard / orjson parse alone: {rate / (floor['points'] / floor['seconds']):.2f}x")


if __name__ == "__main__":
    main()
