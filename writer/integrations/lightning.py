"""A Lightning ``Logger`` that writes a tailboard run.

    from tailboard.integrations.lightning import TailboardLogger
    trainer = Trainer(logger=TailboardLogger("runs", name="mnist"))  # runs/mnist/version_0

The run folder is ``save_dir/name/version``, as with Lightning's CSV and TensorBoard loggers
(``version_N``, the next free N, unless given). ``log_hyperparams`` records the config, ``log_metrics``
logs at Lightning's step (with the ``epoch`` Lightning adds), ``finalize`` finishes the run: failed
when Lightning says so (an exception or an interrupt in ``fit``), with the exception as the reason.
A ``test`` after ``fit`` opens the finished run again: a new attempt, whose steps come after the
training's. Only global rank zero writes; ``logger.experiment`` is the ``tailboard.Run`` there.
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

import tailboard
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from tailboard.format import STATUS_FAILED, STATUS_FINISHED

__all__ = ["TailboardLogger"]


class TailboardLogger(Logger):
    def __init__(
        self,
        save_dir: str | os.PathLike[str] = "runs",
        name: str | None = "lightning_logs",
        version: int | str | None = None,
    ) -> None:
        super().__init__()
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version
        self._run: tailboard.Run | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        if self._version is None:
            self._version = _next_version(self.root_dir)
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self._name)

    @property
    def log_dir(self) -> str:
        version = self.version
        return os.path.join(self.root_dir, version if isinstance(version, str) else f"version_{version}")

    @property
    def experiment(self) -> tailboard.Run | None:
        """The run on rank zero (opened at first use; after ``finalize``, the finished run), ``None``
        on other ranks."""
        if getattr(rank_zero_only, "rank", 0) != 0:  # Lightning sets the global rank on it
            return None
        if self._run is None:
            self._run = tailboard.init(self.log_dir, rank=0)
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        if isinstance(params, Namespace):
            params = vars(params)
        self._writable().config(params)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._writable().log(metrics, step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Lightning's ``"success"`` (and ``"finished"``) finish the run, ``"failed"`` fails it."""
        run = self._run
        if run is None:
            return
        if status == "failed":
            exc = sys.exc_info()[1]  # finalize("failed") is called while Lightning handles it
            run.finish(STATUS_FAILED, None if exc is None else f"{type(exc).__name__}: {exc}")
        else:
            run.finish(STATUS_FINISHED)

    def _writable(self) -> tailboard.Run:
        """The run to write to: a ``test`` after a finished ``fit`` opens it again, a new attempt."""
        if self._run is None or self._run.finished:
            self._run = tailboard.init(self.log_dir, rank=0)
        return self._run


def _next_version(root: str) -> int:
    """The next free ``version_N`` under ``root``, as Lightning's own loggers number them."""
    try:
        names = os.listdir(root)
    except OSError:
        return 0
    used = [int(n[8:]) for n in names if n.startswith("version_") and n[8:].isdigit()]
    return max(used) + 1 if used else 0
