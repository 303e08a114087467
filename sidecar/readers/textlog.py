"""Plain text logs: a training script's stdout tee'd to a file.

A line is read as a terminal shows it: ANSI colour and cursor codes are stripped, and of the pieces a
``\\r`` separates (progress bars redrawing themselves) only the last one, ended by the newline, is
read. tqdm bars (``42%|████  | 252/600 [...]``) are noise, even their last redraw: what they show is
a snapshot of numbers the script logs elsewhere. A line without metrics is no error and is not
counted.

What is a metric, by default:

- ``key=value`` and ``key: value`` pairs: ``loss=0.41 acc=0.88``, Keras' ``- loss: 0.4100 -
  accuracy: 0.8800``, the dicts transformers prints (``{'loss': '0.41', 'epoch': '0.5'}``). A key is
  a word (letters, digits, ``_ . / @ -``, starting with a letter) or up to three words
  (``Train Loss: 0.41``), or a quoted string; the value a decimal number, ``nan`` or ``inf`` in any
  case, quoted or not, a trailing ``%`` allowed.
- Not a metric: a number glued to more characters than that, so that wall clock times (``12:03:44``),
  dates (``2024-01-01``), version strings (``1.2.3``), IP addresses, fractions (``9894/10000``),
  durations with units (``3.2s``) and hex numbers are never values. A number without a key
  (``loss 0.41``) is none either: too many words precede numbers in prose.

Where a line is, its step:

- ``step``, ``global_step``/``global step``, ``iteration``, ``iter`` and ``epoch`` are positions,
  never metrics, written as pairs or as counters: ``Step [100/600]``, ``Epoch 3/10``, ``Iter 100``.
- A step counter with a total beside an epoch (``Epoch [3/10], Step [100/600]``, as in the PyTorch
  tutorials) counts batches within the epoch: the step is ``(epoch - first epoch) * 600 + 100``,
  unless the counter was seen not to go back when the epoch changed (then it is global). Likewise
  the unnamed ``[640/60000 (1%)]`` after ``Epoch: 1`` in PyTorch's MNIST example.
- Else the line's step (``step``, ``global_step``, ``iteration``, ``iter``); else, when earlier lines
  had one, that last step (a validation line belongs where training is); else the line's epoch, or
  the epoch of the last epoch-only line (Keras prints ``Epoch 3/10`` on a line of its own); else the
  line's index in the file.
- A step lower than the previous one of the same kind (step, epoch, line index) starts a new attempt:
  a script run again with ``tee -a``.

Wall time: a ``t``/``time``/``timestamp``/``wall_time`` pair holding an absolute time (Unix seconds
or milliseconds), else an ISO 8601 date-time in the line's first 64 characters (``logging``'s
``2024-01-01 12:03:44,123``; local time when it names no zone), else ``now``. ``time=0.52`` (a
duration) stays a metric.

A user pattern (``TextReader(pattern=...)``) replaces these rules: its named groups ``step``,
``epoch`` and ``time`` are the step, epoch and wall time, every other named group holding a number is
a metric, and lines it does not match hold nothing.

A chunk of many lines (a backlog) is read in bulk by ``textfast``, with the same results: the lines
of one shape (the same text but for the digits) at once.

Rewrites: a text log is only appended to; when it is truncated (a new run without ``tee -a``, or a
copy-truncate rotation) everything in it is new, so ``rewound`` keeps the state as it is and the
steps decide whether a new attempt starts.
"""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import datetime, timezone

import numpy as np
from tailboard.format import STEP_KEYS, TIME_KEYS

from ..ingest import Parsed

__all__ = ["TextReader", "TextState"]

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]")
_TQDM = re.compile(r"\d%\||\|\s*\d+/\d+\s*\[\d")
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?(?:[nN][aA][nN]|[iI][nN][fF](?:[iI][nN][iI][tT][yY])?)\b"
# a value ends where the number does: not glued to a word, a clock's colon, or a dotted, dashed or
# slashed continuation (versions, IP addresses, dates, fractions)
_END = r"(?![\w:]|[./-]\d)"
_WORD = r"[A-Za-z_][\w./@-]*"
_PAIR = re.compile(
    rf"""(?<![\w./@-])(?P<key>'[^'\n]{{1,64}}'|"[^"\n]{{1,64}}"|{_WORD}(?:\ [A-Za-z][\w./@-]*){{0,2}})"""
    rf"""\s*[:=]\s*(?P<q>['"]?)(?P<num>{_NUMBER})(?P=q)%?{_END}""",
)
_COUNTER = re.compile(
    r"(?<![\w.])(?P<name>global[ _]step|step|iteration|iter|epoch)\s*[:=#]?\s*\[?\s*(?P<n>\d+)"
    r"(?:\s*/\s*(?P<total>\d+))?\s*\]?(?![\w.]|[-:/]\d)",
    re.IGNORECASE,
)
_PROGRESS = re.compile(r"\[\s*(?P<n>\d+)\s*/\s*(?P<total>\d+)\b")
_ISO = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})?")
ISO_WITHIN = 64  # a line's date-time is its prefix (logging's asctime): looked for there only
_STEP_NAMES = frozenset(STEP_KEYS) | {"global step"}
#: the step counters of a line, the one a line's step comes from first
STEP_ORDER = ("step", "global_step", "iteration", "iter", "batch")
_TIME_NAMES = frozenset(TIME_KEYS)
_TEXT_SUFFIXES = (".log", ".txt", ".out")
_BULK_FROM = 64  # lines in a chunk from which it is read in bulk


@dataclasses.dataclass
class TextState:
    """What is carried from one chunk to the next (small and picklable)."""

    line: int = 0  # complete lines read: the step of a line that has no other
    step: float | None = None  # the last step a line gave: a line without one belongs there
    epoch: float | None = None  # the epoch of the last line that named one (Keras' "Epoch 3/10")
    first_epoch: int = 1  # 0 once an epoch counter showed 0
    counter: tuple[float, float] | None = None  # (epoch, raw step) of the last step counter with a total
    global_counter: bool = False  # the step counter did not go back when the epoch changed
    last_steps: dict[str, float] = dataclasses.field(default_factory=dict)  # step kind -> last step
    started: bool = False


class TextReader:
    name = "text"

    def __init__(self, pattern: str | None = None) -> None:
        # the catch-up reads text logs in the follower's own process: lines of one shape decode faster
        # than a parse worker's result travels back (5M points in 20 runs: 0.91 s against 1.49 s);
        # a user's pattern is matched line by line, slow enough for the workers to pay
        self.parallel = pattern is not None
        self.pattern: re.Pattern[str] | None = None
        if pattern is not None:
            try:
                self.pattern = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"text log pattern {pattern!r} is not a regular expression: {exc}") from None
            if not set(self.pattern.groupindex) - {"step", "epoch", "time"}:
                raise ValueError(f"text log pattern {pattern!r} names no metric group, e.g. (?P<loss>...)")

    def claims(self, filename: str, head: bytes) -> float:
        if not filename.lower().endswith(_TEXT_SUFFIXES):
            return 0.0
        text = head.decode("utf-8", "replace")
        lines = text.split("\n")[:-1]  # complete lines only
        hits = sum(1 for line in lines if self._line(visible(line), TextState(), 0.0)[2])
        return 0.0 if not hits else 0.5 if hits < 3 else 0.6

    def complete(self, buf: bytes) -> int:
        # a record ends at a newline, or at a carriage return that is not the first half of a CRLF
        # (a progress bar's redraw); a carriage return at the very end waits for the next byte
        return max(buf.rfind(b"\n"), buf.rfind(b"\r", 0, len(buf) - 1)) + 1

    def new_state(self) -> TextState:
        return TextState()

    def rewound(self, state: TextState) -> TextState:
        """A truncated text log holds new lines only: read them all, the steps decide the attempt."""
        return state

    def decode(self, data: bytes, state: TextState, *, now: float) -> tuple[Parsed, TextState]:
        if self.pattern is None and data.count(b"\n", 0, _BULK_FROM * 512) >= _BULK_FROM:
            # a backlog: lines of the same shape are read together (textfast), the rest as here
            from .textfast import decode_bulk  # after this module is whole: textfast uses its rules

            return decode_bulk(self, data, state, now=now)
        return self.decode_lines(data, state, now=now)

    def decode_lines(self, data: bytes, state: TextState, *, now: float) -> tuple[Parsed, TextState]:
        """``decode`` one line at a time."""
        st = dataclasses.replace(state, last_steps=dict(state.last_steps))
        lines = data.decode("utf-8", "replace").split("\n")
        lines.pop()  # after the last newline: nothing, or redraws a later "\r" already overwrote
        return self._lines(lines, st, now), st

    def _lines(self, lines: list[str], st: TextState, now: float) -> Parsed:
        parsed = Parsed()
        segments: list[dict[str, tuple[list[float], list[float], list[float]]]] = [{}]
        for raw in lines:
            st.line += 1
            step, kind, metrics, t = self._line(visible(raw), st, now)
            if not metrics:
                continue
            if kind in st.last_steps and step < st.last_steps[kind]:
                if st.started:
                    segments.append({})
                st.last_steps.clear()
                st.step = None
            st.last_steps[kind] = step
            seg = segments[-1]
            for name, value in metrics.items():
                cols = seg.get(name)
                if cols is None:
                    cols = seg[name] = ([], [], [])
                cols[0].append(step)
                cols[1].append(value)
                cols[2].append(t)
            parsed.records += 1
            parsed.last_step, parsed.last_time = step, t
            st.started = True
        parsed.segments = [
            {name: tuple(np.array(col, np.float64) for col in cols) for name, cols in seg.items()}
            for seg in segments
        ]
        parsed.started = st.started
        return parsed

    def _line(self, line: str, st: TextState, now: float) -> tuple[float, str, dict[str, float], float]:
        """(step, kind of step, metrics, wall time) of one visible line; updates the carried context."""
        if self.pattern is not None:
            return self._match(line, st, now)
        read = read_line(line)
        if read is None:
            return 0.0, "", {}, now
        positions, metrics, t = read
        step, kind = self._position(positions, st)
        return step, kind, metrics, now if t is None else t

    def _position(self, positions: dict[str, tuple[float, float | None]], st: TextState) -> tuple[float, str]:
        epoch = positions.get("epoch")
        if epoch is not None:
            if epoch[0] == 0:
                st.first_epoch = 0
            st.epoch = epoch[0]
        for name in STEP_ORDER:
            if name not in positions:
                continue
            n, total = positions[name]
            if total is not None and epoch is not None:
                # a counter within the epoch, unless it did not go back when the epoch changed
                if st.counter is not None and epoch[0] > st.counter[0] and n > st.counter[1]:
                    st.global_counter = True
                st.counter = (epoch[0], n)
                if not st.global_counter:
                    n = max(epoch[0] - st.first_epoch, 0) * total + n
            st.step = n
            return n, "step"
        if st.step is not None:
            return st.step, "step"
        if st.epoch is not None:
            return st.epoch, "epoch"
        return float(st.line - 1), "line"

    def _match(self, line: str, st: TextState, now: float) -> tuple[float, str, dict[str, float], float]:
        assert self.pattern is not None
        m = self.pattern.search(line)
        if m is None:
            return 0.0, "", {}, now
        groups = {k: v for k, v in m.groupdict().items() if v is not None}
        metrics = {}
        for key, text in groups.items():
            if key not in ("step", "epoch", "time"):
                value = _float(text)
                if value is not None:
                    metrics[key] = value
        positions: dict[str, tuple[float, float | None]] = {}
        for key in ("step", "epoch"):
            value = _float(groups.get(key, ""))
            if value is not None and math.isfinite(value):
                positions[key] = (value, None)
        t = _float(groups.get("time", ""))
        t = _absolute(t) if t is not None else iso_time(groups.get("time", ""))
        step, kind = self._position(positions, st)
        return step, kind, metrics, now if t is None else t


@dataclasses.dataclass(frozen=True)
class LineScan:
    """Where the numbers of a visible line are and what the rules make of them, as far as the text
    decides: what only values decide (is a ``time`` pair an absolute time?) is left to ``read_line``.
    Lines that differ only in ASCII digits scan alike: every character class of the rules holds all
    ten digits or none, and names are compared as text (textfast relies on this)."""

    # pairs that are not positions, in order: (name, named as a wall time, key span, number span)
    pairs: tuple[tuple[str, bool, int, int, int, int], ...]
    # position name -> (number span, total span or (-1, -1))
    positions: dict[str, tuple[int, int, int, int]]
    iso: re.Match[str] | None  # the date-time in the first ISO_WITHIN characters, if any


def scan_line(line: str) -> LineScan | None:
    """The structure of a visible line; None for a progress bar (it holds nothing)."""
    if "|" in line and _TQDM.search(line):
        return None
    pairs: list[tuple[str, bool, int, int, int, int]] = []
    positions: dict[str, tuple[int, int, int, int]] = {}
    for m in _PAIR.finditer(line):
        key = m["key"]
        if " " in key or key[0] in "'\"":
            key = " ".join(key.strip("'\"").split())
        low = key.lower()
        if " " in low and low not in _STEP_NAMES and low.rpartition(" ")[2] in _STEP_NAMES:
            low = low.rpartition(" ")[2]  # "Train Epoch: 1"
        if low in _STEP_NAMES:
            positions.setdefault(low.replace(" ", "_"), (*m.span("num"), -1, -1))
        else:
            pairs.append((key, low in _TIME_NAMES, *m.span("key"), *m.span("num")))
    # counters ("Step [100/600]", "Epoch 3/10", "iter 20"), when the line names a position that
    # was not a pair
    after_epoch = 0
    low_line = line.lower()
    if low_line.count("step") + low_line.count("iter") + low_line.count("epoch") > len(positions):
        for m in _COUNTER.finditer(line):
            name = m["name"].lower().replace(" ", "_")
            if m["total"] or name not in positions:
                positions[name] = (*m.span("n"), *m.span("total"))
            if name == "epoch" and not after_epoch:
                after_epoch = m.end()
    if "epoch" in positions and "step" not in positions:
        # PyTorch's MNIST example: "Train Epoch: 1 [640/60000 (1%)]", samples within the epoch
        progress = _PROGRESS.search(line, after_epoch)
        if progress:
            positions["batch"] = (*progress.span("n"), *progress.span("total"))
    head = line[:ISO_WITHIN]
    return LineScan(tuple(pairs), positions, _ISO.search(head) if "-" in head else None)


def read_line(line: str) -> tuple[dict[str, tuple[float, float | None]], dict[str, float], float | None] | None:
    """(positions, metrics, wall time or None) of a visible line, or None for a progress bar."""
    scan = scan_line(line)
    if scan is None:
        return None
    metrics: dict[str, float] = {}
    t = None
    for name, timed, _, _, a, b in scan.pairs:
        value = float(line[a:b])
        if timed and t is None and _absolute(value) is not None:
            t = _absolute(value)
        else:
            metrics.setdefault(name, value)
    positions = {name: (float(line[a:b]), float(line[c:d]) if c >= 0 else None)
                 for name, (a, b, c, d) in scan.positions.items()}
    if positions and not all(math.isfinite(n) and (t is None or math.isfinite(t)) for n, t in positions.values()):
        positions = _on_axis(positions)
    if t is None and metrics and scan.iso is not None:
        t = _iso_from(scan.iso)
    return positions, metrics, t


def _on_axis(positions: dict[str, tuple[float, float | None]]) -> dict[str, tuple[float, float | None]]:
    """A line's positions without those past float range (a counter of 400 digits): such an epoch
    is none, such a total none, and such a step counter leaves the line with no step (the counters
    after it in ``STEP_ORDER`` are not looked at, as the bulk reader has it)."""
    out = {name: (n, t if t is None or math.isfinite(t) else None) for name, (n, t) in positions.items()}
    if "epoch" in out and not math.isfinite(out["epoch"][0]):
        del out["epoch"]
    source = next((name for name in STEP_ORDER if name in out), None)
    if source is not None and not math.isfinite(out[source][0]):
        out = {name: p for name, p in out.items() if name == "epoch"}
    return out


def visible(raw: str) -> str:
    """What a terminal shows of a line: the last redraw, without escape codes or NULs."""
    line = raw.removesuffix("\r").rpartition("\r")[2]
    if "\x1b" in line:
        line = _ANSI.sub("", line)
    return line.replace("\x00", "")


def _float(text: str) -> float | None:
    try:
        return float(text.strip().rstrip("%"))
    except ValueError:
        return None


def _absolute(value: float) -> float | None:
    """Unix seconds (or milliseconds) between 2001 and 5138; None for anything else (a duration)."""
    if 1e9 <= value < 1e11:
        return value
    if 1e12 <= value < 1e14:
        return value / 1000.0
    return None


def iso_time(text: str) -> float | None:
    m = _ISO.search(text)
    return None if m is None else _iso_from(m)


def _iso_from(m: re.Match[str]) -> float | None:
    zone = m[4] or ""
    if zone == "Z":
        zone = "+00:00"
    elif zone and ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    frac = (m[3] or "0")[:6].ljust(6, "0")
    try:
        d = datetime.fromisoformat(f"{m[1]}T{m[2]}.{frac}{zone}")
    except ValueError:
        return None
    return d.timestamp() if d.tzinfo else d.astimezone(timezone.utc).timestamp()
