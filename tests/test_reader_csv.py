"""The CSV reader: Lightning's real CSVLogger followed live through its rewrites (no point lost or
doubled), any chunking gives what one whole read gives, another history at the same path is a new
attempt, and malformed input is counted, never raised."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from readerkit import Points, keep
from tailboard.sidecar.ingest import Parsed
from tailboard.sidecar.readers import csvlog
from tailboard.sidecar.readers.csvlog import CsvReader
from tailboard.sidecar.tail import Chunk, FileTail, Reset
from trainerkit import lightning_fit


def read(reader: CsvReader, data: bytes, cuts: list[int] = (), now: float = 0.0) -> tuple[list[Points], dict[str, int], int]:
    """Feed ``data`` split at ``cuts`` as a tail would: bytes held until ``complete`` says a record ends."""
    state, buf, attempts, skipped, records = reader.new_state(), b"", [{}], {}, 0
    bounds = sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]
    at = 0
    for b in bounds:
        buf += data[at:b]
        at = b
        n = reader.complete(buf)
        if n:
            parsed, state = reader.decode(buf[:n], state, now=now)
            buf = buf[n:]
            keep(attempts, parsed)
            records += parsed.records
            for k, v in parsed.skipped.items():
                skipped[k] = skipped.get(k, 0) + v
    return attempts, skipped, records


class Follow:
    """The wiring's contract, with the real tail: chunks buffered up to the reader's record ends; on
    a reset the state goes through ``rewound`` and the points already kept stay."""

    def __init__(self, reader: CsvReader, path: Path) -> None:
        self.reader, self.tail = reader, FileTail(str(path))
        self.state, self.buf = reader.new_state(), b""
        self.attempts: list[Points] = [{}]
        self.skipped: dict[str, int] = {}
        self.resets = 0

    def poll(self) -> None:
        for ev in self.tail.read():
            if isinstance(ev, Reset):
                self.state, self.buf = self.reader.rewound(self.state), b""
                self.resets += 1
            elif isinstance(ev, Chunk):
                self.buf += ev.data
                n = self.reader.complete(self.buf)
                if n:
                    parsed, self.state = self.reader.decode(self.buf[:n], self.state, now=0.0)
                    self.buf = self.buf[n:]
                    keep(self.attempts, parsed)
                    for k, v in parsed.skipped.items():
                        self.skipped[k] = self.skipped.get(k, 0) + v


def oracle(text: str) -> Points:
    """The points of a Lightning metrics.csv by the csv module: every filled cell but the step."""
    out: Points = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        for name, cell in row.items():
            if cell and name != "step":
                out.setdefault(name, []).append((float(row["step"]), float(cell)))
    return out


def test_lightning_csvlogger_followed_live_through_its_rewrites(tmp_path: Path) -> None:
    """The real CSVLogger rewrites metrics.csv whole when a metric first appears (here val_loss at
    the end of epoch 0 and late_metric from epoch 1); the file is followed while training writes it."""
    pytest.importorskip("lightning")
    follows: list[Follow] = []

    def poll(trainer: Any) -> None:
        path = Path(trainer.logger.log_dir) / "metrics.csv"
        if not follows and path.exists():
            follows.append(Follow(CsvReader(), path))
        for f in follows:
            f.poll()

    path = lightning_fit(tmp_path, epochs=3, samples=64, flush_every=3, log_every=2, on_batch=poll)
    (f,) = follows
    f.poll()

    raw = path.read_bytes()
    assert b"\r\n" in raw and raw.startswith(b"epoch,late_metric,step,train_loss,val_loss")
    assert f.resets >= 2  # each new metric rewrote the file under the tail
    assert len(f.attempts) == 1 and f.skipped == {}
    want = oracle(raw.decode())
    assert {k: sorted(v) for k, v in f.attempts[0].items()} == {k: sorted(v) for k, v in want.items()}
    assert len(want["val_loss"]) == 3 and len(want["late_metric"]) == 8
    # and read once, whole, the file gives the same
    whole, _, records = read(CsvReader(), raw)
    assert whole == f.attempts and records == raw.count(b"\n") - 1


def test_rewrite_with_a_new_column_emits_only_new_rows(tmp_path: Path) -> None:
    """Lightning's rewrite, by hand and in every way a file can be rewritten: truncated and written
    in place, or written to a temporary file renamed over it."""
    path = tmp_path / "metrics.csv"
    rows = [{"step": i, "loss": 1.0 / (i + 1)} for i in range(5)]

    def write(fields: list[str], rows: list[dict[str, Any]], how: str) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
        if how == "rename":
            (tmp_path / "tmp").write_text(buf.getvalue(), newline="")
            os.replace(tmp_path / "tmp", path)
        else:
            path.write_text(buf.getvalue(), newline="")

    write(["loss", "step"], rows, "truncate")
    f = Follow(CsvReader(), path)
    f.poll()
    rows += [{"step": 5, "loss": 0.1, "acc": 0.5}]
    write(["acc", "loss", "step"], rows, "truncate")
    f.poll()
    rows += [{"step": 6, "loss": 0.05, "acc": 0.6, "val": 2.0}]
    write(["acc", "loss", "step", "val"], rows, "rename")
    f.poll()
    assert f.resets == 2
    assert f.attempts == [{
        "loss": [(float(i), 1.0 / (i + 1)) for i in range(5)] + [(5.0, 0.1), (6.0, 0.05)],
        "acc": [(5.0, 0.5), (6.0, 0.6)],
        "val": [(6.0, 2.0)],
    }]


def test_another_history_at_the_same_path_is_a_new_attempt(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    path.write_bytes(b"step,loss\n0,1.0\n1,0.5\n2,0.25\n")
    f = Follow(CsvReader(), path)
    f.poll()
    # another run: its first row differs, every row of it is new
    path.write_bytes(b"step,loss,acc\n0,2.0,0.1\n1,1.5,0.2\n")
    f.poll()
    assert f.attempts == [{"loss": [(0.0, 1.0), (1.0, 0.5), (2.0, 0.25)]},
                          {"loss": [(0.0, 2.0), (1.0, 1.5)], "acc": [(0.0, 0.1), (1.0, 0.2)]}]
    # then it grows: appended rows continue the new attempt
    with path.open("ab") as fh:
        fh.write(b"2,1.0,0.3\n")
    f.poll()
    assert f.attempts[1]["loss"][-1] == (2.0, 1.0) and len(f.attempts) == 2
    # the same start, another middle: seen only at the last row known, the rows before it counted
    path.write_bytes(b"step,loss,acc\n0,2.0,0.1\n1,9.9,0.2\n2,1.0,0.3\n3,0.9,0.4\n")
    f.poll()
    assert f.skipped == {"rewritten": 2}
    assert f.attempts[2] == {"loss": [(2.0, 1.0), (3.0, 0.9)], "acc": [(2.0, 0.3), (3.0, 0.4)]}


def test_a_rewrite_seen_half_written_waits_for_its_rows(tmp_path: Path) -> None:
    """The tail may read a rewrite before all its rows are there: the rows checked so far are
    remembered and the check ends where the history does."""
    r = CsvReader()
    state = r.new_state()
    _, state = r.decode(b"step,loss\n0,1\n1,2\n2,3\n", state, now=0.0)
    state = r.rewound(state)
    got = []
    for part in (b"loss,step,x\n1,0,\n", b"2,1,\n", b"3,2,\n4,3,7\n"):
        parsed, state = r.decode(part, state, now=0.0)
        got.append((len(parsed.segments), {k: list(v[1]) for k, v in parsed.segments[0].items()}))
    assert got == [(1, {}), (1, {}), (1, {"loss": [4.0], "x": [7.0]})]


def test_what_a_cell_holds() -> None:
    data = (
        "\ufeffStep,epoch,time,loss,note,acc\r\n"
        '0,0,2024-01-01T00:00:00Z,NaN,"a, b",\r\n'
        "1,0,1704067201.5,-Infinity,x,inf\r\n"
        '2,0,0.25,1e-3,"multi\r\nline",NA\r\n'
        ",1,,2,,N/A\r\n"
        "3,1,1704067203000,+1.5,,  \r\n"
    ).encode()
    (got,), skipped, records = read(CsvReader(), data, now=7.0)
    assert skipped == {} and records == 5
    assert got == {
        "epoch": [(0.0, 0.0), (1.0, 0.0), (2.0, 0.0), (3.0, 1.0)],  # a metric beside Step; the step where Step is empty
        "loss": [(0.0, "nan"), (1.0, -math.inf), (2.0, 1e-3), (1.0, 2.0), (3.0, 1.5)],
        "acc": [(1.0, math.inf)],
        "time": [(2.0, 0.25)],  # a duration, not a wall time
    }
    r = CsvReader()
    parsed, _ = r.decode(data, r.new_state(), now=7.0)
    _, _, t = parsed.segments[0]["loss"]
    assert list(t) == [1704067200.0, 1704067201.5, 7.0, 7.0, 1704067203.0]
    assert len(parsed.segments) == 1


def test_the_wall_clock_is_the_rule_of_json_lines() -> None:
    """``format.absolute_time`` decides, as for JSON lines: the first TIME_KEYS column (in that
    order, not the header's) holding a plausible absolute time is the row's wall clock, a time
    column's absolute time is no metric and its duration is; ISO dates outside the plausible years,
    or of a year no Unix time holds, are no wall clock and no error."""
    data = (
        b"step,timestamp,time,loss\n"
        b"0,1704067200,0.41,1\n"  # time: a duration, a metric; timestamp: the wall clock
        b"1,1704067299,1704067201500,2\n"  # both absolute: time comes first in TIME_KEYS (ms here)
        b"2,1999-12-31T23:00:00Z,0.5,3\n"  # before 2001-09: no wall clock
        b"3,9999-12-31T23:59:59+00:00,0.5,4\n"  # after 5138: none either
        b"4,2024-01-01T00:00:05Z,,5\n"
        b"5,0001-01-01T00:00:00,,6\n"  # local time of year 1: no Unix time (datetime raises)
    )
    (got,), skipped, records = read(CsvReader(), data, now=7.0)
    assert skipped == {} and records == 6
    assert got == {"time": [(0.0, 0.41), (2.0, 0.5), (3.0, 0.5)],
                   "loss": [(float(i), float(i + 1)) for i in range(6)]}
    r = CsvReader()
    parsed, _ = r.decode(data, r.new_state(), now=7.0)
    assert list(parsed.segments[0]["loss"][2]) == [1704067200.0, 1704067201.5, 7.0, 7.0, 1704067205.0, 7.0]


def test_steps_going_back_start_a_new_attempt_and_rows_without_steps_are_numbered() -> None:
    (a, b), _, _ = read(CsvReader(), b"step,loss\n0,1\n5,2\n10,3\n0,4\n5,5\n")
    assert a == {"loss": [(0.0, 1.0), (5.0, 2.0), (10.0, 3.0)]} and b == {"loss": [(0.0, 4.0), (5.0, 5.0)]}
    (c,), _, _ = read(CsvReader(), b"loss,acc\n1,2\n3,4\n")
    assert c == {"loss": [(0.0, 1.0), (1.0, 3.0)], "acc": [(0.0, 2.0), (1.0, 4.0)]}


def test_header_changes_mid_file_and_bad_rows_are_counted() -> None:
    data = (b"step,loss\n0,1\n1,2,3\n2\n"  # two rows with the wrong number of cells
            b"step,loss,acc\n3,4,0.5\n"  # a writer appending with a new column
            b"4,5,0.6\n\n"  # a blank line is nothing
            b"5,\x00,1\n"  # NUL bytes (a crash's hole)
            b"6,\xff\xfe,1\n")  # not UTF-8
    (got,), skipped, records = read(CsvReader(), data)
    assert skipped == {"wrong_cells": 2, "nul_bytes": 1, "invalid_utf8": 1}
    assert got == {"loss": [(0.0, 1.0), (3.0, 4.0), (4.0, 5.0)], "acc": [(3.0, 0.5), (4.0, 0.6)]}
    assert records == 3


def test_tab_separated_and_huge_fields() -> None:
    (got,), _, _ = read(CsvReader(), b"step\tloss\n1\t0.5\n")
    assert got == {"loss": [(1.0, 0.5)]}
    big = b'step,loss,note\n1,0.5,"' + b"x" * 200_000 + b'"\n2,0.25,y\n'
    (got,), skipped, _ = read(CsvReader(), big)  # over the csv module's field limit
    assert got == {"loss": [(1.0, 0.5), (2.0, 0.25)]} and skipped == {}


def test_claims() -> None:
    r = CsvReader()
    assert r.claims("lightning_logs/version_0/metrics.csv", b"epoch,step,train_loss\r\n0,1,0.5\r\n") == 0.9
    assert r.claims("results.csv", b"lr,acc\n0.1,0.9\n") == 0.6
    assert r.claims("names.csv", b"name,city\nann,oslo\n") == 0.1
    assert r.claims("table.csv", b"1,2,3\n4,5,6\n") == 0.0  # no header row
    assert r.claims("metrics.jsonl", b"step,loss\n") == 0.0


def test_complete_ends_records_outside_quotes_only() -> None:
    r = CsvReader()
    assert r.complete(b"a,b\n1,2") == 4
    assert r.complete(b'a,b\n1,"x\ny') == 4
    assert r.complete(b'a,b\n1,"x\ny"\n2,') == len(b'a,b\n1,"x\ny"\n')
    assert r.complete(b'no newline yet, "quoted"') == 0


NAMES = ["step", "epoch", "loss", "val,acc", 'q"uote', "time", "lr"]
CELLS = st.one_of(
    st.just(""),
    st.integers(-5, 50).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["nan", "NaN", "inf", "-Infinity", "+inf", "NA", "x,y", 'say "hi"', "two\nlines",
                     "1704067200", "2024-01-01 10:00:00", " 3 "]),
)


@st.composite
def csv_files(draw: Any) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator=draw(st.sampled_from(["\r\n", "\n"])),
                   quoting=draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])))
    header = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    w.writerow(header)
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["row"] * 8 + ["bad", "header"]))
        if kind == "header":
            header = header + [n for n in NAMES if n not in header][:1]
            w.writerow(header)
        else:
            size = len(header) + (draw(st.sampled_from([-1, 1])) if kind == "bad" else 0)
            w.writerow(draw(st.lists(CELLS, min_size=size, max_size=size)))
    return buf.getvalue().encode()


@settings(max_examples=200, deadline=None)
@given(data=csv_files(), cuts=st.lists(st.integers(0, 4000), max_size=12))
def test_any_chunking_reads_as_one_whole_read(data: bytes, cuts: list[int]) -> None:
    whole = read(CsvReader(), data)
    chunked = read(CsvReader(), data, cuts)
    assert chunked == whole


@settings(max_examples=200, deadline=None)
@given(data=csv_files(), cut=st.integers(0, 4000))
def test_read_again_after_a_rewrite_nothing_is_doubled_or_lost(data: bytes, cut: int) -> None:
    """The file read up to any point, then rewritten whole with the same rows (the tail's reset):
    the points are those of one read of the final file."""
    r = CsvReader()
    state, attempts = r.new_state(), [{}]
    n = r.complete(data[:cut])
    parsed, state = r.decode(data[:n], state, now=0.0)
    keep(attempts, parsed)
    parsed, state = r.decode(data, r.rewound(state), now=0.0)
    keep(attempts, parsed)
    assert attempts == read(CsvReader(), data)[0]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_any_bytes_are_counted_never_raised(data: bytes, cuts: list[int]) -> None:
    read(CsvReader(), b"step,loss\n" + data, cuts)
    r = CsvReader()
    r.claims("x.csv", data)
    r.decode(data, r.rewound(r.new_state()), now=0.0)


def test_state_is_small_and_picklable() -> None:
    import pickle

    r = CsvReader()
    body = "".join(f"{i},{i * 0.5}\n" for i in range(20_000)).encode()
    _, state = r.decode(b"step,loss\n" + body, r.new_state(), now=0.0)
    assert len(pickle.dumps(state)) < 400
    assert pickle.loads(pickle.dumps(state)) == state
    np.testing.assert_equal(state.emitted, 20_000)


# -- the plain reading (rows of numbers and empty cells read from the bytes) equals the csv module's

#: numbers as JSON spells them, some read by orjson otherwise than as floats (an integer -0)
JSON_CELLS = st.one_of(
    st.just(""),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["-0", "0", "-0.0", "-0e0", "1e-400", "-1e-400", "1E+05", "0.1e1", "18446744073709551616"]),
)
#: numbers that JSON spells otherwise, and empty cells with spaces
FLOAT_CELLS = ["nan", "NaN", "-nan", "inf", "-Infinity", "+inf", "1e400", "-1e400", "-0", " -0", "+1", "+0",
               ".5", "5.", "007", "1_0", " 3 ", "  ", "\t2"]
#: cells the plain reading leaves to the csv module
TEXT_CELLS = ["NA", "null", "-", "x", "e", "true", "1 2", "--1", "\x0c", "x,y", 'say "hi"', "two\nlines", "é",
              "1704067200", "2024-01-01 10:00:00"]
PLAIN_NAMES = ["epoch", "step", "Step", "train/loss", "val/loss", "time", "timestamp", "lr", "e"]
#: raw text between rows: a blank line, lone CRs (each ends a row for the csv module)
RAW = ["\n", "\r\n", "\r", "1\r", "\r\r\n"]


@st.composite
def plain_files(draw: Any) -> list[bytes]:
    """Versions of one file, each rewritten whole with a column more (Lightning's CSVLogger) or
    another history (the same start, other rows): mostly numbers and empty cells, with numbers JSON
    does not spell, text, quotes, rows of another width, headers written again, blank lines and
    lone CRs now and then."""
    rates = (draw(st.sampled_from([0, 0, 20, 300])), draw(st.sampled_from([0, 0, 0, 5, 50])))  # in 1,000
    cell = st.integers(0, 999).flatmap(lambda r: st.sampled_from(FLOAT_CELLS) if r < rates[0] else
                                       st.sampled_from(TEXT_CELLS) if r < rates[0] + rates[1] else JSON_CELLS)
    end = draw(st.sampled_from(["\n", "\r\n"]))
    delim = draw(st.sampled_from([",", ",", ",", "\t"]))
    names = draw(st.lists(st.sampled_from(PLAIN_NAMES), min_size=1, max_size=6, unique=True))
    start = draw(st.sampled_from(["", "", "", "", "\ufeff", "1,2" + end]))  # a BOM, a row before the header
    odd_rows = draw(st.sampled_from([0, 0, 1, 5]))
    rows: list[list[str] | str] = []
    versions = []
    for v in range(draw(st.integers(1, 3))):
        if v and draw(st.integers(0, 3)) == 0:
            rows = rows[: draw(st.integers(0, len(rows)))]
        for _ in range(draw(st.integers(0, 40))):
            kind = draw(st.sampled_from(["row"] * 30 + ["sparse"] * 8 + ["bad", "header", "raw"] * odd_rows))
            if kind == "header":
                rows.append(list(names))
            elif kind == "raw":
                rows.append(draw(st.sampled_from(RAW)))
            elif kind == "sparse":  # Lightning's validation rows: most cells empty
                rows.append([draw(cell) if draw(st.integers(0, 3)) == 0 else "" for _ in names])
            else:
                size = len(names) + (draw(st.sampled_from([-1, 1])) if kind == "bad" else 0)
                rows.append([draw(cell) for _ in range(size)])
        buf = io.StringIO()
        buf.write(start)
        w = csv.writer(buf, delimiter=delim, lineterminator=end)
        w.writerow(names)
        for r in rows:
            if isinstance(r, str):
                buf.write(r)
            else:
                w.writerow(r)
        data = buf.getvalue().encode()
        versions.append(data if draw(st.integers(0, 9)) else data[: -len(end)])  # a last line without its end
        extra = draw(st.sampled_from(["acc", "grad", "time", "val/acc"]))
        if extra not in names:
            rows = [r + [""] if isinstance(r, list) and len(r) == len(names) else r for r in rows]
            names.append(extra)
    return versions


def same_decode(data: bytes, state: Any, now: float = 7.0) -> tuple[Any, bool]:
    """Decode ``data`` both ways and check that they give the same Parsed and state; returns the
    state after and whether the plain reading took the chunk."""
    fast, fast_state = csvlog._decode(data, state, now=now)
    slow, slow_state = csvlog._decode(data, state, now=now, plain=False)
    assert fast_state == slow_state
    assert (fast.records, fast.skipped, fast.started) == (slow.records, slow.skipped, slow.started)
    assert repr((fast.last_step, fast.last_time)) == repr((slow.last_step, slow.last_time))
    assert [list(s) for s in fast.segments] == [list(s) for s in slow.segments]
    for a, b in zip(fast.segments, slow.segments):
        for name in a:
            for x, y in zip(a[name], b[name]):  # steps, values, times: bit for bit (-0.0, NaN)
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    probe = dataclasses.replace(state, last_steps=dict(state.last_steps))
    return fast_state, csvlog._read_plain(data, probe, csvlog._Points(), Parsed(), now)


@settings(max_examples=400, deadline=None)
@given(versions=plain_files(), cuts=st.lists(st.integers(0, 6000), max_size=8), st_=st.data())
def test_plain_reading_equals_the_csv_modules(versions: list[bytes], cuts: list[int], st_: Any) -> None:
    """Any chunking, any rewrite (read again from offset 0 with ``rewound``), an export's
    ``first_read``: every chunk decodes to the same Parsed and state through the bytes as through
    the csv module, or goes through the csv module."""
    r = CsvReader()
    state = r.new_state()
    for n, data in enumerate(versions):
        if n:
            state = r.rewound(state)
        buf, at = b"", 0
        for b in sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]:
            buf += data[at:b]
            at = b
            k = r.complete(buf)
            if k:
                state, took = same_decode(buf[:k], state)
                event(f"plain: {took}")
                buf = buf[k:]
        if buf and st_.draw(st.booleans()):  # an export reads a last line without its end too
            state, _ = same_decode(buf, state)
    same_decode(versions[-1], r.first_read(state))


def test_plain_reading_takes_lightnings_files_and_reads_minus_zero_as_float_does() -> None:
    """Lightning's metrics.csv (sparse validation rows, CRLF) is read from its bytes in every chunk,
    the header's too; an integer -0 is -0.0 as ``float`` reads it, in either reading."""
    rows = ["epoch,step,train/loss,val/loss\r\n"]
    for i in range(300):
        rows.append(f"0,{i},{math.sin(i)!r},\r\n")
        if i % 50 == 49:
            rows.append(f"0,{i},,{math.cos(i)!r}\r\n")
    data = "".join(rows).encode()
    r = CsvReader()
    state, buf = r.new_state(), b""
    for at in range(0, len(data), 1000):
        buf += data[at : at + 1000]
        n = r.complete(buf)
        state, took = same_decode(buf[:n], state)
        assert took
        buf = buf[n:]
    for chunk in (b"step,loss,x\n0,-0,-0\n1,0,x\n",  # a text cell
                  b"step,loss\n0,1\n1\r,2\n",  # a lone CR ends a row: "1", then ",2"
                  b"step,loss\n0,1\n" + b"2," + b"9" * 100_000 + b"\n"):  # a field the csv module refuses
        _, took = same_decode(chunk, r.new_state())
        assert not took  # the csv module reads these chunks
    for chunk in (b"loss\n1\n\n2\n", b"loss\r\n1\r\n\r\n \r\n2\r\n", b"step,loss\n0, 1 \n1,  \n2,-0 \n"):
        _, took = same_decode(chunk, r.new_state())  # blank lines are no rows, a cell of spaces is empty
        assert took
    for plain in (True, False):
        parsed, _ = csvlog._decode(b"step,loss\n0,-0\n1,0\n2,-0.0\n", r.new_state(), now=0.0, plain=plain)
        assert np.signbit(parsed.segments[0]["loss"][1]).tolist() == [True, False, True]
