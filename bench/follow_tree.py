"""What following a big, idle log tree costs: CPU while idle, descriptors held, log volume, and how
soon a new run and an append to an old file are seen.

Builds a tree of ``--files`` empty ``.jsonl`` files spread over ``--dirs`` run folders (empty files
are the worst case for descriptors: a file that never held a line was never parked before), dated
an hour ago (finished runs) or, with ``--fresh``, just now (nothing is idle: only the descriptor
bound parks them). Starts the real Follower on the real Store in this process with RLIMIT_NOFILE at
``--nofile``, waits for the catch-up, then measures over an idle window of ``--idle`` seconds (make
it span a few sweeps: in a tree of 100,000 folders one sweep comes every 20 s or so):

- process CPU time (user + system, every thread) / wall time;
- the most descriptors the process held (sampled from /proc/self/fd), and the soft limit;
- warnings logged and their bytes (what would reach stderr), and the last sweep's duration;
- then: seconds until a record in a new run folder is in the store, and until a record appended to
  one of the old files is.

Usage: python bench/follow_tree.py [--files 100000] [--dirs 100000] [--idle 60] [--poll]
       [--fresh] [--nofile 20000]

Figures on the 2-core build machine, one file per folder, RLIMIT_NOFILE 20,000; "before" is the
follower before the descriptor bound and the sweep budget (run with PYTHONPATH pointing at a copy
of that tree), idle windows of 60 s (240 s for 100k after):

| tree, mode | idle CPU before | after | descriptors before | after | new run seen before | after |
|---|---|---|---|---|---|---|
| 10k, inotify | 41.2% | 5.3% | 10,017 | 16 | 0.37 s | 0.03 s |
| 10k, poll | 73.9% | 10.1% | 10,014 | 13 | 1.01 s | 0.38 s |
| 100k, inotify | 68.9% | 4.4% | 20,000 (EMFILE) | 16 | 3.88 s | 0.13 s |
| 100k, poll | 132.5% | 9.5% | 20,000 (EMFILE) | 13 | 9.68 s | 3.82 s |
| 100k fresh, inotify | 69.0% | 1.4% | 20,000 (EMFILE) | 4,112 | 3.90 s | 0.08 s |

Before, 100k files logged 80,015 warnings (18.6 MB) while catching up; after, none. After, a sweep
of 100k takes 0.9 s and comes every 19 s; a poll pass over 200k paths takes 0.7 s and comes every
13 s (so a new run in such a tree is seen within about 14 s when polling). Poll mode runs both.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from tailboard.sidecar.follower import Follower
from tailboard.sidecar.store import Store


class Counted(logging.Handler):
    """Counts warnings and above, and the bytes they would take on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records = 0
        self.bytes = 0
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.bytes += len(self.format(record)) + 1


def build(root: Path, files: int, dirs: int, fresh: bool) -> None:
    per = max(1, files // dirs)
    made = 0
    for d in range(dirs):
        run = root / f"g{d // 1000:03d}" / f"run{d:06d}"
        run.mkdir(parents=True)
        for r in range(per if d < dirs - 1 else files - made):
            (run / f"rank{r}.jsonl").touch()
            made += 1
    if fresh:
        return  # just created: not idle, so only the descriptor bound parks them
    old = time.time() - 3600  # finished runs: written an hour ago
    for dirpath, _, names in os.walk(root):
        for n in names:
            os.utime(os.path.join(dirpath, n), (old, old))


def append(path: Path, line: bytes) -> None:
    with open(path, "ab") as f:
        f.write(line)


def cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def fds(limit: int) -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # EMFILE: not even one left to list them
        return limit


async def seen_within(cond: Any, timeout: float) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            return float("inf")
        await asyncio.sleep(0.01)
    return time.monotonic() - t0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--dirs", type=int, default=100_000)
    parser.add_argument("--idle", type=float, default=60.0,
                        help="seconds of the idle window (make it span a few sweeps)")
    parser.add_argument("--poll", action="store_true")
    parser.add_argument("--fresh", action="store_true",
                        help="leave the files' mtimes at their creation (not idle)")
    parser.add_argument("--nofile", type=int, default=20_000, help="RLIMIT_NOFILE (soft and hard)")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))
    counted = Counted()
    logging.getLogger("tailboard").addHandler(counted)
    logging.getLogger("tailboard").propagate = False  # counted, not printed
    with tempfile.TemporaryDirectory(prefix="tailboard-tree-") as tmp:
        root = Path(tmp) / "logs"
        t0 = time.monotonic()
        build(root, args.files, args.dirs, args.fresh)
        print(f"tree: {args.files} empty files in {args.dirs} folders, built in "
              f"{time.monotonic() - t0:.1f} s; mode {'poll' if args.poll else 'inotify'}", flush=True)
        reserve = [os.open(os.devnull, os.O_RDONLY) for _ in range(4)]
        store = Store(root)
        follower = Follower(root, store, poll=args.poll)
        t0 = time.monotonic()
        await follower.start()
        try:
            print(f"started and caught up in {time.monotonic() - t0:.1f} s ({follower.mode})", flush=True)
            await measure(root, store, follower, counted, reserve, args)
        finally:
            await follower.stop()


async def measure(root: Path, store: Store, follower: Follower, counted: Counted, reserve: list[int],
                  args: argparse.Namespace) -> None:
    await asyncio.sleep(3.0)  # the first sweeps after the catch-up are not "idle"
    most = fds(args.nofile)
    c0, w0, logged0 = cpu(), time.monotonic(), counted.bytes
    end = w0 + args.idle
    while time.monotonic() < end:
        await asyncio.sleep(0.5)
        most = max(most, fds(args.nofile))
    c1, w1 = cpu(), time.monotonic()
    print(f"idle {w1 - w0:.1f} s: CPU {100 * (c1 - c0) / (w1 - w0):.1f}% of one core, "
          f"at most {most} descriptors (limit {args.nofile}), "
          f"{counted.records} warnings ({counted.bytes / 1e6:.2f} MB; "
          f"{(counted.bytes - logged0) / 1e6:.2f} MB while idle)", flush=True)
    watcher = follower._watcher
    if hasattr(watcher, "sweep_wait"):  # the sweep's budget (absent before it existed)
        print(f"last sweep {watcher._sweep_cost:.2f} s, next {watcher.sweep_wait():.1f} s later; "
              f"last poll pass {watcher.poll_pass_cost:.2f} s", flush=True)
    for fd in reserve:  # the bench's own writes must work even if the follower took the rest
        os.close(fd)
    new = root / "fresh" / "run"
    new.mkdir(parents=True)
    append(new / "rank0.jsonl", b'{"step":1,"loss":1.0}\n')
    t_new = await seen_within(lambda: "fresh/run" in {r.id for r in store.runs()}, 60.0)
    old = next(root.glob("g000/run000001/*.jsonl"))
    append(old, b'{"step":1,"old":1.0}\n')
    t_old = await seen_within(lambda: "old" in store.metrics("g000/run000001")
                              if "g000/run000001" in {r.id for r in store.runs()} else False, 60.0)
    print(f"a new run seen after {t_new:.2f} s, an append to an old file after {t_old:.2f} s",
          flush=True)


if __name__ == "__main__":
    asyncio.run(main())
