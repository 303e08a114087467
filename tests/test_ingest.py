"""The chunk parser: its fast path for the writer's own layout gives exactly what the general path
gives, for any mix of lines, and is chunking-invariant; numbers other programs write (out of float
range, bare NaN/Infinity, huge or odd steps) are read exactly, up to the real server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

import tailboard
from tailboard.format import encode
from tailboard.sidecar import ingest
from tailboard.sidecar.ingest import Parsed, parse_chunk
from tailboard.sidecar.server import Server

NAMES = ["loss", "train/acc", "eval/e1.e", "lr", "ünï", "a b"]


def general(data: bytes, **state: Any) -> Parsed:
    """The chunk parsed whole by the general path only."""
    return ingest._parse(data, state["prev_step"], state["next_index"], state["attempt_started"],
                         state["native"], 1.0, False)


def same(a: Parsed, b: Parsed) -> None:
    assert len(a.segments) == len(b.segments)
    for sa, sb in zip(a.segments, b.segments):
        assert sa.keys() == sb.keys()
        for name in sa:
            for x, y in zip(sa[name], sb[name]):
                assert np.array_equal(np.asarray(x, np.float64), np.asarray(y, np.float64), equal_nan=True), name
    assert a.others == b.others
    assert a.skipped == b.skipped
    assert (a.records, a.native, a.started) == (b.records, b.native, b.started)
    for x, y in ((a.last_step, b.last_step), (a.last_time, b.last_time)):
        assert (x is None) == (y is None) and (x is None or same_floats(x, y)), (x, y)


def scalars(step: int, values: dict[str, Any], t: float | None = 1.7e9, late_t: bool = False) -> bytes:
    """A scalars record in the writer's key order (or with the time last, which is valid too)."""
    rec: dict[str, Any] = {"k": "scalars", "step": step}
    if t is not None and not late_t:
        rec["t"] = t + step
    rec["v"] = values
    if t is not None and late_t:
        rec["t"] = t + step
    return encode(rec)


def writer_line(step: bytes, t: bytes, values: list[bytes]) -> bytes:
    """A scalars line in the writer's layout over NAMES[:3], with the number tokens as given."""
    v = b",".join(b'"%s":%s' % (n.encode(), x) for n, x in zip(NAMES[:3], values))
    return b'{"k":"scalars","step":%s,"t":%s,"v":{%s}}\n' % (step, t, v)


number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60),
    st.sampled_from([0.1, -0.0, 1e-300, 1e300, 123456789.125]),
)
#: Steps a foreign log may hold: huge, negative, fractional, -0.0, past 2**53, at the 64-bit edges.
odd_step = st.sampled_from([-1e300, 1e300, 2**53 + 1, -(2**53) - 1, -0.0, 0.5, -7, 2**63, 2**64 - 1,
                            -(2**63), 1e-300])
#: Number tokens as other programs write them: orjson refuses the first six (out of float range, or
#: the bare constants of Python's json module); the others it reads, some only approximately.
TOKENS = [b"1e400", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"1" + b"0" * 400, b"-1e300",
          b"9007199254740993", b"-0.0", b"0.5", b"18446744073709551621", b"-9223372036854775813",
          b"1e-400", b"3", b"-0"]
token = st.sampled_from(TOKENS)
odd_value = st.sampled_from([True, False, None, "NaN", "Infinity", "-Infinity", "1.5", "x", [1], {"a": 1}])


@st.composite
def line(draw: Any, step: int) -> bytes:
    kind = draw(st.sampled_from(["same"] * 8 + ["other_names", "odd", "header", "text", "bad", "foreign", "raw",
                                                 "odd_step", "tokens", "python_json", "image", "image"]))
    names = NAMES[:3]
    if kind == "same":
        return scalars(step, {n: draw(number) for n in names}, late_t=draw(st.sampled_from([False] * 5 + [True])))
    if kind == "odd_step":
        return scalars(draw(odd_step), {n: draw(number) for n in names}, t=None) if draw(st.booleans()) else \
            encode({"k": "scalars", "step": draw(odd_step), "t": 1.7e9, "v": {n: draw(number) for n in names}})
    if kind == "tokens":  # the writer's layout, numbers typed by another program
        return writer_line(draw(token), draw(token), [draw(token) for _ in names])
    if kind == "python_json":
        return b'{"epoch": %s, "loss": %s, "acc": %s}\n' % (draw(token), draw(token), draw(token))
    if kind == "other_names":
        return scalars(step, {n: draw(number) for n in draw(st.permutations(NAMES))[: draw(st.integers(1, 5))]})
    if kind == "odd":
        vals = {n: draw(number) for n in names}
        vals[draw(st.sampled_from(names))] = draw(odd_value)
        return scalars(step, vals)
    if kind == "header":
        return encode({"k": "header", "format": "tailboard", "version": 1, "pid": 1})
    if kind == "text":
        return encode({"k": "text", "step": step, "name": "n", "text": 'a "quoted": {x}'})
    if kind == "image":  # the writer's, or as another program writes one (spaces, no time, odd numbers)
        rec = {"k": "image", "step": draw(st.sampled_from([step, step, 2**53 + 1, "x", None])),
               "t": draw(st.sampled_from([1.7e9 + step, None])), "name": "samples/gen",
               "path": f"media/samples/gen/{step}.png", "w": 28, "h": 28, "c": 1, "bytes": 412}
        return encode(rec) if draw(st.booleans()) else json.dumps(rec).encode() + b"\n"
    if kind == "foreign":
        return orjson.dumps({"epoch": step, "loss": draw(number) if draw(st.booleans()) else 1.0}) + b"\n"
    if kind == "raw":
        # the writer's layout, typed by hand with deviations the fast path must not accept
        return draw(st.sampled_from([
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":1,"train/acc":2,"eval/e1.e":3}}\n' % step,
            b'{"k":"scalars","step":"%d","t":1,"v":{"loss":1,"train/acc":2,"eval/e1.e":3}}\n' % step,
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":1,"train/acc":2,"eval/e1.e":03}}\n' % step,
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":1,"train/acc":2,"eval/e1.e":}}\n' % step,
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":1 2,"train/acc":2,"eval/e1.e":3}}\n' % step,
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":1,"train/acc":2,"eval/e1.e":3},"x":1}\n' % step,
            b'{"k":"scalars","step":%d, "t":1,"v":{"loss":1,"train/acc":2,"eval/e1.e":3}}\n' % step,
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":1,"train/acc":2,"eval/e1\\u002ee":3}}\n' % step,
            b'{"k":"scalars","step":%d,"t":null,"v":{"loss":1,"train/acc":2,"eval/e1.e":3}}\n' % step,
            b'{"k":"scalars","step":%d,"t":1,"v":{"loss":-1e5,"train/acc":2E-3,"eval/e1.e":0.5e+2}}\n' % step,
        ]))
    return draw(st.sampled_from([b'{"k":"scalars","step":1,"t"\n', b"not json\n", b"[1,2]\n", b'{"k":"scalars"}\n']))


@st.composite
def chunk(draw: Any) -> bytes:
    n = draw(st.integers(1, 60))
    start = draw(st.integers(0, 5))
    step = start
    out = []
    for _ in range(n):
        step += draw(st.sampled_from([1, 1, 1, 0, -3]))
        out.append(draw(line(step)))
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(data=chunk(), attempt_started=st.booleans(), native=st.booleans(),
       prev_step=st.one_of(st.none(), st.floats(-5, 100)))
def test_fast_path_equals_the_general_path(data: bytes, attempt_started: bool, native: bool,
                                           prev_step: float | None) -> None:
    state = {"prev_step": prev_step, "next_index": 3, "attempt_started": attempt_started, "native": native}
    same(parse_chunk(data, now=1.0, **state), general(data, **state))


def test_a_writer_backlog_takes_the_fast_path_around_other_records() -> None:
    lines = [encode({"k": "header", "format": "tailboard", "version": 1, "pid": 1})]
    for i in range(500):
        lines.append(scalars(i, {"loss": math.sin(i), "acc": i / 7, "lr": 1e-3}))
        if i % 100 == 0:
            lines.append(encode({"k": "text", "step": i, "name": "n", "text": "hi"}))
    data = b"".join(lines)
    pieces = ingest._runs_of_scalars(data)
    assert [u for _, u in pieces][:4] == [False, True, False, True]
    assert all(ingest._parse_uniform(p) is not None for p, u in pieces if u)
    state = {"prev_step": None, "next_index": 0, "attempt_started": False, "native": False}
    got = parse_chunk(data, now=1.0, **state)
    same(got, general(data, **state))
    assert got.records == 506 and got.native
    assert got.segments[0]["loss"][1].tolist() == [math.sin(i) for i in range(500)]


def read_as_python(tok: bytes) -> float:
    """What a number token means (an integer literal -0 is the integer 0, as JSON readers give it)."""
    return 0.0 if tok == b"-0" else float(tok)


def same_floats(a: Any, b: Any) -> bool:
    """Equal bit for bit (so -0.0 is not 0.0), any NaN equal to any NaN."""
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    x, y = np.where(np.isnan(x), np.nan, x), np.where(np.isnan(y), np.nan, y)
    return x.shape == y.shape and bool((x.view(np.int64) == y.view(np.int64)).all())


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(token, token, st.lists(token, min_size=3, max_size=3)), min_size=1, max_size=20))
def test_numbers_other_programs_write_are_read_as_python_reads_them(rows: list[Any]) -> None:
    data = b"".join(writer_line(s, t, vs) for s, t, vs in rows)
    got = parse_chunk(data, prev_step=None, next_index=0, attempt_started=False, now=1.0)
    # a step of NaN or +-Infinity (or past float range) has no place on an axis: skipped, counted
    off_axis = sum(not math.isfinite(read_as_python(s)) for s, _, _ in rows)
    assert got.skipped == ({"bad_step": off_axis} if off_axis else {})
    rows = [r for r in rows if math.isfinite(read_as_python(r[0]))]
    assert got.records == len(rows)
    if not rows:
        assert all(not len(v[0]) for seg in got.segments for v in seg.values()) and got.last_step is None
        return
    [seg] = got.segments
    assert got.last_step == read_as_python(rows[-1][0])
    for j, name in enumerate(NAMES[:3]):
        steps, values, times = seg[name]
        assert same_floats(steps, [read_as_python(s) for s, _, _ in rows])
        assert same_floats(times, [x if math.isfinite(x) else 1.0 for x in (read_as_python(t) for _, t, _ in rows)])
        assert same_floats(values, [read_as_python(vs[j]) for _, _, vs in rows]), name


def test_a_line_with_out_of_range_numbers_keeps_its_other_metrics() -> None:
    lines = [
        b'{"step": 1, "loss": 1e400, "acc": 0.5}\n',
        (json.dumps({"step": 2, "loss": math.nan, "up": math.inf, "down": -math.inf, "acc": 0.25}) + "\n").encode(),
        b'{"step": 3, "loss": -1e400, "acc": 0.125, "big": 1' + b"0" * 5000 + b"}\n",
        b'{"step": 4, "loss": 2, "acc": 1, "big": 1' + b"0" * 400 + b', "n": NaN}\n',
    ]
    got = parse_chunk(b"".join(lines), prev_step=None, next_index=0, attempt_started=False, now=1.0)
    assert got.skipped == {} and got.records == 4
    [seg] = got.segments
    assert seg["acc"][0].tolist() == [1, 2, 3, 4] and seg["acc"][1].tolist() == [0.5, 0.25, 0.125, 1.0]
    assert same_floats(seg["loss"][1], [math.inf, math.nan, -math.inf, 2.0])
    assert seg["up"][1].tolist() == [math.inf] and seg["down"][1].tolist() == [-math.inf]
    assert seg["big"][1].tolist() == [math.inf, math.inf] and same_floats(seg["n"][1], [math.nan])


def test_the_writers_layout_with_out_of_range_numbers_keeps_its_other_metrics() -> None:
    data = writer_line(b"4", b"1.7e9", [b"1e400", b"2", b"NaN"]) + writer_line(b"5", b"1.7e9", [b"1", b"2", b"3"])
    got = parse_chunk(data, prev_step=None, next_index=0, attempt_started=False, now=1.0)
    assert got.skipped == {}
    assert same_floats(got.segments[0][NAMES[0]][1], [math.inf, 1.0])
    assert same_floats(got.segments[0][NAMES[2]][1], [math.nan, 3.0])


def test_lines_that_are_not_json_stay_malformed() -> None:
    bad = [b'{"loss": NaN\n', b'{"loss": -NaN}\n', b'{"loss": nan}\n', b'{"loss": NaN,}\n',
           b'{"a": "\\ud800", "loss": NaN}\n', b'{"loss": Infinity "x"}\n', b'{"loss": 03, "a": NaN}\n',
           b"[" * 3000 + b"NaN" + b"]" * 3000 + b"\n"]
    data = b"".join(bad) + b'{"a": "\xff", "loss": NaN}\n' + b'{"step": 1, "loss": 0.5}\n'
    got = parse_chunk(data, prev_step=None, next_index=0, attempt_started=False, now=1.0)
    assert got.skipped == {"malformed_json": len(bad), "invalid_utf8": 1}
    assert got.records == 1 and got.segments[0]["loss"][1].tolist() == [0.5]


def test_a_time_that_is_not_finite_counts_as_no_time() -> None:
    data = (writer_line(b"1", b"NaN", [b"1", b"2", b"3"]) + writer_line(b"2", b"1e400", [b"1", b"2", b"3"])
            + b'{"k":"scalars","step":3,"t":-Infinity,"v":{"loss":1}}\n' + b'{"epoch": 4, "time": NaN, "loss": 1}\n'
            + b'{"k":"text","step":5,"t":Infinity,"name":"n","text":"x"}\n')
    got = parse_chunk(data, prev_step=None, next_index=0, attempt_started=False, now=5.0)
    assert got.skipped == {} and got.records == 5
    assert got.segments[0]["loss"][2].tolist() == [5.0] * 4
    assert got.last_time == 5.0


def test_a_header_alone_starts_no_attempt_whatever_the_pieces() -> None:
    header = encode({"k": "header", "format": "tailboard", "version": 1, "pid": 1})
    data = header + b'{"k":"scalars","step":1,"t"\n' + header + scalars(1, {"loss": 1.0})
    state = {"prev_step": None, "next_index": 0, "attempt_started": False, "native": False}
    assert len(ingest._runs_of_scalars(data)) == 4  # parsed piece by piece
    got = parse_chunk(data, now=1.0, **state)
    same(got, general(data, **state))
    assert len(got.segments) == 1 and got.started


async def test_the_server_serves_foreign_numbers_exactly(tmp_path: Path) -> None:
    """Real files, the real server: every metric of every line, steps bit for bit."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "log.jsonl").write_bytes(
        b'{"step": -1e300, "loss": 1.0, "acc": 1e400}\n'
        b'{"step": -0.0, "loss": NaN, "acc": 0.5}\n'
        b'{"step": 0.5, "loss": Infinity, "acc": -Infinity}\n'
        b'{"step": 9007199254740993, "loss": 2, "acc": -1e400}\n'
        b'{"step": 1e300, "loss": 3, "acc": 4}\n'
    )
    server = Server(tmp_path, port=0, token="t")
    await server.start(wait_for_backlog=True)
    try:
        async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": "Bearer t"}) as http:
            got = {m: (await http.get("/api/series", params={"run": "run", "metric": m})).json()
                   for m in ("loss", "acc")}
    finally:
        await server.stop()
    steps = [-1e300, -0.0, 0.5, float(2**53), 1e300]
    assert got["loss"]["values"] == [1.0, "NaN", "Infinity", 2.0, 3.0]
    assert got["acc"]["values"] == ["Infinity", 0.5, "-Infinity", "-Infinity", 4.0]
    for m in ("loss", "acc"):
        assert same_floats(got[m]["steps"], steps), got[m]["steps"]


def test_a_foreign_line_nested_too_deeply_is_counted_not_raised() -> None:
    deep = b'{"a":' * 1020 + b"1" + b"}" * 1020 + b"\n"
    assert orjson.loads(deep)  # valid JSON, within orjson's depth
    got = parse_chunk(deep + b'{"step": 1, "loss": 0.5}\n', prev_step=None, next_index=0,
                      attempt_started=False, now=1.0)
    assert got.skipped == {"bad_value": 1}
    assert got.records == 1 and got.segments[0]["loss"][1].tolist() == [0.5]


def test_the_real_writers_lines_take_the_fast_path(tmp_path: Path) -> None:
    """The layout the fast path reads is the format's (SCALARS_KEYS), and the writer writes it."""
    from tailboard.sidecar.ingest import _parse_uniform

    run = tailboard.init(tmp_path / "r")
    for i in range(100):
        run.log({"loss": 1.0 / (i + 1), "acc": float(i), "lr": 1e-3}, step=i)
    run.finish()
    lines = (tmp_path / "r" / "rank0.jsonl").read_bytes().splitlines(keepends=True)
    scalars = b"".join(line for line in lines if line.startswith(b'{"k":"scalars"'))
    got = _parse_uniform(scalars)
    assert got is not None, "the writer's lines went down the general path"
    names, table = got
    assert names == ["loss", "acc", "lr"] and table.shape == (100, 5)
    assert table[:, 0].tolist() == list(range(100))


def test_a_kind_that_is_not_a_string_is_a_foreign_line_not_a_crash() -> None:
    data = b'{"k": [1], "step": 1, "loss": 0.5}\n{"k": {"a": 1}, "step": 2, "loss": 0.25}\n'
    got = parse_chunk(data, prev_step=None, next_index=0, attempt_started=False, now=1.0)
    assert got.skipped == {} and got.records == 2
    assert got.segments[0]["loss"][1].tolist() == [0.5, 0.25]


def test_a_foreign_step_past_2_53_compares_as_the_fast_path_keeps_it() -> None:
    """2**53 + 1 is stored as 2**53: a foreign line at that step after a scalars line at it is not a
    step going back, in pieces or whole (found by the property test above)."""
    data = (b'{"k":"scalars","step":9007199254740993,"t":1700000000.0,"v":{"loss":0.0,"acc":0.0,"lr":0.0}}\n'
            b'{"epoch": 9007199254740993, "loss": 1e400, "acc": 1e400}\n')
    state = {"prev_step": None, "next_index": 3, "attempt_started": False, "native": False}
    assert len(ingest._runs_of_scalars(data)) == 2
    got = parse_chunk(data, now=1.0, **state)
    same(got, general(data, **state))
    assert len(got.segments) == 1


def test_the_writers_layout_with_bare_nonfinite_tokens_keeps_the_fast_path() -> None:
    rows = [writer_line(b"%d" % i, b"1.7e9", [b"NaN", b"-Infinity", b"1e400"]) for i in range(40)]
    got = ingest._parse_uniform(b"".join(rows))
    assert got is not None
    names, table = got
    assert same_floats(table[:, 2:], [[math.nan, -math.inf, math.inf]] * 40)


def image(step: int, name: str = "img") -> bytes:
    return encode({"k": "image", "step": step, "t": 1.7e9 + step, "name": name, "path": f"media/{name}/{step}.png",
                   "w": 2, "h": 3, "c": 1, "bytes": 70})


def test_images_between_scalars_are_records_of_their_attempt_in_file_order() -> None:
    """An image is a kind of the format: kept in place among the writer's lines (never its sizes as
    metrics), in the attempt it was written in, and its step is the chunk's last when it comes last."""
    header = encode({"k": "header", "format": "tailboard", "version": 1, "pid": 1})
    data = (header + scalars(0, {"loss": 1.0}) + image(0) + scalars(1, {"loss": 0.5}) + image(1, "b")
            + header + image(1) + scalars(1, {"loss": 0.7}) + image(2))
    state = {"prev_step": None, "next_index": 0, "attempt_started": False, "native": False}
    got = parse_chunk(data, now=1.0, **state)
    same(got, general(data, **state))
    assert [(seg, rec["k"], rec["name"], rec["step"]) for seg, rec in got.others if rec["k"] == "image"] == [
        (0, "image", "img", 0), (0, "image", "b", 1), (1, "image", "img", 1), (1, "image", "img", 2)]
    assert [set(seg) for seg in got.segments] == [{"loss"}, {"loss"}]
    assert got.records == 9 and got.last_step == 2.0 and got.last_time == 1.7e9 + 2 and got.started
    # an image alone after the records of an attempt is one of its records: a header after it restarts
    first = parse_chunk(header + image(5), now=1.0, **state)
    assert first.started and first.last_step == 5.0 and first.others[-1] == (0, orjson.loads(image(5)))
