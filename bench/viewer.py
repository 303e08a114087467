"""The viewer in headless Chromium against the real sidecar.

    .venv/bin/python bench/viewer.py [--points 10000000] [--skip-big]

1. Navigation to the first painted chart for a run holding --points points in one metric.
2. Drawing cost of a dashboard of 16 charts x 8 runs x 2,000 points while the 8 runs keep appending
   (100 records/s each): the time spent in chart draws per animation frame, and the frame interval.
3. Page memory after a long stream of appends (the series buffers compact above 400k points).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

import tailboard
from tailboard.format import encode
from tailboard.sidecar.server import serve_in_thread

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def big_run(root: Path, points: int) -> None:
    folder = root / "big"
    folder.mkdir(parents=True)
    with open(folder / "rank0.jsonl", "wb") as f:
        f.write(encode({"k": "header", "format": "tailboard", "version": 1, "run": "big", "host": "h", "pid": 1,
                        "rank": 0, "world_size": 1, "start": 1.7e9, "argv": []}))
        chunk = []
        for i in range(points):
            chunk.append(b'{"k":"scalars","step":%d,"t":%.3f,"v":{"loss":%.6f}}\n'
                         % (i, 1.7e9 + i * 0.01, math.exp(-i / points * 5) + 0.01 * math.sin(i)))
            if len(chunk) == 100_000:
                f.write(b"".join(chunk))
                chunk = []
        f.write(b"".join(chunk))


def first_paint(browser: object, points: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="tailboard-viewer-big-"))
    t0 = time.perf_counter()
    big_run(root, points)
    print(f"generated {points:,} points in {time.perf_counter() - t0:.1f} s")
    handle = serve_in_thread(root, token="t")
    t0 = time.perf_counter()
    while not handle.store.progress().done:
        time.sleep(0.05)
    print(f"sidecar loaded them in {time.perf_counter() - t0:.2f} s")
    times = []
    for _ in range(3):
        page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        page.goto(handle.url)
        page.wait_for_function("() => { const c = window.tailboard && window.tailboard.charts.get('loss');"
                               " return c && c.draws > 0 && c.series.length > 0; }", polling="raf", timeout=30000)
        times.append(time.perf_counter() - t0)
        page.close()
    handle.stop()
    print(f"navigation -> first painted chart ({points:,} points, 2,000 sent): median {statistics.median(times) * 1000:.0f} ms "
          f"({', '.join(f'{x * 1000:.0f}' for x in times)} ms); goal <= 1000 ms")


def dashboard(browser: object, seconds: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="tailboard-viewer-dash-"))
    runs = []
    for r in range(8):
        run = tailboard.init(root / f"sweep/run{r}")
        for i in range(2000):
            run.log({f"m{j:02d}": math.sin(i / 50 + j) + r * 0.1 for j in range(16)}, step=i)
        runs.append(run)
    handle = serve_in_thread(root, token="t")
    stop = threading.Event()

    def append() -> None:
        i = 2000
        while not stop.is_set():
            for r, run in enumerate(runs):
                run.log({f"m{j:02d}": math.sin(i / 50 + j) + r * 0.1 for j in range(16)}, step=i)
            i += 1
            time.sleep(0.01)

    page = browser.new_page(viewport={"width": 1600, "height": 1200})  # type: ignore[attr-defined]
    page.goto(handle.url)
    page.wait_for_function("() => window.tailboard.charts.size === 16 && "
                           "[...window.tailboard.charts.values()].every(c => c.series.length === 8)", timeout=30000)
    page.evaluate("""() => {
        window.__frames = []; window.__draw = 0;
        for (const c of window.tailboard.charts.values()) {
            const draw = c.draw.bind(c);
            c.draw = () => { const t = performance.now(); draw(); window.__draw += performance.now() - t; };
        }
        let last = performance.now();
        const tick = (now) => { window.__frames.push([now - last, window.__draw]); window.__draw = 0; last = now;
                                if (window.__frames.length < 100000) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
    }""")
    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    time.sleep(seconds)
    stop.set()
    writer.join()
    frames = page.evaluate("() => window.__frames")
    heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : null")
    page.close()
    for run in runs:
        run.finish()
    handle.stop()
    draws = sorted(f[1] for f in frames if f[1] > 0)
    gaps = sorted(f[0] for f in frames[1:])
    if draws:
        print(f"16 charts x 8 runs x 2,000+ points, live: {len(draws)} frames with draws in {seconds:.0f} s; "
              f"draw time per frame p50 {draws[len(draws) // 2]:.1f} ms, p99 {draws[int(len(draws) * 0.99)]:.1f} ms "
              f"(goal <= 16 ms); frame interval p50 {gaps[len(gaps) // 2]:.1f} ms")
    if heap:
        print(f"JS heap after the live run: {heap / 1e6:.1f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--skip-big", action="store_true")
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=ARGS + ["--enable-precise-memory-info"])
        try:
            if not args.skip_big:
                first_paint(browser, args.points)
            dashboard(browser, args.seconds)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
