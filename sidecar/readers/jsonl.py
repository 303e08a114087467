"""JSON lines: tailboard's own records, and any other file of one JSON object per line.

Decoding is ``ingest.parse_chunk`` (the fast paths live there); this module is the reader around it:
which files are JSON lines, where the complete records of a buffer end, and the state carried from
one chunk to the next.

A file is JSON lines by name (``.jsonl``, ``.ndjson``) or by content: its first complete lines are
JSON objects (``metrics.json``, ``*.log.json``, ``scalars.json`` of detection frameworks). One line
alone is weak evidence: a whole JSON document written on one line looks the same, and the document
reader is surer of those it knows (a trainer state).
"""

from __future__ import annotations

import dataclasses

import orjson

from ..ingest import Parsed, decode_line, parse_chunk

__all__ = ["JsonlReader", "JsonlState"]

#: Names that are JSON lines whatever they hold.
SUFFIXES = (".jsonl", ".ndjson")


@dataclasses.dataclass(frozen=True)
class JsonlState:
    """What one chunk of a JSON-lines file leaves for the next (small and picklable)."""

    last_step: float | None = None  # the last step seen (a lower one may start a new attempt)
    index: int = 0  # records read: the step of a foreign line that carries none
    started: bool = False  # the current attempt holds records
    native: bool = False  # tailboard's own stream (it has a header)


class JsonlReader:
    name = "jsonl"
    #: records end at newlines: the tail cuts lines itself (over-long lines and NUL runs skipped)
    lines = True

    def claims(self, filename: str, head: bytes) -> float:
        if filename.lower().endswith(SUFFIXES):
            return 1.0
        objects = 0
        for line in head.split(b"\n")[:-1][:8]:  # complete lines only
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                try:
                    obj = decode_line(line)  # bare NaN / Infinity, as Python's json writes them
                except ValueError:
                    return 0.0
            if type(obj) is not dict:
                return 0.0
            objects += 1
        return 0.0 if objects == 0 else 0.3 if objects == 1 else 0.8

    def complete(self, buf: bytes) -> int:
        return buf.rfind(b"\n") + 1

    def new_state(self) -> JsonlState:
        return JsonlState()

    def state_before(self, data: bytes, after: JsonlState) -> JsonlState:
        """The state to decode ``data`` with, when all that is known is the state after it (a cursor
        of an earlier process): the records are numbered back from ``after``; the step before is
        unknown, so steps going back inside ``data`` still start an attempt, before it none does."""
        parsed = parse_chunk(data, prev_step=None, next_index=0, attempt_started=True, native=after.native)
        return JsonlState(last_step=None, index=max(0, after.index - parsed.records), started=True,
                          native=after.native)

    def decode(self, data: bytes, state: JsonlState, *, now: float) -> tuple[Parsed, JsonlState]:
        parsed = parse_chunk(data, prev_step=state.last_step, next_index=state.index,
                             attempt_started=state.started, native=state.native, now=now)
        return parsed, JsonlState(
            last_step=parsed.last_step if parsed.last_step is not None else state.last_step,
            index=state.index + parsed.records,
            started=parsed.started,
            native=state.native or parsed.native,
        )
