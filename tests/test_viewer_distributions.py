"""Histograms and vectors of several runs at once, checked by what is drawn: small multiples over one
value range, TensorBoard's offset ridges, and vectors of two runs side by side under one step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import browserkit
from browserkit import BROWSER_MARKS, line_colour, new_page, page_url, wait_for
from tailboard.sidecar.server import serve_in_thread

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

T0 = 1700000000
STEPS = 5

# The rows of a canvas that hold ink, as fractions of the plot box's height (0 = its top), and the
# RGB of the most common opaque colour at a point.
INKED_ROWS = """(sel) => { const c = document.querySelector(sel); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const dpr = c.width / c.clientWidth, x0 = Math.round(60 * dpr), x1 = c.width - Math.round(10 * dpr);
    const top = Math.round(8 * dpr), bottom = c.height - Math.round(20 * dpr), rows = [];
    for (let y = top; y < bottom; y++) { let n = 0; for (let x = x0; x < x1; x++) if (d[(y * c.width + x) * 4 + 3] > 40) n++;
        if (n > 10) rows.push((y - top) / (bottom - top)); }
    return rows; }"""
RGB_AT = """([sel, fx, fy]) => { const c = document.querySelector(sel); const ctx = c.getContext('2d');
    return Array.from(ctx.getImageData(Math.round(fx * c.width), Math.round(fy * c.height), 1, 1).data); }"""


def write_runs(root: Path) -> None:
    """Run a: its histogram's values in 0..1 and its vector [step + 1, 1, 1]; run b: values in 9..10,
    vector [10, step, 2]."""
    for run, (lo, hi), vec in (("a", (0.0, 1.0), lambda s: [s + 1.0, 1.0, 1.0]), ("b", (9.0, 10.0), lambda s: [10.0, float(s), 2.0])):
        folder = root / "cmp" / run
        folder.mkdir(parents=True)
        lines = [{"k": "header", "format": "tailboard", "version": 1, "pid": 1, "start": T0},
                 {"k": "scalars", "step": 0, "t": T0, "v": {"loss": 1.0}}]
        for s in range(STEPS):
            lines.append({"k": "hist", "step": s, "t": T0 + s, "name": "w", "lo": lo, "hi": hi, "counts": [2, 8, 4, 1]})
            lines.append({"k": "vector", "step": s, "t": T0 + s, "name": "norms", "v": vec(s)})
        (folder / "rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


@contextmanager
def comparing(browser: Any, root: Path) -> Iterator[tuple[Any, list[str]]]:
    """Both runs served and selected in a page; the page's errors collected."""
    write_runs(root)
    handle = serve_in_thread(root, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1300, "height": 900})
    try:
        page.goto(page_url(handle, "runs=cmp/a,cmp/b"))
        wait_for(page, "() => window.tailboard && window.tailboard.view.runs.length === 2 && window.tailboard.charts.size > 0")
        yield page, errors
    finally:
        page.close()
        handle.stop()


def test_histograms_of_two_runs_share_one_value_range_and_show_as_ridges(browser: Any, tmp_path: Path) -> None:
    with comparing(browser, tmp_path) as (page, errors):
        page.click("button[data-tab=histograms]")
        wait_for(page, "() => document.querySelectorAll('#tab-histograms .dist-card canvas').length === 2")
        assert page.eval_on_selector_all("#tab-histograms .dist-title", "els => els.map((e) => e.textContent)") == ["cmp/a", "cmp/b"]
        assert page.is_visible("#tab-histograms .density-ramp")
        card = "#tab-histograms .dist-card[data-run='cmp/{}'] canvas"
        wait_for(page, f"() => ({INKED_ROWS})(\"{card.format('b')}\").length > 0")
        # one value range for both (0..10): a's values sit at the bottom, b's at the top
        a_rows, b_rows = (page.evaluate(INKED_ROWS, card.format(r)) for r in "ab")
        assert a_rows and min(a_rows) > 0.85, (min(a_rows), max(a_rows))
        assert b_rows and max(b_rows) < 0.15, (min(b_rows), max(b_rows))

        # the offset view: a ridge per step in the run's colour; the pointer names the step and bin
        page.select_option("#tab-histograms .dist-mode", "offset")
        wait_for(page, "() => !document.querySelector('#tab-histograms .density-ramp') "
                       "&& document.querySelectorAll('#tab-histograms .dist-card canvas').length === 2")
        wait_for(page, f"() => ({INKED_ROWS})(\"{card.format('a')}\").length > 20")
        rows = page.evaluate(INKED_ROWS, card.format("a"))
        assert max(rows) - min(rows) > 0.5  # ridges stacked over the height, not one line
        colour = line_colour(page, "loss", "cmp/a")
        canvas = page.eval_on_selector(card.format("a"), "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
        # the newest ridge is the lowest one: its outline at the value of a's densest bin (0.25..0.5)
        x = canvas[0] + 50 + (0.375 - 0.0) / 10.0 * (canvas[2] - 50 - 60)
        y = canvas[1] + canvas[3] - 20 - 2
        page.mouse.move(x, y)
        wait_for(page, "() => { const t = document.querySelector(\"#tab-histograms .dist-card[data-run='cmp/a'] .tooltip\"); return t && !t.hidden; }")
        tip = page.inner_text("#tab-histograms .dist-card[data-run='cmp/a'] .tooltip")
        assert f"step {STEPS - 1}" in tip and "0.25 to 0.5" in tip and "8 values" in tip, tip
        assert colour != (0, 0, 0)
        assert not errors, errors


def test_vectors_of_two_runs_side_by_side_under_one_step(browser: Any, tmp_path: Path) -> None:
    with comparing(browser, tmp_path) as (page, errors):
        colours = {r: line_colour(page, "loss", f"cmp/{r}") for r in "ab"}
        assert colours["a"] != colours["b"]
        page.click("button[data-tab=vectors]")
        wait_for(page, "() => document.querySelectorAll('#tab-vectors .dist-key').length === 2")
        keys = page.eval_on_selector_all("#tab-vectors .dist-key", "els => els.map((e) => e.textContent)")
        assert keys == [f"cmp/a · step {STEPS - 1}", f"cmp/b · step {STEPS - 1}"], keys
        sel = "#tab-vectors canvas"
        box = page.eval_on_selector(sel, "c => [c.clientWidth, c.clientHeight]")
        slot = (box[0] - 58) / 3

        def bar_rgb(run: int, index: int) -> tuple[int, ...]:
            """The colour just above zero in the middle of a run's bar at an index (values are all > 0)."""
            fx = (50 + index * slot + (run + 0.5) * slot / 2) / box[0]
            fy = (box[1] - 20 - 3) / box[1]
            return tuple(page.evaluate(RGB_AT, [sel, fx, fy])[:3])

        def near(got: tuple[int, ...], want: tuple[int, ...]) -> bool:
            return max(abs(g - w) for g, w in zip(got, want)) <= 30

        for index in range(3):
            assert near(bar_rgb(0, index), colours["a"]), (index, bar_rgb(0, index))
            assert near(bar_rgb(1, index), colours["b"]) or index == 1, (index, bar_rgb(1, index))
        # one scrubber for both: at step 0 b's value at index 1 is 0, so nothing of b is drawn there
        page.eval_on_selector("#tab-vectors .scrub", "el => { el.value = 0; el.dispatchEvent(new Event('input')); }")
        wait_for(page, "() => document.querySelector('#tab-vectors .dist-key').textContent.endsWith('step 0')")
        assert not near(bar_rgb(1, 1), colours["b"])
        # the pointer over index 0 lists both runs' values
        rect = page.eval_on_selector(sel, "c => { const r = c.getBoundingClientRect(); return [r.x, r.y]; }")
        page.mouse.move(rect[0] + 50 + slot / 2, rect[1] + box[1] / 2)
        wait_for(page, "() => !document.querySelector('#tab-vectors .tooltip').hidden")
        tip = page.inner_text("#tab-vectors .tooltip")
        assert "index 0" in tip and "cmp/a 1 (step 0)" in tip and "cmp/b 10 (step 0)" in tip, tip
        assert not errors, errors
