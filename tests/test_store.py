"""The store and its parser, fed as the follower feeds them, over real files."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tailboard.format import encode
from tailboard.sidecar.series import downsample_m4
from tailboard.sidecar.store import Appended, Delta, Reset, ResetRun, RunsChanged, Store


class Feeder:
    """Appends lines to a real file and hands the new complete lines to the store."""

    def __init__(self, store: Store, root: Path, run_id: str, stream: str = "rank0.jsonl") -> None:
        self.store, self.run_id, self.stream = store, run_id, stream
        self.path = root / run_id / stream
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.offset = 0
        s = os.stat(self.path)
        self.key = f"{s.st_dev}:{s.st_ino}:sig"
        store.open_stream(run_id, stream, str(self.path), self.key)

    def write(self, *records: Any, raw: bytes = b"") -> None:
        data = b"".join(encode(r) for r in records) + raw
        with open(self.path, "ab") as f:
            f.write(data)
        end = self.offset + len(data)
        self.store.ingest(self.run_id, self.stream, data, self.offset, end)
        self.offset = end


def header(**kw: Any) -> dict[str, Any]:
    return {"k": "header", "format": "tailboard", "version": 1, "run": "r", "host": "h", "pid": 7, "rank": 0,
            "world_size": 1, "start": 100.0, "argv": [], **kw}


def scalars(step: int, t: float | None = None, **v: Any) -> dict[str, Any]:
    return {"k": "scalars", "step": step, "t": 1000.0 + step if t is None else t, "v": v}


def test_bad_lines_are_counted_and_the_good_ones_kept(tmp_path: Path) -> None:
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), scalars(0, x=1.0))
    f.write(raw=b'{"k":"scalars","step":1,"v":{"x":\n')  # torn / malformed
    f.write(raw=b"[1, 2, 3]\n")  # not an object
    f.write(raw=b'\xff\xfe{"x": 1}\n')  # invalid UTF-8
    f.write(raw=b'{"k":"scalars","step":2,"t":1,"v":{"x":"hello"}}\n')  # a value of the wrong type
    f.write(raw=b'\x00\x00\x00{"k":"scalars"}\n')  # NUL bytes
    f.write(scalars(3, x=3.0))
    info = store.get_run("r")
    assert info is not None
    assert store.series("r", "x").steps.tolist() == [0, 3]
    assert info.skipped["malformed_json"] == 1
    assert info.skipped["not_object"] == 1
    assert info.skipped["invalid_utf8"] == 1
    assert info.skipped["bad_value"] == 1
    assert info.skipped["nul_bytes"] == 1
    assert info.skipped["total"] == 5


def test_nonfinite_values_are_kept(tmp_path: Path) -> None:
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), scalars(0, x="NaN"), scalars(1, x="Infinity"), scalars(2, x="-Infinity"), scalars(3, x=1.0))
    v = store.series("r", "x").values
    assert math.isnan(v[0]) and v[1] == math.inf and v[2] == -math.inf and v[3] == 1.0


def test_foreign_jsonl_is_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "job", stream="metrics.jsonl")
    f.write({"epoch": 3, "loss": 0.41, "accuracy": 88.2, "learning_rate": 0.001},
            {"epoch": 4, "loss": 0.38, "accuracy": 89.0, "learning_rate": 0.001, "nested": {"a": 2}, "tag": "x"})
    assert store.metrics("job") == ["accuracy", "learning_rate", "loss", "nested/a"]
    s = store.series("job", "loss")
    assert s.steps.tolist() == [3, 4] and s.values.tolist() == [0.41, 0.38]
    # the step going back on a line of the same layout (the job started again) is a new attempt
    f.write({"epoch": 0, "loss": 1.0, "accuracy": 10.0, "learning_rate": 0.001})
    info = store.get_run("job")
    assert info is not None and info.attempts == 2


def test_attempts_follow_purge_semantics(tmp_path: Path) -> None:
    store = Store(tmp_path)
    events: list[Any] = []
    store.add_listener(events.append)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), *[scalars(i, x=float(i)) for i in range(10)])
    f.write(header(), *[scalars(i, x=100.0 + i) for i in range(5, 8)])
    assert any(isinstance(e, ResetRun) and e.reason == "attempt" for e in events)
    s = store.series("r", "x")
    assert s.steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert s.values.tolist()[4:] == [4.0, 105.0, 106.0, 107.0]
    first = store.series("r", "x", attempt=0)
    assert first.steps.tolist() == list(range(10))
    assert store.get_run("r").attempts == 2  # type: ignore[union-attr]


def test_status_transitions(tmp_path: Path) -> None:
    store = Store(tmp_path, stall_after=60)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), scalars(0, t=1000.0, x=1.0))
    assert store.get_run("r").status == "stalled"  # type: ignore[union-attr]  # t=1000 is long ago
    f.write(scalars(1, t=__import__("time").time(), x=1.0))
    assert store.get_run("r").status == "running"  # type: ignore[union-attr]
    f.write({"k": "end", "t": 2000.0, "status": "failed", "reason": "RuntimeError: boom"})
    info = store.get_run("r")
    assert info is not None and info.status == "failed" and info.reason == "RuntimeError: boom"
    store.mark_gone("r")
    assert store.get_run("r").status == "gone"  # type: ignore[union-attr]
    store.open_stream("r", "rank0.jsonl", str(f.path), f.key)
    assert store.get_run("r").status == "failed"  # type: ignore[union-attr]


def test_listeners_get_columnar_deltas_with_cursors(tmp_path: Path) -> None:
    store = Store(tmp_path)
    events: list[Any] = []
    store.add_listener(events.append)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), scalars(0, x=1.0, y=2.0), scalars(1, x=3.0))
    assert any(isinstance(e, RunsChanged) for e in events)
    appended = [e for e in events if isinstance(e, Appended)]
    assert len(appended) == 1
    d = appended[0].delta
    assert d.series["x"].steps.tolist() == [0, 1] and d.series["y"].values.tolist() == [2.0]
    assert d.cursor == store.cursor("r")


def test_since_returns_exactly_what_was_missed(tmp_path: Path) -> None:
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), *[scalars(i, x=float(i)) for i in range(10)])
    c = store.cursor("r")
    f.write(*[scalars(i, x=float(i)) for i in range(10, 15)])
    got = store.since("r", c)
    assert isinstance(got, Delta)
    assert got.series["x"].steps.tolist() == [10, 11, 12, 13, 14]
    assert got.cursor == store.cursor("r")
    again = store.since("r", got.cursor)
    assert isinstance(again, Delta) and again.series == {}
    # a fresh store reading the same file honours the old cursor (cursors survive restarts)
    other = Store(tmp_path)
    other.open_stream("r", "rank0.jsonl", str(f.path), f.key)
    data = f.path.read_bytes()
    other.ingest("r", "rank0.jsonl", data, 0, len(data))
    got2 = other.since("r", c)
    assert isinstance(got2, Delta) and got2.series["x"].steps.tolist() == [10, 11, 12, 13, 14]
    assert isinstance(store.since("r", "garbage"), Reset)
    # a truncated file: the cursor can no longer be honoured
    store.reset_stream("r", "rank0.jsonl", "truncated", f.key)
    assert isinstance(store.since("r", c), Reset)


def test_records_export_pages_exactly(tmp_path: Path) -> None:
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "r")
    f.write(header(), *[scalars(i, x=float(i)) for i in range(25)])
    page = store.records("r", limit=10)
    assert not isinstance(page, Reset) and page.more and len(page.records) == 10
    seen = page.records
    while page.more:
        page = store.records("r", page.cursor, limit=10)
        assert not isinstance(page, Reset)
        seen += page.records
    assert [r["record"].get("step") for r in seen][1:] == list(range(25))


def test_other_ranks_get_a_suffix(tmp_path: Path) -> None:
    store = Store(tmp_path)
    Feeder(store, tmp_path, "r").write(header(), scalars(0, loss=1.0))
    Feeder(store, tmp_path, "r", stream="rank1.jsonl").write(header(rank=1), scalars(0, loss=2.0))
    assert store.metrics("r") == ["loss", "loss@rank1"]
    assert [s["rank"] for s in store.get_run("r").streams] == [0, 1]  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), min_size=1, max_size=400),
    st.integers(min_value=4, max_value=64),
)
def test_m4_keeps_extremes_and_the_latest_point(values: list[float], points: int) -> None:
    v = np.asarray(values, dtype=np.float64)
    s = np.arange(v.shape[0], dtype=np.float64)
    out = downsample_m4(s, v, s * 2, points)
    again = downsample_m4(s, v, s * 2, points)
    assert out.steps.tolist() == again.steps.tolist()  # deterministic
    assert out.steps[-1] == s[-1]  # the latest point
    idx = out.steps.astype(int)
    assert np.all(np.diff(idx) > 0)  # a subset, in order
    np.testing.assert_array_equal(out.values, v[idx])
    finite = v[~np.isnan(v)]
    if finite.size:
        kept = out.values[~np.isnan(out.values)]
        assert kept.min() == finite.min() and kept.max() == finite.max()
    if np.isnan(v).any():
        assert np.isnan(out.values).any()  # a gap stays visible
    if out.downsampled:
        assert len(out) <= points + (points // 4)  # plus at most one NaN marker per bucket
        env_steps, mins, maxs = out.envelope  # type: ignore[misc]
        assert len(env_steps) == len(mins) == len(maxs) <= points // 4
    else:
        assert len(out) == len(v)


def test_m4_respects_a_step_range(tmp_path: Path) -> None:
    s = np.arange(100_000, dtype=np.float64)
    v = np.sin(s / 100)
    v[55_555] = 9.0
    out = downsample_m4(s, v, s, 400, start=50_000, end=60_000)
    assert out.steps[0] >= 50_000 and out.steps[-1] == 60_000
    assert 9.0 in out.values.tolist()
    with pytest.raises(ValueError):
        downsample_m4(s, v, s, 3)


# -- the compact series and its summary ------------------------------------------------------------

from tailboard.sidecar.series import DIRECT_MAX, GROUP, ColumnarSeries  # noqa: E402


def _filled(steps: np.ndarray, values: np.ndarray, parts: int) -> ColumnarSeries:
    col = ColumnarSeries()
    for idx in np.array_split(np.arange(steps.shape[0]), parts):
        col.append(steps[idx], values[idx], steps[idx] * 0.5 + 1.7e9)
    return col


def _same(a: Any, b: Any) -> None:
    for x, y in ((a.steps, b.steps), (a.values, b.values), (a.times, b.times)):
        assert np.array_equal(x, y, equal_nan=True)
    assert (a.total, a.downsampled) == (b.total, b.downsampled)
    assert (a.envelope is None) == (b.envelope is None)
    if a.envelope is not None:
        for x, y in zip(a.envelope, b.envelope):
            assert np.array_equal(x, y, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(DIRECT_MAX + 1, DIRECT_MAX + 5 * GROUP),
    points=st.sampled_from([4, 8, 64, 2000, 4000]),
    nan_rate=st.sampled_from([0.0, 0.01, 0.5, 1.0]),
    stride=st.sampled_from([1.0, 3.0, 0.25]),
    window=st.one_of(st.none(), st.tuples(st.floats(-10, 5e4), st.floats(1e3, 3e5))),
    seed=st.integers(0, 2**16),
    parts=st.integers(1, 9),
)
def test_summary_downsample_equals_the_full_scan(
    n: int, points: int, nan_rate: float, stride: float, window: Any, seed: int, parts: int
) -> None:
    """Answered from the group summary (plus raw points at bucket edges), the downsample is the very
    same as the full scan, ties, NaN and infinities included."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n) * stride + 7
    values = np.round(rng.standard_normal(n), 1)  # many ties
    values[rng.random(n) < nan_rate] = np.nan
    values[rng.integers(0, n, 3)] = np.inf
    values[rng.integers(0, n, 3)] = -np.inf
    col = _filled(steps, values, parts)
    start, end = (None, None) if window is None else (window[0], window[0] + window[1])
    _same(col.downsample(points, start=start, end=end),
          downsample_m4(steps, values, steps * 0.5 + 1.7e9, points, start=start, end=end))


def test_series_memory_is_20_bytes_a_point_after_compact() -> None:
    n = 1_000_000
    col = _filled(np.arange(n, dtype=np.float64) + 5, np.sin(np.arange(n)), 37)
    assert col.nbytes() / n <= 24.0  # before compact: growth slack
    col.compact()
    assert col.nbytes() / n < 20.1
    assert np.array_equal(col.steps, np.arange(n) + 5.0) and col.steps.dtype == np.float64


def test_fractional_or_far_apart_steps_widen_without_loss() -> None:
    col = ColumnarSeries()
    col.append([1, 2, 3], [1.0, 2.0, 3.0], [0, 0, 0])
    col.append([3.5, 2**40], [4.0, 5.0], [0, 0])
    assert col.steps.tolist() == [1, 2, 3, 3.5, 2**40]
    assert col.values.tolist() == [1, 2, 3, 4, 5]
    assert col.sorted  # appended in order: range queries may bisect
    col.append([2.5], [6.0], [0])  # a step going back is kept where it came, and remembered
    assert col.steps.tolist() == [1, 2, 3, 3.5, 2**40, 2.5] and not col.sorted


def test_store_answers_big_queries_from_the_summary(tmp_path: Path) -> None:
    store = Store(tmp_path)
    feeder = Feeder(store, tmp_path, "big")
    n = 200_000
    lines = b"".join(b'{"k":"scalars","step":%d,"t":%d,"v":{"x":%r}}\n' % (i, i, math.sin(i / 999)) for i in range(n))
    feeder.write(raw=lines)
    store.set_progress(len(lines), len(lines), True)  # compacts
    got = store.series("big", "x", points=2000, start=1000, end=150_000)
    s = np.arange(n, dtype=np.float64)
    _same(got, downsample_m4(s, np.sin(s / 999), s, 2000, start=1000, end=150_000))


def test_idle_runs_are_evicted_and_read_again_exactly(tmp_path: Path) -> None:
    store = Store(tmp_path, max_points=25_000, evict_idle=0.0, ingest_idle=0.0)
    feeders = {}
    for r in range(5):
        f = feeders[r] = Feeder(store, tmp_path, f"sweep/r{r}")
        f.write({"k": "header", "format": "tailboard", "version": 1, "pid": r})
        f.write(*({"k": "scalars", "step": i, "t": 1e9 + i, "v": {"x": i * r, "y": -i}} for i in range(5000)))
        f.write({"k": "text", "step": 1, "name": "note", "text": "hi"}, raw=b"garbage\n")
    before = {r.id: (r.metrics, r.points, r.skipped, r.records, r.last_step) for r in store.runs()}
    expect = {rid: store.series(rid, "x").values.copy() for rid in before}
    store.tick()
    assert store.evictions >= 2
    resident = sum(store._runs[rid].evicted is None for rid in before)  # noqa: SLF001
    assert resident <= 2
    # the run list still shows every run as it was
    assert {r.id: (r.metrics, r.points, r.skipped, r.records, r.last_step) for r in store.runs()} == before
    # asking for an evicted run reads it again: the same points, texts and skips
    for rid, values in expect.items():
        assert np.array_equal(store.series(rid, "x").values, values)
        assert store.texts(rid)["texts"] == ["hi"]
    assert store.reloads >= 2
    assert {r.id: (r.metrics, r.points, r.skipped, r.records, r.last_step) for r in store.runs()} == before
    # records appended to an evicted run land after what was there: none lost, none twice
    store.tick()
    victim = next(rid for rid in before if store._runs[rid].evicted is not None)  # noqa: SLF001
    r = int(victim[-1])
    feeders[r].write(*({"k": "scalars", "step": i, "t": 1e9 + i, "v": {"x": i * r, "y": -i}} for i in range(5000, 5100)))
    got = store.series(victim, "x")
    assert got.steps.tolist() == list(range(5100)) and got.values.tolist() == [i * r for i in range(5100)]


def test_live_or_rotated_runs_stay_resident(tmp_path: Path) -> None:
    store = Store(tmp_path, max_points=10, evict_idle=0.0, ingest_idle=3600.0)
    f = Feeder(store, tmp_path, "live")
    f.write(*({"k": "scalars", "step": i, "v": {"x": i}} for i in range(100)))
    store.tick()
    assert store.evictions == 0 and store._runs["live"].evicted is None  # noqa: SLF001


def test_records_arriving_live_keep_a_run_running_whatever_their_times(tmp_path: Path) -> None:
    """A replay of old logs (or a trainer whose clock is off) appends records stamped long ago: the
    run is alive while they arrive; during the catch-up only the records' own times count."""
    import time

    store = Store(tmp_path, stall_after=60.0)
    old = time.time() - 86_400.0
    backlog = Feeder(store, tmp_path, "backlog")
    backlog.write({"k": "scalars", "step": 0, "t": old, "v": {"x": 1.0}})
    store.set_progress(1, 1, True)  # the catch-up is done; what comes now arrives live
    live = Feeder(store, tmp_path, "replayed")
    live.write({"k": "scalars", "step": 0, "t": old, "v": {"x": 1.0}})
    store.tick()
    status = {r.id: r.status for r in store.runs()}
    assert status == {"backlog": "stalled", "replayed": "running"}
    store.tick(time.time() + 61.0)  # and once nothing arrives any more, it stalls
    assert {r.id: r.status for r in store.runs()}["replayed"] == "stalled"


def test_a_record_kind_is_declared_in_one_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store is generic over kinds.KINDS: declaring a kind there is all it takes for runs to
    hold it, list it (in RunInfo and /api/runs) and answer it, eviction and re-reading included."""
    from tailboard.sidecar.store.kinds import KINDS, NamedRecords

    monkeypatch.setitem(KINDS, "vector", NamedRecords("vector", "arrays", (("steps", "step"), ("v", "v"))))
    store = Store(tmp_path, max_points=0, evict_idle=0.0, ingest_idle=0.0)
    f = Feeder(store, tmp_path, "r")
    f.write({"k": "scalars", "step": 0, "t": 1.0, "v": {"x": 1.0}},
            {"k": "vector", "step": 0, "t": 1.0, "name": "grad", "v": [1.0, 2.0]},
            {"k": "vector", "step": 1, "t": 2.0, "name": "grad", "v": [3.0]})
    info = store.get_run("r")
    assert info is not None and info.to_json()["arrays"] == ["grad"] and "vectors" not in info.to_json()
    assert store.kept("vector", "r", "grad") == {"total": 2, "steps": [0, 1], "v": [[1.0, 2.0], [3.0]]}
    store.tick()  # over max_points: evicted, then read again on the next question
    assert store.evictions == 1
    assert store.get_run("r").to_json()["arrays"] == ["grad"]  # type: ignore[union-attr]
    assert store.kept("vector", "r", "grad", limit=1)["v"] == [[3.0]]  # the latest is kept
    assert store.reloads == 1


def test_resume_of_a_stream_without_steps_is_exact(tmp_path: Path) -> None:
    """Lines without a step key are numbered by their place in the stream; a resume from a cursor
    numbers them as the store does (it once started again from 0)."""
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "plain", stream="metrics.jsonl")
    f.write(*({"loss": float(i)} for i in range(10)))
    cursor = store.cursor("plain")
    f.write(*({"loss": float(i)} for i in range(10, 13)))
    got = store.since("plain", cursor)
    assert isinstance(got, Delta)
    assert got.series["loss"].steps.tolist() == [10.0, 11.0, 12.0]
    assert store.series("plain", "loss").steps.tolist() == [float(i) for i in range(13)]


def test_records_the_server_could_not_send_again_are_counted_not_kept(tmp_path: Path) -> None:
    store = Store(tmp_path)
    f = Feeder(store, tmp_path, "odd", stream="metrics.jsonl")
    deep = b'{"k":"config","config":{"x":' + b"[" * 400 + b"1" + b"]" * 400 + b"}}\n"  # orjson reads 1,024
    f.write({"step": -1e300, "loss": 1.0}, raw=deep)  # levels and writes 254
    f.write({"k": "config", "config": {"lr": 0.1}})
    import orjson

    from tailboard.sidecar import protocol as P

    runs = orjson.loads(P.dumps([r.to_json() for r in store.runs()]))  # once a 500 for every run
    assert runs[0]["last_step"] == -1e300 and runs[0]["skipped"]["too_deep"] == 1
    assert orjson.loads(P.dumps(store.run_detail("odd")))["config"] == {"lr": 0.1}


def test_a_header_alone_starts_no_attempt_whatever_the_chunks(tmp_path: Path) -> None:
    header = {"k": "header", "format": "tailboard", "version": 1, "start": 1.0}
    whole, pieces = Store(tmp_path), Store(tmp_path)
    Feeder(whole, tmp_path / "w", "r").write(header, header, {"k": "scalars", "step": 0, "t": 1.0, "v": {"x": 1.0}})
    p = Feeder(pieces, tmp_path / "p", "r")
    p.write(header)
    p.write(header)
    p.write({"k": "scalars", "step": 0, "t": 1.0, "v": {"x": 1.0}})
    assert whole.get_run("r").attempts == pieces.get_run("r").attempts == 1  # type: ignore[union-attr]


def _m4_by_definition(s: np.ndarray, v: np.ndarray, points: int, start: float | None,
                      end: float | None) -> list[int]:
    """The indices M4 keeps, bucket by bucket as its docstring defines them (a loop: slow, plain)."""
    lo = 0 if start is None else int(np.searchsorted(s, start, side="left"))
    hi = len(s) if end is None else int(np.searchsorted(s, end, side="right"))
    if hi - lo <= points:
        return list(range(lo, hi))
    buckets = points // 4
    a = float(s[lo]) if start is None else float(start)
    b = float(s[hi - 1]) if end is None else float(end)
    if b <= a:
        b = a + 1.0
    edges = a + (b - a) * np.arange(1, buckets, dtype=np.float64) / buckets
    bounds = [0, *np.searchsorted(s[lo:hi], edges, side="left").tolist(), hi - lo]
    keep: set[int] = set()
    for b0, b1 in zip(bounds, bounds[1:]):
        if b1 <= b0:
            continue
        idx = list(range(lo + b0, lo + b1))
        real = [i for i in idx if not math.isnan(v[i])]
        keep |= {idx[0], idx[-1]}
        if real:
            keep.add(min(real, key=lambda i: (v[i], i)))
            keep.add(max(real, key=lambda i: (v[i], -i)))
        nans = [i for i in idx if math.isnan(v[i])]
        if nans:
            keep.add(nans[0])
    return sorted(keep)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, 1.0, -1.0])),
             min_size=1, max_size=600),
    st.lists(st.integers(0, 3), min_size=1, max_size=600),
    st.integers(min_value=4, max_value=80),
    st.one_of(st.none(), st.floats(-50, 700)),
    st.one_of(st.none(), st.floats(-50, 700)),
)
def test_m4_keeps_what_its_definition_keeps(values: list[float], gaps: list[int], points: int,
                                            start: float | None, end: float | None) -> None:
    """Buckets of any size (steps repeat or jump; infinities, NaN runs, ties): the points kept, and
    the envelope's smallest and largest values, are those the per-bucket definition gives."""
    v = np.asarray(values, dtype=np.float64)
    s = np.cumsum([gaps[i % len(gaps)] for i in range(len(v))]).astype(np.float64)
    if start is not None and end is not None and end < start:
        start, end = end, start
    out = downsample_m4(s, v, s * 2, points, start=start, end=end)
    want = _m4_by_definition(s, v, points, start, end)
    assert out.steps.tolist() == s[want].tolist()
    np.testing.assert_array_equal(out.values, v[want])
    if out.downsampled:
        _, mins, maxs = out.envelope  # type: ignore[misc]
        kept = v[want]
        real = kept[~np.isnan(kept)]
        if real.size:
            assert np.nanmin(mins) == real.min() and np.nanmax(maxs) == real.max()


def test_the_last_step_is_the_latest_attempt_s_whatever_the_chunks(tmp_path: Path) -> None:
    """A run resumed from an earlier step: its last step is the new attempt's latest, however the
    tail cut the file (it stayed at the old attempt's largest when the new header came alone)."""
    import tailboard

    with tailboard.init(tmp_path / "r") as run:
        for i in range(100):
            run.log({"loss": 1.0 / (i + 1)}, step=i)
    with tailboard.init(tmp_path / "r", config={"lr": 0.1}) as again:  # resumed at step 3, a config after its header
        for i in range(3, 11):
            again.log({"loss": 0.1}, step=i)
    lines = (tmp_path / "r" / "rank0.jsonl").read_bytes().splitlines(keepends=True)
    assert b'"config"' in lines[-10] or any(b'"config"' in line for line in lines[-12:])

    def last_step(cuts: list[int]) -> tuple[Any, ...]:
        store = Store(tmp_path)
        store.open_stream("r", "rank0.jsonl", str(tmp_path / "r" / "rank0.jsonl"), "key")
        at = 0
        seen = []
        for a, b in zip([0, *cuts], [*cuts, len(lines)]):
            piece = b"".join(lines[a:b])
            store.ingest("r", "rank0.jsonl", piece, at, at + len(piece))
            at += len(piece)
            seen.append(store.get_run("r").last_step)  # type: ignore[union-attr]
        info = store.get_run("r")
        assert info is not None
        return info.last_step, info.attempts, seen

    assert last_step([])[:2] == (10, 2)
    header = next(i for i, line in enumerate(lines) if i and b'"header"' in line)
    for cuts in ([header], [header, header + 1], [header - 1, header + 1], list(range(1, len(lines)))):
        got, attempts, seen = last_step(cuts)
        assert (got, attempts) == (10, 2), cuts
        assert all(s is None or s <= 99 for s in seen) and seen[-1] == 10
        after = [s for a, s in zip([0, *cuts], seen) if a >= header]  # pieces from the new header on
        assert all(s is None or s <= 10 for s in after), (cuts, seen)


def test_points_whose_step_has_no_place_on_an_axis_are_counted_not_kept(tmp_path: Path) -> None:
    """The store's own check behind the readers': a parsed chunk (as a parse worker hands one over)
    holding steps of NaN or +-Infinity keeps its other points and counts those as ``bad_step``; the
    run's last step stays a number."""
    from tailboard.sidecar.ingest import Parsed

    store = Store(tmp_path)
    store.open_stream("run", "a.log", str(tmp_path / "a.log"), "1:2:3", reader="text")
    _, state = store.parse_state("run", "a.log")
    steps = np.array([0.0, math.inf, 2.0, math.nan, -math.inf, 3.0])
    parsed = Parsed(segments=[{"loss": (steps, np.arange(6.0), np.full(6, 1.7e9)),
                               "acc": (steps[:3], np.arange(3.0), np.full(3, 1.7e9))}],
                    records=6, started=True, last_step=3.0, last_time=1.7e9)
    store.ingest_parsed("run", "a.log", parsed, state, 0, 60)
    loss, acc = store.series("run", "loss"), store.series("run", "acc")
    assert loss.steps.tolist() == [0.0, 2.0, 3.0] and loss.values.tolist() == [0.0, 2.0, 5.0]
    assert acc.steps.tolist() == [0.0, 2.0] and acc.values.tolist() == [0.0, 2.0]
    info = store.get_run("run")
    assert info is not None and info.skipped == {"total": 4, "bad_step": 4} and info.last_step == 3.0
    off = Parsed(segments=[{"loss": (np.array([math.inf]), np.array([9.0]), np.array([1.7e9]))}],
                 records=1, started=True, last_step=math.inf, last_time=1.7e9)
    store.ingest_parsed("run", "a.log", off, state, 60, 80)
    info = store.get_run("run")
    assert info is not None and info.skipped == {"total": 5, "bad_step": 5} and info.last_step == 3.0
    assert store.series("run", "loss").steps.tolist() == [0.0, 2.0, 3.0]
