"""tailboard: a live, lossless monitor for PyTorch training (the trainer-side writer).

    import tailboard
    with tailboard.init("runs/lr_0.1/seed0", config={"lr": 0.1}) as run:
        run.log({"train/loss": loss}, step=step)

Standard library only; orjson is used when importable. See docs/writer.md.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from .run import LogFolderError, Run, TailboardWarning
from .summary import SummaryWriter
from .values import Histogram, Image

__all__ = ["init", "log", "alert", "should_stop", "finish", "Run", "SummaryWriter", "Histogram", "Image",
           "LogFolderError", "TailboardWarning", "__version__"]
__version__ = "0.1.0"

_current: Run | None = None


def init(
    path: str | os.PathLike[str],
    *,
    config: Mapping[str, Any] | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    rank_zero_only: bool = False,
    name: str | None = None,
    on_stop: Callable[[], Any] | None = None,
) -> Run:
    """Start (or resume: a new attempt) the run whose folder is ``path`` and make it current.

    Each process writes its own file ``rank{RANK}.jsonl`` in the folder (RANK / WORLD_SIZE from
    torchrun's environment unless given); with ``rank_zero_only=True`` other ranks log nothing.
    ``on_stop``: called (without arguments, in the training thread, from ``log()`` or
    ``should_stop()``) once a stop of the run is requested from the sidecar's page.
    """
    global _current
    _current = Run(path, config=config, rank=rank, world_size=world_size, rank_zero_only=rank_zero_only,
                   name=name, on_stop=on_stop)
    return _current


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """``log()`` on the current run (the last ``init()``)."""
    if _current is None:
        raise RuntimeError("tailboard.log() before tailboard.init(): call init(path) first")
    _current.log(metrics, step=step)


def alert(title: str, text: str = "", level: str = "warning") -> None:
    """``alert()`` on the current run: shown by the sidecar and sent to its webhooks."""
    if _current is None:
        raise RuntimeError("tailboard.alert() before tailboard.init(): call init(path) first")
    _current.alert(title, text, level)


def should_stop() -> bool:
    """``should_stop()`` of the current run: True once a stop was requested from the page."""
    if _current is None:
        raise RuntimeError("tailboard.should_stop() before tailboard.init(): call init(path) first")
    return _current.should_stop()


def finish() -> None:
    """``finish()`` the current run."""
    if _current is None:
        raise RuntimeError("tailboard.finish() before tailboard.init()")
    _current.finish()
