"""Readers: one module per input format, each with the same small interface (``base.Reader``).

A reader says whether a file is its format (by name and first bytes), where the complete records of
a buffer end, and decodes complete records into columnar points, carrying its state from one chunk
to the next. The follower, the catch-up, cursor re-reads, export and replay use them the same way.
"""

from __future__ import annotations

from .base import Reader, ReaderState

__all__ = ["Reader", "ReaderState"]
