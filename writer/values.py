"""Turning what a training loop hands to ``log()`` into record fields, and keeping them writable.

``classify`` sorts a value into a record kind. The ``clean_*`` functions make writable what orjson
or the strict reader would refuse (integers beyond 64 bits, non-string keys, lone surrogates, dicts
that contain themselves or nest without end), noting each repair or loss by name; the writer calls
them only when the fast path fails. ``fit_items`` and ``fit_text`` keep a record within the line
limit the reader enforces. ``image_pixels`` turns an ``Image`` into 8-bit rows for ``png.encode``.

Standard library only: numpy and torch values are recognised by their type's module, never by
importing those libraries (``import tailboard`` must stay cheap and must not pull them in).
"""

from __future__ import annotations

import math
import operator
from typing import Any, Callable, Iterable, Mapping

from .format import K_IMAGE, NAN, NEG_INF, POS_INF, encode_float, to_json_value

__all__ = [
    "Histogram",
    "Image",
    "IMAGE_FORMATS",
    "K_IMAGE",
    "MAX_IMAGE_PIXELS",
    "classify",
    "image_pixels",
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


#: Layouts of an image's dimensions ``Image`` takes (TensorBoard's ``dataformats``).
IMAGE_FORMATS = ("HW", "HWC", "CHW")
#: Largest image written, in pixels (16 MP): a larger one is dropped and counted, not encoded.
MAX_IMAGE_PIXELS = 1 << 24
_PIL_MODES = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


class Image:
    """Ask ``log()`` for an image: ``data`` an array or tensor of HW, HWC or CHW (1, 2, 3 or 4
    channels: grey, grey + alpha, RGB, RGBA), or a PIL image. Integers are taken as 0..255 (clipped),
    floats as 0..1 (scaled, clipped; NaN is 0), booleans as 0 or 255. A tensor on a device is copied
    to the host when the image is written. ``dataformats`` names the layout; without it a 3-D tensor
    is CHW and a 3-D array HWC when their channels are where that says (1, 3 or 4 of them), else
    the other. A leading dimension of 1 (a batch of one) is left out."""

    __slots__ = ("data", "dataformats")

    def __init__(self, data: Any, dataformats: str | None = None) -> None:
        if dataformats is not None and dataformats not in IMAGE_FORMATS:
            raise ValueError(f"dataformats must be one of {', '.join(IMAGE_FORMATS)}, not {dataformats!r}")
        self.data = data
        self.dataformats = dataformats


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
    ("text", str), ("image", Image), ("tensor", tensor) for a value to copy off the device first, or
    ("bad", reason)."""
    t = type(x)
    if t is float:
        return "scalar", x if x - x == 0 else encode_float(x)
    if t is int or t is bool:
        return "scalar", int(x)
    if t is str:
        return "text", x
    if isinstance(x, Histogram):
        return "hist", histogram_record(x.values, x.bins)
    if isinstance(x, Image):
        return "image", x
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


def _layout(shape: tuple[int, ...], given: str | None, channels_first: bool) -> str:
    """The layout of an image of ``shape`` (a leading 1 already left out); ``ValueError`` if none fits."""
    if given is not None:
        if len(shape) != len(given):
            raise ValueError(f"an image of shape {list(shape)} is not {given}")
        return given
    if len(shape) == 2:
        return "HW"
    if len(shape) != 3:
        raise ValueError(f"an image has 2 or 3 dimensions (HW, HWC, CHW), not shape {list(shape)}")
    first, last = shape[0] in (1, 3, 4), shape[2] in (1, 3, 4)
    if first and (channels_first or not last):
        return "CHW"
    if last:
        return "HWC"
    raise ValueError(f"an image of shape {list(shape)} has no channel dimension of 1, 3 or 4: "
                     "give dataformats")


def _hwc(shape: tuple[int, ...], layout: str) -> tuple[int, int, int]:
    """Height, width and channels of an image, checked against the limits."""
    h, w, c = (shape[0], shape[1], 1) if layout == "HW" else (
        (shape[1], shape[2], shape[0]) if layout == "CHW" else (shape[0], shape[1], shape[2]))
    if not 1 <= c <= 4:
        raise ValueError(f"an image has 1 to 4 channels, not {c}")
    if h < 1 or w < 1:
        raise ValueError(f"an empty image ({w}x{h})")
    if h * w > MAX_IMAGE_PIXELS:
        raise ValueError(f"an image of {w}x{h} pixels is over the limit of {MAX_IMAGE_PIXELS:,} pixels")
    return h, w, c


def image_pixels(image: Image) -> tuple[int, int, int, bytes]:
    """Width, height, channels and the 8-bit pixels (rows of HWC) of ``image``; ``ValueError`` with
    the reason when it cannot be one. The size is checked before anything is copied or converted.
    numpy arrays and torch tensors are converted by their own methods (the writer imports neither)."""
    x = image.data
    if is_tensor(x):
        x = x.detach()
        shape = tuple(x.shape)
        if len(shape) == 4 and shape[0] == 1:
            x, shape = x[0], shape[1:]
        layout = _layout(shape, image.dataformats, True)
        h, w, c = _hwc(shape, layout)
        x = x.to("cpu")
        if layout == "CHW":
            x = x.permute(1, 2, 0)
        x = x.contiguous()  # first: torch is slow on odd strides (a CHW view of an HWC tensor)
        if x.is_floating_point():  # + 0.5, then truncated: rounded
            x = x.float().nan_to_num(0.0, 1.0, 0.0).mul_(255.0).add_(0.5).clamp_(0.0, 255.0).byte()
        elif str(x.dtype) == "torch.bool":
            x = x.byte() * 255
        elif str(x.dtype) != "torch.uint8":
            x = x.clamp(0, 255).byte()
        try:
            data = x.numpy().tobytes()
        except Exception:  # torch without numpy
            data = bytes(x.reshape(-1).tolist())
        return w, h, c, data
    if is_ndarray(x) or (hasattr(x, "__array_interface__") and hasattr(x, "astype")):  # and subclasses
        shape = tuple(x.shape)
        if len(shape) == 4 and shape[0] == 1:
            x, shape = x[0], shape[1:]
        layout = _layout(shape, image.dataformats, False)
        h, w, c = _hwc(shape, layout)
        kind = x.dtype.kind
        if kind == "f":
            x = x.astype("float32")  # a copy: NaN set to 0 in it
            x[x != x] = 0.0
            x = (x * 255.0 + 0.5).clip(0.0, 255.0).astype("uint8")
        elif kind == "b":
            x = x.astype("uint8") * 255
        elif kind in "iu":
            if x.dtype.itemsize != 1 or kind == "i":
                x = x.clip(0, 255)
            x = x.astype("uint8")
        else:
            raise ValueError(f"an image of dtype {x.dtype} (numbers or booleans only)")
        if layout == "CHW":
            x = x.transpose(1, 2, 0)
        return w, h, c, x.tobytes()  # C order, whatever the strides
    if callable(getattr(x, "tobytes", None)) and hasattr(x, "mode") and hasattr(x, "size"):  # PIL
        w, h = x.size
        if not (type(w) is int and type(h) is int):
            raise ValueError("a PIL image whose size is not two integers")
        _hwc((h, w, _PIL_MODES.get(x.mode, 3)), "HWC")
        if x.mode not in _PIL_MODES:  # palette, 1-bit, 16-bit, CMYK...: as RGB(A), converted by PIL
            x = x.convert("RGBA" if "A" in x.mode or "transparency" in getattr(x, "info", {}) else "RGB")
        c = _PIL_MODES[x.mode]
        data = x.tobytes()
        if len(data) != w * h * c:
            raise ValueError(f"a PIL image of mode {x.mode} gave {len(data)} bytes for {w}x{h}")
        return w, h, c, data
    raise ValueError(f"an Image of {type(x).__name__} (a numpy array, a torch tensor or a PIL image)")


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
