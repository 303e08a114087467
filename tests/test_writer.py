"""The writer, read back with the sidecar's own reader (tailboard.sidecar.ingest / store)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest

import tailboard
from tailboard.format import decode_float
from tailboard.sidecar.store import Store

torch = pytest.importorskip("torch")
np = pytest.importorskip("numpy")


def lines(path: Path) -> list[dict]:
    # strict JSON: json.loads with parse_constant refusing NaN/Infinity tokens
    def refuse(tok: str) -> None:
        raise AssertionError(f"non-strict JSON token {tok}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def load(root: Path, run_id: str) -> Store:
    """Feed a store from the files of a run, as the follower does."""
    store = Store(root)
    folder = root / run_id
    for f in sorted(folder.glob("*.jsonl")):
        data = f.read_bytes()
        st = os.stat(f)
        store.open_stream(run_id, f.name, str(f), f"{st.st_dev}:{st.st_ino}:x")
        cut = data.rfind(b"\n") + 1
        store.ingest(run_id, f.name, data[:cut], 0, cut)
    return store


def test_every_value_kind_round_trips_through_the_reader(tmp_path: Path) -> None:
    with tailboard.init(tmp_path / "a" / "b", config={"lr": 0.1, "opt": {"name": "sgd"}}) as run:
        for i in range(5):
            run.log(
                {
                    "train/loss": 1.0 / (i + 1),
                    "int": i,
                    "nested": {"x": 2.0 * i},
                    "t0": torch.tensor(0.5 * i),
                    "np": np.float32(1.5),
                    "vec": torch.arange(3.0) * i,
                    "w": tailboard.Histogram(torch.linspace(-1, 1, 101), bins=10),
                    "note": f"text {i}",
                },
                step=i,
            )
        run.log({"bad": float("nan"), "up": math.inf, "down": -math.inf}, step=5)
    store = load(tmp_path, "a/b")
    info = store.get_run("a/b")
    assert info is not None and info.status == "finished"
    assert set(info.metrics) >= {"train/loss", "int", "nested/x", "t0", "np", "bad", "up", "down"}
    s = store.series("a/b", "train/loss")
    assert s.steps.tolist() == [0, 1, 2, 3, 4]
    assert s.values.tolist() == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert store.series("a/b", "t0").values.tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert math.isnan(store.series("a/b", "bad").values[0])
    assert store.series("a/b", "up").values[0] == math.inf
    assert store.series("a/b", "down").values[0] == -math.inf
    vec = store.vectors("a/b", "vec")
    assert vec["values"][2] == [0.0, 2.0, 4.0]
    h = store.histograms("a/b", "w")
    assert len(h["counts"]) == 5 and sum(h["counts"][0]) == 101 and h["lo"][0] == -1.0
    assert store.texts("a/b")["texts"][-1] == "text 4"
    detail = store.run_detail("a/b")
    assert detail["config"] == {"lr": 0.1, "opt": {"name": "sgd"}}
    header = detail["header"]
    assert header["format"] == "tailboard" and header["version"] == 1 and header["pid"] == os.getpid()
    assert header["rank"] == 0 and header["world_size"] == 1 and isinstance(header["argv"], list)
    assert detail["final"]["status"] == "finished" and detail["final"]["dropped"] == 0
    # every line is strict JSON, with non-finite values spelled out
    recs = lines(tmp_path / "a" / "b" / "rank0.jsonl")
    assert recs[-2]["v"] == {"bad": "NaN", "up": "Infinity", "down": "-Infinity"}


def test_exception_in_with_block_marks_the_run_failed(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with tailboard.init(tmp_path / "r") as run:
            run.log({"x": 1.0})
            1 / 0
    end = lines(tmp_path / "r" / "rank0.jsonl")[-1]
    assert end["k"] == "end" and end["status"] == "failed"
    assert end["reason"].startswith("ZeroDivisionError")


def test_misuse_raises_clearly(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "m")
    with pytest.raises(TypeError, match="dict"):
        run.log([1, 2])  # type: ignore[arg-type]
    run.finish()
    with pytest.warns(tailboard.TailboardWarning, match="after finish"):
        run.log({"x": 1.0})  # not worth stopping training for: ignored, warned and counted
    assert run.dropped == 1
    code = "import tailboard\ntry:\n    tailboard.log({'x': 1})\nexcept RuntimeError as e:\n    print(e)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "before tailboard.init()" in out.stdout


def test_import_loads_no_third_party_module() -> None:
    code = textwrap.dedent(
        """
        import sys
        before = set(sys.modules)
        import tailboard
        new = {m.split('.')[0] for m in set(sys.modules) - before}
        stdlib = set(sys.stdlib_module_names)
        print(sorted(m for m in new if m not in stdlib and m not in ('tailboard', 'orjson')))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_without_orjson_lines_are_still_strict_json(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules['orjson'] = None  # import orjson now fails
        import tailboard
        with tailboard.init({str(tmp_path / 'n')!r}) as run:
            run.log({{'a': float('nan'), 'b': float('inf'), 'c': 1.5}}, step=3)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    recs = lines(tmp_path / "n" / "rank0.jsonl")
    assert recs[1]["v"] == {"a": "NaN", "b": "Infinity", "c": 1.5}
    assert [decode_float(x) for x in recs[1]["v"].values()][1] == math.inf


def test_two_processes_append_to_one_file_without_interleaving(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, tailboard
        run = tailboard.init(sys.argv[1], rank=0)
        for i in range(3000):
            run.log({'who': float(sys.argv[2]), 'payload': float(i), 'pad': 'x' * 200}, step=i)
        run.finish()
        """
    )
    path = str(tmp_path / "shared")
    procs = [subprocess.Popen([sys.executable, "-c", code, path, str(w)]) for w in (1, 2)]
    for p in procs:
        assert p.wait(timeout=120) == 0
    recs = lines(tmp_path / "shared" / "rank0.jsonl")  # every line parses: none torn or mixed
    scalars = [r for r in recs if r["k"] == "scalars"]
    assert len(scalars) == 6000
    for who in (1.0, 2.0):
        mine = [r["v"]["payload"] for r in scalars if r["v"]["who"] == who]
        assert mine == [float(i) for i in range(3000)]
    assert sum(r["k"] == "header" for r in recs) == 2 and sum(r["k"] == "end" for r in recs) == 2


def test_ranks_write_their_own_files(tmp_path: Path) -> None:
    env = {**os.environ, "RANK": "1", "WORLD_SIZE": "2"}
    code = "import sys, tailboard\nr = tailboard.init(sys.argv[1]); r.log({'x': 1.0}); r.finish()"
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], env=env, check=True, timeout=60)
    header = lines(tmp_path / "d" / "rank1.jsonl")[0]
    assert header["rank"] == 1 and header["world_size"] == 2
    code0 = "import sys, tailboard\nr = tailboard.init(sys.argv[1], rank_zero_only=True); r.log({'x': 1.0}); r.finish()"
    subprocess.run([sys.executable, "-c", code0, str(tmp_path / "e")], env=env, check=True, timeout=60)
    assert not (tmp_path / "e" / "rank1.jsonl").exists()


def test_forked_child_does_not_write_into_the_parents_file(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "f")
    run.log({"x": 1.0}, step=0)
    pid = os.fork()
    if pid == 0:  # child: log and exit without running the parent's atexit hooks twice
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run.log({"x": 99.0}, step=1)
            run.finish()
        os._exit(0)
    os.waitpid(pid, 0)
    run.log({"x": 2.0}, step=1)
    run.finish()
    recs = lines(tmp_path / "f" / "rank0.jsonl")
    assert [r["v"]["x"] for r in recs if r["k"] == "scalars"] == [1.0, 2.0]
    assert sum(r["k"] == "end" for r in recs) == 1


def test_dataloader_workers_do_not_duplicate_records(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "dl")
    ds = torch.utils.data.TensorDataset(torch.arange(40.0))
    loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)
    for step, (batch,) in enumerate(loader):
        run.log({"mean": float(batch.mean())}, step=step)
    run.finish()
    recs = lines(tmp_path / "dl" / "rank0.jsonl")
    assert [r["step"] for r in recs if r["k"] == "scalars"] == list(range(10))
    assert sum(r["k"] == "end" for r in recs) == 1


def test_sigkill_leaves_every_returned_record_complete(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys, tailboard
        run = tailboard.init(sys.argv[1])
        i = 0
        while True:
            run.log({'i': float(i)}, step=i)
            if i == 2000:
                print('ready', flush=True)
            i += 1
        """
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "k")], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    time.sleep(0.05)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    data = (tmp_path / "k" / "rank0.jsonl").read_bytes()
    assert data.endswith(b"\n")  # one write per line: no torn record
    recs = lines(tmp_path / "k" / "rank0.jsonl")
    steps = [r["step"] for r in recs if r["k"] == "scalars"]
    assert steps == list(range(len(steps))) and len(steps) > 2000
    assert recs[-1]["k"] == "scalars"  # killed hard: no final record


def test_an_unwritable_run_file_fails_init_not_training(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permission bits: make the file a directory's worth of trouble instead
        ro = tmp_path / "ro"
        ro.mkdir()
        (ro / "rank0.jsonl").mkdir()  # open() fails with EISDIR
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
    with pytest.raises(tailboard.LogFolderError, match="cannot write .*rank0.jsonl") as e:
        tailboard.init(ro)
    assert isinstance(e.value, OSError) and e.value.errno is not None


def test_deleted_folder_does_not_stop_training(tmp_path: Path) -> None:
    import shutil

    run = tailboard.init(tmp_path / "gone")
    run.log({"x": 1.0})
    shutil.rmtree(tmp_path / "gone")
    run.log({"x": 2.0})  # the open descriptor still works; nothing raises
    run.finish()
    assert run.dropped == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_full_disk_counts_drops(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "full")
    os.dup2(os.open("/dev/full", os.O_WRONLY), run._fd)  # the disk is now full
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(50):
            run.log({"x": float(i)}, step=i)
        run.finish()
    assert run.dropped == 51  # 50 records + the final one
    assert sum(issubclass(w.category, tailboard.TailboardWarning) for w in caught) == 1


def test_restart_appends_a_new_attempt(tmp_path: Path) -> None:
    for attempt in range(2):
        with tailboard.init(tmp_path / "re") as run:
            for i in range(5 if attempt == 0 else 3, 10 if attempt == 0 else 8):
                run.log({"loss": float(attempt * 100 + i)}, step=i if attempt else i - 5)
    store = load(tmp_path, "re")
    info = store.get_run("re")
    assert info is not None and info.attempts == 2
    s = store.series("re", "loss")
    # the first attempt up to step 3, then the second attempt
    assert s.steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert s.values.tolist() == [5.0, 6.0, 7.0, 103.0, 104.0, 105.0, 106.0, 107.0]


def test_summary_writer_matches_torch_summary_writer(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    def exercise(w: object) -> None:
        for i in range(20):
            w.add_scalar("train/loss", 1.0 / (i + 1), i)  # type: ignore[attr-defined]
            w.add_scalars("lr", {"a": 0.1 * i, "b": 0.2 * i}, i)  # type: ignore[attr-defined]
        w.add_histogram("w", torch.randn(500), 3)  # type: ignore[attr-defined]
        w.add_text("note", "hello", 4)  # type: ignore[attr-defined]
        w.add_hparams({"lr": 0.1, "bs": 64}, {"hparam/acc": 0.9})  # type: ignore[attr-defined]
        w.flush()  # type: ignore[attr-defined]
        w.close()  # type: ignore[attr-defined]

    with TorchWriter(str(tmp_path / "tb")) as tw:
        exercise(tw)
    with tailboard.SummaryWriter(tmp_path / "ours") as ours:
        exercise(ours)
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    tb = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    store = load(tmp_path, "ours")
    s = store.series("ours", "train/loss")
    assert [(int(a), b) for a, b in zip(s.steps.tolist(), s.values.tolist())] == [
        (st, pytest.approx(v, rel=1e-6)) for st, v in tb
    ]
    assert store.series("ours", "lr/b").values.tolist()[-1] == pytest.approx(0.2 * 19)
    assert store.histograms("ours", "w")["steps"] == [3]
    assert store.texts("ours")["texts"] == ["hello"]
    assert store.run_detail("ours")["config"] == {"lr": 0.1, "bs": 64}
    assert store.get_run("ours").status == "finished"  # type: ignore[union-attr]
