"""Helpers shared by the benchmarks (imported as a sibling module: run them as `python bench/x.py`)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def messages(ws: Any, going: Callable[[], bool]) -> AsyncIterator[tuple[float, dict[str, Any]]]:
    """(arrival wall time, decoded message) from a WebSocket while ``going()`` holds."""
    while going():
        try:
            raw = await asyncio.wait_for(ws.recv(), 0.5)
        except asyncio.TimeoutError:
            continue
        now = time.time()
        yield now, json.loads(raw)
