"""The sidecar as one object: store + follower + hub + app on uvicorn.

Programmatic use (tests, the demo, embedding)::

    server = Server("runs/", port=0, token="secret")
    await server.start()          # returns once it listens and follows; server.url is the bound URL
    ...
    await server.stop()

or, from synchronous code, ``handle = serve_in_thread("runs/", port=0)``; ``handle.url``,
``handle.token``, ``handle.store``, ``handle.stop()``.

Besides the store, the follower and the hub it runs the alert rules (``alerts``: an ``AlertConfig``,
or None for none), their webhooks, the stop control (``allow_control``: it needs the token) and the
Prometheus collector (``metrics``), each wired to the hub so that the page hears of what they change.

Behind a reverse proxy: ``base_url`` serves everything below a path prefix the proxy keeps,
``proxy_headers`` believes the proxy's ``X-Forwarded-*`` from ``forwarded_allow_ips`` only
(``proxy.py``), ``public_url`` is the address the outside opens (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from tailboard import __version__

from . import protocol as P
from .alerts import AlertConfig, AlertEngine, Change, Webhooks
from .app import create_app
from .auth import LOOPBACK_NAMES, new_token
from .control import ControlPlane
from .follower import Follower
from .gpu import GpuSampler
from .health import LoopLag
from .hub import Hub
from .limits import ByteBudget, Limits, guarded_http_protocol
from .metrics import IngestLag, StoreCollector, new_registry
from .proxy import LOOPBACK_PROXIES, TrustedProxies, base_path
from .readers.registry import Registry
from .store import Store
from .store.gpus import IdleRule
from .store.retention import SystemRetention

__all__ = ["Server", "ServerHandle", "bound_url", "is_loopback", "page_url", "serve_in_thread", "site_url"]

logger = logging.getLogger(__name__)

#: The alert rules a server runs unless told otherwise (``alerts=None``: none).
DEFAULT_ALERTS = AlertConfig()


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bound_url(host: str, port: int, *, tls: bool = False) -> str:
    """The base URL of a server bound to ``host``: every interface is reached through loopback here."""
    host = host if ":" not in host else f"[{host.strip('[]')}]"
    if host in ("0.0.0.0", "[::]", ""):
        host = "127.0.0.1"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def site_url(bound: str, prefix: str, public: str | None) -> str:
    """Where the page's folder is reached: ``public`` (a proxy's address, a published port) when
    given, else the bound address, with the ``prefix`` unless ``public`` names a path of its own
    (a proxy that strips the prefix, or adds one this server does not know of)."""
    if public is None:
        return bound + prefix
    public = public.rstrip("/")
    return public if urlsplit(public).path else public + prefix


def page_url(base: str, token: str | None) -> str:
    """The page under ``base`` with ``#token=`` when auth is on (a fragment is never sent to the
    server nor put in a Referer; the page keeps the token and takes it out of the address bar)."""
    page = base.rstrip("/") + "/"
    return f"{page}#token={token}" if token else page


class Server:
    def __init__(
        self,
        logdir: str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 6007,
        token: str | None = None,
        auth: bool = True,
        poll: bool = False,
        allow_hosts: list[str] | None = None,
        stall_after: float = 120.0,
        max_points: int | None = None,
        evict_idle: float = 60.0,
        certfile: str | None = None,
        keyfile: str | None = None,
        max_connections: int = 256,
        queue_size: int = 64,
        heartbeat: float = 15.0,
        follower_options: dict[str, Any] | None = None,
        limits: Limits | None = None,
        readers: Registry | None = None,
        gpu: str = "off",
        gpu_interval: float = 1.0,
        nvml_module: str | Any = "pynvml",
        gpu_idle: IdleRule | None = None,
        system_retention: SystemRetention | None = None,
        frame_ancestors: list[str] | None = None,
        alerts: AlertConfig | None = DEFAULT_ALERTS,
        webhooks: list[str] | None = None,
        allow_control: bool = False,
        metrics: bool = False,
        metrics_include: str | None = None,
        public_url: str | None = None,
        base_url: str = "",
        proxy_headers: bool = False,
        forwarded_allow_ips: str | None = None,
    ) -> None:
        if gpu not in ("auto", "off"):
            raise ValueError(f"gpu must be 'auto' or 'off', not {gpu!r}")
        if allow_control and not auth:
            raise ValueError("allow_control needs auth: without a token anyone who reaches the port could "
                             "stop runs")
        if webhooks and alerts is None:
            raise ValueError("webhooks need the alert rules (alerts=None turns them off)")
        self.logdir = os.path.abspath(os.fspath(logdir))
        if not os.path.isdir(self.logdir):
            raise FileNotFoundError(f"log folder not found: {self.logdir}")
        self.host = host
        self.port = port
        # how the outside reaches this server (a published port, a proxy), when that is not the bound address
        self.public_url = public_url
        self.base_path = base_path(base_url)
        if forwarded_allow_ips is not None and not proxy_headers:
            raise ValueError("forwarded_allow_ips names whose forwarded headers to believe: it needs proxy_headers")
        proxies = TrustedProxies(forwarded_allow_ips or LOOPBACK_PROXIES) if proxy_headers else None
        self.token = (token or new_token()) if auth else None
        self.tls = bool(certfile)
        self.store = Store(self.logdir, stall_after=stall_after, max_points=max_points, evict_idle=evict_idle,
                           readers=readers, gpu_idle=gpu_idle, system_retention=system_retention)
        self.follower = Follower(self.logdir, self.store, poll=poll, **(follower_options or {}))
        # GPU telemetry runs in a thread of its own (NVML calls block) and writes into the tree the
        # follower reads, as the system run of this host (docs/gpu.md)
        self.gpu = None if gpu == "off" else GpuSampler(self.logdir, interval=gpu_interval, nvml=nvml_module)
        if limits is None:
            limits = Limits(max_websockets=max_connections, queue_size=queue_size)
        self.limits = limits
        self.hub = Hub(
            self.store,
            queue_size=limits.queue_size,
            server=f"tailboard {__version__}",
            send_timeout=limits.send_timeout,
            max_response_points=limits.max_response_points,
            max_resume_bytes=limits.max_resume_bytes,
            build_slots=limits.query_threads,
        )
        self.hub.bulk = ByteBudget(limits.bulk_bytes_per_second, limits.bulk_burst_bytes)
        if allow_hosts and "*" in allow_hosts:
            allowed: list[str] | None = None
        elif is_loopback(host) or allow_hosts:
            # the public name too: a proxy that passes the browser's Host on (Traefik) sends that
            public_host = [urlsplit(public_url).netloc] if public_url else []
            allowed = sorted(LOOPBACK_NAMES | {host} | set(allow_hosts or ()) | set(public_host))
        else:
            allowed = None  # bound to every interface: the token is the guard
        self.loop_lag = LoopLag()
        self.alerts = None if alerts is None else AlertEngine(self.store, alerts)
        self.webhooks = Webhooks(webhooks or (), server=f"tailboard {__version__}")
        if self.alerts is not None:
            self.alerts.book.subscribe(self._alert_changed)
            self.alerts.book.subscribe(self.webhooks)
        self.control = (ControlPlane(self.logdir, self.store, on_change=lambda run: self.hub.runs_changed((run,)))
                        if allow_control else None)
        self.ingest_lag = IngestLag(self.store) if metrics else None
        registry = None
        if metrics:
            registry = new_registry(StoreCollector(
                self.store, include=metrics_include, alerts=self.alerts, webhooks=self.webhooks, sampler=self.gpu,
                ingest=self.ingest_lag, loop_lag=self.loop_lag, clients=lambda: len(self.hub.clients)))
        self.app = create_app(
            self.store,
            self.hub,
            token=self.token,
            allowed_hosts=allowed,
            limits=limits,
            heartbeat=heartbeat,
            loop_lag=self.loop_lag,
            frame_ancestors=frame_ancestors or (),
            alerts=self.alerts,
            webhooks=self.webhooks if self.webhooks else None,
            control=self.control,
            metrics=registry,
            base_path=self.base_path,
            proxies=proxies,
        )
        self.config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,  # the access log would print ?token= query strings
            ws_max_size=64 * 1024,
            # compressing costs CPU per message per client (the same message once for each of
            # them) and memory per connection; deltas are small and the page is usually near
            ws_per_message_deflate=False,
            ws_ping_interval=heartbeat,
            ws_ping_timeout=heartbeat,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            lifespan="off",
            http=guarded_http_protocol(limits),
            timeout_keep_alive=5,
            # uvicorn believes X-Forwarded-For/-Proto from loopback unless told not to, and ignores
            # X-Forwarded-Host: the app's TrustedProxies does it all, and only with proxy_headers
            proxy_headers=False,
        )
        self.uvicorn = uvicorn.Server(self.config)
        self._task: asyncio.Task[None] | None = None
        self._tick: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """The bound address (loopback for every interface) and the prefix: what this machine reaches."""
        return bound_url(self.host, self.port, tls=self.tls) + self.base_path

    @property
    def url(self) -> str:
        """The page to open, through ``public_url`` when given, with ``#token=`` when auth is on."""
        return page_url(site_url(bound_url(self.host, self.port, tls=self.tls), self.base_path, self.public_url),
                        self.token)

    def _alert_changed(self, change: Change) -> None:
        """An alert fired or cleared (the engine's thread): pushed to the page, its run's badge too."""
        self.hub.broadcast(P.dumps(P.alert(change.event, change.alert.to_json())))
        if change.alert.run is not None:
            self.hub.runs_changed((change.alert.run,))

    async def start(self, *, wait_for_backlog: bool = False) -> None:
        self.loop_lag.start()
        self.hub.start()
        # the parts that listen to the store listen before the follower reads anything
        if self.alerts is not None:
            self.webhooks.start()
            self.alerts.start()
        if self.control is not None:
            self.control.start()
        if self.ingest_lag is not None:
            self.store.add_listener(self.ingest_lag)
        await self.follower.start(wait=wait_for_backlog)
        if self.gpu is not None:
            self.gpu.start()
        self._task = asyncio.create_task(self.uvicorn.serve())
        while not self.uvicorn.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the server did not start")
            await asyncio.sleep(0.01)
        sockets = [s for srv in self.uvicorn.servers for s in srv.sockets]
        if sockets:
            self.port = sockets[0].getsockname()[1]
        self._tick = asyncio.create_task(self._ticker())

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await asyncio.to_thread(self.store.tick)  # evicting takes the store's lock
            except Exception:
                logger.exception("store.tick failed")

    async def stop(self) -> None:
        if self._tick:
            self._tick.cancel()
        self.uvicorn.should_exit = True
        if self._task:
            try:
                await asyncio.wait_for(self._task, timeout=10)
            except asyncio.TimeoutError:
                self.uvicorn.force_exit = True
        if self.gpu is not None:
            await asyncio.to_thread(self.gpu.stop)  # joins the thread: not on the event loop
        await self.follower.stop()
        if self.alerts is not None:
            await asyncio.to_thread(self.alerts.stop)
            await asyncio.to_thread(self.webhooks.stop)
        if self.control is not None:
            self.control.stop()
        if self.ingest_lag is not None:
            self.store.remove_listener(self.ingest_lag)
        await self.hub.stop()
        await self.loop_lag.stop()

    async def wait_closed(self) -> None:
        """Return when the HTTP server ends by itself (start() first)."""
        if self._task is None:
            raise RuntimeError("Server.start() first")
        await asyncio.shield(self._task)

    async def serve_forever(self) -> None:
        await self.start()
        assert self._task is not None
        await self._task


@dataclass
class ServerHandle:
    server: Server
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def token(self) -> str | None:
        return self.server.token

    @property
    def store(self) -> Store:
        return self.server.store

    def stop(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop)
        fut.result(timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=20)


def serve_in_thread(logdir: str | os.PathLike[str], **options: Any) -> ServerHandle:
    """Start a Server on its own event loop in a daemon thread; returns once it listens."""
    options.setdefault("port", 0)
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        box["loop"] = loop
        try:
            server = Server(logdir, **options)
            box["server"] = server
            loop.run_until_complete(server.start())
        except BaseException as e:  # handed to the caller
            box["error"] = e
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="tailboard-server", daemon=True)
    thread.start()
    ready.wait(60)
    if "error" in box:
        raise box["error"]
    if "server" not in box:
        raise RuntimeError("the server did not start in time")
    return ServerHandle(box["server"], box["loop"], thread)
