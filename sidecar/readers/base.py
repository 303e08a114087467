"""The interface every input format implements.

A reader is given bytes of one file, in order, as the tail hands them out, and turns them into the
store's columnar ``Parsed`` (see ``tailboard.sidecar.ingest``): per metric, arrays of steps, values
and wall times; records that are not scalars (histograms, text) whole; skipped input counted by
reason. It never raises for what a file contains: bad input is counted in ``Parsed.skipped``.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..ingest import Parsed

__all__ = ["Reader", "ReaderState"]

#: Whatever a reader carries from one chunk of a file to the next (a CSV header, the last step seen,
#: how many entries of a document were read). Opaque to everyone else; must be picklable (the
#: catch-up parses in child processes) and small.
ReaderState = Any


class Reader(Protocol):
    """What every reader has. A reader may also have, looked up by the wiring with ``getattr``:

    - ``lines = True``: its records are lines; the tail cuts them itself (over-long lines and NUL runs
      skipped and counted) instead of calling ``complete``.
    - ``max_record`` (bytes): the longest record the tail holds while it is incomplete (default
      ``MAX_LINE_BYTES``); a pending record over it is dropped and counted (``record_too_large``).
    - ``whole = True``: a file is one document rewritten in place; every change of it is a new version
      read from offset 0 (``tail.Framing.whole``).
    - ``rewound(state) -> state``: after the file was truncated, rewritten or replaced, the state to
      read it again from offset 0 with, keeping the points already stored (without it, the stream's
      data is void and its run is rebuilt from its other files).
    - ``first_read(state) -> state``: the state an export decodes with where ``state`` was kept, so
      records that the stream checked rather than emitted after a rewrite are exported too.
    - ``state_before(data, after) -> state``: the state before ``data`` when only the state after it is
      known (a cursor older than the states the store keeps).
    - ``parallel = False``: the catch-up decodes its files in the follower's process, not in parse
      workers (a decode cheaper than sending its result back).
    - ``decode_head(data, state, *, now) -> (parsed, state, taken)`` (records that are not lines):
      ``complete`` and ``decode`` in one, on bytes that may end inside a record; ``taken`` is how
      many were whole records. The parallel catch-up then frames each chunk once, in the worker.
    """

    #: Short name, shown in /api/runs and used by --include/--exclude rules ("jsonl", "tfevents").
    name: str

    def claims(self, filename: str, head: bytes) -> float:
        """How sure this reader is that a file is its format, from its name and its first bytes
        (up to 4 KiB; fewer for a file that is still short): 0 for no, up to 1 for certain.
        The registry gives the file to the most certain reader."""
        ...

    def complete(self, buf: bytes) -> int:
        """How many bytes at the start of ``buf`` (which starts at a record boundary) form complete
        records; the rest is held until more arrives."""
        ...

    def new_state(self) -> ReaderState:
        """The state before the first byte of a file."""
        ...

    def decode(self, data: bytes, state: ReaderState, *, now: float) -> tuple[Parsed, ReaderState]:
        """Decode complete records (``data`` ends at a record boundary, as ``complete`` said) with the
        state the previous chunk left; return the points and the state for the next chunk. ``now``
        is the wall time to use for records that carry none."""
        ...
