"""Foreign JSON lines as columns: what a line holds, read one object at a time, and merged parts.

A chunk of lines that another program wrote becomes ``Fields``: one row per record, in file order,
a column per flattened field. Both ways of reading a chunk give these columns, the templates of
``jsonl`` (lines of one layout, their numbers read in one call) and ``fields_from_objects`` here
(one decoded object at a time), so the steps and series made from them (``jsonl_steps``) are the
same whichever read them.

What a foreign line holds (``format.foreign_scalars`` is the same rules for one object):
- Nested objects are flattened with "/". Every field holding a number (or the strings "NaN",
  "Infinity", "-Infinity"; bare ``NaN`` / ``Infinity`` tokens read as numbers too) is a metric,
  except the line's step, its wall clock and its discriminators. Strings, booleans, lists and nulls
  are not points.
- Discriminators (``format.DISCRIMINATOR_KEYS``: mode, split, phase, stage) holding a string prefix
  the line's metrics: ``{"mode": "val", "loss": 1}`` is ``val/loss``.
- The wall clock is the first ``format.TIME_KEYS`` field holding a plausible absolute time (Unix
  seconds or milliseconds, ISO 8601); else the time the line was read. A ``time`` of 0.41 s
  (a duration, as mmcv and detectron2 write) is a metric, as are ``data_time``, ``eta_seconds``...

A row's layout is the sum of the hashes of its present fields and of its discriminator values: rows
of one layout hold the same fields, which is what a restart is judged by (``jsonl_steps``).
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import numpy as np
from tailboard.format import (
    DISCRIMINATOR_KEYS,
    TIME_KEYS,
    absolute_time,
    decode_float,
    discriminator_prefix,
    flatten,
)

from ..ingest import Parsed

__all__ = ["Fields", "discriminator_hash", "field_hash", "fields_from_objects", "merged"]

_M64 = (1 << 64) - 1
_TIME = frozenset(TIME_KEYS)
_DISC = frozenset(DISCRIMINATOR_KEYS)


@dataclasses.dataclass
class Fields:
    """A chunk's foreign records as columns, before steps (one row per record, in file order)."""

    n: int
    #: flattened field -> (values, where the row holds a number); fields with no number are absent
    numbers: dict[str, tuple[np.ndarray, np.ndarray]]
    #: TIME_KEYS field -> the absolute time its string spells, NaN where none
    iso: dict[str, np.ndarray]
    #: per row: the sum of the hashes of its present fields and of its discriminator values
    layout: np.ndarray
    #: per row: index into ``prefixes`` (discriminator prefix; "" first)
    prefix: np.ndarray
    prefixes: list[str]
    #: tailboard's own records among the rows (images), each with its row: a row of no fields, so that
    #: it is numbered and placed in its attempt as a line with no counter is
    records: list[tuple[int, dict[str, Any]]] = dataclasses.field(default_factory=list)
    _present: tuple[list[str], np.ndarray] | None = dataclasses.field(default=None, repr=False)

    def names_at(self, row: int) -> tuple[str, ...]:
        """The fields holding a number in ``row``, sorted (one matrix per chunk, made when first
        asked: a restart is rare, and a chunk may have thousands of fields)."""
        if self._present is None:
            names = sorted(self.numbers)
            self._present = names, np.stack([self.numbers[k][1] for k in names], axis=1) if names else \
                np.zeros((self.n, 0), bool)
        names, present = self._present
        return tuple(names[j] for j in np.flatnonzero(present[row]).tolist())


_hashes: dict[str, int] = {}


def field_hash(text: str) -> int:
    """A 64-bit hash of a name, the same in every process (the catch-up decodes in children)."""
    h = _hashes.get(text)
    if h is None:
        if len(_hashes) > 100_000:
            _hashes.clear()
        h = _hashes[text] = int.from_bytes(
            hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    return h


def discriminator_hash(key: str, value: str) -> int:
    return field_hash(key + "\x00" + value)


def fields_from_objects(objs: list[Any], parsed: Parsed, kept: list[int] | None = None) -> Fields:
    """Columns of decoded lines, one object at a time (what is not an object is counted). ``kept``,
    if given, gets the index in ``objs`` of each row."""
    numbers: dict[str, tuple[list[int], list[float]]] = {}
    iso: dict[str, tuple[list[int], list[float]]] = {}
    layout: list[int] = []
    prefix: list[int] = []
    prefixes: dict[str, int] = {"": 0}
    n = 0
    for i, obj in enumerate(objs):
        if type(obj) is not dict:
            parsed.skip("not_object")
            continue
        try:
            flat = flatten(obj)
        except RecursionError:  # orjson reads 1,024 levels; flattening them recurses deeper
            parsed.skip("bad_value")
            continue
        h = 0
        told = False  # a discriminator holds a string: the metrics take its prefix
        for name, v in flat.items():
            if v is None:
                continue
            fh = _hashes.get(name)
            h += fh if fh is not None else field_hash(name)
            kind = type(v)
            if kind is float or kind is int:  # the usual field: no other test
                rows, xs = numbers.setdefault(name, ([], []))
                rows.append(n)
                xs.append(float(v))
                continue
            if kind is str:
                if name in _DISC:
                    h += discriminator_hash(name, v)
                    told = True
                    continue
                if name in _TIME:
                    t = absolute_time(v)
                    if t is not None:
                        rows, ts = iso.setdefault(name, ([], []))
                        rows.append(n)
                        ts.append(t)
                        continue
            x = decode_float(v)
            if x is not None:
                rows, xs = numbers.setdefault(name, ([], []))
                rows.append(n)
                xs.append(x)
        layout.append(h & _M64)
        prefix.append(prefixes.setdefault(discriminator_prefix(flat), len(prefixes)) if told else 0)
        if kept is not None:
            kept.append(i)
        n += 1
    out_numbers = {}
    for name, (rows, xs) in numbers.items():
        values, has = np.full(n, np.nan), np.zeros(n, bool)
        values[rows] = xs
        has[rows] = True
        out_numbers[name] = (values, has)
    out_iso = {}
    for name, (rows, ts) in iso.items():
        out_iso[name] = np.full(n, np.nan)
        out_iso[name][rows] = ts
    return Fields(n, out_numbers, out_iso, np.array(layout, np.uint64), np.array(prefix, np.int64),
                  list(prefixes))


def merged(parts: list[tuple[Fields, np.ndarray]]) -> Fields:
    """Columns of several sets of rows (each with the line number of its rows), in line order."""
    lines = np.concatenate([where for _, where in parts])
    order = np.argsort(lines, kind="stable")
    n = int(lines.shape[0])
    place = np.empty(n, np.int64)
    place[order] = np.arange(n)  # row i of the concatenation goes to place[i]
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    iso: dict[str, np.ndarray] = {}
    layout = np.empty(n, np.uint64)
    prefix = np.empty(n, np.int64)
    prefixes: dict[str, int] = {"": 0}
    records: list[tuple[int, dict[str, Any]]] = []
    at = 0
    for f, _ in parts:
        mine = place[at : at + f.n]
        at += f.n
        records += [(int(mine[row]), rec) for row, rec in f.records]
        for name, (values, has) in f.numbers.items():
            if name not in numbers:
                numbers[name] = (np.full(n, np.nan), np.zeros(n, bool))
            numbers[name][0][mine] = values
            numbers[name][1][mine] = has
        for name, t in f.iso.items():
            iso.setdefault(name, np.full(n, np.nan))[mine] = t
        layout[mine] = f.layout
        ids = np.array([prefixes.setdefault(p, len(prefixes)) for p in f.prefixes], np.int64)
        prefix[mine] = ids[f.prefix]
    records.sort(key=lambda r: r[0])
    return Fields(n, numbers, iso, layout, prefix, list(prefixes), records)

