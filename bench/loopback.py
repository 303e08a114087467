"""Helpers shared by the benchmarks (imported as a sibling module: run them as `python bench/x.py`).

Besides the WebSocket receive loop of the real clients, raw-socket clients for benchmarks that play
badly behaved peers: each read is bounded in time and bytes and says how the connection ended.
"""

from __future__ import annotations

import asyncio
import json
import os
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


def pct(xs: list[float], p: float) -> float:
    """The p-quantile of xs (nearest rank); NaN for no samples."""
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (VmRSS); NaN once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def get_request(port: int, path: str, token: str | None = None) -> bytes:
    """A GET of `path` on 127.0.0.1:port that asks the server to close the connection after it."""
    bearer = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{bearer}Connection: close\r\n\r\n".encode()


def status_of(head: bytes) -> int | None:
    """The status code of an HTTP response that starts with `head`; None if it is not one."""
    if not head.startswith(b"HTTP/"):
        return None
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


async def dial(port: int, rcvbuf: int = 0, timeout: float = 5.0) -> socket.socket:
    """A non-blocking socket connected to 127.0.0.1:port (for the loop's sock_* calls). `rcvbuf` asks
    for a receive buffer of that size (the kernel doubles it), set before connecting so the window
    the peer sees is small from the start."""
    s = socket.socket()
    s.setblocking(False)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(s, ("127.0.0.1", port)), timeout)
    except BaseException:
        s.close()
        raise
    return s


async def drain(s: socket.socket, until: float, cap: int, keep: int = 64,
                head_only: bool = False) -> tuple[str, int, bytes]:
    """Read from `s` until the peer closes it ("closed") or resets it ("reset"), or monotonic time
    `until` passes or `cap` bytes came ("connected"); with `head_only`, also until an HTTP response
    head is complete ("head"). Returns how it ended, the bytes read and the first `keep` of them."""
    loop = asyncio.get_running_loop()
    got, n = bytearray(), 0
    while n < cap:
        left = until - time.monotonic()
        if left <= 0:
            break
        try:
            data = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), left)
        except asyncio.TimeoutError:
            break
        except OSError:
            return "reset", n, bytes(got)
        if not data:
            return "closed", n, bytes(got)
        n += len(data)
        if len(got) < keep:
            got += data[: keep - len(got)]
        if head_only and b"\r\n\r\n" in got:
            return "head", n, bytes(got)
    return "connected", n, bytes(got)


async def ws_open(port: int, path: str, until: float,
                  rcvbuf: int = 0) -> tuple[socket.socket | None, str, bytes]:
    """A WebSocket handshake on a raw socket (see `dial`): (the socket, "ok", head) once the server
    answered 101; else (None, how it ended as `drain` says or "no connect", what came)."""
    try:
        s = await dial(port, rcvbuf)
    except (OSError, asyncio.TimeoutError):
        return None, "no connect", b""
    try:
        await asyncio.get_running_loop().sock_sendall(s, ws_upgrade(port, path))
        how, _, head = await drain(s, until, 1 << 16, keep=4096, head_only=True)
    except OSError:
        how, head = "reset", b""
    if status_of(head) == 101:
        return s, "ok", head
    s.close()
    return None, how, head


def ws_upgrade(port: int, path: str) -> bytes:
    """The request of a WebSocket handshake on 127.0.0.1:port, for clients that use raw sockets."""
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def ws_text_frame(payload: bytes) -> bytes:
    """One masked text frame, as a client must send it (RFC 6455 5.2)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
