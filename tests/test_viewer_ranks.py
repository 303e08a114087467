"""A distributed run in headless Chromium: four ranks written live by the real writer, one of them
slower. The page draws the run's metric once, as the ranks' mean with a min-max band (or each rank's
line on demand), and its straggler view names the slow rank and follows the ranks as they move."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import pytest
import tailboard
from browserkit import BROWSER_MARKS, Probe, page_url, probe, wait_for
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
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
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
