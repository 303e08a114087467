"""tailboard: a live, lossless monitor for PyTorch training (the trainer-side writer).

    import tailboard
    with tailboard.init("runs/lr_0.1/seed0", config={"lr": 0.1}) as run:
        run.log({"train/loss": loss}, step=step)

Standard library only; orjson is used when importable. See docs/writer.md.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from .run import Run, TailboardWarning
from .summary import SummaryWriter
from .values import Histogram

__all__ = ["init", "log", "finish", "Run", "SummaryWriter", "Histogram", "TailboardWarning", "__version__"]
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
) -> Run:
    """Start (or resume: a new attempt) the run whose folder is ``path`` and make it current.

    Each process writes its own file ``rank{RANK}.jsonl`` in the folder (RANK / WORLD_SIZE from
    torchrun's environment unless given); with ``rank_zero_only=True`` other ranks log nothing.
    """
    global _current
    _current = Run(path, config=config, rank=rank, world_size=world_size, rank_zero_only=rank_zero_only,
                   name=name)
    return _current


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    """``log()`` on the current run (the last ``init()``)."""
    if _current is None:
        raise RuntimeError("tailboard.log() before tailboard.init(): call init(path) first")
    _current.log(metrics, step=step)


def finish() -> None:
    """``finish()`` the current run."""
    if _current is None:
        raise RuntimeError("tailboard.finish() before tailboard.init()")
    _current.finish()
