"""The viewer in headless Chromium against the real sidecar over real log files."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

import tailboard
from tailboard.sidecar.server import ServerHandle, serve_in_thread

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).resolve().parent.parent / "test-output"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make chromium)"),
]

playwright = pytest.importorskip("playwright.sync_api")


def write(root: Path, run_id: str, steps: range, lr: float) -> tailboard.Run:
    run = tailboard.init(root / run_id, config={"lr": lr})
    for i in steps:
        run.log({"train/loss": math.exp(-lr * i / 50) + 0.05 * math.sin(i / 3), "eval/acc": 1 - math.exp(-lr * i / 80)}, step=i)
        if i % 50 == 0:
            run.log({"grad_norm": [lr * i, 1.0, 2.0], "w": tailboard.Histogram([math.sin(k * (i + 1)) for k in range(200)]),
                     "notes": f"step {i} <b>not html</b>"}, step=i)
    return run


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[ServerHandle, Path, list[tailboard.Run]]]:
    runs = [write(tmp_path, "sweep/lr_0.5/seed0", range(300), 0.5), write(tmp_path, "sweep/lr_2/seed0", range(300), 2.0)]
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    yield handle, tmp_path, runs
    for r in runs:
        r.finish()
    handle.stop()


def ink(page: Any, metric: str) -> int:
    """Non-background pixels of a chart's canvas: proof that something is painted."""
    return int(page.evaluate(
        """(m) => { const c = window.tailboard.charts.get(m); if (!c) return -1;
                   const d = c.ctx.getImageData(0, 0, c.canvas.width, c.canvas.height).data;
                   let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }""",
        metric,
    ))


def pixels(page: Any, metric: str) -> str:
    return str(page.evaluate("(m) => window.tailboard.charts.get(m).canvas.toDataURL()", metric))


def wait_for(page: Any, js: str, timeout: float = 10.0) -> Any:
    page.wait_for_function(js, timeout=timeout * 1000)


def test_dashboard_lists_runs_paints_charts_and_updates_live(browser: Any, site: Any) -> None:
    handle, root, runs = site
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(handle.url)
    # the token left the address bar; the cookie carries it
    wait_for(page, "() => !location.search.includes('token')")
    # the tree lists nested runs
    wait_for(page, "() => document.querySelectorAll('.run-row[data-run]').length === 2")
    folders = page.eval_on_selector_all(".run-row.folder", "els => els.map(e => e.textContent.trim())")
    assert any("sweep" in f for f in folders) and any("lr_0.5" in f for f in folders)
    # charts are painted: pixels, not only DOM
    wait_for(page, "() => window.tailboard.charts.has('train/loss') && window.tailboard.charts.has('eval/acc')")
    wait_for(page, "() => { const c = window.tailboard.charts.get('train/loss'); return c.series.length === 2 && c.draws > 0; }")
    assert ink(page, "train/loss") > 2000
    sections = page.eval_on_selector_all("details.section > summary", "els => els.map(e => e.textContent)")
    assert sections == ["eval", "train"]

    # a record appended to a log appears without a reload
    before = pixels(page, "eval/acc")
    for i in range(300, 400):
        runs[0].log({"eval/acc": 5.0 + i / 100, "train/loss": 0.1}, step=i)
    wait_for(page, """() => { const r = window.tailboard.state.runs.get('sweep/lr_0.5/seed0');
                              const b = r && r.series.get('eval/acc'); return b && b.last() && b.last().step === 399; }""")
    wait_for(page, f"() => window.tailboard.charts.get('eval/acc').canvas.toDataURL() !== {before!r}")

    # smoothing, log scale and zoom each change the drawing
    base = pixels(page, "train/loss")
    page.evaluate(
        "() => { const s = document.getElementById('smoothing'); s.value = '0.95'; s.dispatchEvent(new Event('input')); }")
    wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {base!r}")
    smoothed = pixels(page, "train/loss")
    page.check("#logy")
    wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {smoothed!r}")
    logged = pixels(page, "train/loss")
    box = page.eval_on_selector("[data-metric='train/loss'] canvas", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
    x, y, w, h = box
    page.mouse.move(x + w * 0.3, y + h / 2)
    page.mouse.down()
    page.mouse.move(x + w * 0.5, y + h / 2, steps=5)
    page.mouse.up()
    wait_for(page, "() => window.tailboard.view.zoom !== null")
    wait_for(page, f"() => window.tailboard.charts.get('train/loss').canvas.toDataURL() !== {logged!r}")
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
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
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
        assert ink(page, "eval/acc") > 1000
    finally:
        page.close()
