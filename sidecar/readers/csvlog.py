"""CSV metric logs with a header row: PyTorch Lightning's ``metrics.csv``, pandas' ``to_csv``, ...

Reading. The first row of a file is its header; every later row is one record. Its step is the first
column named in ``format.STEP_KEYS`` (any case) that holds a number in that row, else the row's
index in the file; its wall time is the first ``format.TIME_KEYS`` column (in that order, any case)
that holds an absolute time by ``format.absolute_time``, the rule of JSON lines (Unix seconds or
milliseconds, or an ISO 8601 date-time, of the years 2001 to 5138), else ``now``. Every other cell
that holds a number is a point of the metric its column names (a duration in a ``time`` column too).
Empty cells (and ``NA``, ``N/A``, ``null``, ``None``) are no point: Lightning leaves most cells of a
row empty. ``nan``, ``inf``, ``Infinity`` in any case and with any sign are the floats they spell. A
row with another number of cells than the header is skipped and counted (``wrong_cells``). A row
that looks like a header (no number, no empty cell, a name shared with the current header or a step
name) is a new header: a writer that appends with new columns. A step lower than the previous one
from the same column starts a new attempt, as in JSONL that tailboard did not write. Quoted fields
(commas, newlines, quotes inside), CRLF line ends, a byte-order mark and tab-separated files
(``.tsv``, or a header with tabs and no commas) are read as the ``csv`` module reads them.

Rewrites, and the contract the wiring honours. Lightning rewrites the whole file, header first, when
a metric first appears (a new column). The tail reports that as a reset and the file is read again
from offset 0. The stream's state then goes through :meth:`CsvReader.rewound` (not ``new_state()``)
and the points already stored stay: the state knows how many rows the stream's history holds and a
fingerprint of them, an order-aware sum over rows of their points keyed by column name (so a new
column, empty in old rows, or a new column order changes nothing). Rows read again are checked, not
emitted; rows past them are new. When the new content is another history (its first row differs:
another run at the same path) a new attempt starts with every row of it. When only the sum at the
last known row differs (the same start, another middle) the new attempt starts at that row and the
rows passed over are counted as ``rewritten``: they were read before the difference could be seen.
An export reads the file's records as they are, none held back: from a kept state it decodes with
:meth:`CsvReader.first_read`.

Speed. A chunk whose rows are plain lines of numbers and empty cells, Lightning's files, is read
from its bytes with numpy and one orjson call (3-4x the csv module); any other chunk through the
``csv`` module, with the same result.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import math
import operator
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
from tailboard.format import STEP_KEYS, TIME_KEYS, absolute_time

from ..ingest import Parsed
from .wallclock import absolute_times

__all__ = ["CsvReader", "CsvState"]

#: Cells that mean "no value here" rather than a number.
MISSING = frozenset({"", "na", "n/a", "null", "none", "nil", "-"})
_STEP_ORDER = {k: i for i, k in enumerate(STEP_KEYS)}
_TIME_ORDER = {k: i for i, k in enumerate(TIME_KEYS)}
_M64 = (1 << 64) - 1
_NUMBER_CHARS = str.maketrans("", "", "0123456789.-+eE,")
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_FIELD_LIMIT = 100_000  # below the csv module's default field_size_limit (131,072)


@dataclasses.dataclass
class CsvState:
    """What is carried from one chunk to the next (small and picklable)."""

    delimiter: str = ","
    header: tuple[str, ...] | None = None  # the current content's columns; None before its first row
    rows: int = 0  # data rows read of the current content (since new_state or rewound)
    emitted: int = 0  # rows the stream's history holds (emitted, or checked when read again)
    first_fp: int | None = None  # fingerprint of the history's first row
    sum_fp: int = 0  # order-aware sum of the history rows' fingerprints
    replay_fp: int = 0  # the same sum over the rows read again since the last rewind
    last_steps: dict[str, float] = dataclasses.field(default_factory=dict)  # step column -> last step
    started: bool = False  # the current attempt holds records


class CsvReader:
    name = "csv"
    #: the catch-up reads CSV in the follower's own process: rows of numbers decode faster than a
    #: parse worker's result travels back (serial 0.73 s against 1.36 s with two workers, 4.5M points)
    parallel = False

    def claims(self, filename: str, head: bytes) -> float:
        if not filename.lower().endswith((".csv", ".tsv")):
            return 0.0
        lines = head.decode("utf-8", "replace").lstrip("\ufeff").splitlines()
        if not lines:
            return 0.1  # an empty .csv: nothing says it is not ours yet
        delim = _delimiter(lines[0], filename)
        header = next(csv.reader([lines[0]], delimiter=delim), [])
        if not header or any(_number(c) is not None for c in header):
            return 0.0  # no header row: a bare table of numbers has no metric names
        if any(c.strip().lower() in _STEP_ORDER for c in header):
            return 0.9
        complete = lines[1:-1] if not head.endswith((b"\n", b"\r")) else lines[1:]
        for line in complete:
            if any(_number(c) is not None for c in next(csv.reader([line], delimiter=delim), [])):
                return 0.6
        return 0.1

    def complete(self, buf: bytes) -> int:
        if b'"' not in buf:
            return buf.rfind(b"\n") + 1
        # a newline ends a record only outside quotes: after an even number of quote characters
        arr = np.frombuffer(buf, np.uint8)
        newlines = np.flatnonzero(arr == 10)
        quotes = np.flatnonzero(arr == 34)
        outside = newlines[np.searchsorted(quotes, newlines) % 2 == 0]
        return int(outside[-1]) + 1 if outside.size else 0

    def new_state(self) -> CsvState:
        return CsvState()

    def rewound(self, state: CsvState) -> CsvState:
        """The state to read the stream's file again from offset 0 with, after a rewrite (the tail's
        reset): the history is kept, the content's header and row count start over."""
        return dataclasses.replace(state, header=None, rows=0, replay_fp=0,
                                   last_steps=dict(state.last_steps))

    def first_read(self, state: CsvState) -> CsvState:
        """The state a first reading of the current content has where ``state`` was kept: what an
        export decodes with, so that rows read again after a rewrite (checked, not emitted, when
        following) are records of the file like any other."""
        return dataclasses.replace(state, emitted=min(state.emitted, state.rows), replay_fp=0,
                                   last_steps=dict(state.last_steps))

    def decode(self, data: bytes, state: CsvState, *, now: float) -> tuple[Parsed, CsvState]:
        return _decode(data, state, now=now)


def _decode(data: bytes, state: CsvState, *, now: float, plain: bool = True) -> tuple[Parsed, CsvState]:
    """``CsvReader.decode``; ``plain=False`` reads every chunk through the csv module (the reading
    that the plain one must equal)."""
    st = dataclasses.replace(state, last_steps=dict(state.last_steps))
    parsed = Parsed()
    out = _Points()
    if not (plain and _read_plain(data, st, out, parsed, now)):
        _read_text(data, st, out, parsed, now)
    parsed.segments = out.build()
    parsed.started = st.started
    return parsed, st


def _read_text(data: bytes, st: CsvState, out: _Points, parsed: Parsed, now: float) -> None:
    """Read a chunk's rows through the csv module: any CSV."""
    try:
        text, clean = data.decode("utf-8"), True
    except UnicodeDecodeError:
        text, clean = data.decode("utf-8", "replace"), False
    if st.header is None and st.rows == 0:  # the start of the file's content
        text = text.lstrip("\ufeff")
        st.delimiter = _delimiter(text[: text.find("\n")], "")
    rows = _rows(text, st.delimiter, clean, parsed)
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    odd_for: tuple[int, np.ndarray] = (-1, lens)  # rows whose length differs from k, per k
    i, n = 0, len(rows)
    while i < n:
        if st.header is None:
            if any(_number(c) is not None for c in rows[i]):
                parsed.skip("no_header")
            else:
                st.header = tuple(c.strip() for c in rows[i])
            i += 1
            continue
        k = len(st.header)
        if odd_for[0] != k:
            odd_for = (k, np.flatnonzero(lens != k))
        odd = odd_for[1]
        at = int(np.searchsorted(odd, i))
        j = int(odd[at]) if at < odd.size else n
        if j > i:
            taken = _block(rows[i:j], st, out, parsed, now)
            if taken < j - i:  # a header inside the block
                st.header = tuple(c.strip() for c in rows[i + taken])
                i += taken + 1
                continue
        if j < n:
            if _is_header(rows[j], st.header):
                st.header = tuple(c.strip() for c in rows[j])
            else:
                parsed.skip("wrong_cells")
        i = j + 1


def _read_plain(data: bytes, st: CsvState, out: _Points, parsed: Parsed, now: float) -> bool:
    """Read a chunk whose rows are lines of numbers and empty cells (Lightning's files) from its
    bytes: no csv module, no str per cell, one orjson call for the numbers. False, with nothing
    read or changed, for any other chunk (quotes, text, a row of another width, a header written
    again, a lone CR, a field the csv module refuses), which ``_read_text`` then reads whole: both
    readings give the same Parsed and state (tests/test_reader_csv.py checks it)."""
    if b'"' in data or b"\x00" in data or not data.isascii():
        return False
    header, delimiter, at = st.header, st.delimiter, 0
    if header is None:  # the header line through the csv module, the rows after it here
        at = data.find(b"\n") + 1
        first, seen = dataclasses.replace(st, last_steps={}), Parsed()
        _read_text(data[:at], first, _Points(), seen, now)
        if not at or first.header is None or first.rows or seen.skipped:
            return False
        header, delimiter = first.header, first.delimiter
    cells = _plain_cells(data[at:], len(header), delimiter)
    if cells is None:
        return False
    st.header, st.delimiter = header, delimiter
    values, points = cells
    if values.shape[1]:
        _read(values.shape[1], header, list(values), list(points), _no_text, st, out, parsed, now)
    return True


def _plain_cells(body: bytes, k: int, delimiter: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The cells of ASCII lines without quotes or NUL, each with ``k`` cells of numbers or nothing
    but spaces, as (values, holds a number), both (k, rows): what ``_numbers`` reads from the
    csv module's rows. None for anything else."""
    if not body:
        return np.empty((k, 0)), np.empty((k, 0), bool)
    if body[-1] != 10:
        body += b"\n"  # the csv module reads a last line without its newline as a row
    if delimiter != "," and b"," in body:
        return None  # a comma would split a cell in the JSON array below
    arr = np.frombuffer(body, np.uint8)
    nl = np.flatnonzero(arr == 10)
    first = np.empty_like(nl)
    first[0] = 0
    first[1:] = nl[:-1] + 1
    last = nl
    cr = b"\r" in body
    if cr:
        crlf = arr[nl - 1] == 13
        if np.count_nonzero(crlf) != np.count_nonzero(arr == 13):
            return None  # a lone CR ends a row for the csv module
        last = nl - crlf
    full = last > first  # blank lines are no rows
    if not full.all():
        first, last = first[full], last[full]
    m = int(first.shape[0])
    delims = np.flatnonzero(arr == ord(delimiter))
    if delims.shape[0] != m * (k - 1) or not np.array_equal(np.searchsorted(delims, last),
                                                            (k - 1) * np.arange(1, m + 1)):
        return None  # a row of another width: a bad row or a header
    starts = np.empty((m, k), np.int64)
    ends = np.empty((m, k), np.int64)
    starts[:, 0] = first
    ends[:, -1] = last
    if k > 1:
        d = delims.reshape(m, k - 1)
        starts[:, 1:] = d + 1
        ends[:, :-1] = d
    if m and int((ends - starts).max()) >= _FIELD_LIMIT:
        return None  # the csv module refuses a field that long
    spaces = b" " in body
    if spaces:
        solid = np.zeros(arr.shape[0] + 1, np.int32)
        np.cumsum(arr != 32, out=solid[1:])
        blank = solid[ends] == solid[starts]
    else:
        blank = ends == starts
    # One JSON array of the numbers: each number's delimiter (or line end) becomes a comma, the
    # other delimiters and line ends spaces.
    number = ~blank.ravel()
    after = ends.ravel()[number]
    text = arr.copy()
    text[nl] = 32
    if cr:
        text[nl[crlf] - 1] = 32
    text[delims] = 32
    if after.shape[0]:
        text[after[:-1]] = 44
    flat = text.tobytes()
    nums = _plain_numbers(flat, int(after.shape[0]))
    if nums is None:
        return None
    zero = np.flatnonzero(nums == 0)  # JSON's integer -0 is orjson's int 0, float("-0") is -0.0
    if zero.shape[0]:
        at = starts.ravel()[number][zero]
        if spaces:
            nums[zero] = [float(body[a:e]) for a, e in zip(at.tolist(), after[zero].tolist())]
        else:
            nums[zero[arr[at] == 45]] = -0.0
    values = np.full(m * k, np.nan)
    values[number] = nums
    return np.ascontiguousarray(values.reshape(m, k).T), np.ascontiguousarray(number.reshape(m, k).T)


def _plain_numbers(text: bytes, count: int) -> np.ndarray | None:
    """The ``count`` numbers of a comma-separated text as ``float`` reads each (orjson, else
    ``float`` per number for what JSON spells otherwise: nan, inf, +1, .5, 1e400), None when one
    is no number."""
    nums: list[Any] | None = None
    if b"l" not in text and b"u" not in text and b"[" not in text and b"{" not in text:  # no null, true, false
        try:
            nums = orjson.loads(b"[" + text + b"]")
        except orjson.JSONDecodeError:
            pass
    if nums is None:
        try:
            nums = list(map(float, text.split(b","))) if count else []
        except ValueError:
            return None
    if len(nums) != count:
        return None
    return np.array(nums, np.float64)


def _no_text(c: int, i: int) -> str:
    return ""  # the plain reading's cells that hold no number hold nothing but spaces


def _delimiter(first_line: str, filename: str) -> str:
    if filename.lower().endswith(".tsv"):
        return "\t"
    if "," not in first_line and "\t" in first_line:
        return "\t"
    return ","


def _rows(text: str, delim: str, clean: bool, parsed: Parsed) -> list[list[str]]:
    """The text's non-blank rows; a row holding NUL bytes, or undecodable bytes (``clean``: the text
    had none), is counted and dropped."""
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delim) if r]
    except csv.Error:  # a field over the csv module's limit: read record by record
        rows = []
        for rec in _records(text):
            try:
                rows.extend(r for r in csv.reader([_shorten(rec)], delimiter=delim) if r)
            except csv.Error:
                parsed.skip("malformed_row")
    for bad, reason in (("\x00", "nul_bytes"), ("" if clean else "\ufffd", "invalid_utf8")):
        if bad and bad in text:
            kept = [r for r in rows if not any(bad in c for c in r)]
            if len(kept) < len(rows):
                parsed.skip(reason, len(rows) - len(kept))
            rows = kept
    return rows


def _records(text: str) -> list[str]:
    """The text cut into records: lines joined while a quote is open."""
    out: list[str] = []
    pending = ""
    for line in text.splitlines(keepends=True):
        pending += line
        if pending.count('"') % 2 == 0:
            out.append(pending)
            pending = ""
    if pending:
        out.append(pending)
    return out


def _shorten(record: str) -> str:
    """A record with its quoted fields that are over the csv module's limit (text, never a number)
    replaced by a placeholder."""
    return _QUOTED.sub(lambda m: m[0] if len(m[0]) < _FIELD_LIMIT else '"..."', record)


def _number(cell: str) -> float | None:
    s = cell.strip()
    if s.lower() in MISSING:
        return None
    try:
        return float(s)
    except ValueError:
        return None


def _is_header(row: list[str], header: tuple[str, ...]) -> bool:
    names = [c.strip() for c in row]
    if any(not c or c.lower() in MISSING or _number(c) is not None for c in names):
        return False
    return bool(set(names) & set(header)) or any(c.lower() in _STEP_ORDER for c in names)


def _numbers(col: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column's cells as (values, holds a number, is empty)."""
    n = len(col)
    blank = np.fromiter(map(operator.not_, col), bool, n)
    cells = ",".join(col)
    if not cells.translate(_NUMBER_CHARS):
        # Lightning's files: plain numbers and empty cells, read as one JSON array by orjson (2.4x
        # faster than float() per cell); anything JSON spells otherwise (+1, .5, 1e400) is read below
        try:
            values = np.array(orjson.loads("[" + ",".join([c or "null" for c in col]) + "]"), np.float64)
            if values.shape == (n,):
                for i in np.flatnonzero(values == 0).tolist():
                    if col[i][0] == "-":  # JSON's integer -0 is orjson's int 0, float("-0") is -0.0
                        values[i] = -0.0
                return values, ~blank, blank
        except (orjson.JSONDecodeError, TypeError, ValueError):
            pass
    try:  # numbers and empty cells in another spelling (nan, inf, +1): float() per cell, in C
        values = np.fromiter(map(float, [c or "nan" for c in col]), np.float64, n)
        return values, ~blank, blank
    except ValueError:
        pass
    values = np.full(len(col), np.nan)
    point = np.zeros(len(col), bool)
    for i, cell in enumerate(col):
        s = cell.strip()
        if s.lower() in MISSING:
            blank[i] = True
            continue
        try:
            values[i] = float(s)
            point[i] = True
        except ValueError:
            pass
    return values, point, blank


def _wall_times(cell: Callable[[int], str], values: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Absolute times in a time column, by ``format.absolute_time`` (NaN where a cell is none: a
    duration, text, nothing): numbers in whole arrays, the other cells (``cell(row)``) one at a time."""
    t = absolute_times(values, point)
    for i in np.flatnonzero(~point).tolist():
        x = absolute_time(cell(i).strip())
        if x is not None:
            t[i] = x
    return t


@functools.lru_cache(maxsize=4096)
def _name_hash(name: str) -> int:
    # stable across processes (the catch-up parses in children), unlike hash()
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays: every input bit moves every output bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def _block(rows: list[list[str]], st: CsvState, out: _Points, parsed: Parsed, now: float) -> int:
    """Read data rows that all have as many cells as the header; returns how many were read (fewer
    when one of them is a new header, which is not read)."""
    assert st.header is not None
    header = st.header
    cols = list(zip(*rows))
    values, points, blanks = zip(*map(_numbers, cols))
    # a row without any number or empty cell may be a header written again
    texty = ~(np.logical_or.reduce(points) | np.logical_or.reduce(blanks))
    m = len(rows)
    for at in np.flatnonzero(texty):
        if _is_header(rows[at], header):
            m = int(at)
            break
    if m == 0:
        return 0
    _read(m, header, [v[:m] for v in values], [p[:m].copy() for p in points], lambda c, i: cols[c][i],
          st, out, parsed, now)
    return m


def _read(m: int, header: tuple[str, ...], values: list[np.ndarray], points: list[np.ndarray],
          cell: Callable[[int, int], str], st: CsvState, out: _Points, parsed: Parsed, now: float) -> None:
    """Read ``m`` data rows, given per column as values and whether each cell holds a number (the
    step, time and metric cells are told apart here; ``points`` is changed); ``cell(column, row)``
    is a cell's text."""
    index = st.rows + np.arange(m, dtype=np.float64)

    # fingerprints before the step and time cells are taken out: every number of the row counts
    row_fp = np.zeros(m, np.uint64)
    for name, v, p in zip(header, values, points):
        h = _mix(np.uint64(_name_hash(name)) ^ v.view(np.uint64))
        row_fp += np.where(p, h, np.uint64(0))
    chain = _mix(row_fp + (index.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15))

    lower = [h.lower() for h in header]
    times = np.full(m, now)
    # as in JSON lines: the first TIME_KEYS column holding an absolute time is the row's wall clock
    # (the last one written), and no time column's absolute time is a metric
    clocks = [c for c, h in enumerate(lower) if h in _TIME_ORDER]
    for c in sorted(clocks, key=lambda c: (_TIME_ORDER[lower[c]], c), reverse=True):
        t = _wall_times(functools.partial(cell, c), values[c], points[c])
        has = ~np.isnan(t)
        times[has] = t[has]
        points[c] &= ~has
    steps = np.full(m, np.nan)
    source = np.full(m, -1)
    for c in sorted((c for c, h in enumerate(lower) if h in _STEP_ORDER), key=lambda c: _STEP_ORDER[lower[c]]):
        take = np.isnan(steps) & points[c] & np.isfinite(values[c])
        steps[take] = values[c][take]
        source[take] = c
        points[c] &= ~take
    none = np.isnan(steps)
    steps[none] = index[none]

    start = _replay(st, row_fp, chain, out, parsed)
    if start < m:
        if st.emitted == 0:
            st.first_fp = int(row_fp[start])
        st.sum_fp = (st.sum_fp + int(chain[start:].sum(dtype=np.uint64))) & _M64
        st.emitted += m - start
        _emit(start, m, header, values, points, steps, source, times, st, out, parsed)
    st.rows += m


def _replay(st: CsvState, row_fp: np.ndarray, chain: np.ndarray, out: _Points, parsed: Parsed) -> int:
    """Check the rows of a block that the history already holds; returns the first row to emit.
    Where the content stops matching the history, the history becomes this content."""
    if st.rows >= st.emitted:
        return 0
    n = min(len(row_fp), st.emitted - st.rows)
    at = None
    if st.rows == 0 and int(row_fp[0]) != st.first_fp:
        at = 0
    else:
        total = (st.replay_fp + int(chain[:n].sum(dtype=np.uint64))) & _M64
        if st.rows + n < st.emitted or total == st.sum_fp:
            st.replay_fp = total
            return n
        at = n - 1
    seen = st.rows + at  # rows of the new content passed over without being emitted
    if seen:
        parsed.skip("rewritten", seen)
    st.sum_fp = (st.replay_fp + int(chain[:at].sum(dtype=np.uint64))) & _M64
    st.emitted = seen
    if st.started:
        out.new_segment()
    st.last_steps.clear()
    return at


def _emit(a: int, b: int, header: tuple[str, ...], values: list[np.ndarray], points: list[np.ndarray],
          steps: np.ndarray, source: np.ndarray, times: np.ndarray, st: CsvState, out: _Points,
          parsed: Parsed) -> None:
    """Emit rows [a, b), starting a new attempt where a step column goes back."""
    while a < b:
        cut = b
        for c in np.unique(source[a:b]):
            key = header[c] if c >= 0 else ""
            idx = a + np.flatnonzero(source[a:b] == c)
            s = steps[idx]
            prev = np.concatenate(([st.last_steps.get(key, -math.inf)], s[:-1]))
            down = np.flatnonzero(s < prev)
            if down.size:
                cut = min(cut, int(idx[down[0]]))
        for c, name in enumerate(header):
            if not name:
                continue  # an unnamed column (pandas' index): no metric to call it
            p = points[c][a:cut]
            if p.any():
                out.add(name, steps[a:cut][p], values[c][a:cut][p], times[a:cut][p])
        for c in np.unique(source[a:cut]):
            key = header[c] if c >= 0 else ""
            st.last_steps[key] = float(steps[a:cut][source[a:cut] == c][-1])
        parsed.records += cut - a
        parsed.last_step = float(steps[cut - 1])
        parsed.last_time = float(times[cut - 1])
        st.started = True
        if cut < b:
            out.new_segment()
            st.last_steps.clear()
        a = cut


class _Points:
    """Points gathered per segment (attempt), concatenated once at the end of a chunk."""

    def __init__(self) -> None:
        self.segments: list[dict[str, list[tuple[Any, Any, Any]]]] = [{}]

    def add(self, name: str, steps: Any, values: Any, times: Any) -> None:
        self.segments[-1].setdefault(name, []).append((steps, values, times))

    def new_segment(self) -> None:
        self.segments.append({})

    def build(self) -> list[dict[str, Any]]:
        return [{name: tuple(np.concatenate(x).astype(np.float64) for x in zip(*parts))
                 for name, parts in seg.items()} for seg in self.segments]
