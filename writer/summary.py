"""A drop-in for the common subset of ``torch.utils.tensorboard.SummaryWriter``.

Moving from TensorBoard is one import: ``from tailboard import SummaryWriter``. Records are on disk
when each call returns, so ``flush()`` has nothing to do.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any, Mapping

from .run import Run
from .values import DEFAULT_BINS, Histogram, Image

__all__ = ["SummaryWriter"]


class SummaryWriter:
    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 10,
        flush_secs: int = 120,
        filename_suffix: str = "",
    ) -> None:
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = os.fspath(log_dir)
        # purge_step: TensorBoard hides later events of a crashed run; tailboard shows the restarted
        # run as a new attempt (the header this writer opens with), which has the same effect.
        self._run = Run(self.log_dir)

    def get_logdir(self) -> str:
        return self.log_dir

    def add_scalar(self, tag: str, scalar_value: Any, global_step: int | None = None,
                   walltime: float | None = None, new_style: bool = False, double_precision: bool = False) -> None:
        self._run.log({tag: scalar_value}, step=global_step)

    def add_scalars(self, main_tag: str, tag_scalar_dict: Mapping[str, Any], global_step: int | None = None,
                    walltime: float | None = None) -> None:
        self._run.log({f"{main_tag}/{k}": v for k, v in tag_scalar_dict.items()}, step=global_step)

    def add_histogram(self, tag: str, values: Any, global_step: int | None = None, bins: Any = "tensorflow",
                      walltime: float | None = None, max_bins: int | None = None) -> None:
        n = bins if isinstance(bins, int) else (max_bins or DEFAULT_BINS)
        self._run.log({tag: Histogram(values, n)}, step=global_step)

    def add_text(self, tag: str, text_string: str, global_step: int | None = None,
                 walltime: float | None = None) -> None:
        self._run.log({tag: str(text_string)}, step=global_step)

    def add_image(self, tag: str, img_tensor: Any, global_step: int | None = None,
                  walltime: float | None = None, dataformats: str = "CHW") -> None:
        """An image as TensorBoard takes it: CHW unless ``dataformats`` says HWC or HW; floats in
        0..1, integers in 0..255. Written as a PNG file beside the log (docs/writer.md)."""
        self._run.log({tag: Image(img_tensor, dataformats)}, step=global_step)

    def add_hparams(self, hparam_dict: Mapping[str, Any], metric_dict: Mapping[str, Any],
                    hparam_domain_discrete: Any = None, run_name: str | None = None,
                    global_step: int | None = None) -> None:
        self._run.config(dict(hparam_dict))
        self._run.log(dict(metric_dict), step=global_step)

    def flush(self) -> None:
        """Nothing to flush: every record was written when its call returned."""

    def close(self) -> None:
        self._run.finish()

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
