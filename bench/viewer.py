"""The viewer in headless Chromium against the real sidecar.

    .venv/bin/python bench/viewer.py [--points 10000000] [--skip-big] [--viewer-dir DIR]

--viewer-dir serves the page's files from DIR instead of the package (same server, same headers), to
measure another version of the viewer on the same machine at the same time, e.g. the last commit's:
`git archive HEAD viewer | tar -x -C /tmp/old` then `--viewer-dir /tmp/old/viewer`.

1. Navigation to the first painted chart for a run holding --points points in one metric.
2. Drawing cost of a dashboard of 16 charts x 8 runs x 2,000 points while the 8 runs keep appending
   (100 records/s each): the time spent in chart draws per animation frame, and the frame interval;
   then the same with a data table pinned on every chart and the pointer moving over one of them
   (its hover table rebuilt as the step under it changes); then 64 runs in 8 folders grouped by
   folder (`group=path:-1`: 8 lines with a min-max band per chart, each the mean of 8 runs, made
   again as the runs append: 64 runs x 12.5 records/s, the same 800 records/s in all), tables open
   and the pointer moving as before. A viewer without groups draws the 64 runs.
3. Page memory after a long stream of appends (a series holds at most 100k points, M4-decimated beyond).
4. 1,000 runs (in 50 folders) x --metrics metrics (100), each with a config, every one of them
   appending once a second: navigation to the full run list, a filter keystroke to the updated list,
   and the page's longest frames and tasks meanwhile (the 12 runs the page selects draw their 100
   charts); then the runs table: its tab opened (1,000 rows, 50 in the DOM) and sorted by a metric.
5. A long replay at high speed (`tailboard replay --speed`, its own process): the page's JS heap
   sampled every second while millions of points stream in; it must stay bounded.
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
from typing import Any
from urllib.parse import urlparse

import tailboard
from loopback import free_port
from playwright.sync_api import sync_playwright
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


def serve_viewer_from(page: Any, folder: Path | None) -> None:
    """The page's scripts and style sheet answered from `folder`, with the server's headers. The
    document itself is the server's: Chromium refuses a WebSocket to a loopback address from a page
    whose document was answered by the browser's own route (the page would fall back to polling)."""
    if folder is None:
        return

    def swap(route: Any) -> None:
        name = urlparse(route.request.url).path.lstrip("/")
        if "/" in name or not name.endswith((".js", ".css")) or not (folder / name).is_file():
            route.continue_()
            return
        route.fulfill(response=route.fetch(), body=(folder / name).read_bytes())

    page.route("**/*", swap)


def dashboard(browser: object, seconds: float, *, viewer_dir: Path | None = None, tables: bool = False,
              runs_n: int = 8, groups: int = 0) -> None:
    root = Path(tempfile.mkdtemp(prefix="tailboard-viewer-dash-"))
    runs = []
    for r in range(runs_n):
        run = tailboard.init(root / (f"sweep/g{r % groups}/run{r}" if groups else f"sweep/run{r}"))
        for i in range(2000):
            run.log({f"m{j:02d}": math.sin(i / 50 + j) + r * 0.1 for j in range(16)}, step=i)
        runs.append(run)
    handle = serve_in_thread(root, token="t")
    stop = threading.Event()
    pause = 0.01 * runs_n / 8  # 800 records/s in all, however many runs

    def append() -> None:
        i = 2000
        while not stop.is_set():
            for r, run in enumerate(runs):
                run.log({f"m{j:02d}": math.sin(i / 50 + j) + r * 0.1 for j in range(16)}, step=i)
            i += 1
            time.sleep(pause)

    page = browser.new_page(viewport={"width": 1600, "height": 1200})  # type: ignore[attr-defined]
    serve_viewer_from(page, viewer_dir)
    page.goto(f"{handle.base_url}/{'?group=path:-1' if groups else ''}#token=t")
    page.wait_for_function(f"""() => {{ const t = window.tailboard; return t.charts.size === 16 && t.view.runs.length === {min(runs_n, 12)}
        && t.view.runs.every((r) => t.state.runs.get(r)?.loaded) && [...t.charts.values()].every(c => c.series.length > 0); }}""",
                           timeout=60000)
    if runs_n > 12:  # the page selects 12 runs by itself: all of them
        page.evaluate("() => document.getElementById('sel-all').click()")
        page.wait_for_function(f"""() => {{ const t = window.tailboard; return t.view.runs.length === {runs_n}
            && t.view.runs.every((r) => t.state.runs.get(r)?.loaded); }}""", timeout=60000)
    box = None
    if tables:
        # a table pinned on every chart at step 1,000; the pointer then sweeps the first chart
        page.wait_for_function("() => [...window.tailboard.charts.values()].every((c) => !c.visible || c.sx)")
        page.evaluate("() => { for (const c of window.tailboard.charts.values()) c.setPin(1000); }")
        box = page.eval_on_selector(".chart canvas", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
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
        window.__long = [];
        new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
            .observe({ type: "longtask", buffered: false });
    }""")
    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < end:
        if box is None:
            time.sleep(end - time.monotonic())
            break
        x, y, w, h = box
        page.mouse.move(x + 60 + (k * 7) % (w - 80), y + h / 2)  # 7 px a move: a new step most moves
        k += 1
        time.sleep(0.02)
    stop.set()
    writer.join()
    tables_open = page.evaluate("() => document.querySelectorAll('.pinned-table:not([hidden]), .tooltip:not([hidden])').length")
    lines = page.evaluate("() => window.tailboard.charts.get('m00').series.length")
    frames = page.evaluate("() => window.__frames")
    longs = page.evaluate("() => window.__long")
    heap = page.evaluate("() => performance.memory ? performance.memory.usedJSHeapSize : null")
    page.close()
    for run in runs:
        run.finish()
    handle.stop()
    draws = sorted(f[1] for f in frames if f[1] > 0)
    gaps = sorted(f[0] for f in frames[1:])
    if draws:
        what = f", {tables_open} data tables open and the pointer moving" if tables else ""
        if groups:
            what += f", grouped by folder ({lines} lines a chart)"
        print(f"16 charts x {runs_n} runs x 2,000+ points, live{what}: {len(draws)} frames with draws in {seconds:.0f} s; "
              f"draw time per frame p50 {draws[len(draws) // 2]:.1f} ms, p99 {draws[int(len(draws) * 0.99)]:.1f} ms "
              f"(goal <= 16 ms); frame interval p50 {gaps[len(gaps) // 2]:.1f} ms; long tasks (> 50 ms): {len(longs)}"
              + (f", longest {max(longs):.0f} ms" if longs else ""))
    if heap:
        print(f"JS heap after the live run: {heap / 1e6:.1f} MB")


def many_runs(browser: object, n: int, seconds: float, *, metrics: int = 100, viewer_dir: Path | None = None) -> None:
    root = Path(tempfile.mkdtemp(prefix="tailboard-viewer-many-"))
    files = []

    def values(r: int, i: int) -> dict[str, float]:
        return {"loss": 1 / (i + 1) + r / n, **{f"m{j:03d}": (i + j) % 7 + r / n for j in range(metrics - 1)}}

    for r in range(n):
        folder = root / f"group{r % 50:02d}" / f"run{r:04d}"
        folder.mkdir(parents=True)
        f = open(folder / "rank0.jsonl", "ab", buffering=0)  # noqa: SIM115 - closed below
        f.write(encode({"k": "header", "format": "tailboard", "version": 1, "pid": r, "start": time.time()}))
        f.write(encode({"k": "config", "t": time.time(), "config": {"lr": 10 ** -(r % 4), "seed": r % 7, "group": r % 50,
                                                                    "model": {"width": 64 * (1 + r % 3), "depth": 2 + r % 5}}}))
        f.write(b"".join(encode({"k": "scalars", "step": i, "t": time.time(), "v": values(r, i)}) for i in range(20)))
        files.append(f)
    handle = serve_in_thread(root, token="t")
    while not handle.store.progress().done or len(handle.store.runs()) < n:
        time.sleep(0.05)
    stop = threading.Event()

    def append() -> None:
        i = 20
        while not stop.is_set():
            t0 = time.monotonic()
            for r, f in enumerate(files):  # every run once a second
                f.write(encode({"k": "scalars", "step": i, "t": time.time(), "v": values(r, i)}))
                if stop.is_set():
                    return
            i += 1
            stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    page = browser.new_page(viewport={"width": 1600, "height": 1000})  # type: ignore[attr-defined]
    serve_viewer_from(page, viewer_dir)
    t0 = time.perf_counter()
    page.goto(handle.url)
    # the list is virtual: every run known to it, and the visible rows drawn
    page.wait_for_function(f"() => window.tailboard.runList.infos.size === {n} && "
                           f"window.tailboard.runList.rows.length >= {n} && "
                           "document.querySelectorAll('#runs .run-row[data-run]').length > 10",
                           polling="raf", timeout=60000)
    listed = time.perf_counter() - t0
    # the selected runs' charts drawn: what follows is the page in use, not its loading
    page.wait_for_function(f"""() => {{ const t = window.tailboard; return t.charts.size === {metrics} &&
        [...t.charts.values()].every((c) => c.series.length === t.view.runs.length && (c.draws > 0 || !c.visible)); }}""",
                           polling=500, timeout=120000)
    charted = time.perf_counter() - t0
    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    page.evaluate("""() => {
        window.__long = [];
        new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
            .observe({ type: "longtask", buffered: false });
        window.__gaps = []; let last = performance.now();
        const tick = (now) => { window.__gaps.push(now - last); last = now; if (window.__gaps.length < 100000) requestAnimationFrame(tick); };
        requestAnimationFrame(tick);
    }""")
    filters = []
    deadline = time.monotonic() + seconds
    k = 0
    while time.monotonic() < deadline:
        text = f"group{k % 50:02d}/"
        ms = page.evaluate("""(text) => new Promise((done) => {
            const box = document.getElementById("run-filter"); const t0 = performance.now();
            box.value = text; box.dispatchEvent(new Event("input"));
            const check = () => { const rows = document.querySelectorAll('#runs .run-row[data-run]');
                if (rows.length && [...rows].every((r) => r.dataset.run.includes(text))) done(performance.now() - t0);
                else requestAnimationFrame(check); };
            requestAnimationFrame(check);
        })""", text)
        filters.append(ms)
        k += 1
        time.sleep(0.2)
    page.evaluate("""() => { const box = document.getElementById("run-filter"); box.value = ""; box.dispatchEvent(new Event("input")); }""")
    time.sleep(1.0)
    gaps = sorted(page.evaluate("() => window.__gaps"))
    longs = page.evaluate("() => window.__long")
    # the runs table: every run a row (300 in the DOM), sorted by a metric's best
    page.evaluate("() => { window.__long = []; }")
    t0 = time.perf_counter()
    page.click("button[data-tab=config]")
    page.wait_for_function("() => document.querySelectorAll('#tab-config tbody tr').length >= 12", polling="raf", timeout=30000)
    opened = time.perf_counter() - t0
    time.sleep(0.3)
    open_longs = page.evaluate("() => window.__long.splice(0)")
    sort_ms = page.evaluate("""() => new Promise((done) => { const t0 = performance.now();
        const th = document.querySelector("#tab-config th[data-col='b:loss']") || document.querySelector('#tab-config th');
        th.click(); requestAnimationFrame(() => done(performance.now() - t0)); })""")
    time.sleep(0.3)
    page.evaluate("() => { window.__long = []; }")
    time.sleep(3.0)  # live refreshes of the table meanwhile
    rows = page.evaluate("() => document.querySelectorAll('#tab-config tbody tr').length")
    table_longs = page.evaluate("() => window.__long")
    renders = page.evaluate("() => window.tailboard.runList ? window.tailboard.runList.renders : null")
    page.close()
    stop.set()
    writer.join()
    for f in files:
        f.close()
    handle.stop()
    print(f"{n:,} runs x {metrics} metrics, each appending once a second: navigation -> all listed {listed * 1000:.0f} ms, "
          f"-> the selected runs' {metrics} charts drawn {charted * 1000:.0f} ms; then "
          f"filter keystroke -> list updated median {statistics.median(filters):.0f} ms "
          f"(max {max(filters):.0f} ms, {len(filters)} keystrokes); frame interval p50 {gaps[len(gaps) // 2]:.1f} ms, "
          f"p99 {gaps[int(len(gaps) * 0.99)]:.1f} ms; long tasks (> 50 ms): {len(longs)}"
          + (f", longest {max(longs):.0f} ms" if longs else "") + (f"; list renders {renders}" if renders else ""))
    print(f"  runs table: tab -> rows shown {opened * 1000:.0f} ms ({rows} rows in the DOM; longest task "
          f"{max(open_longs, default=0):.0f} ms), a sort click -> next frame {sort_ms:.0f} ms; "
          f"long tasks (> 50 ms) over 3 s of live refreshes: {len(table_longs)}"
          + (f", longest {max(table_longs):.0f} ms" if table_longs else ""))


def replay_memory(browser: object, runs: int, steps: int, speed: float) -> None:
    import subprocess
    import sys

    src = Path(tempfile.mkdtemp(prefix="tailboard-viewer-replay-"))
    t0 = 1.7e9
    for r in range(runs):
        folder = src / f"run{r}"
        folder.mkdir()
        with open(folder / "rank0.jsonl", "wb") as f:
            f.write(encode({"k": "header", "format": "tailboard", "version": 1, "pid": r, "start": t0}))
            chunk = []
            for i in range(steps):
                chunk.append(b'{"k":"scalars","step":%d,"t":%.3f,"v":{"loss":%.6f,"acc":%.6f,"lr":%.6f,"gn":%.6f}}\n'
                             % (i, t0 + i * 0.05, math.exp(-i / steps * 4) + 0.02 * math.sin(i + r), i / steps,
                                1e-3 * (1 - i / steps), abs(math.sin(i / 300))))
                if len(chunk) == 50_000:
                    f.write(b"".join(chunk))
                    chunk = []
            f.write(b"".join(chunk))
    port = free_port()
    t_start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "tailboard.sidecar", "replay", str(src), "--speed", str(speed),
                             "--port", str(port), "--token", "t"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # type: ignore[attr-defined]
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page.goto(f"http://127.0.0.1:{port}/?token=t")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        opened = time.monotonic() - t_start
        total = runs * steps * 4
        expected = steps * 0.05 / speed
        samples = []
        held = 0
        while time.monotonic() - t_start < expected + 30:
            time.sleep(1.0)
            heap, held, last = page.evaluate("""() => { let n = 0, last = 0;
                for (const rd of window.tailboard.state.runs.values())
                    for (const s of rd.series.values()) { n += s.length; last = Math.max(last, s.length ? s.steps[s.length - 1] : 0); }
                return [performance.memory.usedJSHeapSize, n, last]; }""")
            samples.append(heap / 1e6)
            if last >= steps - 1:
                break
        print(f"replay of {runs} runs x 4 metrics x {steps:,} steps at {speed:,.0f}x ({total:,} points, "
              f"{time.monotonic() - t_start:.0f} s, page open after {opened:.1f} s): JS heap {samples[0]:.1f} MB "
              f"at the first sample, peak {max(samples):.1f} MB, "
              f"end {samples[-1]:.1f} MB; the page holds {held:,} points (at most 100k per series)")
    finally:
        page.close()
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--runs", type=int, default=1000, help="runs for the run-list measurement (0: skip it)")
    ap.add_argument("--metrics", type=int, default=100, help="metrics of each run in the run-list measurement")
    ap.add_argument("--replay-steps", type=int, default=500_000, help="steps per run of the replay (0: skip it)")
    ap.add_argument("--replay-speed", type=float, default=1000.0)
    ap.add_argument("--viewer-dir", type=Path, default=None, help="serve the page's files from this folder")
    ap.add_argument("--skip-tables", action="store_true", help="no dashboard run with data tables open")
    ap.add_argument("--skip-dashboard", action="store_true", help="no dashboard runs (2.) at all")
    args = ap.parse_args()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                    args=ARGS + ["--enable-precise-memory-info"])
        try:
            if not args.skip_big:
                first_paint(browser, args.points)
            if not args.skip_dashboard:
                dashboard(browser, args.seconds, viewer_dir=args.viewer_dir)
            if not (args.skip_tables or args.skip_dashboard):
                dashboard(browser, args.seconds, viewer_dir=args.viewer_dir, tables=True)
            if not args.skip_dashboard:
                dashboard(browser, args.seconds, viewer_dir=args.viewer_dir, tables=True, runs_n=64, groups=8)
            if args.runs:
                many_runs(browser, args.runs, args.seconds, metrics=args.metrics, viewer_dir=args.viewer_dir)
            if args.replay_steps:
                replay_memory(browser, 4, args.replay_steps, args.replay_speed)
        finally:
            browser.close()


if __name__ == "__main__":
    main()
