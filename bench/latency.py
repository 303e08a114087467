"""Append-to-browser latency through the whole sidecar, beside TensorBoard's time-to-visible.

    .venv/bin/python bench/latency.py [--seconds 10] [--runs 20] [--rate 1000] [--skip-tensorboard]

tailboard: a trainer process appends scalar records to --runs run folders at --rate records/s in
total (tailboard's own writer; each record's `t` is the wall time just before its write); the sidecar
runs as `tailboard serve` in its own process; a real WebSocket client (this process) subscribed to
every run stamps each point's arrival. Loopback only.
TensorBoard: the same machine runs `tensorboard --logdir` (default loader) on 127.0.0.1; a scalar is
written with SummaryWriter and flushed, and its HTTP API is polled until the point shows up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import tailboard
from loopback import free_port, messages
from websockets.asyncio.client import connect


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def trainer(root: str, n_runs: int, rate: float, go: Any, stop: Any) -> None:
    """A trainer process: tailboard's writer appending to n_runs runs at `rate` records/s in total."""
    runs = [tailboard.init(Path(root) / f"run{i:02d}") for i in range(n_runs)]
    for r in runs:
        r.log({"x": 0.0}, step=0)
    go.wait()
    step, period, nxt = 1, 1.0 / rate, time.perf_counter()
    while not stop.is_set():
        runs[step % n_runs].log({"x": float(step)}, step=step)
        step += 1
        nxt += period
        delay = nxt - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    for r in runs:
        r.finish()


def start_sidecar(root: Path, port: int, n_runs: int, poll: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tailboard.sidecar", "serve", str(root), "--port", str(port), "--token", "bench"]
    sidecar = subprocess.Popen(cmd + (["--poll"] if poll else []), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:  # up, and every run found
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs?token=bench", timeout=1) as res:
                if len(json.loads(res.read())["runs"]) >= n_runs:
                    return sidecar
        except OSError:
            pass
        if time.monotonic() > deadline:
            sidecar.kill()
            raise RuntimeError("the sidecar did not come up")
        time.sleep(0.1)


async def client(port: int, names: list[str], seconds: float, go: Any) -> list[float]:
    latencies: list[float] = []
    async with connect(f"ws://127.0.0.1:{port}/ws?token=bench", max_size=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "runs": names, "points": 100}))
        t_end = time.monotonic() + seconds + 1.0
        async for now, msg in messages(ws, lambda: time.monotonic() < t_end):
            if msg["type"] == "snapshot" and not go.is_set():
                go.set()
            if msg["type"] == "delta":
                latencies.extend(now - t for t in msg["series"]["x"]["times"])
    return latencies


def measure_tailboard(root: Path, seconds: float, n_runs: int, rate: float, poll: bool) -> list[float]:
    """The trainer, the sidecar (`tailboard serve`) and this client are three processes, as deployed."""
    root.mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    go, stop = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=trainer, args=(str(root), n_runs, rate, go, stop), daemon=True)
    writer.start()
    port = free_port()
    sidecar = None
    try:
        sidecar = start_sidecar(root, port, n_runs, poll)
        return asyncio.run(client(port, [f"run{i:02d}" for i in range(n_runs)], seconds, go))
    finally:
        stop.set()
        go.set()
        writer.join(10)
        if sidecar is not None:
            sidecar.terminate()
            sidecar.wait(10)



def measure_tensorboard(root: Path, samples: int) -> list[float]:
    from torch.utils.tensorboard import SummaryWriter

    logdir = root / "tb"
    w = SummaryWriter(str(logdir / "run"))
    w.add_scalar("x", 0.0, 0)
    w.flush()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=run&tag=x"

    def steps() -> list[int]:
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                return [int(p[1]) for p in json.loads(res.read())]
        except OSError:
            return []
        except ValueError:
            return []

    out = []
    try:
        deadline = time.monotonic() + 60
        while 0 not in steps() and time.monotonic() < deadline:
            time.sleep(0.2)
        for k in range(1, samples + 1):
            w.add_scalar("x", float(k), k)
            w.flush()
            t0 = time.monotonic()
            while k not in steps():
                if time.monotonic() - t0 > 30:
                    break
                time.sleep(0.05)
            out.append(time.monotonic() - t0)
    finally:
        proc.terminate()
        proc.wait(10)
        w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--tb-samples", type=int, default=5)
    ap.add_argument("--skip-tensorboard", action="store_true")
    ap.add_argument("--poll", action="store_true", help="the follower polls instead of using inotify")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tailboard-latency-"))
    lat = measure_tailboard(root / "ours", args.seconds, args.runs, args.rate, args.poll)
    ms = [x * 1000 for x in lat]
    print(f"tailboard: {len(ms)} points from {args.runs} runs at {args.rate:.0f} records/s, write() -> WebSocket client")
    print(f"  p50 {pct(ms, 0.5):.1f} ms   p90 {pct(ms, 0.9):.1f} ms   p99 {pct(ms, 0.99):.1f} ms   max {max(ms):.1f} ms")
    if not args.skip_tensorboard:
        tb = measure_tensorboard(root, args.tb_samples)
        med = statistics.median(tb) * 1000
        print(f"TensorBoard: flushed scalar -> its HTTP API, {len(tb)} samples: median {med:.0f} ms "
              f"({', '.join(f'{x:.1f}' for x in tb)} s)")
        print(f"  ratio TensorBoard median / tailboard p50: {med / pct(ms, 0.5):.0f}x; / tailboard p99: "
              f"{med / pct(ms, 0.99):.0f}x")


if __name__ == "__main__":
    main()
