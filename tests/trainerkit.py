"""The small real trainings the input tests follow, written once: a transformers ``Trainer`` script
(run in a child process: its output folder is ``sys.argv[1]``) and a Lightning module whose
``CSVLogger`` rewrites ``metrics.csv`` when a metric first appears.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

#: A four-feature regression for transformers' Trainer; ``Data(seed)`` draws other samples per seed.
HF_MODEL = r"""
import sys, time, torch
from transformers import Trainer, TrainerCallback, TrainingArguments

class Data(torch.utils.data.Dataset):
    def __init__(self, seed=0): self.seed = seed
    def __len__(self): return 32
    def __getitem__(self, i):
        x = torch.randn(4, generator=torch.Generator().manual_seed(self.seed + i))
        return {"x": x, "labels": x.sum(-1, keepdim=True)}

class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def forward(self, x, labels=None):
        out = self.layer(x)
        return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

def arguments(out, **kw):
    # two epochs of 8 steps, a log line every 2 steps and an evaluation every 4, on the CPU
    return TrainingArguments(output_dir=out, per_device_train_batch_size=4, num_train_epochs=2,
                             logging_steps=2, eval_strategy="steps", eval_steps=4, report_to=[],
                             use_cpu=True, **kw)
"""


def hf_script(body: str) -> str:
    """A child-process script: the model and data above, then ``body``."""
    return HF_MODEL + body


def lightning_fit(root: Path, *, epochs: int, samples: int, flush_every: int, log_every: int,
                  on_batch: Callable[[Any], None], on_loss: Callable[[float], None] = lambda _: None) -> Path:
    """A real Lightning fit on the CPU whose CSVLogger writes ``root/exp/version_0/metrics.csv``:
    ``train_loss`` every logged step, ``val_loss`` after each epoch (the file is rewritten whole
    when it first appears) and ``late_metric`` from epoch 1 (rewritten again). ``on_batch(trainer)``
    runs after every training batch and validation, ``on_loss`` with each training loss."""
    import lightning as L
    import torch
    from lightning.pytorch.loggers import CSVLogger
    from torch.utils.data import DataLoader, TensorDataset

    class Model(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, _: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            on_loss(loss.item())
            if self.current_epoch >= 1:
                self.log("late_metric", loss * 2)
            return loss

        def validation_step(self, batch: Any, _: int) -> None:
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class Hook(L.Callback):
        def on_train_batch_end(self, trainer: Any, *_: Any) -> None:
            on_batch(trainer)

        def on_validation_end(self, trainer: Any, *_: Any) -> None:
            on_batch(trainer)

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(samples, 4), torch.randn(samples, 1))
    logger = CSVLogger(str(root), name="exp", flush_logs_every_n_steps=flush_every)
    trainer = L.Trainer(max_epochs=epochs, logger=logger, log_every_n_steps=log_every, callbacks=[Hook()],
                        enable_progress_bar=False, enable_checkpointing=False, enable_model_summary=False,
                        accelerator="cpu")
    trainer.fit(Model(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
    return Path(logger.log_dir) / "metrics.csv"
