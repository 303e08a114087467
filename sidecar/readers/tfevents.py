"""TensorBoard event files (``events.out.tfevents.*``), read without TensorBoard or protobuf.

**Framing** (``tfrecord``). A file is a run of TFRecords, each a length, its masked CRC32C, the
data and the data's masked CRC32C. ``complete`` ends at the last whole record; a torn record at
the end is held until the rest arrives; a record whose CRC does not match is skipped (``bad_crc``);
a header that cannot be trusted (``bad_length``, ``too_large``) makes the reader resynchronise at
the next valid header, skipping the bytes in between.

**Events.** ``Event.wall_time`` and ``step``; the first record's ``file_version``
("brain.Event:2"); ``SessionLog.START`` (a restart, written by ``SummaryWriter(purge_step=...)``):
after records it starts a new segment, a new attempt to the store, whose display keeps each
attempt up to the next one's first step, as TensorBoard purges the orphaned steps. A
``SessionLog.START`` before any record of its file (what ``purge_step`` writes at the head of the
new file of a resumed writer) starts a segment too, empty before it: the store starts a new attempt
when the run already holds points (from the run's other files), and none otherwise. Steps going back
without it are kept as they are (TensorBoard too keeps them for file version 2). Summary values
become:

- ``simple_value`` (``add_scalar`` of torch and tensorboardX, TF1): a scalar point under its tag;
- a tensor whose plugin is "scalars" (TF2, ``new_style=True``): a scalar point, from a float,
  double, half, bfloat16, int32 or int64 tensor holding one value (``*_val`` or ``tensor_content``).
  TF2 writes a tag's plugin metadata only with its first value; a tag's first plugin holds for
  good (as in TensorBoard) and is carried in the state;
- ``histo`` (``add_histogram``): ``{"k": "hist", ...}`` with TensorBoard's own reading of its
  buckets: empty buckets at both ends dropped, the first bucket starting at ``min`` and the last
  ending at ``max`` (its outer limits are +-DBL_MAX), so bins are ``edges[i]..edges[i+1]`` holding
  ``counts[i]``; ``lo``/``hi`` are ``min``/``max`` and ``n``, ``sum``, ``sumsq`` as written. The
  buckets are not of equal width, hence ``edges`` (``len(counts) + 1`` values);
- a "histograms" tensor of ``[k, 3]`` (left edge, right edge, count; TF2): the same record, from
  those edges;
- a "text" string tensor (``add_text``): ``{"k": "text", ...}``, its strings joined by newlines;
- "hparams" ``session_start_info`` (``add_hparams``): ``{"k": "config", "t": T, "config": {...}}``
  with the hyper-parameter values;
- an image (``Summary.Value.image``, an "images" tensor): its PNG bytes, kept by the store in
  memory and shown as the writer's image files are;
- anything else (audio, graphs, run metadata, other plugins, the hparams experiment and
  session end): counted as ``unsupported_summary`` (per value) or ``unsupported_event``, never an
  error. A record that is not a well-formed event is ``malformed_event``; a value that cannot be
  read as its kind (a "scalars" tensor of two values) is ``bad_value``. Non-finite floats in
  records are spelled as the JSONL writer spells them (``"NaN"``, ``"Infinity"``).

An event without a wall time (proto3 cannot tell 0.0 from none) or with a non-finite one takes
``now``. Tags are metric names unchanged; steps and times are float64 arrays; every point is kept.

**Speed.** The records of a chunk are framed in bulk (``tfrecord``); those of the ``add_scalar``
layout, and tensor scalars of tags known to be "scalars", are read in bulk (``tfscalars``); every
other record goes through the hand-written wire decoder (``protowire``) one by one
(``tfsummaries``). The two paths' points are put back into record order here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

import numpy as np

from ..ingest import Parsed
from .tfrecord import (
    HEAD,
    MAX_RECORD_BYTES,
    Frames,
    data_crc_ok,
    frame,
    masked_crc32c,
    unaligned_views,
)
from .tfscalars import ScalarBulk
from .tfsummaries import SummaryEvents

__all__ = ["MAX_RECORD_BYTES", "TfEventsReader", "TfEventsState", "masked_crc32c"]

FILE_PREFIX = "events.out.tfevents."


@dataclass
class TfEventsState:
    """What one chunk of an event file leaves for the next (small and picklable)."""

    started: bool = False  # the current attempt holds points, histograms or texts
    head: bool = True  # nothing of the file read yet but its version (no record, no restart)
    last_step: float | None = None
    in_gap: bool = False  # the last chunk ended inside a corrupt stretch (counted already)
    file_version: str | None = None
    plugins: dict[str, str] = field(default_factory=dict)  # tag -> plugin, as first written


class TfEventsReader:
    """Reads TensorBoard event files; see the module docstring.

    ``complete`` remembers where the records of the buffer it framed last are, so that ``decode``
    of the bytes it said were complete (as a tail calls them, one after the other) does not frame
    them again. The bytes are compared, not trusted: any other call frames its data itself, so
    one reader may serve several streams and threads."""

    name = "tfevents"

    #: a torn record is held by the tail until complete, up to the largest record framed
    max_record = MAX_RECORD_BYTES + 16

    def __init__(self) -> None:
        self._framed: tuple[bytes, Frames] | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"_framed": None}  # sent to the parse workers: the cache stays here

    def claims(self, filename: str, head: bytes) -> float:
        if os.path.basename(filename).startswith(FILE_PREFIX):
            return 1.0
        if len(head) < HEAD:
            return 0.0
        length = int.from_bytes(head[:8], "little")
        if length > MAX_RECORD_BYTES or masked_crc32c(head[:8]) != int.from_bytes(head[8:12], "little"):
            return 0.0
        end = HEAD + length
        if len(head) >= end + 4 and masked_crc32c(head[HEAD:end]) == int.from_bytes(head[end : end + 4], "little"):
            return 0.95
        return 0.9

    def complete(self, buf: bytes) -> int:
        frames = frame(np.frombuffer(buf, dtype=np.uint8), final=False)
        self._framed = (buf, frames) if type(buf) is bytes else None
        return frames.end

    def _framing(self, data: bytes, arr: np.ndarray) -> Frames:
        """The records of ``data``: as ``complete`` found them when ``data`` is the complete part
        of the buffer it framed last (the same records, corrupt stretches and end: a stretch is
        complete only when ``data`` shows it as one), else framed here."""
        framed = self._framed
        if framed is not None and type(data) is bytes and framed[1].end == len(data) and framed[0].startswith(data):
            return framed[1]
        return frame(arr, final=True)

    def new_state(self) -> TfEventsState:
        return TfEventsState()

    def state_before(self, data: bytes, after: TfEventsState) -> TfEventsState:
        """The state to decode ``data`` with when only the state after it is known (a cursor older
        than the states a stream keeps): its points are the same. A tag's plugin is the first one
        written, so those known after ``data`` are those that held in it; a restart at its start
        is taken as one after records (a new attempt: the caller then sends a snapshot, exact
        either way); the rest only counts skipped bytes or is not read. Not the same: when the
        record that first wrote a tag's plugin (TF2 writes it with the first value only) is corrupt,
        the tag's records before the next one holding its plugin were read as of no known plugin,
        and are read here with the plugin ``after`` learnt from that next one."""
        return replace(after, started=True, in_gap=False)

    def decode(self, data: bytes, state: TfEventsState, *, now: float) -> tuple[Parsed, TfEventsState]:
        if not isinstance(state, TfEventsState):
            raise TypeError(f"decode needs the state new_state() or decode() returned, not {type(state).__name__}")
        buf = memoryview(data).cast("B")
        arr = np.frombuffer(buf, dtype=np.uint8)
        return self._decode(buf, arr, self._framing(data, arr), state, now)

    def decode_head(self, data: bytes, state: TfEventsState, *, now: float) -> tuple[Parsed, TfEventsState, int]:
        """``complete`` and ``decode`` in one, framing once: the complete records at the start of
        ``data`` (which may end inside a record) decoded, and how many bytes they take. The
        parallel catch-up hands each chunk read to a worker this way, so the follower's thread
        does not frame what the worker frames again."""
        if not isinstance(state, TfEventsState):
            raise TypeError(f"decode needs the state new_state() or decode() returned, not {type(state).__name__}")
        buf = memoryview(data).cast("B")
        arr = np.frombuffer(buf, dtype=np.uint8)
        frames = frame(arr, final=False)
        end = frames.end
        if not end:  # nothing whole yet: the state stays as it is (a corrupt stretch goes on in it)
            return Parsed(), state, 0
        # the records decode would find in data[:end]: complete ones only, corrupt stretches up to end
        parsed, new_state = self._decode(buf[:end], arr[:end], frames, state, now)
        return parsed, new_state, end

    def _decode(self, buf: memoryview, arr: np.ndarray, frames: Frames, state: TfEventsState,
                now: float) -> tuple[Parsed, TfEventsState]:
        parsed = Parsed()
        for start, _, reason in frames.gaps:
            if not (start == 0 and state.in_gap):  # else counted with the chunk before
                parsed.skip(reason)
        if frames.torn:
            parsed.skip("truncated")
        u64, u32 = unaligned_views(arr)
        ds, dl = frames.starts + HEAD, frames.lengths
        good = data_crc_ok(buf, arr, u32, ds, dl)
        if not good.all():
            parsed.skip("bad_crc", int((~good).sum()))
            ds, dl = ds[good], dl[good]
        bulk = ScalarBulk(arr, u64, ds, dl, state.plugins)
        events = SummaryEvents(parsed, dict(state.plugins), now)
        rest = np.ones(ds.shape[0], dtype=bool)
        rest[bulk.taken()] = False
        deferred, plugins = bulk.deferred, events.plugins
        for i, s, k in zip(np.flatnonzero(rest).tolist(), ds[rest].tolist(), dl[rest].tolist()):
            later = deferred.get(i) if deferred else None
            if later is not None and plugins.get(later[0]) == "scalars":
                bulk.take(later[1])
                continue
            events.event(i, bytes(buf[s : s + k]))
        bulk.finish(now)
        _assemble(parsed, state, bulk, events)
        in_gap = bool(frames.gaps) and frames.gaps[-1][1] == arr.shape[0]
        new_state = replace(state, started=parsed.started, last_step=parsed.last_step, in_gap=in_gap,
                            head=state.head and not events.restarts and not parsed.records,
                            file_version=events.file_version or state.file_version, plugins=events.plugins)
        return parsed, new_state


def _attempts(state: TfEventsState, kept: np.ndarray, restarts: list[int]) -> tuple[list[int], bool]:
    """The restarts that start a new segment (those after records of the current attempt, and one
    at the head of the file), and whether the last attempt holds records. ``kept``: the sorted
    indices of records that gave points, histograms or texts."""
    bounds: list[int] = []
    started, since, head = state.started, -1, state.head
    for r in restarts:
        if started or head or np.searchsorted(kept, r) > np.searchsorted(kept, since, side="right"):
            bounds.append(r)
            started, since = False, r
        head = False
    if bounds:
        return bounds, bool(kept.shape[0] and kept[-1] > bounds[-1])
    return bounds, state.started or bool(kept.shape[0])


def _assemble(parsed: Parsed, state: TfEventsState, bulk: ScalarBulk, events: SummaryEvents) -> None:
    """Points of both paths per tag in record order, cut into segments at restarts; the counts."""
    if events.restarts:
        bounds, parsed.started = _attempts(state, np.union1d(bulk.index, events.kept), events.restarts)
    else:  # the usual chunk: one segment
        bounds, parsed.started = [], state.started or bool(bulk.index.shape[0] or events.kept)
    cuts = np.asarray(bounds, np.int64)
    parsed.segments = [{} for _ in range(len(bounds) + 1)]
    columns = bulk.columns()
    for tag, lists in events.points.items():
        more = (np.asarray(lists[0], np.int64), np.asarray(lists[1], np.float64),
                np.asarray(lists[2], np.float64), np.asarray(lists[3], np.float64))
        if tag in columns:  # the same tag in both paths: back into record order
            both = [np.concatenate(pair) for pair in zip(columns[tag], more)]
            order = np.argsort(both[0], kind="stable")
            columns[tag] = (both[0][order], both[1][order], both[2][order], both[3][order])
        else:
            columns[tag] = more
    for tag, (i, s, v, t) in columns.items():
        if not bounds:
            parsed.segments[0][tag] = (s, v, t)
            continue
        seg = np.searchsorted(cuts, i, side="right")
        for k in np.unique(seg).tolist():
            m = seg == k
            parsed.segments[k][tag] = (s[m], v[m], t[m])
    parsed.others = [(int(np.searchsorted(cuts, i, side="right")), rec) for i, rec in events.others]
    parsed.records = int(bulk.index.shape[0]) + len(events.kept) + events.configs
    last = events.last
    if bulk.index.shape[0] and (last is None or int(bulk.index[-1]) > last[0]):
        last = (int(bulk.index[-1]), float(bulk.steps[-1]), float(bulk.walls[-1]))
    parsed.last_step = last[1] if last is not None else state.last_step
    parsed.last_time = last[2] if last is not None else None
    if events.last_config is not None and (last is None or events.last_config[0] > last[0]):
        parsed.last_time = events.last_config[1]
