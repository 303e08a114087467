"""Decoding JSON lines that tailboard did not write: the hand-written path the reader ships
against pyarrow's JSON reader, side by side, with tailboard's own lines beside them.

    .venv/bin/python bench/jsonl_decode.py [--lines 50000 --metrics 20 --digits 0 --runs 5]

Writes three files of --lines lines with --metrics metrics each: "foreign" as Python's json.dumps
writes a dict with one step key (``{"iter": 17, "loss": 0.52, ...}``), "mixed" in mmcv's layout
(train lines with mode, epoch and an iter that restarts each epoch, a val line per 100), and
"native" in the writer's layout. Each path decodes a file in 1 MiB pieces (--chunk, as the
catch-up reads), the reader's state carried from one to the next, on one core (pyarrow without
threads, polars with one). Times are CPU seconds of this process (time.process_time), so other
work on the machine counts less than in wall time; every figure is the median of --runs rounds,
each round running every path once; fewer rounds past --budget seconds. Paths:
- hand-written (shipped): ``JsonlReader.decode``; lines grouped by layout, each group read as a
  template of its first line by ``ingest.read_layout``, the rest one object at a time;
- pyarrow.json: the same reader with every chunk read by pyarrow's JSON reader into the same
  columns (``fields_from_arrow`` below: exact, or it declines and the chunk is read one object at
  a time); "hand-written + pyarrow.json": templates first, pyarrow for the rest;
- one object at a time: the reference every path is checked against (same points, asserted);
- through the Store: the shipped reader behind ``Store.ingest``, keeping the points;
- native: the writer's layout (``ingest``'s fast path), reader and Store;
- parse only, for scale: pyarrow.json.read_json, polars.read_ndjson (when installed, one thread)
  and orjson on the same chunks, keeping nothing. pyarrow and polars are not dependencies of
  tailboard: `.venv/bin/pip install pyarrow polars` for their rows (else they print "-").
Ratios are against the shipped hand-written path on the same file (native: on foreign).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from tailboard.format import DISCRIMINATOR_KEYS, KINDS, TIME_KEYS, absolute_time

try:
    import pyarrow
    import pyarrow.compute as pc
    import pyarrow.json as pajson
except ImportError:
    pyarrow = None
from tailboard.sidecar.ingest import Parsed
from tailboard.sidecar.readers import jsonl
from tailboard.sidecar.readers.jsonl import Fields, JsonlReader
from tailboard.sidecar.store import Store

HAND = "foreign, hand-written (shipped)"
MIXED_HAND = "mixed (mmcv), hand-written (shipped)"


def write_files(folder: Path, lines: int, metrics: int, digits: int) -> tuple[Path, Path, Path]:
    rng = random.Random(0)
    names = ["loss"] + [f"m{j}" for j in range(metrics - 1)]
    foreign, mixed, native = folder / "foreign.jsonl", folder / "mixed.jsonl", folder / "native.jsonl"
    with open(foreign, "w") as f, open(mixed, "w") as h, open(native, "w") as g:
        for i in range(lines):
            values = {n: rng.random() * 10.0 ** rng.randint(-3, 3) for n in names}
            if digits:
                values = {n: float(f"{v:.{digits}g}") for n, v in values.items()}
            f.write(json.dumps({"iter": i, **values}) + "\n")
            # mmcv's layout: a train line per 50 iterations, a val line per epoch of 100 lines
            epoch, at = divmod(i, 100)
            if at == 99:
                h.write(json.dumps({"mode": "val", "epoch": epoch + 1, "iter": 5000, **values}) + "\n")
            else:
                h.write(json.dumps({"mode": "train", "epoch": epoch + 1, "iter": 50 * (at + 1), **values}) + "\n")
            g.write(json.dumps({"k": "scalars", "step": i, "t": 1.7e9 + i / 10, "v": values},
                               separators=(",", ":")) + "\n")
    return foreign, mixed, native


def chunks(data: bytes, size: int) -> list[bytes]:
    out, at = [], 0
    while at < len(data):
        cut = data.rfind(b"\n", at, at + size) + 1 or len(data)
        out.append(data[at:cut])
        at = cut
    return out


def configured(fast: bool, bulk: bool) -> JsonlReader:
    r = JsonlReader()
    r.fast = fast
    r.bulk = fields_from_arrow if bulk and pyarrow is not None else None
    return r


# ---- the library contender: pyarrow's JSON reader into the reader's columns ---------------------

#: Nesting deeper than this is left to one object at a time.
MAX_DEPTH = 64
NONFINITE = ("NaN", "Infinity", "-Infinity")


def fields_from_arrow(data: bytes) -> Fields | None:
    """Columns of complete lines by pyarrow's JSON reader, or None where its reading could differ
    from one line at a time (then the caller reads them so): a line it refuses (not JSON, a
    number out of range, a type that changes from line to line, a key twice), the spellings it
    takes that JSON does not (``-NaN``, ``Inf``), two objects on a line, a byte-order mark, an
    integer ``-0`` in a float column, nesting past ``MAX_DEPTH``, names that flatten alike, or
    tailboard's own records (a string ``k``)."""
    if not data or data.startswith(b"\xef\xbb\xbf") or b"-NaN" in data:
        return None
    if b"Inf" in data and data.count(b"Inf") != data.count(b"Infinity"):
        return None
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(
            use_threads=False, block_size=max(len(data) + 1, 1 << 16)))
    except (pyarrow.ArrowException, ValueError):  # not JSON, or not UTF-8 (UnicodeDecodeError)
        return None
    n = table.num_rows
    if n != data.count(b"\n"):
        return None  # a blank line, or two objects on one line
    dated = [f.name for f in table.schema if not _plain(f.type)]
    if dated:  # strings it took for dates: read again, those fields as the strings they are
        schema = pyarrow.schema([pyarrow.field(name, pyarrow.string()) for name in dated])
        try:
            table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(
                use_threads=False, block_size=max(len(data) + 1, 1 << 16)), parse_options=pajson.ParseOptions(
                explicit_schema=schema, unexpected_field_behavior="infer"))
        except (pyarrow.ArrowException, ValueError):
            return None
        if any(not _plain(f.type) for f in table.schema):
            return None
    leaves: list[tuple[str, Any]] = []
    if not _leaves(leaves, "", table.column_names, [c.combine_chunks() for c in table.columns], 0):
        return None
    if len({name for name, _ in leaves}) != len(leaves):
        return None
    numbers: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    iso: dict[str, np.ndarray] = {}
    layout = np.zeros(n, np.uint64)
    prefix_parts: dict[str, tuple[list[str], np.ndarray]] = {}
    for name, arr in leaves:
        kind = arr.type
        if pyarrow.types.is_null(kind):
            continue
        has = np.ones(n, bool) if arr.null_count == 0 else arr.is_valid().to_numpy(zero_copy_only=False)
        layout += has.astype(np.uint64) * np.uint64(jsonl.field_hash(name))
        if pyarrow.types.is_integer(kind) or pyarrow.types.is_floating(kind):
            values = arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
            if pyarrow.types.is_floating(kind) and bool((np.signbit(values) & (values == 0)).any()):
                return None  # -0.0 or an integer -0 (which is 0): they read alike here
            numbers[name] = (values, has)
        elif pyarrow.types.is_string(kind) or pyarrow.types.is_large_string(kind):
            if name == "k" and bool(pc.any(pc.is_in(arr, pyarrow.array(sorted(KINDS)))).as_py()):
                return None
            if name in DISCRIMINATOR_KEYS:
                enc = arr.dictionary_encode()
                words = enc.dictionary.to_pylist()
                idx = enc.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
                layout += np.array([jsonl.discriminator_hash(name, w) for w in words], np.uint64)[idx] * has
                prefix_parts[name] = (words, np.where(has, idx, -1))
                continue
            texts = arr.to_pylist() if name in TIME_KEYS else None
            if texts is not None:
                ts = np.array([np.nan if x is None else (absolute_time(x) or np.nan) for x in texts], np.float64)
                if not np.isnan(ts).all():
                    iso[name] = ts
                spelled = has & np.isnan(ts)
            else:
                spelled = has
            code = pc.index_in(arr, pyarrow.array(NONFINITE)).to_numpy(zero_copy_only=False)
            hit = spelled & ~np.isnan(code.astype(np.float64))
            if hit.any():
                values = np.full(n, np.nan)
                values[hit] = np.array([np.nan, np.inf, -np.inf])[code[hit].astype(np.int64)]
                numbers[name] = (values, hit)
    prefix, prefixes = _prefixes(n, prefix_parts)
    return Fields(n, numbers, iso, layout, prefix, prefixes)


def _plain(kind: Any) -> bool:
    """A type read from JSON as written (pyarrow takes strings that look like dates for dates)."""
    if pyarrow.types.is_temporal(kind):
        return False
    if pyarrow.types.is_struct(kind):
        return all(_plain(kind.field(i).type) for i in range(kind.num_fields))
    if pyarrow.types.is_list(kind) or pyarrow.types.is_large_list(kind):
        return _plain(kind.value_type)
    return True


def _leaves(out: list[tuple[str, Any]], at: str, names: list[str], arrays: list[Any], depth: int) -> bool:
    """Flatten struct columns into ``out`` as (name joined with "/", array); False when too deep."""
    if depth > MAX_DEPTH:
        return False
    for name, arr in zip(names, arrays):
        full = at + "/" + name if at else name
        if pyarrow.types.is_struct(arr.type):
            kids = [arr.type.field(i).name for i in range(arr.type.num_fields)]
            if not _leaves(out, full, kids, arr.flatten(), depth + 1):
                return False
        else:
            out.append((full, arr))
    return True


def _prefixes(n: int, parts: dict[str, tuple[list[str], np.ndarray]]) -> tuple[np.ndarray, list[str]]:
    """Per row, the index of its discriminator prefix, from each discriminator's distinct values
    and per-row codes into them (-1: none)."""
    if not parts:
        return np.zeros(n, np.int64), [""]
    keys = [k for k in DISCRIMINATOR_KEYS if k in parts]
    combined = np.zeros(n, np.int64)
    for k in keys:  # one number per combination of values
        words, codes = parts[k]
        combined = combined * (len(words) + 1) + (codes + 1)
    found, inverse = np.unique(combined, return_inverse=True)
    names = []
    for c in found.tolist():
        picked = []
        for k in reversed(keys):
            words, _ = parts[k]
            c, code = divmod(c, len(words) + 1)
            if code and words[code - 1]:
                picked.append(words[code - 1])
        names.append("/".join(reversed(picked)) + "/" if picked else "")
    index: dict[str, int] = {"": 0}
    ids = np.array([index.setdefault(p, len(index)) for p in names], np.int64)
    return ids[inverse.reshape(-1)], list(index)




def decode_all(reader: JsonlReader, pieces: list[bytes]) -> list[Parsed]:
    state, out = reader.new_state(), []
    for piece in pieces:
        parsed, state = reader.decode(piece, state, now=1.0)
        out.append(parsed)
    return out


def through_store(folder: Path, pieces: list[bytes]) -> None:
    store = Store(folder)
    store.open_stream("r", "log.jsonl", str(folder / "log.jsonl"), "k")
    at = 0
    for piece in pieces:
        store.ingest("r", "log.jsonl", piece, at, at + len(piece))
        at += len(piece)


def points_of(parsed: list[Parsed]) -> dict[str, tuple[np.ndarray, ...]]:
    out: dict[str, list[Any]] = {}
    for p in parsed:
        for seg in p.segments:
            for name, cols in seg.items():
                out.setdefault(name, []).append(cols)
    return {name: tuple(np.concatenate(c) for c in zip(*parts)) for name, parts in out.items()}


def timed(paths: dict[str, Callable[[], Any] | None], runs: int, budget: float) -> dict[str, float | None]:
    """Median seconds of each path over up to ``runs`` rounds, every round running each path once
    (so a busy machine slows them alike); fewer rounds once they pass ``budget`` seconds."""
    times: dict[str, list[float]] = {name: [] for name, fn in paths.items() if fn is not None}
    began = time.perf_counter()
    for done in range(runs):
        if done >= 2 and time.perf_counter() - began > budget:
            break
        for name, took in times.items():
            t0 = time.process_time()
            paths[name]()  # type: ignore[misc]
            took.append(time.process_time() - t0)
    return {name: statistics.median(times[name]) if name in times else None for name in paths}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=50_000)
    ap.add_argument("--metrics", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--chunk", type=int, default=1 << 20)
    ap.add_argument("--digits", type=int, default=0,
                    help="significant digits of the values (0: all of Python's repr, as a computed loss)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds in all, after 2 rounds")
    args = ap.parse_args()
    points = args.lines * args.metrics

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        foreign, mixed, native = write_files(folder, args.lines, args.metrics, args.digits)
        f_pieces = chunks(foreign.read_bytes(), args.chunk)
        m_pieces = chunks(mixed.read_bytes(), args.chunk)
        n_pieces = chunks(native.read_bytes(), args.chunk)
        hand, library, both, one = (configured(fast, bulk) for fast, bulk in
                                    ((True, False), (False, True), (True, True), (False, False)))
        have_arrow = pyarrow is not None
        for pieces in (f_pieces, m_pieces):  # every path gives the same points
            want = points_of(decode_all(one, pieces))
            for r in (hand, library, both) if have_arrow else (hand,):
                got = points_of(decode_all(r, pieces))
                assert want.keys() == got.keys()
                for name in want:
                    for x, y in zip(want[name], got[name]):
                        assert np.array_equal(x, y, equal_nan=True), name

        paths: dict[str, Callable[[], Any] | None] = {
            HAND: lambda: decode_all(hand, f_pieces),
            "foreign, pyarrow.json": (lambda: decode_all(library, f_pieces)) if have_arrow else None,
            "foreign, one object at a time": lambda: decode_all(one, f_pieces),
            "foreign, shipped reader through the Store": lambda: through_store(folder, f_pieces),
            MIXED_HAND: lambda: decode_all(hand, m_pieces),
            "mixed (mmcv), one object at a time": lambda: decode_all(one, m_pieces),
            "mixed (mmcv), pyarrow.json": (lambda: decode_all(library, m_pieces)) if have_arrow else None,
            "mixed (mmcv), hand-written + pyarrow.json": (lambda: decode_all(both, m_pieces)) if have_arrow else None,
            "native, reader": lambda: decode_all(hand, n_pieces),
            "native, through the Store": lambda: through_store(folder, n_pieces),
            "parse only: pyarrow.json.read_json": None,
            "parse only: polars.read_ndjson (1 thread)": None,
            "parse only: orjson, one call per chunk":
                lambda: [orjson.loads(b"[" + p[:-1].replace(b"\n", b",") + b"]") for p in f_pieces],
        }
        if have_arrow:
            opts = pajson.ReadOptions(use_threads=False, block_size=args.chunk + 1)
            paths["parse only: pyarrow.json.read_json"] = \
                lambda: [pajson.read_json(io.BytesIO(p), read_options=opts) for p in f_pieces]
        try:
            os.environ.setdefault("POLARS_MAX_THREADS", "1")
            import polars

            paths["parse only: polars.read_ndjson (1 thread)"] = \
                lambda: [polars.read_ndjson(io.BytesIO(p), infer_schema_length=None) for p in f_pieces]
        except ImportError:
            pass
        secs = timed(paths, args.runs, args.budget)

    digits = f"{args.digits} significant digits" if args.digits else "full repr"
    print(f"{args.lines:,} lines x {args.metrics} metrics ({digits}) = {points:,} points, {args.chunk:,}-byte chunks, "
          f"median of {args.runs} rounds, Python {sys.version.split()[0]}, numpy {np.__version__}"
          + (f", pyarrow {pyarrow.__version__}" if pyarrow is not None else ", no pyarrow"))
    print(f"{'path':<48} {'M points/s':>10} {'vs hand':>8}")
    for name, took in secs.items():
        base = secs[MIXED_HAND if name.startswith("mixed") else HAND]
        if took is None or base is None:
            print(f"{name:<48} {'-':>10} {'-':>8}")
        else:
            print(f"{name:<48} {points / took / 1e6:>10.2f} {base / took:>7.2f}x")


if __name__ == "__main__":
    main()
