"""Every input format end to end: files written by the real libraries while a real server follows them,
read back through its HTTP API and WebSocket exactly as the libraries were given them.

Each test starts the server on an empty log root, then writes with the library (torch's and
tensorboardX's SummaryWriter, Lightning's CSVLogger, transformers' Trainer): the run is found while its
writer runs, every point comes back exact (steps too), appends arrive live, bad records are counted,
cursors resume exactly and rewrites neither duplicate nor lose points.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from inputkit import Points, Served, Subscriber, exported_points, point, serving, wait_caught_up
from tailboard.sidecar.limits import Limits
from trainerkit import hf_script, lightning_fit

WALL = 1_700_000_000.0


def f32(x: float) -> float:
    """What an event file's ``simple_value`` (a float32) holds of ``x``."""
    return float(np.float32(x))


def given(steps: range | list[int], fn: Any) -> list[tuple[float, Any]]:
    return [point(s, f32(fn(s))) for s in steps]


def loss(step: int) -> float:
    return 1.0 / (step + 1) + math.sin(step) / 7


def acc(step: int) -> float:
    return math.cos(step) * 3.25


# ---- TensorBoard event files -------------------------------------------------------------------


async def test_torch_summary_writer_found_live_exact_appends_and_resume(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    async with serving(tmp_path) as s:
        w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600)
        try:
            for step in range(30):
                w.add_scalar("train/loss", loss(step), step, walltime=WALL + step)
                w.add_scalar("eval/acc", acc(step), step * 10, walltime=WALL + step + 0.5)
            w.flush()
            # found while the writer is open, every point exact
            assert await s.wait_points("exp", "train/loss", 30) == given(range(30), loss)
            assert await s.wait_points("exp", "eval/acc", 30) == [point(10 * i, f32(acc(i))) for i in range(30)]
            ser = await s.series("exp", "train/loss")
            assert ser["times"] == [WALL + step for step in range(30)]
            info = (await s.runs())["exp"]
            assert info["streams"][0]["format"] == "tfevents" and info["skipped"] == {"total": 0}

            async with s.ws() as ws:
                sub = Subscriber(ws, "exp")
                await sub.subscribe()
                await sub.until(lambda c: c.count("train/loss") == 30)
                early = sub.cursor
                # appends arrive live as deltas
                for step in range(30, 50):
                    w.add_scalar("train/loss", loss(step), step, walltime=WALL + step)
                w.flush()
                await sub.until(lambda c: c.count("train/loss") == 50)
                assert sub.series["train/loss"] == given(range(50), loss) and sub.resets == []

            # missed points: a subscription resumed from an earlier cursor gets exactly them
            for step in range(50, 60):
                w.add_scalar("train/loss", loss(step), step, walltime=WALL + step)
            w.flush()
            await s.wait_points("exp", "train/loss", 60)
            async with s.ws() as ws:
                sub = Subscriber(ws, "exp")
                await sub.subscribe(early)
                await sub.until(lambda c: c.deltas > 0 or bool(c.resets))
                assert sub.resets == []
                assert sub.series == {"train/loss": given(range(30, 60), loss)}
        finally:
            w.close()


def record_starts(data: bytes) -> list[int]:
    """Offsets of an event file's records (8-byte length, its CRC, the data, the data's CRC)."""
    out, p = [], 0
    while p + 12 <= len(data):
        out.append(p)
        p += 16 + int.from_bytes(data[p : p + 8], "little")
    return out


async def test_event_file_export_walked_page_by_page_gives_every_point_once(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    async with serving(tmp_path, limits=Limits(max_page_bytes=600)) as s:
        w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600)
        want: Points = {"loss": [], "acc": []}
        try:
            for flush in range(6):  # each flush read as its own chunk: marks to cut pages at
                for step in range(flush * 10, flush * 10 + 10):
                    w.add_scalar("loss", loss(step), step, walltime=WALL + step)
                    w.add_scalar("acc", acc(step), step, walltime=WALL + step)
                    want["loss"].append(point(step, f32(loss(step))))
                    want["acc"].append(point(step, f32(acc(step))))
                w.flush()
                await s.wait_points("exp", "loss", flush * 10 + 10)
        finally:
            w.close()
        records, pages = await s.export("exp")
        assert pages > 2
        assert exported_points(records) == want
        assert await s.all_points("exp") == want


async def test_corrupt_event_records_are_counted_and_the_rest_read(tmp_path: Path) -> None:
    """A record whose data CRC does not match (bad_crc) and a header whose length CRC does not
    (bad_length) are counted in /api/runs; every other point is read, live, in two writes."""
    from torch.utils.tensorboard import SummaryWriter

    scratch = tmp_path / "scratch"
    w = SummaryWriter(str(scratch))
    for step in range(40):
        w.add_scalar("loss", loss(step), step, walltime=WALL + step)
    w.close()
    (src,) = scratch.glob("events.out.tfevents.*")
    data = bytearray(src.read_bytes())
    starts = record_starts(bytes(data))
    assert len(starts) == 41  # the file version, then one record per point
    data[starts[10] + 14] ^= 0x40  # inside the data of step 9's record
    data[starts[30]] ^= 0x01  # step 29's length: its CRC no longer matches
    root = tmp_path / "root"
    root.mkdir()
    async with serving(root) as s:
        (root / "exp").mkdir()
        dst = root / "exp" / src.name
        half = starts[20] + 5  # a torn record between the writes
        dst.write_bytes(data[:half])
        await s.wait_points("exp", "loss", 18)
        with open(dst, "ab") as f:
            f.write(data[half:])
        got = await s.wait_points("exp", "loss", 38)
        assert got == given([i for i in range(40) if i not in (9, 29)], loss)
        info = (await s.runs())["exp"]
        assert info["skipped"] == {"total": 2, "bad_crc": 1, "bad_length": 1}


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "poll"])
async def test_tensorboardx_writer_found_live_exact_and_appends(tmp_path: Path, poll: bool) -> None:
    tbx = pytest.importorskip("tensorboardX")
    async with serving(tmp_path, poll=poll) as s:
        # its flush() writes what its thread has taken from its queue: the thread flushes the rest
        w = tbx.SummaryWriter(str(tmp_path / "tbx" / "run1"), flush_secs=0.05)
        try:
            for step in range(0, 200, 5):
                w.add_scalar("a/b", loss(step), step, walltime=WALL + step)
            w.flush()
            assert await s.wait_points("tbx/run1", "a/b", 40) == given(range(0, 200, 5), loss)
            async with s.ws() as ws:
                sub = Subscriber(ws, "tbx/run1")
                await sub.subscribe()
                await sub.until(lambda c: c.count() == 40)
                for step in range(200, 260, 5):
                    w.add_scalar("a/b", loss(step), step, walltime=WALL + step)
                w.flush()
                await sub.until(lambda c: c.count() == 52)
                assert sub.series == {"a/b": given(range(0, 260, 5), loss)} and sub.resets == []
            assert (await s.series("tbx/run1", "a/b"))["times"] == [WALL + step for step in range(0, 260, 5)]
            assert (await s.runs())["tbx/run1"]["skipped"] == {"total": 0}
        finally:
            w.close()


async def test_tensorboard_layout_add_scalars_folders_and_add_hparams(tmp_path: Path) -> None:
    """A run is the folder holding event files: add_scalars writes one folder per key (runs
    ``exp/loss_train``, ``exp/loss_eval``), add_hparams one more holding the config and the metrics."""
    from torch.utils.tensorboard import SummaryWriter

    async with serving(tmp_path) as s:
        w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600)
        try:
            for step in range(5):
                w.add_scalar("lr", 0.1 / (step + 1), step, walltime=WALL + step)
                w.add_scalars("loss", {"train": loss(step), "eval": acc(step)}, step, walltime=WALL + step)
            w.add_hparams({"lr": 0.01, "opt": "adam", "layers": 3}, {"hp/acc": 0.875})
            w.flush()
            runs = await s.wait(lambda: _runs_holding(s, 4), what="four runs")
            (hp,) = [r for r in runs if r not in ("exp", "exp/loss_train", "exp/loss_eval")]
            assert hp.startswith("exp/")
            assert await s.wait_points("exp", "lr", 5) == given(range(5), lambda i: 0.1 / (i + 1))
            assert await s.wait_points("exp/loss_train", "loss", 5) == given(range(5), loss)
            assert await s.wait_points("exp/loss_eval", "loss", 5) == given(range(5), acc)
            assert await s.wait_points(hp, "hp/acc", 1) == [point(0, f32(0.875))]
            detail = await s.get("/api/run", run=hp)
            assert detail["config"] == {"lr": 0.01, "opt": "adam", "layers": 3.0}
            files = await s.files()
            assert files["formats"] == {"tfevents": 4} and files["unrecognised"] == 0
        finally:
            w.close()


async def _runs_holding(s: Served, n: int) -> list[str] | None:
    runs = [r for r, info in (await s.runs()).items() if info["metrics"]]
    return sorted(runs) if len(runs) >= n else None


# ---- CSV: Lightning's CSVLogger ----------------------------------------------------------------


def csv_points(text: str) -> Points:
    """The points of a Lightning metrics.csv by the csv module: every filled cell but the step."""
    out: Points = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        for name, cell in row.items():
            if cell and name != "step":
                out.setdefault(name, []).append(point(row["step"], float(cell)))
    return {k: sorted(v, key=lambda p: p[0]) for k, v in out.items()}


def train_lightning(root: Path, on_flush: Any, given_losses: list[float]) -> Path:
    """A small real Lightning fit whose CSVLogger rewrites metrics.csv twice (val_loss appears after
    epoch 0, late_metric from epoch 1); ``on_flush(path)`` runs whenever the file changed."""
    sizes = [-1]

    def check(trainer: Any) -> None:
        path = Path(trainer.logger.log_dir) / "metrics.csv"
        size = path.stat().st_size if path.exists() else -1
        if size != sizes[0]:
            sizes[0] = size
            on_flush(path)

    return lightning_fit(root, epochs=3, samples=48, flush_every=2, log_every=1, on_batch=check,
                         on_loss=given_losses.append)


async def test_lightning_csv_logger_followed_live_through_its_rewrites(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    # pages as small as the chunks the server read: each page from one kept state to the next
    async with serving(tmp_path, limits=Limits(max_page_bytes=64)) as s:
        run = "exp/version_0"
        losses: list[float] = []
        flushes: list[int] = []

        def on_flush(path: Path) -> None:  # the training waits for the server to read each version
            flushes.append(path.stat().st_size)
            wait_caught_up(s.server, run, path)

        training = asyncio.create_task(asyncio.to_thread(train_lightning, tmp_path, on_flush, losses))
        await s.wait(lambda: _has_run(s, run), timeout=30, what="the run")
        async with s.ws() as ws:
            sub = Subscriber(ws, run)
            await sub.subscribe()
            await sub.until(lambda c: training.done(), timeout=60)
            path = await training
            raw = path.read_bytes()
            assert raw.startswith(b"epoch,late_metric,step,train_loss,val_loss") and len(flushes) > 5
            want = csv_points(raw.decode())
            assert len(want["val_loss"]) == 3 and len(want["late_metric"]) == 12
            assert [v for _, v in want["train_loss"]] == losses  # the values given, exact

            # every point once, in /api/series and in what the live client holds
            assert await s.all_points(run) == want
            await sub.until(lambda c: c.sorted() == want)
            assert sub.resets == []
            info = (await s.runs())[run]
            assert info["streams"][0]["format"] == "csv" and info["skipped"] == {"total": 0}

            # a row with the wrong number of cells is counted, the next row read
            cursor = sub.cursor
            with open(path, "ab") as f:
                f.write(b"0,1\r\n2,,500,0.25,\r\n")
            await sub.until(lambda c: c.count("train_loss") == len(losses) + 1)
            assert sub.series["train_loss"][-1] == point(500, 0.25) and sub.series["epoch"][-1] == point(500, 2)
            got = await s.wait(lambda: _skipped(s, run), what="the bad row counted")
            assert got == {"total": 1, "wrong_cells": 1}

        # a subscription resumed from the earlier cursor gets exactly the new row
        async with s.ws() as ws:
            again = Subscriber(ws, run)
            await again.subscribe(cursor)
            await again.until(lambda c: c.deltas > 0 or bool(c.resets))
            assert again.resets == [] and again.series == {"train_loss": [point(500, 0.25)], "epoch": [point(500, 2)]}

        # the export, page by page from the start: every point once
        records, pages = await s.export(run)
        want["train_loss"].append(point(500, 0.25))
        want["epoch"].append(point(500, 2))
        assert pages > 3  # the rewrite's re-read, epoch 2's flushes, the appended rows
        assert {k: sorted(v, key=lambda p: p[0]) for k, v in exported_points(records).items()} == want


async def _has_run(s: Served, run: str) -> bool:
    return run in await s.runs()


async def _skipped(s: Served, run: str) -> dict[str, int] | None:
    got = (await s.runs())[run]["skipped"]
    return got if got["total"] else None


# ---- JSON documents: transformers' trainer_state.json ------------------------------------------

TRAINER = hf_script(r"""
class Pace(TrainerCallback):  # time for the server to see each checkpoint's version
    def on_save(self, args, state, control, **kw):
        time.sleep(0.3)

torch.manual_seed(0)
trainer = Trainer(model=Model(), args=arguments(sys.argv[1], save_steps=5, disable_tqdm=True),
                  train_dataset=Data(), eval_dataset=Data(), callbacks=[Pace()])
trainer.train()
trainer.save_state()
""")


def document_points(doc: bytes) -> Points:
    """What the JSON document reader gives for one version read whole (the history's points)."""
    from tailboard.sidecar.readers.jsondoc import JsonDocReader

    reader = JsonDocReader()
    parsed, _ = reader.decode(doc, reader.new_state(), now=0.0)
    assert len(parsed.segments) == 1 and not parsed.skipped
    return {name: sorted(point(s, v) for s, v in zip(steps, values))
            for name, (steps, values, _) in parsed.segments[0].items()}


async def test_transformers_trainer_state_versions_followed_live(tmp_path: Path) -> None:
    """The Trainer writes its whole history into each checkpoint-N/trainer_state.json, then into
    the output folder's own (save_state): versions of one history, read as one run, each point
    once; a malformed rewrite is counted and the next good one read."""
    pytest.importorskip("transformers")
    async with serving(tmp_path, limits=Limits(max_page_bytes=64)) as s:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", TRAINER, str(tmp_path / "hf"),
                                                    stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            sub = None
            async with s.ws() as ws:
                await s.wait(lambda: _has_run(s, "hf"), timeout=60, what="the run")
                assert proc.returncode is None  # found while the Trainer runs
                sub = Subscriber(ws, "hf")
                await sub.subscribe()
                done = asyncio.create_task(proc.communicate())
                await sub.until(lambda c: done.done(), timeout=60)
                _, err = await done
                assert proc.returncode == 0, err.decode()[-2000:]
                final = tmp_path / "hf" / "trainer_state.json"
                want = document_points(final.read_bytes())
                assert len(list((tmp_path / "hf").glob("checkpoint-*/trainer_state.json"))) == 4
                await s.wait(lambda: _holds(s, "hf", want), what="the whole history")
                assert sorted(await s.runs()) == ["hf"]
                await sub.until(lambda c: c.sorted() == want)
                assert sub.resets == []
                info = (await s.runs())["hf"]
                assert info["skipped"] == {"total": 0} and [st["format"] for st in info["streams"]] == ["jsondoc"]

                # a malformed rewrite is counted; the next version's new entry arrives, nothing twice
                doc = json.loads(final.read_bytes())
                final.write_text('{"log_history": [}')
                await s.wait(lambda: _skipped(s, "hf"), what="the malformed version counted")
                doc["log_history"].append({"step": 99, "loss": 0.125, "epoch": 3.0})
                final.write_text(json.dumps(doc, indent=2))
                want = document_points(final.read_bytes())
                await sub.until(lambda c: c.sorted() == want)
                assert await s.all_points("hf") == want
                assert (await s.runs())["hf"]["skipped"] == {"total": 1, "malformed_json": 1}

            # the export, page by page: the latest version's every entry once
            records, _ = await s.export("hf")
            assert {k: sorted(v) for k, v in exported_points(records).items()} == want
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _holds(s: Served, run: str, want: Points) -> bool:
    info = (await s.runs()).get(run)
    if info is None or sorted(info["metrics"]) != sorted(want):
        return False
    return {k: sorted(v) for k, v in (await s.all_points(run)).items()} == want


# ---- which files are logs ----------------------------------------------------------------------


async def test_a_root_of_unrecognised_files_says_so(tmp_path: Path) -> None:
    """Files no reader claims are counted with examples in /api/runs; a short one is looked at again
    when it changes (an empty metrics.csv becomes a log once it holds a header and rows)."""
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dat").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "junk" / "readme.txt").write_text("no metrics in here\njust words\n")
    (tmp_path / "model.pt").write_bytes(b"\0" * 64)  # never a log by its name: not reported
    async with serving(tmp_path) as s:
        assert await s.runs() == {}
        assert await s.files() == {"formats": {}, "unrecognised": 2, "examples": ["junk/a.dat", "junk/readme.txt"]}
        (tmp_path / "run").mkdir()
        csv_path = tmp_path / "run" / "metrics.csv"
        csv_path.write_bytes(b"")
        (tmp_path / "run" / "b.bin.dat").write_bytes(b"\xff" * 5000)
        await s.wait(lambda: _files_are(s, unrecognised=4), what="two more unrecognised files")
        csv_path.write_text("step,loss\n0,0.5\n1,0.25\n")
        assert await s.wait_points("run", "loss", 2) == [point(0, 0.5), point(1, 0.25)]
        files = await s.files()
        assert files["formats"] == {"csv": 1} and files["unrecognised"] == 3
        assert files["examples"] == ["junk/a.dat", "junk/readme.txt", "run/b.bin.dat"]


async def _files_are(s: Served, **want: Any) -> bool:
    files = await s.files()
    return all(files[k] == v for k, v in want.items())


async def test_the_cli_says_what_it_found_in_its_first_lines(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.dat").write_bytes(bytes(range(256)) * 20)
    (tmp_path / "junk" / "readme.txt").write_text("no metrics in here\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tailboard.sidecar", "serve", str(tmp_path), "--port", "0", "--token", "t",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode().rstrip("\n") for _ in range(3)]
        assert lines[0].startswith("tailboard ") and lines[0].endswith(f"following {tmp_path}"), lines
        assert lines[1] == "  found 0 log files; 2 files not recognised (junk/a.dat, junk/readme.txt)", lines
        assert lines[2].startswith("  open http://127.0.0.1:") and ":0/" not in lines[2], lines
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


async def test_include_and_exclude_rules(tmp_path: Path) -> None:
    """``--include GLOB=READER`` forces a reader, ``--include GLOB`` opens a name never read,
    ``--exclude GLOB`` drops a file that is a log (not even reported)."""
    from tailboard.sidecar.readers.registry import Registry, Rule

    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "stdout.dat").write_text("step=1 loss=0.5\nstep=2 loss=0.25\n")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "metrics.tmp").write_text('{"step": 1, "acc": 0.5}\n{"step": 2, "acc": 0.75}\n')
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "metrics.csv").write_text("step,loss\n0,1.5\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metrics.csv").write_text("step,loss\n0,2.5\n")
    readers = Registry(include=[Rule("*.dat", "text"), Rule("*.tmp")], exclude=[Rule("c/*")])
    async with serving(tmp_path, readers=readers) as s:
        assert sorted(await s.runs()) == ["a", "b", "d"]
        assert await s.files() == {"formats": {"csv": 1, "jsonl": 1, "text": 1}, "unrecognised": 0, "examples": []}
        assert await s.points("a", "loss") == [point(1, 0.5), point(2, 0.25)]
        assert [v for _, v in await s.points("b", "acc")] == [0.5, 0.75]
        assert await s.points("d", "loss") == [point(0, 2.5)]
        with open(tmp_path / "a" / "stdout.dat", "a") as f:
            f.write("step=3 loss=0.125\n")
        assert (await s.wait_points("a", "loss", 3))[-1] == point(3, 0.125)
        (tmp_path / "c" / "late.csv").write_text("step,loss\n0,3.5\n")  # excluded, live too
        (tmp_path / "d" / "late.csv").write_text("step,acc\n0,3.5\n")
        assert await s.wait_points("d", "acc", 1) == [point(0, 3.5)]
        assert "c" not in await s.runs() and (await s.files())["unrecognised"] == 0


# ---- the parallel catch-up ---------------------------------------------------------------------


def write_backlog(root: Path) -> None:
    """Event files and CSV files, written before the server starts, a bad record in each format."""
    from lightning.fabric.loggers import CSVLogger
    from torch.utils.tensorboard import SummaryWriter

    for r in range(3):
        w = SummaryWriter(str(root / f"tb{r}"), flush_secs=3600)
        for step in range(400):
            w.add_scalar("loss", loss(step + r), step, walltime=WALL + step)
            if step % 3 == 0:
                w.add_scalars("pair", {"a": acc(step), "b": -acc(step)}, step, walltime=WALL + step)
        w.close()
    (path,) = (root / "tb0").glob("events.out.tfevents.*")
    data = bytearray(path.read_bytes())
    data[record_starts(bytes(data))[100] + 14] ^= 0x40
    path.write_bytes(bytes(data))
    for r in range(2):
        logger = CSVLogger(str(root / "csv"), name=f"exp{r}", flush_logs_every_n_steps=50)
        for step in range(300):
            metrics = {"train_loss": loss(step + r)}
            if step % 10 == 9:
                metrics["val_acc"] = acc(step)
            logger.log_metrics(metrics, step)
        logger.finalize("success")
        with open(Path(logger.log_dir) / "metrics.csv", "a") as f:
            f.write("1,2\n")


async def test_parallel_catch_up_gives_what_the_serial_one_gives(tmp_path: Path) -> None:
    pytest.importorskip("lightning")
    write_backlog(tmp_path)
    got = []
    for workers in (1, 2):
        options = {"workers": workers, "parallel_min_bytes": 1, "read_bytes": 4096}
        async with serving(tmp_path, follower_options=options) as s:
            assert s.server.follower.catch_up_workers == (2 if workers == 2 else 0)
            runs = await s.runs()
            got.append({run: (await s.all_points(run), info["skipped"], info["records"])
                        for run, info in runs.items()})
    serial, parallel = got
    assert len(serial) == 3 + 3 * 2 + 2 and serial["tb0"][1] == {"total": 1, "bad_crc": 1}
    assert serial["csv/exp0/version_0"][1] == {"total": 1, "wrong_cells": 1}
    assert len(serial["tb1"][0]["loss"]) == 400 and len(serial["csv/exp1/version_0"][0]["val_acc"]) == 30
    assert parallel == serial


# ---- replay ------------------------------------------------------------------------------------


async def test_every_format_replays_to_copies_the_server_reads_as_the_originals(tmp_path: Path) -> None:
    """``tailboard replay``: event files, CSV, a Trainer's checkpoint histories and a text log are
    copied byte for byte, and the server following the copies shows what it shows of the originals."""
    pytest.importorskip("lightning")
    from tailboard.sidecar.replay import Replayer

    src, out = tmp_path / "src", tmp_path / "out"
    write_backlog(src)
    for n, steps in ((5, range(3)), (10, range(6))):
        path = src / "hf" / f"checkpoint-{n}" / "trainer_state.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"global_step": n, "log_history": [{"step": i, "loss": i / 8} for i in steps]}))
    (src / "text").mkdir()
    (src / "text" / "train.log").write_text("".join(f"step={i} loss={i / 4}\n" for i in range(50)))
    async with serving(src) as s:
        want = {run: await s.all_points(run) for run in await s.runs()}
    assert "hf" in want and "hf/checkpoint-10" not in want
    out.mkdir()
    async with serving(out) as s:
        replayer = Replayer(src, out, speed=1e6)
        await asyncio.wait_for(replayer.run(), 30)
        for path in src.rglob("*"):
            if path.is_file() and path.suffix in (".csv", ".json", ".log") or path.name.startswith("events."):
                assert (out / path.relative_to(src)).read_bytes() == path.read_bytes(), path

        async def replayed() -> bool:
            return {run: await s.all_points(run) for run in await s.runs()} == want

        await s.wait(replayed, what="the replayed runs")


async def test_event_file_resume_after_many_flushes_gets_exactly_the_missed_points(tmp_path: Path) -> None:
    """A client away while the writer flushed many times (every flush a chunk read on its own)
    resumes from its cursor with exactly what it missed."""
    from torch.utils.tensorboard import SummaryWriter

    async with serving(tmp_path) as s:
        w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600)
        try:
            for step in range(5):
                w.add_scalar("loss", loss(step), step, walltime=WALL + step)
            w.flush()
            await s.wait_points("exp", "loss", 5)
            async with s.ws() as ws:
                sub = Subscriber(ws, "exp")
                await sub.subscribe()
                await sub.until(lambda c: c.count() == 5)
            for step in range(5, 45):
                w.add_scalar("loss", loss(step), step, walltime=WALL + step)
                w.flush()
                await s.wait_points("exp", "loss", step + 1)
            async with s.ws() as ws:
                again = Subscriber(ws, "exp")
                await again.subscribe(sub.cursor)
                await again.until(lambda c: c.deltas > 0 or bool(c.resets))
                assert again.resets == [] and again.series == {"loss": given(range(5, 45), loss)}
        finally:
            w.close()


async def test_csv_resume_and_export_from_states_no_longer_kept(tmp_path: Path) -> None:
    """A resume and an export page from places whose reader state the stream no longer keeps (many
    chunks were read since) give exactly the points after them."""
    pytest.importorskip("lightning")
    from lightning.fabric.loggers import CSVLogger

    async with serving(tmp_path, limits=Limits(max_page_bytes=64)) as s:
        logger = CSVLogger(str(tmp_path), name="csv", flush_logs_every_n_steps=1)
        run = "csv/version_0"
        path = tmp_path / "csv" / "version_0" / "metrics.csv"
        want: Points = {"loss": []}

        async def log(steps: range) -> None:
            for step in steps:  # each step flushed, each read as a chunk of its own
                logger.log_metrics({"loss": loss(step)}, step)
                want["loss"].append(point(step, loss(step)))
                await s.wait_points(run, "loss", len(want["loss"]))

        await log(range(5))
        async with s.ws() as ws:
            sub = Subscriber(ws, run)
            await sub.subscribe()
            await sub.until(lambda c: c.count() == 5)
        page = await s.get("/api/records", run=run, limit=10_000)
        assert page["more"] is True
        await log(range(5, 25))
        async with s.ws() as ws:
            again = Subscriber(ws, run)
            await again.subscribe(sub.cursor)
            await again.until(lambda c: c.deltas > 0 or bool(c.resets))
            assert again.resets == [] and again.series == {"loss": want["loss"][5:]}
        records = page["records"]
        cursor, more = page["cursor"], page["more"]
        while more:
            page = await s.get("/api/records", run=run, cursor=cursor, limit=10_000)
            assert "reset" not in page, page
            records += page["records"]
            cursor, more = page["cursor"], page["more"]
        assert exported_points(records) == want
        assert path.exists()


# ---- text logs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "poll"])
async def test_text_log_whose_metrics_start_after_pages_of_other_lines(tmp_path: Path, poll: bool) -> None:
    """A script's stdout opens with warnings and prints well past the first 4 KiB before its first
    metric line: it is taken as a log once metric lines arrive, and read from its start."""
    async with serving(tmp_path, poll=poll) as s:
        (tmp_path / "job").mkdir()
        path = tmp_path / "job" / "train.log"
        with open(path, "w") as f:
            f.writelines(f"UserWarning: the DataLoader will create worker processes; message number {i}\n"
                         for i in range(120))
            f.flush()
            await s.wait(lambda: _files_are(s, unrecognised=1), what="the log, unrecognised so far")
            f.writelines(f"step={step} loss={loss(step)!r}\n" for step in range(10))
            f.flush()
            assert await s.wait_points("job", "loss", 10) == [point(i, loss(i)) for i in range(10)]
            assert await s.files() == {"formats": {"text": 1}, "unrecognised": 0, "examples": []}
            f.write(f"step=10 loss={loss(10)!r}\n")
            f.flush()
            assert (await s.wait_points("job", "loss", 11))[-1] == point(10, loss(10))


async def test_a_writer_resumed_with_purge_step_shows_what_tensorboard_shows(tmp_path: Path) -> None:
    """SummaryWriter(purge_step=S) after a restart writes a new file opening with SessionLog.START:
    the run's earlier points from step S on are orphaned, as TensorBoard purges them."""
    from tensorboard.backend.event_processing import event_accumulator as ea
    from torch.utils.tensorboard import SummaryWriter

    async with serving(tmp_path) as s:
        w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600)
        for step in range(10):
            w.add_scalar("loss", loss(step), step, walltime=WALL + step)
        w.close()
        await s.wait_points("exp", "loss", 10)
        async with s.ws() as ws:
            sub = Subscriber(ws, "exp")
            await sub.subscribe()
            await sub.until(lambda c: c.count() == 10)
            w = SummaryWriter(str(tmp_path / "exp"), flush_secs=3600, purge_step=6)  # resumed at step 6
            for step in range(6, 12):
                w.add_scalar("loss", acc(step), step, walltime=WALL + 100 + step)
            w.close()
            want = given(range(6), loss) + [point(step, f32(acc(step))) for step in range(6, 12)]
            await sub.until(lambda c: c.series.get("loss") == want)
            assert sub.resets == ["attempt"]
        assert await s.points("exp", "loss") == want
        assert (await s.runs())["exp"]["attempts"] == 2
        tb = ea.EventAccumulator(str(tmp_path / "exp"))
        tb.Reload()
        assert [point(e.step, e.value) for e in tb.Scalars("loss")] == want
        # a run whose first file was written so restarts nothing: it has one attempt
        w = SummaryWriter(str(tmp_path / "fresh"), flush_secs=3600, purge_step=0)
        w.add_scalar("loss", 0.5, 0, walltime=WALL)
        w.close()
        assert await s.wait_points("fresh", "loss", 1) == [point(0, 0.5)]
        assert (await s.runs())["fresh"]["attempts"] == 1


async def test_a_resumed_writer_s_file_caught_up_after_the_file_it_resumes(tmp_path: Path) -> None:
    """Both files there before the server starts: they are read in the order of their names (as
    TensorBoard reads them: a writer's file is named after its start time), whatever order the
    folder lists them in."""
    from torch.utils.tensorboard import SummaryWriter

    scratch = tmp_path / "scratch"
    w = SummaryWriter(str(scratch / "old"))
    for step in range(10):
        w.add_scalar("loss", loss(step), step, walltime=WALL + step)
    w.close()
    w = SummaryWriter(str(scratch / "new"), purge_step=6)
    for step in range(6, 12):
        w.add_scalar("loss", acc(step), step, walltime=WALL + 100 + step)
    w.close()
    (old,), (new,) = (scratch / "old").iterdir(), (scratch / "new").iterdir()
    assert old.name < new.name
    for k in range(64):  # names a folder lists the resumed writer's file first under (ext4: hash order)
        run = tmp_path / "root" / f"exp{k}"
        run.mkdir(parents=True)
        (run / f"{new.name}.{k}").write_bytes(new.read_bytes())
        (run / f"{old.name}.{k}").write_bytes(old.read_bytes())
        if os.listdir(run)[0] == f"{new.name}.{k}":
            break
        shutil.rmtree(run)
    else:
        pytest.skip("no folder listed the newer file first")
    async with serving(tmp_path / "root") as s:
        want = given(range(6), loss) + [point(step, f32(acc(step))) for step in range(6, 12)]
        assert await s.points(f"exp{k}", "loss") == want


async def test_steps_of_nan_or_infinity_are_never_served(tmp_path: Path) -> None:
    """A step with no place on an axis (NaN, +-Infinity, a number past float range) from any format:
    the writer's own lines are skipped and counted (``bad_step``), a foreign line's counter or a text
    line's 400-digit step is no counter; no such step reaches /api/series, no attempt is faked, and
    the other points are all there."""
    import tailboard

    run = tailboard.init(tmp_path / "native")
    for step in range(3):
        run.log({"loss": loss(step)}, step=step)
    run.finish()
    [native] = (tmp_path / "native").glob("*.jsonl")
    with open(native, "ab") as f:  # lines another program wrote in tailboard's format
        f.write(b'{"k":"scalars","step":NaN,"t":1.0,"v":{"loss":7}}\n{"k":"scalars","step":1e400,"t":1.0,"v":{"loss":8}}\n'
                b'{"k":"scalars","step":-Infinity,"t":1.0,"v":{"loss":9}}\n{"k":"scalars","step":3,"t":1.0,"v":{"loss":0.5}}\n')
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "metrics.json").write_text(
        '{"step": 0, "loss": 1}\n{"step": Infinity, "loss": 2}\n{"step": NaN, "loss": 3}\n{"step": 3, "loss": 4}\n')
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "train.log").write_text(f"step=0 loss=1.5\nstep={'9' * 400} loss=2.5\nstep=2 loss=3.5\n")
    async with serving(tmp_path) as s:
        assert await s.wait_points("native", "loss", 4) == [point(0, loss(0)), point(1, loss(1)), point(2, loss(2)),
                                                            point(3, 0.5)]
        assert await s.wait_points("foreign", "loss", 4) == [point(0, 1), point(1, 2), point(2, 3), point(3, 4)]
        # a text line whose step is past float range has none: it belongs where the last step was
        assert await s.wait_points("text", "loss", 3) == [point(0, 1.5), point(0, 2.5), point(2, 3.5)]
        runs = await s.runs()
        assert runs["native"]["skipped"] == {"total": 3, "bad_step": 3}
        assert runs["text"]["skipped"] == runs["foreign"]["skipped"] == {"total": 0}
        assert await s.points("foreign", "step") == [point(1, math.inf), point(2, math.nan)]
        for name in ("native", "foreign", "text"):
            assert runs[name]["attempts"] == 1 and math.isfinite(runs[name]["last_step"]), runs[name]
            for metric in runs[name]["metrics"]:
                steps = (await s.series(name, metric))["steps"]
                assert all(type(x) in (int, float) and math.isfinite(x) for x in steps), (name, metric, steps)
