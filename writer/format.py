"""The on-disk record format, defined once (docs/format.md).

Both the writer and the sidecar import this module: the key names, the record kinds, how
non-finite floats are spelled in strict JSON, and how JSONL that tailboard did not write is read.
Standard library only; orjson is used for encoding when it is importable.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Iterable, Mapping

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KIND",
    "K_HEADER",
    "K_CONFIG",
    "K_SCALARS",
    "K_VECTOR",
    "K_HIST",
    "K_TEXT",
    "K_IMAGE",
    "K_END",
    "KINDS",
    "STATUS_FINISHED",
    "STATUS_FAILED",
    "STEP_KEYS",
    "TIME_KEYS",
    "DISCRIMINATOR_KEYS",
    "NAN",
    "POS_INF",
    "NEG_INF",
    "encode",
    "encode_float",
    "decode_float",
    "to_json_value",
    "flatten",
    "foreign_scalars",
    "absolute_time",
    "discriminator_prefix",
    "STREAM_SUFFIX",
    "MAX_LINE_BYTES",
    "SCALARS_KEYS",
    "scalars_record",
]

FORMAT = "tailboard"
FORMAT_VERSION = 1

# Every tailboard record carries its kind under this key.
KIND = "k"
K_HEADER = "header"
K_CONFIG = "config"
K_SCALARS = "scalars"
K_VECTOR = "vector"
K_HIST = "hist"
K_TEXT = "text"
# an image: the PNG is a file beside the log, the record says where (docs/format.md)
K_IMAGE = "image"
K_END = "end"
KINDS = frozenset({K_HEADER, K_CONFIG, K_SCALARS, K_VECTOR, K_HIST, K_TEXT, K_IMAGE, K_END})

STATUS_FINISHED = "finished"
STATUS_FAILED = "failed"

STREAM_SUFFIX = ".jsonl"

#: A scalars record's keys in the order the writer writes them. The sidecar's fast path reads lines of
#: exactly this layout (``{"k":"scalars","step":S,"t":T,"v":{...}}``, no spaces) without building a
#: dict per line; anything else goes down its general path.
SCALARS_KEYS = ("k", "step", "t", "v")

#: The longest line (newline included) a reader keeps. The writer never writes a longer one and the
#: sidecar skips (and counts) longer lines as ``line_too_long``: one limit, both sides.
MAX_LINE_BYTES = 1 << 20

# Keys that carry the step / wall time in JSONL written by other tools, in order of preference (for
# steps: from the finest counter to the coarsest). A field of TIME_KEYS is the wall clock only when
# it holds an absolute time (``absolute_time``): ``"time": 0.41`` (mmcv, detectron2) is a duration,
# and a metric.
STEP_KEYS = ("step", "global_step", "iteration", "iter", "epoch")
TIME_KEYS = ("t", "time", "timestamp", "wall_time", "_timestamp")
#: Fields whose string value names the part of training a line belongs to: it prefixes the line's
#: metrics (``{"mode": "val", "loss": 1}`` is ``val/loss``), so train and val are separate series.
DISCRIMINATOR_KEYS = ("mode", "split", "phase", "stage")
#: Plausible absolute times: Unix seconds (2001-09 to 5138) or milliseconds (same years).
UNIX_SECONDS = (1e9, 1e11)
UNIX_MILLISECONDS = (1e12, 1e14)

# Strict JSON has no NaN or Infinity tokens. Python's json writes bare `NaN` (invalid JSON) and orjson
# writes `null` (silently losing the signal of a diverging run), so non-finite floats are spelled as
# these strings wherever a number is expected.
NAN = "NaN"
POS_INF = "Infinity"
NEG_INF = "-Infinity"
_NONFINITE = {NAN: math.nan, POS_INF: math.inf, NEG_INF: -math.inf}

try:  # orjson is several times faster; the writer must work without it.
    import orjson as _orjson
except ImportError:  # pragma: no cover - exercised in the no-orjson test via a subprocess
    _orjson = None  # type: ignore[assignment]


def encode_float(x: float) -> float | str:
    """A float as it is written: itself when finite, else one of NAN / POS_INF / NEG_INF."""
    if math.isfinite(x):
        return x
    if x != x:
        return NAN
    return POS_INF if x > 0 else NEG_INF


def decode_float(v: Any) -> float | None:
    """A written number back as a float; None when ``v`` is not a number at all.

    Booleans are not numbers here (``True`` is not a metric value of 1.0).
    """
    if type(v) is float or type(v) is int:
        return float(v)
    if isinstance(v, str):
        return _NONFINITE.get(v)
    return None


def to_json_value(v: Any) -> Any:
    """Recursively replace non-finite floats inside lists and dicts by their string spelling."""
    if type(v) is float:
        return v if math.isfinite(v) else encode_float(v)
    if isinstance(v, dict):
        return {k: to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    return v


def _json_default(o: Any) -> Any:
    # Objects neither encoder knows (paths, enums, numpy scalars on the json path) become text.
    item = getattr(o, "item", None)
    if callable(item):
        try:
            return to_json_value(item())
        except Exception:
            pass
    return str(o)


def encode(record: Mapping[str, Any]) -> bytes:
    """One record as one complete line of strict JSON, newline included.

    The caller has already replaced non-finite floats (``encode_float`` / ``to_json_value``); this
    function does not walk the record again, so the hot path pays for that walk once.
    """
    if _orjson is not None:
        return _orjson.dumps(record, default=_json_default, option=_orjson.OPT_APPEND_NEWLINE)
    text = json.dumps(record, separators=(",", ":"), allow_nan=False, default=_json_default)
    return text.encode("utf-8") + b"\n"


#: Types that are never mappings: ``flatten`` asks no abstract-class check of them (that check, per
#: field of every line, was most of the time of reading another program's JSON lines of mixed layouts).
_LEAVES = frozenset({float, int, str, bool, type(None), list})


def flatten(obj: Mapping[str, Any], prefix: str = "", sep: str = "/") -> dict[str, Any]:
    """Nested dicts flattened to one level, keys joined with "/": {"a": {"b": 1}} -> {"a/b": 1}."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{sep}{key}" if prefix else key if type(key) is str else str(key)
        kind = type(value)
        if kind is dict or (kind not in _LEAVES and isinstance(value, Mapping)):
            out.update(flatten(value, name, sep))
        else:
            out[name] = value
    return out


def absolute_time(v: Any) -> float | None:
    """``v`` as Unix seconds when it is a plausible absolute time: a number of Unix seconds or
    milliseconds (``UNIX_SECONDS``, ``UNIX_MILLISECONDS``), or an ISO 8601 date-time string of the
    same years (local time unless it names its zone, as CSV logs are read). None for anything
    else: a duration, text, a boolean."""
    if type(v) is float or type(v) is int:
        x = float(v)
        if UNIX_SECONDS[0] <= x < UNIX_SECONDS[1]:
            return x
        if UNIX_MILLISECONDS[0] <= x < UNIX_MILLISECONDS[1]:
            return x / 1000.0
        return None
    if type(v) is not str or len(v) < 10 or not v[:4].isdigit():
        return None
    try:
        d = datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
    except ValueError:
        return None
    try:
        x = d.timestamp()
    except (OverflowError, OSError, ValueError):  # a year the platform's time cannot hold
        return None
    return x if UNIX_SECONDS[0] <= x < UNIX_SECONDS[1] else None


def discriminator_prefix(flat: Mapping[str, Any]) -> str:
    """The prefix a line's metrics take from its ``DISCRIMINATOR_KEYS`` fields: "val/" for
    ``{"mode": "val"}``, "" when none holds a non-empty string."""
    parts = [v for v in (flat.get(k) for k in DISCRIMINATOR_KEYS) if type(v) is str and v]
    return "/".join(parts) + "/" if parts else ""


def foreign_scalars(
    obj: Mapping[str, Any], step_keys: Iterable[str] = STEP_KEYS, time_keys: Iterable[str] = TIME_KEYS
) -> tuple[float | None, float | None, dict[str, float]]:
    """Read a JSON object that tailboard did not write as (step, wall_time, metrics).

    Nested objects are flattened with "/"; every numeric field (or non-finite spelling) that is
    not the step, an absolute time or a discriminator is a metric, named with the discriminators'
    prefix (``discriminator_prefix``); everything else is ignored. ``step`` is the first of
    ``step_keys`` present with a numeric value (the finer ones come first; the others stay
    metrics); when none is, or that value is NaN or +-Infinity (then a metric), it is None and
    the reader numbers the line itself. ``wall_time`` is
    the first of ``time_keys`` holding an absolute time (``absolute_time``); a field of
    ``time_keys`` holding anything else (a duration) is a metric like any other.
    """
    flat = flatten(obj)
    step = None
    for key in step_keys:
        v = decode_float(flat.get(key))
        if v is not None:
            if math.isfinite(v):  # NaN or +-Infinity: no place on an axis, a line with no step
                step = v
                del flat[key]
            break
    wall = None
    for key in time_keys:
        if key in flat:
            t = absolute_time(flat[key])
            if t is not None:
                del flat[key]
                wall = t if wall is None else wall
    prefix = discriminator_prefix(flat)
    metrics: dict[str, float] = {}
    for key, value in flat.items():
        if type(value) is str and key in DISCRIMINATOR_KEYS:
            continue
        v = decode_float(value)
        if v is not None:
            metrics[prefix + key] = v
    return step, wall, metrics


def scalars_record(step: int | float, t: float, values: dict[str, Any]) -> dict[str, Any]:
    """A scalars record, its keys in the order of ``SCALARS_KEYS``."""
    return {KIND: K_SCALARS, "step": step, "t": t, "v": values}
