"""tailboard: a live, lossless monitor for PyTorch training (the trainer-side writer)."""

from __future__ import annotations

__all__: list[str] = []
__version__ = "0.1.0"
