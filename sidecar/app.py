"""HTTP and WebSocket routes. They ask the store and the hub; they never touch files."""

from __future__ import annotations

import asyncio
import logging
import math
from importlib import resources
from typing import Any, Iterable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.responses import FileResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import protocol as P
from .auth import AccessControl
from .hub import Client, Hub
from .store import Reset, Store

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_MEDIA = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
}
WS_1008_POLICY_VIOLATION = 1008
WS_1009_MESSAGE_TOO_BIG = 1009
WS_1013_TRY_AGAIN_LATER = 1013


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return P.dumps(content)


def _error(status: int, message: str) -> Response:
    return ORJSONResponse({"error": message}, status_code=status)


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite")
    return value


def _int_param(request: Request, name: str, lo: int, hi: int, default: int | None = None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}")
    return value


def create_app(
    store: Store,
    hub: Hub,
    *,
    token: str | None,
    allowed_hosts: Iterable[str] | None,
    max_connections: int = 256,
    heartbeat: float = 15.0,
) -> AccessControl:
    connections = 0

    def known_run(request: Request) -> str:
        run = request.query_params.get("run", "")
        # Only ids of discovered runs are accepted; nothing here ever becomes a path.
        if not run or store.get_run(run) is None:
            raise LookupError("unknown run")
        return run

    async def healthz(request: Request) -> Response:
        return ORJSONResponse({"ok": True})

    async def api_runs(request: Request) -> Response:
        p = store.progress()
        return ORJSONResponse(
            {
                "runs": [r.to_json() for r in store.runs()],
                "loading": {"done": p.done, "bytes": p.loaded_bytes, "total_bytes": p.total_bytes},
            }
        )

    async def api_run(request: Request) -> Response:
        return ORJSONResponse(store.run_detail(known_run(request)))

    async def api_series(request: Request) -> Response:
        run = known_run(request)
        metric = request.query_params.get("metric", "")
        start = _float_param(request, "start")
        end = _float_param(request, "end")
        points = _int_param(request, "points", 4, P.MAX_POINTS)
        attempt = _int_param(request, "attempt", 0, 1_000_000)
        s = await asyncio.to_thread(
            store.series, run, metric, start=start, end=end, points=points, attempt=attempt
        )
        body = {"run": run, "metric": metric, **P.series_json(s, envelope=True), "cursor": store.cursor(run)}
        return ORJSONResponse(body)

    async def api_histograms(request: Request) -> Response:
        return ORJSONResponse(store.histograms(known_run(request), request.query_params.get("name", "")))

    async def api_vectors(request: Request) -> Response:
        return ORJSONResponse(
            store.vectors(known_run(request), request.query_params.get("name", ""), step=_float_param(request, "step"))
        )

    async def api_texts(request: Request) -> Response:
        return ORJSONResponse(store.texts(known_run(request), request.query_params.get("name")))

    async def api_records(request: Request) -> Response:
        run = known_run(request)
        limit = _int_param(request, "limit", 1, 100_000, 10_000)
        page = store.records(run, request.query_params.get("cursor"), limit=limit or 10_000)
        if isinstance(page, Reset):
            return ORJSONResponse({"reset": page.reason})
        return ORJSONResponse({"records": page.records, "cursor": page.cursor, "more": page.more})

    async def api_poll(request: Request) -> Response:
        """Long-poll fallback: the WebSocket's messages for the given runs and cursors."""
        runs = request.query_params.getlist("run")
        timeout = _float_param(request, "timeout")
        timeout = 25.0 if timeout is None else max(0.0, min(30.0, timeout))
        points = _int_param(request, "points", 4, P.MAX_POINTS, 2000) or 2000
        for run in runs:
            if store.get_run(run) is None:
                raise LookupError("unknown run")
        out: list[bytes] = [hub.full_runs()]
        if not runs:  # a client that follows no run yet only needs the run list
            return Response(b'{"messages":[' + out[0] + b"]}", media_type="application/json")
        c = Client(lambda b: asyncio.sleep(0))
        for run in runs:
            c.subs[run] = None
            c.points[run] = points
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            version = hub.version
            news = []
            for run in runs:
                cursor = request.query_params.get(f"cursor.{run}")
                if not cursor:
                    snap = hub.build_snapshot(c, run)
                    if snap:
                        news.append(snap)
                    continue
                got = store.since(run, cursor)
                if isinstance(got, Reset):
                    news.append(P.dumps(P.reset(run, got.reason)))
                    snap = hub.build_snapshot(c, run)
                    if snap:
                        news.append(snap)
                elif got.series:
                    news.append(P.dumps(P.delta(run, got.cursor, got.series)))
            remaining = deadline - asyncio.get_running_loop().time()
            if news or remaining <= 0 or await request.is_disconnected():
                out.extend(news)
                break
            async with hub.changed:
                if hub.version == version:
                    try:
                        await asyncio.wait_for(hub.changed.wait(), timeout=min(remaining, 1.0))
                    except asyncio.TimeoutError:
                        pass
        body = b'{"messages":[' + b",".join(out) + b"]}"
        return Response(body, media_type="application/json")

    async def ws_endpoint(ws: WebSocket) -> None:
        nonlocal connections
        await ws.accept()
        if connections >= max_connections:
            await ws.close(code=WS_1013_TRY_AGAIN_LATER)
            return
        connections += 1

        async def send(data: bytes) -> None:
            await ws.send_text(data.decode("utf-8"))

        client = Client(send, queue_size=hub.queue_size)
        hub.add(client)
        pump = asyncio.create_task(hub.pump(client))
        try:
            await send(P.dumps(P.hello(hub.server, heartbeat)))
            await send(hub.full_runs())
            while True:
                raw = await ws.receive()
                if raw["type"] == "websocket.disconnect":
                    break
                text = raw.get("text")
                data = text if text is not None else raw.get("bytes") or b""
                if len(data) > P.MAX_CLIENT_MESSAGE:
                    await ws.close(code=WS_1009_MESSAGE_TOO_BIG)
                    break
                try:
                    op, payload = P.parse_client(data)
                except P.ProtocolError as e:
                    hub._enqueue(client, ("msg", P.dumps(P.error(str(e)))))
                    continue
                if op == "ping":
                    hub._enqueue(client, ("msg", P.dumps(P.pong())))
                elif op == "subscribe":
                    hub.subscribe(client, payload)
                elif op == "unsubscribe":
                    hub.unsubscribe(client, payload)
        except WebSocketDisconnect:
            pass
        except Exception:
            logger.exception("WebSocket handler failed")
        finally:
            connections -= 1
            hub.remove(client)
            pump.cancel()
            try:
                await pump
            except (asyncio.CancelledError, Exception):
                pass

    def guard(fn: Any) -> Any:
        async def wrapped(request: Request) -> Response:
            try:
                return await fn(request)  # type: ignore[no-any-return]
            except LookupError as e:
                return _error(404, str(e).strip("'\"") or "not found")
            except ValueError as e:
                return _error(400, str(e))

        return wrapped

    viewer_dir = resources.files("tailboard.viewer")
    # Only the viewer's own files, by name: nothing else of the package (or the disk) is served.
    static = {
        f.name: (str(f), _MEDIA[f.name.rsplit(".", 1)[-1]])
        for f in viewer_dir.iterdir()
        if f.is_file() and f.name.rsplit(".", 1)[-1] in _MEDIA
    }

    async def viewer_file(request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        hit = static.get(name)
        if hit is None:
            return _error(404, "not found")
        return FileResponse(hit[0], media_type=hit[1], headers={"cache-control": "no-cache"})

    routes = [
        Route("/healthz", guard(healthz)),
        Route("/api/runs", guard(api_runs)),
        Route("/api/run", guard(api_run)),
        Route("/api/series", guard(api_series)),
        Route("/api/histograms", guard(api_histograms)),
        Route("/api/vectors", guard(api_vectors)),
        Route("/api/texts", guard(api_texts)),
        Route("/api/records", guard(api_records)),
        Route("/api/poll", guard(api_poll)),
        WebSocketRoute("/ws", ws_endpoint),
        Route("/", viewer_file),
        Route("/{name:str}", viewer_file),
    ]
    app = Starlette(routes=routes)
    return AccessControl(app, token=token, allowed_hosts=allowed_hosts)
