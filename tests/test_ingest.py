"""The chunk parser: its fast path for the writer's own layout gives exactly what the general path
gives, for any mix of lines, and is chunking-invariant."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from tailboard.format import encode
from tailboard.sidecar import ingest
from tailboard.sidecar.ingest import Parsed, parse_chunk

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
    assert (a.records, a.last_step, a.last_time, a.native) == (b.records, b.last_step, b.last_time, b.native)


def scalars(step: int, values: dict[str, Any], t: float | None = 1.7e9, late_t: bool = False) -> bytes:
    """A scalars record in the writer's key order (or with the time last, which is valid too)."""
    rec: dict[str, Any] = {"k": "scalars", "step": step}
    if t is not None and not late_t:
        rec["t"] = t + step
    rec["v"] = values
    if t is not None and late_t:
        rec["t"] = t + step
    return encode(rec)


number = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60),
    st.sampled_from([0.1, -0.0, 1e-300, 1e300, 123456789.125]),
)
odd_value = st.sampled_from([True, False, None, "NaN", "Infinity", "-Infinity", "1.5", "x", [1], {"a": 1}])


@st.composite
def line(draw: Any, step: int) -> bytes:
    kind = draw(st.sampled_from(["same"] * 8 + ["other_names", "odd", "header", "text", "bad", "foreign", "raw"]))
    names = NAMES[:3]
    if kind == "same":
        return scalars(step, {n: draw(number) for n in names}, late_t=draw(st.sampled_from([False] * 5 + [True])))
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
