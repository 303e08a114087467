"""`tailboard top LOGDIR`: the runs in the terminal, redrawn in place, for a shell over SSH.

It follows the log tree in this process with the sidecar's own ``Follower`` and ``Store`` (no server,
no token, nothing read outside the root) and draws, every ``--interval`` seconds, one table: a row
per run and chosen metric with the run's status, step, steps per second, the age of its last record,
the metric's latest value and a sparkline of its history. Drawing is rich's (``Live`` + ``Table``).

Run and metric names come from the log tree, which anyone who can write a log may fill: they are
drawn as plain ``Text`` (never parsed as markup) and their control characters are shown as escapes
(``\\x1b``), so a name cannot move the cursor, recolour the screen or hide part of a row.

With ``--once``, or when stdout is not a terminal, one frame is printed after the backlog is read,
then top exits: what scripts and tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import signal
import sys
import termios
import time
import tty
import unicodedata
from collections.abc import Iterator
from typing import Any

import numpy as np
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from .follower import Follower
from .store import RunInfo, Store

__all__ = ["SPARKS", "frame", "sparkline", "steps_per_second", "top", "visible"]

#: The eight heights of a sparkline, lowest first.
SPARKS = "▁▂▃▄▅▆▇█"
#: Drawn for a point that is NaN or infinite: no height says it.
NOT_FINITE = "·"
#: Metrics shown per run when no --metrics is given; the rest are counted on the last row.
DEFAULT_METRICS = 4
#: Steps per second are measured over the records of this last stretch of time.
RATE_WINDOW = 60.0

STATUS_STYLE = {"running": "green", "stalled": "yellow", "failed": "bold red", "finished": "blue",
                "gone": "dim"}
#: Runs are listed by status in this order (the ones that move first), then by name.
STATUS_ORDER = {status: i for i, status in enumerate(STATUS_STYLE)}


def visible(text: str) -> str:
    """``text`` with every control, format and line/paragraph separator character written as an
    escape (``\\x1b``, ``\\u202e``): a terminal then shows it instead of obeying it."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def sparkline(steps: np.ndarray, values: np.ndarray, width: int) -> str:
    """``values`` (in step order) as at most ``width`` characters: one per point when there are
    fewer, else one per equal stretch of steps, each the stretch's last value (an empty stretch
    repeats the one before). Heights span the finite values' range; a flat series is drawn at mid
    height, a NaN or infinite value as ``NOT_FINITE``."""
    if width < 1:
        raise ValueError(f"a sparkline is at least 1 character wide, got {width}")
    n = int(values.shape[0])
    if n == 0:
        return ""
    if n > width:
        lo, hi = float(steps[0]), float(steps[-1])
        span = hi - lo
        # the bucket of each point; the last point of a bucket wins, so the latest value is the last
        buckets = np.minimum(((steps - lo) / span * width).astype(np.int64), width - 1) if span > 0 \
            else np.full(n, width - 1)
        picked = np.full(width, -1)
        picked[buckets] = np.arange(n)  # later indices overwrite earlier ones
        picked = np.maximum.accumulate(picked)  # an empty bucket repeats the one before
        values = values[picked[picked >= 0]]
    finite = np.isfinite(values)
    if not finite.any():
        return NOT_FINITE * len(values)
    low, high = float(values[finite].min()), float(values[finite].max())
    top = len(SPARKS) - 1
    chars = []
    for v, ok in zip(values.tolist(), finite.tolist()):
        if not ok:
            chars.append(NOT_FINITE)
        elif high == low:
            chars.append(SPARKS[top // 2])
        else:
            chars.append(SPARKS[round((v - low) / (high - low) * top)])
    return "".join(chars)


def steps_per_second(steps: np.ndarray, times: np.ndarray) -> float | None:
    """Steps per second over the records of the last ``RATE_WINDOW`` seconds (at least the last two
    records), by the records' own times; None when that cannot be told."""
    n = int(steps.shape[0])
    if n < 2:
        return None
    j = int(np.searchsorted(times, times[-1] - RATE_WINDOW, side="left")) if _ascending(times) else 0
    j = min(j, n - 2)
    dt = float(times[-1] - times[j])
    ds = float(steps[-1] - steps[j])
    if not (dt > 0 and math.isfinite(ds)):
        return None
    return ds / dt


def _ascending(a: np.ndarray) -> bool:
    return bool(np.all(a[1:] >= a[:-1]))


def _number(x: float | None) -> str:
    if x is None:
        return "–"
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def chosen(info: RunInfo, pattern: re.Pattern[str] | None) -> tuple[list[str], int]:
    """The run's metrics to show and how many more it has: those ``pattern`` finds, or without one
    the first ``DEFAULT_METRICS`` by name, losses first (what one looks at first)."""
    if pattern is not None:
        return [m for m in info.metrics if pattern.search(m)], 0
    names = sorted(info.metrics, key=lambda m: ("loss" not in m.lower(), m))
    return names[:DEFAULT_METRICS], max(0, len(names) - DEFAULT_METRICS)


def frame(store: Store, root: str, *, pattern: re.Pattern[str] | None, spark: int,
          now: float | None = None, lines: int | None = None, hint: str = "") -> Group:
    """One picture of the runs: a title line and the table, running runs first. With ``lines``,
    only the runs whose rows fit in that many lines are drawn (and asked of the store): the rest
    are counted on the last line."""
    now = time.time() if now is None else now
    runs = sorted(store.runs(), key=lambda r: (STATUS_ORDER.get(r.status, len(STATUS_ORDER)), r.id))
    budget = None if lines is None else lines - 4  # the title, the header and its rule, the count
    left_out = 0
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for name, options in COLUMNS:
        table.add_column(name, **options)
    table.columns[-1].min_width = spark
    for n, info in enumerate(runs):
        if budget is not None and budget <= 0:
            left_out = len(runs) - n
            break
        rows = run_rows(store, info, pattern=pattern, spark=spark, now=now)
        for i, row in enumerate(rows):
            table.add_row(*row, end_section=i == len(rows) - 1)
        if budget is not None:
            budget -= len(rows) + 1  # and the blank line that ends the run's section
    clock = time.strftime("%H:%M:%S", time.localtime(now))
    title = Text.assemble(("tailboard top ", "bold"), visible(root),
                          f"  {len(runs)} run{'' if len(runs) == 1 else 's'}  {clock}", (hint, "dim"))
    if not left_out:
        return Group(title, table)
    below = Text(f"+{left_out} more run{'' if left_out == 1 else 's'} below: a taller terminal, or "
                 "--metrics to show fewer rows a run", style="dim")
    return Group(title, table, below)


#: The table's columns: the run's (first row of the run only), then the metric's.
COLUMNS: list[tuple[str, dict[str, Any]]] = [
    ("run", {"overflow": "fold"}),
    ("status", {}),
    ("step", {"justify": "right"}),
    ("steps/s", {"justify": "right"}),
    ("age", {"justify": "right"}),
    ("metric", {"overflow": "fold"}),
    ("latest", {"justify": "right"}),
    ("trend", {"no_wrap": True}),
]


def run_rows(store: Store, info: RunInfo, *, pattern: re.Pattern[str] | None, spark: int,
             now: float) -> list[list[Text]]:
    """A run's rows: one per shown metric (at least one), the run's cells on the first."""
    rate: float | None = None
    metric_rows = []
    names, more = chosen(info, pattern)
    for name in names:
        try:
            # M4 keeps 4 points a bucket: `spark` buckets, of which the sparkline keeps the last
            s = store.series(info.id, name, points=4 * spark)
        except KeyError:  # gone between runs() and now
            continue
        if rate is None:
            rate = steps_per_second(s.steps, s.times)
        latest = float(s.values[-1]) if len(s) else None
        metric_rows.append([Text(visible(name)), Text(_number(latest)),
                            Text(sparkline(s.steps, s.values, spark), style="cyan")])
    if more:
        metric_rows.append([Text(f"+{more} more (--metrics REGEX)", style="dim"), Text(""), Text("")])
    if not metric_rows:
        metric_rows.append([Text("no metric" if pattern is None else "no metric matches", style="dim"),
                            Text(""), Text("")])
    run = [Text(visible(info.id)), Text(info.status, style=STATUS_STYLE.get(info.status, "")),
           Text(_number(info.last_step)), Text("–" if rate is None else f"{rate:.3g}"),
           Text(_age(None if info.updated is None else now - info.updated))]
    blank = [Text("")] * len(run)
    return [(run if i == 0 else blank) + row for i, row in enumerate(metric_rows)]


@contextlib.contextmanager
def keys(loop: asyncio.AbstractEventLoop, quit_: asyncio.Event) -> Iterator[None]:
    """While inside: stdin (a terminal) in cbreak mode, and ``q`` sets ``quit_``. Ctrl-C still
    sends SIGINT (cbreak keeps ISIG). The terminal's mode is given back on the way out."""
    fd = sys.stdin.fileno() if sys.stdin is not None else -1
    if fd < 0 or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)

    def read() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data or b"q" in data or b"Q" in data:  # no data: the terminal is gone
            quit_.set()

    tty.setcbreak(fd)
    loop.add_reader(fd, read)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _top(args: argparse.Namespace, pattern: re.Pattern[str] | None, once: bool) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    root = os.path.abspath(args.logdir)
    store = Store(root, stall_after=args.stall_after)
    follower = Follower(root, store, poll=args.poll)
    starting = asyncio.ensure_future(follower.start())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        # the backlog first: a frame before it would show half-read runs
        await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return 0
        await starting

        if once:
            # as wide as the table wants: a pipe has no width, and a cut name would be a lie
            wide = None if sys.stdout.isatty() else 100_000
            Console(width=wide, soft_wrap=False).print(frame(store, args.logdir, pattern=pattern,
                                                             spark=args.spark))
            return 0
        console = Console()

        def draw() -> Group:
            # only what the terminal can show is asked of the store (its size is read each frame)
            return frame(store, args.logdir, pattern=pattern, spark=args.spark, lines=console.height,
                         hint="  q quits")

        with keys(loop, stop), Live(draw(), console=console, auto_refresh=False,
                                    vertical_overflow="ellipsis") as live:
            while not stop.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), args.interval)
                live.update(draw(), refresh=True)
        return 0
    finally:
        stopped.cancel()
        if not starting.done():
            starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await starting
        await follower.stop()


def top(args: argparse.Namespace) -> int:
    """Run `tailboard top` with the parsed ``args`` (logdir, metrics, interval, once, spark, poll,
    stall_after) until ``q``, SIGINT or SIGTERM; 0 when stopped so, 2 for a bad --metrics."""
    try:
        pattern = None if args.metrics is None else re.compile(args.metrics)
    except re.error as e:
        print(f"tailboard: --metrics is not a regular expression: {e}", file=sys.stderr)
        return 2
    once = args.once or not sys.stdout.isatty()
    return asyncio.run(_top(args, pattern, once))
