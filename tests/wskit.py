"""A WebSocket client on a bare socket, for tests of clients that read slowly or never."""

from __future__ import annotations

import os
import socket
import struct
import time


class RawSocketClient:
    """Handshakes on a bare socket with a tiny receive window (``rcvbuf``), then reads only when told."""

    def __init__(self, port: int, token: str, rcvbuf: int = 4096) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(
            (f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:  # bytes sent before the 101 would be lost in the upgrade
            head += self.sock.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0]

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def read_until(self, needle: bytes, timeout: float) -> bool:
        self.sock.settimeout(1.0)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(1 << 20)
            except TimeoutError:
                continue
            if not chunk:
                return False
            buf = buf[-len(needle):] + chunk
            if needle in buf:
                return True
        return False

    def close(self) -> None:
        self.sock.close()
