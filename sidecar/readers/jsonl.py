"""JSON lines: tailboard's own records, and any other file of one JSON object per line.

A file is JSON lines by name (``.jsonl``, ``.ndjson``) or by content: its first complete lines are
JSON objects (``metrics.json``, ``*.log.json``, ``scalars.json`` of detection frameworks). One line
alone is weak evidence: a whole JSON document written on one line looks the same, and the document
reader is surer of those it knows (a trainer state).

tailboard's own streams (a header first, or lines of the writer's layout) are decoded by
``ingest.parse_chunk``, which has the fast path for the writer's scalars. Lines that another program
wrote ("foreign") are read in two steps, each in a module of its own: the chunk's lines become
columns (``jsonl_columns.Fields``: what a line holds, the same rules as ``format.foreign_scalars``),
then the columns become points (``jsonl_steps``: each line's step, attempts only on real evidence,
one series per metric).

This module holds the reader and the first step. A program writes its lines from one dict, so lines
of one layout differ only in their numbers: a chunk's lines are grouped by layout (their text with
the number bytes taken out) and each group of ``MIN_TEMPLATE`` lines or more (and of
``MIN_TEMPLATE_BYTES``: a template has a fixed cost) is read as a template
of its first line (every other byte compared, the numbers read by one orjson call:
``ingest.read_layout``, the writer's fast path made general); the other lines, and groups that
differ anywhere, are decoded by one orjson call and their fields read in whole-array passes
(``jsonl_columns.fields_from_objects``: lines whose fields vary line by line, bench/jsonl_mixed.py).
Both give the columns of one object at a time, so the points are the same (bench/jsonl_decode.py
measures this against pyarrow's JSON reader, which was slower).

Image records (``{"k":"image",...}``, the writer's ``tailboard.Image``) are a record kind of the
format (``format.KINDS``): ``ingest.parse_chunk`` keeps them with the other records of tailboard's
own streams, and among foreign lines (another program may write them too) each is a row of no fields
whose record is kept in its place (``jsonl_columns.Fields.records``, ``jsonl_steps``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import orjson
from tailboard.format import K_IMAGE, KIND, KINDS

from ..ingest import Parsed, decode_line, decode_lines, parse_chunk, read_layout
from .jsonl_columns import Fields, discriminator_hash, field_hash, fields_from_objects, fields_one_at_a_time, merged
from .jsonl_steps import (
    JsonlState,
    _Tracker,  # noqa: F401 (tests switch its whole-array path off)
    points,
)

__all__ = ["Fields", "JsonlReader", "JsonlState", "discriminator_hash", "field_hash", "fields_from_objects"]

#: Names that are JSON lines whatever they hold.
SUFFIXES = (".jsonl", ".ndjson")
#: The start of every line tailboard's writer writes (its kind, a string; a foreign "k" may be anything).
NATIVE_HEAD = b'{"k":"'
#: The start of a line of an image record, which is no evidence of tailboard's own stream (another
#: program may write one among its lines): a chunk that starts so is read as foreign lines first.
IMAGE_HEAD = NATIVE_HEAD + b'%s"' % K_IMAGE.encode()
#: Fewest lines of one layout read as a template; fewer are read with the rest of their chunk.
MIN_TEMPLATE = 16
#: Fewest bytes of a chunk's lines of one layout read as a template (the chunk's whole lines are
#: tried whatever their size): a template costs some 0.15 ms whatever its lines, more than reading
#: a few KiB as columns takes (bench/jsonl_mixed.py "half, words": 252 layouts of some 30 lines in
#: a chunk, 4.6x faster so). Columns catch up with templates at 30-100 KiB of lines of numbers, and
#: of strings; a chunk of one layout and mmcv's lines still read 1.3x and 1.8x faster as templates.
MIN_TEMPLATE_BYTES = 8 << 10
_NUMBER = b"0123456789.-+eENaIfinty"  # the bytes of number tokens: NaN, Infinity and -Infinity too
_KIND_KEY = b'"%s"' % KIND.encode()  # a line without it (nor an escape) has no kind: not one of tailboard's


class JsonlReader:
    name = "jsonl"
    #: records end at newlines: the tail cuts lines itself (over-long lines and NUL runs skipped)
    lines = True
    #: lines of one layout read as templates, the others as columns (tests switch it off to compare
    #: with one object at a time)
    fast = True
    #: a decoder of the other lines into columns, tried before one object at a time (returning None
    #: where it cannot be exact); bench/jsonl_decode.py puts pyarrow's JSON reader here
    bulk: Callable[[bytes], Fields | None] | None = None

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
        of an earlier process): the records are numbered back from ``after``; the offsets of
        restarting counters are ``after``'s (kept per epoch, they hold for earlier lines too); the
        steps before are unknown, so steps going back inside ``data`` still start an attempt, before
        it none does."""
        before = dataclasses.replace(after, last_step=None, started=True, counters=(), layouts=())
        if _native(data, after):
            parsed = parse_chunk(data, prev_step=None, next_index=0, attempt_started=True, native=after.native)
        else:
            parsed, _ = self.decode(data, before, now=0.0)
        return dataclasses.replace(before, index=max(0, after.index - parsed.records))

    def decode(self, data: bytes, state: JsonlState, *, now: float) -> tuple[Parsed, JsonlState]:
        if not _native(data, state):
            got = decode_foreign(data, state, now=now, fast=self.fast, bulk=self.bulk)
            if got is not None:
                return got
        parsed = parse_chunk(data, prev_step=state.last_step, next_index=state.index,
                             attempt_started=state.started, native=state.native, now=now)
        return parsed, dataclasses.replace(
            state,
            last_step=parsed.last_step if parsed.last_step is not None else state.last_step,
            index=state.index + parsed.records,
            started=parsed.started,
            native=state.native or parsed.native,
        )


def _native(data: bytes, state: JsonlState) -> bool:
    """Whether ``data`` is read as tailboard's own records straight away (``ingest.parse_chunk``):
    its stream is (it had a header), or it starts as the writer's lines but for an image's."""
    return state.native or data.startswith(NATIVE_HEAD) and not data.startswith(IMAGE_HEAD)


# ---- a chunk as columns: lines of one layout read as templates ---------------------------------


def fields_from_template(data: bytes) -> Fields | None:
    """Columns of lines that all have the layout of the first: the same bytes everywhere but in the
    numbers (as one program's ``json.dumps`` of one dict writes them). The text between numbers is
    compared at every line and the numbers are read in one call (``ingest.read_layout``);
    the rest of the first line (strings, booleans, nulls) is read once and holds for every line.
    None when the first line is not a flat object with a number and no ':' but its separators, or
    when any line differs."""
    first = data[: data.find(b"\n")]
    if b"\\" in first:
        return None
    try:
        obj = decode_line(first)  # bare NaN / Infinity too
    except ValueError:
        return None
    if type(obj) is not dict or first.count(b":") != len(obj) or type(obj.get("k")) is str:
        return None
    last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -1]
    if last != first:  # lines of other fields, said before reading every line (the usual miss)
        try:
            other = decode_line(last)
        except ValueError:
            return None
        if type(other) is not dict or list(other) != list(obj):
            return None
    consts: list[bytes] = []
    anchors: list[int] = []
    before: list[int] = []
    numeric: list[str] = []
    at = 0  # end of the last number
    colon = -1
    for j, (name, value) in enumerate(obj.items()):
        colon = first.index(b":", colon + 1)
        if type(value) is dict or type(value) is list:
            return None
        if type(value) is not int and type(value) is not float:
            continue
        start = colon + 1
        while first[start : start + 1] in (b" ", b"\t"):
            start += 1
        end = start
        while end < len(first) and first[end] in _NUMBER:
            end += 1
        consts.append(first[at:start])
        anchors.append(colon - at)
        before.append(j)
        numeric.append(name)
        at = end
    if not numeric:
        return None
    consts.append(first[at:] + b"\n")
    table = read_layout(data, consts, anchors, before, len(obj))
    if table is None:
        return None
    one = fields_from_objects([obj], Parsed())  # what the first line holds besides its numbers
    n = table.shape[0]
    numbers = {name: (np.full(n, values[0]), np.full(n, has[0])) for name, (values, has) in one.numbers.items()}
    columns = np.ascontiguousarray(table.T)  # a row per column: cheap to append and to pickle
    for j, name in enumerate(numeric):
        numbers[name] = (columns[j], np.ones(n, bool))
    return Fields(n, numbers, {name: np.full(n, t[0]) for name, t in one.iso.items()},
                  np.full(n, one.layout[0], np.uint64), np.full(n, int(one.prefix[0]), np.int64), one.prefixes)


def fields_by_layout(data: bytes, parsed: Parsed, fast: bool = True,
                     bulk: Callable[[bytes], Fields | None] | None = None) -> Fields | None:
    """A chunk's columns: the whole chunk, else lines of each layout met ``MIN_TEMPLATE`` times or
    more in ``MIN_TEMPLATE_BYTES`` or more, read as a template (``fast``); the others by ``bulk`` if
    given, else by ``fields_from_objects`` (without ``fast``, one object at a time); rows in file
    order. None when the chunk holds tailboard's own records other than images."""
    if data and not data.endswith(b"\n"):
        data += b"\n"  # a last line without its newline (a reader's chunks end with one)
    whole = fields_from_template(data) if fast else None
    if whole is not None:
        return whole
    if not data:
        return fields_from_objects([], parsed)
    parts: list[tuple[Fields, np.ndarray]] = []
    rest: np.ndarray | None = None  # the lines left for the other ways; None: all
    lines: list[bytes] = []  # cut only when some are read as templates
    if fast:  # the lines of a layout are alike once their numbers are taken out
        shapes = data.translate(None, _NUMBER).split(b"\n")[:-1]
        n = len(shapes)
        firsts: dict[bytes, int] = {}
        group = np.fromiter(map(firsts.setdefault, shapes, range(n)), np.int64, n)  # its shape's first line
        sizes = np.bincount(group, minlength=n)
        big = (sizes >= MIN_TEMPLATE) & (sizes * (len(data) / n) >= MIN_TEMPLATE_BYTES)  # at the mean line's length
        left = np.ones(n, bool)
        for at in np.flatnonzero(big & (sizes < n)).tolist():  # all the lines: tried above
            lines = lines or data.split(b"\n")
            rows = np.flatnonzero(group == at)
            got = fields_from_template(b"\n".join([lines[i] for i in rows.tolist()]) + b"\n")
            if got is not None:
                parts.append((got, rows))
                left[rows] = False
        if parts:
            rest = np.flatnonzero(left)
    if rest is None or rest.shape[0]:
        text = data if rest is None else b"\n".join([lines[i] for i in rest.tolist()]) + b"\n"
        line_no = np.arange(len(shapes) if fast else data.count(b"\n")) if rest is None else rest
        got = bulk(text) if bulk is not None else None
        if got is None:
            got, line_no = _objects(text, line_no, parsed, fast)
            if got is None:
                return None
        parts.append((got, line_no))
    if not parts:
        return fields_from_objects([], parsed)
    return parts[0][0] if len(parts) == 1 else merged(parts)  # one part: its rows are in order


def _objects(text: bytes, line_no: np.ndarray, parsed: Parsed, fast: bool) -> tuple[Fields | None, np.ndarray]:
    """Lines read as objects, and the line number of each row (``line_no``: of each line of
    ``text``); None when they hold tailboard's own records other than images."""
    where: list[int] | None = None
    try:  # as decode_lines reads lines when all are JSON, without cutting them first
        objs = orjson.loads(b"[" + text[:-1].replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        objs = None
    if objs is None or len(objs) != line_no.shape[0]:
        where = []
        objs = decode_lines(text, parsed, where)
    # a line can have a kind only if its text holds the key, or an escape that may spell it (the
    # search for one byte is fast; for the key, a quote being everywhere, a hundred times slower)
    maybe = b"\\" in text or _KIND_KEY[1:2] in text and _KIND_KEY in text
    own = [j for j, o in enumerate(objs) if type(o) is dict and type(o.get(KIND)) is str and o[KIND] in KINDS] \
        if maybe else []
    images = [(j, objs[j]) for j in own if objs[j][KIND] == K_IMAGE]
    if len(images) < len(own):
        return None, line_no
    for j, _ in images:
        objs[j] = {}  # a row of no fields; the record is kept beside the columns
    kept: list[int] = []
    if fast:
        got = fields_from_objects(objs, parsed, kept)
    else:
        got = fields_one_at_a_time(objs, parsed, kept)
    if images:
        row = {j: r for r, j in enumerate(kept)}
        got.records = [(row[j], rec) for j, rec in images]
    if where is not None and len(where) < line_no.shape[0]:  # lines that are not JSON
        line_no = line_no[np.array(where, np.int64)]
    if len(kept) < len(objs):  # values that are not objects
        line_no = line_no[np.array(kept, np.int64)]
    return got, line_no


def decode_foreign(data: bytes, state: JsonlState, *, now: float, fast: bool = True,
                   bulk: Callable[[bytes], Fields | None] | None = None) -> tuple[Parsed, JsonlState] | None:
    """Foreign lines, and images among them, by the rules of ``jsonl_columns`` and ``jsonl_steps``;
    None when the chunk holds tailboard's own records of other kinds (``ingest.parse_chunk`` reads
    those)."""
    skipped = Parsed()
    fields = fields_by_layout(data, skipped, fast, bulk)
    if fields is None:
        return None
    parsed, after = points(fields, state, now=now)
    parsed.skipped = skipped.skipped
    return parsed, after
