"""The viewer in headless Chromium against the real sidecar over real log files."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
import struct
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from pathlib import Path
from typing import Any

import browserkit
import pytest
import tailboard
from browserkit import (
    BROWSER_MARKS,
    OUT,
    Probe,
    ema,
    hover,
    line_colour,
    new_page,
    page_url,
    pixels,
    png_rgba,
    probe,
    screen_point,
    tooltip_reads,
    wait_for,
)
from tailboard.sidecar.server import ServerHandle, serve_in_thread

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS


def loss(lr: float, i: int) -> float:
    return math.exp(-lr * i / 50) + 0.05 * math.sin(i / 3)


def acc(lr: float, i: int) -> float:
    return 1 - math.exp(-lr * i / 80)


def write(root: Path, run_id: str, steps: range, lr: float) -> tailboard.Run:
    run = tailboard.init(root / run_id, config={"lr": lr})
    for i in steps:
        run.log({"train/loss": loss(lr, i), "eval/acc": acc(lr, i)}, step=i)
        if i % 50 == 0:
            run.log({"grad_norm": [lr * i, 1.0, 2.0], "w": tailboard.Histogram([math.sin(k * (i + 1)) for k in range(200)]),
                     "notes": f"step {i} <b>not html</b>"}, step=i)
    return run


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[ServerHandle, Path, list[tailboard.Run]]]:
    runs = [write(tmp_path, "sweep/lr_0.5/seed0", range(300), 0.5), write(tmp_path, "sweep/lr_2/seed0", range(300), 2.0)]
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    yield handle, tmp_path, runs
    for r in runs:
        r.finish()
    handle.stop()


LR = {"sweep/lr_0.5/seed0": 0.5, "sweep/lr_2/seed0": 2.0}
SMOOTHING = 0.6  # the page's default


def site_values(metric: str, run: str, n: int = 300) -> list[float]:
    f = loss if metric == "train/loss" else acc
    return [f(LR[run], i) for i in range(n)]


def assert_drawn(page: Any, metric: str, values: dict[str, list[float]], steps: list[int], *,
                 smoothing: float = SMOOTHING, log: bool = False) -> None:
    """Each run's line, in its colour, passes where its (smoothed) value at each of `steps` belongs."""
    for run, vals in values.items():
        colour, drawn_values = line_colour(page, metric, run), ema(vals, smoothing)
        for s in steps:
            if log and drawn_values[s] <= 0:
                continue  # not drawable on a log scale
            p = probe(page, metric, s, drawn_values[s])
            assert p.shows(colour), f"{metric}: {run} not drawn at step {s}, value {drawn_values[s]:.4g}: {p}"


def assert_blank(page: Any, metric: str, runs: list[str], x: float, y: float) -> None:
    """No run's line passes near (x, y)."""
    for run in runs:
        p = probe(page, metric, x, y, radius=4)
        assert p.lacks(line_colour(page, metric, run)), f"{metric}: {run} drawn at ({x}, {y}): {p}"


def test_dashboard_lists_runs_paints_charts_and_updates_live(browser: Any, site: Any) -> None:
    handle, _, runs = site
    page, errors = new_page(browser, viewport={"width": 1400, "height": 900})
    page.goto(handle.url)
    # the token left the address bar (the page keeps it in localStorage and sends it in a header)
    wait_for(page, "() => !location.href.includes('token')")
    # the tree lists nested runs; a folder holding one run is one row with it
    wait_for(page, "() => document.querySelectorAll('.run-row[data-run]').length === 2")
    folders = page.eval_on_selector_all(".run-row.folder", "els => els.map(e => e.textContent.trim())")
    assert folders == ["▾ sweep"], folders
    names = page.eval_on_selector_all(".run-row[data-run] .name", "els => els.map(e => e.textContent)")
    assert names == ["lr_0.5/seed0", "lr_2/seed0"]
    # charts are painted: pixels, not only DOM
    wait_for(page, "() => window.tailboard.charts.has('train/loss') && window.tailboard.charts.has('eval/acc')")
    wait_for(page, "() => { const c = window.tailboard.charts.get('train/loss'); return c.series.length === 2 && c.draws > 0; }")
    # each run's line is where its smoothed values belong, in its colour; nothing where no value is
    settle(page, "train/loss")
    assert_drawn(page, "train/loss", {r: site_values("train/loss", r) for r in LR}, [40, 150, 280])
    assert_blank(page, "train/loss", list(LR), 250, 0.8)
    sections = page.eval_on_selector_all("details.section > summary", "els => els.map(e => e.textContent)")
    assert sections == ["eval", "train"]

    # a record appended to a log appears without a reload
    before = pixels(page, "eval/acc")
    for i in range(300, 400):
        runs[0].log({"eval/acc": 5.0 + i / 100, "train/loss": 0.1}, step=i)
    wait_for(page, """() => { const r = window.tailboard.state.runs.get('sweep/lr_0.5/seed0');
                              const b = r && r.series.get('eval/acc'); return b && b.last() && b.last().step === 399; }""")
    wait_for(page, f"() => window.tailboard.charts.get('eval/acc').canvas.toDataURL() !== {before!r}")
    settle(page, "eval/acc")
    grown = site_values("eval/acc", RUNS[0]) + [5.0 + i / 100 for i in range(300, 400)]
    assert_drawn(page, "eval/acc", {RUNS[0]: grown}, [150, 350, 399])
    assert_drawn(page, "eval/acc", {RUNS[1]: site_values("eval/acc", RUNS[1])}, [150, 299])
    assert_blank(page, "eval/acc", list(LR), 200, 4.0)
    loss_now = {RUNS[0]: site_values("train/loss", RUNS[0]) + [0.1] * 100, RUNS[1]: site_values("train/loss", RUNS[1])}

    # smoothing, log scale and zoom each change the drawing
    base = pixels(page, "train/loss")
    page.evaluate(
        "() => { const s = document.getElementById('smoothing'); s.value = '0.95'; s.dispatchEvent(new Event('input')); }")
    wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {base!r}")
    smoothed = settle(page, "train/loss")
    assert_drawn(page, "train/loss", loss_now, [40, 150], smoothing=0.95)
    page.check("#logy")
    wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {smoothed!r}")
    logged = settle(page, "train/loss")
    assert_drawn(page, "train/loss", loss_now, [40, 150], smoothing=0.95, log=True)
    box = page.eval_on_selector("[data-metric='train/loss'] canvas", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
    x, y, w, h = box
    page.mouse.move(x + w * 0.3, y + h / 2)
    page.mouse.down()
    page.mouse.move(x + w * 0.5, y + h / 2, steps=5)
    page.mouse.up()
    wait_for(page, "() => window.tailboard.view.zoom !== null")
    wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {logged!r}")
    settle(page, "train/loss")
    z0, z1 = page.evaluate("() => window.tailboard.view.zoom")
    assert_drawn(page, "train/loss", loss_now, [math.ceil(z0) + 2, round((z0 + z1) / 2), math.floor(z1) - 2],
                 smoothing=0.95, log=True)
    # the view lives in the URL
    wait_for(page, "() => location.search.includes('zoom=') && location.search.includes('logy=1')")
    page.dblclick("[data-metric='train/loss'] canvas")
    wait_for(page, "() => window.tailboard.view.zoom === null")

    # hovering shows every run's value
    page.mouse.move(x + w * 0.6, y + h / 2)
    wait_for(page, "() => !document.querySelector('[data-metric=\"train/loss\"] .tooltip').hidden")
    rows = page.eval_on_selector_all("[data-metric='train/loss'] .tt-row", "els => els.length")
    assert rows == 2

    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT / "dashboard.png"))
    assert not errors, errors
    page.close()


def test_panels_show_histograms_vectors_text_and_the_runs_table(browser: Any, site: Any) -> None:
    handle, _, _ = site
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    page.goto(handle.url)
    wait_for(page, "() => window.tailboard.state.infos.size === 2 && window.tailboard.charts.size > 0")
    painted = """() => { const c = document.querySelector('#tab-%s canvas'); if (!c || !c.width) return false;
                         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                         let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n > 500; }"""
    page.click("button[data-tab=histograms]")
    wait_for(page, painted % "histograms")
    assert page.is_hidden("#controls")
    page.click("button[data-tab=vectors]")
    wait_for(page, painted % "vectors")
    page.click("button[data-tab=text]")
    wait_for(page, "() => document.querySelectorAll('#tab-text .entry').length === 12")
    assert "<b>not html</b>" in page.inner_text("#tab-text")  # text is shown, never interpreted
    page.click("button[data-tab=config]")
    wait_for(page, "() => document.querySelectorAll('#tab-config tbody tr').length === 2")
    head = page.inner_text("#tab-config thead")
    assert "lr" in head and "eval/acc best" in head
    assert not errors, errors
    page.close()


def test_page_reconnects_and_resumes_after_a_server_restart(browser: Any, tmp_path: Path) -> None:
    run = write(tmp_path, "live", range(100), 1.0)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    port = handle.server.port
    page = browser.new_page()
    try:
        page.goto(handle.url)
        wait_for(page, """() => { const r = window.tailboard.state.runs.get('live');
                                  return r && r.series.get('eval/acc') && r.series.get('eval/acc').length === 100; }""")
        handle.stop()
        wait_for(page, "() => document.getElementById('conn').dataset.state !== 'live'")
        for i in range(100, 150):
            run.log({"eval/acc": float(i), "train/loss": 0.5}, step=i)
        handle = serve_in_thread(tmp_path, port=port, token="tok", follower_options={"poll_interval": 0.05})
        wait_for(page, "() => document.getElementById('conn').dataset.state === 'live'", timeout=20)
        wait_for(page, """() => { const b = window.tailboard.state.runs.get('live').series.get('eval/acc');
                                  return b.last().step === 149; }""", timeout=20)
        steps = page.evaluate("() => Array.from(window.tailboard.state.runs.get('live').series.get('eval/acc').view().steps)")
        assert steps == list(range(150))  # resumed from the cursor: no gap, no duplicate
    finally:
        run.finish()
        page.close()
        handle.stop()


def test_page_falls_back_to_long_polling_when_websockets_fail(browser: Any, site: Any) -> None:
    handle, _, runs = site
    page = browser.new_page()
    # a network that refuses WebSockets: every attempt closes before opening
    page.add_init_script("""
        window.WebSocket = class { constructor() { this.readyState = 3;
            setTimeout(() => this.onclose && this.onclose({ code: 1006 }), 10); }
            send() {} close() {} };
        window.WebSocket.OPEN = 1;
    """)
    try:
        page.goto(handle.url)
        wait_for(page, "() => document.getElementById('conn').dataset.state === 'polling'", timeout=20)
        wait_for(page, """() => { const r = window.tailboard.state.runs.get('sweep/lr_0.5/seed0');
                                  const b = r && r.series.get('eval/acc'); return b && b.length === 300; }""", timeout=20)
        for i in range(300, 310):
            runs[0].log({"eval/acc": 2.0}, step=i)
        wait_for(page, """() => window.tailboard.state.runs.get('sweep/lr_0.5/seed0').series.get('eval/acc').last().step
                                  === 309""", timeout=20)
        steps = page.evaluate("() => Array.from(window.tailboard.state.runs.get('sweep/lr_0.5/seed0')"
                              ".series.get('eval/acc').view().steps)")
        assert steps == list(range(310))
        settle(page, "eval/acc")
        assert_drawn(page, "eval/acc", {r: site_values("eval/acc", r) for r in LR}, [100, 250])
        assert_blank(page, "eval/acc", list(LR), 150, 0.2)
    finally:
        page.close()


# ---- exports, x axis modes, the view in the URL, backlog progress --------------------------------

RUNS = ("sweep/lr_0.5/seed0", "sweep/lr_2/seed0")

# Every text drawn on a canvas since its last full clear, with its baseline: the x axis labels are
# the ones drawn with baseline "top" (chart.js), the y axis labels the ones with "middle".
RECORD_TEXT = """
(() => {
  const P = CanvasRenderingContext2D.prototype, clear = P.clearRect, fill = P.fillText;
  P.clearRect = function (x, y, w, h) {
    if (x === 0 && y === 0) this.canvas.__texts = [];
    return clear.call(this, x, y, w, h);
  };
  P.fillText = function (t, x, y, ...rest) {
    (this.canvas.__texts ||= []).push({ text: String(t), baseline: this.textBaseline, x });
    return fill.call(this, t, x, y, ...rest);
  };
})();
"""


def logged_scalars(root: Path, run_id: str, metric: str) -> list[tuple[int, float, float]]:
    """(step, value, wall time) of a metric, read straight from a run's log files."""
    out = []
    for path in sorted((root / run_id).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("k") == "scalars" and metric in rec["v"]:
                out.append((int(rec["step"]), float(rec["v"][metric]), float(rec["t"])))
    return out


def run_start(root: Path, run_id: str) -> float:
    path = min((root / run_id).glob("*.jsonl"))
    return float(json.loads(path.read_text().splitlines()[0])["start"])


def open_loaded(browser: Any, url: str, *, context: Any = None, n: int = 300) -> Any:
    """A page showing both site runs, with every point of both loaded and the loss chart drawn."""
    page = context.new_page() if context else browser.new_page(viewport={"width": 1200, "height": 800})
    page.add_init_script(RECORD_TEXT)
    page.goto(url)
    wait_for(page, f"""() => {{ const t = window.tailboard; if (!t) return false;
        const ok = (r) => {{ const d = t.state.runs.get(r); const b = d && d.series.get('train/loss');
                            return b && b.length === {n}; }};
        const c = t.charts.get('train/loss');
        return ok({RUNS[0]!r}) && ok({RUNS[1]!r}) && c && c.series.length === 2 && c.draws > 0; }}""")
    return page


def x_labels(page: Any, metric: str) -> list[str]:
    return list(page.evaluate(
        "(m) => (window.tailboard.charts.get(m).canvas.__texts || []).filter((t) => t.baseline === 'top').map((t) => t.text)",
        metric))


def settle(page: Any, metric: str) -> str:
    """The chart's pixels once two animation frames passed without a pending draw."""
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    return pixels(page, metric)


def test_csv_export_downloads_every_point_of_every_selected_run(browser: Any, site: Any) -> None:
    handle, root, _ = site
    page = open_loaded(browser, handle.url)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        with page.expect_download(timeout=10_000) as info:
            page.click("[data-metric='eval/acc'] button.csv")
        dl = info.value
        assert dl.suggested_filename == "eval_acc.csv"
        text = Path(dl.path()).read_text()
        lines = text.splitlines()
        assert lines[0] == "run,metric,step,value,wall_time"
        rows = list(csv.reader(lines[1:]))
        assert all(len(r) == 5 for r in rows)
        assert {r[1] for r in rows} == {"eval/acc"}  # only the chart's metric
        assert len(rows) == 2 * 300
        for run_id in RUNS:
            got = [r for r in rows if r[0] == run_id]
            want = logged_scalars(root, run_id, "eval/acc")
            assert len(want) == 300 and len(got) == len(want)
            for (step, value, t), r in zip(want, got):
                assert int(r[2]) == step
                assert float(r[3]) == value
                assert float(r[4]) == t
        # the export follows the selection: one run selected, one run exported
        page.evaluate(f"() => document.querySelector(`.run-row[data-run='{RUNS[1]}']`).click()")
        wait_for(page, "() => window.tailboard.view.runs.length === 1")
        with page.expect_download(timeout=10_000) as info:
            page.click("[data-metric='eval/acc'] button.csv")
        rows = list(csv.reader(Path(info.value.path()).read_text().splitlines()[1:]))
        only = page.evaluate("() => window.tailboard.view.runs[0]")
        assert len(rows) == 300 and {r[0] for r in rows} == {only}
        assert not errors, errors
    finally:
        page.close()


def test_png_export_downloads_the_drawn_chart(browser: Any, site: Any) -> None:
    handle, _, _ = site
    page = open_loaded(browser, handle.url)
    try:
        settle(page, "train/loss")
        with page.expect_download(timeout=10_000) as info:
            page.click("[data-metric='train/loss'] button.png")
        dl = info.value
        assert dl.suggested_filename == "train_loss.png"
        data = Path(dl.path()).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(data) > 5_000
        # IHDR: the image has the canvas's size
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert [width, height] == page.evaluate(
            "() => { const c = window.tailboard.charts.get('train/loss').canvas; return [c.width, c.height]; }")
        assert width > 200 and height > 100
        # the pixels decode (stdlib zlib), and they are the canvas's, pixel for pixel
        _, _, rgba = png_rgba(data)
        canvas = page.evaluate("""() => { const c = window.tailboard.charts.get('train/loss');
            const d = c.ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
            let s = ''; for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode(...d.subarray(i, i + 8192));
            return btoa(s); }""")
        assert rgba == base64.b64decode(canvas)
        # and the picture is the chart: each run's line where its values belong
        for run in RUNS:
            colour, drawn_values = line_colour(page, "train/loss", run), ema(site_values("train/loss", run), SMOOTHING)
            for step in (40, 150, 280):
                p = probe(page, "train/loss", step, drawn_values[step])
                box = Probe(p.px, p.py, p.r, [rgba[4 * (y * width + x) + k] for y in range(p.py - p.r, p.py + p.r + 1)
                                               for x in range(p.px - p.r, p.px + p.r + 1) for k in range(4)])
                assert box.shows(colour), (run, step, box)
    finally:
        page.close()


def test_x_axis_modes_change_the_drawing_the_range_and_the_tick_labels(browser: Any, site: Any) -> None:
    handle, root, _ = site
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1200, "height": 800})
    page = open_loaded(browser, handle.url, context=context)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        logged = {r: logged_scalars(root, r, "train/loss") for r in RUNS}
        times = [t for r in RUNS for _, _, t in logged[r]]
        x_range = "() => { const c = window.tailboard.charts.get('train/loss'); return [c.sx.lo, c.sx.hi]; }"

        step_px = settle(page, "train/loss")
        assert page.evaluate(x_range) == [0, 299]
        step_labels = x_labels(page, "train/loss")
        assert step_labels and all(re.fullmatch(r"\d+", s) for s in step_labels), step_labels

        page.select_option("#xaxis", "relative")
        wait_for(page, "() => window.tailboard.charts.get('train/loss').view.xaxis === 'relative'")
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {step_px!r}")
        rel_px = settle(page, "train/loss")
        lo, hi = page.evaluate(x_range)
        rel = [t - run_start(root, r) for r in RUNS for _, _, t in logged[r]]
        assert lo == pytest.approx(min(rel), abs=1e-3) and hi == pytest.approx(max(rel), abs=1e-3)
        rel_labels = x_labels(page, "train/loss")
        # durations: "0s", "0.02s", "1.5m", ...
        assert rel_labels and all(re.fullmatch(r"-?[\d.]+(e-?\d+)?[smhd]", s) for s in rel_labels), rel_labels
        assert rel_labels != step_labels
        assert "x=relative" in page.evaluate("() => new Promise((r) => setTimeout(() => r(location.search), 300))")

        page.select_option("#xaxis", "wall")
        wait_for(page, "() => window.tailboard.charts.get('train/loss').view.xaxis === 'wall'")
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {rel_px!r}")
        lo, hi = page.evaluate(x_range)
        assert lo == pytest.approx(min(times), abs=1e-3) and hi == pytest.approx(max(times), abs=1e-3)
        wall_labels = x_labels(page, "train/loss")
        # clock times of when the points were written (UTC in this browser)
        first = datetime.fromtimestamp(min(times) - 1, tz=timezone.utc)
        last = datetime.fromtimestamp(max(times) + 1, tz=timezone.utc)
        span = max(times) - min(times)
        fmt = "%H:%M:%S" if span < 120 else "%H:%M"
        allowed = {(first + timedelta(seconds=s)).strftime(fmt) for s in range(int((last - first).total_seconds()) + 2)}
        assert wall_labels and set(wall_labels) <= allowed, (wall_labels, allowed)

        # back to steps: the first drawing again
        page.select_option("#xaxis", "step")
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() === {step_px!r}")
        assert x_labels(page, "train/loss") == step_labels
        assert not errors, errors
    finally:
        page.close()
        context.close()


def test_the_url_carries_the_view_both_ways(browser: Any, site: Any) -> None:
    handle, _, _ = site
    query = f"x=relative&smooth=0.3&logy=1&outliers=1&metrics=loss&runs={RUNS[1]}"
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    try:
        page.goto(page_url(handle, query))
        wait_for(page, "() => window.tailboard && window.tailboard.charts.has('train/loss') "
                       "&& window.tailboard.charts.get('train/loss').draws > 0")
        view = page.evaluate("() => ({ ...window.tailboard.view })")
        assert view["xaxis"] == "relative" and view["smoothing"] == 0.3
        assert view["logy"] is True and view["outliers"] is True
        assert view["metrics"] == "loss" and view["runs"] == [RUNS[1]]
        # the controls show it, the charts draw it
        assert page.input_value("#xaxis") == "relative"
        assert page.input_value("#smoothing") == "0.3"
        assert page.is_checked("#logy") and page.is_checked("#outliers")
        assert page.input_value("#metric-filter") == "loss"
        chart_view = page.evaluate("() => window.tailboard.charts.get('train/loss').view")
        assert chart_view["xaxis"] == "relative" and chart_view["logy"] is True and chart_view["smoothing"] == 0.3
        assert sorted(page.evaluate("() => [...window.tailboard.charts.keys()]")) == ["train/loss"]
        wait_for(page, "() => window.tailboard.charts.get('train/loss').series.length === 1")
        # the token is gone, the view stays
        assert "token" not in page.evaluate("() => location.href")
        assert "x=relative" in page.evaluate("() => location.search")

        # changes made in the page go to the URL
        page.select_option("#xaxis", "wall")
        page.uncheck("#logy")
        page.fill("#metric-filter", "acc")
        wait_for(page, """() => { const q = new URLSearchParams(location.search);
            return q.get('x') === 'wall' && !q.has('logy') && q.get('metrics') === 'acc' && q.get('outliers') === '1'; }""")
        wait_for(page, "() => window.tailboard.charts.has('eval/acc') && !window.tailboard.charts.has('train/loss')")
        page.evaluate("() => document.getElementById('sel-all').click()")
        wait_for(page, f"() => new URLSearchParams(location.search).get('runs') === {','.join(RUNS)!r}")

        # and a reload of that URL gives the same view back
        url = page.url
        page.goto(url)
        wait_for(page, "() => window.tailboard && window.tailboard.charts.has('eval/acc')")
        view = page.evaluate("() => ({ ...window.tailboard.view })")
        assert view["xaxis"] == "wall" and view["logy"] is False and view["metrics"] == "acc"
        assert view["runs"] == list(RUNS) and view["smoothing"] == 0.3
        assert not errors, errors
    finally:
        page.close()


def test_a_progress_bar_shows_while_the_backlog_loads_and_goes_when_it_is_done(
        browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tailboard.sidecar import follower as follower_module

    n_runs = 8
    for k in range(n_runs):
        write(tmp_path, f"backlog/run{k}", range(200), 1.0).finish()
    # A slow disk, made deterministic: each file of the backlog takes 0.4 s to read at start-up;
    # files read later, while following, are not slowed.
    pump, catch_up = follower_module.Follower._pump, follower_module.Follower._catch_up

    def slow_pump(self: Any, f: Any) -> int:
        if not getattr(self, "caught_up", False):
            time.sleep(0.4)
        return int(pump(self, f))

    def marked_catch_up(self: Any) -> None:
        try:
            catch_up(self)
        finally:
            self.caught_up = True

    monkeypatch.setattr(follower_module.Follower, "_pump", slow_pump)
    monkeypatch.setattr(follower_module.Follower, "_catch_up", marked_catch_up)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page = browser.new_page()
    seen: list[str] = []
    page.expose_function("progressSeen", lambda text: seen.append(text))
    page.add_init_script("""
        new MutationObserver(() => { const el = document.getElementById('progress');
            if (el && !el.hidden) window.progressSeen(el.querySelector('span').textContent); })
        .observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
    """)
    try:
        started = time.monotonic()
        page.goto(handle.url)
        # still loading: the bar is shown with how far it got
        wait_for(page, "() => !document.getElementById('progress').hidden", timeout=5)
        assert time.monotonic() - started < n_runs * 0.4
        text = page.inner_text("#progress span")
        assert re.fullmatch(r"loading \d+%", text), text
        width = page.evaluate("() => parseFloat(document.querySelector('#progress div').style.width)")
        assert 0 <= width < 100
        # once the backlog is in, the bar goes away and every run is there
        wait_for(page, "() => document.getElementById('progress').hidden", timeout=15)
        wait_for(page, f"() => window.tailboard.state.infos.size === {n_runs}", timeout=10)
        assert handle.store.progress().done
        percents = [int(re.search(r"\d+", s).group()) for s in seen if re.search(r"\d+", s)]
        assert percents and percents == sorted(percents) and max(percents) < 100, seen
    finally:
        page.close()
        handle.stop()


# ---- time travel, theme, zoom detail -------------------------------------------------------------

def drawn(page: Any, metric: str) -> dict[str, Any]:
    """What a chart draws: its x range and, per series, the number of points and the last step."""
    return dict(page.evaluate(
        """(m) => { const c = window.tailboard.charts.get(m);
            return { lo: c.sx.lo, hi: c.sx.hi, draws: c.draws,
                     series: c.series.map((s) => ({ id: s.id, n: s.steps.length,
                                                    last: s.steps.length ? s.steps[s.steps.length - 1] : null })) }; }""",
        metric))


def replay_state(page: Any) -> dict[str, Any]:
    return dict(page.evaluate(
        """() => ({ value: +document.getElementById('replay').value, out: document.getElementById('replay-out').textContent,
                    until: window.tailboard.state.until, play: document.getElementById('play').textContent })"""))


# Every chart draws only points up to `s`, its x range ends there, and it was drawn since.
CUT_AT = """(s) => [...window.tailboard.charts.values()].every((c) => c.sx && c.sx.hi === s && c.series.length === 2
    && c.series.every((r) => r.steps.length === s + 1 && r.steps[r.steps.length - 1] === s))"""


def test_time_travel_scrubs_the_charts_back_and_play_returns_to_live(browser: Any, site: Any) -> None:
    handle, _, _ = site
    page = open_loaded(browser, handle.url)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        assert replay_state(page) == {"value": 1000, "out": "live", "until": None, "play": "▶"}
        live_px = settle(page, "train/loss")
        live = drawn(page, "train/loss")
        assert live["hi"] == 299 and [s["n"] for s in live["series"]] == [300, 300]

        # scrub back to 40%: the charts show the runs as they were at the step the page names
        page.fill("#replay", "400")
        wait_for(page, "() => document.getElementById('replay-out').textContent !== 'live'")
        shown = replay_state(page)
        m = re.fullmatch(r"step (\d+)", shown["out"])
        assert m, shown
        step = int(m.group(1))
        assert step == round(0.4 * 299) and shown["until"] == step
        page.wait_for_function(CUT_AT, arg=step, timeout=10_000)
        for metric in ("train/loss", "eval/acc"):
            d = drawn(page, metric)
            assert d["lo"] == 0 and d["hi"] == step
            assert all(s["last"] == step and s["n"] == step + 1 for s in d["series"]), d
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {live_px!r}")
        past_px = settle(page, "train/loss")
        assert past_px != live_px
        # the time-travelled drawing is the live drawing of the same points: each line up to the step
        assert_drawn(page, "train/loss", {r: site_values("train/loss", r) for r in RUNS}, [step // 4, step // 2, step])
        assert_blank(page, "train/loss", list(RUNS), step // 2, 0.9)
        # the data held is untouched: only the drawing goes back
        assert page.evaluate(f"() => window.tailboard.state.runs.get({RUNS[0]!r}).series.get('train/loss').length") == 300

        # further back, further cut
        page.fill("#replay", "100")
        page.wait_for_function(CUT_AT, arg=round(0.1 * 299), timeout=10_000)
        assert replay_state(page)["out"] == f"step {round(0.1 * 299)}"
        assert settle(page, "train/loss") not in (past_px, live_px)

        # the right end of the slider is live again: every point, the first drawing
        page.fill("#replay", "1000")
        wait_for(page, "() => document.getElementById('replay-out').textContent === 'live'")
        assert replay_state(page)["until"] is None
        page.wait_for_function(CUT_AT, arg=299, timeout=10_000)
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() === {live_px!r}")

        # play from a scrubbed position: the position moves forward over time until it is live
        page.fill("#replay", "700")
        page.wait_for_function(CUT_AT, arg=round(0.7 * 299), timeout=10_000)
        page.click("#play")
        assert replay_state(page)["play"] == "❚❚"
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            st = replay_state(page)
            st["last"] = max(s["last"] for s in drawn(page, "train/loss")["series"])
            seen.append(st)
            if st["out"] == "live":
                break
            page.wait_for_timeout(100)
        assert seen[-1]["out"] == "live", seen[-1]
        values = [s["value"] for s in seen]
        assert values == sorted(values) and values[0] >= 700 and values[-1] == 1000
        between = {s["value"] for s in seen if 700 < s["value"] < 1000}
        assert len(between) >= 5, values  # it moved in steps, not in one jump
        # the charts followed the position on the way
        lasts = [s["last"] for s in seen]
        assert lasts == sorted(lasts) and len({x for x in lasts if 209 < x < 299}) >= 3, lasts
        assert replay_state(page) == {"value": 1000, "out": "live", "until": None, "play": "▶"}
        page.wait_for_function(CUT_AT, arg=299, timeout=10_000)

        # moving the slider while playing stops the play where the hand put it
        page.fill("#replay", "500")
        page.click("#play")
        wait_for(page, "() => +document.getElementById('replay').value > 520")
        page.fill("#replay", "300")
        page.wait_for_timeout(400)
        assert replay_state(page)["value"] == 300
        assert replay_state(page)["out"] == f"step {round(0.3 * 299)}"
        assert not errors, errors
    finally:
        page.close()


# Opaque pixels of a chart's canvas by colour: lines and 1 px grid rules are drawn in their exact colour.
COLOURS = """(m) => { const c = window.tailboard.charts.get(m);
    const d = c.ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data; const n = {};
    for (let i = 0; i < d.length; i += 4) if (d[i + 3] === 255) {
        const k = '#' + [d[i], d[i + 1], d[i + 2]].map((v) => v.toString(16).padStart(2, '0')).join('');
        n[k] = (n[k] || 0) + 1; }
    return n; }"""
LIGHT = {"grid": "#eceef1", "muted": "#6b7280", "bg": "rgb(255, 255, 255)"}
DARK = {"grid": "#252b33", "muted": "#9aa3ad", "bg": "rgb(17, 20, 24)"}


def theme_of(page: Any) -> dict[str, Any]:
    colours = dict(page.evaluate(COLOURS, "train/loss"))
    return {
        "theme": page.evaluate("() => document.documentElement.dataset.theme"),
        "bg": page.evaluate("() => getComputedStyle(document.body).backgroundColor"),
        "colours": colours,
        "top": max(colours, key=colours.get) if colours else None,
        "lines": page.evaluate("() => window.tailboard.charts.get('train/loss').series.map((s) => s.color)"),
    }


def test_theme_button_switches_light_and_dark_redraws_the_charts_and_stays_in_the_url(
        browser: Any, site: Any) -> None:
    handle, _, _ = site
    context = browser.new_context(color_scheme="light", viewport={"width": 1200, "height": 800})
    page = open_loaded(browser, handle.url, context=context)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        light_px = settle(page, "train/loss")
        light = theme_of(page)
        assert light["theme"] == "light" and light["bg"] == LIGHT["bg"]
        # the grid is the colour drawn most; the axis text is in the muted colour
        assert light["top"] == LIGHT["grid"] and light["colours"][LIGHT["grid"]] > 500, light["colours"]
        assert LIGHT["muted"] in light["colours"]
        assert DARK["grid"] not in light["colours"] and DARK["muted"] not in light["colours"]

        page.click("#theme")
        wait_for(page, "() => document.documentElement.dataset.theme === 'dark'")
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {light_px!r}")
        dark_px = settle(page, "train/loss")
        dark = theme_of(page)
        assert dark["bg"] == DARK["bg"]
        assert dark["top"] == DARK["grid"] and dark["colours"][DARK["grid"]] > 500, dark["colours"]
        assert DARK["muted"] in dark["colours"]
        assert LIGHT["grid"] not in dark["colours"] and LIGHT["muted"] not in dark["colours"]
        # the runs' lines take the dark variant of their colour
        assert len(dark["lines"]) == 2 and all(a != b for a, b in zip(light["lines"], dark["lines"]))
        # the choice is part of the view, kept in the URL
        wait_for(page, "() => new URLSearchParams(location.search).get('theme') === 'dark'")
        assert page.evaluate("() => window.tailboard.view.theme") == "dark"

        # a reload of that URL opens dark, although the system asks for light
        page.goto(page.url)
        wait_for(page, "() => window.tailboard && window.tailboard.charts.has('train/loss') "
                       "&& window.tailboard.charts.get('train/loss').series.length === 2 "
                       "&& window.tailboard.charts.get('train/loss').draws > 0")
        reloaded = theme_of(page)
        assert reloaded["theme"] == "dark" and reloaded["bg"] == DARK["bg"]
        assert reloaded["top"] == DARK["grid"] and LIGHT["grid"] not in reloaded["colours"]

        # and back to light: the URL says so, the drawing is the light one again
        page.click("#theme")
        wait_for(page, "() => document.documentElement.dataset.theme === 'light'")
        wait_for(page, "() => new URLSearchParams(location.search).get('theme') === 'light'")
        page.wait_for_function(
            f"""(g) => {{ const d = ({COLOURS})('train/loss'); return (d[g] || 0) > 500 && !d[{DARK['grid']!r}]; }}""",
            arg=LIGHT["grid"], timeout=10_000)
        again = theme_of(page)
        assert again["bg"] == LIGHT["bg"] and again["lines"] == light["lines"]
        assert dark_px != light_px
        assert not errors, errors
    finally:
        page.close()
        context.close()

    # with no choice made, the page follows the system's preference
    context = browser.new_context(color_scheme="dark", viewport={"width": 1200, "height": 800})
    page = open_loaded(browser, handle.url, context=context)
    try:
        auto = theme_of(page)
        assert auto["theme"] == "dark" and auto["top"] == DARK["grid"]
        assert "theme" not in page.evaluate("() => location.search")
    finally:
        page.close()
        context.close()


def test_zooming_in_fetches_the_range_from_the_server_at_full_detail(browser: Any, tmp_path: Path) -> None:
    n, spike, height = 24_000, 15_123, 25.0

    def value(i: int) -> float:
        return math.sin(i / 700) + 0.1 * math.sin(i * 1.7) + (height if i == spike else 0.0)

    run = tailboard.init(tmp_path / "long")
    for i in range(n):
        run.log({"loss": value(i)}, step=i)
    run.finish()
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if "/api/series" in r.url else None)
    try:
        page.goto(handle.url)
        wait_for(page, """() => { const t = window.tailboard; const r = t && t.state.runs.get('long');
            const b = r && r.series.get('loss'); const c = t && t.charts.get('loss');
            return b && b.length > 0 && c && c.series.length === 1 && c.draws > 0 && c.sx; }""")
        held = page.evaluate("""() => { const b = window.tailboard.state.runs.get('long').series.get('loss');
            return { n: b.length, total: b.total, downsampled: b.downsampled, steps: Array.from(b.view().steps) }; }""")
        # the page holds a thinned copy: far fewer points than were logged
        assert held["downsampled"] and held["total"] == n and held["n"] <= 2_100
        assert not requests  # nothing fetched yet: the snapshot came over the socket
        before_px = settle(page, "loss")

        # drag over a narrow range around the spike
        x0, x1, top, height_px = page.evaluate(
            """([a, b]) => { const c = window.tailboard.charts.get('loss'); const r = c.canvas.getBoundingClientRect();
                return [r.x + c.sx.px(a), r.x + c.sx.px(b), r.y, r.height]; }""", [spike - 250, spike + 250])
        assert x1 - x0 > 6
        with page.expect_response(lambda r: "/api/series" in r.url, timeout=10_000) as info:
            page.mouse.move(x0, top + height_px / 2)
            page.mouse.down()
            page.mouse.move(x1, top + height_px / 2, steps=5)
            page.mouse.up()
        response = info.value
        assert response.ok
        zoom = page.evaluate("() => window.tailboard.view.zoom")
        assert zoom and zoom[0] < spike < zoom[1] and zoom[1] - zoom[0] < 1_000
        # the page asked the server for that range of that series
        q = dict(p.split("=", 1) for p in response.url.split("?", 1)[1].split("&"))
        assert q["run"] == "long" and q["metric"] == "loss"
        assert int(q["start"]) == math.floor(zoom[0]) and int(q["end"]) == math.ceil(zoom[1])
        assert int(q["points"]) >= int(q["end"]) - int(q["start"]) + 1
        body = response.json()
        assert body["steps"][0] == int(q["start"]) and body["steps"][-1] == int(q["end"])

        # the chart now draws every logged point of the range: more than the thinned copy held there
        lo, hi = math.ceil(zoom[0]), math.floor(zoom[1])
        wait_for(page, f"""() => {{ const s = window.tailboard.charts.get('loss').series[0];
            return s.steps.length === {len(body['steps'])} && s.steps[0] === {body['steps'][0]}; }}""")
        series = page.evaluate("""() => { const s = window.tailboard.charts.get('loss').series[0];
            return { steps: Array.from(s.steps), values: Array.from(s.values) }; }""")
        inside = [(s, v) for s, v in zip(series["steps"], series["values"]) if lo <= s <= hi]
        before = [s for s in held["steps"] if lo <= s <= hi]
        assert [s for s, _ in inside] == list(range(lo, hi + 1))
        assert len(inside) > 4 * len(before), (len(inside), len(before))
        for s, v in inside:
            assert v == pytest.approx(value(int(s)), abs=1e-12)
        assert dict(inside)[spike] == pytest.approx(value(spike))
        # the neighbours of the spike, which the thinned copy did not have, are drawn
        assert not {spike - 3, spike - 2, spike + 2, spike + 3} <= set(held["steps"])
        assert {spike - 3, spike - 2, spike + 2, spike + 3} <= set(series["steps"])
        # the y range fits the spike; the drawing changed
        sy_hi = page.evaluate("() => window.tailboard.charts.get('loss').sy.hi")
        assert sy_hi >= value(spike)
        assert settle(page, "loss") != before_px

        # a double click zooms out: back to the thinned copy, nothing more fetched
        fetched = len(requests)
        page.dblclick("[data-metric='loss'] canvas")
        wait_for(page, "() => window.tailboard.view.zoom === null")
        wait_for(page, f"""() => {{ const c = window.tailboard.charts.get('loss');
            return c.series[0].steps.length === {held['n']}; }}""")
        assert len(requests) == fetched
        assert not errors, errors
    finally:
        page.close()
        handle.stop()


def test_a_long_run_list_is_virtual_and_scrolls_to_every_run(browser: Any, tmp_path: Path) -> None:
    """400 runs: all are known to the list, only the rows near the visible part are in the DOM, and
    scrolling brings any of them (the last included) into view, selectable."""
    n = 400
    for r in range(n):
        folder = tmp_path / f"g{r % 20:02d}" / f"run{r:03d}"
        folder.mkdir(parents=True)
        (folder / "rank0.jsonl").write_bytes(
            b'{"k":"header","format":"tailboard","version":1,"pid":1}\n'
            b'{"k":"scalars","step":0,"t":1700000000,"v":{"loss":1.0}}\n')
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    try:
        page.goto(handle.url)
        # the list learns of runs at once and puts rows in the DOM at the next animation frame
        wait_for(page, f"() => window.tailboard.runList.infos.size === {n} && window.tailboard.runList.rows.length === {n + 20}")
        rows = page.evaluate("() => document.querySelectorAll('#runs .run-row').length")
        assert 10 < rows < 150, f"{rows} rows in the DOM for {n} runs and 20 folders"
        last = "g19/run399"
        assert page.evaluate(f"() => document.querySelector(`.run-row[data-run='{last}']`)") is None
        page.evaluate("() => { const el = document.getElementById('runs'); el.scrollTop = el.scrollHeight; }")
        wait_for(page, f"() => !!document.querySelector(`.run-row[data-run='{last}']`)")
        page.click(f".run-row[data-run='{last}']")
        wait_for(page, f"() => window.tailboard.view.runs.includes('{last}')")
        assert page.evaluate("() => document.querySelectorAll('#runs .run-row').length") < 150
        # the filter narrows the list and everything it keeps is shown
        page.fill("#run-filter", "run39")
        wait_for(page, "() => document.querySelectorAll('#runs .run-row[data-run]').length === 10")
    finally:
        page.close()
        handle.stop()


# ---- logs that are not tailboard's own: what was found, unequal histogram bins, formats ----------

HEADER_LINE = '{"k":"header","format":"tailboard","version":1,"pid":1,"start":1700000000}\n'


def empty_page(page: Any) -> dict[str, Any]:
    """What the empty page shows: its text, whether it is hidden, and the names it lists (as text)."""
    return dict(page.evaluate("""() => { const el = document.getElementById('empty');
        return { hidden: el.hidden, text: el.innerText,
                 files: [...el.querySelectorAll('.found-files code')].map((c) => c.textContent),
                 elements: [...el.querySelectorAll('*')].map((e) => e.tagName.toLowerCase()) }; }"""))


def test_the_empty_page_says_what_was_found_under_the_log_folder_live(browser: Any, tmp_path: Path) -> None:
    """Nothing, then files no reader claims (hostile names shown as text, nothing run), then a run:
    the page says each as it happens."""
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    dialogs: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    try:
        page.goto(handle.url)
        wait_for(page, "() => document.getElementById('empty').innerText.includes('nothing under the log folder')")
        assert "Runs appear here" in empty_page(page)["text"]

        hostile = ['<img src=x onerror="window.pwned=1;alert(1)">.dat', "evil\u202egol.dat"]
        (tmp_path / "junk").mkdir()
        (tmp_path / "junk" / "a.dat").write_bytes(b"\x00\x01\x02\xff not a log")
        for name in hostile:
            (tmp_path / name).write_bytes(b"\x00\x9f\x92\x96 binary")
        wait_for(page, "() => document.getElementById('empty').innerText.includes('3 files found')")
        shown = empty_page(page)
        assert "not recognised as a log" in shown["text"]
        # each name as text: the markup one verbatim, the bidi control made visible
        assert sorted(shown["files"]) == sorted([hostile[0], "evil⟨U+202E⟩gol.dat", "junk/a.dat"])
        assert "img" not in shown["elements"] and "script" not in shown["elements"]
        assert page.evaluate("() => window.pwned") is None and not dialogs
        # which formats are read, and how to name the reader of the others
        for what in ("JSON lines", "TensorBoard event files", "CSV", "trainer_state.json", "text logs"):
            assert what in shown["text"], what
        assert "tailboard serve LOGDIR --include '*.dat=READER'" in shown["text"]
        assert "READER one of jsonl, tfevents, csv, jsondoc or text" in shown["text"]

        # a CSV log appears: the page shows its run, and says in which format its file is
        (tmp_path / "csvrun").mkdir()
        (tmp_path / "csvrun" / "metrics.csv").write_text("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(20)))
        wait_for(page, "() => window.tailboard.state.infos.has('csvrun') && window.tailboard.charts.has('loss')")
        wait_for(page, "() => document.getElementById('empty').hidden")
        assert "Select runs" in empty_page(page)["text"]
        title = page.get_attribute(".run-row[data-run='csvrun']", "title")
        assert title is not None and title.endswith("\nfiles: csv"), title
        page.click("button[data-tab=config]")
        wait_for(page, "() => document.querySelectorAll('#tab-config tbody tr').length === 1")
        heads = page.eval_on_selector_all("#tab-config thead th", "els => els.map((e) => e.textContent)")
        cells = page.eval_on_selector_all("#tab-config tbody td", "els => els.map((e) => e.textContent)")
        assert cells[heads.index("files")] == "csv"
        assert not errors, errors
    finally:
        page.close()
        handle.stop()


# One column of device pixels of the histogram panel's canvas, at a fraction of the plot's width.
COLUMN = """(f) => { const c = document.querySelector('#tab-histograms canvas');
    const x = Math.round((50 + f * (c.clientWidth - 58)) * c.width / c.clientWidth);
    return { x, dpr: c.width / c.clientWidth, height: c.height,
             pixels: Array.from(c.getContext('2d').getImageData(x, 0, 1, c.height).data) }; }"""


def row_of(value: float, top: int, bottom: int) -> float:
    """The pixel row of a value of 0..10 on a plot painted from row `top` (10) to `bottom` (0)."""
    return top + (10.0 - value) / 10.0 * (bottom - top)


def test_a_histogram_with_unequal_bins_is_drawn_at_its_bins_bounds(browser: Any, tmp_path: Path) -> None:
    """Two records of one histogram, each with its own unequal edges over 0..10: each column's cells
    span exactly their bins (by pixels), coloured by how densely each bin is filled; hovering a cell
    names its true bounds."""
    records = [  # (step, edges, counts): densities 10, 5, 1 and 1, 4, 2 per unit
        (0, [0.0, 1.0, 2.0, 10.0], [10, 5, 8]),
        (1, [0.0, 5.0, 6.0, 10.0], [5, 4, 8]),
    ]
    run = tmp_path / "tb"
    run.mkdir()
    lines = [HEADER_LINE, '{"k":"scalars","step":0,"t":1700000000,"v":{"loss":1.0}}\n']
    for step, edges, counts in records:
        lines.append(json.dumps({"k": "hist", "step": step, "t": 1700000000 + step, "name": "acts", "lo": 0.0,
                                 "hi": 10.0, "counts": counts, "edges": edges}) + "\n")
    (run / "rank0.jsonl").write_text("".join(lines))
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    try:
        page.goto(handle.url)
        wait_for(page, "() => (window.tailboard.state.infos.get('tb')?.histograms || []).length === 1")
        page.click("button[data-tab=histograms]")
        wait_for(page, """() => { const c = document.querySelector('#tab-histograms canvas'); if (!c || !c.width) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n > 500; }""")
        for j, (_, edges, counts) in enumerate(records):
            col = page.evaluate(COLUMN, (j + 0.25) / len(records))  # clear of the step labels
            px = col["pixels"]
            rgba = [tuple(px[i:i + 4]) for i in range(0, len(px), 4)]
            top = next(y for y, p in enumerate(rgba) if p[3] > 0)
            bottom = next(y for y in range(top, len(rgba)) if rgba[y][3] == 0)  # the plot ends; labels below
            # the value range 0..10 spans the painted rows; each bin is where its bounds put it
            box_rows = (top, bottom)
            widths = [b - a for a, b in pairwise(edges)]
            density = [c / w for c, w in zip(counts, widths)]
            for i, (a, b) in enumerate(pairwise(edges)):
                alpha = round((0.08 + 0.92 * density[i] / max(density)) * 255)
                # the rows inside the bin, clear of its edges
                y0, y1 = math.ceil(row_of(b, *box_rows)) + 1, math.floor(row_of(a, *box_rows)) - 1
                assert y1 - y0 > 3, (j, i, y0, y1)
                inside = rgba[y0:y1]
                assert all(abs(p[3] - alpha) <= 6 and abs(p[0] - 37) <= 12 and abs(p[2] - 235) <= 12 for p in inside), \
                    (j, i, alpha, sorted({p[3] for p in inside}))
            # hovering the middle of the widest bin names its bounds and count
            widest = max(range(len(widths)), key=lambda i: widths[i])
            box = page.eval_on_selector("#tab-histograms canvas", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y]; }")
            mid = row_of((edges[widest] + edges[widest + 1]) / 2, *box_rows) / col["dpr"]
            page.mouse.move(box[0] + 1 + col["x"] / col["dpr"], box[1] + 1 + mid)
            wait_for(page, f"""() => {{ const t = document.querySelector('#tab-histograms .tooltip');
                return !t.hidden && t.textContent.includes('step {j}'); }}""")
            tip = page.inner_text("#tab-histograms .tooltip")
            bounds = " to ".join(f"{v:g}" for v in edges[widest:widest + 2])
            assert bounds in tip and f"{counts[widest]} values" in tip, tip
        OUT.mkdir(exist_ok=True)
        page.screenshot(path=str(OUT / "histogram-unequal-bins.png"))
        assert not errors, errors
    finally:
        page.close()
        handle.stop()


# ---- comparing runs: reading values, run names, layout -------------------------------------------

READOUT = """(sel) => { const t = document.querySelector(sel); if (!t || t.hidden || !t.offsetParent) return null;
    const cell = (tr, c) => { const td = tr.querySelector('td.' + c); return td ? td.innerText.trim() : null; };
    return { head: t.querySelector('.tt-x').innerText.trim(), day: t.querySelector('.tt-day').innerText.trim(),
             rows: [...t.querySelectorAll('tbody tr')].map((tr) => ({ run: tr.dataset.run,
                 label: tr.querySelector('td.run .lbl').innerText, full: (tr.querySelector('td.run .full') || {}).innerText,
                 smoothed: cell(tr, 'smoothed'), value: cell(tr, 'value'), step: cell(tr, 'step'),
                 relative: cell(tr, 'relative'), wall: cell(tr, 'wall') })) }; }"""

LEGEND = """(m) => [...document.querySelectorAll(`[data-metric='${m}'] .legend .lg-item`)].map((e) =>
    ({ run: e.dataset.run, text: e.innerText.trim(), title: e.title }))"""


def readout(page: Any, selector: str) -> dict[str, Any] | None:
    """What a data table shows: its heading, its day and, per run, the text of each of its cells."""
    return page.evaluate(READOUT, selector)  # type: ignore[no-any-return]


def elapsed_text(s: float) -> str:
    """A duration as the data table writes it: "340 ms", "4.25 s", "12.5 s", "3 min 05 s", "2 h 07 min"."""
    if s < 0.9995:
        return f"{round(s * 1000)} ms"
    if s < 60:
        return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60):02d} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} min"


def test_the_legend_and_the_data_table_read_every_run_at_a_whole_step(browser: Any, site: Any) -> None:
    """Each chart names its runs (label, full name on hover); hovering between two steps shows, per
    run, the smoothed and raw value at the nearest real step, its relative and wall time; a click pins
    that table under the chart until it is closed."""
    handle, root, _ = site
    context = browser.new_context(timezone_id="UTC", viewport={"width": 1200, "height": 800})
    page = open_loaded(browser, handle.url, context=context)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # the legend: the config key that tells the runs apart, the full name on hover
        wait_for(page, "() => document.querySelectorAll(\"[data-metric='train/loss'] .legend .lg-item\").length === 2")
        wait_for(page, f"() => ({LEGEND})('train/loss')[0].text === 'lr=0.5'")
        assert page.evaluate(LEGEND, "train/loss") == [
            {"run": RUNS[0], "text": "lr=0.5", "title": RUNS[0]}, {"run": RUNS[1], "text": "lr=2", "title": RUNS[1]}]

        # hover between steps 123 and 124, nearer 123
        hover(page, "train/loss", 123.3, tooltip_reads("train/loss", "step 123"))
        shown = readout(page, "[data-metric='train/loss'] .tooltip")
        assert shown is not None and shown["head"] == "step 123", shown
        assert sorted(r["run"] for r in shown["rows"]) == sorted(RUNS)
        for row in shown["rows"]:
            run = row["run"]
            step, value, t = logged_scalars(root, run, "train/loss")[123]
            assert row["label"] == f"lr={LR[run]:g}" and row["full"] == run
            assert step == 123 and row["step"] == "123"
            assert float(row["value"]) == pytest.approx(value, rel=1e-5)
            assert float(row["smoothed"]) == pytest.approx(ema(site_values("train/loss", run), SMOOTHING)[123], rel=1e-5)
            assert row["relative"] == elapsed_text(t - run_start(root, run)), (row, t - run_start(root, run))
            # the time of day in the row, the day once above the rows (all of them on one day here)
            assert row["wall"] == datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S")
            assert shown["day"] == datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d")
        # rows by smoothed value, highest first (the line on top is the row on top)
        assert [float(r["smoothed"]) for r in shown["rows"]] == sorted((float(r["smoothed"]) for r in shown["rows"]), reverse=True)

        # a click pins the table at the nearest step; it stays when the pointer leaves
        page.mouse.click(*screen_point(page, "train/loss", 200.4))
        wait_for(page, "() => { const t = document.querySelector(\"[data-metric='train/loss'] .pinned-table\"); return t && !t.hidden; }")
        page.mouse.move(5, 5)
        wait_for(page, "() => document.querySelector(\"[data-metric='train/loss'] .tooltip\").hidden")
        pinned = readout(page, "[data-metric='train/loss'] .pinned-table")
        assert pinned is not None and pinned["head"] == "step 200", pinned
        for row in pinned["rows"]:
            assert row["step"] == "200"
            assert float(row["value"]) == pytest.approx(loss(LR[row["run"]], 200), rel=1e-5)
        page.click("[data-metric='train/loss'] .pinned-table button.unpin")
        wait_for(page, "() => document.querySelector(\"[data-metric='train/loss'] .pinned-table\").hidden")

        # the pointer on a legend entry draws that run over the others, which fade
        settle(page, "train/loss")
        drawn = {r: ema(site_values("train/loss", r), SMOOTHING) for r in RUNS}
        colours = {r: line_colour(page, "train/loss", r) for r in RUNS}
        assert all(probe(page, "train/loss", 60, drawn[r][60]).shows(colours[r]) for r in RUNS)
        page.hover(f"[data-metric='train/loss'] .lg-item[data-run='{RUNS[1]}']")
        wait_for(page, f"() => window.tailboard.charts.get('train/loss').highlight === {RUNS[1]!r}")
        settle(page, "train/loss")
        assert probe(page, "train/loss", 60, drawn[RUNS[1]][60]).shows(colours[RUNS[1]])
        assert not probe(page, "train/loss", 60, drawn[RUNS[0]][60]).shows(colours[RUNS[0]])
        page.mouse.move(5, 5)
        wait_for(page, "() => window.tailboard.charts.get('train/loss').highlight === null")
        assert not errors, errors
    finally:
        context.close()


def test_labels_made_from_hostile_names_and_configs_are_text(browser: Any, tmp_path: Path) -> None:
    """Run names and config values are log content: the legend and the data table show them as
    text, their hidden characters made visible, whatever markup they hold."""
    img, rlo = "<img src=x onerror=window.__pwned=1>", "\u202e"
    runs = {f"{img}/a": {"opt": f"<svg onload=__pwned=2>{rlo}x"}, f"{img}/b": {"opt": "sgd"}}
    for run_id, config in runs.items():
        with tailboard.init(tmp_path / run_id, config=config) as run:
            for i in range(20):
                run.log({"loss": 1 / (i + 1)}, step=i)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    try:
        page.goto(handle.url)
        wait_for(page, "() => window.tailboard && document.querySelectorAll(\"[data-metric='loss'] .lg-item\").length === 2")
        wait_for(page, f"() => ({LEGEND})('loss')[1].text === 'opt=sgd'")
        legend = page.evaluate(LEGEND, "loss")
        assert [e["text"] for e in legend] == ["opt=<svg onload=__pwned=2>⟨U+202E⟩x", "opt=sgd"]
        assert [e["title"] for e in legend] == list(runs)
        hover(page, "loss", 10, tooltip_reads("loss", "step 10"))
        shown = readout(page, "[data-metric='loss'] .tooltip")
        assert shown is not None and sorted(r["full"] for r in shown["rows"]) == sorted(runs)
        assert page.evaluate("() => ({ pwned: window.__pwned ?? null, img: !!document.querySelector('img'), "
                             "svg: !!document.querySelector('svg') })") == {"pwned": None, "img": False, "svg": False}
        assert rlo not in page.inner_text("body")
        assert not errors, errors
    finally:
        page.close()
        handle.stop()


def test_series_of_one_point_and_isolated_points_are_drawn_as_markers(browser: Any, tmp_path: Path) -> None:
    """What add_hparams writes (one point per run) and points between gaps (NaN on both sides) are
    drawn as dots in the run's colour, at their place."""
    sparse = {10: 0.25, 30: 0.75}
    for name, accuracy in (("hp/a", 0.9), ("hp/b", 0.6)):
        w = tailboard.SummaryWriter(tmp_path / name)
        for i in range(50):
            w.add_scalar("train/loss", 1 / (i + 1), i)
            w.add_scalar("train/sparse", sparse.get(i, math.nan) if name == "hp/a" else 0.5, i)
        w.add_hparams({"lr": 0.1 if name == "hp/a" else 0.01}, {"hparam/accuracy": accuracy})
        w.close()
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    try:
        page.goto(page_url(handle, "smooth=0"))
        wait_for(page, """() => { const c = window.tailboard.charts.get('hparam/accuracy'), s = window.tailboard.charts.get('train/sparse');
            return c && c.series.length === 2 && c.draws > 0 && s && s.series.length === 2 && s.draws > 0; }""")
        step = logged_scalars(tmp_path, "hp/a", "hparam/accuracy")[0][0]
        settle(page, "hparam/accuracy")
        for run, accuracy in (("hp/a", 0.9), ("hp/b", 0.6)):
            colour = line_colour(page, "hparam/accuracy", run)
            assert probe(page, "hparam/accuracy", step, accuracy).shows(colour), run
        assert_blank(page, "hparam/accuracy", ["hp/a", "hp/b"], step, 0.75)
        settle(page, "train/sparse")
        colour = line_colour(page, "train/sparse", "hp/a")
        for s, v in sparse.items():
            assert probe(page, "train/sparse", s, v).shows(colour), (s, v)
        assert probe(page, "train/sparse", 20, 0.25, radius=4).lacks(colour)
        assert not errors, errors
    finally:
        page.close()
        handle.stop()


def test_a_visible_control_resets_the_zoom(browser: Any, site: Any) -> None:
    handle, _, _ = site
    page = open_loaded(browser, handle.url)
    try:
        assert page.is_hidden("#reset-zoom")
        x0, y = screen_point(page, "train/loss", 50)
        x1, _ = screen_point(page, "train/loss", 120)
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(x1, y, steps=5)
        page.mouse.up()
        wait_for(page, "() => window.tailboard.view.zoom !== null")
        assert page.is_visible("#reset-zoom")
        page.click("#reset-zoom")
        wait_for(page, "() => window.tailboard.view.zoom === null")
        wait_for(page, "() => { const c = window.tailboard.charts.get('train/loss'); return c.sx.lo === 0 && c.sx.hi === 299; }")
        assert page.is_hidden("#reset-zoom")
        wait_for(page, "() => !location.search.includes('zoom=')")
    finally:
        page.close()


TRIO = ("opt/adam", "opt/lion", "opt/sgd")  # dropping adam from these three once moved the other two's hues


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[ServerHandle]:
    """Three runs of four metrics in two groups (train: acc, loss, lr; eval: acc)."""
    for k, run_id in enumerate(TRIO):
        with tailboard.init(tmp_path / run_id, config={"optimizer": run_id.split("/")[1], "lr": 0.1}) as run:
            for i in range(60):
                run.log({"train/acc": 1 - 1 / (i + k + 1), "train/loss": 1 / (i + k + 1), "train/lr": 0.1 / (1 + i),
                         "eval/acc": 0.5 + k / 10}, step=i)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    yield handle
    handle.stop()


CARDS = "() => [...document.querySelectorAll('#sections .chart')].map((c) => c.dataset.metric)"
COLOUR_OF = "(r) => window.tailboard.charts.get('train/loss').series.find((s) => s.id === r).color"


def open_trio(browser: Any, handle: ServerHandle, query: str = "", viewport: tuple[int, int] = (1200, 800),
              context: Any = None) -> Any:
    page = (context or browser).new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.goto(page_url(handle, query))
    wait_for(page, "() => window.tailboard && window.tailboard.charts.size === 4 && "
                   "[...window.tailboard.charts.values()].every((c) => c.series.length === 3 && c.draws > 0)")
    return page


def test_charts_keep_their_order_and_runs_their_colours(browser: Any, trio: ServerHandle) -> None:
    page = open_trio(browser, trio)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        order = page.evaluate(CARDS)
        assert order == ["eval/acc", "train/acc", "train/loss", "train/lr"]
        page.fill("#metric-filter", "loss")
        wait_for(page, "() => window.tailboard.charts.size === 1")
        page.fill("#metric-filter", "")
        wait_for(page, "() => window.tailboard.charts.size === 4")
        assert page.evaluate(CARDS) == order

        colours = {r: page.evaluate(COLOUR_OF, r) for r in TRIO}
        assert len(set(colours.values())) == 3
        page.click(f".run-row[data-run='{TRIO[0]}']")  # deselect adam
        wait_for(page, "() => window.tailboard.charts.get('train/loss').series.length === 2")
        assert {r: page.evaluate(COLOUR_OF, r) for r in TRIO[1:]} == {r: colours[r] for r in TRIO[1:]}
        page.click(f".run-row[data-run='{TRIO[0]}']")  # and back: it takes its colour again
        wait_for(page, "() => window.tailboard.charts.get('train/loss').series.length === 3")
        assert {r: page.evaluate(COLOUR_OF, r) for r in TRIO} == colours
        assert not errors, errors
    finally:
        page.close()


def test_run_labels_say_what_differs_and_the_sidebar_widens(browser: Any, site: Any, tmp_path: Path) -> None:
    handle, root, _ = site
    long_id = "sweep/a_run_with_a_rather_long_descriptive_name_lr_0.5"
    with tailboard.init(root / long_id, config={"lr": 0.5}) as run:
        run.log({"train/loss": 1.0}, step=0)
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    try:
        page.goto(page_url(handle, f"runs={RUNS[0]},{RUNS[1]}"))
        wait_for(page, f"() => ({LEGEND})('train/loss').length === 2 && ({LEGEND})('train/loss')[0].text === 'lr=0.5'")
        # by path: the parts of the names that differ
        page.select_option("#labels", "path")
        wait_for(page, f"() => ({LEGEND})('train/loss')[0].text === 'lr_0.5'")
        assert [e["text"] for e in page.evaluate(LEGEND, "train/loss")] == ["lr_0.5", "lr_2"]
        wait_for(page, "() => new URLSearchParams(location.search).get('labels') === 'path'")
        page.select_option("#labels", "full")
        wait_for(page, f"() => ({LEGEND})('train/loss')[0].text === {RUNS[0]!r}")
        page.select_option("#labels", "auto")
        wait_for(page, f"() => ({LEGEND})('train/loss')[0].text === 'lr=0.5'")

        # the run list: a folder holding one run is one row, named in full, not cut
        wait_for(page, f"() => !!document.querySelector(`.run-row[data-run='{long_id}']`)")
        name = f".run-row[data-run='{RUNS[0]}'] .name"
        assert page.eval_on_selector(name, "e => e.textContent") == "lr_0.5/seed0"
        assert page.eval_on_selector(name, "e => e.scrollWidth <= e.clientWidth")
        long_name = f".run-row[data-run='{long_id}'] .name"
        assert page.eval_on_selector(long_name, "e => e.scrollWidth > e.clientWidth")  # cut at the start width
        # drag the sidebar's edge: the long name is whole, and the width stays for the next visit
        width = page.eval_on_selector(".side", "e => e.getBoundingClientRect().width")
        box = page.eval_on_selector(".side-resizer", "e => { const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }")
        page.mouse.move(*box)
        page.mouse.down()
        page.mouse.move(box[0] + 250, box[1], steps=5)
        page.mouse.up()
        assert page.eval_on_selector(".side", "e => e.getBoundingClientRect().width") == pytest.approx(width + 250, abs=2)
        wait_for(page, f"() => {{ const e = document.querySelector(`{long_name}`); return e.scrollWidth <= e.clientWidth; }}")
        page.reload()
        wait_for(page, "() => window.tailboard && window.tailboard.charts.has('train/loss')")
        assert page.eval_on_selector(".side", "e => e.getBoundingClientRect().width") == pytest.approx(width + 250, abs=2)
        assert not errors, errors
    finally:
        page.close()


GRID_COLUMNS = "() => getComputedStyle(document.querySelector('#sections .grid')).gridTemplateColumns.split(' ').length"


def test_the_grid_fits_one_to_four_columns_to_the_width(browser: Any, trio: ServerHandle) -> None:
    page = open_trio(browser, trio)
    try:
        for width, columns in ((700, 1), (1200, 2), (1800, 3), (2600, 4), (3400, 4)):
            page.set_viewport_size({"width": width, "height": 800})
            wait_for(page, f"() => ({GRID_COLUMNS})() === {columns}")
        page.select_option("#cols", "2")
        wait_for(page, f"() => ({GRID_COLUMNS})() === 2")
        wait_for(page, "() => new URLSearchParams(location.search).get('cols') === '2'")
    finally:
        page.close()


def test_pinned_enlarged_and_collapsed_charts_are_kept_in_the_url(browser: Any, trio: ServerHandle) -> None:
    page = open_trio(browser, trio, viewport=(1600, 900))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.click("[data-metric='train/lr'] button.pin")
        wait_for(page, f"() => ({CARDS})()[0] === 'train/lr'")
        assert page.evaluate(CARDS) == ["train/lr", "eval/acc", "train/acc", "train/loss"]
        assert page.eval_on_selector("#sections > :first-child", "e => e.id") == "section-pinned"
        page.click("[data-metric='train/loss'] button.big")
        wait_for(page, "() => document.querySelector(\"[data-metric='train/loss']\").classList.contains('big')")
        big = """() => { const c = document.querySelector("[data-metric='train/loss']"), g = c.parentElement;
            const cv = c.querySelector('canvas');
            return c.getBoundingClientRect().width === g.getBoundingClientRect().width && cv.clientHeight > 400; }"""
        wait_for(page, big)
        page.click("#section-eval > summary")
        wait_for(page, "() => !document.getElementById('section-eval').open")
        wait_for(page, """() => { const q = new URLSearchParams(location.search);
            return q.getAll('pin').join() === 'train/lr' && q.get('big') === 'train/loss' && q.getAll('fold').join() === 'eval'; }""")
        url = page.evaluate("() => location.href")
        assert "token" not in url

        # the copied link, opened elsewhere, shows the same layout
        other = browser.new_context(viewport={"width": 1600, "height": 900})
        copy = other.new_page()
        copy.goto(f"{url}#token={trio.token}")
        wait_for(copy, "() => window.tailboard && window.tailboard.charts.size === 4")
        wait_for(copy, f"() => ({CARDS})()[0] === 'train/lr'")
        assert copy.evaluate(CARDS) == ["train/lr", "eval/acc", "train/acc", "train/loss"]
        wait_for(copy, big)
        assert not copy.evaluate("() => document.getElementById('section-eval').open")
        assert "token" not in copy.evaluate("() => location.href")
        # unpin and shrink: back to the plain grid
        copy.click("[data-metric='train/lr'] button.pin")
        copy.click("[data-metric='train/loss'] button.big")
        wait_for(copy, f"() => ({CARDS})()[0] === 'eval/acc'")
        wait_for(copy, """() => { const q = new URLSearchParams(location.search); return !q.has('pin') && !q.has('big'); }""")
        other.close()
        assert not errors, errors
    finally:
        page.close()


# ---- comparing runs: groups and bands, any metric as the x axis -----------------------------------

SEED_EVERY = (1, 2, 3)  # seed k logs every SEED_EVERY[k] steps: the group must still combine them
SEED_LAST = (199, 199, 150)  # seed 2 stops early: the group's tail holds two runs
GROUP_LR = {"sweep/lr_1": 1.0, "sweep/lr_3": 3.0}


def seed_value(lr: float, seed: int, step: int) -> float:
    """Straight lines, so that a seed's value between its steps is exactly where the page puts it."""
    return lr + step / 100 + 0.5 * seed


def group_stats(lr: float, step: int) -> tuple[float, float, float, int]:
    """The mean, min and max of a group at `step`, and how many of its seeds reach that step."""
    vals = [seed_value(lr, k, step) for k in range(3) if step <= SEED_LAST[k]]
    return sum(vals) / len(vals), min(vals), max(vals), len(vals)


@pytest.fixture
def seeds(tmp_path: Path) -> Iterator[ServerHandle]:
    """Two configurations of three seeds each; seeds log at different steps, one stops early; every
    run logs `tokens` (100 per step) every 10 steps and `epoch` every 50."""
    for group, lr in GROUP_LR.items():
        for k in range(3):
            with tailboard.init(tmp_path / group / f"seed{k}", config={"lr": lr, "seed": k}) as run:
                for i in range(SEED_LAST[k] + 1):
                    if i % SEED_EVERY[k] == 0:
                        run.log({"loss": seed_value(lr, k, i)}, step=i)
                    if i % 10 == 0:
                        run.log({"tokens": 100.0 * i}, step=i)
                    if i % 50 == 0:
                        run.log({"epoch": i / 50}, step=i)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    yield handle
    handle.stop()


def open_seeds(browser: Any, handle: ServerHandle, query: str, context: Any = None) -> Any:
    page = (context or browser).new_page(viewport={"width": 1300, "height": 900})
    page.goto(page_url(handle, query))
    wait_for(page, "() => window.tailboard && window.tailboard.state.infos.size === 6 && "
                   "window.tailboard.view.runs.every((r) => window.tailboard.state.runs.get(r)?.loaded) && "
                   "window.tailboard.charts.has('loss') && window.tailboard.charts.get('loss').draws > 0")
    settle(page, "loss")
    return page


def group_colour(page: Any, metric: str, group: str) -> tuple[int, int, int]:
    """The RGB a chart draws a group's line in."""
    return tuple(page.evaluate(
        """([m, g]) => { const s = window.tailboard.charts.get(m).series.find((s) => s.group === g);
            const ctx = document.createElement('canvas').getContext('2d'); ctx.fillStyle = s.color;
            ctx.fillRect(0, 0, 1, 1); return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)); }""",
        [metric, group]))


def legend_texts(page: Any, metric: str) -> list[str]:
    """The legend's entries as one line of words each (a flex item's parts come on lines of their own)."""
    return [" ".join(e["text"].split()) for e in page.evaluate(LEGEND, metric)]


def band_alphas(p: Probe, rgb: tuple[int, int, int], tol: int = 12) -> list[int]:
    """The alphas of the pixels of a probe that have about the colour `rgb` (a band's fill is the
    group's colour at a low alpha on the transparent canvas)."""
    return [a for r, g, b, a in p.rgba() if a and max(abs(c - w) for c, w in zip((r, g, b), rgb)) <= tol]


def test_runs_grouped_by_folder_draw_their_mean_and_band_and_unfold_into_their_runs(browser: Any, seeds: ServerHandle) -> None:
    page = open_seeds(browser, seeds, "group=path:-1&smooth=0")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # one legend entry per group, with how many runs it holds; one series each
        wait_for(page, f"() => ({LEGEND})('loss').length === 2")
        assert legend_texts(page, "loss") == ["▸ lr_1 3 runs", "▸ lr_3 3 runs"]
        assert page.inner_text("#group-count") == "2 groups"
        colours = {g: group_colour(page, "loss", f"sweep/{g}") for g in ("lr_1", "lr_3")}
        assert colours["lr_1"] != colours["lr_3"]
        for label, lr in (("lr_1", 1.0), ("lr_3", 3.0)):
            for step in (40, 97, 175):  # 97: a step only seed 0 logs; 175: after seed 2 stopped
                mean, lo, hi, _ = group_stats(lr, step)
                line = probe(page, "loss", step, mean)
                assert line.shows(colours[label]), (label, step, line)
                # inside the band, between the line and the top run: the colour, faint
                inside = band_alphas(probe(page, "loss", step, (mean + hi) / 2, radius=1), colours[label])
                assert inside and all(35 <= a <= 75 for a in inside), (label, step, inside)
            # and no band above the highest run
            assert not band_alphas(probe(page, "loss", 40, group_stats(lr, 40)[2] + 0.3, radius=2), colours[label])

        # the data table: a row per group, its mean, its band and how many runs it holds there
        hover(page, "loss", 170.2, tooltip_reads("loss", "step 170"))
        shown = page.evaluate("""() => [...document.querySelectorAll("[data-metric='loss'] .tooltip tbody tr")].map((tr) =>
            ({ group: tr.dataset.group, label: tr.querySelector('.lbl').innerText, full: tr.querySelector('.full').innerText,
               value: tr.querySelector('td.value').innerText, band: tr.querySelector('td.band').innerText,
               n: tr.querySelector('td.n').innerText, step: tr.querySelector('td.step').innerText }))""")
        assert page.inner_text("[data-metric='loss'] .tooltip .tt-x") == "step 170"
        assert [r["group"] for r in shown] == ["sweep/lr_3", "sweep/lr_1"]  # highest first
        for row in shown:
            mean, lo, hi, n = group_stats(GROUP_LR[row["group"]], 170)
            assert row["full"] == "3 runs" and row["n"] == f"{n}/3" == "2/3" and row["step"] == "170"
            assert float(row["value"]) == pytest.approx(mean, rel=1e-5)
            assert [float(v) for v in row["band"].split(" – ")] == pytest.approx([lo, hi], rel=1e-5)

        # a click on a group's legend entry shows its runs, in its colour; the other stays a group
        page.click("[data-metric='loss'] .lg-group[data-group='sweep/lr_1']")
        wait_for(page, "() => window.tailboard.charts.get('loss').series.length === 4")
        wait_for(page, "() => new URLSearchParams(location.search).getAll('gopen').join() === 'sweep/lr_1'")
        settle(page, "loss")
        for k in range(3):
            assert probe(page, "loss", 60, seed_value(1.0, k, 60)).shows(colours["lr_1"]), k
        assert probe(page, "loss", 60, group_stats(3.0, 60)[0]).shows(colours["lr_3"])
        # its runs labelled by what differs between them
        assert legend_texts(page, "loss")[:4] == ["▾ lr_1 :", "seed=0", "seed=1", "seed=2"]

        # the link, opened elsewhere, shows the same; a group keeps its colour when the other goes
        copy = browser.new_page(viewport={"width": 1300, "height": 900})
        copy.goto(page.url + f"#token={seeds.token}")
        wait_for(copy, "() => window.tailboard && window.tailboard.charts.has('loss') && "
                       "window.tailboard.charts.get('loss').series.length === 4")
        assert copy.input_value("#group-kind") == "path" and copy.input_value("#group-arg") == "-1"
        copy.close()
        page.click("[data-metric='loss'] .lg-group[data-group='sweep/lr_1']")  # back to one line
        wait_for(page, "() => window.tailboard.charts.get('loss').series.length === 2")
        for k in range(3):
            page.click(f".run-row[data-run='sweep/lr_1/seed{k}']")
        wait_for(page, "() => window.tailboard.charts.get('loss').series.length === 1")
        assert group_colour(page, "loss", "sweep/lr_3") == colours["lr_3"]
        assert not errors, errors
    finally:
        page.close()


def test_groups_by_config_key_or_regex_with_a_median_and_std_band(browser: Any, seeds: ServerHandle) -> None:
    page = open_seeds(browser, seeds, "smooth=0")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        assert page.is_hidden("#group-opts")
        page.select_option("#group-kind", "cfg")
        page.fill("#group-arg", "lr")
        wait_for(page, f"() => ({LEGEND})('loss').length === 2")
        assert legend_texts(page, "loss") == ["▸ lr=1 3 runs", "▸ lr=3 3 runs"]
        # by a regex's first capture group: the seeds of both configurations fall together
        page.select_option("#group-kind", "re")
        page.fill("#group-arg", "seed(\\d")  # not a regex yet: said, and nothing grouped
        wait_for(page, "() => document.getElementById('group-arg').classList.contains('invalid')")
        wait_for(page, f"() => ({LEGEND})('loss').length === 6")
        page.fill("#group-arg", "seed(\\d)")
        wait_for(page, f"() => ({LEGEND})('loss').length === 3")
        assert legend_texts(page, "loss") == ["▸ 0 2 runs", "▸ 1 2 runs", "▸ 2 2 runs"]
        page.select_option("#group-agg", "median")
        page.select_option("#group-band", "std")
        wait_for(page, """() => { const q = new URLSearchParams(location.search);
            return q.get('group') === 're:seed(\\\\d)' && q.get('agg') === 'median' && q.get('band') === 'std'; }""")
        # two runs per group: the median is their mean, the band ± their standard deviation (at step
        # 30, which every seed logs: each group reads its own nearest point)
        hover(page, "loss", 30, tooltip_reads("loss", "step 30"))
        rows = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll("[data-metric='loss'] .tooltip tbody tr")]
            .map((tr) => [tr.dataset.group, [tr.querySelector('td.value').innerText, tr.querySelector('td.band').innerText]]))""")
        for k in range(3):
            a, b = seed_value(1.0, k, 30), seed_value(3.0, k, 30)
            value, band = rows[str(k)]
            assert float(value) == pytest.approx((a + b) / 2, rel=1e-5)
            assert band.startswith("± ") and float(band[2:]) == pytest.approx(abs(a - b) / math.sqrt(2), rel=1e-5)
        settle(page, "loss")
        colour = group_colour(page, "loss", "1")  # the regex's capture: seed 1 of both configurations
        mid = (seed_value(1.0, 1, 20) + seed_value(3.0, 1, 20)) / 2
        assert probe(page, "loss", 20, mid).shows(colour)
        # the bands overlap but for the top of seed 2's (its line 3.2, its sd 1.41: up to 4.61)
        assert band_alphas(probe(page, "loss", 20, 4.4, radius=1), group_colour(page, "loss", "2"))
        assert not band_alphas(probe(page, "loss", 20, 4.8, radius=1), group_colour(page, "loss", "2"))

        # every group as its runs, then one of them back as its line
        page.check("#group-members")
        wait_for(page, "() => window.tailboard.charts.get('loss').series.length === 6")
        wait_for(page, "() => new URLSearchParams(location.search).get('members') === '1'")
        page.click("[data-metric='loss'] .lg-group[data-group='1']")
        wait_for(page, "() => window.tailboard.charts.get('loss').series.length === 5")
        assert not page.is_checked("#group-members")
        wait_for(page, """() => { const q = new URLSearchParams(location.search);
            return !q.has('members') && q.getAll('gopen').join() === '0,2'; }""")
        assert not errors, errors
    finally:
        page.close()


def test_any_metric_as_the_x_axis_for_every_chart_or_one(browser: Any, seeds: ServerHandle) -> None:
    runs = [f"sweep/lr_1/seed{k}" for k in range(3)]
    page = open_seeds(browser, seeds, f"smooth=0&runs={','.join(runs)}")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.select_option("#xaxis", "m:tokens")
        wait_for(page, "() => window.tailboard.charts.get('loss').view.xaxis === 'm:tokens'")
        settle(page, "loss")
        lo, hi = page.evaluate("() => { const c = window.tailboard.charts.get('loss'); return [c.sx.lo, c.sx.hi]; }")
        # tokens are logged every 10 steps up to step 190 (seed 2: 150); each point is paired with
        # them by step, between those steps on the straight line (100 tokens a step), and points
        # after the last tokens point have no x
        assert (lo, hi) == (0, 19000)
        colour = line_colour(page, "loss", runs[0])
        for step in (33, 101, 187):
            assert probe(page, "loss", 100 * step, seed_value(1.0, 0, step)).shows(colour), step
        hover(page, "loss", 4040, tooltip_reads("loss", "tokens 4000"))
        assert page.inner_text("[data-metric='loss'] .tooltip .tt-x") == "tokens 4000"
        steps = page.eval_on_selector_all("[data-metric='loss'] .tooltip td.step", "els => els.map((e) => e.innerText)")
        assert sorted(steps) == ["39", "40", "40"]  # each run's nearest point: seed 2 logs every 3 steps

        # one chart on an axis of its own: epoch (every 50 steps, so 1.5 at step 75)
        page.focus("[data-metric='loss'] select.xsel")
        page.select_option("[data-metric='loss'] select.xsel", "m:epoch")
        wait_for(page, "() => window.tailboard.charts.get('loss').view.xaxis === 'm:epoch'")
        settle(page, "loss")
        assert page.evaluate("() => window.tailboard.charts.get('tokens').view.xaxis") == "m:tokens"
        assert page.evaluate("() => { const c = window.tailboard.charts.get('loss'); return [c.sx.lo, c.sx.hi]; }") == [0, 3]
        assert probe(page, "loss", 1.5, seed_value(1.0, 0, 75)).shows(colour)
        wait_for(page, """() => { const q = new URLSearchParams(location.search);
            return q.get('x') === 'm:tokens' && q.getAll('cx').join() === '["loss","m:epoch"]'; }""")

        # the link gives the same axes back, in the controls and the charts
        copy = browser.new_page(viewport={"width": 1300, "height": 900})
        copy.goto(page.url + f"#token={seeds.token}")
        wait_for(copy, "() => window.tailboard && window.tailboard.charts.has('loss') && window.tailboard.charts.has('tokens') && "
                       "window.tailboard.charts.get('loss').view.xaxis === 'm:epoch'")
        assert copy.input_value("#xaxis") == "m:tokens"
        assert copy.input_value("[data-metric='loss'] select.xsel") == "m:epoch"
        copy.close()
        # the chart back on the page's axis
        page.select_option("[data-metric='loss'] select.xsel", "")
        wait_for(page, "() => window.tailboard.charts.get('loss').view.xaxis === 'm:tokens' && !location.search.includes('cx=')")
        assert not errors, errors
    finally:
        page.close()


# ---- comparing runs: the runs table, its parallel coordinates and scatter ------------------------

HP_LR, HP_SEEDS = (1, 3), 3
HOSTILE_KEY = "<b>key</b>"


def hp_run(lr: int, seed: int) -> str:
    return f"hp/lr_{lr}/seed{seed}"


def hp_loss(lr: int, seed: int, i: int) -> float:
    """Falls to its best at step 48, then a spike at the last step (49): last and best differ."""
    base = 2 / (lr * (min(i, 48) + 1)) + 0.1 * seed
    return base + (0.5 if i == 49 else 0.0)


def hp_best(lr: int, seed: int) -> float:
    return hp_loss(lr, seed, 48)


@pytest.fixture
def sweep(tmp_path: Path) -> Iterator[ServerHandle]:
    """Six runs: two learning rates, three seeds; `opt` is the same for all; a hostile config key."""
    for lr in HP_LR:
        for k in range(HP_SEEDS):
            with tailboard.init(tmp_path / hp_run(lr, k), config={"lr": lr, "seed": k, "opt": "adam", HOSTILE_KEY: f"<i>{k}</i>"}) as run:
                for i in range(50):
                    run.log({"val/loss": hp_loss(lr, k, i), "val/acc": 1 - hp_loss(lr, k, i) / 3, "epoch": i / 10}, step=i)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    yield handle
    handle.stop()


TABLE = """() => ({ head: [...document.querySelectorAll('#tab-config thead th')].map((th) => th.innerText.trim().replace(/\\s+/g, ' ')),
    rows: [...document.querySelectorAll('#tab-config tbody tr')].map((tr) => ({ run: tr.dataset.run, on: tr.classList.contains('on'),
        cells: Object.fromEntries([...tr.querySelectorAll('td')].map((td, i) =>
            [document.querySelectorAll('#tab-config thead th')[i].dataset.col || 'sel', td.innerText.trim()])) })) })"""


def open_table(browser: Any, handle: ServerHandle, query: str = "") -> Any:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(page_url(handle, query))
    wait_for(page, "() => window.tailboard && window.tailboard.state.infos.size === 6 && window.tailboard.view.runs.length === 6 && "
                   "window.tailboard.view.runs.every((r) => window.tailboard.state.runs.get(r)?.loaded)")
    page.click("button[data-tab=config]")
    wait_for(page, "() => document.querySelectorAll('#tab-config tbody tr').length === 6")
    wait_for(page, "() => !!window.tailboard.table.scatter.frame")  # the plots come a frame after the rows
    return page


def frames(page: Any, n: int = 2) -> None:
    """Let n animation frames pass (what was asked to be drawn is drawn)."""
    page.evaluate(f"() => new Promise((r) => {{ let k = {n}; const f = () => (--k ? requestAnimationFrame(f) : r()); requestAnimationFrame(f); }})")


def plot_point(page: Any, plot: str, x: float, y: float) -> tuple[float, float]:
    """Where on the page a point (x, y) in [0, 1] of a plot's box is (0, 0: bottom left)."""
    return tuple(page.evaluate("""([sel, x, y]) => { const c = document.querySelector(sel + ' canvas'), r = c.getBoundingClientRect();
        const p = c.closest('.hp-plot'); const f = window.tailboard.table[p.classList.contains('hp-scatter') ? 'scatter' : 'parallel'].frame;
        return [r.x + f.x0 + x * (f.x1 - f.x0), r.y + f.y1 - y * (f.y1 - f.y0)]; }""", [plot, x, y]))


def canvas_rgb(page: Any, sel: str, at: tuple[float, float], radius: int = 2) -> list[tuple[int, int, int, int]]:
    """The RGBA pixels around a page position on a canvas."""
    data = page.evaluate("""([sel, x, y, r]) => { const c = document.querySelector(sel + ' canvas'), b = c.getBoundingClientRect();
        const dpr = c.width / c.clientWidth, px = Math.round((x - b.x) * dpr), py = Math.round((y - b.y) * dpr), n = 2 * r + 1;
        return Array.from(c.getContext('2d').getImageData(px - r, py - r, n, n).data); }""", [sel, at[0], at[1], radius])
    return [tuple(data[i:i + 4]) for i in range(0, len(data), 4)]


def run_rgb(page: Any, run: str) -> tuple[int, int, int]:
    return tuple(page.evaluate("""(r) => { const ctx = document.createElement('canvas').getContext('2d');
        ctx.fillStyle = window.tailboard.table.colorOf(r); ctx.fillRect(0, 0, 1, 1);
        return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)); }""", run))


def near(pixels: list[tuple[int, int, int, int]], rgb: tuple[int, int, int], tol: int = 40) -> bool:
    return any(a > 150 and max(abs(c - w) for c, w in zip((r, g, b), rgb)) <= tol for r, g, b, a in pixels)


def test_the_runs_table_sorts_filters_and_knows_which_way_is_best(browser: Any, sweep: ServerHandle) -> None:
    page = open_table(browser, sweep)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        table = page.evaluate(TABLE)
        # the config keys that differ first (the hostile one as text), the shared one folded away;
        # a best per metric with its direction, none for epoch
        assert table["head"][:4] == ["", "run ▲", "lr", "seed"] and table["head"][4] == HOSTILE_KEY, table["head"]
        assert [t for t in table["head"] if "epoch" in t] == ["epoch last ·"]
        assert "val/loss best ↓" in table["head"] and "val/acc best ↑" in table["head"]
        assert "opt" not in " ".join(table["head"])
        assert page.inner_text("#tab-config .hp-constant summary") == "1 config value shared by every run"
        assert page.eval_on_selector("#tab-config .hp-shared", "e => e.textContent") == "opt=adam"
        assert not page.query_selector("#tab-config thead b, #tab-config tbody td:not(.sel) i")  # markup from the logs is text
        for row in table["rows"]:
            lr, k = int(row["run"].split("/")[1][3:]), int(row["run"][-1])
            assert float(row["cells"]["b:val/loss"]) == pytest.approx(hp_best(lr, k), rel=1e-5)
            assert float(row["cells"]["l:val/loss"]) == pytest.approx(hp_loss(lr, k, 49), rel=1e-5)
            assert float(row["cells"]["b:val/acc"]) == pytest.approx(1 - hp_best(lr, k) / 3, rel=1e-5)
            assert row["cells"][f"c:{HOSTILE_KEY}"] == f"<i>{k}</i>"
        # the best of a column is marked
        best_cells = page.eval_on_selector_all("#tab-config td.best-run", "els => els.map((e) => e.closest('tr').dataset.run)")
        assert best_cells == [hp_run(3, 0)] * 2

        # sort by best loss, then the other way
        order = sorted(((lr, k) for lr in HP_LR for k in range(HP_SEEDS)), key=lambda p: hp_best(*p))
        page.click("#tab-config th[data-col='b:val/loss']")
        wait_for(page, "() => document.querySelector(\"#tab-config th[data-col='b:val/loss']\").classList.contains('sorted')")
        assert [r["run"] for r in page.evaluate(TABLE)["rows"]] == [hp_run(*p) for p in order]
        page.click("#tab-config th[data-col='b:val/loss']")
        wait_for(page, "() => document.querySelector(\"#tab-config th[data-col='b:val/loss'] .sort\").innerText.trim() === '▼'")
        assert [r["run"] for r in page.evaluate(TABLE)["rows"]] == [hp_run(*p) for p in reversed(order)]

        # epoch has no best until it is given a direction
        page.click("#tab-config th[data-col='l:epoch'] button.dir")
        wait_for(page, "() => !!document.querySelector(\"#tab-config th[data-col='b:epoch']\")")
        assert " ".join(page.inner_text("#tab-config th[data-col='b:epoch']").split()) == "epoch best ↓"
        assert {r["cells"]["b:epoch"] for r in page.evaluate(TABLE)["rows"]} == {"0"}

        # the filter: a comparison and a regex
        page.fill("#hp-filter", "lr>1 seed[12]")
        wait_for(page, "() => document.querySelectorAll('#tab-config tbody tr').length === 2")
        assert [r["run"] for r in page.evaluate(TABLE)["rows"]] == [hp_run(3, 2), hp_run(3, 1)]
        wait_for(page, """() => { const q = new URLSearchParams(location.search);
            return q.get('hsort') === 'b:val/loss' && q.get('hdesc') === '1' && q.getAll('hdir').join() === 'min:epoch'
                && q.get('hfilter') === 'lr>1 seed[12]'; }""")

        # the link gives the same table
        copy = browser.new_page(viewport={"width": 1400, "height": 1000})
        copy.goto(page.url + f"#token={sweep.token}")
        wait_for(copy, "() => window.tailboard && window.tailboard.view.runs.every((r) => window.tailboard.state.runs.get(r)?.loaded) "
                       "&& window.tailboard.view.runs.length === 6")
        copy.click("button[data-tab=config]")
        wait_for(copy, "() => document.querySelectorAll('#tab-config tbody tr').length === 2")
        assert [r["run"] for r in copy.evaluate(TABLE)["rows"]] == [hp_run(3, 2), hp_run(3, 1)]
        assert copy.input_value("#hp-filter") == "lr>1 seed[12]"
        copy.close()
        assert not errors, errors
    finally:
        page.close()


def test_the_scatter_and_parallel_coordinates_show_and_select_runs(browser: Any, sweep: ServerHandle) -> None:
    page = open_table(browser, sweep, "hx=c:lr&hy=b:val/loss")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        assert page.input_value("#hp-x") == "c:lr" and page.input_value("#hp-y") == "b:val/loss"
        bests = [hp_best(lr, k) for lr in HP_LR for k in range(HP_SEEDS)]
        lo, hi = min(bests), max(bests)
        # each run's point where its lr and best loss put it, in its colour (lr 1..3: linear)
        spots = {}
        for lr in HP_LR:
            for k in range(HP_SEEDS):
                at = plot_point(page, ".hp-scatter", (lr - 1) / 2, (hp_best(lr, k) - lo) / (hi - lo))
                spots[hp_run(lr, k)] = at
                assert near(canvas_rgb(page, ".hp-scatter", at), run_rgb(page, hp_run(lr, k))), hp_run(lr, k)
        assert not near(canvas_rgb(page, ".hp-scatter", plot_point(page, ".hp-scatter", 0.5, 0.5), 3), run_rgb(page, hp_run(1, 0)))
        # the pointer on a point names its run and its values
        page.mouse.move(*spots[hp_run(3, 1)])
        wait_for(page, "() => !document.querySelector('.hp-scatter .hp-tip').hidden")
        tip = page.inner_text(".hp-scatter .hp-tip")
        assert "lr_3/seed1" in tip and "lr: 3" in tip and f"val/loss: {float(f'{hp_best(3, 1):.6g}'):g}" in tip, tip

        # a click on a point deselects its run in the page
        page.mouse.click(*spots[hp_run(3, 1)])
        wait_for(page, f"() => !window.tailboard.view.runs.includes({hp_run(3, 1)!r})")
        wait_for(page, f"() => !document.querySelector(`.run-row[data-run='{hp_run(3, 1)}'] input`).checked")
        # a rectangle around the lr = 3 points selects exactly them
        x0, y0 = plot_point(page, ".hp-scatter", 0.9, -0.02)
        x1, y1 = plot_point(page, ".hp-scatter", 1.02, 0.95)
        page.mouse.move(x0, y1)
        page.mouse.down()
        page.mouse.move(x1, y0, steps=4)
        page.mouse.up()
        wait_for(page, f"() => window.tailboard.view.runs.join() === {','.join(hp_run(3, k) for k in range(3))!r}")
        wait_for(page, f"() => new URLSearchParams(location.search).get('runs') === {','.join(hp_run(3, k) for k in range(3))!r}")
        # the table follows: those rows are on, the others off
        wait_for(page, f"() => [...document.querySelectorAll('#tab-config tbody tr.on')].map((t) => t.dataset.run).sort().join() === "
                       f"{','.join(hp_run(3, k) for k in range(3))!r}")
        # a click on a row selects its run too
        page.click(f"#tab-config tbody tr[data-run='{hp_run(1, 0)}']")
        wait_for(page, f"() => window.tailboard.view.runs.includes({hp_run(1, 0)!r})")

        # parallel coordinates: a brush on the lr axis around lr = 1 selects the lr = 1 runs
        axes = page.evaluate("() => window.tailboard.table.parallel.frame.axes.map((a) => a.key)")
        assert axes[:2] == ["c:lr", "c:seed"] and axes[-1] == "b:val/loss", axes
        i = axes.index("c:lr")
        bx, by = page.evaluate("""(i) => { const p = window.tailboard.table.parallel, c = p.canvas.getBoundingClientRect();
            return [c.x + p.frame.axes[i].x, c.y + p.frame.y1]; }""", i)
        top = page.evaluate("() => window.tailboard.table.parallel.frame.y0")
        height = by - (page.evaluate("() => document.querySelector('.hp-parallel canvas').getBoundingClientRect().y") + top)
        page.mouse.move(bx, by + 4)
        page.mouse.down()
        page.mouse.move(bx, by - 0.2 * height, steps=4)
        page.mouse.up()
        wait_for(page, f"() => window.tailboard.view.runs.join() === {','.join(hp_run(1, k) for k in range(3))!r}")
        # selected runs' lines in their colours at the lr = 1 end of the axis
        frames(page)
        assert near(canvas_rgb(page, ".hp-parallel", (bx, by), 3), run_rgb(page, hp_run(1, 0)))
        assert not errors, errors
    finally:
        page.close()


def test_a_rank_whose_file_stops_growing_marks_its_run_stalled(browser: Any, tmp_path: Path) -> None:
    """Two ranks of one job: rank 1 stops logging while rank 0 goes on. The run stays running and
    its row gets a stalled marker naming rank 1's file; rank 1 logging again takes it away."""
    ranks = [tailboard.init(tmp_path / "job", rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.log({"loss": 1.0}, step=0)
    handle = serve_in_thread(tmp_path, token="tok", stall_after=1.0, follower_options={"poll_interval": 0.05})
    page = browser.new_page()
    marker = ".run-row[data-run='job'] .node-stalled"

    def keep_logging(until: str, *who: tailboard.Run, timeout: float = 20.0) -> None:
        """Log a step on each of `who` until the page shows `until` (a JS predicate)."""
        deadline = time.monotonic() + timeout
        step = 1
        while True:
            for r in who:
                r.log({"loss": 1.0 / (step + 1)}, step=step)
            step += 1
            try:
                wait_for(page, until, timeout=0.25)
                return
            except browserkit.playwright.TimeoutError:
                if time.monotonic() > deadline:
                    raise

    try:
        page.goto(page_url(handle))
        keep_logging(f"() => !!document.querySelector(\".run-row[data-run='job']\") && !document.querySelector(\"{marker}\")",
                     *ranks)
        keep_logging(f"() => !!document.querySelector(\"{marker}\")", ranks[0])
        title = page.get_attribute(marker, "title") or ""
        assert "rank1.jsonl" in title and "rank0" not in title, title
        assert page.inner_text(".run-row[data-run='job'] .badge.running") == "running"  # stalled, not lost
        keep_logging(f"() => !document.querySelector(\"{marker}\")", *ranks)
    finally:
        page.close()
        for r in ranks:
            r.finish()
        handle.stop()
