"""Whole JSON documents rewritten at every save: transformers' ``trainer_state.json``, a history dump.

A document is one record: ``complete`` holds the bytes until they parse as a whole JSON value (a
document half written waits), and every document handed over is the whole history as the writer
knows it at that save. Shapes read:

- records: ``{"log_history": [{...}, ...], ...}`` (transformers' ``Trainer``), a list of objects, or
  an object with exactly one list of objects. The entries are read as lines of JSONL that tailboard
  did not write, by the same code (``jsonl_columns``, ``jsonl_steps``; ``format.foreign_scalars``
  is the same rules for one object): the step is the finest counter an entry holds (``step``, else
  ``global_step``, ..., ``epoch``; with none, its place in the history), the time its
  ``t``/``time``/... (else ``now``), every other number a metric (so ``epoch`` beside ``step`` is a
  metric). A new attempt starts only on real evidence (``jsonl_steps``), such as a step going back
  on entries of the same fields: the Trainer's training, evaluation and end-of-training entries
  share their steps, and entries of per-epoch and per-iteration counters, or of none, may go back
  without one. The document's other top-level fields that are plain values (``max_steps``,
  ``train_batch_size``, ``best_metric``) are the run's config, sent when they change.
- columns: ``{"loss": [...], "val_loss": [...]}`` (Keras' ``history.history``), nested objects
  flattened with ``/``: each list holding numbers is a metric, its points' steps the list named
  ``step`` (``global_step``, ...) when it is as long, else their indexes.
- anything else holds no metrics and is counted once per document (``no_metrics``).

Only what is new is emitted. The state remembers how many entries (per column, for columns) the
history holds and fingerprints of the first and the last. When a new document still holds them at
the same places, only the entries after them are new. When it does not (a run resumed from an older
checkpoint rewrote its history, or another run wrote the file) a new attempt starts with the whole
new document: that is the history the writer now has. The state is small, whatever the length of
the history: a few integers, and what JSON lines keep of their counters (the last entry's fields,
the last step of each layout).

Rewrites are what this reader expects: the wiring hands each new version of the file from offset 0
(the tail's reset after a truncation or a rename over it), with ``rewound(state)`` (which changes
nothing) rather than ``new_state()``, and keeps the points already stored. The same holds for a
series of files that are versions of one history (``checkpoint-500/trainer_state.json``,
``checkpoint-1000/...``), which the wiring feeds as one stream (see ``discovery``). An export reads
each version whole (``first_read``: a fresh state).

A document larger than ``max_bytes`` (``MAX_DOC_BYTES``, 64 MiB) is not parsed: ``complete`` hands
it over whole and it is counted (``too_large``); so is a document that cannot become JSON whatever
follows (``malformed_json``). NaN and Infinity (what Python's ``json`` writes for a diverged loss)
and numbers out of float range are read as the floats they stand for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from typing import Any

import numpy as np
import orjson
from tailboard.format import (
    K_CONFIG,
    KIND,
    STEP_KEYS,
    TIME_KEYS,
    decode_float,
    flatten,
)

from ..ingest import Parsed, decode_line
from .jsonl_columns import fields_from_objects
from .jsonl_steps import JsonlState, points

__all__ = ["MAX_DOC_BYTES", "JsonDocReader", "JsonDocState"]

#: The largest document read (trainer_state.json of a long run with logging_steps=1 is a few MB).
MAX_DOC_BYTES = 64 << 20
_WHITESPACE = b" \t\r\n"
# what may still be growing at the end of a document cut short: part of a number or a literal
_TOKEN_TAIL = re.compile(r"[-+.\w]{0,24}")


@dataclasses.dataclass
class JsonDocState:
    """What is carried from one document to the next (small and picklable)."""

    count: int = 0  # records: entries of the history already emitted
    first_fp: int | None = None
    last_fp: int | None = None
    columns: dict[str, tuple[int, int, int]] = dataclasses.field(default_factory=dict)  # count, first, last
    config_fp: int | None = None
    steps: JsonlState = dataclasses.field(default_factory=JsonlState)  # the history's counters (jsonl_steps)
    started: bool = False


class JsonDocReader:
    name = "jsondoc"

    #: a document is rewritten whole, never appended to (the tail reads each new version)
    whole = True

    def __init__(self, max_bytes: int = MAX_DOC_BYTES) -> None:
        if max_bytes < 2:
            raise ValueError(f"max_bytes must be at least 2, got {max_bytes}")
        self.max_bytes = max_bytes
        self.max_record = max_bytes + 1

    def claims(self, filename: str, head: bytes) -> float:
        low = filename.lower()
        if not low.endswith(".json"):
            return 0.0
        if low.rpartition("/")[2] == "trainer_state.json" or b'"log_history"' in head:
            return 0.9
        start = head.lstrip()[:1]
        if start == b"[" and re.match(rb"\[\s*\{", head.lstrip()):
            return 0.4  # a list of records
        if re.match(rb'\s*\{\s*"[^"]*"\s*:\s*\[\s*(?:-?\d|NaN|-?Infinity)', head):
            return 0.4  # an object of lists of numbers (its first one: a config may hold a list too)
        return 0.0

    def complete(self, buf: bytes) -> int:
        if not buf.strip(_WHITESPACE):
            return len(buf)  # whitespace after a document: nothing to wait for
        if len(buf) > self.max_bytes:
            return len(buf)
        end = _document_end(buf)
        if end is None:
            return 0
        while end < len(buf) and buf[end] in _WHITESPACE:
            end += 1
        return end

    def new_state(self) -> JsonDocState:
        return JsonDocState()

    def rewound(self, state: JsonDocState) -> JsonDocState:
        """Every document is a whole new version: the state already expects one."""
        return state

    def first_read(self, state: JsonDocState) -> JsonDocState:
        """The state an export decodes a version with: every entry of the document is a record of
        the file, not only those new since the version before."""
        return JsonDocState()

    def decode(self, data: bytes, state: JsonDocState, *, now: float) -> tuple[Parsed, JsonDocState]:
        st = dataclasses.replace(state, columns=dict(state.columns))
        parsed = Parsed()
        parsed.started = st.started
        if not data.strip(_WHITESPACE):
            return parsed, st
        if len(data) > self.max_bytes:
            parsed.skip("too_large")
            return parsed, st
        try:
            doc = decode_line(data.strip(_WHITESPACE))
        except UnicodeDecodeError:
            parsed.skip("invalid_utf8")
            return parsed, st
        except ValueError:
            parsed.skip("malformed_json")
            return parsed, st
        out: list[dict[str, list[tuple[float, float, float]]]] = [{}]
        entries = _records_of(doc)
        if entries is not None:
            _records(entries, st, parsed, out, now)
        elif not (isinstance(doc, dict) and _columns(doc, st, parsed, out, now)):
            parsed.skip("no_metrics")
            return parsed, st
        _config(doc, st, parsed, out, now)
        parsed.segments = [
            {name: tuple(np.concatenate(x).astype(np.float64) for x in zip(*parts)) for name, parts in seg.items()}
            for seg in out
        ]
        parsed.started = st.started
        return parsed, st


def _document_end(buf: bytes) -> int | None:
    """Bytes of the first whole JSON document in ``buf`` (with the whitespace after it); None while
    it is still being written; ``len(buf)`` when it is malformed (the decode counts it)."""
    try:
        orjson.loads(buf)
        return len(buf)
    except orjson.JSONDecodeError as exc:
        msg, pos = exc.msg, exc.pos
    if msg.startswith("unexpected end of data"):
        return None
    text = buf.decode("utf-8", "surrogateescape")
    if msg.startswith("unexpected content after document"):
        return len(text[:pos].encode("utf-8", "surrogateescape"))  # orjson counts characters
    # NaN / Infinity tokens, numbers out of range, or a multi-byte character cut at the end: the
    # standard library reads those
    lead = len(text) - len(text.lstrip())
    try:
        _, end = json.JSONDecoder().raw_decode(text, lead)
    except json.JSONDecodeError as exc:
        rest = text[exc.pos :].rstrip()
        if exc.msg.startswith("Unterminated string") or _TOKEN_TAIL.fullmatch(rest):
            return None
        return len(buf)
    except RecursionError:
        return len(buf)
    return len(text[:end].encode("utf-8", "surrogateescape"))


def _fp(x: Any) -> int:
    """A fingerprint of a parsed value, the same in every process (unlike hash())."""
    digest = hashlib.blake2b(repr(x).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _records_of(doc: Any) -> list[Any] | None:
    if isinstance(doc, list):
        return doc if doc and all(isinstance(e, dict) for e in doc[:16]) else None
    if not isinstance(doc, dict):
        return None
    history = doc.get("log_history")
    if isinstance(history, list):
        return history
    lists = [v for v in doc.values() if isinstance(v, list) and v and isinstance(v[0], dict)]
    return lists[0] if len(lists) == 1 else None


def _config(doc: Any, st: JsonDocState, parsed: Parsed, out: list[Any], now: float) -> None:
    if not isinstance(doc, dict):
        return
    config = {k: v for k, v in doc.items() if v is None or isinstance(v, (bool, int, float, str))}
    config = {k: v if type(v) is not float or math.isfinite(v) else str(v) for k, v in config.items()}
    fp = _fp(sorted(config.items()))
    if config and fp != st.config_fp:
        st.config_fp = fp
        parsed.others.append((len(out) - 1, {KIND: K_CONFIG, "t": now, "config": config}))


def _records(entries: list[Any], st: JsonDocState, parsed: Parsed, out: list[Any], now: float) -> None:
    n, c = len(entries), st.count
    start, steps = c, st.steps
    if c and not (n >= c and _fp(entries[0]) == st.first_fp and _fp(entries[c - 1]) == st.last_fp):
        start, steps = 0, JsonlState()  # the history was rewritten: the new document is the new attempt
        if st.started:
            out.append({})
    # the entries new in this version, by the rules of foreign JSON lines (jsonl_columns, jsonl_steps):
    # an entry without a counter is numbered by its place in the history
    fields = fields_from_objects(entries[start:], parsed)
    got, st.steps = points(fields, dataclasses.replace(steps, index=start), now=now)
    for i, seg in enumerate(got.segments):
        if i:
            out.append({})
        for name, cols in seg.items():
            out[-1].setdefault(name, []).append(cols)
    if got.records:
        parsed.records += got.records
        parsed.last_step, parsed.last_time = got.last_step, got.last_time
        st.started = True
    st.count = n
    st.first_fp = _fp(entries[0]) if n else None
    st.last_fp = _fp(entries[-1]) if n else None


def _numbers(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """A list as float64 and where it holds numbers (booleans, strings and null are none)."""
    if all(type(v) is float or type(v) is int for v in values):
        return np.array(values, np.float64), np.ones(len(values), bool)
    read = [decode_float(v) for v in values]
    return (np.array([math.nan if x is None else x for x in read], np.float64),
            np.array([x is not None for x in read], bool))


def _columns(doc: dict[str, Any], st: JsonDocState, parsed: Parsed, out: list[Any], now: float) -> bool:
    """Read a document of metric lists; False when it holds none."""
    flat = flatten(doc)
    lists = {k: v for k, v in flat.items()
             if isinstance(v, list) and any(decode_float(x) is not None for x in v[:64])}
    steps_key = next((k for k in STEP_KEYS if k in lists), None)
    time_key = next((k for k in TIME_KEYS if k in lists), None)
    metrics = {k: _numbers(v) for k, v in lists.items() if k not in (steps_key, time_key)}
    if not metrics:
        return False
    all_steps = _numbers(lists[steps_key])[0] if steps_key else None
    all_times = _numbers(lists[time_key])[0] if time_key else None
    cols: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, (values, has) in metrics.items():
        n = len(values)
        steps = all_steps if all_steps is not None and len(all_steps) == n else np.arange(n, dtype=np.float64)
        times = all_times if all_times is not None and len(all_times) == n else np.full(n, now)
        times = np.where(np.isfinite(times), times, now)
        cols[name] = (steps, values, times, has)

    def marks(s: np.ndarray, v: np.ndarray, i: int) -> int:
        return _fp((float(s[i]), float(v[i])))

    same = all(name in cols and len(cols[name][1]) >= c
               and marks(*cols[name][:2], 0) == first and marks(*cols[name][:2], c - 1) == last
               for name, (c, first, last) in st.columns.items() if c)
    if not same:
        if st.started:
            out.append({})
        st.columns = {}
    for name, (steps, values, times, has) in cols.items():
        c = st.columns.get(name, (0, 0, 0))[0]
        keep = has[c:]
        if keep.any():
            out[-1].setdefault(name, []).append((steps[c:][keep], values[c:][keep], times[c:][keep]))
            parsed.records = max(parsed.records, int(keep.sum()))
            parsed.last_step = float(steps[c:][keep][-1])
            parsed.last_time = float(times[c:][keep][-1])
            st.started = True
        n = len(values)
        st.columns[name] = (n, marks(steps, values, 0), marks(steps, values, n - 1)) if n else (0, 0, 0)
    return True
