"""Shared pieces of the viewer's browser tests: Debian's Chromium through Playwright, waiting on the
page, reading a chart's pixels, and the URL to open."""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tailboard.sidecar.server import ServerHandle

__all__ = ["ARGS", "BROWSER_MARKS", "CHROMIUM", "OUT", "Probe", "browser", "ema", "hover", "ink", "line_colour",
           "new_page", "page_url", "pixels", "png_rgba", "probe", "screen_point", "tooltip_reads",
           "wait_for"]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).resolve().parent.parent / "test-output"

#: `pytestmark = BROWSER_MARKS` in a test module: marked `browser`, skipped without Chromium.
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed (make chromium)"),
]

playwright = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def new_page(browser: Any, **options: Any) -> tuple[Any, list[str]]:
    """A new page (``options`` as Playwright's ``new_page`` takes them) and the list its uncaught
    errors go to."""
    page = browser.new_page(**options)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page, errors


def wait_for(page: Any, js: str, timeout: float = 10.0) -> Any:
    page.wait_for_function(js, timeout=timeout * 1000)


def screen_point(page: Any, metric: str, x: float, y: float | None = None) -> tuple[float, float]:
    """Where on the page (CSS pixels) x (and y, else the middle of the plot) of a chart is."""
    return tuple(page.evaluate("""([m, x, y]) => { const c = window.tailboard.charts.get(m);
        const r = c.canvas.getBoundingClientRect();
        return [r.x + c.sx.px(x), r.y + (y == null ? (c.sy.p0 + c.sy.p1) / 2 : c.sy.px(y))]; }""", [metric, x, y]))


def hover(page: Any, metric: str, x: float, until: str, *, y: float | None = None, timeout: float = 10.0) -> None:
    """Put the pointer on x of a chart and wait until the JS condition `until` holds.

    The place is worked out again on each try: a page that is still laying itself out (a scroll bar
    that appears narrows every canvas and moves its scale) can leave the pointer over another step
    than the one asked for, and a pointer that stays where it is sends no new event. Between tries
    the pointer leaves the page's corner, so the next move is a fresh one."""
    deadline = time.monotonic() + timeout
    while True:
        page.mouse.move(*screen_point(page, metric, x, y))
        try:
            page.wait_for_function(until, timeout=max(0.1, min(2.0, deadline - time.monotonic())) * 1000)
            return
        except playwright.TimeoutError:
            if time.monotonic() >= deadline:
                raise
        page.mouse.move(1, 1)


def tooltip_reads(metric: str, head: str) -> str:
    """JS: a chart's floating data table is shown, for the position `head` ("step 30")."""
    return (f"""() => {{ const t = document.querySelector({f"[data-metric='{metric}'] .tooltip"!r});
        return !!t && !t.hidden && t.querySelector('.tt-x')?.innerText === {head!r}; }}""")


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


def page_url(handle: ServerHandle, query: str = "", *, token: str | None = None) -> str:
    """The page with a view in its query and the token in the fragment, as the printed URL has it."""
    tok = handle.token if token is None else token
    return f"{handle.base_url}/{'?' + query if query else ''}{'#token=' + tok if tok else ''}"


# ---- what is drawn where ------------------------------------------------------------------------
# A chart's pixels are checked at the place a known value must be drawn: the data point is mapped to
# the canvas here, from the chart's x and y ranges and plot box (not through its Scale or path code),
# and the pixels around it must hold the run's line colour; where no line passes, they must not.

PROBE = """([m, x, y, r]) => { const c = window.tailboard.charts.get(m);
    const dpr = c.canvas.width / c.canvas.clientWidth;
    const f = (s, v) => (s.log ? Math.log10(v) : v);
    const at = (s, v) => s.p0 + (f(s, v) - f(s, s.lo)) / (f(s, s.hi) - f(s, s.lo)) * (s.p1 - s.p0);
    const px = Math.round(at(c.sx, x) * dpr), py = Math.round(at(c.sy, y) * dpr), n = 2 * r + 1;
    const d = c.ctx.getImageData(px - r, py - r, n, n).data;
    return { px, py, r, pixels: Array.from(d) }; }"""


@dataclass(frozen=True)
class Probe:
    """The RGBA pixels of a square of device pixels around (px, py) of a chart's canvas."""

    px: int
    py: int
    r: int
    pixels: Sequence[int]

    def rgba(self) -> list[tuple[int, int, int, int]]:
        p = self.pixels
        return [(p[i], p[i + 1], p[i + 2], p[i + 3]) for i in range(0, len(p), 4)]

    def shows(self, rgb: tuple[int, int, int], *, min_alpha: int = 85, tol: int = 40) -> bool:
        """Some pixel is about `rgb` (each channel within tol) and more opaque than a line's faint copy
        (the raw line under a smoothed one is drawn at alpha 0.3, 77 of 255 at most)."""
        return any(a >= min_alpha and max(abs(c - w) for c, w in zip((r, g, b), rgb)) <= tol
                   for r, g, b, a in self.rgba())

    def lacks(self, rgb: tuple[int, int, int], *, tol: int = 40) -> bool:
        """No pixel of about `rgb` at any visible alpha: nothing of that line is here."""
        return not any(a >= 40 and max(abs(c - w) for c, w in zip((r, g, b), rgb)) <= tol for r, g, b, a in self.rgba())


def probe(page: Any, metric: str, x: float, y: float, radius: int = 3) -> Probe:
    """The pixels of `metric`'s chart around the place where the data point (x, y) belongs."""
    return Probe(**page.evaluate(PROBE, [metric, x, y, radius]))


def line_colour(page: Any, metric: str, run: str) -> tuple[int, int, int]:
    """The RGB of the colour a chart gives a run's line (its CSS colour, as a canvas paints it)."""
    return tuple(page.evaluate(
        """([m, run]) => { const s = window.tailboard.charts.get(m).series.find((s) => s.id === run);
            const ctx = document.createElement('canvas').getContext('2d'); ctx.fillStyle = s.color;
            ctx.fillRect(0, 0, 1, 1); return Array.from(ctx.getImageData(0, 0, 1, 1).data.slice(0, 3)); }""",
        [metric, run]))


def ema(values: Sequence[float], weight: float) -> list[float]:
    """The debiased exponential moving average the charts draw when smoothing (TensorBoard's)."""
    out, last, wk = [], 0.0, 1.0
    for v in values:
        last = last * weight + (1 - weight) * v
        wk *= weight
        out.append(last / (1 - wk) if weight > 0 else v)
    return out


def png_rgba(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the RGBA bytes of an 8-bit RGBA PNG (as canvas.toDataURL writes), unfiltered."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (data[24], data[25], data[28]) == (8, 6, 0), "8-bit RGBA, not interlaced"
    idat, i = b"", 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        if data[i + 4:i + 8] == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    raw, stride, bpp = zlib.decompress(idat), 4 * width, 4
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if kind == 1:
                line[x] = (line[x] + a) & 255
            elif kind == 2:
                line[x] = (line[x] + b) & 255
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, bytes(out)
