"""Event-loop stalls while a multi-GB backlog loads and clients query evicted runs.

    .venv/bin/python bench/loop_stall.py [--gb 2] [--runs 8] [--seconds 20] [--baseline REV]

The log root holds --runs finished runs of --gb GB in all (the writer's line layout, generated once
into the cache as bench/hostile.py does, then copied: each run is its own file). `tailboard serve`
starts on loopback with --max-points set to a third of the points and --evict-idle 1, so that most
runs are evicted once loaded and read again when asked for. Two phases:

- loading: from start until /api/runs says the backlog is loaded;
- evicted queries: for --seconds, a client asks /api/series (2,000 points) of the runs one after the
  other, every --query-every seconds, so each run has been evicted again by its next query.

Through both, GET /healthz on a new connection every 50 ms (its latency is what anything waiting on
the server's event loop waits), and the server's own report of its event loop's lateness
(`loop_lag` in /healthz, the longest and the p99 over the phase). With --baseline REV, the same is
measured for the server as it was at that commit, side by side. Goal: /healthz p99 under 50 ms, max
under 200 ms.
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
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from hostile import EVERY, HealthProbe, big_log, server_code
from loopback import free_port, pct, rss_mb

TOKEN = "stall"
MB = 1 << 20
BYTES_PER_RECORD = 80  # about, in the layout big_log writes


def ask(port: int, path: str, timeout: float = 30.0) -> Any:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


class Lag(threading.Thread):
    """The server's own loop lateness, read from /healthz every second (each report covers 60 s,
    so the phase's worst is the worst report seen during it)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.done = port, threading.Event()
        self.worst = {"max_ms": 0.0, "p99_ms": 0.0}
        self.supported = True

    def run(self) -> None:
        while not self.done.wait(1.0):
            try:
                got = ask(self.port, "/healthz", timeout=5).get("loop_lag")
            except OSError:
                continue
            if got is None:
                self.supported = False
                return
            for k in self.worst:
                self.worst[k] = max(self.worst[k], float(got[k]))


def measure(label: str, root: Path, env: dict[str, str], args: argparse.Namespace, points: int) -> list[list[str]]:
    port = free_port()
    log = root.parent / f"serve-{port}.log"
    cmd = [sys.executable, "-m", "tailboard.sidecar", "serve", str(root), "--port", str(port), "--token", TOKEN,
           "--max-points", str(max(1, points // 3))]
    usage = subprocess.run([sys.executable, "-m", "tailboard.sidecar", "serve", "--help"], env=env,
                           capture_output=True, text=True).stdout
    patient = "--evict-idle" not in usage
    if patient:
        label += " (evicts after 60 s idle: waited)"
    else:
        cmd += ["--evict-idle", "1"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    rows = []
    peak = 0.0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                ask(port, "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        probe, lag = HealthProbe(port), Lag(port)
        probe.start()
        lag.start()
        t0 = time.time()
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            peak = max(peak, rss_mb(proc.pid))
            try:
                if ask(port, "/api/runs", timeout=30)["loading"]["done"]:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        loaded = time.time()
        rows.append(row(f"{label}: loading ({loaded - t0:.1f} s)", probe, lag, t0, loaded, peak))
        if patient:  # a server that evicts only after 60 s idle: let every run go idle first
            time.sleep(62)
        lag.worst = {"max_ms": 0.0, "p99_ms": 0.0}
        phase_start = time.time()
        queries: list[float] = []
        stop = time.monotonic() + args.seconds
        runs = [f"r{i}" for i in range(args.runs)]
        i = 0
        while time.monotonic() < stop:
            q0 = time.perf_counter()
            ask(port, f"/api/series?run={runs[i % len(runs)]}&metric=loss&points=2000", timeout=60)
            queries.append((time.perf_counter() - q0) * 1000)
            peak = max(peak, rss_mb(proc.pid))
            i += 1
            time.sleep(args.query_every)  # each run idles past --evict-idle between its queries
        done = time.time()
        probe.done.set()
        lag.done.set()
        probe.join(5)
        r = row(f"{label}: evicted queries", probe, lag, phase_start, done, peak)
        r[-1] = f"{len(queries)} queries, p50 {pct(queries, 0.5):.0f} ms"
        rows.append(r)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows


def row(label: str, probe: HealthProbe, lag: Lag, t0: float, t1: float, peak: float) -> list[str]:
    ms = [m for t, m, how in list(probe.samples) if t0 <= t < t1 and how == "ok"]
    bad = sum(1 for t, _, how in list(probe.samples) if t0 <= t < t1 and how != "ok")
    lag_txt = (f"{lag.worst['p99_ms']:.1f} / {lag.worst['max_ms']:.1f}" if lag.supported else "n/a")
    return [label, f"{pct(ms, 0.5):.1f}", f"{pct(ms, 0.99):.1f}", f"{max(ms, default=math.nan):.1f}", str(bad),
            lag_txt, f"{peak:.0f}", ""]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gb", type=float, default=2.0, help="backlog size in all")
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the evicted-queries phase")
    ap.add_argument("--query-every", type=float, default=0.5, help="seconds between two queries")
    ap.add_argument("--baseline", help="also measure the server as it was at this commit")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tailboard-bench"
    ap.add_argument("--cache", type=Path, default=cache)
    args = ap.parse_args()
    per_run = int(args.gb * 1e9 / BYTES_PER_RECORD / args.runs)
    src = big_log(args.cache, per_run)
    tmp = Path(tempfile.mkdtemp(prefix="tailboard-stall-"))
    try:
        root = tmp / "logs"
        for i in range(args.runs):
            (root / f"r{i}").mkdir(parents=True)
            shutil.copyfile(src, root / f"r{i}" / "rank0.jsonl")  # its own inode: its own run
        total = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
        print(f"backlog: {args.runs} runs x {per_run:,} records, {total / MB:,.0f} MB; "
              f"--max-points {per_run * args.runs // 3:,}; /healthz every {EVERY * 1000:.0f} ms", flush=True)
        rows = []
        for label, rev in (("this tree", None), (f"at {args.baseline}", args.baseline)):
            if label != "this tree" and rev is None:
                continue
            env, code = server_code(rev, tmp / f"server-{len(rows)}")
            print(f"server {label}: {code}", flush=True)
            rows += measure(label, root, env, args, per_run * args.runs)
        head = ["phase", "/healthz p50 ms", "p99", "max", "timeouts", "loop lag p99 / max ms", "peak RSS MB", ""]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        print()
        for r in [head, *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        print("\ngoal: /healthz p99 < 50 ms and max < 200 ms while loading and while evicted runs are read again")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
