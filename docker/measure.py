"""The sidecar image's figures for docs/benchmarks.md: size, start-to-first-page time, idle CPU and memory.

    python3 docker/measure.py --sidecar tailboard-sidecar:0.1.0 [--base IMAGE] [--idle 60] [--starts 5]

Runs the image with podman (``--engine docker`` works too: the same commands), on the host network
at a free loopback port, with the root filesystem read-only, over a volume holding one finished run
of 600 steps written by the real writer. Start-to-first-page is the time from ``run -d`` to the
first answer of ``/`` (the page) and of ``/api/runs`` listing the run (the data), taken ``--starts``
times, beside the same time for ``python3 -m http.server`` in the same image (the engine's and the
interpreter's share). Idle is measured on the container's main process from the host's /proc (run as root): CPU
seconds over ``--idle`` seconds of wall time with nobody connected, and its resident memory.
Each mode is measured once with inotify and once with ``--poll``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

TOKEN = "measure"


def engine(*args: str, timeout: float = 120) -> str:
    out = subprocess.run([ENGINE, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{ENGINE} {' '.join(args[:2])}: {out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ok(port: int, path: str) -> bytes | None:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    try:
        with urllib.request.urlopen(req, timeout=2) as r:
            return r.read() if r.status == 200 else None
    except OSError:
        return None


def start(image: str, volume: str, extra: list[str]) -> tuple[str, float, float]:
    """A sidecar container; seconds to the first page and to the run being listed."""
    name, port = f"tb-measure-{uuid.uuid4().hex[:8]}", free_port()
    t0 = time.perf_counter()
    engine("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
           "-v", f"{volume}:/logs:ro", "-e", f"TAILBOARD_TOKEN={TOKEN}", "-e", f"TAILBOARD_PORT={port}",
           image, *extra)
    page = data = None
    while data is None:
        if time.perf_counter() - t0 > 60:
            raise SystemExit(f"{name}: no page after 60 s:\n{engine('logs', name)}")
        if page is None and ok(port, "/"):
            page = time.perf_counter() - t0
        runs = ok(port, "/api/runs")
        if runs and json.loads(runs)["runs"]:
            data = time.perf_counter() - t0
        time.sleep(0.01)
    return name, page or data, data


def bare_start(image: str) -> float:
    """Seconds from ``run -d`` to the first answer of python's own http.server in the same image: what
    the engine and the interpreter cost before tailboard does anything."""
    name, port = f"tb-measure-{uuid.uuid4().hex[:8]}", free_port()
    t0 = time.perf_counter()
    engine("run", "-d", "--name", name, "--network", "host", "--read-only", "--entrypoint", "python3", image,
           "-m", "http.server", "--bind", "127.0.0.1", str(port))
    try:
        while ok(port, "/") is None:
            if time.perf_counter() - t0 > 60:
                raise SystemExit(f"{name}: http.server did not answer in 60 s")
            time.sleep(0.01)
        return time.perf_counter() - t0
    finally:
        engine("rm", "--force", "--time", "2", name)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def main() -> int:
    global ENGINE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sidecar", required=True, help="the sidecar image")
    ap.add_argument("--base", help="the image it was built on (its size is subtracted)")
    ap.add_argument("--engine", default="podman")
    ap.add_argument("--idle", type=float, default=60.0, help="seconds of idle measured")
    ap.add_argument("--starts", type=int, default=5)
    args = ap.parse_args()
    ENGINE = shutil.which(args.engine) or sys.exit(f"no {args.engine} here")

    size = int(engine("image", "inspect", args.sidecar, "--format", "{{.Size}}"))
    print(f"image {args.sidecar}: {size / 1e6:.0f} MB", end="")
    if args.base:
        base = int(engine("image", "inspect", args.base, "--format", "{{.Size}}"))
        print(f" ({(size - base) / 1e6:.0f} MB over {args.base}, {base / 1e6:.0f} MB)", end="")
    print()

    volume = f"tb-measure-{uuid.uuid4().hex[:8]}"
    engine("volume", "create", volume)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # one finished run written by the real writer, copied in by a throwaway container
            import tailboard

            with tailboard.init(os.path.join(tmp, "run")) as run:
                for step in range(600):
                    run.log({"train/loss": 1.0 / (step + 1), "train/lr": 0.1}, step=step)
            engine("run", "--rm", "--network", "host", "--user", "0", "-v", f"{volume}:/logs", "-v", f"{tmp}:/src:ro",
                   "--entrypoint", "sh", args.sidecar, "-c", "cp -r /src/run /logs/")
        bare = [bare_start(args.sidecar) for _ in range(args.starts)]
        print(f"baseline: python -m http.server in the same image answers {statistics.median(bare) * 1000:.0f} ms "
              f"after run -d (median of {args.starts})")
        for mode, extra in (("inotify", []), ("--poll", ["--poll"])):
            pages, datas = [], []
            for i in range(args.starts):
                name, page, data = start(args.sidecar, volume, extra)
                pages.append(page)
                datas.append(data)
                if i < args.starts - 1:
                    engine("rm", "--force", "--time", "2", name)
            print(f"{mode}: start to first page {statistics.median(pages) * 1000:.0f} ms, to the run listed "
                  f"{statistics.median(datas) * 1000:.0f} ms (median of {args.starts}; "
                  f"min {min(datas) * 1000:.0f}, max {max(datas) * 1000:.0f})")
            pid = int(engine("inspect", name, "--format", "{{.State.Pid}}"))
            time.sleep(5)  # past the start-up work
            c0, t0 = cpu_seconds(pid), time.perf_counter()
            time.sleep(args.idle)
            cpu = (cpu_seconds(pid) - c0) / (time.perf_counter() - t0)
            print(f"{mode}: idle CPU {cpu * 100:.2f}% of one core over {args.idle:g} s, "
                  f"resident memory {rss_mib(pid):.0f} MiB")
            engine("rm", "--force", "--time", "2", name)
    finally:
        engine("volume", "rm", "--force", volume)
    return 0


ENGINE = "podman"

if __name__ == "__main__":
    sys.exit(main())
