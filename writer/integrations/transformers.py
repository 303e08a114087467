"""A transformers ``TrainerCallback`` that writes a tailboard run.

    from tailboard.integrations.transformers import TailboardCallback
    trainer = Trainer(model, args, ..., callbacks=[TailboardCallback("runs/bert")])

``on_train_begin`` opens the run with the training arguments as its config (the model's config
under ``model``), ``on_log`` logs at ``state.global_step`` with the names transformers' own
TensorBoard callback gives (``eval_loss`` is ``eval/loss``, ``test_x`` is ``test/x``, anything else
``train/<name>``), ``on_train_end`` finishes it. Only the world's process zero writes.

Without a path the run is ``<output_dir>/runs/<date>_<host>``, TensorBoard's default. A training
that raises gets no ``on_train_end``: the run is marked failed when the exception ends the process
(the writer's exit hook), or at the next ``train()`` with this callback (in a notebook).

Logs after ``on_train_end`` (``trainer.evaluate()`` after ``train()``) open the run again: a new
attempt, which the sidecar shows from its first step on, so the training's points at that same last
step are hidden behind it (docs/integrations.md).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

import tailboard
from tailboard.format import STATUS_FAILED
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

__all__ = ["TailboardCallback", "metric_name"]


def metric_name(key: str) -> str:
    """The name transformers' TensorBoard callback gives a key of ``logs``."""
    for prefix in ("eval", "test"):
        if key.startswith(prefix + "_"):
            return f"{prefix}/{key[len(prefix) + 1:]}"
    return f"train/{key}"


class TailboardCallback(TrainerCallback):
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.run: tailboard.Run | None = None
        self._training = False  # between on_train_begin and on_train_end

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        if self.run is not None:
            if self._training:  # the last train() raised (in a notebook: no exit hook to say so)
                self.run.finish(STATUS_FAILED, "train() ended without on_train_end: an exception")
            else:
                self.run.finish()
        self._open(args, state, model)
        self._training = True

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, Any] | None = None, model: Any = None, **kwargs: Any) -> None:
        if not state.is_world_process_zero or not logs:
            return
        run = self.run if self.run is not None else self._open(args, state, model)
        run.log({metric_name(key): value for key, value in logs.items()}, step=state.global_step)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        if state.is_world_process_zero and self.run is not None:
            self.run.finish()
            self.run = None
        self._training = False

    def _open(self, args: TrainingArguments, state: TrainerState, model: Any) -> tailboard.Run:
        base = self.path
        if base is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            base = self.path = os.path.join(args.output_dir or ".", "runs", f"{stamp}_{socket.gethostname()}")
        # each trial of a hyper-parameter search is a run of its own
        path = os.path.join(base, state.trial_name) if state.trial_name else base
        config: dict[str, Any] = dict(args.to_dict())  # type: ignore[no-untyped-call]
        model_config = getattr(model, "config", None)
        if model_config is not None and hasattr(model_config, "to_dict"):
            config["model"] = model_config.to_dict()
        self.run = tailboard.init(path, config=config, rank=0)
        return self.run
