"""An Accelerate tracker that writes a tailboard run.

    from tailboard.integrations.accelerate import TailboardTracker
    accelerator = Accelerator(log_with=[TailboardTracker("runs/exp")])
    accelerator.init_trackers("exp", config={"lr": 1e-3})
    accelerator.log({"train/loss": loss}, step=step)
    accelerator.end_training()

``init_trackers`` opens the run and records ``config``; ``log`` logs at ``step`` (the previous step + 1
when omitted); ``end_training`` finishes it. Only the main process writes (``main_process_only``). A
training that raises is marked failed when the exception ends the process (the writer's exit hook).
"""

from __future__ import annotations

import os
from typing import Any

import tailboard
from accelerate.tracking import GeneralTracker, on_main_process

__all__ = ["TailboardTracker"]


class TailboardTracker(GeneralTracker):  # type: ignore[misc]
    name = "tailboard"
    requires_logging_directory = False
    main_process_only = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.path = os.fspath(path)
        self.run: tailboard.Run | None = None

    @property
    def tracker(self) -> tailboard.Run | None:
        """The ``tailboard.Run`` (on the main process, once started)."""
        return self.run

    @on_main_process  # type: ignore[untyped-decorator]
    def start(self) -> None:
        self._open()

    @on_main_process  # type: ignore[untyped-decorator]
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        self._open().config(values)

    @on_main_process  # type: ignore[untyped-decorator]
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        self._open().log(values, step=step)

    @on_main_process  # type: ignore[untyped-decorator]
    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()

    def _open(self) -> tailboard.Run:
        """The run, opened at the first call (and again, a new attempt, after ``finish``)."""
        if self.run is None or self.run.finished:
            self.run = tailboard.init(self.path, rank=0)
        return self.run
