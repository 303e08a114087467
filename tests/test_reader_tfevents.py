"""The TensorBoard event file reader: files written by torch's and tensorboardX's SummaryWriter read
to exactly what TensorBoard's own EventAccumulator reads from them; any chunking gives the result of
the whole file; torn tails wait; corrupt records, lengths and stretches are counted and stepped over;
a file written live is followed to the same result; with and without a C CRC32C package."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tailboard.sidecar.ingest import Parsed
from tailboard.sidecar.readers import protowire as pw
from tailboard.sidecar.readers import tfevents as tfe
from tailboard.sidecar.readers import tfrecord as tfr
from tailboard.sidecar.readers import tfscalars as tfs
from tailboard.sidecar.readers.base import Reader
from tailboard.sidecar.readers.tfevents import TfEventsReader

torch = pytest.importorskip("torch")
warnings.filterwarnings("ignore", category=DeprecationWarning)

from tensorboard.backend.event_processing import event_accumulator as ea  # noqa: E402 (after the skip when torch is missing)
from tensorboard.backend.event_processing import plugin_event_accumulator as pea  # noqa: E402 (after the skip when torch is missing)
from tensorboard.compat.proto import event_pb2, summary_pb2  # noqa: E402 (after the skip when torch is missing)
from tensorboard.summary.writer.record_writer import RecordWriter  # noqa: E402 (after the skip when torch is missing)
from tensorboard.util import tensor_util  # noqa: E402 (after the skip when torch is missing)
from torch.utils.tensorboard import SummaryWriter  # noqa: E402 (after the skip when torch is missing)

NOW = 12345.5
ALL = {ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0, ea.COMPRESSED_HISTOGRAMS: 0, ea.IMAGES: 0}


@pytest.fixture(params=["google_crc32c", "crc32c", "python"])
def crc_impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each C implementation of CRC32C installed, and with the Python one."""
    if request.param == "python":
        monkeypatch.setattr(tfr, "crc32c", tfr._crc32c_python)
    elif request.param in tfr.PACKAGED_CRC32C:
        monkeypatch.setattr(tfr, "crc32c", tfr.PACKAGED_CRC32C[request.param])
    else:
        pytest.skip(f"{request.param} is not installed")
    return str(request.param)


# ---- reading helpers ------------------------------------------------------------------------------


@dataclass
class Result:
    """Decoded chunks put together: one dict per segment, tag -> (steps, values, times)."""

    segments: list[dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = field(default_factory=lambda: [{}])
    others: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    records: int = 0
    held: int = 0  # bytes complete() held back at the end

    def add(self, p: Parsed) -> None:
        base = len(self.segments) - 1
        for i, seg in enumerate(p.segments):
            if i > 0:
                self.segments.append({})
            into = self.segments[-1]
            for tag, (s, v, t) in seg.items():
                if tag in into:
                    s0, v0, t0 = into[tag]
                    s, v, t = np.concatenate((s0, s)), np.concatenate((v0, v)), np.concatenate((t0, t))
                into[tag] = (np.asarray(s), np.asarray(v), np.asarray(t))
        self.others += [(base + i, rec) for i, rec in p.others]
        for k, n in p.skipped.items():
            self.skipped[k] = self.skipped.get(k, 0) + n
        self.records += p.records

    def scalars(self, tag: str) -> tuple[list[float], list[float], list[float]]:
        parts = [seg[tag] for seg in self.segments if tag in seg]
        if not parts:
            return [], [], []
        s, v, t = (np.concatenate(x).tolist() for x in zip(*parts))
        return s, v, t


def follow(data: bytes, sizes: Iterable[int], reader: Reader | None = None, *, head: bool = False) -> Result:
    """Hand ``data`` to a reader as a tail would, in pieces of the given sizes (cycled). ``head``:
    as the parallel catch-up does, every byte read to ``decode_head``, which says what it took."""
    r = reader or TfEventsReader()
    state = r.new_state()
    out = Result()
    buf = b""
    pos = 0
    sizes = list(sizes)
    k = 0
    while pos < len(data):
        step = sizes[k % len(sizes)]
        k += 1
        buf += data[pos : pos + step]
        pos += step
        if head:
            parsed, state, n = r.decode_head(buf, state, now=NOW)  # type: ignore[attr-defined]
            assert 0 <= n <= len(buf)
            out.add(parsed)
            buf = buf[n:]
            continue
        n = r.complete(buf)
        assert 0 <= n <= len(buf)
        if n:
            parsed, state = r.decode(buf[:n], state, now=NOW)
            out.add(parsed)
            buf = buf[n:]
    out.held = len(buf)
    return out


def whole(data: bytes) -> Result:
    r = TfEventsReader()
    out = Result()
    parsed, _ = r.decode(data, r.new_state(), now=NOW)
    out.add(parsed)
    return out


def same(a: Result, b: Result) -> None:
    assert len(a.segments) == len(b.segments)
    for sa, sb in zip(a.segments, b.segments):
        assert sa.keys() == sb.keys()
        for tag in sa:
            for x, y in zip(sa[tag], sb[tag]):
                assert np.array_equal(x, y, equal_nan=True), tag
    assert a.others == b.others
    assert a.skipped == b.skipped
    assert a.records == b.records


def event_file(folder: Path) -> Path:
    files = sorted(folder.glob("events.out.tfevents.*"))
    assert len(files) == 1, files
    return files[0]


def tb_scalars(path: Path) -> dict[str, tuple[list[float], list[float], list[float]]]:
    acc = ea.EventAccumulator(str(path), size_guidance=ALL)
    acc.Reload()
    return {tag: ([float(e.step) for e in acc.Scalars(tag)], [e.value for e in acc.Scalars(tag)],
                  [e.wall_time for e in acc.Scalars(tag)]) for tag in acc.Tags()["scalars"]}


def tb_tensors(path: Path) -> pea.EventAccumulator:
    acc = pea.EventAccumulator(str(path), size_guidance=ALL, tensor_size_guidance={"": 0})
    acc.Reload()
    return acc


def assert_scalars_match(res: Result, tb: dict[str, tuple[list[float], list[float], list[float]]]) -> None:
    ours = {tag for seg in res.segments for tag in seg}
    assert set(tb) <= ours
    for tag, (steps, values, times) in tb.items():
        s, v, t = res.scalars(tag)
        assert s == steps, tag
        assert np.array_equal(v, values, equal_nan=True), tag
        assert t == times, tag


# ---- files written by the real writers ------------------------------------------------------------

STEPS = [0, 1, 2, 127, 128, 300, 16_383, 16_384, 2_097_152, 10**12, 2**55 + 3, 2**57 + 1]


def write_torch(folder: Path) -> dict[str, Any]:
    """Everything torch's SummaryWriter writes that the reader reads, and some it does not."""
    w = SummaryWriter(str(folder), flush_secs=3600)
    rng = np.random.default_rng(3)
    for i, step in enumerate(STEPS):
        t = 1_700_000_000.0 + i * 0.25
        w.add_scalar("train/loss", float(rng.normal()), step, walltime=t)
        w.add_scalar("train/lr", 0.1 / (i + 1), step, walltime=t)
        w.add_scalar("ünï côdé/ok", [math.nan, math.inf, -math.inf, -0.0][i % 4], step, walltime=t)
        w.add_scalar("x" * 150, float(i), step, walltime=t)  # a tag too long for one-byte lengths
    w.add_scalar("neg", 1.5, -7, walltime=1_700_000_100.0)
    w.add_scalar("no_time", 2.5, 3)
    for step in (4, 5):
        w.add_scalar("new/float", 0.1 * step, step, new_style=True, walltime=1_700_000_200.0 + step)
        w.add_scalar("new/double", 0.1 * step, step, new_style=True, double_precision=True,
                     walltime=1_700_000_200.0 + step)
        w.add_histogram("weights", torch.from_numpy(rng.normal(size=1000)), step, walltime=1_700_000_300.0 + step)
        w.add_text("notes", f"step **{step}**\nünï", step, walltime=1_700_000_400.0 + step)
    w.add_histogram("spiky", np.array([0.0, 0.0, 1e-3, 5.0, -2.0]), 9, walltime=1_700_000_500.0)
    w.add_audio("sound", torch.zeros(1, 800), 1, sample_rate=8000)  # unsupported: counted
    w.close()
    return {"unsupported_summary": 1}


@pytest.fixture(scope="module")
def torch_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("torch")
    write_torch(folder)
    return event_file(folder)


def test_torch_scalars_histograms_texts_as_tensorboard_reads_them(torch_file: Path, crc_impl: str) -> None:
    res = whole(torch_file.read_bytes())
    assert res.skipped == {"unsupported_summary": 1}
    assert len(res.segments) == 1
    tb = tb_scalars(torch_file)
    assert {"train/loss", "train/lr", "ünï côdé/ok", "x" * 150, "neg", "no_time"} <= set(tb)
    assert_scalars_match(res, tb)

    acc = tb_tensors(torch_file)
    for tag in ("new/float", "new/double"):
        s, v, t = res.scalars(tag)
        events = acc.Tensors(tag)
        assert s == [float(e.step) for e in events]
        assert v == [float(tensor_util.make_ndarray(e.tensor_proto).item()) for e in events]
        assert t == [e.wall_time for e in events]

    hists = [rec for _, rec in res.others if rec["k"] == "hist"]
    raw = {tag: ea_hist for tag, ea_hist in _histograms(torch_file).items()}
    for tag in ("weights", "spiky"):
        mine = [h for h in hists if h["name"] == tag]
        theirs = acc.Tensors(tag)  # TensorBoard's own reading of the buckets, as float32 [left, right, count]
        assert len(mine) == len(theirs) == len(raw[tag])
        for h, tev, hev in zip(mine, theirs, raw[tag]):
            buckets = tensor_util.make_ndarray(tev.tensor_proto)
            assert h["step"] == tev.step and h["t"] == tev.wall_time
            assert np.array_equal(np.float32(h["edges"][:-1]), buckets[:, 0])
            assert np.array_equal(np.float32(h["edges"][1:]), buckets[:, 1])
            assert h["counts"] == buckets[:, 2].astype(int).tolist()
            hv = hev.histogram_value
            assert (h["lo"], h["hi"], h["min"], h["max"]) == (hv.min, hv.max, hv.min, hv.max)
            assert (h["n"], h["sum"], h["sumsq"]) == (hv.num, hv.sum, hv.sum_squares)
            assert sum(h["counts"]) == hv.num and len(h["edges"]) == len(h["counts"]) + 1

    texts = [rec for _, rec in res.others if rec["k"] == "text"]
    theirs = acc.Tensors("notes/text_summary")
    assert [(r["step"], r["t"], r["name"]) for r in texts] == [(e.step, e.wall_time, "notes/text_summary")
                                                               for e in theirs]
    assert [r["text"] for r in texts] == [tensor_util.make_ndarray(e.tensor_proto).item().decode()
                                          for e in theirs]
    assert res.records == sum(len(v[0]) for v in tb.values()) + 4 + len(hists) + len(texts)


def _histograms(path: Path) -> dict[str, list[Any]]:
    acc = ea.EventAccumulator(str(path), size_guidance=ALL)
    acc.Reload()
    return {tag: acc.Histograms(tag) for tag in acc.Tags()["histograms"]}


def test_add_scalars_and_add_hparams_write_folders_that_read_as_tensorboard_reads_them(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    for step in range(5):
        w.add_scalars("loss", {"train": 1.0 / (step + 1), "eval": 2.0 / (step + 1)}, step)
    w.add_hparams({"lr": 0.01, "opt": "adam", "layers": 3, "wd": True}, {"hp/acc": 0.9, "hp/loss": 0.1})
    w.close()
    files = sorted(tmp_path.rglob("events.out.tfevents.*"))
    assert len(files) == 4  # the writer's own, one per add_scalars key, one for the hparams
    configs = []
    for f in files:
        res = whole(f.read_bytes())
        assert_scalars_match(res, tb_scalars(f))
        configs += [(f, rec) for _, rec in res.others if rec["k"] == "config"]
    assert {f.parent.name for f in files if f.parent != tmp_path} >= {"loss_train", "loss_eval"}
    (f, config), = configs
    from google.protobuf import json_format
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = tb_tensors(f).PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert config["config"] == {k: json_format.MessageToDict(v) for k, v in start.hparams.items()}
    assert config["config"] == {"lr": 0.01, "opt": "adam", "layers": 3.0, "wd": 1.0}
    res = whole(f.read_bytes())
    assert res.skipped == {"unsupported_summary": 2}  # the experiment and the session's end
    assert res.scalars("hp/acc")[1] == [np.float32(0.9)]


def test_tensorboardx_files_read_as_tensorboard_reads_them(tmp_path: Path, crc_impl: str) -> None:
    tbx = pytest.importorskip("tensorboardX")
    w = tbx.SummaryWriter(str(tmp_path))
    for step in range(0, 300, 7):
        w.add_scalar("a/b", math.sin(step), step, walltime=1_600_000_000.0 + step)
        w.add_scalar("shown", step * 0.5, step, display_name="Shown", summary_description="with metadata")
    w.add_histogram("h", np.arange(100.0), 3)
    w.add_text("t", "hello", 4)
    w.close()
    f = event_file(tmp_path)
    res = whole(f.read_bytes())
    assert_scalars_match(res, tb_scalars(f))
    assert set(tb_scalars(f)) == {"a/b", "shown"}
    acc = tb_tensors(f)
    (h,) = [rec for _, rec in res.others if rec["k"] == "hist"]
    (b,) = [tensor_util.make_ndarray(e.tensor_proto) for e in acc.Tensors("h")]
    assert np.array_equal(np.float32(h["edges"][:-1]), b[:, 0]) and h["counts"] == b[:, 2].astype(int).tolist()
    (t,) = [rec for _, rec in res.others if rec["k"] == "text"]
    assert t["text"] == "hello" and t["step"] == 4
    assert res.skipped == {}


# ---- every event a hand-made writer can produce, against the same reference -----------------------


def write_events(path: Path, events: list[event_pb2.Event]) -> bytes:
    with open(path, "wb") as f:
        w = RecordWriter(f)
        w.write(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString())
        for e in events:
            w.write(e.SerializeToString())
        w.flush()
    return path.read_bytes()


def scalar_event(tag: str, step: int, value: float, wall: float) -> event_pb2.Event:
    return event_pb2.Event(wall_time=wall, step=step,
                           summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["loss", "acc", "", "ü/é", "t" * 119, "t" * 121]),
                          st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(0, 300)),
                          st.floats(width=32),
                          st.one_of(st.floats(allow_nan=False, allow_infinity=False, min_value=1e-300),
                                    st.sampled_from([0.0, math.nan, math.inf]))),
                min_size=1, max_size=60))
def test_any_scalar_events_read_as_tensorboard_reads_them(tmp_path: Path, events: list[Any]) -> None:
    path = tmp_path / "events.out.tfevents.1.h"
    data = write_events(path, [scalar_event(*e) for e in events])
    res = whole(data)
    acc = ea.EventAccumulator(str(path), size_guidance=ALL, purge_orphaned_data=False)
    acc.Reload()
    for tag in acc.Tags()["scalars"]:
        evs = acc.Scalars(tag)
        s, v, t = res.scalars(tag)
        assert s == [float(e.step) for e in evs]
        assert np.array_equal(v, [e.value for e in evs], equal_nan=True)
        # an event without a usable wall time (0 is "absent" in proto3) takes the reading time
        assert t == [e.wall_time if math.isfinite(e.wall_time) and e.wall_time != 0 else NOW for e in evs]
    assert res.records == len(events) and res.skipped == {}


# ---- chunking, torn tails, corruption --------------------------------------------------------------


def corrupted(data: bytes) -> tuple[bytes, dict[str, int]]:
    """``data`` with a flipped data byte, a bad length CRC and a stretch of garbage (which holds
    zero runs, so candidate lengths), and what a reader must count for them."""
    starts = record_starts(data)
    a, b = starts[5], starts[9]
    out = bytearray(data)
    out[a + 14] ^= 0x40  # inside record 5's data
    out[b] ^= 0x01  # record 9's length: its CRC no longer matches
    garbage = bytes(range(256)) * 3 + bytes(40) + b"\xff" * 50
    c = starts[15]
    out[c:c] = garbage
    return bytes(out), {"bad_crc": 1, "bad_length": 2}


def record_starts(data: bytes) -> list[int]:
    out, p = [], 0
    while p + 12 <= len(data):
        out.append(p)
        (n,) = struct.unpack_from("<Q", data, p)
        p += 16 + n
    return out


@pytest.fixture(scope="module")
def corrupt_file(torch_file: Path) -> Path:
    path = torch_file.with_name("events.out.tfevents.corrupt")
    path.write_bytes(corrupted(torch_file.read_bytes())[0])
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8), corrupt=st.booleans())
def test_any_chunking_reads_as_the_whole_file(torch_file: Path, corrupt_file: Path, sizes: list[int],
                                              corrupt: bool) -> None:
    data = (corrupt_file if corrupt else torch_file).read_bytes()
    res = follow(data, sizes)
    assert res.held == 0
    same(res, whole(data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=8), corrupt=st.booleans())
@example(sizes=[1], corrupt=True)  # a byte at a time: a corrupt stretch seen by calls that take nothing
@example(sizes=[5, 11], corrupt=True)
def test_decode_head_of_any_chunking_reads_as_complete_then_decode(torch_file: Path, corrupt_file: Path,
                                                                   sizes: list[int], corrupt: bool) -> None:
    """What the parse workers of the catch-up do (decode everything read, say how much of it was
    whole records) gives what the tail's complete() and then decode() give, held bytes included."""
    data = (corrupt_file if corrupt else torch_file).read_bytes()
    cut = len(data) - 7  # a torn last record too
    for d in (data, data[:cut]):
        a, b = follow(d, sizes, head=True), follow(d, sizes)
        same(a, b)
        assert a.held == b.held
    same(follow(data, sizes, head=True), whole(data))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 10**9), st.integers(0, 10**9))
def test_decode_frames_what_complete_framed_the_same(corrupt_file: Path, a: int, b: int) -> None:
    """decode reuses the records complete found in the same bytes: the same as framing them anew."""
    data = corrupt_file.read_bytes()
    start, stop = sorted((a % len(data), b % len(data)))
    buf = data[start:stop]  # any bytes: a record boundary or not
    arr = np.frombuffer(buf, np.uint8)
    seen = tfr.frame(arr, final=False)
    part = tfr.frame(arr[: seen.end], final=True)
    assert (seen.starts.tolist(), seen.lengths.tolist(), seen.gaps, seen.end, seen.torn) == (
        part.starts.tolist(), part.lengths.tolist(), part.gaps, part.end, part.torn)


def test_torn_tail_waits_for_the_rest(torch_file: Path) -> None:
    data = torch_file.read_bytes()
    starts = record_starts(data)
    r = TfEventsReader()
    last = starts[-1]
    for cut in range(last + 1, len(data)):
        assert r.complete(data[:cut]) == last  # the record being written is held, however much is there
    assert r.complete(data) == len(data)
    first, state = r.decode(data[:last], r.new_state(), now=NOW)
    rest, _ = r.decode(data[last:], state, now=NOW)
    res = Result()
    res.add(first)
    res.add(rest)
    same(res, whole(data))
    # handed a torn record anyway, decode counts it and keeps what came before
    cut = starts[10] + 20
    torn, _ = r.decode(data[:cut], r.new_state(), now=NOW)
    assert torn.skipped == {"truncated": 1} and torn.records == whole(data[: starts[10]]).records


def test_corrupt_records_are_counted_and_the_rest_is_read(torch_file: Path, crc_impl: str) -> None:
    data = torch_file.read_bytes()
    bad, counts = corrupted(data)
    res = whole(bad)
    assert res.skipped == {"unsupported_summary": 1, **counts}
    good = whole(data)
    # record 5 (bad data CRC) and record 9 (bad length) are lost; everything else is there
    starts = record_starts(data)
    lost = [whole(data[starts[k] : starts[k + 1]]) for k in (5, 9)]
    assert res.records == good.records - sum(x.records for x in lost)
    for tag, (s, v, t) in good.segments[0].items():
        gone = [p for x in lost if tag in x.segments[0] for p in x.segments[0][tag][0].tolist()]
        assert sorted(res.scalars(tag)[0] + gone) == sorted(s.tolist()), tag


def test_absurd_length_never_waits_or_holds_more_than_a_header(torch_file: Path) -> None:
    data = torch_file.read_bytes()
    starts = record_starts(data)
    r = TfEventsReader()
    # a header with a valid CRC announcing 1 GiB, then the file goes on
    head = struct.pack("<Q", 1 << 30)
    huge = head + struct.pack("<I", tfe.masked_crc32c(head))
    bad = data[: starts[3]] + huge + data[starts[3] :]
    assert r.complete(bad) == len(bad)
    res = whole(bad)
    assert res.skipped == {"unsupported_summary": 1, "too_large": 1}
    same_points = whole(data)
    assert res.records == same_points.records
    # a buffer of garbage: all but the last 11 bytes (which could start a header) are complete
    noise = bytes(np.random.default_rng(1).integers(0, 256, 100_000, dtype=np.uint8))
    assert r.complete(noise) == len(noise) - 11
    parsed, state = r.decode(noise[:-11], r.new_state(), now=NOW)
    assert parsed.skipped == {"bad_length": 1} and state.in_gap
    # the garbage goes on in the next chunk and then the file resumes: counted once in all
    parsed2, _ = r.decode(noise[-11:] + data, state, now=NOW)
    assert "bad_length" not in parsed2.skipped and parsed2.records == same_points.records


def test_restart_in_a_file_starts_a_segment_that_tensorboard_purges_into(tmp_path: Path) -> None:
    events = [scalar_event("loss", s, float(s), 10.0 + s) for s in range(10)]
    events.append(event_pb2.Event(wall_time=30.0, step=6, session_log=event_pb2.SessionLog(status=1)))
    events += [scalar_event("loss", s, 100.0 + s, 40.0 + s) for s in range(6, 12)]
    events.append(event_pb2.Event(wall_time=60.0, step=11, session_log=event_pb2.SessionLog(status=1)))
    events.append(event_pb2.Event(wall_time=61.0, step=11, session_log=event_pb2.SessionLog(status=1)))
    events.append(scalar_event("loss", 11, 7.0, 70.0))
    path = tmp_path / "events.out.tfevents.2.h"
    data = write_events(path, events)
    tb = tb_scalars(path)["loss"]
    for res in (whole(data), follow(data, [37])):
        assert len(res.segments) == 3  # two restarts after records; the third had none before it
        # the store shows each attempt up to the next one's first step: what TensorBoard keeps
        shown: list[tuple[float, float, float]] = []
        for k, seg in enumerate(res.segments):
            upto = res.segments[k + 1]["loss"][0][0] if k + 1 < len(res.segments) else math.inf
            shown += [p for p in zip(*(x.tolist() for x in seg["loss"])) if p[0] < upto]
        assert [list(x) for x in zip(*shown)] == list(tb)


def test_a_resumed_writer_s_file_opens_with_an_empty_segment(tmp_path: Path) -> None:
    """purge_step writes SessionLog.START at the head of the new file: a segment starts there (the
    store makes it a new attempt when the run holds points from its other files), once."""
    w = SummaryWriter(str(tmp_path), purge_step=6)
    for step in range(6, 9):
        w.add_scalar("loss", float(step), step, walltime=50.0 + step)
    w.close()
    data = event_file(tmp_path).read_bytes()
    for res in (whole(data), follow(data, [1]), follow(data, [40, 7])):
        assert len(res.segments) == 2 and res.segments[0] == {}
        assert res.scalars("loss") == ([6.0, 7.0, 8.0], [6.0, 7.0, 8.0], [56.0, 57.0, 58.0])


def test_unsupported_and_malformed_events_are_counted(tmp_path: Path) -> None:
    events = [
        event_pb2.Event(wall_time=2.0, graph_def=b"\x0a\x00"),
        event_pb2.Event(wall_time=3.0, session_log=event_pb2.SessionLog(status=2)),
        event_pb2.Event(wall_time=4.0, step=1, summary=summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag="a", simple_value=1.0),
            summary_pb2.Summary.Value(tag="img", image=summary_pb2.Summary.Image(height=1)),
        ])),
    ]
    bad_tensor = summary_pb2.Summary.Value(tag="two", metadata=summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")))
    bad_tensor.tensor.dtype = 1
    bad_tensor.tensor.float_val.extend([1.0, 2.0])
    bad_tensor.tensor.tensor_shape.dim.add(size=2)
    events.append(event_pb2.Event(wall_time=5.0, step=2, summary=summary_pb2.Summary(value=[bad_tensor])))
    path = tmp_path / "events.out.tfevents.3.h"
    data = write_events(path, events)
    # a record whose CRCs are right but whose data is not an event
    junk = b"\x0a\xff\xff"
    head = struct.pack("<Q", len(junk))
    data += head + struct.pack("<I", tfe.masked_crc32c(head)) + junk + struct.pack("<I", tfe.masked_crc32c(junk))
    # an event whose second value is not a message: its first is read
    good = summary_pb2.Summary.Value(tag="b", simple_value=3.0).SerializeToString()
    summary = b"\x0a" + bytes([len(good)]) + good + b"\x0a\x02\x08\xff"
    data += frame(b"\x09" + struct.pack("<d", 6.0) + b"\x10\x03\x2a" + bytes([len(summary)]) + summary)
    res = whole(data)
    # the image value has no encoded picture: counted as an image that can't be shown
    assert res.skipped == {"unsupported_event": 2, "unsupported_image": 1, "bad_value": 1,
                           "malformed_event": 2}
    assert res.scalars("a") == ([1.0], [1.0], [4.0]) and res.scalars("b") == ([3.0], [3.0], [6.0])
    assert res.records == 2


def test_tensorflow_style_tensors_with_metadata_on_the_first_value_only(tmp_path: Path) -> None:
    def tensor_value(tag: str, plugin: str | None, dtype: int, **fields: Any) -> summary_pb2.Summary.Value:
        v = summary_pb2.Summary.Value(tag=tag)
        if plugin:
            v.metadata.plugin_data.plugin_name = plugin
        v.tensor.dtype = dtype
        for name, x in fields.items():
            if name == "shape":
                for d in x:
                    v.tensor.tensor_shape.dim.add(size=d)
            elif name == "tensor_content":
                v.tensor.tensor_content = x
            else:
                getattr(v.tensor, name).extend(x)
        return v

    hist = np.array([[0.0, 1.0, 3.0], [1.0, 2.0, 0.0], [2.0, 3.0, 5.0]])
    values = [
        tensor_value("s", "scalars", 1, tensor_content=np.float32(0.5).tobytes()),
        tensor_value("s", None, 1, float_val=[0.25]),
        tensor_value("d", "scalars", 2, double_val=[1e300]),
        tensor_value("i", "scalars", 9, int64_val=[-5]),
        tensor_value("hf", "scalars", 19, half_val=[int(np.float16(1.5).view(np.uint16))]),
        tensor_value("h", "histograms", 2, shape=[3, 3], tensor_content=hist.tobytes()),
        tensor_value("txt", "text", 7, shape=[2], string_val=[b"a", b"b"]),
    ]
    inf = summary_pb2.Summary.Value(tag="inf")  # non-finite numbers, spelled as the JSONL writer does
    inf.histo.min, inf.histo.max, inf.histo.num = -math.inf, math.nan, 2
    inf.histo.bucket_limit.extend([0.0, 1e308])
    inf.histo.bucket.extend([1.0, 1.0])
    values.append(inf)
    events = [event_pb2.Event(wall_time=10.0 + k, step=k, summary=summary_pb2.Summary(value=[v]))
              for k, v in enumerate(values)]
    path = tmp_path / "events.out.tfevents.4.h"
    data = write_events(path, events)
    res = whole(data)
    assert res.skipped == {}
    same(follow(data, [50]), res)  # the plugin of "s" is carried from one chunk to the next
    acc = tb_tensors(path)
    for tag in ("s", "d", "i", "hf"):
        assert res.scalars(tag)[1] == [float(tensor_util.make_ndarray(e.tensor_proto).item())
                                       for e in acc.Tensors(tag)]
    h, inf_h = [r for _, r in res.others if r["k"] == "hist"]
    assert (h["lo"], h["hi"], h["counts"], h["edges"], h["n"]) == (0.0, 3.0, [3, 0, 5], [0.0, 1.0, 2.0, 3.0], 8.0)
    assert (inf_h["lo"], inf_h["hi"], inf_h["edges"]) == ("-Infinity", "NaN", ["-Infinity", 0.0, "NaN"])
    (txt,) = [r for _, r in res.others if r["k"] == "text"]
    assert txt["text"] == "a\nb"


def frame(data: bytes) -> bytes:
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", tfe.masked_crc32c(head)) + data + struct.pack("<I", tfe.masked_crc32c(data))


def test_a_written_zero_wall_time_reads_as_no_time_in_both_paths() -> None:
    value = b"\x0a\x01a\x15" + struct.pack("<f", 2.0)
    bulk = b"\x09" + bytes(8) + b"\x10\x05\x2a" + bytes([len(value) + 2, 0x0A, len(value)]) + value
    meta = b"\x4a\x00"  # an empty SummaryMetadata: not the bulk layout
    other = b"\x09" + bytes(8) + b"\x10\x06\x2a" + bytes([len(value) + 4, 0x0A, len(value) + 2]) + value + meta
    res = whole(frame(bulk) + frame(other))
    assert res.skipped == {}
    assert res.scalars("a") == ([5.0, 6.0], [2.0, 2.0], [NOW, NOW])


STYLES = ["float_val", "content_f32", "double_val", "content_f64", "int32", "content_i32", "two_values", "shaped"]


def tensor_scalar(tag: str, style: str, plugin: str | None, value: float) -> summary_pb2.Summary.Value:
    """A summary value holding a tensor as TF2 and new_style writers write scalars (and some
    that are not scalars)."""
    v = summary_pb2.Summary.Value(tag=tag)
    if plugin:
        v.metadata.plugin_data.plugin_name = plugin
    t = v.tensor
    if style in ("float_val", "content_f32", "two_values", "shaped"):
        t.dtype = 1
        if style == "content_f32":
            t.tensor_content = np.float32(value).tobytes()
        else:
            t.float_val.extend([value] * (2 if style == "two_values" else 1))
        if style in ("two_values", "shaped"):
            t.tensor_shape.dim.add(size=2 if style == "two_values" else 1)
        else:
            t.tensor_shape.SetInParent()  # an empty shape, written as TF2 writes it
    elif style in ("double_val", "content_f64"):
        t.dtype = 2
        if style == "double_val":
            t.double_val.append(value)
        else:
            t.tensor_content = np.float64(value).tobytes()
    elif style == "content_i32":  # as long as a float_val one, but an int
        t.dtype = 3
        t.tensor_content = np.int32(value).tobytes()
        t.tensor_shape.SetInParent()
    else:
        t.dtype = 3
        t.int_val.append(int(value) % 1000)
    return v


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(STYLES), st.booleans(),
                          st.floats(-1e6, 1e6, width=32)), min_size=1, max_size=400),
       st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["scalars", "text"])),
       st.lists(st.integers(50, 3000), min_size=1, max_size=4))
def test_tensor_scalars_read_as_tensorboard_reads_them_however_chunked(
        tmp_path: Path, values: list[Any], plugins: dict[str, str], sizes: list[int]) -> None:
    seen: set[str] = set()
    events = []
    for k, (tag, style, meta, x) in enumerate(values):
        first = tag not in seen  # writers put the metadata on a tag's first value at least
        seen.add(tag)
        plugin = plugins.get(tag, "scalars") if first or meta else None
        v = tensor_scalar(tag, style, plugin, x)
        events.append(event_pb2.Event(wall_time=100.0 + k, step=k, summary=summary_pb2.Summary(value=[v])))
    path = tmp_path / "events.out.tfevents.5.h"
    data = write_events(path, events)
    res = whole(data)
    same(follow(data, sizes), res)
    acc = tb_tensors(path)
    for tag in seen:
        if plugins.get(tag, "scalars") != "scalars":
            assert not any(tag in seg for seg in res.segments)
            continue
        tb = [(float(e.step), tensor_util.make_ndarray(e.tensor_proto), e.wall_time) for e in acc.Tensors(tag)]
        tb = [(s, float(a.ravel()[0]), t) for s, a, t in tb if a.size == 1]
        assert list(zip(*res.scalars(tag))) == tb
    bad = sum(1 for tag, style, _, _ in values  # a tensor of two values; a number as a "text"
              if plugins.get(tag, "scalars") == "text" or style == "two_values")
    assert res.skipped.get("bad_value", 0) == bad


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(STYLES), st.booleans()),
                min_size=2, max_size=60),
       st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(["scalars", "text"])),
       st.integers(1, 59), st.booleans(), st.booleans())
def test_the_state_before_bytes_reads_their_points_as_the_state_kept_did(
        tmp_path: Path, values: list[Any], plugins: dict[str, str], cut: int, restart: bool, corrupt: bool) -> None:
    """A cursor older than the kept states: the bytes from it decode with ``state_before`` (built from
    the state after them) to the points the state kept at the cursor gives, or to a new attempt."""
    seen: set[str] = set()
    events = []
    first_plugin = []  # whether each event first writes its tag's plugin
    for k, (tag, style, meta) in enumerate(values):
        plugin = plugins.get(tag, "scalars") if tag not in seen or meta else None
        first_plugin.append(tag not in seen)
        seen.add(tag)
        v = tensor_scalar(tag, style, plugin, float(k))
        events.append(event_pb2.Event(wall_time=100.0 + k, step=k, summary=summary_pb2.Summary(value=[v])))
    cut = min(cut, len(events) - 1)
    if restart:  # what purge_step writes, right after the cursor
        events.insert(cut, event_pb2.Event(wall_time=99.0, step=cut, session_log=event_pb2.SessionLog(status=1)))
        first_plugin.insert(cut, False)
    data = bytearray(write_events(tmp_path / "events.out.tfevents.6.h", events))
    starts = record_starts(bytes(data))
    at = starts[cut + 1]  # the file version record, then the events
    # a corrupt record after the cursor; not one that first writes a plugin (state_before's limit)
    hit = next((j for j in range(cut + 1, len(events)) if not first_plugin[j]), None)
    if corrupt and hit is not None:
        data[starts[hit + 1] + 14] ^= 0x40
    r = TfEventsReader()
    _, kept = r.decode(bytes(data[:at]), r.new_state(), now=NOW)
    rest = bytes(data[at:])
    got, after = r.decode(rest, kept, now=NOW)
    again, _ = r.decode(rest, r.state_before(rest, after), now=NOW)
    if len(again.segments) == 1:
        a, b = Result(), Result()
        a.add(got)
        b.add(again)
        same(a, b)
    else:  # a restart read as a new attempt: the caller sends a snapshot instead
        assert restart


def test_new_style_scalars_of_torch_read_in_bulk_after_the_first_chunk(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path))
    for step in range(3000):
        w.add_scalar("f", step / 7, step, new_style=True, walltime=1e9 + step)
        w.add_scalar("d", step / 7, step, new_style=True, double_precision=True, walltime=1e9 + step)
    w.close()
    path = event_file(tmp_path)
    data = path.read_bytes()
    r = TfEventsReader()
    n = r.complete(data[:4096])
    first, state = r.decode(data[:n], r.new_state(), now=NOW)
    assert state.plugins == {"f": "scalars", "d": "scalars"}
    arr = np.frombuffer(data[n:], np.uint8)
    frames = tfr.frame(arr, final=True)
    bulk = tfs.ScalarBulk(arr, tfr.unaligned_views(arr)[0], frames.starts + 12, frames.lengths, state.plugins)
    assert bulk.accept.all() and bulk.accept.shape[0] == 6000 - first.records  # every later record in bulk
    res = Result()
    res.add(first)
    res.add(r.decode(data[n:], state, now=NOW)[0])
    same(res, whole(data))
    acc = tb_tensors(path)
    for tag in ("f", "d"):
        assert res.scalars(tag)[1] == [float(tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]


# ---- a file written while it is read ----------------------------------------------------------------


def test_a_file_written_live_is_followed_to_the_same_result(tmp_path: Path) -> None:
    w = SummaryWriter(str(tmp_path), flush_secs=3600)
    r = TfEventsReader()
    state = r.new_state()
    res = Result()
    buf = b""
    offset = 0
    path: Path | None = None
    rng = np.random.default_rng(0)
    for step in range(400):
        w.add_scalar("loss", float(rng.normal()), step)
        if step % 10 == 0:
            w.add_histogram("w", torch.from_numpy(rng.normal(size=50)), step)
        if step % 3 == 0:
            w.flush()
        path = path or event_file(tmp_path)
        with open(path, "rb") as f:  # read whatever is there, flushed or not
            f.seek(offset)
            new = f.read()
        offset += len(new)
        buf += new
        n = r.complete(buf)
        if n:
            parsed, state = r.decode(buf[:n], state, now=NOW)
            res.add(parsed)
            buf = buf[n:]
    w.close()
    assert path is not None
    with open(path, "rb") as f:
        f.seek(offset)
        buf += f.read()
    n = r.complete(buf)
    assert n == len(buf)
    parsed, state = r.decode(buf, state, now=NOW)
    res.add(parsed)
    same(res, whole(path.read_bytes()))
    assert_scalars_match(res, tb_scalars(path))
    assert len(res.scalars("loss")[0]) == 400


# ---- the parts ---------------------------------------------------------------------------------------


def test_claims_by_name_and_by_first_record(torch_file: Path, tmp_path: Path) -> None:
    r = TfEventsReader()
    data = torch_file.read_bytes()
    assert r.claims("runs/a/events.out.tfevents.1700000000.host.1.0", b"") == 1.0
    assert r.claims("renamed.bin", data[:4096]) == 0.95
    assert r.claims("renamed.bin", data[:20]) == 0.9  # the first record is not all there yet
    assert r.claims("rank0.jsonl", b'{"k":"header","format":"tailboard"}\n') == 0.0
    assert r.claims("short", data[:11]) == 0.0
    flipped = bytes([data[0] ^ 1]) + data[1:4096]
    assert r.claims("renamed.bin", flipped) == 0.0


def test_tags_are_grouped_exactly() -> None:
    """Tags first seen late in a chunk, and tags whose hashes collide, are still told apart."""
    mix, full = int(tfs._MIX), (1 << 64) - 1
    w0, w1 = 0x1122334455667788, 0x0102030405060708
    other1 = w1 ^ (w0 * mix & full) ^ ((w0 + 1) * mix & full)  # the same hash as (w0, w1)
    clash_a = w0.to_bytes(8, "little") + w1.to_bytes(8, "little")
    clash_b = (w0 + 1).to_bytes(8, "little") + other1.to_bytes(8, "little")
    tags = [b"a"] * 300 + [b"b", b"a", clash_a, clash_b, clash_a, b"", b"x" * 20]
    blob, starts = b"", []
    for t in tags:
        starts.append(len(blob))
        blob += t + bytes(9)  # a tag is followed by at least 7 more bytes in a record
    u64, _ = tfr.unaligned_views(np.frombuffer(blob, np.uint8))
    names, ids = tfs._group_tags(u64, np.array(starts), np.array([len(t) for t in tags]))
    assert [names[i] for i in ids.tolist()] == tags
    assert len(names) == len(set(names)) == 6


def test_no_length_has_a_masked_crc_of_zero_so_runs_of_zeros_are_skipped_quickly() -> None:
    for high in range(256):  # every length below 2**24 (the framing's shortcut relies on it)
        assert (tfr._mask(tfr._LOW_CRCS ^ tfr._HIGH_CRCS[high]) != 0).all()
    r = TfEventsReader()
    head = struct.pack("<Q", 0)
    empty = head + struct.pack("<I", tfe.masked_crc32c(head)) + struct.pack("<I", tfe.masked_crc32c(b""))
    data = bytes(1 << 20) + empty * 3  # a zeroed stretch (a crashed file system), then records
    assert r.complete(data) == len(data)
    parsed, _ = r.decode(data, r.new_state(), now=NOW)
    assert parsed.skipped == {"bad_length": 1, "unsupported_event": 3}


def test_crc32c_python_and_package_agree() -> None:
    assert tfr._crc32c_python(b"123456789") == 0xE3069283  # the CRC-32C check value
    rng = np.random.default_rng(5)
    for size in [0, 1, 2, 3, 4, 5, 7, 8, 31, 64, 1000, 4097]:
        blob = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
        want = tfr._crc32c_python(blob)
        for name, packaged in tfr.PACKAGED_CRC32C.items():
            assert packaged(memoryview(blob + b"x")[:size]) == want, name
        arr = np.frombuffer(blob + bytes(8), np.uint8)
        if size:
            _, u32 = tfr.unaligned_views(arr)
            assert int(tfr._crc_strided(arr, u32, np.array([0]), size)[0]) == want
    assert tfe.masked_crc32c(b"") == 0xA282EAD8


def test_reads_without_a_crc32c_package(torch_file: Path, tmp_path: Path) -> None:
    """The module imports and reads the same without them (a child where they are hidden)."""
    code = (
        "import sys, pickle; sys.modules['crc32c'] = sys.modules['google_crc32c'] = None\n"
        "from tailboard.sidecar.readers import tfevents as t, tfrecord as c\n"
        "assert not c.PACKAGED_CRC32C and c.crc32c is c._crc32c_python\n"
        "r = t.TfEventsReader()\n"
        f"p, _ = r.decode(open({str(torch_file)!r}, 'rb').read(), r.new_state(), now={NOW})\n"
        "sys.stdout.buffer.write(pickle.dumps(p))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, timeout=60)
    import pickle

    res = Result()
    res.add(pickle.loads(out.stdout))
    same(res, whole(torch_file.read_bytes()))


def test_one_reader_serves_streams_in_turn(torch_file: Path, corrupt_file: Path) -> None:
    """What complete remembers of one buffer is never used for other bytes of the same length."""
    a, b = torch_file.read_bytes(), corrupt_file.read_bytes()
    size = min(len(a), len(b)) - 1000
    r = TfEventsReader()
    n = r.complete(a[:size])
    other = b[:n]  # the same length, other bytes
    mine, fresh = Result(), Result()
    mine.add(r.decode(other, r.new_state(), now=NOW)[0])
    fresh.add(TfEventsReader().decode(other, r.new_state(), now=NOW)[0])
    same(mine, fresh)
    assert fresh.skipped.get("bad_crc") == 1


def test_state_is_small_and_picklable(torch_file: Path) -> None:
    import pickle

    r = TfEventsReader()
    _, state = r.decode(torch_file.read_bytes(), r.new_state(), now=NOW)
    assert pickle.loads(pickle.dumps(state)) == state
    assert state.file_version == "brain.Event:2" and state.started
    with pytest.raises(TypeError, match="new_state"):
        r.decode(b"", {}, now=NOW)


def test_protowire_rejects_malformed_messages() -> None:
    assert pw.fields(b"\x08\x96\x01\x12\x02hi") == {1: [150], 2: [b"hi"]}
    for bad in (b"\x08", b"\x08\xff", b"\x12\x05ab", b"\x0b", b"\x00\x01", b"\x0d\x00", b"\x08" + b"\xff" * 11):
        with pytest.raises(pw.WireError):
            pw.fields(bad)
    assert pw.as_sint64(pw.read_varint(b"\xf9\xff\xff\xff\xff\xff\xff\xff\xff\x01", 0)[0]) == -7
    assert pw.packed_varints([b"\x01\x96\x01", 3]) == [1, 150, 3]
