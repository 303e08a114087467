"""Turning what a training loop hands to ``log()`` into record fields.

Standard library only: numpy and torch values are recognised by their type's module, never by
importing those libraries (``import tailboard`` must stay cheap and must not pull them in).
"""

from __future__ import annotations

import math
from typing import Any

from .format import encode_float, to_json_value

__all__ = ["Histogram", "classify", "histogram_record", "is_tensor", "is_ndarray", "DEFAULT_BINS"]

DEFAULT_BINS = 30


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
            v = x.item()
            return "scalar", encode_float(float(v)) if isinstance(v, float) else v
        if dim == 1:
            return "vector", to_json_value([float(v) for v in x.detach().tolist()])
        return "hist", histogram_record(x)
    if _is_numpy_scalar(x):
        v = x.item()
        if isinstance(v, float):
            return "scalar", encode_float(v)
        if isinstance(v, (int, bool)):
            return "scalar", int(v)
        return "bad", f"unsupported numpy scalar {type(x).__name__}"
    if is_ndarray(x):
        if x.ndim == 0:
            return classify(x.item())
        if x.ndim == 1:
            return "vector", to_json_value([float(v) for v in x.tolist()])
        return "hist", histogram_record(x)
    if isinstance(x, (list, tuple)):
        try:
            return "vector", to_json_value([float(v) for v in x])
        except (TypeError, ValueError):
            return "bad", "a sequence of non-numbers"
    if isinstance(x, float):  # float subclasses
        return classify(float(x))
    if isinstance(x, int):
        return "scalar", int(x)
    return "bad", f"unsupported value type {t.__name__}"
