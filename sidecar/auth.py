"""Access control as an ASGI middleware: Host allow-list, token, WebSocket Origin, security headers.

- Every ``/api/*`` request and the WebSocket need the token, given as ``Authorization: Bearer``, as
  ``?token=`` (scripts, curl), or, for the WebSocket, in the subprotocol list as
  ``tailboard.token.<base64url(token)>`` (a browser cannot put a header on a WebSocket). No cookie is
  ever set: cookies are shared by every port of a host, so a cookie would log two sidecars out of each
  other and hand the token to any other service on that host. The page keeps the token in
  ``localStorage``, which is scoped to scheme, host and port, and with no ambient credential there is
  nothing for a cross-site request to ride on.
- The viewer's own static files and ``/healthz`` are public: they hold no log data.
- The Host header must name this server (against DNS rebinding).
- A WebSocket handshake whose Origin is not this server's (scheme included) is refused (cross-site
  WebSocket hijacking: neither Starlette nor uvicorn checks it). Behind a proxy started with
  ``--proxy-headers``, "this server" is the public scheme and host the proxy forwards
  (``proxy.TrustedProxies``, believed from the proxy's addresses only); the Host check above still
  applies to the Host header the proxy sent, the name it reached this server by.
- Every HTTP response carries a strict Content-Security-Policy and the usual hardening headers.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from .proxy import TrustedProxies

__all__ = [
    "AccessControl",
    "LOOPBACK_NAMES",
    "SECURITY_HEADERS",
    "WS_SUBPROTOCOL",
    "WS_TOKEN_PREFIX",
    "new_token",
    "same_origin",
    "split_host",
    "token_subprotocol",
]

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
#: The subprotocol the server answers with; the page offers it beside the token.
WS_SUBPROTOCOL = "tailboard"
WS_TOKEN_PREFIX = "tailboard.token."
WS_1008_POLICY_VIOLATION = 1008

#: No inline script or style, nothing from elsewhere, never framed (unless the operator names who
#: may frame it: a notebook). Log content reaches the page as DOM text only; this policy is the second
#: wall if that ever fails.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# a CSP source the operator may give for frame-ancestors: 'self', a scheme ("vscode-webview:"), or
# scheme://host with an optional port or ":*" (a "*." wildcard label allowed); nothing that could end
# the directive or add another
_FRAME_SOURCE = re.compile(r"'self'|[a-z][a-z0-9+.-]*:|[a-z][a-z0-9+.-]*://(\*\.)?[a-z0-9.-]+(:(\d{1,5}|\*))?",
                           re.IGNORECASE)


def security_headers(frame_ancestors: Iterable[str] = ()) -> tuple[tuple[bytes, bytes], ...]:
    """The headers of every HTTP answer. ``frame_ancestors``: the origins that may show the page in a
    frame (a notebook's); none by default. A ValueError names a source that is not one."""
    sources = list(frame_ancestors)
    if not sources:
        return SECURITY_HEADERS
    for src in sources:
        if not _FRAME_SOURCE.fullmatch(src):
            raise ValueError(f"not a frame-ancestors source: {src!r} (e.g. http://localhost:8888, 'self')")
    csp = CSP.replace("frame-ancestors 'none'", "frame-ancestors " + " ".join(sources))
    return tuple((k, csp.encode() if k == b"content-security-policy" else v)
                 for k, v in SECURITY_HEADERS if k != b"x-frame-options")

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_WS_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_subprotocol(token: str) -> str:
    """The WebSocket subprotocol that carries ``token`` (what the page sends)."""
    raw = base64.urlsafe_b64encode(token.encode("utf-8")).decode("ascii").rstrip("=")
    return WS_TOKEN_PREFIX + raw


def split_host(host: str) -> str:
    """The host name of a Host header value, without the port ("[::1]:80" -> "::1")."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class AccessControl:
    """Wraps the app. ``token=None`` disables auth (the CLI warns); ``allowed_hosts=None`` allows any
    Host. ``public_paths`` are served without the token (the viewer's files, ``/healthz``), below
    the scope's ``root_path``. ``proxies``: whose forwarded headers say what the browser asked for."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        allowed_hosts: Iterable[str] | None,
        public_paths: Iterable[str] = ("/healthz",),
        frame_ancestors: Iterable[str] = (),
        proxies: TrustedProxies | None = None,
    ) -> None:
        self.app = app
        self.proxies = proxies
        self.headers = security_headers(frame_ancestors)
        self.token = token.encode() if token else None
        self.allowed = None if allowed_hosts is None else {split_host(h) for h in allowed_hosts}
        self.public = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if kind == "http":
            send = _with_headers(send, self.headers)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if self.allowed is not None and split_host(host) not in self.allowed:
            await _refuse(scope, send, 403, "host not allowed")
            return
        if self.proxies is not None:
            scope = dict(scope)
            self.proxies.apply(scope, headers)
        if kind == "websocket":
            origin = headers.get("origin")
            if origin is not None and not same_origin(origin, scope.get("scheme", "ws"), headers.get("host", "")):
                logger.warning("refused a WebSocket from a foreign origin")
                await _refuse(scope, send, 403, "origin not allowed")
                return
        path = _route_path(scope)
        if self.token is None or (kind == "http" and path in self.public):
            await self.app(scope, receive, send)
            return
        if self._authorized(scope, headers):
            await self.app(scope, receive, send)
            return
        await _refuse(scope, send, 401, "unauthorized")

    def _authorized(self, scope: Scope, headers: dict[str, str]) -> bool:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        candidates = [query.get("token"), _bearer(headers)]
        if scope["type"] == "websocket":
            candidates.extend(_subprotocol_tokens(scope.get("subprotocols") or ()))
        return any(self._valid(c) for c in candidates)

    def _valid(self, candidate: str | None) -> bool:
        if candidate is None or self.token is None:
            return False
        return hmac.compare_digest(candidate.encode("utf-8", "replace"), self.token)


def _bearer(headers: dict[str, str]) -> str | None:
    value = headers.get("authorization", "")
    if value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


def _subprotocol_tokens(protocols: Iterable[str]) -> list[str]:
    out = []
    for p in protocols:
        if isinstance(p, str) and p.startswith(WS_TOKEN_PREFIX):
            raw = p[len(WS_TOKEN_PREFIX) :]
            try:
                out.append(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8"))
            except (binascii.Error, ValueError):
                continue
    return out


def same_origin(origin: str, scheme: str, host: str) -> bool:
    """The Origin names this server: same scheme (http for ws, https for wss) and host:port, a
    scheme's default port written or not ("lab.example:443" is "lab.example" for https)."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    expected = _WS_SCHEME.get(scheme)
    return (expected is not None and parts.scheme == expected
            and _netloc(parts.netloc, expected) == _netloc(host, expected))


def _netloc(host: str, scheme: str) -> str:
    host = host.strip().lower()
    return host.removesuffix(":443" if scheme == "https" else ":80")


def _route_path(scope: Scope) -> str:
    """The path below the app's ``root_path`` (its prefix, ``proxy.BasePath``), as Starlette routes."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root + "/") else path


def _with_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...] = SECURITY_HEADERS) -> Send:
    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = dict(message)
            present = {k.lower() for k, _ in message.get("headers", [])}
            extra = [(k, v) for k, v in headers if k not in present]
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return wrapped


async def _refuse(scope: Scope, send: Send, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        # Refusing the handshake: uvicorn answers 403 to a close before accept.
        await send({"type": "websocket.close", "code": WS_1008_POLICY_VIOLATION})
        return
    body = ('{"error": "%s"}' % text).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
