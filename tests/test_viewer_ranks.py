"""A distributed run in headless Chromium: four ranks written live by the real writer, one of them
slower. The page draws the run's metric once, as the ranks' mean with a min-max band (or each rank's
line on demand), and its straggler view names the slow rank and follows the ranks as they move.
The band's data table counts ranks and names the ranks at its ends (a group of runs counts runs),
and the chart's CSV holds every rank's points."""

from __future__ import annotations

import csv
import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import pytest
import tailboard
from browserkit import BROWSER_MARKS, Probe, hover, new_page, page_url, probe, tooltip_reads, wait_for
from tailboard.sidecar.server import ServerHandle, serve_in_thread

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

RANKS = 4
SLOW = 2  # this rank takes four times as long per step
STEP = 20  # a step every rank has reached when the band is probed


def value(rank: int, step: int) -> float:
    """Straight lines a unit apart: rank 0 lowest, rank 3 highest at every step."""
    return 1.0 + rank + step / 100


class Ranks:
    """Four trainer threads, each writing its own rank's file through the writer, until stopped."""

    def __init__(self, root: Path) -> None:
        self.stop = threading.Event()
        self.last = [-1] * RANKS
        self.runs = [tailboard.init(root / "ddp", rank=r, world_size=RANKS) for r in range(RANKS)]
        self.threads = [threading.Thread(target=self._train, args=(r,), daemon=True) for r in range(RANKS)]
        for t in self.threads:
            t.start()

    def _train(self, rank: int) -> None:
        pause = 0.04 if rank == SLOW else 0.01
        step = 0
        while not self.stop.is_set():
            self.runs[rank].log({"loss": value(rank, step)}, step=step)
            self.last[rank] = step
            step += 1
            time.sleep(pause)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)
        for run in self.runs:
            run.finish()


@pytest.fixture
def ddp(tmp_path: Path) -> Iterator[tuple[ServerHandle, Ranks]]:
    ranks = Ranks(tmp_path)
    deadline = time.monotonic() + 10
    while min(ranks.last) < STEP and time.monotonic() < deadline:
        time.sleep(0.01)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    try:
        yield handle, ranks
    finally:
        ranks.finish()
        handle.stop()


CARD = "[data-run='ddp'].rank-card"


def cells(page: Any) -> dict[int, dict[str, str]]:
    """The straggler card's rows: rank -> {column: text}."""
    rows = page.evaluate(f"""() => [...document.querySelectorAll("{CARD} tbody tr")].map((tr) =>
        [tr.dataset.rank, [...tr.cells].map((td) => td.innerText)])""")
    return {int(rank): dict(zip(["rank", "step", "behind", "rate", "age"], texts)) for rank, texts in rows}


def age_seconds(text: str) -> int:
    """A card's "last record" text as whole seconds: "now" is 0, "12 s ago" 12."""
    return 0 if text == "now" else int(text.removesuffix(" s ago"))


def colour_of(page: Any, series_js: str) -> tuple[int, int, int]:
    """The RGB a canvas paints the colour of the loss chart's first series matching `series_js`."""
    return tuple(page.evaluate(
        f"""() => {{ const s = window.tailboard.charts.get('loss').series.find({series_js});
            const ctx = document.createElement('canvas').getContext('2d'); ctx.fillStyle = s.color;
            ctx.fillRect(0, 0, 1, 1); return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)); }}"""))


def band_alphas(p: Probe, rgb: tuple[int, int, int], tol: int = 12) -> list[int]:
    """The alphas of the pixels of a probe that have about the colour `rgb` (a band's fill)."""
    return [a for r, g, b, a in p.rgba() if a and max(abs(c - w) for c, w in zip((r, g, b), rgb)) <= tol]


def settle(page: Any) -> None:
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def test_a_run_of_four_ranks_is_one_band_with_its_straggler_named_live(browser: Any, ddp: Any) -> None:
    handle, ranks = ddp
    page, errors = new_page(browser, viewport={"width": 1300, "height": 900})
    try:
        page.goto(page_url(handle, "runs=ddp&smooth=0"))
        # one chart for the ranks' metric, drawn as one series with a band
        wait_for(page, "() => window.tailboard && window.tailboard.charts.has('loss') && "
                       "window.tailboard.charts.get('loss').series.length === 1 && "
                       "window.tailboard.charts.get('loss').series[0].band !== null && window.tailboard.charts.get('loss').draws > 0")
        assert sorted(page.evaluate("() => [...window.tailboard.charts.keys()]")) == ["loss"]

        # the straggler view: a row per rank, the slow one named and marked
        wait_for(page, f"() => document.querySelectorAll(\"{CARD} tbody tr\").length === {RANKS}")
        wait_for(page, f"() => document.querySelector(\"{CARD} .rank-slowest\")?.innerText === 'slowest: rank {SLOW}'")
        assert page.inner_text(f"{CARD} tr.slowest td:first-child") == str(SLOW)
        first = cells(page)
        behind = {r: int(first[r]["behind"]) for r in range(RANKS)}
        assert behind[SLOW] > max(b for r, b in behind.items() if r != SLOW), first
        assert float(first[SLOW]["rate"]) < 0.6 * float(first[0]["rate"]), first

        # it follows the ranks as they move: the leader's step and the straggler's lag grow
        wait_for(page, f"""() => {{ const tr = document.querySelector("{CARD} tr[data-rank='0']");
            return tr && Number(tr.cells[1].innerText) > {int(first[0]["step"])} + 40; }}""")
        wait_for(page, f"""() => Number(document.querySelector("{CARD} tr[data-rank='{SLOW}']").cells[2].innerText) >
            {int(first[SLOW]["behind"])} + 20""")
        assert page.inner_text(f"{CARD} .rank-slowest") == f"slowest: rank {SLOW}"

        # the trainers end: the card settles on each rank's last step
        ranks.finish()
        wait_for(page, f"""() => {{ const last = {ranks.last};
            return last.every((s, r) => document.querySelector(`{CARD} tr[data-rank='${{r}}']`)?.cells[1].innerText === String(s)); }}""")
        got = cells(page)
        top = max(ranks.last)
        assert [int(got[r]["behind"]) for r in range(RANKS)] == [top - s for s in ranks.last]
        # and the ranks' silence is counted: their last records' ages grow with the clock
        ages = [age_seconds(got[r]["age"]) for r in range(RANKS)]
        assert max(ages) <= 5, got
        wait_for(page, f"""() => [...document.querySelectorAll("{CARD} tbody tr")].every((tr, r) =>
            /^\\d+ s ago$/.test(tr.cells[4].innerText) && parseInt(tr.cells[4].innerText) >= {ages}[r] + 2)""")

        # the band at a step every rank reached: between the lowest and the highest rank, the mean on it
        wait_for(page, f"() => window.tailboard.charts.get('loss').series[0].xs.length > {max(ranks.last)} - 1")
        settle(page)
        colour = colour_of(page, "(s) => s.group != null")
        lo, hi = value(0, STEP), value(RANKS - 1, STEP)
        mean = sum(value(r, STEP) for r in range(RANKS)) / RANKS
        assert probe(page, "loss", STEP, mean).shows(colour)
        for y in ((mean + hi) / 2, (lo + mean) / 2, hi - 0.1, lo + 0.1):
            inside = band_alphas(probe(page, "loss", STEP, y, radius=1), colour)
            assert inside and all(35 <= a <= 75 for a in inside), (y, inside)
        for y in (hi + 0.5, lo - 0.5):
            assert not band_alphas(probe(page, "loss", STEP, y, radius=2), colour), y

        # "ranks": each rank's own line, in its own shade of the run's colour
        page.click(f"{CARD} input.rank-lines")
        wait_for(page, f"() => window.tailboard.charts.get('loss').series.length === {RANKS}")
        settle(page)
        shades = [colour_of(page, f"(s) => s.rank === {r}") for r in range(RANKS)]
        assert len(set(shades)) == RANKS
        for r in range(RANKS):
            assert probe(page, "loss", STEP, value(r, STEP)).shows(shades[r]), r
        assert page.is_checked(f"{CARD} input.rank-lines")
        # kept in the link, with the groups shown as their runs
        wait_for(page, "() => new URLSearchParams(location.search).getAll('gopen').join() === 'ranks of ddp'")
        # the legend's head of the ranks folds them into the band again
        page.click("[data-metric='loss'] .lg-group[data-group='ranks of ddp']")
        wait_for(page, "() => window.tailboard.charts.get('loss').series.length === 1")
        wait_for(page, f"() => !document.querySelector(\"{CARD} input.rank-lines\").checked")
        assert not errors, errors
    finally:
        page.close()


# ---- a finished run of ranks beside runs without ranks ------------------------------------------
# sweep/ddp: four ranks, whose order differs from their numbers (rank 1 lowest, rank 2 highest);
# rank 3 logs every other step and rank 2 stops early. sweep/a and sweep/b: runs of one file.
# "=calc": a run whose name a spreadsheet would read as a formula.
BASE = {0: 2.0, 1: 1.0, 2: 4.0, 3: 3.0}
STEPS = {0: range(0, 60), 1: range(0, 60), 2: range(0, 45), 3: range(0, 60, 2)}


def rank_value(rank: int, step: int) -> float:
    return BASE[rank] + step / 64 + (0.1 if step % 3 == 0 else 0.0)


@pytest.fixture
def finished(tmp_path: Path) -> Iterator[tuple[ServerHandle, Path]]:
    runs = [tailboard.init(tmp_path / "sweep" / "ddp", rank=r, world_size=RANKS) for r in range(RANKS)]
    for r, run in enumerate(runs):
        for step in STEPS[r]:
            run.log({"loss": rank_value(r, step), **({"aux": r + step / 8} if r and step % 5 == 0 else {})}, step=step)
        run.finish()
    for name, level in (("sweep/a", 2.5), ("sweep/b", 5.0), ("=calc", 7.0)):
        run = tailboard.init(tmp_path / name)
        for step in range(0, 60, 5):
            run.log({"loss": level + step / 100}, step=step)
        run.finish()
    handle = serve_in_thread(tmp_path, token="tok")
    try:
        yield handle, tmp_path
    finally:
        handle.stop()


def held(run: str, metric: str, n: int) -> str:
    """JS: the page holds n points of a run's series."""
    return f"window.tailboard.state.runs.get({run!r})?.series.get({metric!r})?.length === {n}"


def all_held() -> str:
    return " && ".join([held("sweep/ddp", "loss" if r == 0 else f"loss@rank{r}", len(STEPS[r])) for r in range(RANKS)])


def hover_rows(page: Any, step: float) -> list[dict[str, str]]:
    """The rows of the loss chart's floating data table with the pointer at `step`."""
    hover(page, "loss", step, tooltip_reads("loss", f"step {step}"))
    return list(page.evaluate("""() => [...document.querySelectorAll("[data-metric='loss'] .tooltip tbody tr")].map((tr) =>
        ({ group: tr.dataset.group || '', label: tr.querySelector('.lbl').innerText, full: tr.querySelector('.full')?.innerText || '',
           band: tr.querySelector('td.band')?.innerText || '', n: tr.querySelector('td.n')?.innerText || '' }))"""))


def legend(page: Any) -> list[str]:
    return [" ".join(t.split()) for t in page.evaluate(
        "() => [...document.querySelectorAll(\"[data-metric='loss'] .legend .lg-item\")].map((e) => e.innerText)")]


def band_text(lo: tuple[float, list[int]], hi: tuple[float, list[int]]) -> tuple[list[float], list[str]]:
    """The numbers and the rank names a band cell "1.2 (rank 1) – 4.5 (rank 2)" should hold."""
    def names(ranks: list[int]) -> str:
        return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))
    return [lo[0], hi[0]], [names(lo[1]), names(hi[1])]


def parse_band(text: str) -> tuple[list[float], list[str]]:
    ends = [part.strip() for part in text.split(" – ")]
    return [float(e.split(" (")[0]) for e in ends], [e.split(" (")[1].rstrip(")") for e in ends]


def test_a_ranks_band_reads_in_ranks_and_names_its_ends_while_a_group_of_runs_reads_in_runs(browser: Any, finished: Any) -> None:
    handle, _ = finished
    page, errors = new_page(browser, viewport={"width": 1300, "height": 900})
    try:
        page.goto(page_url(handle, "runs=sweep/ddp&smooth=0"))
        wait_for(page, f"() => {all_held()} && window.tailboard.charts.get('loss')?.series.length === 1 && "
                       "window.tailboard.charts.get('loss').draws > 0")
        assert legend(page) == ["▸ sweep/ddp 4 ranks"]
        # step 31: rank 3 between its steps 30 and 32; step 50: rank 2 stopped at 44
        for step in (31, 50):
            [row] = hover_rows(page, step)
            vals = {r: rank_value(r, step) for r in range(RANKS) if step in STEPS[r]}
            if 3 not in vals:  # rank 3 between its points: on the line between them
                vals[3] = (rank_value(3, step - 1) + rank_value(3, step + 1)) / 2
            lo, hi = min(vals.values()), max(vals.values())
            want_nums, want_names = band_text((lo, [r for r, v in vals.items() if v == lo]),
                                              (hi, [r for r, v in vals.items() if v == hi]))
            nums, names = parse_band(row["band"])
            assert row["full"] == "4 ranks" and row["n"] == f"{len(vals)}/4", row
            assert nums == pytest.approx(want_nums, rel=1e-5) and names == want_names, (step, row)
        assert names == ["rank 1", "rank 3"]  # at 50, rank 2 (the highest) has stopped

        # the same run in a group of runs: the group counts runs (the run of ranks with its rank 0)
        page.goto(page_url(handle, "runs=sweep/a,sweep/b,sweep/ddp&group=path:1&smooth=0"))
        wait_for(page, f"() => {all_held()} && {held('sweep/a', 'loss', 12)} && {held('sweep/b', 'loss', 12)} && "
                       "window.tailboard.charts.get('loss')?.series.length === 1 && "
                       "window.tailboard.charts.get('loss').series[0].group === 'sweep' && window.tailboard.charts.get('loss').draws > 0")
        assert legend(page) == ["▸ sweep 3 runs"]
        [row] = hover_rows(page, 30)
        assert row["full"] == "3 runs" and row["n"] == "3/3", row
        group_vals = [2.5 + 30 / 100, 5.0 + 30 / 100, rank_value(0, 30)]
        assert [float(v) for v in row["band"].split(" – ")] == pytest.approx([min(group_vals), max(group_vals)], rel=1e-5)
        assert "rank" not in row["band"]
        assert not errors, errors
    finally:
        page.close()


def file_points(path: Path) -> list[tuple[int, float, float]]:
    """(step, loss, time) of each scalars record of a file the writer wrote, in order."""
    out = []
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("k") == "scalars" and "loss" in rec["v"]:
            out.append((rec["step"], rec["v"]["loss"], rec["t"]))
    return out


def test_the_csv_of_a_chart_of_ranks_holds_every_ranks_points(browser: Any, finished: Any) -> None:
    handle, root = finished
    page, errors = new_page(browser, viewport={"width": 1300, "height": 900})
    try:
        page.goto(page_url(handle, "runs=sweep/ddp,=calc&smooth=0"))
        wait_for(page, f"() => {all_held()} && {held('=calc', 'loss', 12)} && window.tailboard.charts.get('loss')?.draws > 0")
        for lines in (False, True):  # the band, then each rank's line: the same CSV
            if lines:
                page.click("[data-run='sweep/ddp'].rank-card input.rank-lines")
                wait_for(page, f"() => window.tailboard.charts.get('loss').series.length === {RANKS + 1}")
            with page.expect_download(timeout=10_000) as info:
                page.click("[data-metric='loss'] button.csv")
            assert info.value.suggested_filename == "loss.csv"
            text = Path(info.value.path()).read_text()
            header, *rows = list(csv.reader(text.splitlines()))
            assert header == ["run", "rank", "metric", "step", "value", "wall_time"]
            assert all(len(r) == 6 and r[2] == "loss" for r in rows)
            for rank in range(RANKS):
                got = [(int(r[3]), float(r[4]), float(r[5])) for r in rows if r[0] == "sweep/ddp" and r[1] == str(rank)]
                want = file_points(root / "sweep" / "ddp" / f"rank{rank}.jsonl")
                assert [s for s, _, _ in want] == list(STEPS[rank])
                assert got == want, rank  # exactly: every step, value and time
            # a block per rank, in rank order, then the run without ranks
            blocks = [key for key, _ in itertools.groupby((r[0], r[1]) for r in rows)]
            assert blocks == [("sweep/ddp", str(k)) for k in range(RANKS)] + [("'=calc", "")]
            # a name a spreadsheet would read as a formula is neutralised, and quoted
            assert "\n\"'=calc\",,\"loss\",0,7," in text
            assert len(rows) == sum(len(s) for s in STEPS.values()) + 12
        # a metric rank 0 does not log: the CSV holds the ranks that do
        wait_for(page, "() => window.tailboard.charts.get('aux')?.draws > 0")
        with page.expect_download(timeout=10_000) as info:
            page.click("[data-metric='aux'] button.csv")
        header, *rows = list(csv.reader(Path(info.value.path()).read_text().splitlines()))
        assert header == ["run", "rank", "metric", "step", "value", "wall_time"]
        for rank in range(1, RANKS):
            got = [(int(r[3]), float(r[4])) for r in rows if r[0] == "sweep/ddp" and r[1] == str(rank)]
            assert got == [(s, rank + s / 8) for s in STEPS[rank] if s % 5 == 0], rank
        assert not [r for r in rows if r[1] == "0"]
        assert not errors, errors
    finally:
        page.close()
