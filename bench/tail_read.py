"""How fast FileTail hands out complete lines, beside plain Python line reading.

Writes a JSONL file of scalar records (page cache warm) and times, in one run:
- FileTail.read() with 1, 4 and 16 MiB reads (complete-line chunks, line cap, NUL check);
- iterating a buffered binary file line by line (`for line in f`), as a simple tailer would.

Usage: python bench/tail_read.py [--mb 400]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from tailboard.sidecar.tail import Chunk, FileTail

LINE = (b'{"k":"scalars","step":123456,"t":1764000001.123456,"v":{"train/loss":2.31,'
        b'"train/lr":0.1,"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8}}\n')


def best_of(n: int, fn: object) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tailboard-read-") as tmp:
        path = os.path.join(tmp, "a.jsonl")
        with open(path, "wb") as f:
            f.write(LINE * (args.mb * 1_000_000 // len(LINE)))
        size = os.path.getsize(path)

        def tail(read_bytes: int) -> None:
            t = FileTail(path, read_bytes=read_bytes)
            n = sum(len(e.data) for e in t.read() if isinstance(e, Chunk))
            t.close()
            assert n == size

        def lines() -> None:
            n = 0
            with open(path, "rb") as f:
                for line in f:
                    n += len(line)
            assert n == size

        results = {f"FileTail, {rb >> 20} MiB reads": best_of(3, lambda rb=rb: tail(rb))
                   for rb in (1 << 20, 1 << 22, 1 << 24)}
        results["for line in file"] = best_of(3, lines)
        print(f"{size / 1e6:.0f} MB, {size // len(LINE)} lines of {len(LINE)} bytes; best of 3")
        base = results["for line in file"]
        for name, dt in results.items():
            print(f"{name:<24}{size / dt / 1e9:>7.2f} GB/s{base / dt:>8.1f}x")


if __name__ == "__main__":
    main()
