"""The store: every run's data in memory, columnar, behind one boundary (docs/design.md).

The follower is the only writer (``feed.Feed``); routes and WebSocket handlers only ask. Modules,
one job each: ``facade`` (``Store``: the lock and the composition), ``runs`` (a run's state, status
and how a parsed chunk is applied), ``kinds`` (record kinds besides scalars), ``cursors`` (the only
code that encodes or decodes them), ``reread`` (the only file access), ``eviction`` (bounded
memory), ``gpus`` (which GPUs each run uses), ``retention`` (how much of a host's GPU
samples stays in memory), ``events`` (what listeners hear), ``results`` (what is handed out), ``feed`` (what
producers may call).
"""

from __future__ import annotations

from .cursors import covered
from .events import Appended, BatchDone, Listener, ProgressChanged, ResetRun, RunsChanged, StoreEvent
from .facade import Store
from .feed import Feed
from .results import Delta, Progress, RecordPage, Reset, RunInfo, Series

__all__ = [
    "Appended",
    "BatchDone",
    "Delta",
    "Feed",
    "Listener",
    "Progress",
    "ProgressChanged",
    "RecordPage",
    "Reset",
    "ResetRun",
    "RunInfo",
    "RunsChanged",
    "Series",
    "Store",
    "StoreEvent",
    "covered",
]
