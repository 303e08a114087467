"""JSON lines that tailboard did not write: real files through the reader and a real Store. Steps
from several counters, discriminators, durations and wall clocks, attempts only on real evidence,
chunk boundaries anywhere, and the fast paths giving exactly the points of one object at a time."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from tailboard.sidecar.ingest import Parsed
from tailboard.sidecar.readers import jsonl
from tailboard.sidecar.readers.jsonl import JsonlReader, JsonlState
from tailboard.sidecar.store import Store

FAST = [pytest.param(True, id="fast"), pytest.param(False, id="one-by-one")]


def dumps(*records: Any) -> bytes:
    """Lines as Python's json module writes them (spaces, bare NaN / Infinity)."""
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def reader(fast: bool) -> JsonlReader:
    """The reader as shipped (``fast``), or reading one object at a time (the reference)."""
    r = JsonlReader()
    use(r, fast)
    return r


def use(r: Any, fast: bool) -> None:
    """Switch a JsonlReader (or a store's) to one object at a time unless ``fast``."""
    if isinstance(r, Store):
        r = r.readers["jsonl"]
    r.fast = fast


def decode(data: bytes, fast: bool, cuts: Sequence[int] = (), now: float = 5.0,
           state: JsonlState | None = None) -> tuple[list[Parsed], JsonlState]:
    """Decode ``data`` in pieces cut after the lines numbered in ``cuts``, the state carried."""
    r = reader(fast)
    lines = data.splitlines(keepends=True)
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(lines)}), len(lines)]
    st = r.new_state() if state is None else state
    out = []
    for a, b in pairwise(bounds):
        parsed, st = r.decode(b"".join(lines[a:b]), st, now=now)
        out.append(parsed)
    return out, st


def comparable(x: float) -> Any:
    """A float that == compares, NaN included."""
    return "nan" if math.isnan(x) else float(x)


def attempts(parsed: list[Parsed]) -> list[dict[str, tuple[list[float], list[Any], list[float]]]]:
    """Per attempt, per metric: steps, values and times (``comparable``), as the store keeps them."""
    out: list[dict[str, Any]] = [{}]
    for p in parsed:
        for i, seg in enumerate(p.segments):
            if i:
                out.append({})
            for name, (s, v, t) in seg.items():
                steps, values, times = out[-1].setdefault(name, ([], [], []))
                steps.extend(map(comparable, s))
                values.extend(map(comparable, v))
                times.extend(map(comparable, t))
    return out


def series_order(parsed: list[Parsed]) -> list[list[list[str]]]:
    """The series of each segment of each chunk, in the order the chunk's lines first hold them."""
    return [[list(seg) for seg in p.segments] for p in parsed]


def images(parsed: list[Parsed]) -> list[tuple[int, Any, Any]]:
    """The image records of the chunks, in order: (attempt, as ``attempts`` counts them; step; name)."""
    out, at = [], 0
    for p in parsed:
        out += [(at + seg, rec.get("step"), rec.get("name")) for seg, rec in p.others if rec.get("k") == "image"]
        at += len(p.segments) - 1
    return out


def image_line(step: int | None, name: str = "samples", compact: bool = True) -> bytes:
    """An image record as another program writes it (compact, as the writer does, or with spaces)."""
    rec: dict[str, Any] = {"k": "image", "step": step, "t": 1.7e9 + (step or 0), "name": name,
                           "path": f"media/{name}/{step}.png", "w": 4, "h": 4, "c": 3, "bytes": 90}
    if step is None:
        del rec["step"]
    return json.dumps(rec, separators=(",", ":") if compact else None).encode() + b"\n"


class Log:
    """A real file appended to and fed to a real Store, as the follower does."""

    def __init__(self, tmp: Path, name: str = "metrics.jsonl") -> None:
        self.store = Store(tmp)
        self.path = tmp / "run" / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        info = os.stat(self.path)
        self.name = name
        self.offset = 0
        self.store.open_stream("run", name, str(self.path), f"{info.st_dev}:{info.st_ino}:sig", reader="jsonl")

    def append(self, data: bytes) -> None:
        with open(self.path, "ab") as f:
            f.write(data)
        self.store.ingest("run", self.name, data, self.offset, self.offset + len(data))
        self.offset += len(data)

    def steps(self, metric: str) -> list[float]:
        got: list[float] = self.store.series("run", metric).steps.tolist()
        return got


def mixed_log() -> bytes:
    """Per-iteration lines and per-epoch lines in one file, as a hand-written loop logs them."""
    lines = []
    for epoch in range(3):
        for i in range(1, 6):
            lines.append({"iter": epoch * 5 + i, "loss": 1.0 / (epoch * 5 + i), "lr": 0.1})
        lines.append({"epoch": epoch, "val_acc": 0.5 + epoch / 10})
    return dumps(*lines)


@pytest.mark.parametrize("fast", FAST)
def test_per_step_and_per_epoch_lines_hide_no_point(tmp_path: Path, fast: bool) -> None:
    log = Log(tmp_path)
    use(log.store, fast)
    log.append(mixed_log())
    assert log.steps("loss") == list(range(1, 16))  # every train point in the default view
    assert log.steps("val_acc") == [0, 1, 2]
    info = log.store.get_run("run")
    assert info is not None and info.attempts == 1


@pytest.mark.parametrize("fast", FAST)
def test_mode_makes_train_and_val_separate_series(tmp_path: Path, fast: bool) -> None:
    log = Log(tmp_path)
    use(log.store, fast)
    log.append(dumps({"mode": "train", "step": 1, "loss": 0.9}, {"mode": "train", "step": 2, "loss": 0.8},
                     {"mode": "val", "step": 2, "loss": 1.5, "acc": 0.4},
                     {"split": "test", "phase": "final", "step": 2, "acc": 0.3}))
    assert log.store.metrics("run") == ["test/final/acc", "train/loss", "val/acc", "val/loss"]
    assert log.store.series("run", "train/loss").values.tolist() == [0.9, 0.8]
    assert log.store.series("run", "val/loss").values.tolist() == [1.5]


@pytest.mark.parametrize("fast", FAST)
def test_a_duration_named_time_is_a_metric_and_the_run_is_not_stalled(tmp_path: Path, fast: bool) -> None:
    log = Log(tmp_path)
    use(log.store, fast)
    before = time.time()
    log.append(dumps(*({"mode": "train", "epoch": 1, "iter": i * 10, "lr": 0.02, "time": 0.41 + i / 100,
                        "data_time": 0.05, "eta_seconds": 3600 - i, "loss": 1.0 / i} for i in range(1, 6))))
    assert log.store.series("run", "train/time").values.tolist() == pytest.approx([0.42, 0.43, 0.44, 0.45, 0.46])
    assert set(log.store.metrics("run")) >= {"train/data_time", "train/eta_seconds", "train/loss"}
    info = log.store.get_run("run")
    assert info is not None and info.status == "running"
    assert info.updated is not None and info.updated >= before  # the time the lines were read
    times = log.store.series("run", "train/loss").times
    assert (times >= before).all()


@pytest.mark.parametrize("fast", FAST)
def test_an_absolute_time_is_the_wall_clock_whatever_its_spelling(fast: bool) -> None:
    data = dumps({"step": 1, "time": 1.7e9, "loss": 1}, {"step": 2, "timestamp": 1.7e12 + 500, "loss": 2},
                 {"step": 3, "t": 3.5, "wall_time": "2024-01-02T03:04:05Z", "loss": 3},
                 {"step": 4, "time": "soon", "loss": 4})
    [got] = attempts(decode(data, fast)[0])
    assert got["loss"][2] == [1.7e9, 1.7e9 + 0.5, 1704164645.0, 5.0]
    assert got["t"][1] == [3.5]  # not an absolute time: a metric
    assert "time" not in got and "timestamp" not in got and "wall_time" not in got


@pytest.mark.parametrize("fast", FAST)
def test_nan_lines_keep_their_other_metrics(tmp_path: Path, fast: bool) -> None:
    log = Log(tmp_path)
    use(log.store, fast)
    log.append(b'{"mode": "train", "iter": 1, "loss": 0.5, "grad_norm": 2.0}\n'
               b'{"mode": "train", "iter": 2, "loss": NaN, "grad_norm": Infinity}\n'
               b'{"mode": "train", "iter": 3, "loss": -Infinity, "grad_norm": 3.0, "acc": "NaN"}\n')
    loss = log.store.series("run", "train/loss").values.tolist()
    assert loss[0] == 0.5 and math.isnan(loss[1]) and loss[2] == -math.inf
    assert log.store.series("run", "train/grad_norm").values.tolist() == [2.0, math.inf, 3.0]
    assert math.isnan(log.store.series("run", "train/acc").values[0])
    assert log.store.series("run", "train/grad_norm").steps.tolist() == [1, 2, 3]


@pytest.mark.parametrize("fast", FAST)
def test_a_counter_restarting_each_epoch_gives_increasing_steps(tmp_path: Path, fast: bool) -> None:
    """mmcv's JSON log: iter counts within each epoch; val lines carry the epoch's last iter."""
    log = Log(tmp_path, "20240101_000000.log.json")
    use(log.store, fast)
    lines = [{"env_info": "sys.platform: linux", "seed": 0}]
    for epoch in (1, 2, 3):
        lines += [{"mode": "train", "epoch": epoch, "iter": i, "lr": 0.02, "memory": 3000, "data_time": 0.01,
                   "loss": 1.0 / (epoch * i), "time": 0.4} for i in (50, 100, 150)]
        lines.append({"mode": "val", "epoch": epoch, "iter": 160, "lr": 0.02, "bbox_mAP": 0.1 * epoch})
    log.append(dumps(*lines))
    assert log.steps("train/loss") == [50, 100, 150, 210, 260, 310, 370, 420, 470]
    assert log.steps("val/bbox_mAP") == [160, 320, 480]
    assert log.store.series("run", "train/epoch").values.tolist() == [1, 1, 1, 2, 2, 2, 3, 3, 3]
    info = log.store.get_run("run")
    assert info is not None and info.attempts == 1
    # resumed from the checkpoint of epoch 2: the same steps as before there, and a new attempt
    log.append(dumps(*({"mode": "train", "epoch": 3, "iter": i, "lr": 0.02, "memory": 3000, "data_time": 0.01,
                        "loss": 9.0, "time": 0.4} for i in (50, 100))))
    info = log.store.get_run("run")
    assert info is not None and info.attempts == 2
    assert log.steps("train/loss") == [50, 100, 150, 210, 260, 310, 370, 420]
    assert log.store.series("run", "train/loss").values.tolist()[-2:] == [9.0, 9.0]


@pytest.mark.parametrize("fast", FAST)
def test_a_real_restart_still_starts_an_attempt(tmp_path: Path, fast: bool) -> None:
    log = Log(tmp_path)
    use(log.store, fast)
    log.append(dumps(*({"step": s, "loss": 1.0 / s, "lr": 0.1} for s in range(1, 11))))
    log.append(dumps({"step": 5, "eval_loss": 0.5}, {"step": 10, "eval_loss": 0.4}))  # late, another layout
    assert log.store.get_run("run").attempts == 1
    log.append(dumps(*({"step": s, "loss": 2.0, "lr": 0.1} for s in range(5, 8))))  # the same layout, back
    assert log.store.get_run("run").attempts == 2
    assert log.steps("loss") == [1, 2, 3, 4, 5, 6, 7]
    assert log.store.series("run", "loss").values.tolist()[4:] == [2.0, 2.0, 2.0]
    assert log.store.series("run", "loss", attempt=0).steps.tolist() == list(range(1, 11))


@pytest.mark.parametrize("fast", FAST)
def test_images_among_foreign_lines_keep_their_place_and_change_no_step(tmp_path: Path, fast: bool) -> None:
    """A program that writes image records among its own lines: each image is kept in the attempt
    its place gives it, in order, and the lines' steps are what they are without the images (here
    an iter counted within each epoch), wherever the chunks are cut."""
    lines, plain = [], []
    for epoch in (1, 2, 3):
        for i in (10, 20, 30):
            line = dumps({"mode": "train", "epoch": epoch, "iter": i, "loss": 1.0 / (epoch * i)})
            lines.append(line)
            plain.append(line)
        lines.append(image_line(epoch * 30, compact=epoch != 2))
    data, without = b"".join(lines), b"".join(plain)
    expected = [(0, 30, "samples"), (0, 60, "samples"), (0, 90, "samples")]
    reference = attempts(decode(without, fast)[0])
    assert reference[0]["train/loss"][0] == [10, 20, 30, 40, 50, 60, 70, 80, 90]
    for cuts in ((), range(1, len(lines)), (3, 4), (4, 7)):  # a chunk may start with an image
        parsed, state = decode(data, fast, cuts)
        assert attempts(parsed) == reference and images(parsed) == expected, cuts
        assert state.index == len(lines) and state.last_step == 90.0 and not state.native
    log = Log(tmp_path)
    use(log.store, fast)
    log.append(data)
    info = log.store.get_run("run")
    assert info is not None and info.attempts == 1 and info.listed["images"] == ("samples",)
    assert log.store.images("run", "samples")["steps"] == [30, 60, 90] and "w" not in log.store.metrics("run")


@pytest.mark.parametrize("fast", FAST)
def test_an_image_after_a_restart_belongs_to_the_new_attempt(fast: bool) -> None:
    first = dumps(*({"step": s, "loss": 1.0 / s} for s in range(1, 6))) + image_line(5)
    again = dumps(*({"step": s, "loss": 2.0} for s in range(3, 5))) + image_line(None, "late") + image_line(4)
    data = first + again
    for cuts in ((), (6,), (6, 7), (8,), (9,)):
        parsed, state = decode(data, fast, cuts)
        assert images(parsed) == [(0, 5, "samples"), (1, None, "late"), (1, 4, "samples")], cuts
        assert [a["loss"][0] for a in attempts(parsed)] == [[1, 2, 3, 4, 5], [3, 4]]
        assert state.index == 10 and state.last_step == 4.0


@pytest.mark.parametrize("fast", FAST)
def test_a_counter_of_nan_or_infinity_makes_a_line_with_no_counter(tmp_path: Path, fast: bool) -> None:
    """NaN, +-Infinity or a number past float range as the step has no place on an axis: the line is
    numbered as a line with no counter is (its record number), starts no attempt, and the value
    stays a point of a metric by that name; the steps around it keep their places."""
    log = Log(tmp_path)
    use(log.store, fast)
    log.append(dumps(*({"step": s, "loss": s / 10} for s in range(5)))
               + b'{"step": NaN, "loss": 7}\n{"step": Infinity, "loss": 8}\n{"step": -1e400, "loss": 9}\n'
               + b'{"iter": Infinity, "epoch": 3, "loss": 10}\n' + dumps({"step": 5, "loss": 0.5}))
    loss = log.store.series("run", "loss")
    assert sorted(zip(loss.steps.tolist(), loss.values.tolist())) == [
        (0, 0.0), (1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4), (5, 0.5), (5, 7.0), (6, 8.0), (7, 9.0), (8, 10.0)]
    step = log.store.series("run", "step")
    assert step.steps.tolist() == [5, 6, 7] and [comparable(v) for v in step.values] == ["nan", math.inf, -math.inf]
    assert log.store.series("run", "iter").values.tolist() == [math.inf]
    assert log.store.series("run", "epoch").values.tolist() == [3.0]  # a coarser counter: a metric
    info = log.store.get_run("run")
    assert info is not None and info.attempts == 1 and info.last_step == 5


@pytest.mark.parametrize("fast", FAST)
def test_bad_input_is_counted_never_raised(fast: bool) -> None:
    data = (b'{"step": 1, "loss": 1}\n{"k": [1], "loss": 2}\n[1, 2]\n{"step": \n'
            b'{"a": "\xff"}\n{"step": 1e400, "loss": 1' + b"0" * 400 + b"}\n" + b'{"a":' * 1100 + b"1" + b"}" * 1100 + b"\n")
    parsed, _ = decode(data, fast)
    [p] = parsed
    assert p.skipped == {"not_object": 1, "malformed_json": 2, "invalid_utf8": 1}
    [got] = attempts(parsed)
    # no counter, or one past float range: the record number
    assert got["loss"][:2] == ([1.0, 1.0, 2.0], [1.0, 2.0, math.inf])
    assert got["step"][:2] == ([2.0], [math.inf])


# ---- the fast paths against one object at a time, and chunking ----- --------------------------------

word = st.sampled_from(["loss", "acc", "lr", "a b", "ünï", "x/y", "time", "t", "timestamp", "mode", "split",
                        "step", "iter", "epoch", "global_step", "k"])
number = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70),
                   st.sampled_from([0, -0.0, 1e-300, 1.7e9, 1.7e12, 2**53 + 1, 2**63, 2**64 - 1]))
value = st.one_of(number, number, number, st.none(), st.booleans(),
                  st.sampled_from(["train", "val", "", "NaN", "Infinity", "-Infinity", "2024-01-02T03:04:05Z", "x"]),
                  st.lists(number, max_size=2))
TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0", b"18446744073709551621", b"1" + b"0" * 30]


@st.composite
def line(draw: Any, step: int) -> bytes:
    kind = draw(st.sampled_from(["flat"] * 6 + ["nested", "tokens", "bad", "layout", "image"]))
    if kind == "image":
        return image_line(draw(st.sampled_from([step, step, None])), draw(st.sampled_from(["a", "b/c"])),
                          draw(st.booleans()))
    if kind == "bad":
        bad: bytes = draw(st.sampled_from([b'{"step": 1,\n', b"[1]\n", b"nope\n", b'{"a": 1}{"a": 2}\n', b'{"a": -NaN}\n',
                                     b'{"a": Inf}\n', b'\xef\xbb\xbf{"a": 1}\n', b'{"a": 1, "a": 2}\n', b"\n",
                                     b'{"a": "\\ud800"}\n', b'{"x/y": 1, "x": {"y": 2}}\n']))
        return bad
    if kind == "tokens":  # now and then the counter too: NaN or Infinity makes a line with no counter
        counter = draw(st.sampled_from([b"%d" % step] * 4 + TOKENS))
        return b'{"iter": %s, "loss": %s, "acc": %s}\n' % (counter, draw(st.sampled_from(TOKENS)),
                                                         draw(st.sampled_from(TOKENS)))
    if kind == "layout":  # the usual lines, the counter moving as a log's does
        return json.dumps({"mode": draw(st.sampled_from(["train", "val"])), "epoch": step // 4,
                           "iter": step % 4, "loss": draw(number)}).encode() + b"\n"
    rec: dict[str, Any] = {draw(st.sampled_from(["step", "iter", "epoch"])): step}
    for _ in range(draw(st.integers(0, 5))):
        rec[draw(word)] = draw(value)
    if kind == "nested":
        rec["n"] = {draw(word): draw(value), "m": {"deep": draw(number)}}
    return json.dumps(rec, allow_nan=True).encode() + b"\n"


@st.composite
def block(draw: Any, step: int) -> list[bytes]:
    """Lines of one layout, as one program writes them: the template path's input, with here and
    there a number another program would write, or a value of another type."""
    names = draw(st.lists(st.sampled_from(["loss", "acc", "lr", "a b", "ünï", "time", "t", "epoch"]),
                          min_size=1, max_size=4, unique=True))
    fixed = draw(st.dictionaries(st.sampled_from(["mode", "split", "tag", "ok", "none", "timestamp"]),
                                 st.sampled_from(["train", "val", "", True, None, "NaN", "2024-01-02T03:04:05Z"]),
                                 max_size=2))
    counter = draw(st.sampled_from(["step", "iter"]))
    compact = draw(st.booleans())
    out = []
    for _ in range(draw(st.integers(16, 30))):
        step += draw(st.sampled_from([1] * 20 + [0, -2]))
        rec: dict[str, Any] = {**fixed, counter: step}
        odd = draw(st.sampled_from([None] * 12 + ["token", "type", "counter"]))
        for name in names:
            rec[name] = draw(number)
        if odd == "type":
            rec[names[0]] = draw(st.sampled_from(["x", None, True, [1]]))
        if odd == "token":
            rec[names[-1]] = 0.000123456789  # written, then replaced by the token
        if odd == "counter":
            rec[counter] = 0.000123456789
        text = json.dumps(rec, separators=(",", ":") if compact else None)
        text = text.replace("0.000123456789", draw(st.sampled_from(TOKENS)).decode())
        out.append(text.encode() + b"\n")
    return out


@st.composite
def log_text(draw: Any) -> bytes:
    step = draw(st.integers(0, 3))
    out: list[bytes] = []
    for _ in range(draw(st.integers(1, 6))):
        if draw(st.booleans()):
            out += draw(block(step))
        else:
            for _ in range(draw(st.integers(1, 8))):
                step += draw(st.sampled_from([1, 1, 1, 0, -2]))
                out.append(draw(line(step)))
    return b"".join(out)


@settings(max_examples=300, deadline=None)
@given(data=log_text(), small=st.booleans())
def test_the_fast_path_gives_the_points_of_one_object_at_a_time(data: bytes, small: bool) -> None:
    """``small``: blocks of a few lines read as templates too (by default they are read as columns)."""
    default = jsonl.MIN_TEMPLATE_BYTES
    jsonl.MIN_TEMPLATE_BYTES = 0 if small else default
    try:
        got, st_fast = decode(data, True)
    finally:
        jsonl.MIN_TEMPLATE_BYTES = default
    slow, st_slow = decode(data, False)
    assert attempts(got) == attempts(slow) and images(got) == images(slow)
    assert series_order(got) == series_order(slow)
    assert [p.skipped for p in got] == [p.skipped for p in slow]
    assert [p.records for p in got] == [p.records for p in slow]
    assert repr(st_fast) == repr(st_slow)  # repr: NaN equal to NaN
    assert all(math.isfinite(x) for att in attempts(got) for steps, _, _ in att.values() for x in steps)


@settings(max_examples=200, deadline=None)
@given(data=log_text(), cuts=st.lists(st.integers(1, 80), max_size=4), fast=st.booleans())
def test_chunk_boundaries_anywhere_give_the_points_of_one_chunk(data: bytes, cuts: list[int], fast: bool) -> None:
    whole, st_whole = decode(data, fast)
    pieces, st_pieces = decode(data, fast, cuts)
    assert attempts(pieces) == attempts(whole) and images(pieces) == images(whole)
    assert sum(p.records for p in pieces) == whole[0].records
    assert repr(st_pieces) == repr(st_whole)


def test_the_state_is_small_and_picklable() -> None:
    import pickle

    lines = [{"mode": m, "epoch": e, "iter": i, "loss": 1.0} for e in range(2000) for i in (1, 2) for m in ("train", "val")]
    lines += [{f"field{j}": 1, "step": j} for j in range(1000)]  # a thousand layouts
    _, state = decode(dumps(*lines), True)
    assert len(pickle.dumps(state)) < 64 << 10


@pytest.mark.parametrize("fast", FAST)
def test_a_cursor_of_an_earlier_process_rereads_a_chunk_as_it_was_read(fast: bool) -> None:
    """``state_before``: a chunk decoded again knowing only the state after it (the store resumes a
    cursor of an earlier process so) gives the points it gave, offsets of a restarting counter included."""
    lines = []
    for epoch in range(1, 5):
        lines += [{"mode": "train", "epoch": epoch, "iter": i, "loss": epoch + i / 100} for i in range(10, 60, 10)]
        lines.append({"mode": "val", "epoch": epoch, "iter": 50, "acc": epoch / 10})
    data = dumps(*lines)
    r = reader(fast)
    cut = data.splitlines(keepends=True)
    chunks = [b"".join(cut[a : a + 7]) for a in range(0, len(cut), 7)]
    state = r.new_state()
    for chunk in chunks:
        first, state = r.decode(chunk, state, now=5.0)
        again, _ = r.decode(chunk, r.state_before(chunk, state), now=5.0)
        assert attempts([again]) == attempts([first])


@pytest.mark.parametrize("fast", FAST)
def test_a_field_named_k_does_not_make_a_line_tailboards_own(fast: bool) -> None:
    data = dumps(*({"k": 5, "epoch": e, "iter": i, "recall": 0.5} for e in (1, 2) for i in (10, 20)))
    parsed, state = decode(data, fast)
    [got] = attempts(parsed)
    assert got["recall"][0] == [10, 20, 30, 40] and got["k"][1] == [5, 5, 5, 5]
    assert not state.native


def test_lines_as_programs_write_them_take_the_template_path() -> None:
    """json.dumps with its spaces, compact separators, a short first name, strings, booleans and
    nulls fixed in the layout: read as one template, not one object at a time."""
    rows = [{"lr": 0.1 / (i + 1), "mode": "train", "iter": i, "ok": True, "note": None, "loss": 1.0 / (i + 1)}
            for i in range(40)]
    for separators in (None, (",", ":")):
        data = b"".join(json.dumps(r, separators=separators).encode() + b"\n" for r in rows)
        fields = jsonl.fields_from_template(data)
        assert fields is not None and fields.n == 40
        assert fields.numbers["loss"][0].tolist() == [r["loss"] for r in rows]
        assert fields.prefixes[int(fields.prefix[0])] == "train/"
    mixed = data + json.dumps({"lr": 0.1, "mode": "val", "iter": 40, "acc": 0.5}).encode() + b"\n"
    assert jsonl.fields_from_template(mixed) is None  # another layout: grouped, then read
    [got] = attempts(decode(mixed, True)[0])
    assert got["val/acc"][1] == [0.5] and len(got["train/loss"][0]) == 40


def test_a_diverged_run_keeps_the_template_path() -> None:
    """Bare NaN / Infinity (Python's json.dumps) and numbers out of float range in every line:
    still one template, every value as one object at a time reads it."""
    rows = [{"iter": i, "loss": [math.nan, math.inf, -math.inf, 0.5][i % 4], "grad": 1e300 * (i + 1)} for i in range(32)]
    data = dumps(*rows).replace(b'"grad": 1e+300', b'"grad": 1e400')
    fields = jsonl.fields_from_template(data)
    assert fields is not None and fields.n == 32
    fast, _ = decode(data, True)
    slow, _ = decode(data, False)
    assert attempts(fast) == attempts(slow)
    [got] = attempts(fast)
    assert got["loss"][1][:4] == ["nan", math.inf, -math.inf, 0.5] and got["grad"][1][0] == math.inf


@settings(max_examples=200, deadline=None)
@given(data=log_text(), cuts=st.lists(st.integers(1, 80), max_size=3))
# a restart within the epoch whose offset rounds (past 2**53) to a step behind the last one
@example(data=b'{"epoch": 1, "step": 1.0, "loss": 0.0}\n{"epoch": 2, "step": -9007199254740992.0}\n', cuts=[])
def test_steps_in_whole_arrays_are_the_steps_of_the_loop(data: bytes, cuts: list[int]) -> None:
    """A chunk where every counter goes forward is stepped in whole arrays; the loop gives the same."""
    arrays, st_arrays = decode(data, True, cuts)
    jsonl._Tracker.whole = False
    try:
        loop, st_loop = decode(data, True, cuts)
    finally:
        jsonl._Tracker.whole = True
    assert attempts(arrays) == attempts(loop) and images(arrays) == images(loop)
    assert repr(st_arrays) == repr(st_loop)


def test_lines_of_two_layouts_are_each_read_as_a_template(monkeypatch: pytest.MonkeyPatch) -> None:
    """detectron2's metrics.json: train lines that start with a number, an eval line now and then;
    only the eval lines (and each template's first line) are read one object at a time."""
    lines = []
    for i in range(60):
        lines.append({"data_time": 0.002 + i / 1e4, "eta_seconds": 3600.0 - i, "iteration": 20 * i + 19,
                      "loss": 1.0 / (i + 1), "lr": 0.02, "time": 0.31 + i / 1e3})
        if i % 20 == 19:
            lines.append({"bbox/AP": 30.0 + i, "bbox/AP50": 50.0, "iteration": 20 * i + 19})
    one_by_one: list[int] = []
    real = jsonl.fields_from_objects

    def counted(objs: list[Any], parsed: Parsed, kept: list[int] | None = None) -> jsonl.Fields:
        one_by_one.append(len(objs))
        return real(objs, parsed, kept)

    monkeypatch.setattr(jsonl, "fields_from_objects", counted)
    monkeypatch.setattr(jsonl, "MIN_TEMPLATE_BYTES", 0)  # 60 lines: columns would be as fast
    parsed, _ = decode(dumps(*lines), True)
    assert sorted(one_by_one) == [1, 3]  # the train template's first line; the three eval lines
    [got] = attempts(parsed)
    assert got["loss"][0] == [20.0 * i + 19 for i in range(60)] and got["bbox/AP"][1] == [49.0, 69.0, 89.0]
    assert "time" in got and got["time"][2][0] == 5.0


# -- another program's lines whose fields vary line by line: read a column at a time -------------

FIELD = st.sampled_from(["loss", "acc", "lr", "step", "iter", "epoch", "mode", "split", "phase", "stage", "time", "t",
                         "timestamp", "_timestamp", "x/y", "ünï", "k"])
LEAF = st.one_of(number, number, number, st.floats(), st.none(), st.booleans(), st.lists(number, max_size=2),
                 st.sampled_from(["train", "val", "", "v\x00", "NaN", "Infinity", "-Infinity", "2024-01-02T03:04:05Z",
                                  "2024-01-02 03:04:05.5+02:00", "x", "1.5", 1.7e9, 1.7e12, 0.41, 1, 0, -0.0,
                                  2**63, 2**64 - 1, 1e308]))
DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000 + b"\n"  # read by orjson, too deep to flatten


@st.composite
def varying_lines(draw: Any) -> bytes:
    """Lines that each hold their own subset of fields, in a few orders (as a logger writing the
    metrics computed at each step), with every kind of value among them: nested objects, nulls,
    booleans, huge integers, bare and spelled non-finite numbers, times, discriminators, and now and
    then a line that is not an object, not JSON, or an image."""
    orders = draw(st.lists(st.lists(FIELD, unique=True, max_size=7), min_size=1, max_size=4))
    out = []
    for _ in range(draw(st.integers(0, 70))):
        kind = draw(st.sampled_from(["order"] * 10 + ["subset", "nested", "token", "other"]))
        if kind == "other":
            out.append(draw(st.sampled_from([b"[1, 2]\n", b"3\n", b'"x"\n', b"{}\n", b"nope\n", b"\n", DEEP,
                                             image_line(draw(st.integers(0, 3)))])))
            continue
        names = draw(st.sampled_from(orders))
        if kind == "subset":
            names = [n for n in names if draw(st.booleans())]
        rec: dict[str, Any] = {n: draw(LEAF) for n in names}
        if kind == "nested" and names:
            rec[names[0]] = {draw(FIELD): draw(LEAF), "m": {"deep": draw(st.one_of(number, st.none()))}}
        text = json.dumps(rec, allow_nan=True, separators=draw(st.sampled_from([None, (",", ":")])))
        if kind == "token" and names:  # a number as another program may write it
            rec[names[-1]] = 0.000123456789
            text = json.dumps(rec, allow_nan=True).replace("0.000123456789", draw(st.sampled_from(TOKENS)).decode())
        out.append(text.encode() + b"\n")
    return b"".join(out)


def assert_same_fields(a: jsonl.Fields, b: jsonl.Fields) -> None:
    """The same columns, bit for bit (NaN and -0.0 too), the same layouts and prefixes, in the same order."""
    assert a.n == b.n
    assert list(a.numbers) == list(b.numbers) and list(a.iso) == list(b.iso)
    for name, (values, has) in a.numbers.items():
        assert values.tobytes() == b.numbers[name][0].tobytes() and has.tolist() == b.numbers[name][1].tolist()
    for name, t in a.iso.items():
        assert t.tobytes() == b.iso[name].tobytes()
    assert a.layout.dtype == b.layout.dtype and a.layout.tolist() == b.layout.tolist()
    assert a.prefix.tolist() == b.prefix.tolist() and a.prefixes == b.prefixes
    assert a.records == b.records


@settings(max_examples=400, deadline=None)
@given(data=varying_lines())
def test_columns_read_at_once_are_those_of_one_object_at_a_time(data: bytes) -> None:
    from tailboard.sidecar.ingest import decode_lines
    from tailboard.sidecar.readers.jsonl_columns import fields_one_at_a_time

    objs = decode_lines(data, Parsed())
    got, want = Parsed(), Parsed()
    kept_got: list[int] = []
    kept_want: list[int] = []
    assert_same_fields(jsonl.fields_from_objects(objs, got, kept_got), fields_one_at_a_time(objs, want, kept_want))
    assert kept_got == kept_want and got.skipped == want.skipped


@settings(max_examples=300, deadline=None)
@given(data=varying_lines(), cuts=st.lists(st.integers(1, 70), max_size=3))
def test_lines_of_varying_fields_give_the_points_of_one_object_at_a_time(data: bytes, cuts: list[int]) -> None:
    got, st_got = decode(data, True, cuts)
    want, st_want = decode(data, False, cuts)
    assert attempts(got) == attempts(want) and images(got) == images(want)
    assert series_order(got) == series_order(want)
    assert [p.skipped for p in got] == [p.skipped for p in want]
    assert [p.records for p in got] == [p.records for p in want]
    assert repr(st_got) == repr(st_want)


def test_many_small_layouts_are_read_as_columns_not_as_templates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A logger writing the metrics computed at each step: dozens of layouts of a few lines each in a
    chunk. A template costs the same whatever its lines, so these are read as columns (only the
    whole chunk is tried as one), with the points of one object at a time."""
    names = ["loss", "acc", "lr", "grad_norm", "loss_cls", "loss_box", "top_x", "recall"]
    lines = [{"step": i, **{n: i / (j + 1) for j, n in enumerate(names) if (i % 40) >> (j % 6) & 1 or j == 0}}
             for i in range(40 * 20)]
    templates: list[int] = []
    real = jsonl.fields_from_template

    def counted(data: bytes) -> jsonl.Fields | None:
        templates.append(data.count(b"\n"))
        return real(data)

    monkeypatch.setattr(jsonl, "fields_from_template", counted)
    got, _ = decode(dumps(*lines), True)
    assert templates == [len(lines)]
    want, _ = decode(dumps(*lines), False)
    assert attempts(got) == attempts(want)
    assert len(attempts(got)) == 1 and attempts(got)[0]["loss"][0] == list(range(800))
