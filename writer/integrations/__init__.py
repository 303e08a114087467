"""tailboard for the training frameworks people use: each a few lines onto ``tailboard.init/log/finish``.

- ``tailboard.integrations.lightning.TailboardLogger``: a Lightning ``Logger``
  (``Trainer(logger=TailboardLogger("runs"))``).
- ``tailboard.integrations.transformers.TailboardCallback``: a transformers ``TrainerCallback``
  (``Trainer(..., callbacks=[TailboardCallback("runs/bert")])``).
- ``tailboard.integrations.accelerate.TailboardTracker``: an Accelerate tracker
  (``Accelerator(log_with=[TailboardTracker("runs/exp")])``).

Each module imports its framework; this package imports nothing, so ``import tailboard`` stays
standard library only. Only the main process (rank zero) writes. See docs/integrations.md.
"""

from __future__ import annotations

__all__: list[str] = []
