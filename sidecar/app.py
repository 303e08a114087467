"""HTTP and WebSocket routes. They ask the store and the hub; they never touch files.

Organised as Starlette's own code is: endpoint functions, a route table, exception handlers. Routes
that an option turns on (``POST /api/runs/{run}/stop`` with ``--allow-control``, ``/metrics`` with
``--metrics``) are absent from the table without it. Under ``--base-url`` the whole table, the page
and the WebSocket included, is served below the prefix (``proxy.BasePath``). Every store query runs in a worker thread, a few at a time (``Limits.query_threads``): the event loop only
moves bytes, so one heavy request never stalls the others or ``/healthz``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import suppress
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Iterable

import numpy as np
import orjson
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from . import protocol as P
from .alerts import AlertEngine, Webhooks
from .auth import WS_SUBPROTOCOL, AccessControl, same_origin, security_headers
from .control import ControlPlane, ControlRefused
from .health import LoopLag
from .hub import Client, Hub, SlowClient
from .limits import Limits
from .metrics import exposition
from .proxy import BasePath, TrustedProxies
from .series import Series
from .store import Reset, Store
from .store.images import ImageError

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
#: The largest body of a control request (a small JSON object).
MAX_CONTROL_BODY = 4096
#: The policy of an image answer (instead of the page's): it loads and runs nothing, even opened by
#: itself, and is never framed.
IMAGE_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
#: Ended alerts an /api/alerts answer lists at most.
MAX_RECENT_ALERTS = 500


@dataclass
class _State:
    store: Store
    hub: Hub
    limits: Limits
    heartbeat: float
    loop_lag: LoopLag | None = None
    websockets: int = 0
    alerts: AlertEngine | None = None
    webhooks: Webhooks | None = None
    control: ControlPlane | None = None
    metrics: CollectorRegistry | None = None

    def features(self) -> dict[str, bool]:
        """What this server was started with, for the page (a stop button only where it works)."""
        return {"alerts": self.alerts is not None, "control": self.control is not None,
                "metrics": self.metrics is not None}

    def annotate(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run's JSON with its active alerts per level (``alerts``) and its stop state (``stop``)."""
        if self.alerts is not None:
            counts = self.alerts.book.run_counts(run["id"])
            if counts:
                run["alerts"] = counts
        if self.control is not None:
            stop = self.control.state(run["id"], run.get("status"))
            if stop is not None:
                run["stop"] = stop
        return run

    async def answer(self, fn: Callable[..., Any], *args: Any, encoded: bool = False, **kwargs: Any) -> Response:
        """A JSON response from a store query, run and encoded in a worker thread (the hub's slots
        for heavy work) and counted as a bulk answer: a big answer encoded on the loop would hold
        everyone else for as long. ``encoded``: ``fn`` returns the body's bytes itself."""
        body = await self.hub.in_worker(
            lambda: fn(*args, **kwargs) if encoded else P.dumps(fn(*args, **kwargs)), size=len
        )
        return Response(body, media_type="application/json", headers={"cache-control": "no-store"})


class ORJSONResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return P.dumps(content)


def _json(content: Any) -> Response:
    return ORJSONResponse(content, headers={"cache-control": "no-store"})


def _state(conn: Request | WebSocket) -> _State:
    return conn.app.state.tailboard  # type: ignore[no-any-return]


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


def _known_run(request: Request, run: str | None = None) -> str:
    run = request.query_params.get("run", "") if run is None else run
    # Only ids of discovered runs are accepted; nothing here ever becomes a path.
    if not run or _state(request).store.get_run(run) is None:
        raise LookupError("unknown run")
    return run


# ---- endpoints ------------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    lag = _state(request).loop_lag
    if lag is None:
        return _json({"ok": True})
    window = _float_param(request, "window")  # seconds; the default is the last minute
    return _json({"ok": True, "loop_lag": lag.report(None if window is None else max(0.1, window))})


async def api_runs(request: Request) -> Response:
    state = _state(request)

    def query() -> dict[str, Any]:
        p = state.store.progress()
        return {
            "runs": [state.hub.run_json(r) for r in state.store.runs()],
            "loading": {"done": p.done, "bytes": p.loaded_bytes, "total_bytes": p.total_bytes,
                        "files": state.store.files()},
            "features": state.features(),
        }

    return await state.answer(query)


async def api_run(request: Request) -> Response:
    state = _state(request)
    run = _known_run(request)
    return await state.answer(lambda: state.annotate(state.store.run_detail(run)))


async def api_series(request: Request) -> Response:
    state = _state(request)
    run = _known_run(request)
    metric = request.query_params.get("metric", "")
    start = _float_param(request, "start")
    end = _float_param(request, "end")
    points = _int_param(request, "points", 4, P.MAX_POINTS)
    attempt = _int_param(request, "attempt", 0, 1_000_000)

    def query() -> dict[str, Any]:
        s = state.store.series(
            run, metric, start=start, end=end, points=points, attempt=attempt, max_raw=state.limits.max_raw_points
        )
        return {"run": run, "metric": metric, **P.series_json(s, envelope=True), "cursor": state.store.cursor(run)}

    return await state.answer(query)


async def api_latest(request: Request) -> Response:
    """Each metric's latest point, the one a chart draws at its right edge (the largest step, of the
    latest attempt that logged it): one request where a page showing current figures (the GPUs
    tab) would ask ``/api/series`` once per metric. ``prefix`` keeps the metrics whose name starts
    with it. At most ``Limits.max_records`` metrics, by name: ``total`` says how many matched and
    ``truncated`` whether some were left out."""
    state = _state(request)
    run = _known_run(request)
    prefix = request.query_params.get("prefix", "")
    limit = state.limits.max_records

    def query() -> dict[str, Any]:
        store = state.store
        names = [n for n in store.metrics(run) if n.startswith(prefix)]
        info = store.get_run(run)
        hint = None if info is None else info.last_step
        got, steps, values, times = [], [], [], []
        for name in names[:limit]:
            try:
                last = _latest_point(store, run, name, hint)
            except KeyError:  # the run was read again meanwhile and no longer has it
                continue
            if last is not None:
                got.append(name)
                steps.append(last[0])
                values.append(last[1])
                times.append(last[2])
        columns = P.series_json(Series(np.array(steps, np.float64), np.array(values, np.float64),
                                       np.array(times, np.float64), False, len(got)))
        return {"run": run, "metrics": got, "steps": columns["steps"], "values": columns["values"],
                "times": columns["times"], "total": len(names), "truncated": len(names) > limit,
                "cursor": store.cursor(run)}

    return await state.answer(query)


def _latest_point(store: Store, run: str, metric: str, hint: float | None) -> tuple[float, float, float] | None:
    """The last point of a metric's history (``Store.series``, so exactly what ``/api/series`` ends
    with). Most metrics were logged at the run's last step: asked from there, the answer is a bisection
    and a few points; the others are asked over their whole range (M4 of 4 points keeps the last)."""
    s = None
    if hint is not None and math.isfinite(hint):
        s = store.series(run, metric, start=hint, points=4)
    if s is None or not len(s):
        s = store.series(run, metric, points=4)
    if not len(s):
        return None
    return float(s.steps[-1]), float(s.values[-1]), float(s.times[-1])


async def api_histograms(request: Request) -> Response:
    state = _state(request)
    name = request.query_params.get("name", "")
    return await state.answer(state.store.histograms, _known_run(request), name, limit=state.limits.max_records)


async def api_vectors(request: Request) -> Response:
    state = _state(request)
    name = request.query_params.get("name", "")
    step = _float_param(request, "step")
    return await state.answer(
        state.store.vectors, _known_run(request), name, step=step, limit=state.limits.max_records
    )


async def api_texts(request: Request) -> Response:
    state = _state(request)
    name = request.query_params.get("name")
    return await state.answer(state.store.texts, _known_run(request), name, limit=state.limits.max_records)


async def api_images(request: Request) -> Response:
    state = _state(request)
    name = request.query_params.get("tag", "")
    step = _float_param(request, "step")
    return await state.answer(state.store.images, _known_run(request), name, step=step, limit=state.limits.max_records)


async def api_image(request: Request) -> Response:
    """An image's PNG bytes (store.images: only from inside the run's folder, or from memory), as
    the bytes themselves: the page shows them from a Blob. Served as an image and nothing else: no
    sniffing, and a policy of their own that lets them run or load nothing, even opened as a page."""
    state = _state(request)
    run, path = _known_run(request), request.query_params.get("path", "")
    if "encoding" in request.query_params:
        raise ValueError("encoding is not taken: the answer is the PNG's bytes")
    try:
        data = await state.hub.in_worker(lambda: state.store.image(run, path), size=len)
    except ImageError as e:
        return ORJSONResponse({"error": str(e)}, status_code=e.status)
    return Response(data, media_type="image/png", headers={
        "cache-control": "private, max-age=3600", "x-content-type-options": "nosniff",
        "content-security-policy": IMAGE_CSP})


async def api_records(request: Request) -> Response:
    """Exact export, a page at a time: at most ``limit`` records and about ``max_page_bytes``."""
    state = _state(request)
    run = _known_run(request)
    limit = _int_param(request, "limit", 1, 100_000, 10_000) or 10_000
    cursor = request.query_params.get("cursor")

    def query() -> bytes:
        page = state.store.records(run, cursor, limit=limit, max_bytes=state.limits.max_page_bytes)
        if isinstance(page, Reset):
            return P.dumps({"reset": page.reason})
        # the records are the log's own lines, already JSON: nothing is encoded again
        return b'{"records":%s,"cursor":%s,"more":%s}' % (page.raw, P.dumps(page.cursor), P.dumps(page.more))

    return await state.answer(query, encoded=True)


async def api_alerts(request: Request) -> Response:
    """Active alerts and the latest ended ones (``?run=ID`` for one run's, ``?recent=N``)."""
    state = _state(request)
    alerts, webhooks = state.alerts, state.webhooks
    assert alerts is not None
    run = request.query_params.get("run") or None
    recent = _int_param(request, "recent", 0, MAX_RECENT_ALERTS, 100) or 0

    def query() -> dict[str, Any]:
        report = alerts.report(run, recent=recent)
        report["webhooks"] = webhooks.status() if webhooks is not None else []
        return report

    return await state.answer(query)


async def api_stop(request: Request) -> Response:
    """Ask a run to stop (``--allow-control``): token (the middleware), same origin, a JSON body."""
    state = _state(request)
    assert state.control is not None
    control = state.control
    refusal = _cross_site(request)
    if refusal is not None:
        logger.warning("refused a stop request: %s", refusal)
        return ORJSONResponse({"error": refusal}, status_code=403)
    run = _known_run(request, request.path_params["run"])
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        return ORJSONResponse({"error": "a stop request is a JSON body (Content-Type: application/json)"},
                              status_code=415)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_CONTROL_BODY:
            return ORJSONResponse({"error": f"the body is over {MAX_CONTROL_BODY} bytes"}, status_code=413)
    try:
        payload = orjson.loads(body or b"null")
    except orjson.JSONDecodeError:
        payload = None
    if not isinstance(payload, dict):
        raise ValueError('the body must be a JSON object, e.g. {} or {"reason": "diverged"}')
    reason = payload.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError("reason must be a string")
    stop = await state.hub.in_worker(lambda: control.request_stop(run, reason))
    info = state.store.get_run(run)
    return ORJSONResponse({"run": run, "stop": stop.to_json(None if info is None else info.status)},
                          status_code=202, headers={"cache-control": "no-store"})


def _cross_site(request: Request) -> str | None:
    """Why a state-changing request is refused as coming from another site, or None. A browser
    sends ``Origin`` with every POST, and ``Sec-Fetch-Site``; a script sends neither (and needs the
    token all the same). Behind a trusted proxy, scheme and Host are the public ones already."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return "cross-site requests are refused"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if not same_origin(origin, request.url.scheme, request.headers.get("host", "")):
        return "origin not allowed"
    return None


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus' exposition (``--metrics``), encoded in a worker thread."""
    state = _state(request)
    registry = state.metrics
    assert registry is not None
    body, content_type = await state.hub.in_worker(lambda: exposition(registry, request.headers.get("accept")))
    return Response(body, headers={"content-type": content_type, "cache-control": "no-store"})


async def api_poll(request: Request) -> Response:
    """Long-poll fallback: the WebSocket's messages for the given runs and cursors."""
    state = _state(request)
    hub = state.hub
    runs = list(dict.fromkeys(request.query_params.getlist("run")))  # each run once
    if len(runs) > state.limits.max_runs_per_request:
        raise ValueError(f"at most {state.limits.max_runs_per_request} runs per request")
    timeout = _float_param(request, "timeout")
    timeout = 25.0 if timeout is None else max(0.0, min(30.0, timeout))
    points = _int_param(request, "points", 4, P.MAX_POINTS, 2000) or 2000
    for run in runs:
        _known_run(request, run)
    out: list[bytes] = [await hub.in_worker(hub.full_runs)]
    if not runs:  # a client that follows no run yet only needs the run list
        return _poll_response(out)
    c = Client(lambda b: asyncio.sleep(0))
    for run in runs:
        c.subs[run] = None
        c.points[run] = points
    budget = state.limits.max_response_points // len(runs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        version = hub.version
        news: list[bytes] = []
        for run in runs:
            cursor = request.query_params.get(f"cursor.{run}") or None
            news.extend(await hub.catch_up(c, run, cursor, points_budget=budget, skip_empty=True))
        remaining = deadline - loop.time()
        if news or remaining <= 0 or await request.is_disconnected():
            out.extend(news)
            break
        await hub.wait_changed(version, min(remaining, 1.0))
    return _poll_response(out)


def _poll_response(messages: list[bytes]) -> Response:
    return Response(b'{"messages":[' + b",".join(messages) + b"]}", media_type="application/json",
                    headers={"cache-control": "no-store"})


async def ws_endpoint(ws: WebSocket) -> None:
    state = _state(ws)
    hub, limits = state.hub, state.limits
    offered = ws.scope.get("subprotocols") or []
    await ws.accept(subprotocol=WS_SUBPROTOCOL if WS_SUBPROTOCOL in offered else None)
    if state.websockets >= limits.max_websockets:
        await ws.close(code=WS_1013_TRY_AGAIN_LATER)
        return
    state.websockets += 1

    async def send(data: bytes) -> None:
        await ws.send_text(data.decode("utf-8"))

    client = Client(send, queue_size=limits.queue_size)
    hub.add(client)
    hub.send_now(client, P.dumps(P.hello(hub.server, state.heartbeat, state.features())))
    hub.send_now(client, await hub.in_worker(hub.full_runs))
    tasks = {asyncio.create_task(hub.pump(client)), asyncio.create_task(_read_client(ws, state, client))}
    code = None
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if isinstance(exc, SlowClient):
                logger.info("dropped a slow WebSocket client: %s", exc)
                code = WS_1008_POLICY_VIOLATION
            elif isinstance(exc, _TooBig):
                code = WS_1009_MESSAGE_TOO_BIG
            elif exc is not None and not isinstance(exc, WebSocketDisconnect):
                logger.error("WebSocket handler failed", exc_info=exc)
    finally:
        state.websockets -= 1
        hub.remove(client)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task
    if code is not None:
        with suppress(Exception):
            await asyncio.wait_for(ws.close(code=code), 5.0)


class _TooBig(Exception):
    pass


async def _read_client(ws: WebSocket, state: _State, client: Client) -> None:
    hub, limits = state.hub, state.limits
    while True:
        raw = await ws.receive()
        if raw["type"] == "websocket.disconnect":
            return
        text = raw.get("text")
        data = text if text is not None else raw.get("bytes") or b""
        if len(data) > P.MAX_CLIENT_MESSAGE:
            raise _TooBig()
        try:
            op, payload = P.parse_client(data)
            if op == "subscribe" and len(set(payload.runs) | set(client.subs)) > limits.max_runs_per_request:
                raise P.ProtocolError(f"at most {limits.max_runs_per_request} runs per client")
        except P.ProtocolError as e:
            hub.send_now(client, P.dumps(P.error(str(e))))
            continue
        if op == "ping":
            hub.send_now(client, P.dumps(P.pong()))
        elif op == "subscribe":
            hub.subscribe(client, payload)
        elif op == "unsubscribe":
            hub.unsubscribe(client, payload)


# ---- static files ---------------------------------------------------------------------------------


def _viewer_files() -> dict[str, tuple[str, str]]:
    """Only the viewer's own files, by name: nothing else of the package (or the disk) is served."""
    viewer_dir = resources.files("tailboard.viewer")
    return {
        f.name: (str(f), _MEDIA[f.name.rsplit(".", 1)[-1]])
        for f in viewer_dir.iterdir()
        if f.is_file() and f.name.rsplit(".", 1)[-1] in _MEDIA
    }


def _viewer_endpoint(static: dict[str, tuple[str, str]]) -> Callable[[Request], Any]:
    async def viewer_file(request: Request) -> Response:
        name = request.path_params.get("name") or "index.html"
        hit = static.get(name)
        if hit is None:
            return ORJSONResponse({"error": "not found"}, status_code=404)
        return FileResponse(hit[0], media_type=hit[1], headers={"cache-control": "no-cache"})

    return viewer_file


# ---- errors -------------------------------------------------------------------------------------


async def _not_found(request: Request, exc: Exception) -> Response:
    return ORJSONResponse({"error": str(exc).strip("'\"") or "not found"}, status_code=404)


async def _bad_request(request: Request, exc: Exception) -> Response:
    return ORJSONResponse({"error": str(exc)}, status_code=400)


async def _refused(request: Request, exc: Exception) -> Response:
    status = exc.status if isinstance(exc, ControlRefused) else 500
    return ORJSONResponse({"error": str(exc)}, status_code=status)


# ---- the app ------------------------------------------------------------------------------------


def create_app(
    store: Store,
    hub: Hub,
    *,
    token: str | None,
    allowed_hosts: Iterable[str] | None,
    limits: Limits | None = None,
    heartbeat: float = 15.0,
    loop_lag: LoopLag | None = None,
    frame_ancestors: Iterable[str] = (),
    alerts: AlertEngine | None = None,
    webhooks: Webhooks | None = None,
    control: ControlPlane | None = None,
    metrics: CollectorRegistry | None = None,
    base_path: str = "",
    proxies: TrustedProxies | None = None,
) -> AccessControl | BasePath:
    """The app behind its access control. ``alerts`` adds ``/api/alerts``, ``control`` the stop
    route, ``metrics`` (a registry) ``/metrics``: each route exists only with its part.
    ``base_path`` (``"/tb"``, see ``proxy.base_path``): everything is served below it, nothing
    elsewhere. ``proxies``: whose forwarded headers are believed (None: nobody's)."""
    limits = limits or Limits()
    static = _viewer_files()
    viewer_file = _viewer_endpoint(static)
    routes = [
        Route("/healthz", healthz),
        Route("/api/runs", api_runs),
        Route("/api/run", api_run),
        Route("/api/series", api_series),
        Route("/api/latest", api_latest),
        Route("/api/histograms", api_histograms),
        Route("/api/vectors", api_vectors),
        Route("/api/texts", api_texts),
        Route("/api/images", api_images),
        Route("/api/image", api_image),
        Route("/api/records", api_records),
        Route("/api/poll", api_poll),
        *([Route("/api/alerts", api_alerts)] if alerts is not None else []),
        *([Route("/api/runs/{run:path}/stop", api_stop, methods=["POST"])] if control is not None else []),
        *([Route("/metrics", metrics_endpoint)] if metrics is not None else []),
        WebSocketRoute("/ws", ws_endpoint),
        Route("/", viewer_file),
        Route("/{name:str}", viewer_file),
    ]
    app = Starlette(routes=routes, exception_handlers={
        LookupError: _not_found, ValueError: _bad_request, ControlRefused: _refused})
    state = _State(store, hub, limits, heartbeat, loop_lag, alerts=alerts, webhooks=webhooks, control=control,
                   metrics=metrics)
    hub.annotate = state.annotate
    app.state.tailboard = state
    public = {"/healthz", "/", *(f"/{name}" for name in static)}
    guarded = AccessControl(app, token=token, allowed_hosts=allowed_hosts, public_paths=public,
                            frame_ancestors=frame_ancestors, proxies=proxies)
    if not base_path:
        return guarded
    return BasePath(guarded, base_path, headers=security_headers(frame_ancestors))
