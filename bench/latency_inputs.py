"""Write -> client latency of the input formats, beside TensorBoard's reload cadence.

    .venv/bin/python bench/latency_inputs.py [--formats native,tfevents,csv] [--runs 20] [--rate 1000]
        [--seconds 8] [--tb-samples 10] [--skip-tensorboard] [--poll] [--commit HEAD]

For each format, a trainer process appends one scalar ``x`` at a time to --runs run folders, --rate
records/s in total, each stamped with the wall time taken just before it is written:

- native (the reference): tailboard's writer, ``run.log({"x": v}, step=i)`` (one ``write()`` a record);
- tfevents: torch's SummaryWriter, ``add_scalar("x", v, i, walltime=now)`` then ``flush()`` (without
  the flush, SummaryWriter holds events for up to 120 s: then no follower can do better);
- csv: a ``step,time,x`` row written with one ``write()`` on an append-mode descriptor, as a CSV logger
  that flushes every row would (Lightning's CSVLogger writes every 100 steps by default).

The sidecar runs as ``tailboard serve`` in its own process, and a real WebSocket client (this process)
subscribed to every run stamps each point's arrival against its wall time: p50/p90/p99 over every
point written in --seconds. Loopback only; the three processes share the machine's cores. The trainer's
own cost of a write (SummaryWriter's add_scalar + flush, ...) is part of the latency and shown beside it.

The peer: TensorBoard on the same machine, given one run of SummaryWriter scalars. A scalar is written
and flushed after a random pause (so the writes fall anywhere in its reload cycle), and its HTTP API is
polled every 20 ms until the point is served: with its defaults (``--load_fast=auto``, which starts the
Rust loader when tensorboard-data-server is installed, as here; a reload every 5 s) and with
``--load_fast=true --reload_interval 1``. No other tool follows a CSV file live.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from ingest import use_commit
from loopback import free_port, messages, pct
from websockets.asyncio.client import connect

FORMATS = ("native", "tfevents", "csv")
TOKEN = "bench"


# -- the trainers: one process, every run of one format ------------------------------------------

class NativeRun:
    def __init__(self, folder: Path) -> None:
        import tailboard

        self.run = tailboard.Run(folder, rank=0, world_size=1)

    def write(self, step: int, x: float) -> None:
        self.run.log({"x": x}, step=step)  # stamps the record with time.time()

    def close(self) -> None:
        self.run.finish()


class TfEventsRun:
    def __init__(self, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(folder))

    def write(self, step: int, x: float) -> None:
        self.writer.add_scalar("x", x, step, walltime=time.time())
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class CsvRun:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(folder / "metrics.csv", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self.fd, b"step,time,x\n")

    def write(self, step: int, x: float) -> None:
        os.write(self.fd, b"%d,%.6f,%r\n" % (step, time.time(), x))

    def close(self) -> None:
        os.close(self.fd)


WRITERS = {"native": NativeRun, "tfevents": TfEventsRun, "csv": CsvRun}


def trainer(fmt: str, root: str, n_runs: int, rate: float, seconds: float, ready: Any, go: Any,
            done: Any) -> None:
    """Writes step 0 of every run, waits for ``go``, then --rate records/s in total for --seconds."""
    runs = [WRITERS[fmt](Path(root) / f"run{i:02d}") for i in range(n_runs)]
    for r in runs:
        r.write(0, 0.0)
    ready.set()
    go.wait()
    period, start = 1.0 / rate, time.perf_counter()
    n, late, costs = int(rate * seconds), 0, []
    for k in range(n):
        delay = start + k * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.01:
            late += 1
        t0 = time.perf_counter()
        runs[k % n_runs].write(1 + k // n_runs, math.sin(k / 100))
        costs.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    for r in runs:
        r.close()
    done.put({"written": n, "late": late, "seconds": seconds, "write_p50": pct(costs, 0.5),
              "write_p99": pct(costs, 0.99)})


# -- tailboard: the sidecar and a WebSocket client --------------------------------------------------

def start_sidecar(root: Path, port: int, n_runs: int, poll: bool) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tailboard.sidecar", "serve", str(root), "--port", str(port), "--token", TOKEN]
    sidecar = subprocess.Popen(cmd + (["--poll"] if poll else []), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:  # up, and every run found with its first point
        try:
            url = f"http://127.0.0.1:{port}/api/runs?token={TOKEN}"
            with urllib.request.urlopen(url, timeout=1) as res:
                runs = json.loads(res.read())["runs"]
            if sum(1 for r in runs if r["points"]) >= n_runs:
                return sidecar
        except OSError:
            pass
        if time.monotonic() > deadline:
            sidecar.kill()
            raise RuntimeError(f"the sidecar did not show {n_runs} runs under {root}")
        time.sleep(0.1)


async def client(port: int, names: list[str], go: Any, finished: Any) -> list[float]:
    """Latency of every point in the deltas (arrival minus the point's wall time), until the trainer
    is done and nothing more came for a second."""
    latencies: list[float] = []
    subscribed: set[str] = set()
    quiet_since = time.monotonic()
    deadline = time.monotonic() + 600

    def going() -> bool:
        return time.monotonic() < deadline and not (finished.is_set() and time.monotonic() - quiet_since > 1.0)

    async with connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}", max_size=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "runs": names, "points": 100}))
        async for now, msg in messages(ws, going):
            if msg["type"] == "snapshot":
                subscribed.add(msg["run"])
                if len(subscribed) == len(names):
                    go.set()
            elif msg["type"] == "delta" and "x" in msg["series"]:
                latencies.extend(now - t for t in msg["series"]["x"]["times"])
                quiet_since = time.monotonic()
    return latencies


def measure_tailboard(fmt: str, root: Path, args: argparse.Namespace) -> tuple[list[float], dict[str, Any]]:
    root.mkdir(parents=True)
    ctx = mp.get_context("spawn")
    ready, go, finished, done = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Queue()
    writer = ctx.Process(target=trainer, args=(fmt, str(root), args.runs, args.rate, args.seconds, ready, go, done),
                         daemon=True)
    writer.start()
    sidecar = None
    try:
        if not ready.wait(120):
            raise RuntimeError(f"the {fmt} trainer did not start")
        port = free_port()
        sidecar = start_sidecar(root, port, args.runs, args.poll)

        async def watch_trainer() -> dict[str, Any]:
            result: dict[str, Any] = await asyncio.to_thread(done.get, True, args.seconds + 300)
            finished.set()
            return result

        async def both() -> tuple[list[float], dict[str, Any]]:
            written = asyncio.create_task(watch_trainer())
            lat = await client(port, [f"run{i:02d}" for i in range(args.runs)], go, finished)
            return lat, await written

        return asyncio.run(both())
    finally:
        go.set()
        writer.join(30)
        if sidecar is not None:
            sidecar.terminate()
            sidecar.wait(10)


# -- the peer: TensorBoard's time to show a flushed scalar -----------------------------------------

def measure_tensorboard(root: Path, flags: list[str], samples: int, pause: float) -> list[float]:
    from torch.utils.tensorboard import SummaryWriter

    logdir = root / "tb"
    shutil.rmtree(logdir, ignore_errors=True)
    w = SummaryWriter(str(logdir / "run"))
    w.add_scalar("x", 0.0, 0)
    w.flush()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host",
                             "127.0.0.1", "--port", str(port), *flags],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=run&tag=x"

    def last_step() -> int:
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                points = json.loads(res.read())
        except (OSError, ValueError):
            return -1
        return int(points[-1][1]) if points else -1

    out: list[float] = []
    try:
        deadline = time.monotonic() + 90
        while last_step() < 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        for k in range(1, samples + 1):
            time.sleep(random.uniform(0, pause))  # anywhere in the reload cycle
            t0 = time.time()
            w.add_scalar("x", float(k), k, walltime=t0)
            w.flush()
            while last_step() < k and time.time() - t0 < 60:
                time.sleep(0.02)
            out.append(time.time() - t0)
    finally:
        proc.terminate()
        proc.wait(10)
        w.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, of " + ", ".join(FORMATS))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rate", type=float, default=1000.0, help="records per second in total")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--tb-samples", type=int, default=10)
    ap.add_argument("--skip-tensorboard", action="store_true")
    ap.add_argument("--poll", action="store_true", help="the sidecar polls instead of using inotify")
    ap.add_argument("--commit", help="run tailboard as it was at this commit (default: the working tree)")
    args = ap.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if set(formats) - set(FORMATS):
        ap.error(f"unknown formats {sorted(set(formats) - set(FORMATS))}; known: {', '.join(FORMATS)}")
    top = Path(tempfile.mkdtemp(prefix="tailboard-latency-inputs-"))
    rows: list[tuple[str, list[float], str]] = []
    try:
        if args.commit:
            print(f"tailboard at {use_commit(args.commit, top)}")
        print(f"{args.runs} runs, {args.rate:.0f} records/s in total, {args.seconds:g} s a format, "
              f"{'polling' if args.poll else 'inotify'}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'path':<58}{'points':>8}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}")

        def show(label: str, lat: list[float], note: str = "") -> None:
            ms = [x * 1000 for x in lat]
            rows.append((label, ms, note))
            print(f"{label:<58}{len(ms):>8}{pct(ms, 0.5):>10.1f}{pct(ms, 0.9):>10.1f}{pct(ms, 0.99):>10.1f}"
                  f"{max(ms, default=math.nan):>10.1f}  {note}", flush=True)

        for fmt in formats:
            lat, written = measure_tailboard(fmt, top / fmt, args)
            lost = written["written"] - len(lat)
            note = (f"{lost} points not received; " if lost else "") + \
                   f"trainer {written['written'] / written['seconds']:.0f} records/s ({written['late']} over 10 ms " \
                   f"late), a write {written['write_p50'] * 1e3:.2f} ms p50, {written['write_p99'] * 1e3:.2f} ms p99"
            show(f"tailboard, {fmt} -> WebSocket client", lat, note)
        if not args.skip_tensorboard:
            for label, flags, pause in (("defaults (Rust loader), reload every 5 s", [], 5.0),
                                        ("--load_fast=true --reload_interval 1", ["--load_fast=true",
                                                                                  "--reload_interval", "1"], 1.0)):
                tb = measure_tensorboard(top, flags, args.tb_samples, pause)
                show(f"TensorBoard {label}", tb, "samples " + ", ".join(f"{x:.1f}" for x in tb) + " s")
        mine = {label.split(", ")[1].split(" ")[0]: ms for label, ms, _ in rows if label.startswith("tailboard")}
        if "native" in mine:
            for fmt, ms in mine.items():
                if fmt != "native":
                    print(f"tailboard {fmt} / native: p50 {pct(ms, 0.5) / pct(mine['native'], 0.5):.2f}x, "
                          f"p99 {pct(ms, 0.99) / pct(mine['native'], 0.99):.2f}x")
        if "tfevents" in mine:
            for label, ms, _ in rows:
                if label.startswith("TensorBoard"):
                    print(f"{label}: p50 {pct(ms, 0.5) / pct(mine['tfevents'], 0.5):.0f}x tailboard's on "
                          f"tfevents, p50 / its p99 {pct(ms, 0.5) / pct(mine['tfevents'], 0.99):.0f}x")
    finally:
        shutil.rmtree(top, ignore_errors=True)


if __name__ == "__main__":
    main()
