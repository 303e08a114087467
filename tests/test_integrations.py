"""The integrations with real training: Lightning, transformers and Accelerate write runs that the
sidecar's Store and Follower read back with the values, steps, names, config and status logged; only
rank zero writes (real two-process jobs under torchrun); ``tailboard.notebook`` starts a real sidecar
and it goes when the interpreter that started it goes, however it ends."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import pytest
import tailboard
from tailboard.sidecar.follower import Follower
from tailboard.sidecar.store import Store

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.usefixtures("no_errors")


# ---- reading back ---------------------------------------------------------------------------------


def read_back(root: Path) -> Store:
    """A Store holding every run under ``root``, as the sidecar reads it."""

    async def load() -> Store:
        store = Store(root)
        follower = Follower(root, store)
        await follower.start()
        await follower.stop()
        return store

    return asyncio.run(load())


def points(store: Store, run_id: str, metric: str) -> list[tuple[float, float]]:
    s = store.series(run_id, metric)
    return list(zip(s.steps.tolist(), s.values.tolist()))


def run_script(tmp_path: Path, code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script), *args], check=False, capture_output=True,
                          text=True, timeout=timeout, cwd=tmp_path)


def torchrun(tmp_path: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``code`` in two processes of one job on the CPU (gloo), as torchrun starts them."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), *args], check=False, capture_output=True, text=True, timeout=180,
                          cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_importing_tailboard_imports_no_framework() -> None:
    code = ("import sys, tailboard, tailboard.integrations, tailboard.notebook; "
            "print(sorted(m for m in ('lightning', 'transformers', 'accelerate', 'IPython', 'torch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# ---- Lightning ------------------------------------------------------------------------------------

L = pytest.importorskip("lightning")
from tailboard.integrations.lightning import TailboardLogger  # noqa: E402 (Lightning tests only where it installs)


class Tiny(L.LightningModule):  # type: ignore[misc]
    def __init__(self, lr: float = 0.1, width: int = 4, fail_at: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)
        self.logged: list[tuple[int, float]] = []

    def loss(self, batch: Any) -> Any:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def training_step(self, batch: Any, index: int) -> Any:
        if self.global_step == self.hparams.fail_at:
            raise RuntimeError(f"diverged at step {self.global_step}")
        loss = self.loss(batch)
        self.log("train/loss", loss)
        self.logged.append((self.global_step, float(loss.detach())))
        return loss

    def validation_step(self, batch: Any, index: int) -> None:
        self.log("val/loss", self.loss(batch))

    def test_step(self, batch: Any, index: int) -> None:
        self.log("test/loss", self.loss(batch))

    def configure_optimizers(self) -> Any:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def loader() -> Any:
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(16, 4, generator=g), torch.randn(16, 1, generator=g))
    return torch.utils.data.DataLoader(data, batch_size=4)


def trainer(logger: TailboardLogger, epochs: int = 2) -> Any:
    return L.Trainer(logger=logger, max_epochs=epochs, log_every_n_steps=1, accelerator="cpu", devices=1,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def test_lightning_fit_then_test(tmp_path: Path) -> None:
    logger = TailboardLogger(tmp_path, name="mnist")
    assert logger.log_dir == str(tmp_path / "mnist" / "version_0")
    model = Tiny(lr=0.05)
    fit = trainer(logger)
    fit.fit(model, loader(), loader())
    last_val = float(fit.callback_metrics["val/loss"])
    fit.test(model, loader())
    assert logger.experiment is not None and logger.experiment.path == logger.log_dir
    assert TailboardLogger(tmp_path, name="mnist").version == 1  # the next run takes the next folder

    store = read_back(tmp_path)
    assert store.run_ids() == ["mnist/version_0"]
    info = store.get_run("mnist/version_0")
    assert info is not None and info.status == "finished"
    assert info.attempts == 2  # fit, then test: the run was finished and opened again
    assert store.run_detail("mnist/version_0")["config"] == {"lr": 0.05, "width": 4, "fail_at": None}
    assert points(store, "mnist/version_0", "train/loss") == model.logged
    assert [s for s, _ in model.logged] == list(range(8))  # 4 batches x 2 epochs
    val = points(store, "mnist/version_0", "val/loss")
    assert [s for s, _ in val] == [3, 7]  # at the end of each epoch
    assert val[-1][1] == last_val
    assert [s for s, _ in points(store, "mnist/version_0", "test/loss")] == [8]
    epochs = points(store, "mnist/version_0", "epoch")
    assert {s: v for s, v in epochs if s < 8} == {**dict.fromkeys(range(4), 0), **dict.fromkeys(range(4, 8), 1)}


def test_lightning_failing_fit_is_failed(tmp_path: Path) -> None:
    logger = TailboardLogger(tmp_path, name="", version="broken")
    model = Tiny(fail_at=3)
    with pytest.raises(RuntimeError, match="diverged at step 3"):
        trainer(logger).fit(model, loader())
    store = read_back(tmp_path)
    info = store.get_run("broken")
    assert info is not None and info.status == "failed"
    assert info.reason == "RuntimeError: diverged at step 3"
    assert points(store, "broken", "train/loss") == model.logged
    assert [s for s, _ in model.logged] == [0, 1, 2]


DDP_LIGHTNING = """
    import sys, torch, lightning as L
    from tailboard.integrations.lightning import TailboardLogger

    class M(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.save_hyperparameters({"world": 2})
            self.layer = torch.nn.Linear(4, 1)
        def training_step(self, batch, index):
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("rank", float(self.global_rank))
            return loss
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    trainer = L.Trainer(logger=TailboardLogger(sys.argv[1], name="ddp"), max_epochs=1, log_every_n_steps=1,
                        accelerator="cpu", devices=2, strategy="ddp", enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(M(), torch.utils.data.DataLoader(data, batch_size=4))
    # end the process group before the interpreter does, and leave without its teardown: gloo's
    # threads torn down at exit may abort the process ("terminate called without an active
    # exception") on a busy machine; the run is finished by then (fit's end finalizes the logger)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    import os
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
"""


@pytest.mark.slow
def test_lightning_ddp_writes_on_rank_zero_only(tmp_path: Path) -> None:
    torchrun(tmp_path, DDP_LIGHTNING, str(tmp_path / "runs"))
    assert [p.name for p in (tmp_path / "runs" / "ddp").iterdir()] == ["version_0"]
    assert [p.name for p in (tmp_path / "runs" / "ddp" / "version_0").iterdir()] == ["rank0.jsonl"]
    store = read_back(tmp_path / "runs")
    assert store.run_ids() == ["ddp/version_0"]
    info = store.get_run("ddp/version_0")
    assert info is not None and info.status == "finished"
    assert store.run_detail("ddp/version_0")["config"] == {"world": 2}
    assert points(store, "ddp/version_0", "rank") == [(0, 0.0), (1, 0.0)]  # 16 rows / 2 ranks / 4 a batch


# ---- transformers ---------------------------------------------------------------------------------

TINY_BERT = """
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    def tiny_bert():
        torch.manual_seed(0)
        config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                            intermediate_size=8, max_position_embeddings=16, num_labels=2)
        return BertForSequenceClassification(config)

    def examples(n):
        g = torch.Generator().manual_seed(1)
        return [{"input_ids": torch.randint(0, 32, (6,), generator=g), "labels": torch.tensor(i % 2)}
                for i in range(n)]

    def arguments(output_dir, **more):
        from transformers import TrainingArguments
        options = dict(output_dir=output_dir, max_steps=6, per_device_train_batch_size=4, logging_steps=2,
                       learning_rate=0.01, report_to=[], use_cpu=True, save_strategy="no", disable_tqdm=True)
        return TrainingArguments(**{**options, **more})
"""


def tiny_bert_kit() -> dict[str, Any]:
    kit: dict[str, Any] = {}
    exec(textwrap.dedent(TINY_BERT), kit)  # noqa: S102  (the code the child scripts run too)
    return kit


def test_transformers_trainer(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    from tailboard.integrations.transformers import TailboardCallback, metric_name

    kit = tiny_bert_kit()
    model = kit["tiny_bert"]()
    args = kit["arguments"](str(tmp_path / "out"), eval_strategy="steps", eval_steps=3)
    data = kit["examples"](16)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:4],
                                   callbacks=[TailboardCallback(tmp_path / "runs" / "bert")])
    trainer.train()

    store = read_back(tmp_path / "runs")
    info = store.get_run("bert")
    assert info is not None and info.status == "finished"
    config = store.run_detail("bert")["config"]
    assert (config["learning_rate"], config["max_steps"], config["logging_steps"]) == (0.01, 6, 2)
    assert config["model"]["hidden_size"] == 8 and config["model"]["model_type"] == "bert"
    # every value the Trainer logged (its own log_history), at its step, under TensorBoard's names
    expected: dict[str, list[tuple[float, float]]] = {}
    for entry in trainer.state.log_history:
        for key, value in entry.items():
            if key != "step":
                expected.setdefault(metric_name(key), []).append((entry["step"], value))
    assert {"train/loss", "eval/loss", "train/epoch", "train/train_runtime"} <= set(expected)
    assert sorted(info.metrics) == sorted(expected)
    for name, want in expected.items():
        assert sorted(points(store, "bert", name)) == sorted(want), name
    assert [s for s, _ in expected["train/loss"]] == [2, 4, 6]
    assert [s for s, _ in expected["eval/loss"]] == [3, 6]


def test_transformers_names_as_tensorboard_gives_them() -> None:
    pytest.importorskip("transformers")
    from tailboard.integrations.transformers import metric_name
    from transformers.integrations.integration_utils import rewrite_logs

    keys = ["loss", "eval_loss", "eval_runtime", "test_accuracy", "epoch", "learning_rate", "evaluation", "tested"]
    assert {metric_name(k): 1 for k in keys} == rewrite_logs(dict.fromkeys(keys, 1))


def test_transformers_other_processes_write_nothing(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tailboard.integrations.transformers import TailboardCallback
    from transformers import TrainerControl, TrainerState

    args = tiny_bert_kit()["arguments"](str(tmp_path / "out"))
    state, control = TrainerState(is_world_process_zero=False), TrainerControl()
    callback = TailboardCallback(tmp_path / "runs" / "x")
    callback.on_train_begin(args, state, control)
    callback.on_log(args, state, control, logs={"loss": 1.0})
    callback.on_train_end(args, state, control)
    assert not (tmp_path / "runs").exists()


FAILING_TRAINER = TINY_BERT + """
    import sys
    from transformers import BertForSequenceClassification, Trainer
    from tailboard.integrations.transformers import TailboardCallback

    class Diverging(BertForSequenceClassification):
        calls = 0
        def forward(self, input_ids=None, labels=None):
            Diverging.calls += 1
            if Diverging.calls == 4:
                raise FloatingPointError("loss is nan at call 4")
            return super().forward(input_ids=input_ids, labels=labels)

    model = tiny_bert()
    model.__class__ = Diverging
    trainer = Trainer(model=model, args=arguments("out", logging_steps=1), train_dataset=examples(16),
                      callbacks=[TailboardCallback(sys.argv[1])])
    trainer.train()
"""


def test_transformers_failing_training_is_failed(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    done = run_script(tmp_path, FAILING_TRAINER, str(tmp_path / "runs" / "bert"))
    assert done.returncode == 1 and "loss is nan at call 4" in done.stderr
    store = read_back(tmp_path / "runs")
    info = store.get_run("bert")
    assert info is not None and info.status == "failed"
    assert info.reason == "FloatingPointError: loss is nan at call 4"
    assert [s for s, _ in points(store, "bert", "train/loss")] == [1, 2, 3]


def test_transformers_train_that_raised_is_failed_at_the_next_train(tmp_path: Path) -> None:
    """In a notebook no exit hook follows the exception: the next train() marks the last run failed."""
    transformers = pytest.importorskip("transformers")
    from tailboard.integrations.transformers import TailboardCallback

    kit = tiny_bert_kit()
    callback = TailboardCallback(tmp_path / "runs" / "nb")

    class Stop(transformers.TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2:
                raise KeyboardInterrupt

    first = transformers.Trainer(model=kit["tiny_bert"](), args=kit["arguments"](str(tmp_path / "out"), logging_steps=1),
                                 train_dataset=kit["examples"](16), callbacks=[callback, Stop()])
    with pytest.raises(KeyboardInterrupt):
        first.train()
    assert callback.run is not None and not callback.run.finished
    transformers.Trainer(model=kit["tiny_bert"](), args=kit["arguments"](str(tmp_path / "out"), max_steps=2),
                         train_dataset=kit["examples"](8), callbacks=[callback]).train()
    lines = [json.loads(line) for line in (tmp_path / "runs" / "nb" / "rank0.jsonl").read_text().splitlines()]
    ends = [(r["status"], r.get("reason")) for r in lines if r["k"] == "end"]
    assert ends == [("failed", "train() ended without on_train_end: an exception"), ("finished", None)]


# ---- Accelerate -----------------------------------------------------------------------------------

ACCELERATE_LOOP = """
    import sys, torch
    from accelerate import Accelerator
    from tailboard.integrations.accelerate import TailboardTracker

    def train(path, steps, fail_at=None):
        tracker = TailboardTracker(path)
        accelerator = Accelerator(log_with=[tracker], cpu=True)
        accelerator.init_trackers("exp", config={"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.0},
                                                 "world": accelerator.num_processes})
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        model, optimizer = accelerator.prepare(model, optimizer)
        logged = []
        for step in range(steps):
            if step == fail_at:
                raise RuntimeError(f"out of memory at step {step}")
            loss = (model(torch.randn(4, 3)) ** 2).mean()
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
            accelerator.log({"train/loss": loss.item(), "epoch": step // 2, "note": f"step {step}"}, step=step)
            logged.append((step, loss.item()))
        # straight to the tracker, on every process: only the main one may write
        tracker.log({"rank": accelerator.process_index}, step=steps)
        accelerator.end_training()
        return accelerator, logged
"""


def test_accelerate_tracker(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    kit: dict[str, Any] = {}
    exec(textwrap.dedent(ACCELERATE_LOOP), kit)  # noqa: S102
    accelerator, logged = kit["train"](str(tmp_path / "runs" / "exp"), 5)
    run = accelerator.get_tracker("tailboard", unwrap=True)
    assert isinstance(run, tailboard.Run) and run.finished

    store = read_back(tmp_path / "runs")
    info = store.get_run("exp")
    assert info is not None and info.status == "finished"
    assert store.run_detail("exp")["config"] == {"lr": 0.1, "optimizer": {"name": "sgd", "momentum": 0.0}, "world": 1}
    assert points(store, "exp", "train/loss") == logged
    assert points(store, "exp", "epoch") == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 2)]
    assert info.texts == ("note",)
    texts = store.texts("exp", "note")
    assert (texts["steps"], texts["texts"]) == (list(range(5)), [f"step {i}" for i in range(5)])


def test_accelerate_failing_training_is_failed(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    code = textwrap.dedent(ACCELERATE_LOOP) + "train(sys.argv[1], 5, fail_at=3)\n"
    done = run_script(tmp_path, code, str(tmp_path / "runs" / "a"))
    assert done.returncode == 1 and "out of memory at step 3" in done.stderr
    store = read_back(tmp_path / "runs")
    info = store.get_run("a")
    assert info is not None and info.status == "failed" and info.reason == "RuntimeError: out of memory at step 3"
    assert [s for s, _ in points(store, "a", "train/loss")] == [0, 1, 2]


@pytest.mark.slow
def test_accelerate_writes_on_the_main_process_only(tmp_path: Path) -> None:
    pytest.importorskip("accelerate")
    # the run is finished by end_training; os._exit skips the interpreter's teardown, where torch's
    # gloo threads now and then abort a rank ("terminate called without an active exception")
    torchrun(tmp_path, textwrap.dedent(ACCELERATE_LOOP) + "train(sys.argv[1], 3)\n"
             "if torch.distributed.is_initialized():\n    torch.distributed.destroy_process_group()\n"
             "import os\nsys.stdout.flush()\nsys.stderr.flush()\nos._exit(0)\n",
             str(tmp_path / "runs" / "a"))
    assert [p.name for p in (tmp_path / "runs" / "a").iterdir()] == ["rank0.jsonl"]
    store = read_back(tmp_path / "runs")
    assert store.run_ids() == ["a"]
    info = store.get_run("a")
    assert info is not None and info.status == "finished" and info.attempts == 1
    assert store.run_detail("a")["config"]["world"] == 2
    assert points(store, "a", "rank") == [(3, 0)]
    assert [s for s, _ in points(store, "a", "train/loss")] == [0, 1, 2]


# ---- the notebook helper --------------------------------------------------------------------------

NOTEBOOK = """
    import json, sys
    if sys.argv[2] == "no-ipython":
        sys.modules["IPython"] = None  # as if it were not installed
    import tailboard.notebook as notebook
    frame = notebook.show(sys.argv[1], height=321)
    again = notebook.show(sys.argv[1])
    sidecar = notebook.start(sys.argv[1])
    print(json.dumps({"frame": frame if isinstance(frame, str) else [frame.src, frame.width, frame.height],
                      "again": again if isinstance(again, str) else again.src, "url": sidecar.url,
                      "pid": sidecar.process.pid, "port": sidecar.port, "token": sidecar.token}), flush=True)
    sys.stdin.readline()  # the test says when to end
    if sys.argv[2] == "exception":
        raise SystemExit("ended by an exception")
"""


def start_notebook(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """The child, and what it printed: its JSON line, and under ``"printed"`` the lines before it."""
    (tmp_path / "logs").mkdir(exist_ok=True)
    with tailboard.init(tmp_path / "logs" / "seed0", config={"lr": 0.1}) as run:
        run.log({"loss": 0.5}, step=1)
    script = tmp_path / "nb.py"
    script.write_text(textwrap.dedent(NOTEBOOK))
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "logs"), how], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = []
    while not (line := read_line(child, 60)).startswith("{"):
        printed.append(line.rstrip("\n"))
    return child, {**json.loads(line), "printed": printed}


def read_line(child: subprocess.Popen[str], timeout: float) -> str:
    """The child's next line. Not a select() on its pipe: lines that arrived together wait in the
    text wrapper's buffer, where select() does not see them."""
    assert child.stdout is not None
    stdout = child.stdout
    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: got.put(stdout.readline()), daemon=True).start()
    try:
        line = got.get(timeout=timeout)
    except queue.Empty:
        child.kill()
        raise AssertionError(f"no line in {timeout} s; stderr: {child.communicate()[1][-2000:]}") from None
    if not line:
        raise AssertionError(f"the child ended; stderr: {child.communicate()[1][-2000:]}")
    return line


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def gone(pid: int, timeout: float = 20.0) -> bool:
    """Whether process ``pid`` has ended (or is a zombie), or ends within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def check_serving(seen: dict[str, Any]) -> None:
    base = f"http://127.0.0.1:{seen['port']}"
    assert seen["url"] == f"{base}/#token={seen['token']}"
    assert get(base + "/healthz")[0] == 200
    assert get(base + "/api/runs")[0] == 401
    status, body = get(base + "/api/runs", seen["token"])
    assert status == 200 and "seed0" in [r["id"] for r in json.loads(body)["runs"]]  # (and _system/ on a GPU host)
    with open(f"/proc/{seen['pid']}/cmdline", "rb") as f:
        assert seen["token"].encode() not in f.read()  # not where ps shows it


@pytest.mark.parametrize("how", ["exit", "exception", "killed"])
def test_notebook_sidecar_lives_and_dies_with_its_interpreter(tmp_path: Path, how: str) -> None:
    pytest.importorskip("IPython")
    child, seen = start_notebook(tmp_path, how)
    try:
        assert seen["frame"] == [seen["url"], "100%", 321] and seen["printed"] == []
        assert seen["again"] == seen["url"]  # reused, not a second sidecar
        check_serving(seen)
        assert not gone(seen["pid"], timeout=0.2)
    finally:
        if how == "killed":
            child.send_signal(signal.SIGKILL)  # no exit hook runs: the pipe tells the sidecar
        child.communicate("\n", timeout=60)
    # an interpreter that exits stops its sidecar before it is gone (atexit); one killed leaves it
    # to see end-of-file on its pipe and stop by itself
    stopped = gone(seen["pid"], timeout=0 if how != "killed" else 20)
    if not gone(seen["pid"], timeout=20):
        os.kill(seen["pid"], signal.SIGKILL)
    assert stopped, f"the sidecar outlived its interpreter ({how})"


def test_notebook_without_ipython_prints_the_url(tmp_path: Path) -> None:
    child, seen = start_notebook(tmp_path, "no-ipython")
    try:
        assert seen["frame"] == seen["again"] == seen["url"]
        assert seen["printed"] == [f"tailboard: {seen['url']}"] * 2
        check_serving(seen)
    finally:
        child.communicate("\n", timeout=60)
    assert gone(seen["pid"])


def test_notebook_start_errors_and_restart(tmp_path: Path) -> None:
    from tailboard import notebook

    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(NotADirectoryError, match="a file, not a folder"):
        notebook.start(tmp_path / "file.txt")
    with pytest.raises(NotADirectoryError, match="no such folder"):
        notebook.start(tmp_path / "missing")
    with pytest.raises(TypeError, match="logdir must be a path"):
        notebook.start(3)  # type: ignore[arg-type]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"did not start: .*port {port} is in use"):
            notebook.start(tmp_path, port=port)
    first = notebook.start(tmp_path)
    try:
        first.process.kill()
        first.process.wait(timeout=10)
        second = notebook.start(tmp_path)  # the dead one is replaced
        assert second is not first and second.healthy()
        second.stop()
        assert not second.alive()
        assert notebook.start(tmp_path) is not second  # a stopped one too
    finally:
        notebook.start(tmp_path).stop()


@pytest.mark.browser
def test_notebook_frame_shows_the_viewer_in_chromium(tmp_path: Path) -> None:
    """The IFrame, on a page of another origin as Jupyter's is, shows the viewer with its run."""
    browserkit = pytest.importorskip("browserkit")
    if not os.path.exists(browserkit.CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make chromium)")
    pytest.importorskip("IPython")
    import functools
    import http.server
    import threading

    from playwright.sync_api import sync_playwright
    from tailboard import notebook

    with tailboard.init(tmp_path / "logs" / "seed0") as run:
        run.log({"loss": 0.5}, step=1)
    (tmp_path / "page").mkdir()
    frame = notebook.show(tmp_path / "logs")
    (tmp_path / "page" / "index.html").write_text(f"<!doctype html><title>notebook</title>{frame._repr_html_()}")
    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "page")))
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=browserkit.CHROMIUM, args=browserkit.ARGS)
            page = browser.new_page()
            page.goto(f"http://localhost:{host.server_address[1]}/")
            viewer = page.frame_locator("iframe")
            viewer.locator("text=loss >> visible=true").first.wait_for(timeout=5_000)
            browser.close()
    finally:
        host.shutdown()
        notebook.start(tmp_path / "logs").stop()


# ---- packaging ------------------------------------------------------------------------------------


def test_wheel_holds_the_integrations(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=300, capture_output=True)
    names = set(zipfile.ZipFile(next(tmp_path.glob("tailboard-*.whl"))).namelist())
    for module in ("integrations/__init__", "integrations/lightning", "integrations/transformers",
                   "integrations/accelerate", "notebook"):
        assert f"tailboard/{module}.py" in names, module
