"""Alert rules on real logs: streams written by the real writer (and GPU samples by the real sampler
over a fake NVML) into a temp tree, followed by the real Follower and Store, evaluated by the engine
with a clock the test moves; webhooks against a real HTTP server on a loopback port; the whole path
through the real server."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import tailboard
import tailboard.run
from tailboard.sidecar.alerts import (
    AlertBook,
    AlertConfig,
    AlertEngine,
    Change,
    Webhooks,
    load_config,
)
from tailboard.sidecar.alerts.webhooks import parse_webhook, payload
from tailboard.sidecar.follower import Follower
from tailboard.sidecar.gpu import GpuSampler, gpu_key, system_run_id
from tailboard.sidecar.gpu.fake import FakeNvml, uuid_for
from tailboard.sidecar.server import Server
from tailboard.sidecar.store import Store
from websockets.asyncio.client import connect

FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}
TOKEN = "alert-token"
GiB = 2**30


class Clock:
    """The engine's clock (Unix seconds), moved by the test."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def wait_until(pred: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


class Watched:
    """A real Store and Follower over ``root``, and an engine with a test clock."""

    def __init__(self, root: Path, config: AlertConfig | None = None) -> None:
        self.root = root
        self.store = Store(root)
        self.clock = Clock()
        self.engine = AlertEngine(self.store, config, clock=self.clock, tick_every=3600)
        self.follower = Follower(root, self.store, **FAST)
        self.changes: list[Change] = []
        self.engine.book.subscribe(self.changes.append)

    async def start(self) -> None:
        self.engine.start()
        await self.follower.start(wait=True)
        assert self.engine.flush()

    async def stop(self) -> None:
        await self.follower.stop()
        self.engine.stop()

    async def settle(self, run_id: str, records: int) -> None:
        """Wait until the store holds ``records`` records of the run and the engine has seen them."""
        def held() -> bool:
            info = self.store.get_run(run_id)
            return info is not None and info.records >= records
        await wait_until(held, f"{records} records of {run_id}")
        assert self.engine.flush()

    def active(self, rule: str | None = None) -> list[Any]:
        return [a for a in self.engine.book.active() if rule is None or a.rule == rule]

    def events(self, rule: str) -> list[tuple[str, str]]:
        return [(c.event, c.alert.id) for c in self.changes if c.alert.rule == rule]


@pytest.fixture
async def watched(tmp_path: Path) -> Any:
    w = Watched(tmp_path)
    yield w
    await w.stop()


def records_of(run: tailboard.Run) -> int:
    return int(run.records)


# ---- the rules about a run's values -------------------------------------------------------------


async def test_a_non_finite_value_fires_once_and_clears_when_finite_again(watched: Watched) -> None:
    run = tailboard.init(watched.root / "exp/a")
    for i in range(5):
        run.log({"train/loss": 1.0, "acc": 0.5}, step=i)
    await watched.start()
    assert watched.active() == []
    run.log({"train/loss": float("nan"), "acc": 0.5}, step=5)
    run.log({"train/loss": float("inf"), "acc": float("-inf")}, step=6)  # still on: no second alert
    await watched.settle("exp/a", records_of(run))
    [alert] = watched.active("nonfinite")
    assert alert.level == "error" and alert.run == "exp/a" and alert.step == 5
    assert "train/loss is NaN at step 5" in alert.text
    assert alert.backlog is False and alert.started == watched.clock.now
    run.log({"train/loss": 0.9}, step=7)  # acc is still -inf: on
    await watched.settle("exp/a", records_of(run))
    assert watched.active("nonfinite")
    watched.clock.now += 5
    run.log({"train/loss": 0.9, "acc": 0.6}, step=8)
    await watched.settle("exp/a", records_of(run))
    assert watched.active("nonfinite") == []
    assert watched.events("nonfinite") == [("fired", "nonfinite:exp/a"), ("cleared", "nonfinite:exp/a")]
    [ended] = watched.engine.book.recent()
    assert ended.ended == watched.clock.now and ended.details["cleared_by"] == "finite again"
    run.finish()


@pytest.mark.parametrize("history", [20, 80])  # a window still filling (50 values), a full one
async def test_a_spike_over_k_times_the_rolling_median_fires_once_and_clears(watched: Watched, history: int) -> None:
    run = tailboard.init(watched.root / "exp/b")
    for i in range(history):  # values around 1
        run.log({"train/loss": 1.0 + 0.01 * (i % 3), "lr": 0.001}, step=i)
    await watched.start()
    h = history
    run.log({"train/loss": 9.0, "lr": 0.1}, step=h)  # 9x: under the factor; lr is not watched
    await watched.settle("exp/b", records_of(run))
    assert watched.active() == []
    run.log({"train/loss": 50.0, "lr": 0.001}, step=h + 1)
    run.log({"train/loss": 60.0}, step=h + 2)  # still a spike: the same alert
    await watched.settle("exp/b", records_of(run))
    [alert] = watched.active("spike")
    assert alert.level == "warning" and alert.step == h + 1 and alert.details["metric"] == "train/loss"
    assert f"train/loss = 50 at step {h + 1}" in alert.text
    assert f"the median of its previous {min(h + 1, 50)} values" in alert.text
    run.log({"train/loss": 1.0}, step=h + 3)
    await watched.settle("exp/b", records_of(run))
    assert watched.active("spike") == []
    assert watched.events("spike") == [("fired", "spike:exp/b"), ("cleared", "spike:exp/b")]
    run.finish()


async def test_a_run_that_stops_writing_stalls_after_n_typical_intervals(watched: Watched,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    t = [1_800_000_000.0]
    monkeypatch.setattr(tailboard.run, "_time", lambda: t[0])  # records 2 s apart, by their own times

    def log(run: tailboard.Run, step: int) -> None:
        t[0] += 2.0
        run.log({"loss": 1.0}, step=step)

    await watched.start()
    run = tailboard.init(watched.root / "exp/c")
    for i in range(8):
        log(run, i)
    done = tailboard.init(watched.root / "exp/done")
    for i in range(8):
        log(done, i)
    done.finish()
    await watched.settle("exp/c", records_of(run))
    await watched.settle("exp/done", done.records)
    engine, clock = watched.engine, watched.clock
    clock.now += 59  # 10 x 2 s = 20 s, but at least stall_min = 60 s
    engine.tick()
    assert watched.active("stall") == []
    clock.now += 2
    engine.tick()
    [alert] = watched.active("stall")
    assert alert.run == "exp/c" and "no record for 61 s" in alert.text and alert.details["interval"] == 2.0
    clock.now += 100
    engine.tick()  # still stalled: no second alert
    assert len(watched.events("stall")) == 1
    log(run, 8)
    await watched.settle("exp/c", records_of(run))
    assert watched.active("stall") == []
    run.finish()
    await watched.settle("exp/c", records_of(run))
    clock.now += 1000
    engine.tick()  # a run that ended does not stall
    assert watched.active("stall") == []


async def test_a_failed_run_fires_and_its_restart_clears_it(watched: Watched) -> None:
    old = tailboard.init(watched.root / "exp/old")
    old.finish("failed", "RuntimeError: yesterday")  # failed before the sidecar: its status says so
    await watched.start()
    run = tailboard.init(watched.root / "exp/d")
    run.log({"loss": float("nan")}, step=0)
    await watched.settle("exp/d", records_of(run))
    assert [a.rule for a in watched.active()] == ["nonfinite"]
    run.finish("failed", "RuntimeError: CUDA out of memory")
    await watched.settle("exp/d", records_of(run))
    [alert] = watched.active()
    assert (alert.rule, alert.level, alert.title) == ("run_failed", "error", "exp/d failed")
    assert alert.text == "RuntimeError: CUDA out of memory"
    # the run's NaN ended with it: cleared, not left active
    assert watched.events("nonfinite") == [("fired", "nonfinite:exp/d"), ("cleared", "nonfinite:exp/d")]
    assert watched.engine.book.recent()[0].details["cleared_by"] == "the run ended"
    again = tailboard.init(watched.root / "exp/d")  # started again: a new attempt
    again.log({"loss": 1.0}, step=0)
    await watched.settle("exp/d", records_of(run) + records_of(again))
    assert watched.active() == []
    assert watched.engine.book.recent()[0].details["cleared_by"] == "the run started again"
    again.finish()


async def test_the_trainers_alerts_fire_fold_by_title_and_clear_when_the_run_ends(watched: Watched) -> None:
    await watched.start()
    run = tailboard.init(watched.root / "exp/e")
    run.log({"loss": 1.0}, step=3)
    run.alert("val loss plateaued", "no progress in 1000 steps", level="info")
    run.alert("val loss plateaued", "no progress in 2000 steps", level="info")
    run.alert("grad <!channel>", level="error")
    await watched.settle("exp/e", records_of(run))
    alerts = {a.title: a for a in watched.active("trainer")}
    assert set(alerts) == {"val loss plateaued", "grad <!channel>"}
    plateau = alerts["val loss plateaued"]
    assert (plateau.level, plateau.count, plateau.text, plateau.step) == ("info", 2, "no progress in 2000 steps", 3)
    assert alerts["grad <!channel>"].level == "error" and alerts["grad <!channel>"].text == ""
    assert len(watched.events("trainer")) == 2  # the repeat was folded, not sent again
    # the record is a text any reader shows
    assert "val loss plateaued: no progress in 1000 steps" in watched.store.texts("exp/e")["texts"]
    run.finish()
    await watched.settle("exp/e", records_of(run))
    assert watched.active() == []


def test_alert_misuse_raises_at_once(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "r")
    with pytest.raises(TypeError, match="title"):
        run.alert("")
    with pytest.raises(TypeError, match="text"):
        run.alert("t", 3)
    with pytest.raises(ValueError, match="info, warning, error"):
        run.alert("t", level="critical")
    run.finish()
    with pytest.raises(RuntimeError, match="init"):
        tailboard._current = None
        tailboard.alert("t")


async def test_alerts_found_in_the_backlog_are_listed_and_not_sent(tmp_path: Path) -> None:
    run = tailboard.init(tmp_path / "exp/f")
    run.log({"loss": 1.0}, step=0)
    run.log({"loss": float("nan")}, step=1)  # still NaN when the sidecar starts
    run.alert("checkpoint saved", level="info")
    sent: list[Change] = []
    w = Watched(tmp_path)
    hooks = Webhooks(["http://127.0.0.1:9/never"])  # not started: what it would send stays queued
    w.engine.book.subscribe(hooks)
    w.engine.book.subscribe(sent.append)
    await w.start()
    try:
        assert {a.rule for a in w.active()} == {"nonfinite", "trainer"}
        assert all(a.backlog for a in w.active())
        assert hooks.status()[0]["queued"] == 0 and hooks.suppressed == 0
    finally:
        await w.stop()
        run.finish()


# ---- GPU rules over the sampler's run -----------------------------------------------------------------


class GpuScene:
    """A sampler over a fake GPU writing into the tree, with a wall clock the test moves."""

    def __init__(self, root: Path) -> None:
        self.nv = FakeNvml.with_gpus(1)
        self.gpu = self.nv.gpus[0]
        self.t = 1_800_000_000.0
        self.sampler = GpuSampler(str(root), nvml=self.nv, node="node-a", wall=lambda: self.t)
        self.key = gpu_key(uuid_for(0))
        self.samples = 0

    def sample(self, seconds: float = 1.0, **figures: Any) -> None:
        for name, value in figures.items():
            setattr(self.gpu, name, value)
        self.t += seconds
        assert self.sampler.tick() is not None
        self.samples += 1


async def test_gpu_rules_memory_throttling_ecc_and_idle_under_a_running_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scene = GpuScene(tmp_path)
    scene.sample(util=90)
    w = Watched(tmp_path)
    await w.start()
    system = system_run_id("node-a")
    try:
        async def samples(**figures: Any) -> None:
            scene.sample(**figures)
            await w.settle(system, 0)
            await wait_until(lambda: (w.store.get_run(system) or None) and
                             w.store.series(system, f"gpu/{scene.key}/util").steps.shape[0] >= scene.samples,
                             "the sample")
            assert w.engine.flush()

        total = scene.gpu.mem_total
        await samples(mem_used=int(total * 0.97))
        [mem] = w.active("gpu_memory")
        assert mem.gpu["uuid"] == uuid_for(0) and mem.gpu["host"] == "node-a" and "97%" in mem.title
        await samples(mem_used=int(total * 0.94))  # under 95%, within the 2 points: still on
        assert w.active("gpu_memory")
        await samples(mem_used=int(total * 0.5))
        assert w.active("gpu_memory") == []

        await samples(throttle=0x4)  # the software power cap of a busy GPU: not throttling
        assert w.active("gpu_throttle") == []
        await samples(throttle=0x4 | 0x40)
        [throttle] = w.active("gpu_throttle")
        assert throttle.text == "hardware thermal slowdown"
        await samples(throttle=0)
        assert w.active("gpu_throttle") == []

        await samples(ecc=(5, 0))  # corrected: no alert
        assert w.active("gpu_ecc") == []
        await samples(ecc=(5, 2))
        [ecc] = w.active("gpu_ecc")
        assert ecc.level == "error" and ecc.details["uncorrected"] == 2

        # idle: no run on the GPU yet, then one whose header names it (NVIDIA_VISIBLE_DEVICES)
        await samples(util=0)
        await samples(seconds=200, util=0)
        assert w.active("gpu_idle") == []
        monkeypatch.setenv("NVIDIA_VISIBLE_DEVICES", uuid_for(0))
        run = tailboard.init(tmp_path / "exp/train")
        run.log({"loss": 1.0}, step=0)
        await w.settle("exp/train", records_of(run))
        await samples(seconds=1, util=0)
        [idle] = w.active("gpu_idle")
        assert idle.run == "exp/train" and idle.details["runs"] == ["exp/train"]
        assert idle.details["idle_for"] >= 120 and "exp/train" in idle.title
        await samples(util=80)
        assert w.active("gpu_idle") == []
        await samples(util=0)
        await samples(seconds=121, util=0)
        assert w.active("gpu_idle")
        run.finish()  # nobody runs on it any more: no longer an alert
        await w.settle("exp/train", records_of(run))
        await samples(util=0)
        assert w.active("gpu_idle") == []
        scene.sampler.stop()  # the sampler's final record: its GPUs' alerts clear
        await wait_until(lambda: w.store.get_run(system).status == "finished", "the sampler's end")
        assert w.engine.flush()
        assert w.active() == []
    finally:
        await w.stop()


# ---- thresholds -------------------------------------------------------------------------------------


def test_thresholds_come_from_flags_and_a_file_and_typos_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.json"
    path.write_text(json.dumps({"spike_factor": 5, "stall": "off", "gpu-memory-used": 0.9}))
    config = load_config(str(path), ["spike_factor=7", "gpu_throttle_mask=0x40", "stall=on", "gpu_idle=off"])
    assert (config.spike_factor, config.gpu_memory_used, config.gpu_throttle_mask) == (7.0, 0.9, 0x40)
    assert config.enabled("stall") and not config.enabled("gpu_idle")
    for bad, message in (
        (["spike_facter=5"], "unknown alert setting 'spike_facter'"),
        (["spike_factor=lots"], "not a valid float"),
        (["spike=maybe"], "'on' or 'off'"),
        (["spike_factor"], "KEY=VALUE"),
        (["spike_factor=0.5"], "more than 1"),
        (["spike_metrics=("], "regular expression"),
    ):
        with pytest.raises(ValueError, match=message):
            load_config(None, bad)
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        load_config(str(tmp_path / "bad.json"))


async def test_switched_off_rules_and_thresholds_are_honoured(tmp_path: Path) -> None:
    w = Watched(tmp_path, AlertConfig().with_values({"nonfinite": "off", "spike_factor": "3",
                                                     "spike_metrics": "^acc$"}))
    run = tailboard.init(tmp_path / "exp/g")
    for i in range(12):
        run.log({"acc": 1.0, "loss": 1.0}, step=i)
    await w.start()
    try:
        run.log({"acc": 4.0, "loss": float("nan")}, step=12)
        await w.settle("exp/g", records_of(run))
        assert [a.rule for a in w.active()] == ["spike"]
    finally:
        await w.stop()
        run.finish()


# ---- webhooks -------------------------------------------------------------------------------------------


class Receiver:
    """A real HTTP server on a loopback port that records the POSTs it gets. ``script`` maps a path
    to the statuses it answers in turn (then 200); ``hang`` paths never answer in time."""

    def __init__(self) -> None:
        self.got: list[tuple[str, dict[str, str], Any]] = []
        self.script: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.hang: set[str] = set()
        self.release = threading.Event()
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.arrived:
                    receiver.got.append((self.path, dict(self.headers), json.loads(body)))
                    receiver.arrived.notify_all()
                if self.path in receiver.hang:
                    receiver.release.wait(10)
                    return
                queue = receiver.script.get(self.path) or []
                status, headers = queue.pop(0) if queue else (200, {})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, prefix: str = "") -> str:
        return f"{prefix}http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posts(self, path: str) -> list[Any]:
        return [body for p, _, body in self.got if p == path]

    def wait(self, pred: Callable[[], Any], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not pred():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; got {self.got}"
                self.arrived.wait(left)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def fire(book: AlertBook, id: str = "nonfinite:exp/a", text: str = "loss is NaN at step 5", **kw: Any) -> None:
    book.fire(id, kw.pop("rule", "nonfinite"), kw.pop("level", "error"), "Non-finite value in exp/a", text,
              time.time(), run="exp/a", **kw)


def test_webhooks_get_slack_discord_and_json_shapes(receiver: Receiver) -> None:
    book = AlertBook()
    hooks = Webhooks([receiver.url("/slack", "slack+"), receiver.url("/discord", "discord+"),
                      receiver.url("/json")], backoff=0.01)
    book.subscribe(hooks)
    hooks.start()
    try:
        fire(book, text="loss is NaN <!channel> & @everyone")
        book.clear("nonfinite:exp/a", time.time(), "finite again")
        receiver.wait(lambda: all(len(receiver.posts(p)) == 2 for p in ("/slack", "/discord", "/json")))
    finally:
        hooks.stop()
    fired, cleared = receiver.posts("/slack")
    assert fired["text"].startswith(":rotating_light: *[ERROR] Non-finite value in exp/a*")
    assert "loss is NaN &lt;!channel&gt; &amp; @everyone" in fired["text"]  # log content stays text
    assert "<!channel>" not in fired["text"] and "_run exp/a_" in fired["text"]
    assert cleared["text"].startswith(":white_check_mark: *Resolved: [ERROR]")
    fired, cleared = receiver.posts("/discord")
    assert fired["content"].startswith("**[ERROR] Non-finite value in exp/a**")
    assert fired["allowed_mentions"] == {"parse": []} and fired["username"] == "tailboard"
    fired, cleared = receiver.posts("/json")
    assert fired["event"] == "fired" and cleared["event"] == "cleared"
    assert fired["alert"]["id"] == "nonfinite:exp/a" and fired["alert"]["active"] is True
    assert cleared["alert"]["details"]["cleared_by"] == "finite again" and fired["server"].startswith("tailboard")
    headers = next(h for p, h, _ in receiver.got if p == "/json")
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"].startswith("tailboard/")
    assert [s["sent"] for s in hooks.status()] == [2, 2, 2]


def test_the_shape_is_chosen_by_the_url_and_urls_are_never_shown() -> None:
    assert parse_webhook("https://hooks.slack.com/services/T0/B0/secret").kind == "slack"
    assert parse_webhook("https://discord.com/api/webhooks/1/secret").kind == "discord"
    assert parse_webhook("https://discordapp.com/api/webhooks/1/secret").kind == "discord"
    assert parse_webhook("https://discord.com/somewhere/else").kind == "json"
    assert parse_webhook("https://alerts.example.com/hook").kind == "json"
    assert parse_webhook("slack+https://chat.example.com/hooks/x").kind == "slack"  # Mattermost
    assert parse_webhook("slack+https://chat.example.com/hooks/x").url == "https://chat.example.com/hooks/x"
    for bad in ("ftp://example.com/secret-path", "hooks.slack.com/services/secret-path", "https://"):
        with pytest.raises(ValueError) as e:
            parse_webhook(bad)
        assert "secret-path" not in str(e.value)
    long = AlertBook()
    fire(long, text="x" * 5000)
    body = payload("discord", Change("fired", long.active()[0]))
    assert len(body["content"]) <= 2000


def test_failed_posts_are_retried_with_backoff_and_given_up_on_refusal(receiver: Receiver) -> None:
    receiver.script["/flaky"] = [(500, {}), (503, {}), (429, {"Retry-After": "0.2"})]
    receiver.script["/gone"] = [(404, {})]
    book = AlertBook()
    hooks = Webhooks([receiver.url("/flaky"), receiver.url("/gone")], backoff=0.05, retries=4)
    book.subscribe(hooks)
    hooks.start()
    try:
        started = time.monotonic()
        fire(book)
        receiver.wait(lambda: len(receiver.posts("/flaky")) == 4)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 5
        while hooks.status()[1]["failed"] == 0 or hooks.status()[0]["sent"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        hooks.stop()
    assert elapsed >= 0.05 + 0.1 + 0.2  # the backoff doubled, then Retry-After
    flaky, gone = hooks.status()
    assert (flaky["sent"], flaky["retried"], flaky["failed"]) == (1, 3, 0)
    assert (gone["sent"], gone["retried"], gone["failed"], gone["last_error"]) == (0, 0, 1, "HTTP 404")
    assert len(receiver.posts("/gone")) == 1  # a refusal is final


def test_a_hanging_endpoint_times_out_drops_its_oldest_and_delays_nobody(receiver: Receiver) -> None:
    receiver.hang.add("/slow")
    book = AlertBook()
    hooks = Webhooks([receiver.url("/slow"), receiver.url("/fast")], timeout=0.3, retries=0, queue_size=2)
    book.subscribe(hooks)
    hooks.start()
    try:
        for i in range(5):  # each reaches the fast endpoint at once, whatever the slow one does
            fire(book, id=f"nonfinite:run{i}")
            receiver.wait(partial(lambda n: len(receiver.posts("/fast")) == n, i + 1), timeout=0.25)
        deadline = time.monotonic() + 5
        while hooks.status()[0]["failed"] < 3:
            assert time.monotonic() < deadline, hooks.status()
            time.sleep(0.02)
    finally:
        hooks.stop(timeout=2)
    slow = hooks.status()[0]
    assert slow["dropped"] == 2 and slow["failed"] == 3  # 1 under way + 2 queued, 2 dropped
    assert "timed out" in (slow["last_error"] or "")


def test_a_flapping_alert_is_sent_once_within_repeat_after(receiver: Receiver) -> None:
    book = AlertBook()
    now = [0.0]
    hooks = Webhooks([receiver.url("/json")], repeat_after=600, clock=lambda: now[0])
    book.subscribe(hooks)
    hooks.start()
    try:
        for _ in range(3):  # fires and clears three times in a minute: one page, one resolution
            fire(book)
            book.clear("nonfinite:exp/a", time.time())
            now[0] += 20
        now[0] += 600
        fire(book)
        receiver.wait(lambda: len(receiver.posts("/json")) == 3)
        time.sleep(0.1)
    finally:
        hooks.stop()
    assert [b["event"] for b in receiver.posts("/json")] == ["fired", "cleared", "fired"]
    assert hooks.suppressed == 2


# ---- through the server -------------------------------------------------------------------------------


async def test_the_server_sends_alerts_to_webhooks_the_page_and_the_api(tmp_path: Path, receiver: Receiver) -> None:
    run = tailboard.init(tmp_path / "exp/a")
    for i in range(5):
        run.log({"train/loss": 1.0}, step=i)
    server = Server(tmp_path, port=0, token=TOKEN, follower_options=FAST, webhooks=[receiver.url("/hook")])
    await server.start(wait_for_backlog=True)
    try:
        url = f"ws://127.0.0.1:{server.port}/ws?token={TOKEN}"
        async with connect(url) as ws:
            hello = json.loads(await ws.recv())
            assert hello["features"] == {"alerts": True, "control": False, "metrics": False}
            run.log({"train/loss": float("nan")}, step=5)
            deadline = time.monotonic() + 10
            pushed = runs_seen = None
            while pushed is None or runs_seen is None:
                msg = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
                if msg["type"] == "alert":
                    pushed = msg
                elif msg["type"] == "runs" and any(r.get("alerts") for r in msg["runs"]):
                    runs_seen = msg
        assert pushed["event"] == "fired" and pushed["alert"]["rule"] == "nonfinite"
        assert runs_seen["runs"][0]["alerts"] == {"error": 1}
        await asyncio.to_thread(receiver.wait, lambda: receiver.posts("/hook"))
        [body] = receiver.posts("/hook")
        assert body["event"] == "fired" and body["alert"]["run"] == "exp/a"
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            assert (await http.get("/api/alerts")).status_code == 401
            got = (await http.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})).json()
            assert [a["rule"] for a in got["active"]] == ["nonfinite"] and got["counts"]["error"] == 1
            assert got["webhooks"][0]["host"] == "127.0.0.1" and got["webhooks"][0]["sent"] == 1
            assert "path" not in json.dumps(got["webhooks"]) and "/hook" not in json.dumps(got["webhooks"])
            one = (await http.get("/api/alerts?run=other", headers={"Authorization": f"Bearer {TOKEN}"})).json()
            assert one["active"] == []
            runs = (await http.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})).json()
            assert runs["runs"][0]["alerts"] == {"error": 1}
    finally:
        run.finish()
        await server.stop()


# ---- the command line -----------------------------------------------------------------------------------


def test_bad_alert_webhook_and_control_flags_stop_the_start_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tailboard.sidecar.cli import main

    for args, message in (
        (["--alert", "spike_facter=5"], "unknown alert setting 'spike_facter'"),
        (["--alerts-config", str(tmp_path / "missing.json")], "cannot read the alerts config"),
        (["--webhook", "ftp://example.com/secret-path"], "http(s) URL"),
        (["--no-alerts", "--webhook", "https://example.com/x"], "--no-alerts"),
        (["--metrics", "--metrics-include", "("], "not a regular expression"),
        (["--allow-control", "--no-auth"], "--allow-control needs the token"),
    ):
        assert main(["serve", str(tmp_path), "--port", "0", *args]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "secret-path" not in err and len(err.strip().splitlines()) == 1, err
