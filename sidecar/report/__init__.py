"""`tailboard export RUN_OR_DIR... -o report.html`: the runs' scalars in one self-contained HTML file.

The file holds everything it shows: the viewer's chart code, its style sheet and the data, inline. It
opens from ``file://`` with no server and makes no request at all. docs/report.md is the user's
side. One module per step: ``data`` (the runs read, their series within the bound), ``bundle`` (the
viewer modules joined into one script, and why), ``page`` (the file: template, policy, escaping),
``png`` (``--png``, in a headless Chromium).
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from ..cli import CliError, UsageError, check_folder
from .bundle import bundle
from .data import MIN_POINTS, collect, shares
from .page import render, write
from .png import PNG_SIZE, check_playwright, write_pngs

__all__ = ["MIN_POINTS", "PNG_SIZE", "bundle", "collect", "export", "render", "shares", "write_pngs"]


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
        check_playwright()  # said before the work, not after it
    out = Path(args.output)
    if not out.parent.resolve().is_dir():
        raise UsageError(f"cannot write {out}: no folder {out.parent}")
    began = time.monotonic()
    data = collect(args.paths, pattern=pattern, max_points=args.max_points, title=args.title)
    text = render(data)
    try:
        write(out, text)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror}") from None
    took = time.monotonic() - began
    print(f"tailboard: wrote {out} ({len(data['runs'])} runs, {len(data['charts'])} charts, "
          f"{data['points']:,} points, {len(text.encode()) / 1e6:.1f} MB) in {took:.1f} s", flush=True)
    if args.png is not None:
        pngs = write_pngs(out, Path(args.png))
        print(f"tailboard: {len(pngs)} PNGs in {args.png}", flush=True)
    return 0
