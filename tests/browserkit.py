"""Shared pieces of the viewer's browser tests: Debian's Chromium through Playwright, waiting on the
page, reading a chart's pixels, and the URL to open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tailboard.sidecar.server import ServerHandle

__all__ = ["ARGS", "BROWSER_MARKS", "CHROMIUM", "OUT", "browser", "ink", "page_url", "pixels", "wait_for"]

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


def wait_for(page: Any, js: str, timeout: float = 10.0) -> Any:
    page.wait_for_function(js, timeout=timeout * 1000)


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
