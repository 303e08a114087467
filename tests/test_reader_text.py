"""The text log reader: the real stdout of a transformers Trainer (tqdm bars, cursor codes, the
dicts it prints) gives the metrics its trainer_state.json holds; the line formats of the PyTorch
tutorials, Keras and logging are read; clock times, dates, versions and addresses never become
metrics; any chunking reads as one whole read; no input raises."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readerkit import Points, keep
from tailboard.sidecar.readers.textlog import TextReader
from trainerkit import hf_script


def read(reader: TextReader, data: bytes, cuts: list[int] = ()) -> tuple[list[Points], int]:
    """Feed ``data`` split at ``cuts`` as a tail would: bytes held until ``complete`` says a record ends."""
    state, buf, attempts, records = reader.new_state(), b"", [{}], 0
    at = 0
    for b in sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]:
        buf += data[at:b]
        at = b
        n = reader.complete(buf)
        if n:
            parsed, state = reader.decode(buf[:n], state, now=0.0)
            assert parsed.skipped == {}
            buf = buf[n:]
            keep(attempts, parsed)
            records += parsed.records
    return attempts, records


def lines(*text: str, end: str = "\n") -> bytes:
    return "".join(t + end for t in text).encode()


TRAINER = hf_script(r"""
torch.manual_seed(0)
trainer = Trainer(model=Model(), args=arguments(sys.argv[1], save_strategy="no", disable_tqdm=False),
                  train_dataset=Data(), eval_dataset=Data())
trainer.train()
trainer.save_state()
""")


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[dict[str, Any]]]:
    """A real transformers Trainer on CPU, its stdout and stderr tee'd to one file as a shell would."""
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("hf")
    with open(out / "train.log", "wb") as log:
        subprocess.run([sys.executable, "-c", TRAINER, str(out)], stdout=log, stderr=subprocess.STDOUT,
                       check=True, timeout=300)
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    return (out / "train.log").read_bytes(), history


def test_transformers_stdout_gives_the_metrics_of_its_trainer_state(trainer_run: Any) -> None:
    log, history = trainer_run
    assert b"\r" in log and b"it/s]" in log and b"\x1b[A" in log  # tqdm bars and cursor moves
    (got,), records = read(TextReader(), log)
    want: Points = {}
    for entry in history:
        for name, value in entry.items():
            if name not in ("epoch", "step", "total_flos"):  # what the Trainer prints
                want.setdefault(name, []).append((entry["epoch"], value))
    assert records == len(history)
    assert got.keys() == want.keys()
    for name in want:  # printed with 4 significant digits
        assert [s for s, _ in got[name]] == [s for s, _ in want[name]], name
        assert all(math.isclose(a, b, rel_tol=1e-3) for (_, a), (_, b) in zip(got[name], want[name])), name


def test_pytorch_tutorial_lines_count_steps_across_epochs() -> None:
    # a step counter with a total restarts each epoch: the step is the global one
    log = lines(*(f"Epoch [{e}/2], Step [{s}/600], Loss: {e + s / 1000:.4f}" for e in (1, 2) for s in (300, 600)))
    assert read(TextReader(), log)[0] == [{"Loss": [(300.0, 1.3), (600.0, 1.6), (900.0, 2.3), (1200.0, 2.6)]}]
    # counted from epoch 0
    log = lines("Epoch [0/2], Step [300/600], Loss: 1.0", "Epoch [1/2], Step [300/600], Loss: 2.0")
    assert read(TextReader(), log)[0] == [{"Loss": [(300.0, 1.0), (900.0, 2.0)]}]
    # a counter seen not to go back when the epoch changes is global
    log = lines("Epoch [1/2], Step [600/1200], Loss: 1.0", "Epoch [2/2], Step [1200/1200], Loss: 2.0")
    assert read(TextReader(), log)[0] == [{"Loss": [(600.0, 1.0), (1200.0, 2.0)]}]
    # PyTorch's MNIST example: samples seen within the epoch, in brackets
    log = lines("Train Epoch: 1 [640/60000 (1%)]\tLoss: 0.500000", "Train Epoch: 2 [640/60000 (1%)]\tLoss: 0.250000",
                "", "Test set: Average loss: 0.0334, Accuracy: 9894/10000 (99%)")
    assert read(TextReader(), log)[0] == [{"Loss": [(640.0, 0.5), (60640.0, 0.25)], "Average loss": [(60640.0, 0.0334)]}]


def test_keras_progress_lines_are_read_at_their_last_redraw() -> None:
    bar = "\r{n}/600 [{b}] - ETA: 3s - loss: {loss:.4f} - accuracy: 0.5000"
    redraws = "".join(bar.format(n=n, b="=" * (n // 20), loss=9.0) for n in (1, 100, 300))
    log = ("Epoch 1/2\n" + redraws + "\r600/600 [==============================] - 3s 4ms/step - loss: 0.4100 - accuracy: 0.8800\n"
           "Epoch 2/2\n" + redraws + "\r600/600 ━━━━━━━━━━━━━━━━━━━━ 3s 4ms/step - accuracy: 0.9000 - loss: 0.3000 - val_loss: 0.3500\n")
    assert read(TextReader(), log.encode())[0] == [{
        "loss": [(1.0, 0.41), (2.0, 0.3)], "accuracy": [(1.0, 0.88), (2.0, 0.9)], "val_loss": [(2.0, 0.35)]}]


def test_pairs_steps_and_colours() -> None:
    log = lines("\x1b[32mINFO\x1b[0m step=10 loss=\x1b[1;31m0.41\x1b[0m acc=88.5% train/lr: 1e-4 'val loss': '0.5' top@1=0.2",
                "iter 20: loss=nan grad=-inf",
                "global step 30 | Train Loss: 0.3, Val Loss: 0.35",
                "validation: acc=0.9")  # no step of its own: it belongs where training is
    assert read(TextReader(), log)[0] == [{
        "loss": [(10.0, 0.41), (20.0, "nan")], "acc": [(10.0, 88.5), (30.0, 0.9)], "train/lr": [(10.0, 1e-4)],
        "val loss": [(10.0, 0.5)], "top@1": [(10.0, 0.2)], "grad": [(20.0, -math.inf)],
        "Train Loss": [(30.0, 0.3)], "Val Loss": [(30.0, 0.35)]}]


def test_lines_without_steps_are_numbered_and_epochs_are_steps() -> None:
    log = lines("starting", "loss=1.0", "loss=0.5", "epoch 1 loss=0.25")
    assert read(TextReader(), log)[0] == [{"loss": [(1.0, 1.0), (2.0, 0.5), (1.0, 0.25)]}]


def test_numbers_that_are_not_metrics() -> None:
    log = lines(
        "2024-01-01 12:03:44,123 INFO started at 12:03:44 on 10.0.0.1:8080",
        "torch version: 2.1.0 cuda=12.1.105 python 3.11.4",
        "torch==2.1.0", "numpy>=1.24",
        "date=2024-01-01 ip=192.168.1.20 frac=3/4 took=3.2s hex=0x1f size=12MB ratio=1:4",
        "Saving model checkpoint to out/checkpoint-500",
        "loss 0.41 (no key)",
        "Epoch 3: 100%|##########| 600/600 [00:10<00:00, 58.2it/s, v_num=0, loss=0.41]",
    )
    assert read(TextReader(), log) == ([{}], 0)


def test_wall_time_from_the_line() -> None:
    r = TextReader()
    parsed, _ = r.decode(lines("2024-01-01 12:03:44,500 step=1 loss=0.5", "2024-01-01T12:00:00Z step=2 loss=0.4",
                               "t=1700000000.25 step=3 loss=0.3", "time=0.52 step=4 loss=0.2"), r.new_state(), now=7.0)
    _, _, times = parsed.segments[0]["loss"]
    local = datetime(2024, 1, 1, 12, 3, 44, 500000).timestamp()
    assert list(times) == [local, 1704110400.0, 1700000000.25, 7.0]
    assert list(parsed.segments[0]["time"][1]) == [0.52]  # a duration stays a metric


def test_a_script_run_again_with_tee_a_is_a_new_attempt() -> None:
    log = lines("step=1 loss=1", "step=2 loss=0.5", "step=1 loss=0.9", "step=2 loss=0.4")
    assert read(TextReader(), log)[0] == [{"loss": [(1.0, 1.0), (2.0, 0.5)]}, {"loss": [(1.0, 0.9), (2.0, 0.4)]}]


def test_a_user_pattern_replaces_the_rules() -> None:
    r = TextReader(pattern=r"it (?P<step>\d+) \| (?P<loss>\S+) \| (?P<acc>\S+) \| (?P<time>\S+)")
    log = lines("it 5 | 0.5 | 91% | 1700000000", "it 6 | nan | n/a | x", "loss=0.1 not matched")
    parsed, _ = r.decode(log, r.new_state(), now=3.0)
    assert {k: (list(s), [repr(float(x)) for x in v], list(t)) for k, (s, v, t) in parsed.segments[0].items()} == {
        "loss": ([5.0, 6.0], ["0.5", "nan"], [1700000000.0, 3.0]),
        "acc": ([5.0], ["91.0"], [1700000000.0])}
    with pytest.raises(ValueError, match="not a regular expression"):
        TextReader(pattern="(")
    with pytest.raises(ValueError, match="names no metric group"):
        TextReader(pattern=r"step (?P<step>\d+)")


def test_claims() -> None:
    r = TextReader()
    assert r.claims("run/train.log", lines("loading data", "step=1 loss=0.5")) == 0.5
    assert r.claims("slurm-123.out", lines(*["epoch 1 loss: 0.5"] * 3)) == 0.6
    assert r.claims("requirements.txt", lines("torch==2.1.0", "numpy>=1.24")) == 0.0
    assert r.claims("notes.md", lines("loss=0.5")) == 0.0


def test_complete_waits_for_a_newline_or_a_redraw() -> None:
    r = TextReader()
    assert r.complete(b"loss=1\nloss=") == 7
    assert r.complete(b"bar 1\rbar 2") == 6  # a redraw ended the first piece
    assert r.complete(b"loss=1\r") == 0  # perhaps the first half of a CRLF
    assert r.complete(b"loss=1\r\n") == 8


CORPUS = [
    "step=1 loss=0.5", "Epoch [1/2], Step [100/600], Loss: 0.4100", "Epoch 2/10", "\x1b[31mloss: nan\x1b[0m",
    "  3%|▎         | 20/600 [00:01<00:30, 19.0it/s]", "600/600 [====] - 3s 4ms/step - loss: 0.41 - accuracy: 0.88",
    "{'loss': '3.6', 'epoch': '0.5'}", "12:03:44 version 1.2.3", "", "Train Epoch: 1 [640/60000 (1%)]\tLoss: 0.1",
    "t=1700000000 iter 7 acc=0.9", "global step 3 | Val Loss: 0.35", "ünïcode=1.5",
]


@settings(max_examples=300, deadline=None)
@given(picked=st.lists(st.tuples(st.sampled_from(CORPUS), st.sampled_from(["\n", "\r\n", "\r"])), max_size=30),
       cuts=st.lists(st.integers(0, 2000), max_size=12))
def test_any_chunking_reads_as_one_whole_read(picked: list[tuple[str, str]], cuts: list[int]) -> None:
    data = "".join(a + b for a, b in picked).encode()
    assert read(TextReader(), data, cuts) == read(TextReader(), data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_any_bytes_never_raise(data: bytes) -> None:
    r = TextReader()
    r.claims("x.log", data)
    r.decode(data, r.new_state(), now=0.0)
    TextReader(pattern=r"(?P<step>\S+) (?P<x>\S+) (?P<time>\S+)").decode(data, r.new_state(), now=0.0)


def test_a_truncated_log_is_new_lines_and_its_steps_decide_the_attempt() -> None:
    """``tee`` without ``-a`` (another run: steps start over) and a copy-truncate rotation (the same
    run goes on): both are read again from offset 0 with ``rewound``."""
    r = TextReader()
    attempts: list[Points] = [{}]
    state = r.new_state()
    for content in (b"step=1 loss=1\nstep=2 loss=0.5\n", b"step=3 loss=0.25\n", b"step=1 loss=0.9\n"):
        parsed, state = r.decode(content, state, now=0.0)
        keep(attempts, parsed)
        state = r.rewound(state)
    assert attempts == [{"loss": [(1.0, 1.0), (2.0, 0.5), (3.0, 0.25)]}, {"loss": [(1.0, 0.9)]}]


# -- the bulk decode (textfast) reads every chunk as the line-by-line decode does -----------------

def _num(draw: Any) -> str:
    """A number as scripts print them: fixed, exponent, 4 significant digits, repr, NaN/inf, long."""
    x = draw(st.one_of(st.integers(-3, 3), st.floats(-1e6, 1e6, allow_nan=False), st.sampled_from([0.0, -0.0, 1e-30, 7e22, 3e-23])))
    fmt = draw(st.sampled_from(["{:.4f}", "{:.3e}", "{:.4g}", "{!r}", "{:.0f}", "{:.22f}", "nan", "-inf", "Infinity",
                                "NaN", "1e400", "{:+.2f}", "{:.2E}"]))
    return fmt.format(float(x)) if "{" in fmt else fmt


def _int(draw: Any, hi: int = 30) -> int:
    return draw(st.integers(0, hi))


def _stamp(draw: Any) -> str:
    y, mo, d = draw(st.sampled_from([1969, 1999, 2024, 2199, 2301])), _int(draw, 13), _int(draw, 32)
    h, mi, s = _int(draw, 25), _int(draw, 60), _int(draw, 60)
    frac = draw(st.sampled_from(["", ",123", ".5", ".123456789"]))
    zone = draw(st.sampled_from(["", "", "Z", "+05:30", "-0800", "+2500", "-00:00"]))
    sep = draw(st.sampled_from([" ", "T"]))
    return f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"


@st.composite
def _log_line(draw: Any) -> str:
    shape = draw(st.integers(0, 13))
    # now and then a counter past float range (400 digits): no step, epoch or total
    n = lambda hi=30: "9" * 400 if draw(st.integers(0, 40)) == 0 else _int(draw, hi)  # noqa: E731
    v = lambda: _num(draw)  # noqa: E731
    if shape == 0:
        line = f"{_stamp(draw)} INFO epoch {n(3)} | step {n()} | loss={v()} lr={v()} acc={v()}"
    elif shape == 1:
        line = f"Epoch [{n(3)}/3], Step [{n()}/{draw(st.sampled_from([30, 600]))}], Loss: {v()}"
    elif shape == 2:
        line = f"{n()}/30 [====] - {n(9)}s {n(9)}ms/step - loss: {v()} - accuracy: {v()}"
    elif shape == 3:
        line = f"Epoch {n(3)}/3"
    elif shape == 4:
        line = f"{{'loss': '{v()}', 'grad_norm': {v()}, 'learning_rate': '{v()}', 'epoch': '{v()}'}}"
    elif shape == 5:
        line = f"Train Epoch: {n(3)} [{n(600)}/600 ({n(99)}%)]\tLoss: {v()}"
    elif shape == 6:
        line = f"t={draw(st.sampled_from(['1700000000', '1700000000123', '5', v()]))} iter {n()} acc={v()} time={v()}"
    elif shape == 7:
        line = f"step={n()} m{n(9)}={v()} 'top {n(9)}': {v()}"
    elif shape == 8:
        line = f"global step {n()} | Val Loss: {v()}"
    elif shape == 9:
        line = f"validation: acc={v()}"
    elif shape == 10:
        line = f"epoch={v()} Step [{n()}/{n(600)}] loss={v()} timestamp={v()}"
    elif shape == 11:
        line = f"{_stamp(draw)} step={v()} loss={v()}"
    elif shape == 12:
        line = f"ünï step {n()} loss_λ={v()} acc=٣{n(9)} top@{n(9)}={v()} {_stamp(draw)}"
    else:
        line = draw(st.sampled_from(CORPUS))
    if draw(st.integers(0, 9)) == 0:
        line = f"\x1b[32m{line[:5]}\x1b[0m{line[5:]}"
    if draw(st.integers(0, 9)) == 0:
        line = f"  3%|▎   | {n()}/600 [00:01<00:30]\r" + line
    return line + draw(st.sampled_from(["\n", "\n", "\n", "\r\n", "\r"]))


def _same(a: Any, b: Any) -> None:
    """Equal Parsed results: the same segments (metric order too), arrays equal bit for bit."""
    assert [list(s) for s in a.segments] == [list(s) for s in b.segments]
    for sa, sb in zip(a.segments, b.segments):
        for name in sa:
            for x, y in zip(sa[name], sb[name]):
                assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert repr((a.records, a.last_step, a.last_time, a.started, a.skipped, a.others)) == \
        repr((b.records, b.last_step, b.last_time, b.started, b.skipped, b.others))


@settings(max_examples=400, deadline=None)
@given(picked=st.lists(_log_line(), max_size=60), repeat=st.integers(1, 4), bad_utf8=st.booleans(),
       cuts=st.lists(st.integers(0, 20000), max_size=8), min_group=st.sampled_from([1, 2, 16]))
def test_the_bulk_decode_reads_as_line_by_line(picked: list[str], repeat: int, bad_utf8: bool, cuts: list[int],
                                                min_group: int) -> None:
    from tailboard.sidecar.readers.textfast import decode_bulk

    data = "".join(picked * repeat).encode()  # repeated: a script run again, lines of one shape
    if bad_utf8:
        data = data.replace(b"ss", b"s\xffs").replace(b"\xce\xbb", b"\xce")
    r = TextReader()
    bulk, lines, at, buf = r.new_state(), r.new_state(), 0, b""
    for b in sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]:
        buf += data[at:b]
        at = b
        n = r.complete(buf)
        if n:
            got, bulk = decode_bulk(r, buf[:n], bulk, now=7.0, min_group=min_group)
            want, lines = r.decode_lines(buf[:n], lines, now=7.0)
            _same(got, want)
            assert repr(bulk) == repr(lines)
            buf = buf[n:]


def test_a_backlog_of_one_shape_is_read_in_bulk_as_line_by_line() -> None:
    """The shape of bench/ingest.py's text log, 3,000 lines in one chunk; a restart, NaN and a
    line of another shape inside; and every line read through the per-line rules gives the same."""
    text = "".join(f"2024-03-{1 + i // 1000:02d} 12:{i // 60 % 60:02d}:{i % 60:02d},{i % 1000:03d} INFO epoch {i // 1000} | "
                   f"step {i % 1700} | loss={1 + i / 3000:.4f} lr={5e-5 * (1 - i / 3000):.3e} acc={'nan' if i == 5 else i % 97}\n"
                   + ("validation: acc=0.5\n" if i % 500 == 0 else "") for i in range(3000))
    r = TextReader()
    got, st_bulk = r.decode(text.encode(), r.new_state(), now=0.0)
    want, st_lines = r.decode_lines(text.encode(), r.new_state(), now=0.0)
    _same(got, want)
    assert repr(st_bulk) == repr(st_lines)
    assert len(got.segments) == 2 and got.records == 3006


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "Australia/Lord_Howe", "America/St_Johns"])
def test_local_times_in_bulk_are_those_of_datetime_across_changes_of_offset(zone: str) -> None:
    """Times without a zone are local: in bulk, offsets are asked once an hour, and every second
    of an hour in which the offset changes (Lord Howe moves by 30 minutes, St John's is -3:30)."""
    import os
    import time

    from tailboard.sidecar.readers.textfast import decode_bulk

    days = ["2024-03-31", "2024-10-27", "2024-04-07", "2024-10-06", "2024-03-10", "2024-11-03"]
    log = lines(*(f"{day} {h:02d}:{m:02d}:{s:02d},{ms:03d} step={i} loss=0.5"
                  for i, (day, h, m, s, ms) in enumerate((day, h, m, s, (h * m * s) % 1000) for day in days
                                                         for h in range(24) for m in (0, 15, 29, 30, 59) for s in (0, 59))))
    old = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        r = TextReader()
        got, _ = decode_bulk(r, log, r.new_state(), now=0.0, min_group=1)
        want, _ = r.decode_lines(log, r.new_state(), now=0.0)
    finally:
        if old is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = old
        time.tzset()
    _same(got, want)
    assert len(set(got.segments[0]["loss"][2].tolist())) > 1000


def test_many_new_attempts_in_a_chunk_read_as_line_by_line() -> None:
    """Two scripts printing into one file (steps go back at every other line): after 16 attempts in
    a chunk the rest is read line by line, with the same result."""
    from tailboard.sidecar.readers.textfast import decode_bulk

    log = lines(*(f"step={i // 2 + (i % 2) * 5} loss={i}" for i in range(200)), "Epoch [1/2], Step [10/60], Loss: 1",
                "Epoch [2/2], Step [20/60], Loss: 1", "validation: acc=0.5")
    r = TextReader()
    got, st_bulk = decode_bulk(r, log, r.new_state(), now=0.0, min_group=1)
    want, st_lines = r.decode_lines(log, r.new_state(), now=0.0)
    _same(got, want)
    assert repr(st_bulk) == repr(st_lines) and len(got.segments) > 50
