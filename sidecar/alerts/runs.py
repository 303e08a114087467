"""The rules about a training run: a non-finite value, a spike, a stall, a failure, and the
trainer's own alerts (``run.alert``).

Each run's alerts are keyed by rule and run, not by metric: two hundred gradient norms going NaN at
once are one alert naming them, not two hundred notifications. What a rule remembers of a run is in
``RunWatch``; everything here runs in the alert engine's thread.

- ``nonfinite`` (error): a metric's value is NaN or infinite. It clears once every such metric has
  had a finite value again. A NaN between two finite values fires and clears at once.
- ``spike`` (warning): a value of a watched metric (``spike_metrics``) whose magnitude is over
  ``spike_factor`` times the magnitude of the median of the metric's previous finite values. It
  clears when no watched metric's latest value is a spike.
- ``stall`` (warning): a run that wrote while the sidecar followed, has no final record, and has
  written nothing for ``stall_factor`` times its typical interval between records (the median of its
  last 32, by the records' own times) and at least ``stall_min`` seconds. It clears when a record
  arrives or the run ends.
- ``run_failed`` (error): a final record saying ``failed``, seen while following. It clears when the
  run starts again (a new header).
- ``trainer``: ``run.alert(title, text, level)``; one alert per title, raised again while active it
  is counted (``count``). It clears when the run ends or starts again.

A run that ends (its final record) clears its other alerts: a finished run's NaN calls for nobody.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tailboard.format import K_END, K_HEADER, K_TEXT, KIND, STATUS_FAILED, decode_float
from tailboard.run import ALERT_LEVELS, ALERT_TEXT

from .book import AlertBook
from .config import AlertConfig

__all__ = ["METRIC_RULES", "MetricNews", "RunRules", "RunWatch"]

#: Rules about a run's values: cleared when the run ends or starts again.
METRIC_RULES = ("nonfinite", "spike", "stall", "trainer")
#: Record times kept per run for its typical interval.
INTERVALS_KEPT = 33
#: Names listed in an alert's text; the rest are counted.
NAMES_SHOWN = 5


@dataclass(frozen=True)
class MetricNews:
    """What a chunk brought of one metric: its last points (``steps``, ``values``, ``times``: the
    spike rule looks at these) and the first non-finite value of the whole chunk."""

    name: str
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray
    bad: tuple[float, float] | None  # (step, value)


@dataclass
class RunWatch:
    arrived: float | None = None  # the engine's clock when records last arrived live
    times: deque[float] = field(default_factory=lambda: deque(maxlen=INTERVALS_KEPT))
    ended: bool = False
    nonfinite: dict[str, tuple[float, float]] = field(default_factory=dict)
    spiking: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # step, value, median
    windows: dict[str, deque[float]] = field(default_factory=dict)

    def typical_interval(self) -> float | None:
        """The median of the gaps between the run's recent record times (None: too few yet)."""
        if len(self.times) < 5:
            return None
        gaps = np.diff(np.asarray(self.times))
        gaps = gaps[gaps > 0]
        return float(np.median(gaps)) if gaps.shape[0] >= 4 else None


def _key(rule: str, run: str) -> str:
    return f"{rule}:{run}"


def _names(names: Iterable[str]) -> str:
    names = sorted(names)
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN} more"


def _value(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return ("Infinity" if x > 0 else "-Infinity") if math.isinf(x) else f"{x:.6g}"


class RunRules:
    def __init__(self, book: AlertBook, config: AlertConfig) -> None:
        self.book = book
        self.config = config
        self.watch: dict[str, RunWatch] = {}
        self._spike_names = re.compile(config.spike_metrics)
        self._watched: dict[str, bool] = {}  # metric name -> watched for spikes (bounded below)

    def _run(self, run: str) -> RunWatch:
        w = self.watch.get(run)
        if w is None:
            w = self.watch[run] = RunWatch()
        return w

    def forget(self, run: str, now: float) -> None:
        """The run is gone: its alerts clear and nothing of it is kept."""
        self.watch.pop(run, None)
        self.book.clear_where(lambda a: a.run == run, now, "gone")

    # ---- points ------------------------------------------------------------------------------

    def points(self, run: str, news: Iterable[MetricNews], times: np.ndarray, live: bool, now: float,
               backlog: bool) -> None:
        w = self._run(run)
        w.times.extend(times.tolist())
        if live:
            w.arrived = now
            self.book.clear(_key("stall", run), now, "a record arrived")
        news = list(news)
        if w.ended:  # points of a chunk that also ended the run (its records come first)
            return
        if self.config.enabled("nonfinite"):
            self._nonfinite(run, w, news, now, backlog)
        if self.config.enabled("spike"):
            self._spike(run, w, news, now, backlog)

    def _nonfinite(self, run: str, w: RunWatch, news: list[MetricNews], now: float, backlog: bool) -> None:
        key = _key("nonfinite", run)
        bad = {m.name: m.bad for m in news if m.bad is not None}
        if bad:
            w.nonfinite.update(bad)
            if not self.book.is_active(key):
                first = min(bad.items(), key=lambda kv: kv[1][0])
                self.book.fire(
                    key, "nonfinite", "error", f"Non-finite value in {run}",
                    f"{first[0]} is {_value(first[1][1])} at step {_num(first[1][0])}"
                    + (f"; also {_names(set(bad) - {first[0]})}" if len(bad) > 1 else ""),
                    now, run=run, step=first[1][0], backlog=backlog,
                    details={"metrics": sorted(bad)[:50]})
        for m in news:
            if m.values.shape[0] and np.isfinite(m.values[-1]):
                w.nonfinite.pop(m.name, None)
        if not w.nonfinite:
            self.book.clear(key, now, "finite again")

    def _is_watched(self, name: str) -> bool:
        hit = self._watched.get(name)
        if hit is None:
            hit = self._spike_names.search(name) is not None
            if len(self._watched) < 100_000:
                self._watched[name] = hit
        return hit

    def _spike(self, run: str, w: RunWatch, news: list[MetricNews], now: float, backlog: bool) -> None:
        cfg = self.config
        key = _key("spike", run)
        started: dict[str, tuple[float, float, float, int]] = {}
        for m in news:
            if not self._is_watched(m.name):
                continue
            win = w.windows.get(m.name)
            if win is None:
                win = w.windows[m.name] = deque(maxlen=cfg.spike_window)
            finite = np.isfinite(m.values)  # a non-finite value is the nonfinite rule's
            steps, values = m.steps[finite], m.values[finite]
            if backlog and values.shape[0] > 1:
                # the backlog's past is not alerted: only its latest point is looked at
                win.extend(values[:-1].tolist())
                steps, values = steps[-1:], values[-1:]
            if not values.shape[0]:
                continue
            first, last = self._scan(win, steps, values)
            if first is not None:
                started[m.name] = first
            if last is not None:
                w.spiking[m.name] = last
            else:
                w.spiking.pop(m.name, None)
        if started and not self.book.is_active(key):
            name, (step, x, med, n) = min(started.items(), key=lambda kv: kv[1][0])
            self.book.fire(
                key, "spike", "warning", f"Spike in {run}",
                f"{name} = {_value(x)} at step {_num(step)}, {abs(x / med):.3g}x the median of its previous "
                f"{n} values ({_value(med)})"
                + (f"; also {_names(set(started) - {name})}" if len(started) > 1 else ""),
                now, run=run, step=step, backlog=backlog,
                details={"metric": name, "value": x, "median": med, "metrics": sorted(started)[:50]})
        if not w.spiking:
            self.book.clear(key, now, "back within the spike factor")

    def _scan(self, win: deque[float], steps: np.ndarray, values: np.ndarray
              ) -> tuple[tuple[float, float, float, int] | None, tuple[float, float, float] | None]:
        """Each of ``values`` against the median of the finite values before it (``win``, then the
        earlier ones of ``values``), ``win`` moved on past them: the first spike (step, value,
        median, values in the median) and whether the last value is one (step, value, median)."""
        cfg = self.config
        size = cfg.spike_window
        if len(win) == size:  # the usual case: every median of the chunk in one numpy call
            history = np.concatenate([np.fromiter(win, np.float64, size), values])
            medians = np.median(np.lib.stride_tricks.sliding_window_view(history[:-1], size), axis=1)
            spikes = (medians != 0) & (np.abs(values) > cfg.spike_factor * np.abs(medians))
            win.extend(values[-size:].tolist())
            hits = np.flatnonzero(spikes)
            first = None if not hits.shape[0] else (
                float(steps[hits[0]]), float(values[hits[0]]), float(medians[hits[0]]), size)
            last = (float(steps[-1]), float(values[-1]), float(medians[-1])) if spikes[-1] else None
            return first, last
        first_hit: tuple[float, float, float, int] | None = None
        last_hit: tuple[float, float, float] | None = None
        for step, x in zip(steps.tolist(), values.tolist()):  # the window still filling
            last_hit = None
            if len(win) >= cfg.spike_min_points:
                med = float(np.median(win))
                if med != 0 and abs(x) > cfg.spike_factor * abs(med):
                    last_hit = (step, x, med)
                    first_hit = first_hit or (step, x, med, len(win))
            win.append(x)
        return first_hit, last_hit

    # ---- records -----------------------------------------------------------------------------

    def records(self, run: str, records: Iterable[dict[str, Any]], live: bool, now: float,
                backlog: bool) -> None:
        w = self._run(run)
        for rec in records:
            kind = rec.get(KIND)
            t = decode_float(rec.get("t"))
            if t is not None and not math.isnan(t):
                w.times.append(t)
            if kind == K_HEADER:
                self._restarted(run, w, now)
            elif kind == K_END:
                self._ended(run, w, rec, live, now, backlog)
            elif kind == K_TEXT and rec.get("name") == ALERT_TEXT and self.config.enabled("trainer"):
                self._trainer(run, rec, now, backlog)
        if live:
            w.arrived = now
            self.book.clear(_key("stall", run), now, "a record arrived")

    def _restarted(self, run: str, w: RunWatch, now: float) -> None:
        w.ended = False
        w.nonfinite.clear()
        w.spiking.clear()
        w.windows.clear()
        self.book.clear_where(lambda a: a.run == run and a.rule in (*METRIC_RULES, "run_failed"), now,
                              "the run started again")

    def _ended(self, run: str, w: RunWatch, rec: dict[str, Any], live: bool, now: float, backlog: bool) -> None:
        w.ended = True
        self.book.clear_where(lambda a: a.run == run and a.rule in METRIC_RULES, now, "the run ended")
        if rec.get("status") == STATUS_FAILED and live and self.config.enabled("run_failed"):
            reason = " ".join(str(rec.get("reason") or "no reason given").split())[:500]
            self.book.fire(_key("run_failed", run), "run_failed", "error", f"{run} failed", reason, now,
                           run=run, backlog=backlog)

    def _trainer(self, run: str, rec: dict[str, Any], now: float, backlog: bool) -> None:
        raw_title, raw_level, raw_text = rec.get("title"), rec.get("level"), rec.get("text")
        title = " ".join(raw_title.split())[:200] if isinstance(raw_title, str) and raw_title.strip() else "alert"
        level = raw_level if isinstance(raw_level, str) and raw_level in ALERT_LEVELS else "warning"
        text = raw_text if isinstance(raw_text, str) else ""
        # the record's text is "title: text" (what a reader that knows no alerts shows)
        text = text[len(title) + 2:] if text.startswith(title + ": ") else ("" if text == title else text)
        key = f"trainer:{run}:{title}"
        if self.book.again(key, text[:4000], now, level) is None:
            step = decode_float(rec.get("step"))
            self.book.fire(key, "trainer", level, title, text[:4000], now, run=run, step=step, backlog=backlog)

    # ---- time --------------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        if not self.config.enabled("stall"):
            return
        cfg = self.config
        for run, w in self.watch.items():
            if w.arrived is None or w.ended:
                continue
            interval = w.typical_interval()
            if interval is None:
                continue
            limit = max(cfg.stall_min, cfg.stall_factor * interval)
            quiet = now - w.arrived
            if quiet > limit:
                self.book.fire(_key("stall", run), "stall", "warning", f"{run} stalled",
                               f"no record for {quiet:.0f} s; it usually writes every {interval:.3g} s",
                               now, run=run, details={"quiet": round(quiet, 3), "interval": interval})


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
