"""Access control as an ASGI middleware: Host allow-list, token, cookie, WebSocket Origin.

- Every request but ``GET /healthz`` needs the token: the ``tailboard_token`` cookie, an
  ``Authorization: Bearer`` header, or ``?token=``. A page visited with a valid ``?token=`` gets the
  cookie (HttpOnly, SameSite=Strict), as Jupyter does.
- The Host header must name this server (against DNS rebinding).
- A WebSocket handshake whose Origin is not this server's is refused (cross-site WebSocket hijacking:
  neither Starlette nor uvicorn checks it).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from http.cookies import SimpleCookie
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

__all__ = ["AccessControl", "new_token", "COOKIE", "LOOPBACK_NAMES", "split_host"]

logger = logging.getLogger(__name__)

COOKIE = "tailboard_token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
OPEN_PATHS = frozenset({"/healthz"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def new_token() -> str:
    return secrets.token_urlsafe(24)


def split_host(host: str) -> str:
    """The host name of a Host header value, without the port ("[::1]:80" -> "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AccessControl:
    """Wraps the app. ``token=None`` disables auth (the CLI warns); ``allowed_hosts=None`` allows any Host."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: Iterable[str] | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.allowed = None if allowed_hosts is None else {split_host(h) for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.allowed is not None and split_host(host) not in self.allowed:
            await self._refuse(scope, receive, send, 403, "host not allowed")
            return
        if kind == "websocket":
            origin = headers.get("origin")
            if origin is not None and not self._same_origin(origin, host):
                logger.warning("refused a WebSocket from a foreign origin")
                await self._refuse(scope, receive, send, 403, "origin not allowed")
                return
        path = scope.get("path", "")
        if self.token is None or (path in OPEN_PATHS and kind == "http"):
            await self.app(scope, receive, send)
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        via_query = query.get("token")
        if self._valid(via_query) or self._valid(self._bearer(headers)) or self._valid(self._cookie(headers)):
            if via_query is not None and kind == "http" and self._valid(via_query):
                await self.app(scope, receive, self._set_cookie(send, scope))
            else:
                await self.app(scope, receive, send)
            return
        await self._refuse(scope, receive, send, 401, "unauthorized")

    def _valid(self, candidate: str | None) -> bool:
        if candidate is None or self.token is None:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self.token)

    @staticmethod
    def _bearer(headers: dict[str, str]) -> str | None:
        value = headers.get("authorization", "")
        if value[:7].lower() == "bearer ":
            return value[7:].strip()
        return None

    @staticmethod
    def _cookie(headers: dict[str, str]) -> str | None:
        raw = headers.get("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:
            return None
        morsel = jar.get(COOKIE)
        return morsel.value if morsel else None

    @staticmethod
    def _same_origin(origin: str, host: str) -> bool:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()

    def _set_cookie(self, send: Send, scope: Scope) -> Send:
        assert self.token is not None
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = f"{COOKIE}={self.token.decode()}; Path=/; HttpOnly; SameSite=Strict{secure}".encode()

        async def wrapped(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie)]
            await send(message)

        return wrapped

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
        if scope["type"] == "websocket":
            # Refusing the handshake: uvicorn answers 403 to a close before accept.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = ('{"error": "%s"}' % text).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
