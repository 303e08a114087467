"""Every per-connection, per-request and per-client cap of the server, in one place.

The server runs next to jobs that other people and programs write to, on ports that other people may
reach: no single connection, request or client may take the memory, the descriptors or the event
loop from the others. The figures are defaults of :class:`Limits`; docs/security.md explains them.

:func:`guarded_http_protocol` wraps uvicorn's HTTP protocol with what uvicorn does not bound by
itself: the number of open connections, the time a client may take to send its request headers, and
their size. When the cap is reached, the connection that has waited longest for its request headers
is closed to make room (a flood of half-sent requests must not lock out a health check or a viewer);
only when every open connection is in use is the new one closed at once, before it holds anything.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

__all__ = ["ByteBudget", "Limits", "guarded_http_protocol"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    #: Open HTTP and WebSocket connections, authenticated or not (each holds a descriptor).
    max_open_connections: int = 1024
    #: Open WebSocket clients (each holds a queue and a task).
    max_websockets: int = 256
    #: Seconds a client has to send a request's headers (slowloris).
    header_timeout: float = 10.0
    #: Bytes of request line and headers (no route takes a cookie or anything big in a header).
    max_header_bytes: int = 16 * 1024
    #: Runs named in one request (long-poll) or one subscribe message.
    max_runs_per_request: int = 64
    #: Points in one response or message that holds several series (snapshots, long-poll answers):
    #: the points asked for per series are lowered to fit.
    max_response_points: int = 2_000_000
    #: Points of a raw (not downsampled) series answer; wider ranges are downsampled to this.
    max_raw_points: int = 1_000_000
    #: Bytes of log read again to resume a client from its cursor; farther behind, it gets a reset
    #: and a fresh (bounded) snapshot instead of the whole gap.
    max_resume_bytes: int = 16 << 20
    #: Bytes of log read for one page of exact export (/api/records).
    max_page_bytes: int = 8 << 20
    #: Records of histograms / vectors / texts in one answer (the most recent ones, evenly thinned).
    max_records: int = 10_000
    #: Store queries, snapshots and resumes running at once in worker threads (the event loop never
    #: runs them; each one more is time the loop waits for the GIL).
    query_threads: int = 2
    #: Messages queued for one WebSocket client before it is marked lagging.
    queue_size: int = 64
    #: Seconds one message may take to be accepted by a client's socket before the client is dropped.
    send_timeout: float = 30.0
    #: Kernel send buffer of a connection: a client that does not read is noticed (its queue fills,
    #: it lags and costs nothing more) after this much, not after the kernel's default of megabytes.
    socket_send_buffer: int = 256 * 1024
    #: Bytes per second of bulk answers (HTTP answers, snapshots, resumes, long-poll) for everyone
    #: together, and the burst allowed above it: a client asking for big answers as fast as it can
    #: waits its turn instead of taking the event loop from the others. Live deltas are not counted.
    bulk_bytes_per_second: int = 32 << 20
    bulk_burst_bytes: int = 64 << 20


class ByteBudget:
    """A token bucket of bytes, first come first served: ``spend`` returns once the bytes fit."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._level = burst
        self._stamp = time.monotonic()
        self._turn = asyncio.Lock()

    async def spend(self, n: int) -> None:
        async with self._turn:  # one waiter at a time: the others queue behind it, in order
            now = time.monotonic()
            self._level = min(self.burst, self._level + (now - self._stamp) * self.rate)
            self._stamp = now
            self._level -= n
            if self._level < 0:
                await asyncio.sleep(-self._level / self.rate)


def guarded_http_protocol(limits: Limits) -> type[asyncio.Protocol] | str:
    """uvicorn's httptools protocol with the connection cap, header deadline and header size of
    ``limits``; ``"auto"`` (unguarded) where httptools is not installed."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        logger.warning("httptools is not installed: request headers are not bounded in time and size")
        return "auto"

    # connections still waiting for request headers, oldest first (the first to go when full)
    waiting: OrderedDict[int, GuardedHttpProtocol] = OrderedDict()

    class GuardedHttpProtocol(HttpToolsProtocol):
        _refused_at = 0.0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._refused = False
            self._headers_done = False
            self._header_bytes = 0
            self._deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            full = len(self.connections) >= limits.max_open_connections
            if full and waiting:
                _, oldest = waiting.popitem(last=False)
                oldest._disarm()
                oldest.transport.abort()  # it waited longest for its headers: it makes room
                full = False
            if full:
                self._refused = True
                now = time.monotonic()
                if now - GuardedHttpProtocol._refused_at > 10.0:  # one line per 10 s, not per attempt
                    GuardedHttpProtocol._refused_at = now
                    logger.warning("%d connections open: refusing new ones", len(self.connections))
                transport.abort()
                return
            super().connection_made(transport)
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limits.socket_send_buffer)
                except OSError:
                    pass
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._refused:
                return
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return
            if not self._headers_done:  # counted before parsing: too much is never parsed
                self._header_bytes += len(data)
                if self._header_bytes > limits.max_header_bytes:
                    self._close_with(431, "Request Header Fields Too Large")
                    return
            super().data_received(data)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._headers_done = False
            self._arm()

        def on_headers_complete(self) -> None:
            self._headers_done = True
            self._header_bytes = 0  # the next request on this connection starts its own count
            self._disarm()
            super().on_headers_complete()

        def _arm(self) -> None:
            if self._deadline is None:
                self._deadline = self.loop.call_later(limits.header_timeout, self._too_slow)
                waiting[id(self)] = self

        def _disarm(self) -> None:
            waiting.pop(id(self), None)
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self._headers_done and self.transport is not None and not self.transport.is_closing():
                if self._header_bytes:
                    self._close_with(408, "Request Timeout")
                else:
                    self.transport.close()  # an idle connection that never sent anything

        def _close_with(self, status: int, reason: str) -> None:
            self._headers_done = True  # ignore whatever else arrives
            self._disarm()
            if self.transport.is_closing():
                return
            body = reason.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s"
                % (status, reason.encode(), len(body), body)
            )
            self.transport.close()

    return GuardedHttpProtocol
