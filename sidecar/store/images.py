"""Images: the PNG bytes that image records point to (blobs). The records are a kind of
``kinds`` (``ImageRecords``), held in an ``ImagesHeld`` per run.

A record of the writer (``{"k": "image", ...}``, docs/format.md) names a PNG file in the run's
folder (``path``, relative to it); the file is read only when asked for, by ``read_file``, and only
from inside that folder. An image of a TensorBoard event file is inside the event file: the reader
hands its PNG over (``png``, base64) and it is kept here, in memory, up to ``BLOB_BYTES`` a run; the
oldest are let go first and then answer "no longer held" (their records stay, the slider keeps its
steps). Its path is ``@<n>``, which no file path starts with. Such bytes are not counted as points by
eviction: a run evicted and read again gets them back.

Records are small (a path and five numbers) and all kept, as histograms are; an answer is thinned
to the route's record limit, the first and the latest always in it (``kinds.thin``).
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from ..tail import open_regular

__all__ = ["BAD_IMAGE", "BLOB_BYTES", "MAX_IMAGE_BYTES", "ImageError", "ImagesHeld", "contained",
           "path_ok", "read_blob", "read_file"]

#: The skip reason of an image record that names no usable file or has no sizes.
BAD_IMAGE = "bad_image"
#: Bytes of images from event files kept in memory per run.
BLOB_BYTES = 32 << 20
#: The largest image file served (a 16 MP RGBA PNG of noise is 64 MiB).
MAX_IMAGE_BYTES = 80 << 20
_MAX_PATH = 4096


class ImageError(LookupError):
    """An image that cannot be served; the message says why and holds no local path. ``status``:
    403 for a path refused, 404 for an image that is not there (any more)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ImagesHeld:
    """A run's images: records per name, and the bytes of those that came inside event files."""

    by_name: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    blobs: OrderedDict[str, bytes] = field(default_factory=OrderedDict)
    blob_bytes: int = 0
    next_blob: int = 0

    def hold_base64(self, png: Any) -> tuple[str, int] | None:
        """Hold the bytes of a base64 text; their path and size, or None when it is not base64."""
        try:
            data = base64.b64decode(png, validate=True) if type(png) is str else b""
        except (binascii.Error, ValueError):
            return None
        return (self.hold(data), len(data)) if data else None

    def hold(self, data: bytes) -> str:
        key = f"@{self.next_blob}"
        self.next_blob += 1
        self.blobs[key] = data
        self.blob_bytes += len(data)
        while self.blob_bytes > BLOB_BYTES and len(self.blobs) > 1:
            self.blob_bytes -= len(self.blobs.popitem(last=False)[1])
        return key


def path_ok(path: Any) -> bool:
    """A path the writer could have written: relative, ``/``-separated, no ``..``, no NUL."""
    if type(path) is not str or not path or len(path) > _MAX_PATH or "\0" in path or "\\" in path:
        return False
    return not path.startswith("/") and all(part not in ("", ".", "..") for part in path.split("/"))


def contained(root: str, folder: str) -> bool:
    """Whether ``folder`` really is ``root`` or inside it (symlinks resolved)."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(folder)]) == real_root


def read_file(folder: str, path: str, limit: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of the file ``path`` (relative, ``/``-separated) inside ``folder``, at most
    ``limit`` of them. Refused with an ``ImageError``: a path that is not relative or holds ``..``,
    one whose real location is outside the folder (a symlink leading out), anything but a regular
    file (a FIFO, a device, a folder), a file over the limit, or one that is not a PNG."""
    if not path:
        raise ImageError("no image named", 404)
    if not path_ok(path):
        raise ImageError("not a path inside the run's folder")
    real_folder = os.path.realpath(folder)
    target = os.path.realpath(os.path.join(real_folder, *path.split("/")))
    if os.path.commonpath([real_folder, target]) != real_folder or target == real_folder:
        raise ImageError("the path leads outside the run's folder")
    try:
        fd = open_regular(target)
    except FileNotFoundError:
        raise ImageError("no such image", 404) from None
    except OSError as e:
        raise ImageError("not a regular file" if e.errno == errno.EINVAL else "the image cannot be read") from None
    with os.fdopen(fd, "rb") as f:
        opened = _opened_path(f.fileno())
        if opened is not None and os.path.commonpath([real_folder, opened]) != real_folder:
            raise ImageError("the path leads outside the run's folder")  # swapped for a link meanwhile
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"the image is over {limit} bytes")
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ImageError("not a PNG file")
    return data


def _opened_path(fd: int) -> str | None:
    """Where the descriptor's file really is (Linux), or None where that cannot be told."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None


def read_blob(held: ImagesHeld, key: str) -> bytes:
    """The bytes of an image that came inside an event file (a path ``@<n>``)."""
    data = held.blobs.get(key)
    if data is None:
        raise ImageError("the image is no longer held in memory (see docs/inputs.md)", 404)
    return data
