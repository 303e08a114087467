"""Turning what a training loop hands to ``log()`` into record fields, and keeping them writable.

``classify`` sorts a value into a record kind. The ``clean_*`` functions make writable what orjson
or the strict reader would refuse (integers beyond 64 bits, non-string keys, lone surrogates, dicts
that contain themselves or nest without end), noting each repair or loss by name; the writer calls
them only when the fast path fails. ``fit_items`` and ``fit_text`` keep a record within the line
limit the reader enforces.

Standard library only: numpy and torch values are recognised by their type's module, never by
importing those libraries (``import tailboard`` must stay cheap and must not pull them in).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Iterable, Mapping

from .format import NAN, NEG_INF, POS_INF, encode_float, to_json_value

__all__ = [
    "Histogram",
    "classify",
    "histogram_record",
    "is_tensor",
    "is_ndarray",
    "DEFAULT_BINS",
    "MAX_DEPTH",
    "as_step",
    "repair_text",
    "clean_key",
    "clean_scalar",
    "clean_json",
    "fit_items",
    "fit_text",
]

DEFAULT_BINS = 30

#: Deepest nesting of dicts and lists kept in a logged dict or a config (orjson itself stops at 254);
#: deeper parts are dropped and counted.
MAX_DEPTH = 64

# What a record holds as an integer: orjson writes int64 and uint64, and steps are int64.
_INT_MIN, _UINT_MAX = -(1 << 63), (1 << 64) - 1
STEP_MIN, STEP_MAX = -(1 << 63), (1 << 63) - 1

# A problem met while cleaning a value: (name, what happened, whether something was lost).
Problem = tuple[str, str, bool]


class Histogram:
    """Ask ``log()`` for a histogram of ``values`` (a tensor, array or sequence) with ``bins`` bins."""

    __slots__ = ("values", "bins")

    def __init__(self, values: Any, bins: int = DEFAULT_BINS) -> None:
        if not isinstance(bins, int) or bins < 1:
            raise ValueError("bins must be a positive integer")
        self.values = values
        self.bins = bins


def is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "dim")


def is_ndarray(x: Any) -> bool:
    t = type(x)
    return t.__module__ == "numpy" and t.__name__ == "ndarray"


def _is_numpy_scalar(x: Any) -> bool:
    return type(x).__module__ == "numpy" and hasattr(x, "item") and getattr(x, "ndim", 1) == 0


def _flat_floats(x: Any) -> list[float]:
    """Every element of a tensor / array / nested sequence as Python floats."""
    if is_tensor(x):
        return [float(v) for v in x.detach().reshape(-1).to("cpu").tolist()]
    if is_ndarray(x):
        return [float(v) for v in x.reshape(-1).tolist()]
    out: list[float] = []
    stack = [x]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
        else:
            out.append(float(item))
    return out


def histogram_record(values: Any, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """The fields of a ``hist`` record: equal-width bins over the finite values (docs/format.md)."""
    data = _flat_floats(values)
    finite = [v for v in data if math.isfinite(v)]
    n = len(finite)
    if n == 0:
        return {"lo": 0.0, "hi": 0.0, "counts": [], "n": 0, "sum": 0.0, "sumsq": 0.0, "min": None,
                "max": None, "nonfinite": len(data)}
    lo, hi = min(finite), max(finite)
    counts = [0] * bins
    if hi > lo:
        scale = bins / (hi - lo)
        last = bins - 1
        for v in finite:
            i = int((v - lo) * scale)
            counts[i if i < last else last] += 1
    else:
        counts[bins // 2] = n
        lo, hi = lo - 0.5, hi + 0.5
    s = math.fsum(finite)
    out = {
        "lo": lo,
        "hi": hi,
        "counts": counts,
        "n": n,
        "sum": encode_float(s),
        "sumsq": encode_float(math.fsum(v * v for v in finite)),
        "min": min(finite),
        "max": max(finite),
    }
    if len(data) != n:
        out["nonfinite"] = len(data) - n
    return out


def classify(x: Any) -> tuple[str, Any]:
    """What a logged value is: ("scalar", float|int|str-spelling), ("vector", list), ("hist", fields),
    ("text", str), ("tensor", tensor) for a value to copy off the device first, or ("bad", reason)."""
    t = type(x)
    if t is float:
        return "scalar", x if x - x == 0 else encode_float(x)
    if t is int or t is bool:
        return "scalar", int(x)
    if t is str:
        return "text", x
    if isinstance(x, Histogram):
        return "hist", histogram_record(x.values, x.bins)
    if is_tensor(x):
        if getattr(x, "is_cuda", False) or getattr(getattr(x, "device", None), "type", "cpu") not in ("cpu", "meta"):
            return "tensor", x
        dim = x.dim()
        if dim == 0:
            return _item(x.item(), x)
        if dim == 1:
            return "vector", to_json_value([float(v) for v in x.detach().tolist()])
        return "hist", histogram_record(x)
    if _is_numpy_scalar(x):
        return _item(x.item(), x)
    if is_ndarray(x):
        if x.ndim == 0:
            return classify(x.item())
        if x.ndim == 1:
            return "vector", to_json_value([float(v) for v in x.tolist()])
        return "hist", histogram_record(x)
    if isinstance(x, (list, tuple)):
        try:
            return "vector", to_json_value([float(v) for v in x])
        except OverflowError:
            return "bad", "a number too large for a float"
        except (TypeError, ValueError):
            return "bad", "a sequence of non-numbers"
    if isinstance(x, float):  # float subclasses
        return classify(float(x))
    if isinstance(x, int):
        return "scalar", int(x)
    return "bad", f"unsupported value type {t.__name__}"


def _item(v: Any, x: Any) -> tuple[str, Any]:
    """A 0-d tensor's or numpy scalar's ``item()`` as a scalar field."""
    if isinstance(v, float):
        return "scalar", encode_float(v)
    if isinstance(v, int):  # bool included: true is 1
        return "scalar", int(v)
    return "bad", f"unsupported {type(x).__name__} of {type(v).__name__}"


def as_step(x: Any) -> int | None:
    """``x`` as a step (an int64), or None when it is not an integer: NaN, infinite, fractional,
    beyond 64 bits, or not a number. Integer-valued floats (``3.0``) and numpy / torch integers
    count."""
    if isinstance(x, (str, bytes)):
        return None
    try:
        i = operator.index(x)
    except TypeError:
        try:
            f = float(x)
        except Exception:
            return None
        if not f.is_integer():  # False for NaN and infinities too
            return None
        i = int(f)
    except Exception:
        return None
    return i if STEP_MIN <= i <= STEP_MAX else None


# ---- cleaning: what orjson refuses, made writable (only on the slow path) ---------------------


def repair_text(s: str) -> str:
    """``s`` made valid UTF-8: a surrogate pair becomes its character, a lone surrogate U+FFFD."""
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _is_utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clean_key(key: Any, problems: list[Problem]) -> str:
    """A key as it is written: ``str(key)`` for a non-string, lone surrogates repaired (noted)."""
    name = key if type(key) is str else str(key)
    if not _is_utf8(name):
        name = repair_text(name)
        problems.append((name, "lone surrogates in the name replaced by U+FFFD", False))
    return name


def clean_scalar(name: str, x: Any, problems: list[Problem]) -> Any:
    """A scalar field as it is written, or None when it cannot be (noted as lost). An integer that
    does not fit in 64 bits becomes a float."""
    t = type(x)
    if t is float:
        return encode_float(x)
    if (t is int and _INT_MIN <= x <= _UINT_MAX) or (t is str and x in (NAN, POS_INF, NEG_INF)):
        return x
    if t is int:
        try:
            return float(x)
        except OverflowError:
            problems.append((name, "an integer too large even for a float", True))
            return None
    problems.append((name, f"unsupported value type {t.__name__}", True))
    return None


_DROP = object()


def clean_json(
    x: Any, name: str, problems: list[Problem], depth: int = 0, parents: tuple[int, ...] = ()
) -> Any:
    """A copy of ``x`` that orjson and the strict JSON reader accept, or ``_DROP``.

    dicts (any Mapping) and lists / tuples are walked to ``MAX_DEPTH`` levels; a part deeper than
    that or that contains itself is dropped. Non-finite floats are spelled out, integers beyond 64
    bits become floats, keys become strings, lone surrogates are repaired, numpy / torch scalars
    become their value, an Enum its value, a dataclass a dict of its fields, anything else its
    ``str()``. Every repair or loss is noted in ``problems`` under the name of the part.
    """
    t = type(x)
    if t is str:
        if _is_utf8(x):
            return x
        problems.append((name, "lone surrogates replaced by U+FFFD", False))
        return repair_text(x)
    if t is float:
        return encode_float(x)
    if t is bool or x is None:
        return x
    if t is int:
        if _INT_MIN <= x <= _UINT_MAX:
            return x
        try:
            return float(x)
        except OverflowError:
            problems.append((name, "an integer too large even for a float", True))
            return _DROP
    if isinstance(x, (Mapping, list, tuple)) or hasattr(t, "__dataclass_fields__"):
        if depth >= MAX_DEPTH:
            problems.append((name, f"nested deeper than {MAX_DEPTH} levels", True))
            return _DROP
        if id(x) in parents:
            problems.append((name, "it contains itself", True))
            return _DROP
        inner = parents + (id(x),)
        if isinstance(x, (list, tuple)):
            items = [clean_json(v, f"{name}/{i}", problems, depth + 1, inner) for i, v in enumerate(x)]
            return [v for v in items if v is not _DROP]
        pairs: Iterable[tuple[Any, Any]]
        if isinstance(x, Mapping):
            pairs = x.items()
        else:  # a dataclass instance
            pairs = ((f, getattr(x, f)) for f in t.__dataclass_fields__)
        out: dict[str, Any] = {}
        for k, v in pairs:
            try:
                key = clean_key(k, problems)
            except Exception:
                problems.append((f"{name}/?", "a key that cannot be made a string", True))
                continue
            c = clean_json(v, f"{name}/{key}", problems, depth + 1, inner)
            if c is not _DROP:
                out[key] = c
        return out
    if isinstance(x, float):  # float and int subclasses, Enum members included
        return clean_json(float(x), name, problems, depth, parents)
    if isinstance(x, int):
        return clean_json(int(x), name, problems, depth, parents)
    value = getattr(x, "value", _DROP) if hasattr(type(x), "_member_map_") else _DROP  # an Enum member
    if value is _DROP and callable(getattr(x, "item", None)):
        try:
            value = x.item()  # numpy / torch scalars
        except Exception:
            pass
    if value is not _DROP and value is not x:
        return clean_json(value, name, problems, depth + 1, parents)
    try:
        return clean_json(str(x), name, problems, depth, parents)
    except Exception as e:
        problems.append((name, f"{t.__name__} cannot be written ({type(e).__name__})", True))
        return _DROP


# ---- fitting records into the line limit --------------------------------------------------------


def fit_items(
    make: Callable[[dict[str, Any]], Any],
    items: list[tuple[str, Any]],
    encode: Callable[[Any], bytes],
    limit: int,
) -> tuple[list[bytes], list[tuple[str, str]]]:
    """Lines of the records ``make(part)`` over consecutive parts of ``items``, each line at most
    ``limit`` bytes, in order; and the items that fit in no line (alone too long, or refused by
    ``encode``) with why. A part that does not fit is halved, so a rare long record costs a few
    encodes and never loses an item that fits alone."""
    lines: list[bytes] = []
    lost: list[tuple[str, str]] = []
    todo = [items]
    while todo:
        part = todo.pop()
        line: bytes | None
        try:
            line = encode(make(dict(part)))
            why = f"its line would be {len(line)} bytes, over the limit of {limit}"
        except (TypeError, ValueError) as e:
            line, why = None, f"it cannot be encoded ({e})"
        if line is not None and len(line) <= limit:
            lines.append(line)
        elif len(part) == 1:
            lost.append((part[0][0], why))
        elif part:
            mid = len(part) // 2
            todo.append(part[mid:])
            todo.append(part[:mid])
    return lines, lost


def fit_text(
    make: Callable[[str], Any], text: str, encode: Callable[[Any], bytes], limit: int
) -> bytes | None:
    """The line of ``make(text)`` with ``text`` cut, and marked as cut, so that the line is at most
    ``limit`` bytes; None when even an empty text does not fit."""
    marker = (f"\n[... tailboard: cut to fit the line limit of {limit} bytes; "
              f"the text had {len(text)} characters]")
    empty = len(encode(make(marker)))
    if empty > limit:
        return None
    whole = len(encode(make(text))) - len(encode(make("")))
    keep = len(text) * (limit - empty) // max(whole, 1)  # the first guess: bytes per character alike
    while True:
        line = encode(make(text[:keep] + marker))
        over = len(line) - limit
        if over <= 0:
            return line
        keep = max(0, keep - over)  # each character is at least one byte: the next try fits
