"""Foreign JSON lines as columns: what a line holds, decoded objects read as columns, merged parts.

A chunk of lines that another program wrote becomes ``Fields``: one row per record, in file order,
a column per flattened field. Every way of reading a chunk gives these columns: the templates of
``jsonl`` (lines of one layout, their numbers read in one call), ``fields_from_objects`` here (the
decoded objects of any layouts, their fields read as one sequence in whole-array passes) and
``fields_one_at_a_time`` (the rules below applied to one object at a time: the reference the others
are tested against), so the steps and series made from them (``jsonl_steps``) are the same whichever
read them.

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
from array import array
from itertools import chain, repeat
from operator import itemgetter
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

__all__ = ["Fields", "discriminator_hash", "field_hash", "fields_from_objects", "fields_one_at_a_time", "merged"]

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


def fields_one_at_a_time(objs: list[Any], parsed: Parsed, kept: list[int] | None = None) -> Fields:
    """Columns of decoded lines, one object at a time (what is not an object is counted). ``kept``,
    if given, gets the index in ``objs`` of each row. The reference ``fields_from_objects`` is held to
    (and what the reader's ``fast = False`` reads with)."""
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


_NUM = frozenset({float, int})
_NUMBER, _NULL, _BOOL, _STR, _OTHER = range(5)
_KIND_CODES = {float: _NUMBER, int: _NUMBER, type(None): _NULL, bool: _BOOL, str: _STR}
#: Fewer objects than this are read one at a time (the first line of a template, a few odd lines):
#: reading at once costs a tenth of a millisecond or so whatever the chunk.
FEW = 16


def fields_from_objects(objs: list[Any], parsed: Parsed, kept: list[int] | None = None) -> Fields:
    """Columns of decoded lines (what is not an object is counted). ``kept``, if given, gets the
    index in ``objs`` of each row.

    The chunk's fields are read as one sequence of (row, name, value), in file order: the names
    become column ids by one dict, the numbers one array, scattered into a column per name at once,
    and the layout hashes are sums over each row's run. Only values that are not numbers (nulls,
    strings, booleans, lists) are looked at one by one, and only objects holding nested objects are
    flattened one by one. The columns, layout hashes and the order of fields and prefixes are those
    of ``fields_one_at_a_time`` (a property test holds them), which reads every object one by one
    and was 2.5x slower on lines that each hold their own subset of fields."""
    if len(objs) < FEW:
        return fields_one_at_a_time(objs, parsed, kept)
    if set(map(type, objs)) <= {dict}:
        rows: list[dict[str, Any]] = objs
        where: Any = range(len(objs))
    else:
        where = [i for i, obj in enumerate(objs) if type(obj) is dict]
        rows = [objs[i] for i in where]
        parsed.skip("not_object", len(objs) - len(rows))
    vals = list(chain.from_iterable(map(dict.values, rows)))
    try:  # refuses nulls, strings, lists and objects, but takes a boolean for 1.0 or 0.0
        numeric: np.ndarray | None = np.frombuffer(array("d", vals), np.float64)
    except (TypeError, OverflowError):
        numeric = None
    else:
        ones = np.flatnonzero((numeric == 1.0) | (numeric == 0.0)).tolist()
        if ones and bool in set(map(type, itemgetter(*ones, 0)(vals))):
            numeric = None
    kinds = _NUM if numeric is not None else set(map(type, vals))
    if dict in kinds:  # nested objects: flattened as one object at a time flattens them
        rows, where = _flattened(rows, where, vals, parsed)
        vals = list(chain.from_iterable(map(dict.values, rows)))
        kinds = set(map(type, vals))
    if kept is not None:
        kept.extend(where)
    n, total = len(rows), len(vals)
    names = list(chain.from_iterable(rows))
    lens = np.fromiter(map(len, rows), np.int64, n)
    row_of = np.repeat(np.arange(n), lens)
    column = dict.fromkeys(names)  # name -> its column id, in the order names come
    for j, name in enumerate(column):
        column[name] = j
    ids = np.fromiter(itemgetter(*names)(column), np.int64, total) if total > 1 else np.array([0] * total, np.int64)
    weights = np.fromiter(map(field_hash, column), np.uint64, len(column))[ids]  # a field's share of its row's layout
    is_number: np.ndarray | None = None
    iso: dict[str, np.ndarray] = {}
    disc: dict[str, list[str | None]] = {}
    if kinds <= _NUM:  # the usual chunk: numbers only
        values = numeric if numeric is not None else np.array(vals, np.float64)
    else:
        is_number, values, iso, disc = _other_values(vals, list(column), ids, row_of, weights, n)
    sums = np.concatenate((np.zeros(1, np.uint64), np.cumsum(weights, dtype=np.uint64)))
    ends = np.cumsum(lens)
    layout = sums[ends] - sums[ends - lens]  # mod 2**64, as the sum of each row's field hashes
    numbers = _number_columns(list(column), ids, row_of, values, is_number, n)
    prefix = np.zeros(n, np.int64)
    prefixes: dict[str, int] = {"": 0}
    if disc:
        combos = list(zip(*[disc[k] for k in DISCRIMINATOR_KEYS if k in disc]))
        ids_of = {c: prefixes.setdefault(_prefix_of(c), len(prefixes)) for c in dict.fromkeys(combos)}
        prefix = np.fromiter(map(ids_of.__getitem__, combos), np.int64, n)
    return Fields(n, numbers, iso, layout, prefix, list(prefixes))


def _other_values(vals: list[Any], names: list[str], ids: np.ndarray, row_of: np.ndarray, weights: np.ndarray,
                  n: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], dict[str, list[str | None]]]:
    """Values of which some are not numbers, by the rules of ``fields_one_at_a_time``: where a value
    is a number (the non-finite spellings too), the values as floats there, the absolute times by
    field (NaN where none, the fields in the order their first time comes), each discriminator's
    strings by row. A null takes its field's hash out of ``weights``, a discriminator string adds its
    value's. Strings are read a field at a time, each distinct string of a field once."""
    kinds = np.fromiter(map(_KIND_CODES.get, map(type, vals), repeat(_OTHER)), np.int8, len(vals))
    is_number = kinds == _NUMBER
    weights[kinds == _NULL] = 0
    values = np.zeros(len(vals))
    at = np.flatnonzero(is_number)
    values[at] = np.array(list(map(vals.__getitem__, at.tolist())), np.float64)
    iso: dict[str, np.ndarray] = {}
    first_time: dict[str, int] = {}
    disc: dict[str, list[str | None]] = {}
    at = np.flatnonzero(kinds == _STR)
    order = np.argsort(ids[at], kind="stable")
    at = at[order]
    cuts = np.flatnonzero(np.diff(ids[at])) + 1
    for ps in np.split(at, cuts) if at.shape[0] else []:  # the strings of one field, in file order
        name = names[int(ids[ps[0]])]
        strs = list(map(vals.__getitem__, ps.tolist()))
        if name in _DISC:
            hashes = {v: discriminator_hash(name, v) for v in set(strs)}
            weights[ps] += np.fromiter(map(hashes.__getitem__, strs), np.uint64, len(strs))  # mod 2**64
            told = np.full(n, None, object)
            told[row_of[ps]] = strs  # the strings themselves (an object array takes no copy as text)
            disc[name] = told.tolist()
            continue
        if name in _TIME:
            times = {v: absolute_time(v) for v in set(strs)}
            got = np.array([times[v] is not None for v in strs], bool)
            if got.any():
                iso[name] = np.full(n, np.nan)
                iso[name][row_of[ps[got]]] = [times[v] for v in strs if times[v] is not None]
                first_time[name] = int(ps[got][0])
            ps, strs = ps[~got], [v for v in strs if times[v] is None]
        spelled = {v: decode_float(v) for v in set(strs)}
        got = np.array([spelled[v] is not None for v in strs], bool)
        if got.any():  # "NaN", "Infinity", "-Infinity"
            is_number[ps[got]] = True
            values[ps[got]] = [spelled[v] for v in strs if spelled[v] is not None]
    iso = {name: iso[name] for name in sorted(iso, key=first_time.__getitem__)}
    return is_number, values, iso, disc


def _number_columns(names: list[str], ids: np.ndarray, row_of: np.ndarray, values: np.ndarray,
                    is_number: np.ndarray | None, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A column per name holding a number (``is_number``: where a value is one; None: everywhere),
    in the order their first numbers come, scattered at once into one table (a row per name)."""
    if is_number is None:
        found = np.arange(len(names))
    else:
        at = np.flatnonzero(is_number)
        ids, row_of, values = ids[at], row_of[at], values[at]
        first = np.full(len(names), row_of.shape[0] + 1)
        np.minimum.at(first, ids, np.arange(at.shape[0]))
        found = np.argsort(first, kind="stable")[: np.count_nonzero(first <= row_of.shape[0])]
        slot = np.zeros(len(names), np.int64)
        slot[found] = np.arange(found.shape[0])
        ids = slot[ids]
    table = np.full((found.shape[0], n), np.nan)
    has = np.zeros((found.shape[0], n), bool)
    table[ids, row_of] = values
    has[ids, row_of] = True
    return {names[j]: (table[k], has[k]) for k, j in enumerate(found.tolist())}


def _flattened(rows: list[dict[str, Any]], where: Any, vals: list[Any],
               parsed: Parsed) -> tuple[list[dict[str, Any]], list[int]]:
    """``rows`` with those holding a nested object flattened (those nested too deeply to flatten
    counted and left out), and the index in the chunk of each."""
    row_of = np.repeat(np.arange(len(rows)), np.fromiter(map(len, rows), np.int64, len(rows)))
    is_dict = np.array([type(v) is dict for v in vals], bool)
    out = list(rows)
    gone: list[int] = []
    for r in np.unique(row_of[is_dict]).tolist():
        try:
            out[r] = flatten(rows[r])
        except RecursionError:  # orjson reads 1,024 levels; flattening them recurses deeper
            parsed.skip("bad_value")
            gone.append(r)
    where = list(where)
    if gone:
        drop = set(gone)
        out = [row for r, row in enumerate(out) if r not in drop]
        where = [i for r, i in enumerate(where) if r not in drop]
    return out, where


def _prefix_of(values: tuple[Any, ...]) -> str:
    """``discriminator_prefix`` of a row's discriminator strings (None where a row has none)."""
    parts = [v for v in values if v]
    return "/".join(parts) + "/" if parts else ""


def merged(parts: list[tuple[Fields, np.ndarray]]) -> Fields:
    """Columns of several sets of rows (each with the line number of its rows), in line order; the
    fields and prefixes in the order the rows first hold them, as one object at a time meets them
    (each part holds its own in that order)."""
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
    first: dict[str, tuple[int, int]] = {}  # field -> (row, rank in its part) where first held
    first_iso: dict[str, tuple[int, int]] = {}
    at = 0
    for f, _ in parts:
        mine = place[at : at + f.n]
        at += f.n
        records += [(int(mine[row]), rec) for row, rec in f.records]
        for rank, (name, (values, has)) in enumerate(f.numbers.items()):
            if name not in numbers:
                numbers[name] = (np.full(n, np.nan), np.zeros(n, bool))
            numbers[name][0][mine] = values
            numbers[name][1][mine] = has
            _first(first, name, mine, has, rank)
        for rank, (name, t) in enumerate(f.iso.items()):
            iso.setdefault(name, np.full(n, np.nan))[mine] = t
            _first(first_iso, name, mine, ~np.isnan(t), rank)
        layout[mine] = f.layout
        ids = np.array([prefixes.setdefault(p, len(prefixes)) for p in f.prefixes], np.int64)
        prefix[mine] = ids[f.prefix]
    records.sort(key=lambda r: r[0])
    numbers = {name: numbers[name] for name in sorted(numbers, key=lambda k: first.get(k, (n, 0)))}
    iso = {name: iso[name] for name in sorted(iso, key=lambda k: first_iso.get(k, (n, 0)))}
    names = list(prefixes)
    if len(names) > 2:  # numbered in the order the rows first hold them, "" first
        ids, at_row = np.unique(prefix, return_index=True)
        seen = [i for i in ids[np.argsort(at_row)].tolist() if i]
        renumber = np.zeros(len(names), np.int64)
        renumber[seen] = np.arange(1, len(seen) + 1)
        prefix, names = renumber[prefix], [""] + [names[i] for i in seen]
    return Fields(n, numbers, iso, layout, prefix, names, records)


def _first(first: dict[str, tuple[int, int]], name: str, rows: np.ndarray, held: np.ndarray, rank: int) -> None:
    """Keep in ``first`` the earliest (row, rank) where ``name`` is held (``rows``: in order)."""
    where = np.flatnonzero(held)
    if where.shape[0]:
        got = (int(rows[where[0]]), rank)
        if name not in first or got < first[name]:
            first[name] = got

