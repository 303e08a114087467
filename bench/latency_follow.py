"""write() -> queryable latency of the follower, beside the settings a plain integration gets.

A separate writer process appends scalar records to 20 run folders at 1,000 records/s in total
(one os.write per record on an O_APPEND descriptor, as tailboard's writer does), stamping each
record with time.time() just before the write. The sidecar side is the real Follower feeding the
real Store; a record counts as queryable when the store's ingest() of the chunk holding it has
returned. Configurations, each for the same duration in one run:

- tailboard, inotify (watchfiles debounce 10 ms / step 5 ms, files with recent events stat-ed every 10 ms)
- tailboard, polling (hot files every 10 ms, the rest every 250 ms)
- watchfiles defaults (debounce 1600 ms / step 50 ms), what a plain awatch() loop gets
- 1 s stat polling, what `tail -F` does on NFS, CIFS, FUSE and overlayfs

Usage: python bench/latency_follow.py [--seconds 8] [--runs 20] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from tailboard.sidecar.follower import Follower
from tailboard.sidecar.store import Store


class Timed:
    """Forwards every call to the store and times each record when its ingest() returns."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.latencies: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def ingest(self, run_id: str, stream: str, data: bytes, start: int, end: int) -> None:
        self.store.ingest(run_id, stream, data, start, end)
        now = time.time()
        for line in data.splitlines():
            rec = orjson.loads(line)
            if rec.get("k") == "scalars":
                self.latencies.append(now - rec["t"])


def write_records(root: str, runs: int, rate: int, seconds: float, go: Any) -> None:
    fds = [os.open(os.path.join(root, f"run{i:02d}", "rank0.jsonl"),
                   os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) for i in range(runs)]
    go.wait()
    interval = 1.0 / rate
    start = time.monotonic()
    for n in range(int(rate * seconds)):
        due = start + n * interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        line = b'{"k":"scalars","step":%d,"t":%.6f,"v":{"loss":%d}}\n' % (n // runs, time.time(), n)
        os.write(fds[n % runs], line)
    for fd in fds:
        os.close(fd)


async def measure(name: str, opts: dict[str, Any], args: argparse.Namespace) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="tailboard-lat-") as tmp:
        for i in range(args.runs):
            run = Path(tmp) / f"run{i:02d}"
            run.mkdir()
            header = {"k": "header", "format": "tailboard", "version": 1, "run": run.name,
                      "host": "bench", "pid": 1, "rank": 0, "world_size": 1,
                      "start": time.time(), "argv": []}
            (run / "rank0.jsonl").write_bytes(orjson.dumps(header) + b"\n")
        store = Timed(Store(tmp))
        follower = Follower(tmp, store, **opts)
        await follower.start()
        ctx = mp.get_context("fork")
        go = ctx.Event()
        proc = ctx.Process(target=write_records, args=(tmp, args.runs, args.rate, args.seconds, go))
        proc.start()
        go.set()
        await asyncio.to_thread(proc.join)
        await asyncio.sleep(1.5)  # let the slowest configuration pick up the last records
        await follower.stop()
        expected = int(args.rate * args.seconds)
        if len(store.latencies) != expected:
            print(f"  {name}: got {len(store.latencies)} of {expected} records", file=sys.stderr)
        return store.latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--rate", type=int, default=1000, help="records per second in total")
    args = parser.parse_args()
    configs: list[tuple[str, dict[str, Any]]] = [
        ("tailboard inotify", {}),
        ("tailboard polling", {"poll": True}),
        ("watchfiles defaults", {"debounce_ms": 1600, "step_ms": 50, "inotify_hot": False}),
        ("1 s polling (tail -F)", {"poll": True, "poll_interval": 1.0, "hot_interval": 1.0}),
    ]
    print(f"{args.runs} runs, {args.rate} records/s in total, {args.seconds:g} s per configuration")
    print(f"{'configuration':<24}{'records':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    results = {}
    for name, opts in configs:
        lat = await measure(name, opts, args)
        results[name] = lat
        print(f"{name:<24}{len(lat):>9}{pct(lat, 0.5):>9.1f}{pct(lat, 0.99):>9.1f}"
              f"{max(lat) * 1000:>9.1f}", flush=True)
    base = results["tailboard inotify"]
    for name in ("watchfiles defaults", "1 s polling (tail -F)"):
        print(f"p99 ratio {name} / tailboard inotify: "
              f"{pct(results[name], 0.99) / pct(base, 0.99):.1f}x")
    slow, poll = results["1 s polling (tail -F)"], results["tailboard polling"]
    print(f"p99 ratio 1 s polling / tailboard polling: {pct(slow, 0.99) / pct(poll, 0.99):.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
