"""The writer under hostile conditions: full disks, values orjson refuses, lines over the limit.

Every file is read back with the sidecar's own reader, as the follower reads it: a ``FileTail`` with
the shared line cap (``MAX_LINE_BYTES``) cutting lines, a ``Store`` keeping records and counting skips.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import shutil
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path
from typing import Any, Iterator, Mapping

import pytest

import tailboard
from tailboard.format import MAX_LINE_BYTES
from tailboard.run import MAX_WARNINGS
from tailboard.sidecar.store import Store
from tailboard.sidecar.tail import Chunk, FileTail, Opened, Reset, Skipped


def read_back(root: Path, run_id: str) -> Store:
    """Feed a store from the files of a run through the tail, as the follower does."""
    store = Store(root)
    for f in sorted((root / run_id).glob("*.jsonl")):
        tail = FileTail(str(f), max_line_bytes=MAX_LINE_BYTES)
        for ev in tail.read():
            if isinstance(ev, Opened):
                store.open_stream(run_id, f.name, str(f), ev.key)
            elif isinstance(ev, Chunk):
                store.ingest(run_id, f.name, ev.data, ev.start, ev.end)
            elif isinstance(ev, Skipped):
                store.skip(run_id, f.name, ev.reason, ev.count)
            else:
                assert not isinstance(ev, Reset), ev
        tail.close()
    return store


def skipped(store: Store, run_id: str) -> dict[str, int]:
    info = store.get_run(run_id)
    assert info is not None
    return info.skipped


def final(store: Store, run_id: str) -> dict[str, Any]:
    end = store.run_detail(run_id)["final"]
    assert end is not None, "the end record was lost"
    return end


def steps(store: Store, run_id: str, metric: str) -> list[int]:
    return [int(s) for s in store.series(run_id, metric).steps.tolist()]


def ours(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, tailboard.TailboardWarning)]


# ---- 11: a write cut short must not tear later records ------------------------------------------

# A child process (the limit is per process): writes past RLIMIT_FSIZE are cut short by the kernel,
# then refused with EFBIG (SIGXFSZ ignored, as a trainer under a quota would see ENOSPC).
SHORT_WRITE = textwrap.dedent(
    """
    import json, os, resource, signal, sys
    import orjson, tailboard
    import tailboard.run
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    path, later, room = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    tailboard.run._time = lambda: 1.5  # a fixed clock: the length of each line is known
    run = tailboard.init(path)
    for i in range(10):
        run.log({"x": float(i)}, step=i)
    record = {"k": "scalars", "step": 10, "t": 1.5, "v": {"x": 10.0, "pad": 1.0}}
    size = len(orjson.dumps(record)) + 1
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    room = size - 1 if room == "all-but-newline" else 20
    resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(run.file) + room, hard))
    run.log(record["v"], step=10)  # `room` bytes reach the file, the rest is refused
    run.log({"x": 11.0}, step=11)  # refused whole
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space again
    for i in range(12, 12 + later):
        run.log({"x": float(i)}, step=i)
    run.finish()
    print(json.dumps({"dropped": run.dropped, "records": run.records}))
    """
)


@pytest.mark.parametrize("later", [8, 0], ids=["records-then-end", "end-right-after"])
def test_short_write_costs_one_bad_line_and_no_later_record(tmp_path: Path, later: int) -> None:
    out = subprocess.run([sys.executable, "-c", SHORT_WRITE, str(tmp_path / "q"), str(later), "20"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"dropped": 2, "records": 1 + 10 + later + 1}
    data = (tmp_path / "q" / "rank0.jsonl").read_bytes()
    assert data.endswith(b"\n")
    store = read_back(tmp_path, "q")
    assert steps(store, "q", "x") == list(range(10)) + list(range(12, 12 + later))
    end = final(store, "q")
    assert end["status"] == "finished" and end["dropped"] == 2
    assert skipped(store, "q") == {"total": 1, "malformed_json": 1}  # the torn piece, alone


def test_short_write_that_lost_only_the_newline_is_completed(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", SHORT_WRITE, str(tmp_path / "n"), "3",
                          "all-but-newline"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    # the record of step 10 was whole but for its newline: the next write's newline completed it
    assert json.loads(out.stdout) == {"dropped": 1, "records": 1 + 11 + 3 + 1}
    store = read_back(tmp_path, "n")
    assert steps(store, "n", "x") == list(range(11)) + [12, 13, 14]
    assert steps(store, "n", "pad") == [10]
    assert final(store, "n")["dropped"] == 1  # step 11 only
    assert skipped(store, "n") == {"total": 0}


def _mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tailboard-test",
                               str(where)], capture_output=True, text=True, timeout=30)
    except OSError as e:
        pytest.skip(f"cannot run mount: {e}")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")


def test_full_tmpfs_tears_no_later_record(tmp_path: Path) -> None:
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "256k")
    try:
        run = tailboard.init(mnt / "r")
        for i in range(5):
            run.log({"x": float(i)}, step=i)
        # Fill the file system: page by page, then what is left byte by byte.
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        for block in (4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
        os.close(fd)
        # The run file's last page still has room: this record fills it and the rest is refused.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.log({"x": 5.0, "text": "y" * 9000}, step=5)
        assert run.dropped == 2  # the text and the scalars
        assert any("cannot write" in m for m in ours(caught))
        os.unlink(mnt / "filler")
        for i in range(6, 10):
            run.log({"x": float(i)}, step=i)
        run.finish()
        store = read_back(mnt, "r")
        assert steps(store, "r", "x") == [0, 1, 2, 3, 4, 6, 7, 8, 9]
        assert final(store, "r")["dropped"] == 2
        assert skipped(store, "r")["total"] == 1
    finally:
        subprocess.run(["umount", "-l", str(mnt)], timeout=30)


# ---- 12: nothing but misuse raises into the training loop ---------------------------------------


def _nested(depth: int) -> dict[str, Any]:
    d: dict[str, Any] = {"leaf": 1.0}
    for _ in range(depth):
        d = {"a": d}
    return d


def test_hostile_values_and_steps_never_raise(tmp_path: Path) -> None:
    loop: dict[str, Any] = {"x": 3.0}
    loop["self"] = loop
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tailboard.init(tmp_path / "h", config={"lr": 0.1, "loop": loop, "deep": _nested(5000)})
        # misuse still raises at once: the metrics or the config are not a dict
        with pytest.raises(TypeError, match="dict of metrics"):
            run.log([("ok", 1.0)])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="config must be a dict"):
            run.config(["lr", 0.1])  # type: ignore[arg-type]
        run.log({"ok": 0.0, "v": [10**400]}, step=0)
        run.log({"ok": 1.0}, step=float("inf"))
        run.log({"ok": 2.0}, step=float("nan"))
        run.log({"ok": 3.0}, step=7.5)
        run.log({"ok": 4.0}, step=10.0)  # an integer-valued float is a step
        run.log({"ok": 5.0, "loop": loop}, step=11)
        run.log({"ok": 6.0, "deep": _nested(5000)}, step=12)
        run.finish()
        run.log({"ok": 7.0}, step=13)  # after finish: ignored, counted
        run.finish()  # idempotent
    # the bad steps fell back to the previous step + 1
    assert run.bad_steps == 3
    store = read_back(tmp_path, "h")
    assert steps(store, "h", "ok") == [0, 1, 2, 3, 10, 11, 12]
    assert store.series("h", "loop/x").values.tolist() == [3.0]  # the loop's own values are kept
    assert run.drops == {"v": 1, "loop/self": 1, "deep/" + "a/" * 62 + "a": 1, "<finished>": 1,
                         "config/loop/self": 1, "config/deep/" + "a/" * 62 + "a": 1}
    # the end record counts every drop written before it
    assert final(store, "h")["dropped"] == run.dropped - 1
    config = store.run_detail("h")["config"]
    assert config["lr"] == 0.1 and config["loop"] == {"x": 3.0}
    messages = ours(caught)
    assert any("step=inf" in m for m in messages) and any("'v'" in m for m in messages)
    assert any("'loop/self'" in m and "contains itself" in m for m in messages)
    assert any("after finish" in m for m in messages)
    assert skipped(store, "h")["total"] == 0


class Hostile:
    def __float__(self) -> float:
        raise RuntimeError("no float for you")

    def __str__(self) -> str:
        raise RuntimeError("no text either")


class BrokenMapping(Mapping[str, Any]):
    def __getitem__(self, key: str) -> Any:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 1


def test_objects_that_raise_are_dropped_by_name(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = tailboard.init(tmp_path / "o")
        run.log({"ok": 1.0, "hostile": Hostile(), "seq": [1.0, Hostile()], "sub": BrokenMapping(),
                 Hostile(): 2.0, "n": None}, step=0)
        run.log(BrokenMapping(), step=1)  # a Mapping, so not misuse; iterating it fails
        run.config({"obj": Hostile(), "fine": 2})
        run.finish()
    store = read_back(tmp_path, "o")
    assert steps(store, "o", "ok") == [0]
    assert run.drops == {"hostile": 1, "seq": 1, "sub": 1, "?": 1, "n": 1, "<error>": 1,
                         "config/obj": 1}
    assert store.run_detail("o")["config"] == {"fine": 2}
    assert final(store, "o")["dropped"] == 7


def test_warnings_point_at_the_training_loop(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "w")
    with pytest.warns(tailboard.TailboardWarning) as caught:
        run.log({"nested": {"deeper": {"bad": Hostile()}}}, step=0)
    assert caught[0].filename == __file__
    run.finish()


# ---- 13: one bad value costs only itself ---------------------------------------------------------


def test_bad_values_cost_only_themselves(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tailboard.init(tmp_path / "b")
        for i in range(3):
            run.log({"good": float(i), "big": 2**70, 3: 2.0, "bad\ud800key": 4.0, "huge": -(10**400),
                     "tag\ud83d\ude00": 5.0, "sub": {7: 1.5}}, step=i)
        run.log({"text\udc80": "caf\udce9", "vec\ud800": [1.0, 2.0]}, step=3)
        run.log({"huge": 10**400}, step=4)  # nothing left to write: no empty record
        run.finish()
    store = read_back(tmp_path, "b")
    info = store.get_run("b")
    assert info is not None
    # an int beyond 64 bits as a float, a non-string key as str(key), lone surrogates as U+FFFD,
    # a surrogate pair as its character
    assert set(info.metrics) == {"good", "big", "3", "bad\ufffdkey", "tag\U0001f600", "sub/7"}
    assert store.series("b", "good").values.tolist() == [0.0, 1.0, 2.0]
    assert store.series("b", "big").values.tolist() == [float(2**70)] * 3
    assert store.series("b", "bad\ufffdkey").values.tolist() == [4.0] * 3
    assert store.texts("b", "text\ufffd")["texts"] == ["caf\ufffd"]
    assert store.vectors("b", "vec\ufffd")["values"] == [[1.0, 2.0]]
    assert run.drops == {"huge": 4} and final(store, "b")["dropped"] == 4
    data = (tmp_path / "b" / "rank0.jsonl").read_bytes()
    kinds = [json.loads(line)["k"] for line in data.splitlines()]
    assert kinds == ["header", "scalars", "scalars", "scalars", "text", "vector", "end"]
    messages = ours(caught)
    assert len([m for m in messages if "'huge'" in m]) == 1  # once per name
    assert any("bad\ufffdkey" in m and "U+FFFD" in m for m in messages)
    assert skipped(store, "b")["total"] == 0


def test_warnings_are_one_per_name_and_bounded(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tailboard.init(tmp_path / "many")
        for i in range(3):
            run.log({"ok": 1.0, **{f"bad{j}": None for j in range(100)}}, step=i)
        run.finish()
    messages = ours(caught)
    assert len(messages) == MAX_WARNINGS + 1
    assert "'bad0'" in messages[0] and "further problems are counted" in messages[-1]
    assert run.dropped == 300 and run.drops["bad99"] == 3
    assert steps(read_back(tmp_path, "many"), "many", "ok") == [0, 1, 2]


def test_without_orjson_bad_values_cost_only_themselves(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules['orjson'] = None  # import orjson now fails
        import tailboard, warnings
        warnings.simplefilter('ignore')
        with tailboard.init({str(tmp_path / 'j')!r}) as run:
            run.log({{'good': 1.0, 'big': 2**70, 3: 2.0, 'k\\ud800': 4.0, 'n': None}}, step=0)
            many = {{f'm{{i}}': float(i) for i in range(60_000)}}
            run.log({{'note\\ud800': 'x\\udc80', 'many': many}}, step=1)
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    store = read_back(tmp_path, "j")
    info = store.get_run("j")
    assert info is not None
    assert {"good", "big", "3", "k\ufffd"} <= set(info.metrics) and len(info.metrics) == 4 + 60_000
    assert store.texts("j")["texts"] == ["x\ufffd"]
    assert final(store, "j")["dropped"] == 1
    assert skipped(store, "j")["total"] == 0


# ---- 14: the writer never writes a line the reader skips -----------------------------------------


def test_a_dict_too_big_for_one_line_is_split_not_lost(tmp_path: Path) -> None:
    wide = {f"layers/{i:05d}/grad_norm": i + 0.25 for i in range(60_000)}
    with tailboard.init(tmp_path / "wide") as run:
        run.log(wide, step=0)
        run.log(wide, step=1)
    lines = (tmp_path / "wide" / "rank0.jsonl").read_bytes().splitlines(keepends=True)
    assert max(len(line) for line in lines) <= MAX_LINE_BYTES
    store = read_back(tmp_path, "wide")
    info = store.get_run("wide")
    assert info is not None and set(info.metrics) == set(wide)
    for name in ("layers/00000/grad_norm", "layers/31234/grad_norm", "layers/59999/grad_norm"):
        s = store.series("wide", name)
        assert s.steps.tolist() == [0, 1] and s.values.tolist() == [wide[name]] * 2
    assert run.dropped == 0 and skipped(store, "wide")["total"] == 0


def test_a_text_too_long_is_cut_and_marked(tmp_path: Path) -> None:
    text = "".join(f"line {i}: \"quoted\" \x01 é\n" for i in range(100_000))  # > 2 MB, escapes inside
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tailboard.init(tmp_path / "t") as run:
            run.log({"loss": 1.0, "log": text}, step=0)
    store = read_back(tmp_path, "t")
    kept = store.texts("t", "log")["texts"]
    assert len(kept) == 1 and kept[0].endswith(f"the text had {len(text)} characters]")
    body = kept[0][: kept[0].rindex("\n[... tailboard: cut")]
    assert text.startswith(body) and len(body) > len(text) // 4  # most of what fits is kept
    assert run.truncated == 1 and run.dropped == 0
    assert final(store, "t")["truncated"] == 1
    assert any("'log' was cut" in m for m in ours(caught))
    assert steps(store, "t", "loss") == [0] and skipped(store, "t")["total"] == 0


def test_vectors_histograms_and_config_too_long_are_dropped_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["train.py"] + ["--flag=" + "z" * 100_000] * 15)  # a 1.5 MB argv
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = tailboard.init(tmp_path / "big", config={"lr": 0.1, "vocab": "w" * 2_000_000,
                                                        "table": {f"k{i}": i for i in range(50_000)}})
        run.log({"loss": 1.0, "vec": [0.123456789] * 100_000, "short": [1.0, 2.0],
                 "h": tailboard.Histogram([0.0, 1.0], bins=600_000), "x" * 2_000_000: 1.0}, step=0)
        run.finish()
    store = read_back(tmp_path, "big")
    assert skipped(store, "big")["total"] == 0
    assert steps(store, "big", "loss") == [0]
    assert store.vectors("big", "short")["values"] == [[1.0, 2.0]]
    info = store.get_run("big")
    assert info is not None and info.vectors == ("short",) and info.histograms == ()
    config = store.run_detail("big")["config"]
    assert config["lr"] == 0.1 and len(config["table"]) == 50_000 and "vocab" not in config
    header = store.run_detail("big")["header"]
    assert header["argv"][0] == "train.py" and header["argv"][-1].startswith("[... tailboard: argv cut")
    assert run.drops == {"vec": 1, "h": 1, "x" * 2_000_000: 1, "config/vocab": 1}
    assert final(store, "big")["dropped"] == 4
    messages = ours(caught)
    for name in ("'vec'", "'h'", "'config/vocab'", "'xxxxx"):
        assert any(name in m and "over the limit" in m for m in messages), name
    assert all(len(m) < 400 for m in messages)  # a name of 2 MB is shortened in its warning


def test_nan_and_infinities_still_round_trip_on_every_path(tmp_path: Path) -> None:
    with tailboard.init(tmp_path / "nf") as run:
        run.log({"a": math.nan, "b": math.inf, "big": 2**70}, step=0)  # the slow path
        run.log({"a": math.nan, "b": -math.inf}, step=1)  # the fast path
    store = read_back(tmp_path, "nf")
    assert [math.isnan(v) for v in store.series("nf", "a").values.tolist()] == [True, True]
    assert store.series("nf", "b").values.tolist() == [math.inf, -math.inf]


def test_init_fails_loudly_when_the_run_folder_cannot_be_written(tmp_path: Path) -> None:
    """A trainer running as another user than the owner of a shared log volume: init() raises one
    clear error naming the file, the user and the folder's owner and mode, instead of dropping every
    record and exiting 0 (log() still never raises: the error comes before training starts)."""
    top = Path(tempfile.mkdtemp(prefix="tailboard-shared-"))  # reachable by another user, unlike tmp_path
    top.chmod(0o755)
    shared = top / "shared"
    shared.mkdir(mode=0o755)
    code = (
        "import os, sys, tailboard\n"
        "if os.geteuid() == 0:\n"
        "    os.setgid(65534); os.setuid(65534)\n"
        "try:\n"
        f"    tailboard.init({str(shared / 'exp')!r})\n"
        "except tailboard.LogFolderError as e:\n"
        "    print(e); sys.exit(3)\n"
        "print('no error')\n"
    )
    if os.geteuid() != 0:
        shared.chmod(0o555)
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                              cwd=str(tmp_path))
    finally:
        shared.chmod(0o755)
    try:
        assert done.returncode == 3, done.stdout + done.stderr
        message = done.stdout
        assert message.startswith(f"tailboard: cannot write {shared / 'exp' / 'rank0.jsonl'} as uid "
                                  f"{65534 if os.geteuid() == 0 else os.getuid()}"), message
        mode = "drwxr-xr-x" if os.geteuid() == 0 else "dr-xr-xr-x"
        assert f"{shared} is owned by uid {os.getuid()} gid {os.getgid()}, mode {mode}" in message
        assert not (shared / "exp").exists()
    finally:
        shutil.rmtree(top)
