"""A backlog of a text log read in bulk, with the results of reading it line by line.

Most lines of a training log are one line printed again with other numbers. Lines that differ only
in their ASCII digits scan alike (``textlog.LineScan``): their numbers are at the same places and the
rules give them the same roles. So the lines of a chunk are grouped by shape (every digit read as 0),
one line of each shape is scanned, and the numbers of all its lines are read by numpy from the bytes
at those places. What values decide is decided per line, in bulk too: whether a ``time`` pair holds
an absolute time (lines that differ there from the scanned one are scanned apart), a metric name's
digits (likewise), the date-times (one that is invalid, or outside the years done in bulk, goes
through the rules), the step of each line and where an attempt starts. A shape of few lines is read
by the rules line by line, and a chunk with many new attempts is read line by line from its 16th on.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta, timezone

import numpy as np

from ..ingest import Parsed
from .textlog import (
    ISO_WITHIN,
    STEP_ORDER,
    LineScan,
    TextReader,
    TextState,
    iso_time,
    read_line,
    scan_line,
    visible,
)

__all__ = ["decode_bulk"]

_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_KINDS = ("step", "epoch", "line")
_NUMBER_LAYOUT = re.compile(r"([-+]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([-+]?)([0-9]{1,4}))?")
_POW10 = 10.0 ** np.arange(23)  # exact doubles: one product or quotient by them rounds once
_MAX_RESTARTS = 16  # new attempts in a chunk after which its other lines are read one by one
_YEARS = (1971, 2200)  # date-times read in bulk: microseconds since 1970 stay below 2**53
_EPOCH = datetime(1970, 1, 1)


def decode_bulk(reader: TextReader, data: bytes, state: TextState, *, now: float,
                min_group: int = 16) -> tuple[Parsed, TextState]:
    """``reader.decode_lines(data, state, now=now)``, faster for chunks of many lines of few shapes.
    A shape with fewer than ``min_group`` lines is read line by line."""
    st = dataclasses.replace(state, last_steps=dict(state.last_steps))
    body = data[: data.rfind(b"\n") + 1]
    with np.errstate(all="ignore"):  # inf and NaN are values here, as in float arithmetic
        chunk = _Chunk(body, now)
        for group in _groups(chunk.buf, chunk.ends - chunk.starts):
            chunk.read_group(group, min_group)
        done = chunk.walk(st)
        parsed = chunk.emit(done)
    if done < chunk.n:  # attempts on attempts: the rest line by line
        at = int(np.flatnonzero(np.frombuffer(body, np.uint8) == 10)[done - 1]) + 1
        rest, st = reader.decode_lines(body[at:], st, now=now)
        _append(parsed, rest)
    parsed.started = st.started
    return parsed, st


def _groups(buf: bytes, lengths: np.ndarray) -> list[np.ndarray]:
    """Indices of the lines of each shape (lines of ``lengths`` bytes), in order of first appearance."""
    shapes = buf.translate(_ZEROS).split(b"\n")
    shapes.pop()
    ids = {s: i for i, s in enumerate(dict.fromkeys(shapes))}
    if len(ids) <= 1:
        return [np.arange(len(shapes))]
    sizes = [len(s) for s in ids]
    if len(set(sizes)) == len(sizes):  # as usual, shapes differ in length (a step gained a digit)
        by_size = np.zeros(max(sizes) + 1, np.intp)
        by_size[sizes] = np.arange(len(sizes))
        gid = by_size[lengths]
    else:
        gid = np.fromiter(map(ids.__getitem__, shapes), np.intp, len(shapes))
    if len(ids) <= 32:
        return [np.flatnonzero(gid == i) for i in range(len(ids))]
    order = np.argsort(gid, kind="stable")
    return np.split(order, np.cumsum(np.bincount(gid))[:-1])


class _Chunk:
    """The visible lines of a chunk and, per line, what the rules read from it."""

    def __init__(self, body: bytes, now: float) -> None:
        self.body = body
        self.raw: list[str] | None = None
        special = b"\r" in body or b"\x1b" in body or b"\x00" in body
        if special or not (body.isascii() or _is_utf8(body)):
            raw = self.raw_lines()
            body = "".join((visible(line) if special else line) + "\n" for line in raw).encode()
        self.buf = body
        self.arr = np.frombuffer(body, np.uint8)
        self.ends = np.flatnonzero(self.arr == 10)
        self.n = n = int(self.ends.shape[0])
        self.starts = np.zeros(n, np.intp)
        self.starts[1:] = self.ends[:-1] + 1
        self.now = now
        self.E, self.S, self.T = np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan)
        self.hasE, self.hasS, self.hasT = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        self.hasM = np.zeros(n, bool)
        self.t = np.full(n, now)
        # metric -> parts of (line indices, values, rank of the metric in its lines)
        self.parts: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray | int]]] = {}
        self.single: dict[str, tuple[list[int], list[float], list[int]]] = {}  # the same, line by line
        self.seg_starts = [0]
        self.step = np.zeros(n)

    def raw_lines(self) -> list[str]:
        if self.raw is None:
            self.raw = self.body.decode("utf-8", "replace").split("\n")
            self.raw.pop()
        return self.raw

    def line(self, i: int) -> str:
        return self.buf[self.starts[i] : self.ends[i]].decode()

    # -- what each line holds -------------------------------------------------------------------

    def read_alone(self, i: int) -> None:
        read = read_line(self.line(i))
        if read is None:
            return
        positions, metrics, t = read
        epoch = positions.get("epoch")
        if epoch is not None:
            self.hasE[i], self.E[i] = True, epoch[0]
        for name in STEP_ORDER:
            if name in positions:
                n, total = positions[name]
                self.hasS[i], self.S[i] = True, n
                if total is not None:
                    self.hasT[i], self.T[i] = True, total
                break
        if metrics:
            self.hasM[i] = True
            for rank, (name, value) in enumerate(metrics.items()):
                cols = self.single.setdefault(name, ([], [], []))
                cols[0].append(i)
                cols[1].append(value)
                cols[2].append(rank)
        if t is not None:
            self.t[i] = t

    def read_group(self, idx: np.ndarray, min_group: int) -> None:
        while idx.shape[0]:
            if idx.shape[0] < min_group:
                for i in idx.tolist():
                    self.read_alone(i)
                return
            line = self.line(int(idx[0]))
            scan = scan_line(line)
            if scan is None:  # progress bars
                return
            ok = self._read_shape(idx, line, scan)
            if ok is None:
                for i in idx.tolist():
                    self.read_alone(i)
                return
            idx = idx[~ok]
            if ok.sum() < min_group:  # scattered: the rest line by line
                min_group = idx.shape[0] + 1

    def _read_shape(self, idx: np.ndarray, line: str, scan: LineScan) -> np.ndarray | None:
        """Reads the lines ``idx`` of the shape of ``line`` that read as it does; which did (a mask),
        or None when its numbers are not ASCII."""
        spans = [p[4:] for p in scan.pairs] + [s for p in scan.positions.values() for s in (p[:2], p[2:]) if s[0] >= 0]
        if not all(line[a:b].isascii() for a, b in spans):  # digits of other scripts: line by line
            return None
        at = _byte_offsets(line)
        starts = self.starts[idx]
        ok = np.ones(idx.shape[0], bool)
        # a metric's name is the same text in every line
        for _, _, ka, kb, _, _ in scan.pairs:
            digits = [at[c] for c in range(ka, kb) if "0" <= line[c] <= "9"]
            if digits:
                got = self.arr[starts[:, None] + np.asarray(digits)]
                ok &= (got == got[0]).all(1)
        values = [_numbers(self.arr, starts, at[a], line[a:b]) for _, _, _, _, a, b in scan.pairs]
        timed = [j for j, p in enumerate(scan.pairs) if p[1]]
        for j in timed:  # whether a time pair is a wall time, as _absolute says
            v = values[j]
            absolute = ((v >= 1e9) & (v < 1e11)) | ((v >= 1e12) & (v < 1e14))
            ok &= absolute == absolute[0]
        # what the scanned line's values make of its pairs holds for every line read with it
        metrics: dict[str, int] = {}
        t_from = None
        for j, (name, is_time, *_) in enumerate(scan.pairs):
            v0 = values[j][0]
            if is_time and t_from is None and ((1e9 <= v0 < 1e11) or (1e12 <= v0 < 1e14)):
                t_from = j
            else:
                metrics.setdefault(name, j)
        sel = idx[ok]
        source = next((name for name in STEP_ORDER if name in scan.positions), None)
        for name, (a, b, c, d) in scan.positions.items():
            if name != "epoch" and name != source:
                continue
            v = _numbers(self.arr, starts, at[a], line[a:b])[ok]
            fin = np.isfinite(v)  # a counter past float range is not one (as read_line has it)
            if name == "epoch":
                self.hasE[sel], self.E[sel] = fin, v
                continue
            self.hasS[sel], self.S[sel] = fin, v
            if c >= 0:
                total = _numbers(self.arr, starts, at[c], line[c:d])[ok]
                self.hasT[sel], self.T[sel] = np.isfinite(total), total
        if metrics:
            self.hasM[sel] = True
            for rank, (name, j) in enumerate(metrics.items()):
                self.parts.setdefault(name, []).append((sel, values[j][ok], rank))
            if t_from is not None:
                v = values[t_from][ok]
                self.t[sel] = np.where(v >= 1e12, v / 1000.0, v)
            elif scan.iso is not None:
                self._iso(sel, starts[ok], scan.iso, at)
        return ok

    def _iso(self, sel: np.ndarray, starts: np.ndarray, m: re.Match[str], at: list[int]) -> None:
        """The wall times of lines whose date-time is at the place of ``m`` (see _iso_from)."""
        if not m[0].isascii():
            for i in sel.tolist():
                t = iso_time(self.line(i)[:ISO_WITHIN])
                self.t[i] = self.now if t is None else t
            return

        def num(group: int, a: int, b: int) -> np.ndarray:
            offs = at[m.start(group) + a] + np.arange(b - a)
            digits = self.arr[starts[:, None] + offs].astype(np.int64) - 48
            return digits @ (10 ** np.arange(b - a - 1, -1, -1, dtype=np.int64))

        year, month, day = num(1, 0, 4), num(1, 5, 7), num(1, 8, 10)
        hour, minute, second = num(2, 0, 2), num(2, 3, 5), num(2, 6, 8)
        micro = np.zeros(sel.shape[0], np.int64)
        if m[3]:
            k = min(len(m[3]), 6)
            micro = num(3, 0, k) * 10 ** (6 - k)
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        days_in = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[np.clip(month, 0, 12)] + (leap & (month == 2))
        ok = ((year >= _YEARS[0]) & (year <= _YEARS[1]) & (month >= 1) & (month <= 12) & (day >= 1)
              & (day <= days_in) & (hour <= 23) & (minute <= 59) & (second <= 59))
        naive = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
        zone = m[4] or ""
        if zone == "":
            utc = naive.copy()
            if ok.any():
                utc[ok] -= _local_offsets(naive[ok])
        elif zone == "Z":
            utc = naive
        else:
            zh = num(4, 1, 3)
            zm = num(4, 4, 6) if ":" in zone else num(4, 3, 5)
            ok &= (zh <= 23) & (zm <= 59)
            utc = naive - (1 if zone[0] == "+" else -1) * (zh * 3600 + zm * 60)
        times = (utc * 1_000_000 + micro) / 1e6  # as timedelta.total_seconds: one rounding
        self.t[sel[ok]] = times[ok]
        for i in sel[~ok].tolist():  # the rules, one line at a time
            t = iso_time(self.line(i)[:ISO_WITHIN])
            self.t[i] = self.now if t is None else t

    # -- steps and attempts, in file order ------------------------------------------------------

    def walk(self, st: TextState) -> int:
        """Gives every line the step and the attempt ``TextReader.decode_lines`` would and carries ``st``
        over them; the number of lines done (all, unless attempts restarted too often)."""
        line0 = st.line
        at = restarts = 0
        while at < self.n:
            if restarts == _MAX_RESTARTS:
                break
            end, restarted = self._walk(at, line0, st)
            restarts += restarted
            at = end
        st.line = line0 + at
        return at

    def _walk(self, a: int, line0: int, st: TextState) -> tuple[int, bool]:
        hasE, E, hasS, S, hasT, T = (x[a:] for x in (self.hasE, self.E, self.hasS, self.S, self.hasT, self.T))
        hasM = self.hasM[a:]
        n = self.n - a
        pos = np.arange(n)
        zero = np.logical_or.accumulate(hasE & (E == 0))
        first_epoch = np.zeros(n) if st.first_epoch == 0 else np.where(zero, 0.0, 1.0)
        last_e = np.maximum.accumulate(np.where(hasE, pos, -1))
        step = S.copy()
        ci = np.flatnonzero(hasS & hasT & hasE)  # a counter within the epoch, unless seen global
        gc = np.zeros(0, bool)
        if ci.shape[0]:
            ec, nc = E[ci], S[ci]
            pe, pn = (np.nan, np.nan) if st.counter is None else st.counter
            went_on = (ec > np.concatenate(([pe], ec[:-1]))) & (nc > np.concatenate(([pn], nc[:-1])))
            gc = np.logical_or.accumulate(went_on) | st.global_counter
            step[ci] = np.where(gc, nc, np.maximum(ec - first_epoch[ci], 0.0) * T[ci] + nc)
        last_s = np.maximum.accumulate(np.where(hasS, pos, -1))
        mi = np.flatnonzero(hasM)
        ls, le = last_s[mi], last_e[mi]
        kind = np.where((ls >= 0) | (st.step is not None), 0, np.where((le >= 0) | (st.epoch is not None), 1, 2))
        carried = (np.nan if st.step is None else st.step, np.nan if st.epoch is None else st.epoch)
        mstep = np.where(kind == 0, np.where(ls >= 0, step[np.maximum(ls, 0)], carried[0]),
                         np.where(kind == 1, np.where(le >= 0, E[np.maximum(le, 0)], carried[1]), line0 + a + mi))
        # a step lower than the last of its kind starts a new attempt
        restart = n
        for k, name in enumerate(_KINDS):
            of = np.flatnonzero(kind == k)
            if of.shape[0]:
                v = mstep[of]
                prev = np.concatenate(([st.last_steps.get(name, np.nan)], v[:-1]))
                hit = np.flatnonzero(v < prev)
                if hit.shape[0]:
                    restart = min(restart, int(mi[of[hit[0]]]))
        end = n if restart == n else restart + 1
        done = mi < end
        # the state after line end - 1
        if zero[end - 1] and st.first_epoch != 0:
            st.first_epoch = 0
        if last_e[end - 1] >= 0:
            st.epoch = float(E[last_e[end - 1]])
        c_done = int(np.searchsorted(ci, end))
        if c_done:
            st.counter = (float(E[ci[c_done - 1]]), float(S[ci[c_done - 1]]))
            st.global_counter = bool(gc[c_done - 1])
        if last_s[end - 1] >= 0:
            st.step = float(step[last_s[end - 1]])
        m_done = int(done.sum())
        self.step[a + mi[:m_done]] = mstep[:m_done]
        if restart < n:
            if st.started or m_done > 1:
                self.seg_starts.append(a + restart)
            st.last_steps.clear()
            st.step = None
            st.last_steps[_KINDS[kind[m_done - 1]]] = float(mstep[m_done - 1])
        elif m_done:
            # the last step of each kind, kinds new to last_steps in order of first appearance
            kinds = kind[:m_done]
            firsts = sorted((int(np.argmax(kinds == k)), k) for k in range(3) if (kinds == k).any())
            for _, k in firsts:
                st.last_steps[_KINDS[k]] = float(mstep[:m_done][kinds == k][-1])
        if m_done:
            st.started = True
        return a + end, restart < n

    # -- the columns of each attempt ------------------------------------------------------------

    def emit(self, done: int) -> Parsed:
        parsed = Parsed()
        lines = np.flatnonzero(self.hasM[:done])
        parsed.records = int(lines.shape[0])
        if parsed.records:
            last = lines[-1]
            parsed.last_step, parsed.last_time = float(self.step[last]), float(self.t[last])
        for name, (li, vs, rs) in self.single.items():  # in the order of their shapes: sorted
            order = np.argsort(li, kind="stable")
            self.parts.setdefault(name, []).append(
                (np.asarray(li, np.intp)[order], np.asarray(vs, np.float64)[order], np.asarray(rs, np.intp)[order]))
        bounds = np.asarray(self.seg_starts + [done])
        placed: list[list[tuple[int, int, str, tuple[np.ndarray, ...]]]] = [[] for _ in self.seg_starts]
        for name, parts in self.parts.items():
            idx = np.concatenate([p[0] for p in parts])
            vals = np.concatenate([p[1] for p in parts])
            ranks = np.concatenate([np.broadcast_to(np.asarray(p[2]), p[0].shape) for p in parts])
            if len(parts) > 1:
                order = np.argsort(idx, kind="stable")
                idx, vals, ranks = idx[order], vals[order], ranks[order]
            cuts = np.searchsorted(idx, bounds)
            for s in range(len(self.seg_starts)):
                lo, hi = cuts[s], cuts[s + 1]
                if lo < hi:
                    i = idx[lo:hi]
                    placed[s].append((int(i[0]), int(ranks[lo]), name, (self.step[i], vals[lo:hi], self.t[i])))
        parsed.segments = [{name: cols for _, _, name, cols in sorted(seg, key=lambda p: p[:2])} for seg in placed]
        return parsed


def _append(parsed: Parsed, rest: Parsed) -> None:
    """Adds what the lines after ``parsed``'s were read as: its first segment goes on the last one."""
    last = parsed.segments[-1]
    for name, cols in rest.segments[0].items():
        have = last.get(name)
        last[name] = cols if have is None else tuple(np.concatenate(pair) for pair in zip(have, cols))
    parsed.segments.extend(rest.segments[1:])
    parsed.records += rest.records
    if rest.records:
        parsed.last_step, parsed.last_time = rest.last_step, rest.last_time


def _numbers(arr: np.ndarray, starts: np.ndarray, at: int, text: str) -> np.ndarray:
    """The values of the number that is ``text`` (ASCII) in the first line and at byte ``at`` of
    every line (lines of one shape: only their digits differ), as ``float`` reads them."""
    m = _NUMBER_LAYOUT.fullmatch(text)
    if m is None:
        if not any("0" <= c <= "9" for c in text):  # nan or inf: letters, the same in every line
            return np.full(starts.shape[0], float(text))
        return _floats(arr, starts, at, len(text))
    mantissa = [*range(*m.span(2)), *range(*m.span(3))] if m[3] is not None else list(range(*m.span(2)))
    if len(mantissa) > 15:  # more than 2**53 may not be exact: read as text
        return _floats(arr, starts, at, len(text))

    def digits(offs: list[int]) -> np.ndarray:
        d = arr[starts[:, None] + (at + np.asarray(offs, np.intp))].astype(np.float64) - 48.0
        return d @ _POW10[len(offs) - 1 :: -1][: len(offs)]

    # Clinger's fast path: an integer below 2**53 times or over an exact power of ten rounds once,
    # as the correctly rounded decimal does
    whole = digits(mantissa)  # an integer below 10**15: exact
    shift = -len(m[3] or "")  # 15 digits at most
    if m[5] is None:
        values = np.asarray(whole / _POW10[-shift], np.float64)
        return -values if m[1] == "-" else values
    exp = digits(list(range(*m.span(5)))) * (-1 if m[4] == "-" else 1) + shift
    fast = np.abs(exp) <= 22
    e = np.where(fast, exp, 0).astype(np.intp)
    values = np.where(e >= 0, whole * _POW10[np.maximum(e, 0)], whole / _POW10[np.maximum(-e, 0)])
    if m[1] == "-":
        values = -values
    if not fast.all():
        slow = np.flatnonzero(~fast)
        values[slow] = _floats(arr, starts[slow], at, len(text))
    return np.asarray(values, np.float64)


def _floats(arr: np.ndarray, starts: np.ndarray, at: int, width: int) -> np.ndarray:
    return np.array([float(arr[s + at : s + at + width].tobytes()) for s in starts.tolist()], np.float64)


def _byte_offsets(line: str) -> list[int]:
    """The byte offset of each character of ``line`` in UTF-8 (and of its end)."""
    if line.isascii():
        return list(range(len(line) + 1))
    out = [0]
    for ch in line:
        out.append(out[-1] + len(ch.encode()))
    return out


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _days_from_civil(y: np.ndarray, m: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (H. Hinnant's algorithm)."""
    y = y - (m <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return np.asarray(era * 146097 + doe - 719468, np.int64)


def _local_offsets(naive: np.ndarray) -> np.ndarray:
    """Local time minus UTC, in seconds, at naive local times given as seconds since 1970 (as
    ``datetime.astimezone`` takes them): asked of datetime once at each end of every hour's lines,
    and at every second of an hour whose ends differ (a change of offset)."""
    def offset(s: int) -> int:
        return s - int((_EPOCH + timedelta(seconds=s)).astimezone(timezone.utc).timestamp())

    out = np.empty(naive.shape[0], np.int64)
    hours = naive // 3600
    order = np.argsort(hours, kind="stable")
    cuts = np.flatnonzero(np.diff(hours[order])) + 1
    for part in np.split(order, cuts):
        secs = naive[part]
        lo, hi = int(secs.min()), int(secs.max())
        first, last = offset(lo), offset(hi)
        if first == last:
            out[part] = first
        else:
            known = {s: offset(s) for s in set(secs.tolist())}
            out[part] = [known[s] for s in secs.tolist()]
    return out
