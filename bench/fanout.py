"""Fan-out: many WebSocket clients on one live run, one of them stalled.

    .venv/bin/python bench/fanout.py [--clients 200] [--seconds 10] [--rate 200]

The sidecar runs as its own process (`python -m tailboard.sidecar serve`, loopback); a writer appends
--rate records/s to one run; --clients clients subscribe to it. Phase 1: all of them read. Phase 2: one
client stops reading (a bare socket that never reads, so the server's sends really block) while the
writer goes on. Prints, per phase, the fast clients' latency (write -> arrival) p50/p99, whether
every fast client received every record, and the server's resident memory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import tailboard
from loopback import free_port, messages
from websockets.asyncio.client import connect

TOKEN = "fanout"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")



def stalled_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET /ws?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1)
    msg = json.dumps({"op": "subscribe", "runs": ["live"], "points": 100}).encode()
    mask = os.urandom(4)
    s.sendall(bytes([0x81, 0x80 | len(msg)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(msg)))
    return s


async def client(port: int, latencies: list[float], steps: set[int], ready: asyncio.Event, done: asyncio.Event) -> None:
    async with connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}", max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"op": "subscribe", "runs": ["live"], "points": 100}))
        ready.set()
        async for now, msg in messages(ws, lambda: not done.is_set()):
            if msg["type"] == "delta" and "x" in msg["series"]:
                s = msg["series"]["x"]
                latencies.extend(now - t for t in s["times"])
                steps.update(s["steps"])


async def phase(port: int, run: tailboard.Run, n: int, seconds: float, rate: float, start: int,
                pid: int, stall: bool) -> int:
    lat: list[list[float]] = [[] for _ in range(n)]
    got: list[set[int]] = [set() for _ in range(n)]
    done = asyncio.Event()
    readies = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(client(port, lat[i], got[i], readies[i], done)) for i in range(n)]
    for r in readies:
        await r.wait()
    await asyncio.sleep(1.0)
    stalled = await asyncio.to_thread(stalled_client, port) if stall else None
    written: list[int] = []
    stop = threading.Event()

    def write() -> None:
        step, period, nxt = start, 1.0 / rate, time.perf_counter()
        while not stop.is_set():
            run.log({"x": float(step)}, step=step)
            written.append(step)
            step += 1
            nxt += period
            time.sleep(max(0.0, nxt - time.perf_counter()))

    w = threading.Thread(target=write)
    w.start()
    peak = 0.0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        await asyncio.sleep(0.5)
        peak = max(peak, rss_mb(pid))
    stop.set()
    w.join()
    await asyncio.sleep(1.0)
    done.set()
    await asyncio.gather(*tasks)
    everything = set(written)
    complete = sum(1 for g in got if everything <= g)
    ms = sorted(x * 1000 for one in lat for x in one)

    def p(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    label = "one client stalled" if stall else "all clients reading"
    print(f"{label:<22} {n} fast clients: p50 {p(0.5):6.1f} ms  p99 {p(0.99):6.1f} ms  "
          f"complete {complete}/{n}  server RSS peak {peak:.0f} MB")
    if stalled is not None:
        stalled.close()
    return written[-1] + 1


async def main_async(args: argparse.Namespace) -> None:
    root = Path(tempfile.mkdtemp(prefix="tailboard-fanout-"))
    run = tailboard.init(root / "live")
    run.log({"x": 0.0}, step=0)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tailboard.sidecar", "serve", str(root), "--port", str(port),
                             "--token", TOKEN], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except OSError:
                await asyncio.sleep(0.1)
        print(f"server RSS at start {rss_mb(proc.pid):.0f} MB")
        nxt = await phase(port, run, args.clients, args.seconds, args.rate, 1, proc.pid, stall=False)
        await phase(port, run, args.clients, args.seconds, args.rate, nxt, proc.pid, stall=True)
    finally:
        run.finish()
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=200.0)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
