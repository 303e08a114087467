"""`tailboard export RUN_OR_DIR... -o report.html`: the runs' scalars in one self-contained HTML file.

The file holds everything it shows: the viewer's chart code, its style sheet and the data, inline. It
opens from ``file://`` with no server and makes no request at all (its Content-Security-Policy
allows none: ``default-src 'none'``, the one script and the style sheets by their hashes, images
from ``data:``/``blob:`` only). docs/report.md is the user's side.

Reading: each argument is read as ``tailboard top`` reads a log root, by the sidecar's own
``Follower`` catching up into a ``Store`` (every format the readers know, nothing outside the
root), then stopped. The series come out of the store: all of a metric's points while the total
fits ``max_points``; beyond it, the budget is shared out (a series smaller than its share keeps
every point, what it leaves goes to the others) and the bigger series are taken M4-downsampled by
the store (``downsample_m4``: each bucket of steps keeps its first, min, max and last point, so
spikes stay; a bucket holding a NaN keeps that too, and a series is asked again with fewer buckets
if that took it over its share). Every series keeps at least ``MIN_POINTS``.

The code: module scripts do not load from ``file://`` (the origin is opaque, so every module fetch
fails CORS). Of the two ways around it, keeping each module's text in the page and importing it
through ``blob:`` URLs made at load time, or joining the modules into one script here, this file
joins (:func:`bundle`), because:

- the page runs exactly one inline script, allowed by its hash; the policy needs no ``blob:`` in
  ``script-src`` (which would let any script the page makes run) and the page needs no loader;
- nothing at run time depends on how a browser treats ``blob:`` module imports in an opaque origin
  (they differ, and a mail client's preview or a locked-down browser may refuse them);
- it is small and strict: only import and export lines are rewritten, and the viewer writes them in
  one form (``import { a, b as c } from "./x.js";``, ``export function|class|const NAME``,
  ``export { a } from "./x.js";``). Any other form, a name imported that the module does not
  export, an import cycle or a ``</script`` in the code is refused with the file and line, so a
  change in the viewer breaks the export tests, never a report.

Each module's body is wrapped in its own function scope (its top-level names stay its own, as in a
module; the whole runs as one inline module script, so in strict mode), modules in dependency
order, and an import becomes a destructuring of the exporting module's object. Live bindings are
not kept, so an exported ``let`` is refused. The data goes in a ``<script type="application/json">``
with ``<``, ``>`` and ``&`` escaped as ``\\u003c``..., so no name from the logs can end the element or
open a comment; report.js builds the page from it with dom.js, names as text nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import itertools
import os
import re
import tempfile
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
from tailboard import __version__

from .cli import CliError, UsageError, check_folder
from .follower import Follower
from .protocol import series_json
from .series import Series
from .store import Store

__all__ = ["MIN_POINTS", "PNG_SIZE", "bundle", "collect", "export", "render", "shares"]

#: The viewer's files, where the server finds them (app.py).
VIEWER: Any = resources.files("tailboard.viewer")
#: Fewest points a series keeps, whatever the budget: the first, min, max and last of one bucket.
MIN_POINTS = 4
#: A downsampled series is asked again while it holds less than this share of its budget...
FILL = 0.9
#: ... once (each query of thousands of buckets costs about 0.1 s: downsample_m4 loops over them).
FILL_TRIES = 2
#: CSS pixels of each chart --png saves (report.html's `body.png` rules), drawn at a device pixel ratio of 1.
PNG_SIZE = (800, 400)
#: Chromium's flags for --png: no sandbox (it needs user namespaces, often missing in containers) and
#: nothing of its own on the network.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PLAYWRIGHT_INSTALL = "pip install playwright && python -m playwright install chromium"


# -- the code ---------------------------------------------------------------------------------

_IMPORT = re.compile(r'import \{([^}]*)\} from "\./([\w-]+)\.js";')
_REEXPORT = re.compile(r'export \{([^}]*)\} from "\./([\w-]+)\.js";')
_EXPORT = re.compile(r"export (?:async function\*?|function\*?|class|const) ([A-Za-z_$][\w$]*)\b")


def _names(spec: str) -> list[tuple[str, str]]:
    """``"a, b as c"`` -> ``[("a", "a"), ("b", "c")]`` (exported name, local name)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, local = part.partition(" as ")
        out.append((name.strip(), (local or name).strip()))
    return out


@dataclass
class _Module:
    name: str
    body: list[str]
    exports: list[str]
    imports: list[tuple[str, list[tuple[str, str]], int]]  # (module, names, line number)


def _parse(folder: Path, name: str) -> _Module:
    path = folder / f"{name}.js"
    text = path.read_text(encoding="utf-8")
    if re.search(r"</script|<!--", text, re.IGNORECASE):
        raise ValueError(f"{name}.js: holds '</script' or '<!--', which would end the report's script element")
    module = _Module(name, [], [], [])
    for n, line in enumerate(text.splitlines(), 1):
        if m := _IMPORT.fullmatch(line.strip()):
            module.imports.append((m[2], _names(m[1]), n))
            module.body.append(f"const {{ {', '.join(f'{a}: {b}' for a, b in _names(m[1]))} }} = $m_{m[2]};")
        elif m := _REEXPORT.fullmatch(line.strip()):
            module.imports.append((m[2], _names(m[1]), n))
            module.body.append(f"const {{ {', '.join(f'{a}: {b}' for a, b in _names(m[1]))} }} = $m_{m[2]};")
            module.exports += [b for _, b in _names(m[1])]
        elif line.startswith("export "):
            m = _EXPORT.match(line)
            if m is None:
                raise ValueError(f"{name}.js:{n}: an export the report's bundler does not know: {line.strip()}")
            module.exports.append(m[1])
            module.body.append(line[len("export "):])
        elif re.match(r"\s*(import|export)\b", line):
            raise ValueError(f"{name}.js:{n}: an import or export the report's bundler does not know: {line.strip()}")
        else:
            module.body.append(line)
    return module


def bundle(entry: str = "report", folder: Any = VIEWER) -> str:
    """The viewer module ``entry`` and every module it imports, as one script (see the module
    docstring), ending with a call of the entry's ``start()``."""
    modules: dict[str, _Module] = {}
    order: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in modules:
            return
        if name in visiting:
            raise ValueError(f"import cycle: {' -> '.join(visiting + [name])}")
        visiting.append(name)
        module = _parse(folder, name)
        for dep, _, _ in module.imports:
            visit(dep)
        visiting.pop()
        modules[name] = module
        order.append(name)

    visit(entry)
    for module in modules.values():
        for dep, names, line in module.imports:
            missing = [a for a, _ in names if a not in modules[dep].exports]
            if missing:
                raise ValueError(f"{module.name}.js:{line}: {dep}.js does not export {', '.join(missing)}")
    parts = []
    for name in order:
        m = modules[name]
        parts.append(f"// ---- {name}.js\nconst $m_{name} = (() => {{\n" + "\n".join(m.body)
                     + f"\nreturn {{ {', '.join(m.exports)} }};\n}})();")
    parts.append(f"$m_{entry}.start();\n")
    return "\n".join(parts)


# -- the data ---------------------------------------------------------------------------------


def shares(counts: list[int], budget: int) -> list[int]:
    """Points kept of each series (``counts``) within ``budget`` in all: every point of a series
    smaller than an equal share, what it leaves shared by the others; at least ``MIN_POINTS`` each."""
    out = [0] * len(counts)
    left, waiting = budget, len(counts)
    for i in sorted(range(len(counts)), key=counts.__getitem__):
        share = max(MIN_POINTS, left // waiting)
        out[i] = min(counts[i], share)
        left -= out[i]
        waiting -= 1
    return out


async def _read(root: str, *, poll: bool) -> tuple[Store, str]:
    """The tree under ``root`` read whole into a store, and what the follower found in it."""
    store = Store(root)
    follower = Follower(root, store, poll=poll)
    try:
        await follower.start()
    finally:
        await follower.stop()
    return store, follower.describe_files()


def _run_name(root: str, run_id: str, several: bool) -> str:
    base = os.path.basename(root.rstrip(os.sep)) or root
    if run_id == ".":
        return base
    return f"{base}/{run_id}" if several else run_id


def _downsampled(store: Store, run_id: str, metric: str, share: int) -> Series:
    """The metric M4-downsampled to at most ``share`` points, and close to it: a bucket keeps 4
    points or fewer (its first and last may be its min and max), 5 with a NaN, so the number of
    buckets is adjusted from what the first answers held (a few queries of the store's summary)."""
    best: Series | None = None
    points = share
    for _ in range(FILL_TRIES):
        s = store.series(run_id, metric, points=max(MIN_POINTS, points))
        if len(s) <= share and (best is None or len(s) > len(best)):
            best = s
        if share * FILL <= len(s) <= share:
            break
        # aim inside the band: the points a bucket keeps vary a little with their number
        points = int(points * share * (1 + FILL) / 2 / max(1, len(s)))
    return best if best is not None else s  # one bucket with a NaN: 5 points


def collect(paths: list[str], *, pattern: re.Pattern[str] | None = None, max_points: int = 500_000,
            title: str | None = None, poll: bool = True) -> dict[str, Any]:
    """The report's data from the log trees ``paths`` (see the module docstring): JSON-ready."""
    several = len(paths) > 1
    picked: list[tuple[Store, str, str, str, int]] = []  # store, run id, name, metric, points logged
    runs: list[dict[str, Any]] = []
    names: set[str] = set()
    every: set[str] = set()
    for path in paths:
        root = os.path.abspath(path)
        store, found = asyncio.run(_read(root, poll=poll))
        infos = store.runs()
        if not infos:
            raise CliError(f"no run in {path} (found {found}): give a run's folder or a log root holding JSON "
                           "lines, TensorBoard event files, CSV, JSON documents or text logs")
        for info in sorted(infos, key=lambda r: r.id):
            every.update(info.metrics)
            chosen = [m for m in info.metrics if pattern is None or pattern.search(m)]
            if not chosen:
                continue  # nothing of it is charted: no legend or table row for it either
            name = base = _run_name(root, info.id, several)
            for k in itertools.count(2):  # a run folder given twice, or as itself and in its root
                if name not in names:
                    break
                name = f"{base} ({k})"
            names.add(name)
            row = info.to_json()
            logged = 0
            for metric in chosen:
                # the count, from the store's summary: a 4-point answer says how many there are
                total = store.series(info.id, metric, points=MIN_POINTS).total
                picked.append((store, info.id, name, metric, total))
                logged += total
            runs.append({"id": name, "status": info.status, "last_step": row["last_step"], "started": info.started,
                         "config": row["config"], "points": logged, "kept": 0})
    if not picked:
        if pattern is None:
            raise CliError("no scalar metric in the runs given: a report charts scalars")
        some = ", ".join(sorted(every)[:8]) + (", ..." if len(every) > 8 else "")
        raise CliError(f"no metric matches --metrics {pattern.pattern!r} (the runs have {some})")
    kept = shares([p[4] for p in picked], max_points)
    charts: dict[str, list[dict[str, Any]]] = {}
    by_name = {r["id"]: r for r in runs}
    for (store, run_id, name, metric, total), share in zip(picked, kept):
        s = store.series(run_id, metric) if share >= total else _downsampled(store, run_id, metric, share)
        charts.setdefault(metric, []).append({"run": name, **series_json(s)})
        by_name[name]["kept"] += len(s)
    return {
        "version": 1,
        "title": title if title is not None else ", ".join(os.path.basename(os.path.abspath(p)) for p in paths),
        "created": time.time(),
        "max_points": max_points,
        "points": sum(r["kept"] for r in runs),
        "runs": runs,
        "charts": [{"metric": m, "series": charts[m]} for m in sorted(charts)],
    }


# -- the file ---------------------------------------------------------------------------------


def _json_in_html(data: dict[str, Any]) -> str:
    """``data`` as JSON that cannot end its script element nor open a comment in it: ``<``, ``>``
    and ``&`` only occur inside JSON strings, where their \\u escapes mean the same."""
    text = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render(data: dict[str, Any], *, folder: Any = VIEWER) -> str:
    """The report file's text: report.html with the style, the data and the script inline."""
    shell = (folder / "report.html").read_text(encoding="utf-8")
    slots = {
        "version": __version__,
        "style": (folder / "style.css").read_text(encoding="utf-8"),
        "data": _json_in_html(data),
        "script": bundle(folder=folder),
    }
    if "</style" in slots["style"].lower():
        raise ValueError("style.css holds '</style', which would end the report's style element")
    styles = [slots["style"]] + [s for s in re.findall(r"<style>(.*?)</style>", shell, re.DOTALL) if s != "{{style}}"]
    slots["csp"] = ("default-src 'none'; script-src " + _sha256(slots["script"]) + "; style-src "
                    + " ".join(_sha256(s) for s in styles) + "; img-src data: blob:; base-uri 'none'; form-action 'none'")
    # one pass: text put in a slot is never searched for slots
    return re.sub(r"\{\{(\w+)\}\}", lambda m: slots[m[1]], shell)


def _write(path: Path, text: str) -> None:
    """``text`` to ``path`` whole: written beside it, then renamed over it."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    except BaseException:
        os.unlink(scratch)
        raise


# -- PNGs -------------------------------------------------------------------------------------


def _chromium(playwright: Any) -> Any:
    """Playwright's own Chromium when it is installed, else one on the PATH."""
    import shutil

    own = playwright.chromium.executable_path
    if own and os.path.exists(own):
        return playwright.chromium.launch(args=CHROMIUM_ARGS)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return playwright.chromium.launch(executable_path=found, args=CHROMIUM_ARGS)
    raise CliError("--png needs a Chromium (none from Playwright, none on the PATH): python -m playwright "
                   "install chromium, or your system's chromium package")


def _playwright() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ModuleNotFoundError as e:
        raise CliError(f"--png needs Playwright ({e.name} is not installed): {PLAYWRIGHT_INSTALL}") from None
    return sync_playwright


def write_pngs(report: Path, folder: Path) -> list[Path]:
    """Each chart of the report file ``report`` drawn by its own code in a headless Chromium, saved
    as ``folder/<metric>.png`` (``PNG_SIZE``). The page is offline: it has nothing to fetch."""
    sync_playwright = _playwright()
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


# -- the command ------------------------------------------------------------------------------


def export(args: argparse.Namespace) -> int:
    """`tailboard export` with the parsed ``args`` (paths, output, metrics, title, max_points, png)."""
    for path in args.paths:
        check_folder(path)
    try:
        pattern = None if args.metrics is None else re.compile(args.metrics)
    except re.error as e:
        raise UsageError(f"--metrics is not a regular expression: {e}") from None
    if args.max_points < MIN_POINTS:
        raise UsageError(f"--max-points: at least {MIN_POINTS}")
    if args.png is not None:
        _playwright()  # said before the work, not after it
    out = Path(args.output)
    if not out.parent.resolve().is_dir():
        raise UsageError(f"cannot write {out}: no folder {out.parent}")
    began = time.monotonic()
    data = collect(args.paths, pattern=pattern, max_points=args.max_points, title=args.title)
    text = render(data)
    try:
        _write(out, text)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror}") from None
    took = time.monotonic() - began
    print(f"tailboard: wrote {out} ({len(data['runs'])} runs, {len(data['charts'])} charts, "
          f"{data['points']:,} points, {len(text.encode()) / 1e6:.1f} MB) in {took:.1f} s", flush=True)
    if args.png is not None:
        pngs = write_pngs(out, Path(args.png))
        print(f"tailboard: {len(pngs)} PNGs in {args.png}", flush=True)
    return 0

