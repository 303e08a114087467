"""Hostile clients: what slow, stale and malformed clients cost a good one.

    .venv/bin/python bench/hostile.py [--seconds 8] [--big-records 5000000] [--commit REV]

The log root holds a big finished run (`big`: --big-records scalar records in the writer's line
layout, generated once into --cache and hard-linked in) and a live run that a trainer process appends
--rate records/s to (each record's `t` is its write time). Every phase starts a fresh `tailboard
serve` process on loopback (so its peak memory is its own), waits for the backlog, and measures it
with two probes: a good WebSocket client subscribed to the live run (write -> arrival of each point,
counted in the phase the point was written in, however late it arrives) and `GET /healthz` on a new
connection every 50 ms (over 2 s is a timeout). The server's resident memory is sampled every 50 ms;
above --max-rss-gb the server is killed and the phase says so.

Phases: quiet; slow readers (WebSockets with a tiny receive buffer that subscribe to both runs, then
never read); old cursors (WebSockets that resume the big run from its first record, over and over;
/api/records paging from there; /api/poll naming the big run 200 times); header streaming (request
heads that never end, sent at full speed, and --half-open heads cut in the middle); all at once. Each
kind of hostile client runs in its own process, bounded in time and bytes, is torn down at the
phase's end and reports what the server did to it. With --commit, the server runs as it was at that
commit (the bench itself and the trainer stay as they are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any
from urllib.parse import quote

import orjson
import tailboard
from loopback import (
    dial,
    drain,
    free_port,
    get_request,
    messages,
    pct,
    rss_mb,
    status_of,
    ws_open,
    ws_text_frame,
)
from tailboard.format import encode
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

REPO = Path(__file__).resolve().parent.parent
TOKEN = "hostile"
EVERY = 0.05  # s between two /healthz requests, and between two memory samples
HEALTH_TIMEOUT = 2.0  # s: a slower /healthz is a timeout
SLOW_RCVBUF = 1024  # receive buffer a slow reader asks for (the kernel doubles it)
MB = 1 << 20

KINDS = {  # hostile clients, in the order they are reported
    "slow": "slow readers",
    "reconnect": "old-cursor reconnects",
    "records": "/api/records paging",
    "poll": "/api/poll, big run x200",
    "headers": "endless header",
    "halfopen": "half-open requests",
}
PHASES = {  # --phases name -> (label, hostile clients)
    "quiet": ("quiet", ()),
    "slow": ("slow readers", ("slow",)),
    "cursor": ("old cursors", ("reconnect", "records", "poll")),
    "headers": ("header streaming", ("headers", "halfopen")),
    "all": ("all at once", tuple(KINDS)),
}


# ---- the log root ---------------------------------------------------------------------------------


def scalar_lines(lo: int, hi: int, t0: float) -> bytes:
    """Records lo..hi-1 of the big run, laid out as the writer writes them (orjson, no spaces)."""
    return "".join([
        f'{{"k":"scalars","step":{i},"t":{t0 + i * 0.01!r},"v":{{"loss":{1 / (1 + i * 1e-4)!r}}}}}\n'
        for i in range(lo, hi)
    ]).encode()


def big_log(cache: Path, n: int) -> Path:
    """A finished run of n scalar records, made once per size: later runs of the bench reuse it."""
    path = cache / f"big-{n}.jsonl"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # renamed once complete
    t0, block = 1.7e9, 200_000
    with open(tmp, "wb") as f:
        f.write(encode({"k": "header", "format": "tailboard", "version": 1, "run": "big",
                        "host": "bench", "pid": 1, "rank": 0, "world_size": 1, "start": t0,
                        "argv": ["bench/hostile.py"]}))
        f.writelines(scalar_lines(lo, min(n, lo + block), t0) for lo in range(0, n, block))
        f.write(encode({"k": "end", "t": t0 + n * 0.01, "status": "finished", "dropped": 0}))
    os.replace(tmp, path)
    return path


def trainer(root: str, rate: float, started: Any, stop: Any) -> None:
    """The live run: tailboard's writer at `rate` records/s (the bench reads them back from the file)."""
    run = tailboard.init(Path(root) / "live")
    step, period, nxt = 0, 1.0 / rate, time.perf_counter()
    while not stop.is_set():
        run.log({"x": float(step)}, step=step)
        started.set()
        step += 1
        nxt += period
        time.sleep(max(0.0, nxt - time.perf_counter()))
    run.finish()


# ---- the server and its probes --------------------------------------------------------------------


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def server_code(rev: str | None, into: Path) -> tuple[dict[str, str], str]:
    """The server's environment, and which code it runs. With `rev`, the package as it was at that
    commit, so one commit can be measured while the working tree changes."""
    env = dict(os.environ)
    if rev is None:
        dirty = git("status", "--porcelain", "--", "sidecar", "writer", "viewer")
        head = git("rev-parse", "--short", "HEAD")
        return env, f"working tree at {head}" + (" with changes" if dirty else "")
    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", sha, "writer", "sidecar", "viewer"],
                               stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    archive.wait()
    (src / "writer").rename(src / "tailboard")  # the layout of pyproject.toml's package-dir
    (src / "sidecar").rename(src / "tailboard" / "sidecar")
    (src / "viewer").rename(src / "tailboard" / "viewer")
    env["PYTHONPATH"] = str(src)  # found before the editable install (a meta path finder at the end)
    code = git("log", "-1", "--format=%h (%s)", sha, "--", "sidecar", "writer", "viewer")
    return env, f"{sha[:7]}, whose server code is from {code[:90]}"


def http_json(port: int, path: str, timeout: float = 10.0) -> Any:
    url = f"http://127.0.0.1:{port}{path}"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=timeout) as res:
        return json.loads(res.read())


class Sidecar:
    """`tailboard serve` in its own process group; its memory sampled, and killed above a bound."""

    def __init__(self, root: Path, max_rss_mb: float, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log = root.parent / f"serve-{self.port}.log"
        cmd = [sys.executable, "-m", "tailboard.sidecar", "serve", str(root), "--port", str(self.port),
               "--token", TOKEN]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         start_new_session=True)
        self.max_rss_mb = max_rss_mb
        self.rss: list[tuple[float, float]] = []  # (wall time, MB)
        self.killed_at: float | None = None  # MB when the memory guard fired
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Until the server answers and has loaded the backlog of both runs."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.alive():
            try:
                got = http_json(self.port, "/api/runs", timeout=2)
                if got["loading"]["done"] and {"big", "live"} <= {r["id"] for r in got["runs"]}:
                    return
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not load the log root; see {self.log}")

    def _sample(self) -> None:
        while not self._stop.wait(EVERY):
            mb = rss_mb(self.proc.pid)
            if math.isnan(mb):
                return
            self.rss.append((time.time(), mb))
            if mb > self.max_rss_mb and self.killed_at is None:
                self.killed_at = mb
                self._kill()

    def _kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the server and any parse worker of its own
        except ProcessLookupError:
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak(self, t0: float, t1: float) -> float:
        return max((mb for t, mb in self.rss if t0 <= t <= t1), default=math.nan)

    def at(self, t: float) -> float:
        return next((mb for w, mb in reversed(self.rss) if w <= t), math.nan)

    def stop(self) -> None:
        self._stop.set()
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        self.proc.wait(10)
        self._sampler.join(2)


class HealthProbe(threading.Thread):
    """GET /healthz on a new connection every 50 ms, as a health checker does. Each request has its
    own thread, so a stalled server is still asked every 50 ms (not once per 2 s timeout)."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, float, str]] = []  # (wall time, ms, "ok"/"timeout"/"error")
        self.done = threading.Event()

    def run(self) -> None:
        nxt, pending = time.monotonic(), list[threading.Thread]()
        while not self.done.is_set():
            pending = [th for th in pending if th.is_alive()]
            pending.append(threading.Thread(target=self.once, daemon=True))
            pending[-1].start()
            nxt = max(nxt + EVERY, time.monotonic() - EVERY)
            self.done.wait(max(0.0, nxt - time.monotonic()))
        for th in pending:
            th.join(HEALTH_TIMEOUT + 1)

    def once(self) -> None:
        start, t0 = time.time(), time.perf_counter()
        how = self.get(t0 + HEALTH_TIMEOUT)
        self.samples.append((start, (time.perf_counter() - t0) * 1000, how))

    def get(self, deadline: float) -> str:
        got = b""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=HEALTH_TIMEOUT) as s:
                s.settimeout(max(0.001, deadline - time.perf_counter()))
                s.sendall(get_request(self.port, "/healthz"))
                while data := s.recv(65536):
                    got += data
                    s.settimeout(max(0.001, deadline - time.perf_counter()))
        except TimeoutError:
            return "timeout"
        except OSError:
            return "error"
        return "ok" if status_of(got) == 200 else "error"


def good_client(port: int, ready: Any, newest: Any, stop: Any, out: Any) -> None:
    """A viewer of the live run, in its own process: when each step arrived in a delta."""
    arrivals: dict[int, float] = {}
    events: Counter[str] = Counter()

    async def follow() -> None:
        url = f"ws://127.0.0.1:{port}/ws?token={TOKEN}"
        while not stop.is_set():
            try:
                # short open and close timeouts: this process reports soon after `stop`, even
                # when the server has stalled
                async with connect(url, max_size=None, compression=None, open_timeout=5,
                                   close_timeout=1) as ws:
                    await ws.send(json.dumps({"op": "subscribe", "runs": ["live"], "points": 100}))
                    async for now, msg in messages(ws, lambda: not stop.is_set()):
                        kind = msg["type"]
                        if kind in ("reset", "error"):
                            events[f"{kind} {msg.get('reason', msg.get('message'))}"] += 1
                        if kind not in ("delta", "snapshot") or "x" not in msg["series"]:
                            continue
                        x = msg["series"]["x"]
                        if kind == "delta":
                            for step in x["steps"]:
                                arrivals.setdefault(int(step), now)
                        ready.set()
                        newest.value = max(newest.value, max(x["times"], default=0.0))
            except (OSError, asyncio.TimeoutError, WebSocketException):
                events["reconnect"] += 1
                await asyncio.sleep(0.2)

    asyncio.run(follow())
    out.put((arrivals, dict(events)))


# ---- hostile clients (each kind in its own process) -----------------------------------------------


@dataclass
class Tally:
    """What the server did to one kind of hostile client, per connection or request: "ok", "http
    NNN" (an error status), "closed by server", "reset", "still connected" (at the phase's end or at
    the client's own bound), "no connect"."""

    kind: str
    clients: int
    tries: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # what a resume was answered with
    bytes_in: int = 0
    bytes_out: int = 0


WORDS = {"closed": "closed by server", "connected": "still connected", "head": "answered"}


def verdict(how: str, head: bytes, ok: int) -> str:
    """An outcome from how the connection ended (see loopback.drain) and what it started with."""
    code = status_of(head)
    if code is not None and code != ok:
        return f"http {code}"
    if code == ok == 200 and how == "closed":
        return "ok"
    return WORDS.get(how, how)


async def subscribed(port: int, sub: dict[str, Any], until: float,
                     rcvbuf: int = 0) -> tuple[socket.socket | None, str]:
    """A raw WebSocket that has sent `sub`; (None, outcome) when the handshake failed."""
    s, how, head = await ws_open(port, f"/ws?token={TOKEN}", until, rcvbuf)
    if s is None:
        return None, verdict(how, head, 101)
    try:
        await asyncio.get_running_loop().sock_sendall(s, ws_text_frame(json.dumps(sub).encode()))
    except OSError:
        s.close()
        return None, "reset"
    return s, "ok"


async def slow_readers(t: Tally, port: int, end: float, p: dict[str, Any]) -> None:
    """Subscribe to both runs (snapshots of the most points a client may ask), then never read."""
    sub = {"op": "subscribe", "runs": ["live", "big"], "points": 100_000}
    t.tries = t.clients
    opened = await asyncio.gather(*(subscribed(port, sub, end, SLOW_RCVBUF) for _ in range(t.clients)))
    t.outcomes.update(how for s, how in opened if s is None)
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    # Closed or reset by the server? Read what it managed to send: 1 s, 8 MB each at most.
    socks = [s for s, _ in opened if s is not None]
    ends = await asyncio.gather(*(drain(s, time.monotonic() + 1.0, 8 * MB) for s in socks))
    for s, (how, n, _) in zip(socks, ends):
        t.outcomes[verdict(how, b"", 0)] += 1
        t.bytes_in += n
        s.close()


async def reconnects(t: Tally, port: int, end: float, p: dict[str, Any]) -> None:
    """Resume the big run from its first record, read for a while, drop the connection; again."""
    sub = {"op": "subscribe", "runs": ["big"], "points": 2000, "cursors": {"big": p["cursor"]}}

    async def one() -> None:
        while time.monotonic() < end:
            t.tries += 1
            until = min(end, time.monotonic() + p["attempt_seconds"])
            s, how = await subscribed(port, sub, until)
            if s is None:
                t.answers["no handshake"] += 1
            else:
                got, n, first = await drain(s, until, p["cap"], keep=1 << 16)
                how = verdict(got, b"", 0)
                t.answers[answer_to_resume(first)] += 1
                t.bytes_in += n
                s.close()
            t.outcomes[how] += 1
            if how == "no connect":
                await asyncio.sleep(0.1)

    await asyncio.gather(*(one() for _ in range(t.clients)))


def answer_to_resume(first: bytes) -> str:
    """What the first bytes after a resume hold: the missed records, or a reset (and snapshot)."""
    for kind in ("reset", "delta", "snapshot"):
        if b'{"type":"%s"' % kind.encode() in first:
            return kind
    return "nothing yet"


async def fetch(t: Tally, port: int, path: str, end: float, cap: int, body: bool = False) -> bytes | None:
    """One GET read to its end (at most `cap` bytes, until `end`), its outcome counted; with `body`,
    the body of a 200 read in full."""
    t.tries += 1
    try:
        s = await dial(port)
    except (OSError, asyncio.TimeoutError):
        t.outcomes["no connect"] += 1
        await asyncio.sleep(0.1)
        return None
    try:
        await asyncio.get_running_loop().sock_sendall(s, get_request(port, path, TOKEN))
        how, n, got = await drain(s, end, cap, keep=cap if body else 64)
    except OSError:
        how, n, got = "reset", 0, b""
    finally:
        s.close()
    t.bytes_in += n
    outcome = verdict(how, got, 200)
    t.outcomes[outcome] += 1
    return got.partition(b"\r\n\r\n")[2] if body and outcome == "ok" else None


async def records_pager(t: Tally, port: int, end: float, p: dict[str, Any]) -> None:
    """The first record of the big run, then page after page (the most a page may hold) from there."""

    async def one() -> None:
        while time.monotonic() < end:
            body = await fetch(t, port, "/api/records?run=big&limit=1", end, MB, body=True)
            while body is not None and time.monotonic() < end:
                try:
                    page = orjson.loads(body)
                except orjson.JSONDecodeError:
                    break
                if not page.get("more"):
                    break
                path = f"/api/records?run=big&limit=100000&cursor={quote(page['cursor'])}"
                body = await fetch(t, port, path, end, p["cap"], body=True)

    await asyncio.gather(*(one() for _ in range(t.clients)))


async def big_poll(t: Tally, port: int, end: float, p: dict[str, Any]) -> None:
    """/api/poll naming the big run 200 times, with the most points a client may ask."""
    path = "/api/poll?" + "&".join(["run=big"] * 200) + "&points=100000"

    async def one() -> None:
        while time.monotonic() < end:
            await fetch(t, port, path, end, p["cap"])

    await asyncio.gather(*(one() for _ in range(t.clients)))


async def endless_header(t: Tally, port: int, end: float, p: dict[str, Any]) -> None:
    """A request line, then one header value at full speed until the server answers or drops the
    connection; then again on a new one, until the end or `header_bytes` sent by this client."""
    loop = asyncio.get_running_loop()
    start = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Filler: ".encode()
    chunk = b"a" * 65536

    async def attempt(budget: int) -> int:
        t.tries += 1
        try:
            s = await dial(port)
        except (OSError, asyncio.TimeoutError):
            t.outcomes["no connect"] += 1
            await asyncio.sleep(0.1)
            return 0
        answer = asyncio.create_task(drain(s, end, MB, head_only=True))
        sent, reset = 0, False
        try:
            await loop.sock_sendall(s, start)
            while sent < budget and not answer.done():
                await asyncio.wait_for(loop.sock_sendall(s, chunk), max(0.001, end - time.monotonic()))
                sent += len(chunk)
        except asyncio.TimeoutError:
            pass  # the server stopped reading; the send was still waiting at the end
        except OSError:
            reset = True
        how, n, head = await answer
        s.close()
        t.bytes_in += n
        t.bytes_out += sent
        outcome = verdict(how, head, 0)
        t.outcomes["reset" if reset and outcome == "still connected" else outcome] += 1
        return sent

    async def one() -> None:
        left = p["header_bytes"]
        while time.monotonic() < end and left > 0:
            left -= await attempt(left)

    await asyncio.gather(*(one() for _ in range(t.clients)))


async def half_open(t: Tally, port: int, end: float, p: dict[str, Any]) -> None:
    """Half a request head, then silence."""
    gate = asyncio.Semaphore(200)  # connections being opened at once
    head = f"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()

    async def one() -> None:
        async with gate:
            try:
                s = await dial(port)
            except (OSError, asyncio.TimeoutError):
                t.outcomes["no connect"] += 1
                return
            try:
                await asyncio.get_running_loop().sock_sendall(s, head)
            except OSError:
                s.close()
                t.outcomes["reset"] += 1
                return
        how, n, answer = await drain(s, end, MB)
        s.close()
        t.bytes_in += n
        t.outcomes[verdict(how, answer, 0)] += 1

    t.tries = t.clients
    await asyncio.gather(*(one() for _ in range(t.clients)))


LOADS = {"slow": slow_readers, "reconnect": reconnects, "records": records_pager, "poll": big_poll,
         "headers": endless_header, "halfopen": half_open}


def hostile(kind: str, clients: int, port: int, end_wall: float, params: dict[str, Any], out: Any) -> None:
    """One kind of hostile client, in its own process, until wall time `end_wall`; reports a Tally."""
    t = Tally(kind, clients)
    end = time.monotonic() + (end_wall - time.time())
    try:
        asyncio.run(LOADS[kind](t, port, end, params))
    finally:
        out.put({**vars(t), "outcomes": dict(t.outcomes), "answers": dict(t.answers)})  # plain types


# ---- phases ---------------------------------------------------------------------------------------


@dataclass
class Phase:
    label: str
    latency: list[float]  # ms, write -> arrival of the points written in the phase that arrived
    waited: list[float]  # ms the others had waited when the phase's measurement ended
    events: dict[str, int]  # what else the good client saw (resets, reconnects)
    health: list[tuple[float, str]]  # (ms, "ok"/"timeout"/"error") of the phase's /healthz requests
    rss_start: float
    rss_peak: float
    killed: bool  # by the memory guard
    died: bool  # by itself
    tallies: list[dict[str, Any]]
    loop_lag: dict[str, float] | None = None  # the server's report over the phase (max_ms, p99_ms)


def written_between(path: Path, t0: float, t1: float) -> list[tuple[int, float]]:
    """(step, write time) of the live run's records written from t0 to t1, read back from its file."""
    out = []
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError:  # the line being written
                continue
            if rec.get("k") == "scalars" and t0 <= rec["t"] <= t1:
                out.append((rec["step"], rec["t"]))
    return out


def run_phase(key: str, root: Path, env: dict[str, str], args: argparse.Namespace) -> Phase:
    """A fresh server, the probes, and the phase's hostile clients for --seconds."""
    label, kinds = PHASES[key]
    server = Sidecar(root, args.max_rss_gb * 1024, env)
    ctx = mp.get_context("spawn")
    ready, stop, newest = ctx.Event(), ctx.Event(), ctx.Value("d", 0.0)
    out, results = ctx.Queue(), ctx.Queue()
    procs: list[Any] = []
    health = HealthProbe(server.port)
    try:
        server.wait_ready()
        cursor = http_json(server.port, "/api/records?run=big&limit=1")["cursor"]
        health.start()
        procs.append(ctx.Process(target=good_client, args=(server.port, ready, newest, stop, out),
                                 daemon=True))
        procs[0].start()
        ready.wait(30)
        time.sleep(1.0)  # the good client settles

        params = {"cursor": cursor, "attempt_seconds": args.attempt_seconds, "cap": args.cap_mb * MB,
                  "header_bytes": args.header_mb * MB}
        clients = {"slow": args.slow_readers, "reconnect": args.reconnectors, "records": args.pagers,
                   "poll": args.pollers, "headers": args.header_streams, "halfopen": args.half_open}
        t0 = time.time()
        for k in kinds:
            load = (k, clients[k], server.port, t0 + args.seconds, params, results)
            procs.append(ctx.Process(target=hostile, args=load, daemon=True))
            procs[-1].start()
        time.sleep(max(0.0, t0 + args.seconds - time.time()))
        t1 = time.time()
        try:  # the server's own view: how late its event loop ran during the phase
            lag = http_json(server.port, f"/healthz?window={args.seconds:g}", timeout=10).get("loop_lag")
        except (OSError, ValueError):
            lag = None
        tallies = []
        for _ in kinds:
            try:
                tallies.append(results.get(timeout=30))
            except Empty:  # a client process that could not report
                break

        grace = time.monotonic() + args.grace  # points of the phase may still be on their way
        while newest.value < t1 and time.monotonic() < grace and server.alive():
            time.sleep(0.05)
        t2 = time.time()
        stop.set()
        health.done.set()
        health.join(HEALTH_TIMEOUT + 2)  # the requests still out come back or time out
        try:
            arrivals, events = out.get(timeout=20)
        except Empty:
            arrivals, events = {}, {"no report": 1}
        latency, waited = [], []
        for step, t in written_between(root / "live" / "rank0.jsonl", t0, t1):
            got = arrivals.get(step)
            if got is None:
                waited.append((t2 - t) * 1000)
            else:
                latency.append((got - t) * 1000)
        return Phase(
            label=label,
            latency=latency,
            waited=waited,
            events=events,
            health=[(ms, how) for start, ms, how in health.samples if t0 <= start <= t1],
            rss_start=server.at(t0),
            rss_peak=server.peak(t0, t2),
            killed=server.killed_at is not None,
            died=not server.alive() and server.killed_at is None,
            tallies=tallies,
            loop_lag=lag,
        )
    finally:
        stop.set()
        health.done.set()
        if health.is_alive():
            health.join(5)
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
        server.stop()


def measure(keys: list[str], root: Path, env: dict[str, str], args: argparse.Namespace) -> list[Phase]:
    """The phases in order, beside one trainer that writes the live run throughout."""
    ctx = mp.get_context("spawn")
    started, stop = ctx.Event(), ctx.Event()
    writer = ctx.Process(target=trainer, args=(str(root), args.rate, started, stop), daemon=True)
    writer.start()
    phases: list[Phase] = []
    try:
        if not started.wait(30):
            raise RuntimeError("the trainer process did not start writing")
        for key in keys:
            t = time.monotonic()
            phases.append(run_phase(key, root, env, args))
            print(f"  {phases[-1].label}: {time.monotonic() - t:.0f} s", flush=True)
    except KeyboardInterrupt:
        print("  interrupted: the phases so far follow")
    finally:
        stop.set()
        writer.join(10)
        if writer.is_alive():
            writer.kill()
    return phases


# ---- the report -----------------------------------------------------------------------------------


def fmt(x: float, digits: int = 1, unit: str = "") -> str:
    return "-" if math.isnan(x) else f"{x:,.{digits}f}{unit}"


def table(header: list[str], rows: list[list[str]]) -> None:
    """A Markdown table, padded so that it reads as plain text too."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        cells = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
        print("| " + " | ".join(cells) + " |")


def quantile(r: Phase, q: float) -> tuple[float, bool]:
    """The q-quantile of the latencies of every point written in the phase, the points that never
    arrived counted as long as they had waited (then it is a lower bound: True)."""
    xs = sorted([(ms, False) for ms in r.latency] + [(ms, True) for ms in r.waited])
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else (math.nan, False)


def shown(x: tuple[float, bool], digits: int = 1, unit: str = "") -> str:
    return (">" if x[1] else "") + fmt(x[0], digits, unit)


def report(phases: list[Phase]) -> None:
    base = quantile(phases[0], 0.99)[0]
    rows = []
    for r in phases:
        ms = [ms for ms, _ in r.health]  # a timeout counts as the 2 s it waited
        timeouts = sum(how == "timeout" for _, how in r.health)
        errors = sum(how == "error" for _, how in r.health)
        p99 = quantile(r, 0.99)
        rows.append([
            r.label, shown(quantile(r, 0.5)), shown(p99), shown((p99[0] / base, p99[1]), 1, "x"),
            f"{len(r.latency)}/{len(r.latency) + len(r.waited)}", fmt(pct(ms, 0.5)), fmt(pct(ms, 0.99)),
            fmt(max(ms, default=math.nan)), f"{timeouts}" + (f" (+{errors} failed)" if errors else ""),
            fmt(r.rss_start, 0), fmt(r.rss_peak, 0) + (" killed" if r.killed else " died" if r.died else ""),
            (f"{fmt(r.loop_lag['p99_ms'])} / {fmt(r.loop_lag['max_ms'])}" if r.loop_lag else "n/a"),
        ])
    table(["phase", "good p50 ms", "p99 ms", "p99 / quiet", "points", "/healthz p50 ms", "p99 ms",
           "max ms", "timeouts", "RSS MB at start", "peak MB", "server loop lag p99 / max ms"], rows)
    print()
    order = list(KINDS)
    for r in phases:
        if r.events:
            print(f"{r.label}: good client: {', '.join(f'{k} {v}' for k, v in sorted(r.events.items()))}")
        for t in sorted(r.tallies, key=lambda t: order.index(t["kind"])):
            what = ", ".join(f"{k} {v}" for k, v in Counter(t["outcomes"]).most_common())
            if t["answers"]:
                what += "; answered: " + ", ".join(f"{k} {v}" for k, v in Counter(t["answers"]).most_common())
            tries = f", {t['tries']} tries" if t["tries"] != t["clients"] else ""
            moved = f"; {t['bytes_in'] / MB:,.0f} MB in"
            moved += f", {t['bytes_out'] / MB:,.0f} MB out" if t["bytes_out"] else ""
            print(f"{r.label}: {KINDS[t['kind']]} x{t['clients']}{tries}: {what or 'nothing'}{moved}")
    print()

    def within(r: Phase) -> str:
        p99, bound = quantile(r, 0.99)
        ok = p99 <= 2 * base and not r.killed
        lost = f" ({len(r.waited)} points never came)" if r.waited else ""
        return f"{r.label} {shown((p99 / base, bound), 1, 'x')}{lost} {'ok' if ok else 'MISSED'}"

    def healthy(r: Phase) -> str:
        worst = max((ms for ms, _ in r.health), default=math.nan)
        failed = sum(how != "ok" for _, how in r.health)
        ok = not failed and worst <= 200
        failures = f", {failed} failed" if failed else ""
        return f"{r.label} {fmt(worst, 0, ' ms')}{failures} {'ok' if ok else 'MISSED'}"

    print("goal: good-client p99 within 2x of quiet: " + "; ".join(within(r) for r in phases[1:]))
    print("goal: /healthz never above 200 ms (worst): " + "; ".join(healthy(r) for r in phases))
    top = max(phases, key=lambda r: -1 if math.isnan(r.rss_peak) else r.rss_peak)
    killed = [r.label for r in phases if r.killed]
    print(f"peak server memory: {fmt(top.rss_peak, 0)} MB ({top.label}); "
          f"quiet {fmt(phases[0].rss_peak, 0)} MB"
          + (f"; killed above the memory guard in: {', '.join(killed)}" if killed else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each phase")
    ap.add_argument("--big-records", type=int, default=5_000_000)
    ap.add_argument("--rate", type=float, default=500.0, help="records/s of the live run")
    ap.add_argument("--phases", default=",".join(PHASES),
                    help=f"some of {','.join(PHASES)} (quiet always runs)")
    ap.add_argument("--slow-readers", type=int, default=100)
    ap.add_argument("--reconnectors", type=int, default=4)
    ap.add_argument("--attempt-seconds", type=float, default=2.0,
                    help="a reconnector reads this long, then drops the connection")
    ap.add_argument("--pagers", type=int, default=2)
    ap.add_argument("--pollers", type=int, default=2)
    ap.add_argument("--header-streams", type=int, default=4)
    ap.add_argument("--header-mb", type=int, default=256,
                    help="header bytes one endless-header client sends at most")
    ap.add_argument("--half-open", type=int, default=2000)
    ap.add_argument("--cap-mb", type=int, default=256,
                    help="bytes a hostile client reads per request at most")
    ap.add_argument("--grace", type=float, default=15.0, help="seconds to wait for a phase's last points")
    ap.add_argument("--max-rss-gb", type=float, default=6.0, help="the server is killed above this")
    ap.add_argument("--commit", help="run the server as it was at this commit (default: the working tree)")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tailboard-bench"
    ap.add_argument("--cache", type=Path, default=cache, help=f"where the big run is kept ({cache})")
    args = ap.parse_args()
    wanted = set(args.phases.split(","))
    if wanted - set(PHASES):
        ap.error(f"--phases: unknown {','.join(sorted(wanted - set(PHASES)))}")
    keys = [k for k in PHASES if k in wanted or k == "quiet"]

    t = time.perf_counter()
    big = big_log(args.cache, args.big_records)
    print(f"big run: {args.big_records:,} records, {big.stat().st_size / MB:,.0f} MB ({big}, "
          f"{time.perf_counter() - t:.1f} s); live run {args.rate:.0f} records/s; "
          f"{args.seconds:.0f} s a phase")
    tmp = Path(tempfile.mkdtemp(prefix="tailboard-hostile-"))
    try:
        env, code = server_code(args.commit, tmp / "server")
        print(f"server: {code}", flush=True)
        root = tmp / "logs"
        (root / "big").mkdir(parents=True)
        try:
            os.link(big, root / "big" / "rank0.jsonl")
        except OSError:  # another file system
            shutil.copyfile(big, root / "big" / "rank0.jsonl")
        phases = measure(keys, root, env, args)
        if phases:
            print()
            report(phases)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
