"""The viewer's GPU charts and GPUs tab in headless Chromium, against the real sidecar following a
training run and a host's system run that a real sampler writes live (over a fake NVML: there is no
GPU here)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import browserkit
import pytest
import tailboard
from browserkit import BROWSER_MARKS, new_page, page_url, probe, wait_for
from tailboard.sidecar.gpu import GpuSampler, gpu_key, system_run_id
from tailboard.sidecar.gpu.fake import FakeGpu, FakeNvml, uuid_for
from tailboard.sidecar.server import ServerHandle, serve_in_thread
from tailboard.sidecar.store.gpus import IdleRule

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

NODE = "node-a"
SYSTEM = system_run_id(NODE)
USED, SPARE = gpu_key(uuid_for(0)), gpu_key(uuid_for(1))
UTIL = "GPU/utilisation %"
POWER = "GPU/power W"
GiB = 2**30


@pytest.fixture
def live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerHandle, FakeNvml, tailboard.Run]]:
    """A sampler writing the system run of NODE every second, a training run on GPU 0 (its
    NVIDIA_VISIBLE_DEVICES names it, as the NVIDIA container runtime sets it), GPU 1 used by none."""
    nv = FakeNvml([FakeGpu(uuid_for(0), util=80, power_mw=300_000, temp=61, mem_used=20 * GiB),
                   FakeGpu(uuid_for(1), util=10, power_mw=90_000, temp=40, mem_used=GiB)])
    sampler = GpuSampler(str(tmp_path), nvml=nv, node=NODE)
    sampler.start()
    monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", uuid_for(0))
    run = tailboard.init(tmp_path / "train")
    for i in range(20):
        run.log({"train/loss": 1.0 / (i + 1)}, step=i)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    handle.store.gpu_idle = IdleRule(util=5.0, samples=3)  # three seconds, not a minute
    stop = False

    def beat() -> None:  # the run goes on logging: it stays running
        i = 20
        while not stop:
            run.log({"train/loss": 1.0 / (i + 1)}, step=i)
            i += 1
            time.sleep(0.2)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield handle, nv, run
    finally:
        stop = True
        thread.join(5)
        handle.stop()
        sampler.stop()
        run.finish()


def line_id(run: str, key: str) -> str:
    return f"{run}\u0000gpu\u0000{SYSTEM}\u0000{key}"


def colour_of(page: Any, chart: str, series_id: str) -> tuple[int, int, int]:
    return tuple(page.evaluate(
        """([m, id]) => { const s = window.tailboard.charts.get(m).series.find((s) => s.id === id);
            const ctx = document.createElement('canvas').getContext('2d'); ctx.fillStyle = s.color;
            ctx.fillRect(0, 0, 1, 1); return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)); }""",
        [chart, series_id]))


def test_a_runs_gpus_are_charted_on_its_time_axis_and_listed_with_their_runs(browser: Any, live: Any) -> None:
    handle, nv, _ = live
    page, errors = new_page(browser, viewport={"width": 1400, "height": 1000})
    try:
        page.goto(page_url(handle, "x=relative"))
        # the page selects the training run by itself, never the host's system run
        wait_for(page, "() => window.tailboard.view.runs.length > 0")
        assert page.evaluate("() => window.tailboard.view.runs") == ["train"]
        # a GPU section, one chart per field, one line per GPU the run uses
        wait_for(page, f"() => {{ const c = window.tailboard.charts.get({UTIL!r}); return c && c.series.length === 1 && c.draws > 0; }}")
        assert page.evaluate("() => document.querySelector('#section-GPU') !== null")
        assert page.evaluate(f"() => window.tailboard.charts.get({POWER!r}) !== undefined")
        series = page.evaluate(f"() => window.tailboard.charts.get({UTIL!r}).series.map((s) => [s.id, s.label])")
        assert series == [[line_id("train", USED), f"train · GPU 0 ({USED})"]]
        assert page.evaluate(f"() => window.tailboard.charts.get({UTIL!r}).view.xaxis") == "relative"
        # at a sample's time since the run started: the line at 80% (and not at 40%), at 300 W
        started = handle.store.get_run("train").started
        wait_for(page, f"() => window.tailboard.charts.get({UTIL!r}).series[0].steps.length >= 3")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        drawn = page.evaluate(f"() => Array.from(window.tailboard.charts.get({UTIL!r}).series[0].times)")
        t = drawn[len(drawn) // 2]
        samples = handle.store.series(SYSTEM, f"gpu/{USED}/util")
        assert t in list(samples.times)  # the sampler's own times, at the run's relative time
        colour = colour_of(page, UTIL, line_id("train", USED))
        assert probe(page, UTIL, t - started, 80).shows(colour)
        assert probe(page, UTIL, t - started, 40, radius=4).lacks(colour)
        assert probe(page, POWER, t - started, 300).shows(colour_of(page, POWER, line_id("train", USED)))
        # on the wall clock, both the run's charts and the GPU's
        page.select_option("#xaxis", "wall")
        wait_for(page, f"() => window.tailboard.charts.get({UTIL!r}).view.xaxis === 'wall' && "
                       "window.tailboard.charts.get('train/loss').view.xaxis === 'wall'")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        assert probe(page, UTIL, t, 80).shows(colour)
        # step is not a GPU chart's axis: it stays on time since the run started
        page.select_option("#xaxis", "step")
        wait_for(page, f"() => window.tailboard.charts.get({UTIL!r}).view.xaxis === 'relative' && "
                       "window.tailboard.charts.get('train/loss').view.xaxis === 'step'")

        # a GPU chart's CSV holds its lines' points, each named by run and GPU
        with page.expect_download(timeout=10_000) as download:
            page.click(f".chart[data-metric='{UTIL}'] button.csv")
        rows = Path(download.value.path()).read_text().splitlines()
        assert rows[0] == "run,metric,step,value,wall_time" and len(rows) > 3
        assert all(r.startswith(f'"train · GPU 0 ({USED})","{UTIL}",') for r in rows[1:]), rows[:3]
        assert {float(r.split(",")[-2]) for r in rows[1:]} == {80.0}

        # the GPUs tab: every GPU seen, with the runs on it; unattributed where none
        page.click("#tabs button[data-tab=gpus]")
        row = f"#tab-gpus tr.gpu-row[data-key='{USED}']"
        spare = f"#tab-gpus tr.gpu-row[data-key='{SPARE}']"
        wait_for(page, f"() => document.querySelector(\"{row} td.util\")?.textContent === '80%'")
        assert page.inner_text(f"{row} td.runs") == "train"
        assert page.inner_text(f"{spare} td.runs") == "unattributed"
        assert page.get_attribute(f"{row} td.key", "title").startswith(f"UUID {uuid_for(0)}")
        assert page.inner_text(f"{row} td:first-child") == NODE  # the host as the tree names it
        assert page.get_attribute(f"{row} td:first-child", "title") == f"host name {handle.store.get_run(SYSTEM).host}"
        assert "idle" not in page.inner_text(f"{row} td.runs")
        assert page.query_selector(".run-row[data-run='train'] .gpu-idle") is None

        # the GPU under the running run goes idle: flagged in the tab, and on the run's GPU line
        nv.gpus[0].util = 0
        nv.gpus[1].util = 0  # idle too, but under no run: not flagged
        wait_for(page, f"() => document.querySelector(\"{row}.idle .badge.gpu-idle\") !== null", timeout=15)
        wait_for(page, f"() => document.querySelector(\"{row} td.util\")?.textContent === '0%'")
        assert page.query_selector(f"{spare}.idle") is None
        # and on the run's row in the run list
        wait_for(page, "() => document.querySelector(\".run-row[data-run='train'] .badge.gpu-idle\")?.textContent === 'GPU idle'")
        page.click("#tabs button[data-tab=scalars]")
        wait_for(page, f"() => window.tailboard.charts.get({UTIL!r})?.series[0]?.label.endsWith('· idle')")
        assert not errors, errors
    finally:
        page.close()


RESOURCES = """() => performance.getEntriesByType('resource').map((e) => [e.name, e.startTime])"""


def test_the_gpus_tab_asks_once_per_host_per_refresh(browser: Any, tmp_path: Path) -> None:
    """Two hosts of four GPUs each: every refresh of the tab is one /api/latest request per host (not
    one /api/series request per GPU and figure), and every row shows its GPU's own figures."""
    hosts = {"node-a": range(0, 4), "node-b": range(4, 8)}
    samplers = []
    for node, ids in hosts.items():
        nv = FakeNvml([FakeGpu(uuid_for(i), util=10 * i + 5, power_mw=(100 + i) * 1000, temp=30 + i,
                               mem_used=i * GiB) for i in ids])
        samplers.append(GpuSampler(str(tmp_path), nvml=nv, node=node))
    for sampler in samplers:
        sampler.start()
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1400, "height": 1000})
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    try:
        page.goto(page_url(handle))
        wait_for(page, "() => window.tailboard?.state?.infos?.size === 2")
        page.evaluate("() => performance.setResourceTimingBufferSize(100000)")
        page.click("#tabs button[data-tab=gpus]")
        for node, ids in hosts.items():
            for i in ids:
                row = f"#tab-gpus tr.gpu-row[data-system='{system_run_id(node)}'][data-key='{gpu_key(uuid_for(i))}']"
                wait_for(page, f"() => document.querySelector(\"{row} td.util\")?.textContent === '{10 * i + 5}%'")
                assert page.inner_text(f"{row} td:nth-child(8)") == f"{100 + i} W"
        # three refreshes at least (POLL_MS apart); the requests of one refresh start together
        wait_for(page, f"() => ({RESOURCES})().filter(([u]) => u.includes('/api/latest?')).length >= 6", timeout=20)
        latest = [(url, start) for url, start in page.evaluate(RESOURCES) if "/api/latest?" in url]
        refreshes: list[list[str]] = []
        for i, (url, start) in enumerate(latest):
            if i == 0 or start - latest[i - 1][1] > 500:
                refreshes.append([])
            refreshes[-1].append(parse_qs(urlsplit(url).query)["run"][0])
        assert len(refreshes) >= 3
        for runs in refreshes[:-1]:  # the last may still be under way
            assert sorted(runs) == sorted(system_run_id(n) for n in hosts), refreshes
        assert sorted(set(parse_qs(urlsplit(u).query)["run"][0] for u in asked if "/api/latest?" in u)) == \
            sorted(system_run_id(n) for n in hosts)
        assert not [u for u in asked if "/api/series?" in u and "gpu%2F" in u], "no request per GPU and figure"
        assert not errors, errors
    finally:
        page.close()
        handle.stop()
        for sampler in samplers:
            sampler.stop()
