"""Cursors: the only code that encodes or decodes them. Everywhere else they are opaque strings.

A cursor names, per stream of a run, ``(file_key, byte offset after the last included record)``,
where ``file_key = f"{dev}:{ino}:{head signature}"``; it names bytes in files, not server state, so
it survives a restart of the server.
"""

from __future__ import annotations

import base64
from functools import lru_cache

import orjson

__all__ = ["covered", "decode_cursor", "encode_cursor"]

Parts = dict[str, tuple[str, int]]


def encode_cursor(parts: Parts) -> str:
    raw = orjson.dumps({k: [v[0], v[1]] for k, v in sorted(parts.items())})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> Parts | None:
    """The parts of a cursor, or None for anything that is not one (never raises)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        obj = orjson.loads(raw)
        out: Parts = {}
        for k, v in obj.items():
            if not (isinstance(k, str) and isinstance(v, list) and len(v) == 2):
                return None
            if not (isinstance(v[0], str) and type(v[1]) is int and v[1] >= 0):
                return None
            out[k] = (v[0], v[1])
        return out
    except (ValueError, TypeError, orjson.JSONDecodeError, AttributeError):
        return None


def covered(cursor: str, mark: str | None) -> bool:
    """True when everything up to ``cursor`` is already included at ``mark`` (both cursors of one
    run): how the hub drops deltas a snapshot or resume already holds."""
    if mark is None:
        return False
    d, m = _decoded(cursor), _decoded(mark)
    if d is None or m is None:
        return False
    for stream, (key, off) in d.items():
        got = m.get(stream)
        if got is None or got[0] != key or got[1] < off:
            return False
    return True


@lru_cache(maxsize=4096)
def _decoded(cursor: str) -> Parts | None:
    # the hub compares the same few cursors for every client of a run: decode each once
    return decode_cursor(cursor)
