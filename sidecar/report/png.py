"""``--png``: each chart of a report file drawn by the viewer's own code in a headless Chromium.

Playwright drives the Chromium: its own when installed, else one on the ``PATH``. Without either,
one line says what to install (``CliError``, exit code 1). The page opens offline, with ``#png`` in
its URL: report.js then lays the charts one to a row at ``PNG_SIZE`` and hands their PNGs out
(``pngFiles()``, named by the viewer's export rule).
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path
from typing import Any

from ..cli import CliError

__all__ = ["PNG_SIZE", "check_playwright", "write_pngs"]

#: CSS pixels of each chart --png saves (report.html's `body.png` rules), drawn at a device pixel ratio of 1.
PNG_SIZE = (800, 400)
#: Chromium's flags for --png: no sandbox (it needs user namespaces, often missing in containers) and
#: nothing of its own on the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PLAYWRIGHT_INSTALL = "pip install playwright && python -m playwright install chromium"


def _chromium(playwright: Any) -> Any:
    """Playwright's own Chromium when it is installed, else one on the PATH."""
    own = playwright.chromium.executable_path
    if own and os.path.exists(own):
        return playwright.chromium.launch(args=CHROMIUM_ARGS)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return playwright.chromium.launch(executable_path=found, args=CHROMIUM_ARGS)
    raise CliError("--png needs a Chromium (none from Playwright, none on the PATH): python -m playwright "
                   "install chromium, or your system's chromium package")


def check_playwright() -> Any:
    """Playwright's ``sync_playwright``, or the one line that says how to install it."""
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError as e:
        raise CliError(f"--png needs Playwright ({e.name} is not installed): {PLAYWRIGHT_INSTALL}") from None
    return sync_playwright


def write_pngs(report: Path, folder: Path) -> list[Path]:
    """Each chart of the report file ``report`` drawn by its own code in a headless Chromium, saved
    as ``folder/<metric>.png`` (``PNG_SIZE``). The page is offline: it has nothing to fetch."""
    sync_playwright = check_playwright()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot make the folder {folder} for --png: {e.strerror}") from None
    written = []
    with sync_playwright() as p:
        browser = _chromium(p)
        try:
            context = browser.new_context(viewport={"width": PNG_SIZE[0] + 100, "height": 900}, device_scale_factor=1)
            context.set_offline(True)
            page = context.new_page()
            page.goto(report.resolve().as_uri() + "#png")
            # a function, not an expression: the page's policy refuses eval
            page.wait_for_function("() => window.tailboard && window.tailboard.charts")
            files = page.evaluate("() => window.tailboard.pngFiles()")
        finally:
            browser.close()
    for f in files:
        name = f["name"]
        # the viewer's rule leaves letters, digits, '.', '-' and '_': a plain name in the folder
        if os.path.basename(name) != name or not f["url"].startswith("data:image/png;base64,"):
            raise ValueError(f"a chart's PNG came back as {name!r}")  # pngFiles() makes neither
        target = folder / name
        try:
            target.write_bytes(base64.b64decode(f["url"].partition(",")[2]))
        except OSError as e:
            raise CliError(f"cannot write {target}: {e.strerror}") from None
        written.append(target)
    return written
