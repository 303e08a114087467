"""Serving behind a reverse proxy: a path prefix (``--base-url``) and the proxy's forwarded headers
(``--proxy-headers``), believed only from the proxy's own addresses.

- ``BasePath`` serves the app under a prefix that the proxy keeps (nginx ``location /tb/ {
  proxy_pass http://127.0.0.1:6007; }``): ``/tb/...`` reaches the app with ``root_path`` set to
  ``/tb`` (the ASGI way: ``path`` still holds the prefix, Starlette routes on what follows it),
  ``/tb`` is redirected to ``/tb/`` (the page's URLs are relative to its folder: they need the
  slash), ``/healthz`` answers at the root too (container probes reach the port itself, not the
  proxy; it holds no data), and anything else is 404 before any other check. A proxy that strips the prefix needs no
  ``--base-url``: the page never names its own prefix.
- ``TrustedProxies`` reads ``X-Forwarded-For``, ``-Proto`` and ``-Host`` (or, when none of them is
  there, a ``Forwarded`` header) from a peer in its allow-list, and rewrites the scope as the browser
  made the request: client, scheme and Host. The WebSocket's Origin check then compares the page's
  origin with the public one. Uvicorn's own middleware does the first two but not Host, and is on by
  default for loopback peers: the server turns it off and uses this one only when asked.

Where a chain of proxies each appended to a header, the last entry is the nearest proxy's word, the
only one this server can trust. A value that is not a host, a scheme or an address is ignored and
counted (``TrustedProxies.malformed``).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

from .auth import ASGIApp, Receive, Scope, Send

__all__ = ["LOOPBACK_PROXIES", "BasePath", "TrustedProxies", "base_path"]

logger = logging.getLogger(__name__)

#: Who may speak for the browser by default: a proxy on this machine.
LOOPBACK_PROXIES = "127.0.0.1,::1"

_HOST = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?|\[[0-9a-f:.]+\])(?::\d{1,5})?", re.IGNORECASE)
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


def base_path(text: str) -> str:
    """A ``--base-url`` as the server keeps it: ``"/tb"`` for ``tb``, ``/tb`` or ``/tb/``; ``""`` for
    ``/``. A ValueError says what a prefix may hold."""
    path = "/" + text.strip().strip("/")
    if path == "/":
        return ""
    if (any(c in path for c in "?#%\\ ") or "//" in path
            or any(seg in (".", "..") for seg in path.split("/"))):
        raise ValueError(f"{text!r} is not a path prefix: give plain path segments, e.g. /tailboard")
    return path


class BasePath:
    """Serves ``app`` under ``prefix`` only (see the module's docstring). ``headers``: added to the
    answers given here (the security headers every answer carries)."""

    def __init__(self, app: ASGIApp, prefix: str, *, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"a prefix starts with '/' and does not end with one: {prefix!r} (see base_path)")
        self.app = app
        self.prefix = prefix
        self.headers = list(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith(self.prefix + "/"):
            scope = dict(scope)
            scope["root_path"] = scope.get("root_path", "") + self.prefix
            await self.app(scope, receive, send)
        elif path == "/healthz" and scope["type"] == "http":
            # container probes knock on the port itself, not through the proxy: no data, no token
            scope = dict(scope)
            scope["path"] = self.prefix + path
            scope["raw_path"] = scope["path"].encode("latin-1")
            scope["root_path"] = scope.get("root_path", "") + self.prefix
            await self.app(scope, receive, send)
        elif path == self.prefix and scope["type"] == "http":
            # relative: right however many prefixes the proxies in front added
            query = scope.get("query_string", b"")
            location = self.prefix.rsplit("/", 1)[1] + "/" + ("?" + query.decode("latin-1") if query else "")
            await self._answer(send, 308, b"", [(b"location", location.encode("latin-1"))])
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # uvicorn answers 403
        else:
            await self._answer(send, 404, b'{"error": "not found"}', [(b"content-type", b"application/json")])

    async def _answer(self, send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            *headers, (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"), *self.headers]})
        await send({"type": "http.response.body", "body": body})


class TrustedProxies:
    """The peers whose forwarded headers are believed: ``allow`` is ``"*"`` (any peer: only where
    nothing but the proxy can reach the port) or addresses and networks, comma-separated or a list
    (``"127.0.0.1,::1"``, ``"10.0.0.0/8"``). A ValueError names an entry that is neither."""

    def __init__(self, allow: str | Iterable[str] = LOOPBACK_PROXIES) -> None:
        entries = [e.strip() for e in (allow.split(",") if isinstance(allow, str) else allow) if e.strip()]
        if not entries:
            raise ValueError("no trusted proxy address given (e.g. 127.0.0.1, 10.0.0.0/8, or *)")
        self.any = "*" in entries
        self.networks = []
        for e in entries:
            if e == "*":
                continue
            try:
                self.networks.append(ipaddress.ip_network(e, strict=False))
            except ValueError:
                raise ValueError(f"not an address or network of a proxy: {e!r} (e.g. 127.0.0.1, "
                                 "10.0.0.0/8, or *)") from None
        self.malformed = 0  # forwarded values from a trusted peer that were ignored

    def trusts(self, peer: str | None) -> bool:
        if self.any:
            return True
        try:
            address = ipaddress.ip_address((peer or "").strip("[]"))
        except ValueError:
            return False
        return any(address in net for net in self.networks)

    def apply(self, scope: MutableMapping[str, Any], headers: dict[str, str]) -> None:
        """Rewrite ``scope`` (and ``headers``, its decoded copy) by the forwarded headers, when the
        peer is trusted: the browser's address, the scheme it used and the Host it asked for."""
        client = scope.get("client")
        if not self.trusts(client[0] if client else None):
            return
        proto, host, addr = self._forwarded(headers)
        if proto is not None:
            if proto not in _SCHEMES:
                self._bad("proto", proto)
            else:
                secure = _SCHEMES[proto] == "https"
                scope["scheme"] = ("wss" if secure else "ws") if scope["type"] == "websocket" else _SCHEMES[proto]
        if host is not None:
            if not _HOST.fullmatch(host):
                self._bad("host", host)
            else:
                headers["host"] = host
                scope["headers"] = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"host"]
                scope["headers"].append((b"host", host.encode("latin-1")))
        if addr is not None:
            try:
                scope["client"] = (str(ipaddress.ip_address(addr.strip("[]"))), 0)
            except ValueError:
                self._bad("for", addr)

    def _forwarded(self, headers: dict[str, str]) -> tuple[str | None, str | None, str | None]:
        """(proto, host, for) from X-Forwarded-*, else from the nearest element of Forwarded."""
        xf = [headers.get(f"x-forwarded-{k}") for k in ("proto", "host", "for")]
        if any(v is not None for v in xf):
            proto, host, addr = (_last(v) for v in xf)
            return (None if proto is None else proto.lower()), host, addr
        raw = headers.get("forwarded")
        if raw is None:
            return None, None, None
        pairs: dict[str, str] = {}
        for part in raw.rsplit(",", 1)[-1].split(";"):
            key, eq, value = part.partition("=")
            if not eq:
                self._bad("forwarded", raw)
                return None, None, None
            pairs[key.strip().lower()] = value.strip().strip('"')
        addr = pairs.get("for")
        if addr is not None and addr.startswith("[") and "]" in addr:
            addr = addr[1 : addr.index("]")]  # [v6]:port
        elif addr is not None and addr.count(":") == 1:
            addr = addr.split(":")[0]  # v4:port
        proto = pairs.get("proto")
        return (None if proto is None else proto.lower()), pairs.get("host"), addr

    def _bad(self, what: str, value: str) -> None:
        self.malformed += 1
        logger.info("ignored a forwarded %s that is not one: %r", what, value[:100])


def _last(value: str | None) -> str | None:
    if value is None:
        return None
    last = value.rsplit(",", 1)[-1].strip()
    return last or None
