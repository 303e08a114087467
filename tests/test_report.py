"""`tailboard export` as a user meets it: a log tree written by the real writer (and a CSV, a foreign
format), the real CLI as a process, and the report it writes opened from file:// in Chromium with
the network off: every point there under the bound, M4 beyond it, zoom, crosshair and smoothing
working, hostile names shown as text, no request, no console error, PNGs of the right size."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import pytest
import tailboard
from browserkit import BROWSER_MARKS, line_colour, png_rgba, probe
from tailboard.sidecar.report import MIN_POINTS, PNG_SIZE, bundle, shares

TIMEOUT = 120
browser = browserkit.browser  # the shared fixture

#: A run folder and a metric whose names are markup and would end a script element if pasted raw.
HOSTILE_RUN = "<img src=x onerror=window.pwned=1>"
HOSTILE_METRIC = "</script><!--<b>x</b>"
STEPS = 1000


def values(step: int) -> dict[str, float]:
    return {"train/loss": 2.0 / (1 + step), "acc": step / STEPS}


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILBOARD_")}
    env.update(extra)
    return env


def export(*args: str | Path, code: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    head = ["-c", code] if code else ["-m", "tailboard.sidecar"]
    return subprocess.run([sys.executable, *head, "export", *map(str, args)], capture_output=True, text=True,
                          timeout=TIMEOUT, env=environment(**env), check=False)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of tailboard's own format (one with a NaN, an infinity and a hostile name), a run
    of Lightning's metrics.csv, and a spike to be kept by M4."""
    root = tmp_path_factory.mktemp("logs")
    a = tailboard.Run(root / "lr_0.1" / "seed0", config={"lr": 0.1})
    for step in range(STEPS):
        v = values(step)
        if step == 500:
            v["acc"] = 50.0  # the spike
        a.log(v, step=step)
    a.finish()
    b = tailboard.Run(root / HOSTILE_RUN, config={"lr": 0.01})
    for step in range(0, STEPS, 10):
        b.log({"train/loss": 1.0 - step / 2000, HOSTILE_METRIC: float("nan") if step == 20 else step}, step=step)
    b.log({"train/loss": float("inf")}, step=STEPS)
    b.finish()
    (root / "csv_run").mkdir()
    (root / "csv_run" / "metrics.csv").write_text("epoch,step,train/loss\n"
                                                  + "".join(f"0,{s},{0.5 + s / 100}\n" for s in range(40)))
    return root


def wait_for(page: Any, js: str, timeout: float = 10.0) -> None:
    """browserkit.wait_for as a function: the report's policy refuses an expression, which is eval'd."""
    page.wait_for_function(f"() => ({js})", timeout=timeout * 1000)


def embedded(html: str) -> dict[str, Any]:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.DOTALL)
    assert m is not None
    return json.loads(m[1])  # type: ignore[no-any-return]


def series_of(data: dict[str, Any], metric: str, run: str) -> dict[str, Any]:
    chart = next(c for c in data["charts"] if c["metric"] == metric)
    return next(s for s in chart["series"] if s["run"] == run)


def number(x: Any) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(x, x)


@pytest.fixture(scope="module")
def report(logs: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "report.html"
    proc = export(logs, "-o", out, "--title", "lr sweep <i>&amp;")
    assert proc.returncode == 0, proc.stderr
    assert re.fullmatch(r"tailboard: wrote .*report\.html \(3 runs, 4 charts, 2,281 points, [\d.]+ MB\) in [\d.]+ s\n",
                        proc.stdout), proc.stdout
    return out


# ---- the file -----------------------------------------------------------------------------------


def test_every_point_written_is_in_the_file_as_written(report: Path) -> None:
    html = report.read_text()
    data = embedded(html)
    assert [r["id"] for r in data["runs"]] == sorted(["lr_0.1/seed0", HOSTILE_RUN, "csv_run"])
    loss = series_of(data, "train/loss", "lr_0.1/seed0")
    assert loss["steps"] == list(range(STEPS)) and not loss["downsampled"]
    assert loss["values"] == [values(s)["train/loss"] for s in range(STEPS)]  # bit for bit
    hostile = series_of(data, HOSTILE_METRIC, HOSTILE_RUN)
    assert [number(v) for v in hostile["values"]][:2] == [0, 10] and hostile["values"][2] == "NaN"
    assert series_of(data, "train/loss", HOSTILE_RUN)["values"][-1] == "Infinity"
    csv_loss = series_of(data, "train/loss", "csv_run")
    assert csv_loss["steps"] == list(range(40)) and csv_loss["values"] == [0.5 + s / 100 for s in range(40)]
    assert data["points"] == 2 * STEPS + 2 * (STEPS // 10) + 1 + 2 * 40  # the CSV's epoch column too
    # the names from the logs are in the data escaped, never as markup: the only script ends are ours
    assert HOSTILE_RUN not in html and HOSTILE_METRIC not in html and "<i>&amp;" not in html
    assert html.count("</script>") == 2 and html.count("<!--") == 1  # the shell's own comment


def test_the_file_needs_nothing_outside_and_allows_no_request(report: Path) -> None:
    html = report.read_text()
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)
    assert csp is not None
    policy = {d.split()[0]: d.split()[1:] for d in csp[1].split("; ")}
    assert policy["default-src"] == ["'none'"] and "connect-src" not in policy
    assert all(s.startswith("'sha256-") for s in policy["script-src"] + policy["style-src"])
    assert policy["img-src"] == ["data:", "blob:"]
    assert not re.search(r'\b(src|href)="', html)  # no script, style sheet, image or font to fetch


def test_over_the_bound_the_biggest_series_are_m4_downsampled(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "small.html"
    proc = export(logs, "-o", out, "--max-points", "600", "--metrics", "acc|loss")
    assert proc.returncode == 0, proc.stderr
    data = embedded(out.read_text())
    assert 0.85 * 600 <= data["points"] <= 600  # the budget used, not overrun
    # the small series (the CSV's 40, the hostile run's 101) keep every point; the others share the rest
    assert len(series_of(data, "train/loss", "csv_run")["steps"]) == 40
    assert len(series_of(data, "train/loss", HOSTILE_RUN)["steps"]) == STEPS // 10 + 1
    acc = series_of(data, "acc", "lr_0.1/seed0")
    assert acc["downsampled"] and acc["total"] == STEPS and len(acc["steps"]) <= shares([STEPS] * 2 + [40, 101], 600)[0]
    assert acc["steps"][0] == 0 and acc["steps"][-1] == STEPS - 1  # first and last
    assert 500 in acc["steps"] and max(acc["values"]) == 50.0  # the spike M4 keeps
    assert [r["kept"] for r in data["runs"] if r["id"] == "lr_0.1/seed0"] == [len(acc["steps"]) + len(
        series_of(data, "train/loss", "lr_0.1/seed0")["steps"])]


def test_run_folders_given_are_named_by_their_folder(logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    run = logs / "lr_0.1" / "seed0"
    proc = export(run, logs / "csv_run", run, "-o", out, "--metrics", "loss")
    assert proc.returncode == 0, proc.stderr
    data = embedded(out.read_text())
    assert [r["id"] for r in data["runs"]] == ["seed0", "csv_run", "seed0 (2)"]
    assert data["title"] == "seed0, csv_run, seed0"
    assert [c["metric"] for c in data["charts"]] == ["train/loss"]
    # a run with no chosen metric is left out (the CSV run's epoch, here none)
    proc = export(logs, "-o", out, "--metrics", "^acc$")
    assert [r["id"] for r in embedded(out.read_text())["runs"]] == ["lr_0.1/seed0"]


def test_shares_give_small_series_everything_and_split_the_rest() -> None:
    assert shares([10, 1000, 1000], 410) == [10, 200, 200]
    assert shares([10, 20], 1000) == [10, 20]
    assert shares([100] * 10, 8) == [MIN_POINTS] * 10  # never fewer than a bucket's four
    assert sum(shares([5, 50, 500, 5000], 1000)) <= 1000


def test_bundle_refuses_what_it_cannot_rewrite(tmp_path: Path) -> None:
    (tmp_path / "report.js").write_text('import { a } from "./b.js";\nexport function start() { return a; }\n')
    (tmp_path / "b.js").write_text("export const a = 1;\n")
    code = bundle(folder=tmp_path)
    assert "const { a: a } = $m_b;" in code and code.endswith("$m_report.start();\n")
    for text, said in [("export default 1;\n", "does not know"), ("export let a = 1;\n", "does not know"),
                       ('import x from "./c.js";\n', "does not know"), ("export const b = 1;\n", "does not export a"),
                       ('export const a = "</script>";\n', "</script")]:
        (tmp_path / "b.js").write_text(text)
        with pytest.raises(ValueError, match=re.escape(said)):
            bundle(folder=tmp_path)
    (tmp_path / "b.js").write_text('import { start } from "./report.js";\nexport const a = 1;\n')
    with pytest.raises(ValueError, match="import cycle: report -> b -> report"):
        bundle(folder=tmp_path)


# ---- the command's errors -----------------------------------------------------------------------


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    proc = export(tmp_path / "nope", "-o", tmp_path / "r.html")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == f"tailboard: no such folder: {tmp_path / 'nope'}\n"


def test_an_empty_folder_says_there_is_no_run(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = export(tmp_path / "empty", "-o", tmp_path / "r.html")
    assert proc.returncode == 1
    assert re.fullmatch(r"tailboard: no run in \S+/empty \(found 0 log files\): give a run's folder or a log root [^\n]+\n", proc.stderr), proc.stderr
    assert not (tmp_path / "r.html").exists()


def test_metrics_that_match_nothing_or_no_regex(logs: Path, tmp_path: Path) -> None:
    proc = export(logs, "-o", tmp_path / "r.html", "--metrics", "^nothing$")
    assert proc.returncode == 1
    assert proc.stderr.startswith("tailboard: no metric matches --metrics '^nothing$' (the runs have ")
    proc = export(logs, "-o", tmp_path / "r.html", "--metrics", "(")
    assert proc.returncode == 2 and proc.stderr.startswith("tailboard: --metrics is not a regular expression")
    assert proc.stderr.count("\n") == 1


# A child without Playwright: a meta-path finder refuses it, then the CLI runs.
WITHOUT_PLAYWRIGHT = textwrap.dedent("""
    import importlib.abc, sys
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] == "playwright":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, Refuse())
    from tailboard.sidecar.cli import main
    raise SystemExit(main(sys.argv[1:]))
""")


def test_without_the_sidecar_extra_help_works_and_export_says_what_to_install(logs: Path, tmp_path: Path) -> None:
    without = WITHOUT_PLAYWRIGHT.replace('== "playwright"', 'in ("playwright", "orjson", "numpy")')
    done = export("--help", code=without)
    assert done.returncode == 0 and "--max-points N" in done.stdout and "exit codes:" in done.stdout
    done = export(logs, "-o", tmp_path / "r.html", code=without)
    assert done.returncode == 1
    assert re.fullmatch(r"tailboard: export needs the sidecar extra \((orjson|numpy) is not installed\): "
                        r"pip install -e '\.\[sidecar\]' in tailboard's checkout \(README: Install\)\n", done.stderr), done.stderr


def test_png_without_playwright_says_what_to_install(logs: Path, tmp_path: Path) -> None:
    proc = export(logs, "-o", tmp_path / "r.html", "--png", tmp_path / "png", code=WITHOUT_PLAYWRIGHT)
    assert proc.returncode == 1
    assert proc.stderr == ("tailboard: --png needs Playwright (playwright is not installed): pip install playwright "
                           "&& python -m playwright install chromium\n")
    assert not (tmp_path / "r.html").exists()  # said before any work


def test_png_without_a_chromium_says_what_to_install(logs: Path, tmp_path: Path) -> None:
    (tmp_path / "browsers").mkdir()
    proc = export(logs, "-o", tmp_path / "r.html", "--png", tmp_path / "png", PATH=os.path.dirname(sys.executable),
                  PLAYWRIGHT_BROWSERS_PATH=str(tmp_path / "browsers"))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ("tailboard: --png needs a Chromium (none from Playwright, none on the PATH): python -m "
                           "playwright install chromium, or your system's chromium package\n")


# ---- in Chromium --------------------------------------------------------------------------------


class Offline:
    """A page with the network off (the context offline, and every request that is not the report's
    own file aborted and counted), its console errors and CSP violations collected."""

    def __init__(self, browser: Any, **options: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1300, "height": 900}, device_scale_factor=1, **options)
        self.context.set_offline(True)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page = self.context.new_page()
        self.page.route("**/*", self._route)
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.errors.append(f"dialog: {d.message}"), d.dismiss()))

    def _route(self, route: Any) -> None:
        if route.request.url.startswith("file:"):
            route.continue_()
        else:
            self.requests.append(route.request.url)
            route.abort()

    def open(self, report: Path) -> Any:
        self.page.goto(report.as_uri())
        wait_for(self.page, "window.tailboard && [...window.tailboard.charts.values()].every((c) => c.draws > 0)")
        return self.page


@pytest.fixture
def offline(browser: Any) -> Iterator[Offline]:
    o = Offline(browser)
    yield o
    o.context.close()


def at(page: Any, metric: str, x: float, y: float) -> tuple[float, float]:
    """The page coordinates of data point (x, y) on a chart (its scales, CSS pixels)."""
    return tuple(page.evaluate("""([m, x, y]) => { const c = window.tailboard.charts.get(m);
        const r = c.canvas.getBoundingClientRect(); return [r.left + c.sx.px(x), r.top + c.sy.px(y)]; }""",
                              [metric, x, y]))


def in_browser(test: Any) -> Any:
    """Marked `browser`, skipped without Chromium (browserkit's marks, for the tests that need it)."""
    for mark in BROWSER_MARKS:
        test = mark(test)
    return test


@in_browser
def test_offline_report_draws_every_point_where_it_belongs(report: Path, offline: Offline) -> None:
    page = offline.open(report)
    for metric in ("train/loss", "acc", HOSTILE_METRIC):
        assert browserkit.ink(page, metric) > 500, metric
    # every point written is in the page's series
    lengths = page.evaluate("""() => Object.fromEntries([...window.tailboard.charts].map(([m, c]) =>
        [m, Object.fromEntries(c.series.map((s) => [s.id, s.steps.length]))]))""")
    assert lengths == {"train/loss": {"lr_0.1/seed0": STEPS, HOSTILE_RUN: STEPS // 10 + 1, "csv_run": 40},
                       "acc": {"lr_0.1/seed0": STEPS}, HOSTILE_METRIC: {HOSTILE_RUN: STEPS // 10}, "epoch": {"csv_run": 40}}
    # drawn where the data says: the acc line (unsmoothed under the spike's neighbours: smoothing off)
    page.evaluate("() => { const s = document.querySelector('input[type=range]'); s.value = '0'; "
                  "s.dispatchEvent(new Event('input')); }")
    wait_for(page, "window.tailboard.charts.get('acc').view.smoothing === 0")
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
    colour = line_colour(page, "acc", "lr_0.1/seed0")
    assert probe(page, "acc", 200, 0.2).shows(colour) and probe(page, "acc", 500, 50.0).shows(colour)
    assert probe(page, "acc", 200, 40.0).lacks(colour)
    # names from the logs are text: the title, a chart's title, a legend, the runs table
    assert page.title() == "lr sweep <i>&amp;"
    assert page.locator(".report-title").inner_text() == "lr sweep <i>&amp;"
    card = page.locator(".chart").filter(has=page.locator(".chart-title", has_text="x</b>"))
    assert card.locator(".chart-title").inner_text() == HOSTILE_METRIC
    assert card.locator(".legend .lg-item").get_attribute("title") == HOSTILE_RUN  # labelled by its config
    page.locator(".report-runs summary").click()
    assert HOSTILE_RUN in page.locator(f".report-runs tr[data-run='{HOSTILE_RUN}']").inner_text()
    assert page.evaluate("() => document.querySelectorAll('img, b, i:not(.sw)').length") == 0
    assert page.evaluate("() => window.pwned") is None
    assert offline.requests == [] and offline.errors == []


@in_browser
def test_the_policy_stops_what_the_page_would_try(report: Path, offline: Offline) -> None:
    """Proof the CSP is on: a request and an inline handler tried from the page are refused by
    the policy itself (the route never sees them)."""
    page = offline.open(report)
    said = page.evaluate("""() => new Promise((resolve) => {
        const seen = [];
        document.addEventListener('securitypolicyviolation', (e) => { seen.push(e.effectiveDirective);
            if (seen.length === 2) resolve(seen.sort()); });
        setTimeout(() => resolve(seen.sort()), 5000); // a policy that lets them through says nothing
        fetch('https://example.invalid/x').catch(() => {});
        const img = document.createElement('img'); img.src = 'https://example.invalid/i.png'; document.body.append(img);
    })""")
    assert said == ["connect-src", "img-src"]
    assert offline.requests == []


@in_browser
def test_zoom_reset_crosshair_and_smoothing(report: Path, offline: Offline) -> None:
    page = offline.open(report)
    ranges = "() => JSON.stringify([...window.tailboard.charts].map(([m, c]) => [m, c.sx.lo, c.sx.hi]))"
    whole = page.evaluate(ranges)
    assert ["train/loss", 0, STEPS] in json.loads(whole)  # the hostile run's last point is at STEPS
    # the crosshair on acc near step 250: its table says the step of the point there and its value
    x, y = at(page, "acc", 250, 0.25)
    page.mouse.move(x, y)
    tip = page.locator(".chart[data-metric=acc] .tooltip")
    tip.wait_for(state="visible")
    step = int(tip.locator(".tt-x").inner_text().removeprefix("step "))
    assert abs(step - 250) <= 5
    assert float(tip.locator("td.value").inner_text()) == step / STEPS
    # the others show the crosshair at the same step
    wait_for(page, "window.tailboard.charts.get('train/loss').hoverX !== null")
    # drag from step 200 to 400: every chart zooms there; the reset button shows the whole again
    x0, _ = at(page, "acc", 200, 0.5)
    x1, _ = at(page, "acc", 400, 0.5)
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move(x1, y, steps=5)
    page.mouse.up()
    wait_for(page, "[...window.tailboard.charts.values()].every((c) => c.view.zoom && c.sx.hi - c.sx.lo < 250)")
    zoom = page.evaluate("() => window.tailboard.charts.get('train/loss').view.zoom")
    assert abs(zoom[0] - 200) < 3 and abs(zoom[1] - 400) < 3
    reset = page.get_by_role("button", name="Reset zoom")
    reset.click()
    wait_for(page, f"({ranges})() === {json.dumps(whole)}")
    assert reset.is_hidden()
    # the smoothing slider: at 0.95 the crosshair's table has the smoothed value (EMA of the data)
    page.evaluate("() => { const s = document.querySelector('input[type=range]'); s.value = '0.95'; "
                  "s.dispatchEvent(new Event('input')); }")
    wait_for(page, "[...window.tailboard.charts.values()].every((c) => c.view.smoothing === 0.95)")
    page.mouse.move(x + 1, y)
    wait_for(page, "document.querySelector('.chart[data-metric=acc] .tooltip td.smoothed') !== null")
    step = int(tip.locator(".tt-x").inner_text().removeprefix("step "))
    expected = browserkit.ema([s / STEPS for s in range(step + 1)], 0.95)[step]
    shown = float(tip.locator("td.smoothed").inner_text())
    assert shown == pytest.approx(expected, rel=1e-5)
    assert offline.requests == [] and offline.errors == []


@in_browser
def test_a_cards_csv_button_saves_every_point(report: Path, browser: Any) -> None:
    o = Offline(browser, accept_downloads=True)
    try:
        page = o.open(report)
        with page.expect_download() as download:
            page.locator(".chart[data-metric=acc] button.csv").click()
        rows = Path(download.value.path()).read_text().splitlines()
        assert rows[0] == "run,metric,step,value,wall_time" and len(rows) == STEPS + 1
        assert rows[251].startswith('"lr_0.1/seed0","acc",250,0.25,')
        assert o.requests == [] and o.errors == []
    finally:
        o.context.close()


@in_browser
def test_png_writes_each_chart_drawn_by_the_viewer(logs: Path, tmp_path: Path) -> None:
    proc = export(logs, "-o", tmp_path / "r.html", "--png", tmp_path / "png")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.endswith(f"tailboard: 4 PNGs in {tmp_path / 'png'}\n")
    files = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert files == sorted(["train_loss.png", "acc.png", "epoch.png", "_script_--_b_x_b_.png"])
    for name in files:
        width, height, rgba = png_rgba((tmp_path / "png" / name).read_bytes())
        assert (width, height) == PNG_SIZE
        inked = sum(1 for i in range(3, len(rgba), 4) if rgba[i] > 0)
        assert inked > 2000, name  # axes, labels and lines
