"""The sidecar behind a real reverse proxy on loopback: a path prefix kept or stripped, forwarded
headers believed only when asked and only from the proxy, and the page in Chromium asking for
nothing outside its prefix."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import httpx
import pytest
import tailboard
from browserkit import BROWSER_MARKS, ink, wait_for
from tailboard.sidecar.cli import main
from tailboard.sidecar.proxy import TrustedProxies
from tailboard.sidecar.server import ServerHandle, serve_in_thread
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

browser = browserkit.browser  # the shared fixture

TOKEN = "tok"
PREFIX = "/tb"
PUBLIC = "lab.example"  # the name the browser uses for the proxy, in the Origin tests


class ReverseProxy:
    """A reverse proxy on 127.0.0.1 set up as docs/deploy.md sets nginx up: ``location /tb/``, the
    prefix kept (``proxy_pass http://127.0.0.1:PORT;``) or stripped (``.../;``), Host rewritten to
    the upstream's, ``X-Forwarded-For/-Proto/-Host`` added, WebSocket upgrades passed through.
    ``public_host``: the X-Forwarded-Host to send instead of the browser's Host. One request per
    connection (the upstream is asked to close after it); every connection ends within ``LIFETIME``
    seconds, and stop() ends the rest."""

    LIFETIME = 60.0

    def __init__(self, upstream: int, *, strip: bool = False, proto: str = "http", public_host: str | None = None,
                 forwarded: bool = True) -> None:
        self.upstream, self.strip, self.proto, self.public_host, self.forwarded = (
            upstream, strip, proto, public_host, forwarded)
        self.targets: list[str] = []  # every request target received, in order
        self.upgrades = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test-proxy", daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, limit=64 * 1024), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            # let each connection run its finally (closing its sockets) before the loop stops
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        if not self.thread.is_alive():
            self.loop.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await asyncio.wait_for(self._serve(reader, writer), self.LIFETIME)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        line, *lines = head.split("\r\n")[:-2]
        method, target, version = line.split(" ")
        self.targets.append(target)
        if not target.startswith(PREFIX + "/"):  # no location matches
            writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            await writer.drain()
            return
        headers = [tuple(h.split(":", 1)) for h in lines]
        names = {k.strip().lower(): v.strip() for k, v in headers}
        upgrade = names.get("upgrade", "").lower() == "websocket"
        self.upgrades += upgrade
        keep = [(k, v.strip()) for k, v in headers if k.strip().lower() not in ("host", "connection", "keep-alive")]
        keep += [("Host", f"127.0.0.1:{self.upstream}"), ("Connection", "Upgrade" if upgrade else "close")]
        if self.forwarded:
            peer = writer.get_extra_info("peername")[0]
            keep += [("X-Forwarded-For", peer), ("X-Forwarded-Proto", self.proto),
                     ("X-Forwarded-Host", self.public_host or names.get("host", ""))]
        path = target[len(PREFIX):] if self.strip else target
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        up_writer.write((f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in keep)
                         + "\r\n").encode("latin-1"))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            while chunk := await src.read(65536):
                dst.write(chunk)
                await dst.drain()

        back = asyncio.create_task(pipe(up_reader, writer))
        forth = asyncio.create_task(pipe(reader, up_writer))
        try:
            await back  # the upstream closed: the request (or the WebSocket) is over
        finally:
            forth.cancel()
            up_writer.close()


def write_run(root: Path, name: str, n: int) -> tailboard.Run:
    run = tailboard.init(root / name)
    for i in range(n):
        run.log({"train/loss": 1.0 / (i + 1)}, step=i)
    return run


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[Path, tailboard.Run]]:
    run = write_run(tmp_path, "exp/a", 50)
    yield tmp_path, run
    run.finish()


def serve(root: Path, **options: Any) -> ServerHandle:
    return serve_in_thread(root, token=TOKEN, follower_options={"poll_interval": 0.05}, **options)


# ---- without a browser ----------------------------------------------------------------------------


def test_everything_is_served_below_the_prefix_and_nothing_elsewhere(logs: Any) -> None:
    root, _ = logs
    handle = serve(root, base_url="/tb/", metrics=True)
    direct = f"http://127.0.0.1:{handle.server.port}"
    try:
        assert handle.url == f"{direct}/tb/#token={TOKEN}"
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(timeout=10) as http:
            for path in ("/tb/", "/tb/index.html", "/tb/app.js", "/tb/healthz"):
                assert http.get(direct + path).status_code == 200, path
            for path in ("/tb/api/runs", "/tb/metrics"):
                assert http.get(direct + path).status_code == 401, path
                assert http.get(direct + path, headers=auth).status_code == 200, path
            assert http.get(direct + "/tb/api/runs", headers=auth).json()["runs"][0]["id"] == "exp/a"
            # outside the prefix there is nothing, token or not, but the health check of probes
            for path in ("/", "/index.html", "/api/runs", "/metrics", "/tbx/", "/t", "/healthz/x"):
                res = http.get(direct + path, headers=auth)
                assert res.status_code == 404, path
            health = http.get(direct + "/healthz")
            assert health.status_code == 200 and health.json()["ok"] is True
            assert health.json().keys() == http.get(direct + "/tb/healthz").json().keys()
            # the folder without its slash is sent to it (the page's URLs are relative to it)
            res = http.get(direct + "/tb?x=1")
            assert res.status_code == 308 and res.headers["location"] == "tb/?x=1"
        with connect(f"ws://127.0.0.1:{handle.server.port}/tb/ws?token={TOKEN}") as ws:
            assert '"hello"' in str(ws.recv(timeout=5))
        with pytest.raises(InvalidStatus), connect(f"ws://127.0.0.1:{handle.server.port}/ws?token={TOKEN}"):
            pass
    finally:
        handle.stop()


def test_forwarded_headers_are_believed_only_when_asked_and_from_the_proxy(logs: Any) -> None:
    """A page at https://lab.example/tb/ behind the proxy: its Origin is the proxy's public name."""
    root, _ = logs
    origin = f"https://{PUBLIC}"

    def ws_opens(handle: ServerHandle, proxy: ReverseProxy) -> bool:
        try:
            with connect(f"ws://127.0.0.1:{proxy.port}/tb/ws?token={TOKEN}", origin=origin) as ws:  # type: ignore[arg-type]
                return '"hello"' in str(ws.recv(timeout=5))
        except InvalidStatus as e:
            assert e.response.status_code == 403
            return False

    cases = [({}, False),  # forwarded headers ignored: the Origin names another server
             ({"proxy_headers": True}, True),
             ({"proxy_headers": True, "forwarded_allow_ips": "10.0.0.0/8"}, False)]  # the proxy is not trusted
    for options, opens in cases:
        handle = serve(root, base_url=PREFIX, **options)
        proxy = ReverseProxy(handle.server.port, proto="https", public_host=PUBLIC)
        try:
            assert ws_opens(handle, proxy) is opens, options
            # what a browser that talks to the sidecar itself sends is accepted in every case
            with connect(f"ws://127.0.0.1:{handle.server.port}/tb/ws?token={TOKEN}",
                         origin=f"http://127.0.0.1:{handle.server.port}") as ws:  # type: ignore[arg-type]
                assert '"hello"' in str(ws.recv(timeout=5))
        finally:
            proxy.stop()
            handle.stop()
    # forwarded headers sent by a client itself, not a proxy: ignored without --proxy-headers
    handle = serve(root, base_url=PREFIX)
    try:
        with pytest.raises(InvalidStatus), connect(
                f"ws://127.0.0.1:{handle.server.port}/tb/ws?token={TOKEN}", origin=origin,  # type: ignore[arg-type]
                additional_headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": PUBLIC}):
            pass
    finally:
        handle.stop()
    # RFC 7239's Forwarded, from a trusted proxy
    handle = serve(root, base_url=PREFIX, proxy_headers=True)
    try:
        with connect(f"ws://127.0.0.1:{handle.server.port}/tb/ws?token={TOKEN}", origin=origin,  # type: ignore[arg-type]
                     additional_headers={"Forwarded": f'for=192.0.2.1;proto=https;host="{PUBLIC}"'}) as ws:
            assert '"hello"' in str(ws.recv(timeout=5))
    finally:
        handle.stop()


def test_a_stop_request_through_the_proxy_is_same_origin_only_with_proxy_headers(logs: Any) -> None:
    """The stop control's same-origin check, as the WebSocket's: the public origin counts when the
    proxy is believed."""
    root, _ = logs
    for options, status in [({}, 403), ({"proxy_headers": True}, 202)]:
        handle = serve(root, base_url=PREFIX, allow_control=True, **options)
        proxy = ReverseProxy(handle.server.port, proto="https", public_host=PUBLIC)
        try:
            res = httpx.post(f"http://127.0.0.1:{proxy.port}/tb/api/runs/exp/a/stop", json={}, timeout=10,
                             headers={"Authorization": f"Bearer {TOKEN}", "Origin": f"https://{PUBLIC}"})
            assert res.status_code == status, (options, res.text)
        finally:
            proxy.stop()
            handle.stop()


def test_forwarded_values_from_a_trusted_peer_and_only_sane_ones() -> None:
    """The nearest proxy's entry of each header is the one believed; Forwarded only when no
    X-Forwarded-* is there; a value that is not a scheme, host or address is ignored and counted."""
    def seen(proxies: TrustedProxies, headers: dict[str, str], peer: str = "127.0.0.1") -> tuple[Any, ...]:
        scope = {"type": "websocket", "scheme": "ws", "client": (peer, 5000),
                 "headers": [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:6007", **headers}.items()]}
        decoded = {"host": "127.0.0.1:6007", **headers}
        proxies.apply(scope, decoded)
        return scope["scheme"], dict(scope["headers"])[b"host"].decode(), scope["client"][0]

    trusted = TrustedProxies()
    assert seen(trusted, {"x-forwarded-proto": "http, https", "x-forwarded-host": "a.example, lab.example:8443",
                          "x-forwarded-for": "6.6.6.6, 192.0.2.7"}) == ("wss", "lab.example:8443", "192.0.2.7")
    assert seen(trusted, {"forwarded": 'for=6.6.6.6;host=evil, for="[2001:db8::1]:4711";proto=https;host=lab.example'}) \
        == ("wss", "lab.example", "2001:db8::1")
    assert seen(trusted, {"x-forwarded-host": "lab.example", "forwarded": "proto=https"}) == ("ws", "lab.example", "127.0.0.1")
    assert seen(TrustedProxies("10.0.0.0/8"), {"x-forwarded-proto": "https"}) == ("ws", "127.0.0.1:6007", "127.0.0.1")
    assert seen(TrustedProxies("10.0.0.0/8"), {"x-forwarded-proto": "https"}, peer="10.1.2.3")[0] == "wss"
    assert seen(trusted, {"x-forwarded-proto": "gopher", "x-forwarded-host": "a b/c", "x-forwarded-for": "me"}) \
        == ("ws", "127.0.0.1:6007", "127.0.0.1")
    assert trusted.malformed == 3
    with pytest.raises(ValueError, match="not an address or network of a proxy: 'proxy.local'"):
        TrustedProxies("127.0.0.1, proxy.local")


def test_the_printed_url_composes_public_url_and_prefix(tmp_path: Path, capsys: Any) -> None:
    for args, url in [
        (["--base-url", "/tb"], "http://127.0.0.1:6123/tb/"),
        (["--base-url", "tb/", "--public-url", "http://gpu-box:16007"], "http://gpu-box:16007/tb/"),
        # a proxy that strips /tb, or adds a prefix the sidecar does not know: the public URL says it
        (["--public-url", "https://lab.example/tb/"], "https://lab.example/tb/"),
        (["--base-url", "/tb", "--public-url", "https://lab.example/tb"], "https://lab.example/tb/"),
    ]:
        assert main(["serve", "--print-url", "--no-auth", "--port", "6123", *args]) == 0
        assert capsys.readouterr().out.strip() == url, args


def test_bad_proxy_options_are_one_line(tmp_path: Path, capsys: Any) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path), "--base-url", "/a/../b"])
    assert e.value.code == 2 and "not a path prefix" in capsys.readouterr().err
    port = ["--port", "0"]
    assert main(["serve", str(tmp_path), *port, "--proxy-headers", "--forwarded-allow-ips", "proxy.local"]) == 2
    assert "not an address or network of a proxy: 'proxy.local'" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), *port, "--forwarded-allow-ips", "10.0.0.1"]) == 2
    assert "add --proxy-headers" in capsys.readouterr().err


# ---- the page, in Chromium, through the proxy -------------------------------------------------------


@pytest.mark.parametrize("strip", [False, True], ids=["prefix-kept", "prefix-stripped"])
@BROWSER_MARKS[0]
@BROWSER_MARKS[1]
def test_the_page_works_through_the_proxy_under_its_prefix(browser: Any, logs: Any, strip: bool) -> None:
    """Runs listed, a chart drawn, live points over the WebSocket, every request below /tb/; with
    the prefix stripped by the proxy the sidecar does not even know it."""
    root, run = logs
    handle = serve(root, proxy_headers=True, **({} if strip else {"base_url": PREFIX}))
    proxy = ReverseProxy(handle.server.port, strip=strip)
    site = f"http://127.0.0.1:{proxy.port}{PREFIX}/"
    page = browser.new_page()
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    page.on("websocket", lambda w: seen.append(w.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{site}#token={TOKEN}")
        wait_for(page, "() => document.querySelectorAll('.run-row[data-run]').length === 1")
        wait_for(page, "() => document.getElementById('conn').dataset.state === 'live'")
        wait_for(page, "() => window.tailboard.charts.has('train/loss') && window.tailboard.charts.get('train/loss').draws > 0")
        assert ink(page, "train/loss") > 0
        for i in range(50, 60):
            run.log({"train/loss": 0.5}, step=i)
        wait_for(page, """() => { const r = window.tailboard.state.runs.get('exp/a');
                                  const b = r && r.series.get('train/loss'); return b && b.last() && b.last().step === 59; }""")
        assert document_state(page) == "live" and proxy.upgrades >= 1  # it came over the WebSocket
        ws_site = site.replace("http:", "ws:")
        assert seen and all(u.startswith((site, ws_site)) for u in seen), [u for u in seen if PREFIX not in u]
        assert all(t.startswith(PREFIX + "/") for t in proxy.targets), proxy.targets
        assert not errors, errors

        # the login form, in a browser that has no token: under the prefix too
        fresh = browser.new_page()
        try:
            fresh.goto(site)
            wait_for(fresh, "() => { const f = document.getElementById('login'); return !!f && f.offsetParent !== null; }")
            fresh.fill("#login input", TOKEN)
            fresh.click("#login button[type=submit]")
            wait_for(fresh, "() => document.querySelectorAll('.run-row[data-run]').length === 1")
        finally:
            fresh.close()
        assert all(t.startswith(PREFIX + "/") for t in proxy.targets), proxy.targets
    finally:
        page.close()
        proxy.stop()
        handle.stop()


def document_state(page: Any) -> str:
    return str(page.evaluate("() => document.getElementById('conn').dataset.state"))
