"""Downsampled queries of a 10M-point series: in the store, and over HTTP to the first byte.

    .venv/bin/python bench/query.py [--points 10000000] [--repeats 20]

The series is put in a running sidecar's store directly through its columnar series (ingesting 10M
lines would only measure the parser again). Beside it, numpy's plain min/max scan of the same array,
the least any query that looks at every point must pay.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time

import numpy as np
from tailboard.sidecar.series import ColumnarSeries
from tailboard.sidecar.server import serve_in_thread
from tailboard.sidecar.store.runs import Run, Stream


def first_byte_ms(port: int, path: str) -> float:
    with socket.create_connection(("127.0.0.1", port)) as s:
        t0 = time.perf_counter()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer q\r\n"
                  "Connection: close\r\n\r\n".encode())
        s.recv(1)
        t1 = time.perf_counter()
        while s.recv(1 << 16):
            pass
    return (t1 - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    n = args.points
    handle = serve_in_thread(tempfile.mkdtemp(), token="q")
    store = handle.store
    steps = np.arange(n, dtype=np.float64)
    values = np.sin(steps / 1000) + np.random.default_rng(0).normal(0, 0.1, n)
    col = ColumnarSeries()
    col.append(steps, values, 1.7e9 + steps * 0.01)
    run = Run("big")
    run.streams["rank0.jsonl"] = Stream("rank0.jsonl", "/dev/null", "0:0:x")
    run.attempts[0].series["loss"] = col
    run.attempts[0].first_step = 0.0
    with store._lock:
        store._runs["big"] = run

    def med(fn) -> float:
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t0) * 1000)
        return statistics.median(ts)

    q = med(lambda: store.series("big", "loss", points=2000))
    z = med(lambda: store.series("big", "loss", start=n * 0.4, end=n * 0.45, points=2000))
    scan = med(lambda: (np.nanmin(values), np.nanmax(values)))
    http = statistics.median(first_byte_ms(handle.server.port, "/api/series?run=big&metric=loss&points=2000")
                             for _ in range(args.repeats))
    handle.stop()
    print(f"series of {n:,} points, medians of {args.repeats}:")
    print(f"  store.series(points=2000), whole range     {q:7.1f} ms   (goal <= 20 ms)")
    print(f"  store.series(points=2000), 5% zoom window  {z:7.1f} ms")
    print(f"  numpy min+max scan of all points           {scan:7.1f} ms   (ratio {q / scan:.1f}x)")
    print(f"  GET /api/series?points=2000, first byte    {http:7.1f} ms   (goal <= 100 ms)")


if __name__ == "__main__":
    main()
