"""TensorBoard events one at a time: those outside the bulk scalar layout (``tfscalars``).

Scalars, histograms, texts, images, hparams, the file version and restarts, read from the wire with
``protowire`` as the ``tfevents`` module docstring lists them; anything else is counted.

An image (``Summary.Value.image``, what ``add_image`` writes, or an "images" string tensor of TF2:
width, height, then one encoded image per sample) becomes ``{"k": "image", ...}`` with its PNG bytes
in ``png`` (base64); the store keeps those bytes in memory, bounded (``store/images.py``). Width,
height and channels are read from the PNG's own header. An image that is not a PNG (TF1 could write
JPEG or GIF) is counted as ``unsupported_image``.
"""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import numpy as np
from tailboard.format import K_CONFIG, K_HIST, K_TEXT, KIND, encode_float, to_json_value
from tailboard.format import K_IMAGE

from ..ingest import Parsed
from . import protowire as pw

__all__ = ["DT_DOUBLE", "DT_FLOAT", "SummaryEvents"]

DT_FLOAT, DT_DOUBLE, DT_INT32, DT_STRING, DT_INT64, DT_BFLOAT16, DT_HALF = 1, 2, 3, 7, 9, 14, 19
_CONTENT_DTYPES = {DT_FLOAT: "<f4", DT_DOUBLE: "<f8", DT_INT32: "<i4", DT_INT64: "<i8", DT_HALF: "<f2",
                   DT_BFLOAT16: "<u2"}
_SESSION_START = 1
_MAX_NESTING = 32  # of hparams values (structs and lists)
_MAX_TENSOR_VALUES = 1 << 20  # a shape that asks for more is not a scalar or a histogram


def _text(b: pw.Value) -> str:
    return b.decode("utf-8", "replace") if type(b) is bytes else ""


def _last(f: dict[int, list[pw.Value]], number: int) -> pw.Value | None:
    got = f.get(number)
    return got[-1] if got else None


def _message(f: dict[int, list[pw.Value]], number: int) -> dict[int, list[pw.Value]]:
    """A nested message field (read as empty when absent)."""
    got = _last(f, number)
    if got is None:
        return {}
    if type(got) is not bytes:
        raise pw.WireError(f"field {number} must be a message")
    return pw.fields(got)


def _tensor_numbers(t: dict[int, list[pw.Value]]) -> tuple[int, np.ndarray]:
    """A numeric TensorProto's dtype and values as float64, shaped; ``ValueError`` for others."""
    dtype = _last(t, 1) or 0
    dims = [pw.as_sint64(_last(pw.fields(d), 1) or 0) for d in _message(t, 2).get(2, []) if type(d) is bytes]
    count = math.prod(dims)
    content = _last(t, 4)
    if dtype not in _CONTENT_DTYPES:
        raise ValueError(f"dtype {dtype!r}")
    if count > _MAX_TENSOR_VALUES:
        raise ValueError(f"a tensor of shape {dims}")
    if type(content) is bytes and content:
        if len(content) % int(_CONTENT_DTYPES[dtype][-1]):
            raise ValueError("tensor_content holds a partial value")
        raw = np.frombuffer(content, dtype=_CONTENT_DTYPES[dtype])
        values = ((raw.astype(np.uint32) << 16).view(np.float32) if dtype == DT_BFLOAT16 else raw).astype(np.float64)
    elif dtype == DT_FLOAT:
        values = pw.packed_floats(t.get(5, []))
    elif dtype == DT_DOUBLE:
        values = pw.packed_doubles(t.get(6, []))
    elif dtype in (DT_INT32, DT_INT64):
        values = np.array([pw.as_sint64(x) for x in pw.packed_varints(t.get(7 if dtype == DT_INT32 else 10, []))],
                          dtype=np.float64)
    else:  # half and bfloat16: the 16 bits in an int32
        bits = np.array(pw.packed_varints(t.get(13, [])), dtype=np.uint64).astype(np.uint16)
        values = ((bits.astype(np.uint32) << 16).view(np.float32) if dtype == DT_BFLOAT16
                  else bits.view(np.float16)).astype(np.float64)
    if values.shape[0] < count:  # TensorFlow's short form: the last value repeats (none: zeros)
        fill = values[-1] if values.shape[0] else 0.0
        values = np.concatenate((values, np.full(count - values.shape[0], fill)))
    if values.shape[0] != count:
        raise ValueError(f"{values.shape[0]} values for shape {dims}")
    return dtype, values.reshape(dims) if dims else values


def _pb_value(b: pw.Value, depth: int = 0) -> Any:
    """A ``google.protobuf.Value`` as the JSON value it stands for."""
    if depth > _MAX_NESTING or type(b) is not bytes:
        raise pw.WireError("an hparams value nested too deeply, or not a message")
    f = pw.fields(b)
    if 2 in f:
        return pw.as_double(f[2][-1])
    if 3 in f:
        return _text(f[3][-1])
    if 4 in f:
        return bool(f[4][-1])
    if 5 in f:
        return _pb_map(_message(f, 5).get(1, []), depth + 1)
    if 6 in f:
        return [_pb_value(x, depth + 1) for x in _message(f, 6).get(1, [])]
    return None


def _pb_map(entries: list[pw.Value], depth: int) -> dict[str, Any]:
    out = {}
    for entry in entries:
        e = pw.fields(entry) if type(entry) is bytes else {}
        out[_text(_last(e, 1) or b"")] = _pb_value(_last(e, 2) or b"", depth)
    return out


def _json_floats(x: np.ndarray) -> list[Any]:
    """Floats as a JSON list, non-finite ones spelled out (checked for the whole array at once)."""
    out: list[Any] = x.tolist()
    return out if np.isfinite(x).all() else [encode_float(v) for v in out]


def _hist_record(step: int, t: float, name: str, lo: float, hi: float, counts: np.ndarray, edges: np.ndarray,
                 extra: dict[str, float]) -> dict[str, Any]:
    whole = bool(np.all(np.abs(counts) < 2.0**53) and np.all(counts == np.floor(counts)))
    rec = {KIND: K_HIST, "step": step, "t": t, "name": name, "lo": encode_float(lo), "hi": encode_float(hi),
           "counts": counts.astype(np.int64).tolist() if whole else _json_floats(counts),
           "edges": _json_floats(edges)}
    rec.update({k: encode_float(v) for k, v in extra.items()})
    return rec


_PNG_CHANNELS = {0: 1, 4: 2, 2: 3, 6: 4, 3: 3}  # colour type -> channels (a palette shows as RGB)


def _image_record(step: int, t: float, name: str, data: pw.Value | None) -> dict[str, Any] | None:
    """The image record of an encoded image, or None when it is not a PNG with a readable header."""
    if type(data) is not bytes or len(data) < 33 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    w, h, _, colour = struct.unpack(">IIBB", data[16:26])
    c = _PNG_CHANNELS.get(colour)
    if c is None or not (0 < w < 1 << 31 and 0 < h < 1 << 31):
        return None
    return {KIND: K_IMAGE, "step": step, "t": t, "name": name, "w": w, "h": h, "c": c,
            "png": base64.b64encode(data).decode("ascii")}


class SummaryEvents:
    """What the events of one chunk that are not in the bulk scalar layout hold, in record order."""

    def __init__(self, parsed: Parsed, plugins: dict[str, str], now: float) -> None:
        self.parsed = parsed
        self.plugins = plugins
        self.now = now
        self.points: dict[str, tuple[list[int], list[float], list[float], list[float]]] = {}
        self.others: list[tuple[int, dict[str, Any]]] = []
        self.restarts: list[int] = []  # records holding SessionLog.START
        self.kept: list[int] = []  # records that gave points, histograms or texts
        self.last: tuple[int, float, float] | None = None  # (record, step, time) of the last of them
        self.last_config: tuple[int, float] | None = None  # (record, time)
        self.configs = 0  # hparams records
        self.file_version: str | None = None

    def event(self, i: int, data: bytes) -> None:
        skip = self.parsed.skip
        try:
            f = pw.fields(data)
            wall_v, step_v = _last(f, 1), _last(f, 2)
            wall = pw.as_double(wall_v) if wall_v is not None else 0.0
            step = pw.as_sint64(step_v) if step_v is not None else 0
            if wall == 0.0 or not math.isfinite(wall):
                wall = self.now
            if 5 in f:
                values = [v for s in f[5] for v in (pw.fields(s).get(1, []) if type(s) is bytes else [])]
                kept = False
                for value in values:
                    try:
                        kept = self._value(i, step, wall, value) or kept
                    except (ValueError, TypeError):  # this value only: the event's others are read
                        skip("malformed_event")
                if kept:
                    self.kept.append(i)
                    self.last = (i, float(step), wall)
            elif 3 in f:
                self.file_version = _text(f[3][-1])
            elif 7 in f and _last(_message(f, 7), 1) == _SESSION_START:
                self.restarts.append(i)
            else:
                skip("unsupported_event")
        except (ValueError, TypeError):  # WireError, or a value of the wrong wire type
            skip("malformed_event")

    def _value(self, i: int, step: int, wall: float, raw: pw.Value) -> bool:
        """One summary value; whether it gave a point, a histogram or a text."""
        skip = self.parsed.skip
        if type(raw) is not bytes:
            raise pw.WireError("a summary value must be a message")
        v = pw.fields(raw)
        tag = _text(_last(v, 1) or b"")
        meta = _message(v, 9)
        plugin_data = _message(meta, 1)
        plugin = self.plugins.get(tag)
        if plugin is None:  # a tag's first plugin holds for good, as in TensorBoard
            plugin = _text(_last(plugin_data, 1) or b"")
            if plugin:
                self.plugins[tag] = plugin
        if 2 in v:
            self._point(tag, i, step, pw.as_float(v[2][-1]), wall)
            return True
        if 5 in v:
            h = _message(v, 5)
            mn, mx, num, total, squares = (pw.as_double(_last(h, k) or bytes(8)) for k in (1, 2, 3, 4, 5))
            limits, counts = pw.packed_doubles(h.get(6, [])), pw.packed_doubles(h.get(7, []))
            if limits.shape != counts.shape:
                skip("bad_value")
                return False
            full = np.flatnonzero(counts > 0)
            if full.shape[0]:  # TensorBoard's reading: outer empty buckets dropped, min and max as the ends
                a, b = int(full[0]), int(full[-1])
                counts, edges = counts[a : b + 1], np.concatenate(([mn], limits[a:b], [mx]))
            else:
                counts, edges = counts[:0], counts[:0]
            extra = {"n": num, "sum": total, "sumsq": squares, "min": mn, "max": mx}
            self.others.append((i, _hist_record(step, wall, tag, mn, mx, counts, edges, extra)))
            return True
        if 4 in v or (plugin == "images" and 8 in v):
            encoded: list[Any]
            if 4 in v:
                encoded = [_last(_message(v, 4), 4)]
            else:  # TF2: [width, height, image, image, ...] as strings
                t = _message(v, 8)
                encoded = list(t.get(8, []))[2:] if (_last(t, 1) or 0) == DT_STRING else []
            kept = False
            for k, data in enumerate(encoded):
                rec = _image_record(step, wall, tag if k == 0 else f"{tag}/{k}", data)
                if rec is None:
                    skip("unsupported_image")
                    continue
                self.others.append((i, rec))
                kept = True
            return kept
        if plugin == "hparams":
            content = _last(plugin_data, 2)
            hparams = pw.fields(content) if type(content) is bytes else {}
            if 3 not in hparams:  # the experiment or the session's end
                skip("unsupported_summary")
                return False
            config = _pb_map(_message(hparams, 3).get(1, []), 0)  # session_start_info.hparams
            self.others.append((i, {KIND: K_CONFIG, "t": wall, "config": to_json_value(config)}))
            self.last_config = (i, wall)
            self.configs += 1
            return False
        if 8 in v and plugin in ("scalars", "histograms", "text"):
            t = _message(v, 8)
            try:
                if plugin == "text":
                    if (_last(t, 1) or 0) != DT_STRING:
                        raise ValueError("text must be a string tensor")
                    text = "\n".join(_text(s) for s in t.get(8, []))
                    self.others.append((i, {KIND: K_TEXT, "step": step, "t": wall, "name": tag, "text": text}))
                    return True
                _, values = _tensor_numbers(t)
                if plugin == "scalars":
                    if values.size != 1:
                        raise ValueError("a scalar holds one value")
                    self._point(tag, i, step, float(values.ravel()[0]), wall)
                    return True
                if values.ndim != 2 or values.shape[1] != 3:
                    raise ValueError("a histogram tensor is [k, 3]")
                left, right, counts = values[:, 0], values[:, 1], values[:, 2]
                lo = float(left[0]) if left.shape[0] else 0.0
                hi = float(right[-1]) if left.shape[0] else 0.0
                edges = np.append(left, hi) if left.shape[0] else left
                extra = {"n": float(counts.sum()), "min": lo, "max": hi}
                self.others.append((i, _hist_record(step, wall, tag, lo, hi, counts, edges, extra)))
                return True
            except ValueError:
                skip("bad_value")
                return False
        skip("unsupported_summary")
        return False

    def _point(self, tag: str, i: int, step: int, value: float, wall: float) -> None:
        col = self.points.get(tag)
        if col is None:
            col = self.points[tag] = ([], [], [], [])
        col[0].append(i)
        col[1].append(float(step))
        col[2].append(value)
        col[3].append(wall)

