"""Alerts sent to webhooks (``serve --webhook URL``, repeatable), in the background.

The payload's shape is chosen by the URL: Slack's incoming webhooks (``hooks.slack.com``) get
``{"text": ...}`` in Slack's markup, Discord's (``discord.com/api/webhooks/...``) get ``{"content":
...}``, anything else the alert as JSON (``{"event", "alert", "server"}``). A prefix chooses it
whatever the host: ``slack+https://...`` (Mattermost and Rocket.Chat take Slack's shape),
``discord+https://...``, ``json+https://...``.

Each URL has a thread and a bounded queue of its own, so a dead endpoint delays nobody else: when its
queue is full the oldest message is dropped (counted). A message is tried ``retries`` more times
after a connection error, a timeout, a 5xx or a 429 (after its ``Retry-After`` when it gives one),
waiting ``backoff`` seconds doubling to ``max_backoff``; other answers are final. Alerts found in the
backlog are never sent, and an alert that fires again within ``repeat_after`` seconds of the last one
sent for the same thing is not sent again (nor is its clearing): a flapping condition pages once.

Alert texts are log content: they are escaped for Slack's markup (``<!channel>`` stays text) and
Discord is told to ping nobody (``allowed_mentions``). URLs are secrets: only their host is logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from tailboard import __version__

from .book import CLEARED, FIRED, Alert, Change

__all__ = ["Endpoint", "Webhooks", "parse_webhook", "payload"]

logger = logging.getLogger(__name__)

SLACK, DISCORD, JSON = "slack", "discord", "json"
_PREFIXES = {f"{k}+": k for k in (SLACK, DISCORD, JSON)}
_DISCORD_HOSTS = {"discord.com", "discordapp.com", "ptb.discord.com", "canary.discord.com"}
#: Discord refuses longer messages.
DISCORD_MAX = 2000
_ICONS = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}
_REPEATS_KEPT = 10_000


@dataclass(frozen=True)
class Endpoint:
    kind: str  # SLACK, DISCORD or JSON
    url: str

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"


def parse_webhook(text: str) -> Endpoint:
    """A ``--webhook`` value; ValueError for anything but an http(s) URL (the message never holds
    the URL's path, which is the secret part)."""
    raw = text.strip()
    kind = None
    for prefix, k in _PREFIXES.items():
        if raw.lower().startswith(prefix):
            kind, raw = k, raw[len(prefix):]
            break
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--webhook takes an http(s) URL (optionally slack+, discord+ or json+ in front), "
                         f"not one starting {raw[:12]!r}")
    if kind is None:
        host = parts.hostname.lower()
        if host == "hooks.slack.com":
            kind = SLACK
        elif host in _DISCORD_HOSTS and parts.path.startswith("/api/webhooks/"):
            kind = DISCORD
        else:
            kind = JSON
    return Endpoint(kind, raw)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _what(alert: Alert) -> str:
    where = f"run {alert.run}" if alert.run else ""
    if alert.gpu:
        where = f"{where}, " if where else ""
        where += f"GPU {alert.gpu.get('key')} on {alert.gpu.get('host')}"
    return where


def payload(kind: str, change: Change, *, server: str = f"tailboard {__version__}",
            page: str | None = None) -> dict[str, Any]:
    """The body sent to an endpoint of ``kind`` for ``change``; ``page``: a link to the viewer."""
    a = change.alert
    if kind == JSON:
        body: dict[str, Any] = {"event": change.event, "alert": a.to_json(), "server": server}
        if page:
            body["page"] = page
        return body
    resolved = change.event == CLEARED
    head = f"{'Resolved: ' if resolved else ''}[{a.level.upper()}] {a.title}"
    lines = [a.text] if a.text and not resolved else []
    where = _what(a)
    if kind == SLACK:
        icon = ":white_check_mark:" if resolved else _ICONS.get(a.level, "")
        text = f"{icon} *{_slack_escape(head)}*"
        for line in lines:
            text += "\n" + _slack_escape(line)
        if where:
            text += f"\n_{_slack_escape(where)}_"
        if page:
            text += f"\n<{page}|open tailboard>"
        return {"text": text}
    text = f"**{head}**" + "".join("\n" + line for line in lines) + (f"\n*{where}*" if where else "")
    if page:
        text += f"\n{page}"
    if len(text) > DISCORD_MAX:
        text = text[: DISCORD_MAX - 1] + "…"
    return {"content": text, "username": "tailboard", "allowed_mentions": {"parse": []}}


@dataclass
class _Outbox:
    endpoint: Endpoint
    queue: deque[Change]
    wake: threading.Condition = field(default_factory=threading.Condition)
    sent: int = 0
    failed: int = 0
    dropped: int = 0
    retried: int = 0
    last_error: str | None = None
    thread: threading.Thread | None = None


class Webhooks:
    """Subscribe an instance to an ``AlertBook``: it is called with each ``Change``."""

    def __init__(
        self,
        urls: Iterable[str],
        *,
        server: str = f"tailboard {__version__}",
        page: str | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        queue_size: int = 100,
        repeat_after: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server = server
        self.page = page
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.repeat_after = repeat_after
        self.clock = clock
        self.suppressed = 0
        self._outboxes = [_Outbox(parse_webhook(u), deque(maxlen=queue_size)) for u in urls]
        # alert id -> (when its firing was last sent, whether its latest firing was)
        self._sent: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._stop = threading.Event()

    def __bool__(self) -> bool:
        return bool(self._outboxes)

    def start(self) -> None:
        for i, box in enumerate(self._outboxes):
            box.thread = threading.Thread(target=self._run, args=(box,), name=f"tailboard-webhook-{i}", daemon=True)
            box.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending: a wait between tries ends at once, a request under way has ``timeout``."""
        self._stop.set()
        for box in self._outboxes:
            with box.wake:
                box.wake.notify_all()
        deadline = time.monotonic() + timeout
        for box in self._outboxes:
            if box.thread is not None:
                box.thread.join(max(0.0, deadline - time.monotonic()))

    # ---- the book's subscriber (the engine's thread): decide and queue, never wait --------------

    def __call__(self, change: Change) -> None:
        a = change.alert
        if a.backlog or not self._outboxes:
            return
        now = self.clock()
        last = self._sent.get(a.id)
        if change.event == FIRED:
            if last is not None and now - last[0] < self.repeat_after:
                self.suppressed += 1
                self._sent[a.id] = (last[0], False)  # nor is its clearing sent
                return
            self._sent[a.id] = (now, True)
            self._sent.move_to_end(a.id)
            while len(self._sent) > _REPEATS_KEPT:
                self._sent.popitem(last=False)
        elif last is None or not last[1]:  # its firing was not sent
            return
        for box in self._outboxes:
            with box.wake:
                if len(box.queue) == box.queue.maxlen:
                    box.dropped += 1
                box.queue.append(change)
                box.wake.notify()

    # ---- one thread per endpoint ---------------------------------------------------------------

    def _run(self, box: _Outbox) -> None:
        while not self._stop.is_set():
            with box.wake:
                while not box.queue and not self._stop.is_set():
                    box.wake.wait()
                if self._stop.is_set():
                    return
                change = box.queue.popleft()
            body = orjson.dumps(payload(box.endpoint.kind, change, server=self.server, page=self.page))
            self._deliver(box, body)

    def _deliver(self, box: _Outbox, body: bytes) -> None:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            wait, error = self._post(box.endpoint, body)
            if error is None:
                box.sent += 1
                return
            box.last_error = error
            if wait is None or attempt == self.retries:
                break
            box.retried += 1
            pause = min(self.max_backoff, max(wait, delay * (1 + 0.25 * random.random())))
            delay = min(self.max_backoff, delay * 2)
            if self._stop.wait(pause):
                break
        box.failed += 1
        if box.failed == 1 or box.failed % 100 == 0:
            logger.warning("webhook to %s failed (%d so far): %s", box.endpoint.host, box.failed, box.last_error)

    def _post(self, endpoint: Endpoint, body: bytes) -> tuple[float | None, str | None]:
        """One try: (None, None) when delivered; else (seconds to wait before another try, or None
        when trying again is pointless; what went wrong)."""
        request = urllib.request.Request(endpoint.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": f"tailboard/{__version__}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read(65536)
            return None, None
        except urllib.error.HTTPError as e:
            status = e.code
            e.close()
            if status == 429 or status >= 500:
                after = _retry_after(e.headers.get("Retry-After") if e.headers else None)
                return (after if after is not None else 0.0), f"HTTP {status}"
            return None, f"HTTP {status}"
        except (urllib.error.URLError, OSError, ValueError) as e:  # refused, timed out, reset, DNS
            reason = getattr(e, "reason", e)
            return 0.0, f"{type(reason).__name__}: {reason}"

    def status(self) -> list[dict[str, Any]]:
        return [{"kind": b.endpoint.kind, "host": b.endpoint.host, "sent": b.sent, "failed": b.failed,
                 "retried": b.retried, "dropped": b.dropped, "queued": len(b.queue), "last_error": b.last_error}
                for b in self._outboxes]


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the backoff decides
