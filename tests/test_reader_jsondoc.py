"""The whole-document JSON reader: the trainer_state.json versions a real transformers Trainer writes
(and a run resumed from an older checkpoint) followed at one path through truncating and renaming
rewrites, with no entry doubled or lost; a half-written document waits; any chunking reads as one
whole read; malformed documents are counted, never raised."""

from __future__ import annotations

import asyncio
import json
import math
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from readerkit import Points, keep
from tailboard.format import decode_float
from tailboard.sidecar.readers.jsondoc import JsonDocReader
from tailboard.sidecar.tail import Chunk, FileTail, Reset
from trainerkit import hf_script


def dump(doc: Any) -> bytes:
    """A document as transformers' TrainerState.save_to_json writes it."""
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


def read(reader: JsonDocReader, versions: list[bytes], cuts: list[int] = ()) -> tuple[list[Points], dict[str, int]]:
    """Each version read from offset 0 after a rewind, split at ``cuts`` as a tail would hand it."""
    state, attempts, skipped = reader.new_state(), [{}], {}
    for data in versions:
        state, buf, at = reader.rewound(state), b"", 0
        for b in sorted({c for c in cuts if 0 < c < len(data)}) + [len(data)]:
            buf += data[at:b]
            at = b
            while buf and (n := reader.complete(buf)):
                parsed, state = reader.decode(buf[:n], state, now=0.0)
                buf = buf[n:]
                keep(attempts, parsed)
                for k, v in parsed.skipped.items():
                    skipped[k] = skipped.get(k, 0) + v
    return attempts, skipped


class Follow:
    """The wiring's contract, with the real tail: chunks buffered up to the reader's record ends; on
    a reset the state goes through ``rewound`` and the points already kept stay."""

    def __init__(self, reader: JsonDocReader, path: Path) -> None:
        self.reader, self.tail = reader, FileTail(str(path))
        self.state, self.buf = reader.new_state(), b""
        self.attempts: list[Points] = [{}]
        self.others: list[dict[str, Any]] = []
        self.resets = 0

    def poll(self) -> int:
        """Points emitted by this poll."""
        got = 0
        for ev in self.tail.read():
            if isinstance(ev, Reset):
                self.state, self.buf = self.reader.rewound(self.state), b""
                self.resets += 1
            elif isinstance(ev, Chunk):
                self.buf += ev.data
                while self.buf and (n := self.reader.complete(self.buf)):
                    parsed, self.state = self.reader.decode(self.buf[:n], self.state, now=0.0)
                    self.buf = self.buf[n:]
                    assert parsed.skipped == {}
                    keep(self.attempts, parsed)
                    self.others += [rec for _, rec in parsed.others]
                    got += sum(len(s) for seg in parsed.segments for s, _, _ in seg.values())
        return got


def history_points(history: list[dict[str, Any]]) -> Points:
    """What a log_history holds: per entry, every number but the step at that step."""
    out: Points = {}
    for entry in history:
        for name, value in entry.items():
            if name != "step" and isinstance(value, (int, float)):
                out.setdefault(name, []).append((float(entry["step"]), float(value)))
    return out


TRAINER = hf_script(r"""
def run(out, seed, resume=None):
    torch.manual_seed(0)
    trainer = Trainer(model=Model(), args=arguments(out, save_steps=5, disable_tqdm=True),
                      train_dataset=Data(seed), eval_dataset=Data(seed))
    trainer.train(resume_from_checkpoint=resume)
    trainer.save_state()

run(sys.argv[1] + "/first", 0)
# resumed from its first checkpoint on other data: the history after step 5 is another one
run(sys.argv[1] + "/resumed", 1000, resume=sys.argv[1] + "/first/checkpoint-5")
""")


def versions(run: Path) -> list[bytes]:
    """A run's trainer_state.json in the order the Trainer wrote them: each checkpoint's, then the last."""
    ckpts = sorted(run.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(re.findall(r"\d+", p.parent.name)[0]))
    return [p.read_bytes() for p in ckpts] + [(run / "trainer_state.json").read_bytes()]


@pytest.fixture(scope="module")
def trainer_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[bytes], list[bytes]]:
    pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("hf")
    subprocess.run([sys.executable, "-c", TRAINER, str(out)], check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return versions(out / "first"), versions(out / "resumed")


def test_trainer_state_rewritten_in_place_then_by_a_resumed_run(tmp_path: Path, trainer_runs: Any) -> None:
    first, resumed = trainer_runs
    assert len(first) == 5 and len(resumed) == 4  # checkpoints 5, 10, 15, 16 (10, 15, 16 resumed), then the end
    path = tmp_path / "trainer_state.json"
    f: Follow | None = None
    emitted = []
    for i, doc in enumerate(first + resumed):
        if i % 2:  # the way save_to_json writes it: truncated and written in place
            path.write_bytes(doc)
        else:  # or written aside and renamed over it
            (tmp_path / "tmp.json").write_bytes(doc)
            os.replace(tmp_path / "tmp.json", path)
        f = f or Follow(JsonDocReader(), path)
        emitted.append(f.poll())
    assert f is not None and f.resets == len(first + resumed) - 1
    h1 = json.loads(first[-1])["log_history"]
    h2 = json.loads(resumed[-1])["log_history"]
    assert h2[:3] == h1[:3] and h2[3] != h1[3]  # the resumed run shares the history up to step 5 only
    assert f.attempts == [history_points(h1), history_points(h2)]
    # each save emitted only its new entries; the resumed run's first save, its whole history
    sizes = [len(json.loads(d)["log_history"]) for d in first + resumed]
    per_entry = [sum(1 for v in e.values() if isinstance(v, (int, float))) - 1 for e in h1]
    assert emitted[:5] == [sum(per_entry[a:b]) for a, b in zip([0] + sizes[:4], sizes[:5])]
    # the run's plain fields are its config, sent when they change
    configs = [rec["config"] for rec in f.others]
    assert configs[0]["train_batch_size"] == 4 and configs[-1]["global_step"] == 16
    assert len(configs) < len(first + resumed)


def test_checkpoint_files_fed_as_one_stream(trainer_runs: Any) -> None:
    """checkpoint-5/, checkpoint-10/, ... hold versions of one history: fed one after the other,
    each adds its new entries only."""
    first, _ = trainer_runs
    attempts, skipped = read(JsonDocReader(), first)
    assert skipped == {} and attempts == [history_points(json.loads(first[-1])["log_history"])]


def test_a_half_written_document_waits() -> None:
    doc = dump({"log_history": [{"loss": math.nan, "step": 1, "note": "ünï"}, {"loss": 1e400, "step": 2}],
                "global_step": 2})
    r = JsonDocReader()
    for i in range(1, len(doc) - 1):
        assert r.complete(doc[:i]) == 0, doc[:i]
    assert r.complete(doc[:-1]) == len(doc) - 1 and r.complete(doc) == len(doc)
    assert r.complete(doc + b"\n  " + doc[:5]) == len(doc) + 3  # the next document is not one yet
    (got,), _ = read(r, [doc])
    assert got == {"loss": [(1.0, "nan"), (2.0, math.inf)]}


def test_shapes() -> None:
    r = JsonDocReader()
    # Keras' history, saved again after each epoch
    v1 = dump({"loss": [1.0, 0.5], "val": {"acc": [0.1, 0.2]}, "lr": 0.1})
    v2 = dump({"loss": [1.0, 0.5, 0.25], "val": {"acc": [0.1, 0.2, 0.3]}, "lr": 0.1})
    assert read(r, [v1, v2])[0] == [{"loss": [(0.0, 1.0), (1.0, 0.5), (2.0, 0.25)],
                                     "val/acc": [(0.0, 0.1), (1.0, 0.2), (2.0, 0.3)]}]
    # with its own steps and times; a value that is no number is no point
    doc = dump({"epoch": [1, 2, 3], "time": [1.7e9, 1.7e9 + 1, 1.7e9 + 2], "loss": [1.0, None, "NaN"]})
    parsed, _ = r.decode(doc, r.new_state(), now=0.0)
    s, v, t = parsed.segments[0]["loss"]
    assert list(s) == [1.0, 3.0] and math.isnan(v[1]) and list(t) == [1.7e9, 1.7e9 + 2]
    # a list of records, growing; then rewritten shorter: a new attempt with the whole document
    recs = [{"iteration": i, "loss": 1.0 / (i + 1)} for i in range(4)]
    got, _ = read(r, [dump(recs[:2]), dump(recs), dump(recs[:1])])
    assert got == [{"loss": [(0.0, 1.0), (1.0, 0.5), (2.0, 1 / 3), (3.0, 0.25)]}, {"loss": [(0.0, 1.0)]}]
    # a column rewritten with other values: a new attempt too
    got, _ = read(r, [dump({"loss": [1.0, 2.0]}), dump({"loss": [1.0, 9.0, 3.0]})])
    assert got == [{"loss": [(0.0, 1.0), (1.0, 2.0)]}, {"loss": [(0.0, 1.0), (1.0, 9.0), (2.0, 3.0)]}]
    # steps going back inside a history start an attempt, as in JSONL
    got, _ = read(r, [dump([{"step": 5, "x": 1}, {"step": 1, "x": 2}])])
    assert got == [{"x": [(5.0, 1.0)]}, {"x": [(1.0, 2.0)]}]


def test_attempts_only_on_real_evidence_as_in_json_lines() -> None:
    """A history is stepped as foreign JSON lines are: per-iteration and per-epoch entries each keep
    their counter, an entry with none (a summary) takes its place in the history, an ``iter``
    counted within each epoch carries on; none of them starts an attempt, in one version or across
    two. A step going back on entries of the same fields still does."""
    its = [{"iter": 10, "loss": 0.5}, {"iter": 20, "loss": 0.25}]
    later = [{"epoch": 1, "val_acc": 0.5}, {"iter": 30, "loss": 0.125}, {"epoch": 2, "val_acc": 0.75},
             {"runtime": 12.5}]
    want = {"loss": [(10.0, 0.5), (20.0, 0.25), (30.0, 0.125)], "val_acc": [(1.0, 0.5), (2.0, 0.75)],
            "runtime": [(5.0, 12.5)]}
    for versions in ([dump(its + later)], [dump(its), dump(its + later)]):
        assert read(JsonDocReader(), versions) == ([want], {})
    per_epoch = [{"epoch": e, "iter": i, "mode": "train", "loss": e + i / 10} for e in (1, 2) for i in (1, 2, 3)]
    (got,), _ = read(JsonDocReader(), [dump(per_epoch)])
    assert got["train/loss"] == [(float(s), e + i / 10) for s, (e, i) in enumerate(
        [(e, i) for e in (1, 2) for i in (1, 2, 3)], start=1)]
    got, _ = read(JsonDocReader(), [dump(its + [{"iter": 10, "loss": 1.0}])])  # started again
    assert got == [{"loss": [(10.0, 0.5), (20.0, 0.25)]}, {"loss": [(10.0, 1.0)]}]


def test_malformed_documents_are_counted_once() -> None:
    r = JsonDocReader(max_bytes=1000)
    bad = b'{"log_history": [1, {"loss": 1, "step": 1}],,}'
    assert r.complete(bad) == len(bad)
    cases = {
        bad: {"malformed_json": 1},
        b'{"a": "\xff"}': {"invalid_utf8": 1},
        dump({"x": "y" * 2000}): {"too_large": 1},
        dump({"model_type": "bert", "hidden_size": 768}): {"no_metrics": 1},  # a config.json
        b"[" * 5000 + b"]" * 5000: {"too_large": 1},
    }
    for data, want in cases.items():
        assert read(r, [data])[1] == want
    deep = JsonDocReader()
    assert read(deep, [b"[" * 5000 + b"]" * 5000])[1] == {"malformed_json": 1}  # nested too deeply
    # an entry that is no object is counted when it is new, not on every save after
    v1 = dump({"log_history": ["text", {"loss": 1.0, "step": 1}]})
    v2 = dump({"log_history": ["text", {"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2}]})
    assert read(r, [v1, v2]) == ([{"loss": [(1.0, 1.0), (2.0, 0.5)]}], {"not_object": 1})


def test_claims() -> None:
    r = JsonDocReader()
    assert r.claims("out/checkpoint-500/trainer_state.json", b"{\n") == 0.9
    assert r.claims("state.json", b'{\n  "best_metric": null,\n  "log_history": [') == 0.9
    assert r.claims("history.json", b'{"loss": [0.5, 0.4]}') == 0.4
    assert r.claims("log.json", b'[{"step": 1, "loss": 0.5}]') == 0.4
    assert r.claims("config.json", b'{"hidden_size": 768, "layers": [1, 2]}') == 0.0
    assert r.claims("trainer_state.jsonl", b"{}") == 0.0


VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10), st.none(), st.text(max_size=3))
METRICS = st.dictionaries(st.sampled_from(["loss", "epoch", "ünï", "a/b"]), VALUES, max_size=3)


@st.composite
def histories(draw: Any) -> list[list[dict[str, Any]]]:
    """Versions of a log_history: each one grows the last, or (sometimes) keeps a part of it and
    goes on differently, as a run resumed from an older checkpoint does. Steps only grow."""
    hist: list[dict[str, Any]] = []
    out = []
    for _ in range(draw(st.integers(1, 6))):
        if hist and draw(st.integers(0, 3)) == 0:
            hist = hist[: draw(st.integers(0, len(hist)))]
        step = hist[-1]["step"] if hist else 0
        for m in draw(st.lists(METRICS, max_size=4)):
            step += draw(st.integers(0, 3))
            hist = hist + [{**m, "step": step}]
        out.append(hist)
    return out


def docs(hists: list[list[dict[str, Any]]], columns: bool) -> list[bytes]:
    if columns:  # the same values as a document of lists, a column per metric
        return [dump({"step": [e["step"] for e in h], "loss": [e.get("loss") for e in h]}) for h in hists]
    return [dump({"log_history": h, "global_step": len(h)}) for h in hists]


def points(entries: list[dict[str, Any]]) -> Points:
    out: Points = {}
    for e in entries:
        for name, v in e.items():
            x = decode_float(v)  # numbers, and the strings "NaN", "Infinity", "-Infinity"
            if name != "step" and x is not None:
                out.setdefault(name, []).append((float(e["step"]), "nan" if math.isnan(x) else x))
    return out


def model(hists: list[list[dict[str, Any]]]) -> list[Points]:
    """The documented rule: a version that holds the previous one's first and last entries at the
    same places adds what follows them; any other is a new attempt holding all of its entries."""
    attempts: list[Points] = [{}]
    prev: list[dict[str, Any]] = []
    for h in hists:
        n = len(prev)
        def same(a: Any, b: Any) -> bool:
            return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

        if not n or (len(h) >= n and same(h[0], prev[0]) and same(h[n - 1], prev[n - 1])):
            new = points(h[n:])
        else:
            attempts.append({})
            new = points(h)
        for name, pts in new.items():
            attempts[-1].setdefault(name, []).extend(pts)
        prev = h
    return [a for a in attempts if a]


@settings(max_examples=300, deadline=None)
@given(hists=histories(), columns=st.booleans(), cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_any_chunking_reads_as_one_whole_read(hists: Any, columns: bool, cuts: list[int]) -> None:
    versions = docs(hists, columns)
    assert read(JsonDocReader(), versions, cuts) == read(JsonDocReader(), versions)


@settings(max_examples=300, deadline=None)
@given(hists=histories())
def test_versions_neither_double_nor_lose_entries(hists: Any) -> None:
    assert [a for a in read(JsonDocReader(), docs(hists, False))[0] if a] == model(hists)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 300), max_size=6))
def test_any_bytes_are_counted_never_raised(data: bytes, cuts: list[int]) -> None:
    r = JsonDocReader()
    r.claims("x.json", data)
    read(r, [data, b"[" + data, b'{"log_history": [' + data], cuts)


def test_state_is_small_and_picklable() -> None:
    r = JsonDocReader()
    doc = dump({"log_history": [{"loss": 1.0 / (i + 1), "step": i} for i in range(20_000)], "global_step": 20_000})
    _, state = r.decode(doc, r.new_state(), now=0.0)
    assert state.count == 20_000 and len(pickle.dumps(state)) < 400
    # repr: a counter with no coarser one beside it holds NaN (jsonl_steps), which is not equal to itself
    assert repr(pickle.loads(pickle.dumps(state))) == repr(state)


async def test_a_document_larger_than_a_read_is_followed(tmp_path: Path) -> None:
    """A trainer_state.json of several megabytes (a long run logging every step) is read whole, and
    its next version too: a first record longer than one read must not keep the file unread."""
    from tailboard.sidecar.follower import Follower
    from tailboard.sidecar.store import Store

    path = tmp_path / "out" / "trainer_state.json"
    path.parent.mkdir()
    history = [{"step": i, "loss": 1.0 / (i + 1), "learning_rate": 1e-4, "epoch": i / 1000,
                "grad_norm": 0.5 + i % 7} for i in range(30_000)]
    path.write_text(json.dumps({"log_history": history, "global_step": 30_000}, indent=2))
    assert path.stat().st_size > 3 << 20
    store = Store(tmp_path)
    follower = Follower(tmp_path, store, poll=True, poll_interval=0.05, sweep_interval=0.2)
    await follower.start()
    try:
        assert store.series("out", "loss").steps.shape[0] == 30_000
        more = history + [{"step": 30_000 + i, "loss": 0.01} for i in range(5)]
        path.write_text(json.dumps({"log_history": more, "global_step": 30_005}, indent=2))
        for _ in range(200):
            if store.series("out", "loss").steps.shape[0] == 30_005:
                break
            await asyncio.sleep(0.05)
        s = store.series("out", "loss")
        assert s.steps.tolist() == list(range(30_005))
        assert s.values[-1] == 0.01
    finally:
        await follower.stop()
