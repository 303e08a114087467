"""Fan-out of store changes to clients: bounded queues, coalescing, exact resume.

Store events arrive from the ingesting thread and are handed to the event loop. Each client keeps
the new points of the runs it follows in a pending buffer, flushed into its bounded queue when the
follower says a batch is complete (``BatchDone``; one flush carries every run that batch touched),
at most every ``coalesce`` seconds, and after ``batch_wait`` at the latest; a client whose queue is
full is marked lagging: its queue is dropped and it
gets a ``reset`` and fresh snapshots once it drains, so it never slows anyone else.

Snapshots and resumes carry a cursor; a later delta whose cursor is not beyond it is already
included and is dropped, so a client never sees a point twice.

A run of several streams (the ranks of a distributed run) has its list entry sent again at most
every ``PACE_INTERVAL`` while its records arrive: each stream's latest step and steps per second
(the straggler view) move with every record, which nothing else in the entry announces.

Alerts are pushed to every client as they fire and clear (``broadcast``), and a run's list entry
carries what other parts add to it (``annotate``: its active alerts, its stop state); those parts
say when a run's entry changed (``runs_changed``).

Nothing a client asks for is built on the event loop: snapshots and resumes are made in worker
threads, a few at a time (``work``, shared with the routes' store queries: on a machine with few
cores, every busy thread is time the event loop waits for the GIL), and a snapshot of a run that did not change since it was
last built is sent again from a small cache (a hundred clients reconnecting to a big run cost one
build). A client whose socket does not take a message within ``send_timeout`` is dropped
(:class:`SlowClient`): it never holds memory or the loop on behalf of the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import OrderedDict
from typing import Any, Awaitable, Callable, TypeVar

from . import protocol as P
from .limits import ByteBudget
from .series import Series, concat
from .store import Appended, BatchDone, Delta, ProgressChanged, Reset, ResetRun, RunsChanged, Store, covered
from .store.events import RecordsKept

__all__ = ["Client", "Hub", "SlowClient"]

T = TypeVar("T")

#: Up to this many clients, flushes are `coalesce` apart; beyond, the interval grows in proportion.
CLIENTS_PER_INTERVAL = 50
#: Bytes of encoded snapshots kept for clients that ask for the same unchanged run.
SNAPSHOT_CACHE_BYTES = 64 << 20
#: Encoded delta messages kept for the other clients of the same flush.
ENCODED_DELTAS = 64
#: Seconds between two list entries of a run of several streams sent for its streams' pace alone.
PACE_INTERVAL = 1.0


class SlowClient(Exception):
    """A client's socket did not take a message in time: it is dropped."""

logger = logging.getLogger(__name__)


class Client:
    """One connected viewer (WebSocket or a long-poll waiter)."""

    def __init__(self, send: Callable[[bytes], Awaitable[None]], *, queue_size: int = 64) -> None:
        self.send_bytes = send
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(queue_size)
        self.subs: dict[str, list[str] | None] = {}  # run -> metrics filter
        self.points: dict[str, int] = {}
        self.marks: dict[str, str | None] = {}  # run -> cursor already included
        self.pending: dict[str, list[Delta]] = {}  # run -> deltas not yet queued, in order
        self.runs_pending: set[str] = set()
        self.last_flush = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.lagging = False
        self.closed = False


class Hub:
    def __init__(
        self,
        store: Store,
        *,
        coalesce: float = 0.01,
        batch_wait: float = 0.02,
        queue_size: int = 64,
        server: str = "tailboard",
        send_timeout: float = 30.0,
        build_slots: int = 2,
        max_response_points: int = 2_000_000,
        max_resume_bytes: int = 16 << 20,
    ) -> None:
        self.store = store
        self.coalesce = coalesce
        self.batch_wait = batch_wait
        self.queue_size = queue_size
        self.server = server
        self.send_timeout = send_timeout
        self.max_response_points = max_response_points
        self.max_resume_bytes = max_resume_bytes
        self._build_slots = build_slots
        self.work: asyncio.Semaphore | None = None  # heavy work in worker threads, at most this many
        self.bulk: ByteBudget | None = None  # bytes/s of bulk answers (set by the server)
        # (run, metrics, points) -> (run version, cursor, encoded snapshot)
        self._snapshots: OrderedDict[tuple[Any, ...], tuple[int, str, bytes]] = OrderedDict()
        self._snapshot_bytes = 0
        # (run, delta ids, metrics) -> (the deltas, their encoded message): see merge_deltas
        self._encoded: OrderedDict[tuple[Any, ...], tuple[list[Delta], bytes]] = OrderedDict()
        self.clients: set[Client] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.changed = asyncio.Condition()
        self._flusher: asyncio.Task[None] | None = None
        self.version = 0  # bumped on every store event (long-poll waiters)
        # adds to a run's entry of the run list what the store does not hold (alerts, stop state)
        self.annotate: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        # runs whose entry lists several streams (run_json), and when their pace was last sent
        self._paced: set[str] = set()
        self._pace_sent: dict[str, float] = {}
        self._pace_due: dict[str, asyncio.TimerHandle] = {}

    # ---- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.work = asyncio.Semaphore(self._build_slots)
        self.store.add_listener(self._on_store_event)
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        self.store.remove_listener(self._on_store_event)
        for handle in self._pace_due.values():
            handle.cancel()
        self._pace_due.clear()
        if self._flusher:
            self._flusher.cancel()
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass

    def _on_store_event(self, event: Any) -> None:
        if isinstance(event, RecordsKept):  # what clients get of those records comes as runs and deltas
            return
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._handle, event)
        except RuntimeError:  # loop closing
            pass

    def runs_changed(self, run_ids: tuple[str, ...]) -> None:
        """Runs whose list entry changed outside the store (an alert, a stop request). Any thread."""
        self._on_store_event(RunsChanged(run_ids))

    def broadcast(self, message: bytes) -> None:
        """Queue one encoded message for every client. Any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._broadcast, message)
        except RuntimeError:  # loop closing
            pass

    def _broadcast(self, message: bytes) -> None:
        for c in list(self.clients):
            self._enqueue(c, ("msg", message))

    def run_json(self, info: Any) -> dict[str, Any]:
        """A run's entry of the run list (``RunInfo``), with what ``annotate`` adds."""
        out: dict[str, Any] = info.to_json()
        if len(out["streams"]) > 1:  # set operations: atomic, and this may run in a worker thread
            self._paced.add(info.id)
        else:
            self._paced.discard(info.id)
        return out if self.annotate is None else self.annotate(out)

    # ---- store events (loop thread) ------------------------------------------------------------

    def _handle(self, event: Any) -> None:
        self.version += 1
        if isinstance(event, Appended):
            for c in self.clients:
                if event.run_id in c.subs:
                    self._add_pending(c, event.run_id, event.delta)
            if event.run_id in self._paced:
                self._pace(event.run_id)
        elif isinstance(event, ResetRun):
            for c in self.clients:
                if event.run_id in c.subs:
                    c.pending.pop(event.run_id, None)
                    c.marks[event.run_id] = None
                    self._enqueue(c, ("msg", P.dumps(P.reset(event.run_id, event.reason))))
                    self._enqueue(c, ("snapshot", event.run_id))
        elif isinstance(event, RunsChanged):
            for c in self.clients:
                c.runs_pending.update(event.run_ids)
        elif isinstance(event, BatchDone):
            infos: dict[str, dict[str, Any] | None] = {}  # each run's info built once per batch
            for c in self.clients:
                self._batch_done(c, infos)
            return
        elif isinstance(event, ProgressChanged):
            # the page's progress bar: a runs message with no runs, only the loading state
            msg = P.dumps(P.runs_message([], full=False, loading=self._loading()))
            for c in self.clients:
                self._enqueue(c, ("msg", msg))
            return
        for c in self.clients:
            if c.pending or c.runs_pending:
                self._schedule(c)
        asyncio.ensure_future(self._notify())

    def _schedule(self, c: Client) -> None:
        """Arm the fallback flush for a client with something pending."""
        if c.timer is not None or self.loop is None:
            return
        # A follower batch arrives as one store event per run, then BatchDone, which flushes (see
        # _handle); this timer only bounds the wait when no BatchDone comes. Flushes stay at least
        # `coalesce` apart.
        now = self.loop.time()
        due = max(c.last_flush + self._interval(), now + self.batch_wait)
        c.timer = self.loop.call_at(due, self._timer_fired, c)

    def _interval(self) -> float:
        """Time between two flushes to one client: `coalesce`, longer with many clients (every flush
        costs a send per client; with hundreds, fewer larger messages keep everyone current)."""
        return self.coalesce * max(1.0, len(self.clients) / CLIENTS_PER_INTERVAL)

    def _batch_done(self, c: Client, infos: dict[str, dict[str, Any] | None]) -> None:
        if c.closed or not (c.pending or c.runs_pending) or self.loop is None:
            return
        due = c.last_flush + self._interval()
        if due <= self.loop.time():
            if c.timer is not None:
                c.timer.cancel()
                c.timer = None
            self._flush_client(c, infos)
        elif c.timer is None or c.timer.when() > due:
            if c.timer is not None:
                c.timer.cancel()
            c.timer = self.loop.call_at(due, self._timer_fired, c)

    def _timer_fired(self, c: Client) -> None:
        c.timer = None
        if not c.closed:
            self._flush_client(c, {})

    def _pace(self, run: str) -> None:
        """Send the run's entry again (its streams' pace), now or ``PACE_INTERVAL`` after the last."""
        if run in self._pace_due or self.loop is None:
            return
        due = max(self._pace_sent.get(run, -math.inf) + PACE_INTERVAL, self.loop.time())
        self._pace_due[run] = self.loop.call_at(due, self._pace_fired, run)

    def _pace_fired(self, run: str) -> None:
        self._pace_due.pop(run, None)
        if self.loop is None or run not in self._paced:
            self._pace_sent.pop(run, None)
            return
        self._pace_sent[run] = self.loop.time()
        for c in self.clients:
            c.runs_pending.add(run)
            self._schedule(c)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _add_pending(self, c: Client, run: str, d: Delta) -> None:
        if c.lagging:  # it gets fresh snapshots once it drains: nothing to keep for it meanwhile
            return
        if covered(d.cursor, c.marks.get(run)):
            return
        c.pending.setdefault(run, []).append(d)

    def send_now(self, c: Client, message: bytes) -> None:
        """Queue one encoded message for a client (in order with everything else it gets)."""
        self._enqueue(c, ("msg", message))

    def _enqueue(self, c: Client, item: tuple[str, Any]) -> None:
        if c.lagging:
            return
        try:
            c.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._lag(c)

    def _lag(self, c: Client) -> None:
        logger.info("a client fell behind; it will get fresh snapshots")
        c.lagging = True
        c.pending.clear()
        while not c.queue.empty():
            c.queue.get_nowait()
        for run in c.subs:
            c.marks[run] = None
        c.queue.put_nowait(("lagged", None))

    async def _flush_loop(self) -> None:
        # a safety net only: flushes are driven by store events (see _schedule)
        while True:
            await asyncio.sleep(1.0)
            try:
                self.flush()
            except Exception:
                logger.exception("flush failed")

    def flush(self) -> None:
        infos: dict[str, dict[str, Any] | None] = {}
        for c in list(self.clients):
            if c.timer is None:
                self._flush_client(c, infos)

    def _flush_client(self, c: Client, infos: dict[str, dict[str, Any] | None]) -> None:
        if c.lagging or c.closed or self.loop is None:
            return
        if not (c.pending or c.runs_pending):
            return
        c.last_flush = self.loop.time()
        if c.runs_pending:
            runs = []
            removed = []
            for rid in sorted(c.runs_pending):
                if rid not in infos:
                    info = self.store.get_run(rid)
                    infos[rid] = None if info is None else self.run_json(info)
                got = infos[rid]
                if got is None:
                    removed.append(rid)
                else:
                    runs.append(got)
            c.runs_pending.clear()
            self._enqueue(c, ("msg", P.dumps(P.runs_message(runs, removed=removed, full=False, loading=self._loading()))))
        for run, deltas in list(c.pending.items()):
            self._enqueue(c, ("deltas", (run, deltas)))
        c.pending.clear()

    def _loading(self) -> dict[str, Any]:
        p = self.store.progress()
        return {"done": p.done, "bytes": p.loaded_bytes, "total_bytes": p.total_bytes, "files": self.store.files()}

    # ---- client requests -----------------------------------------------------------------------

    def add(self, c: Client) -> None:
        self.clients.add(c)

    def remove(self, c: Client) -> None:
        c.closed = True
        if c.timer is not None:
            c.timer.cancel()
            c.timer = None
        self.clients.discard(c)

    def full_runs(self) -> bytes:
        return P.dumps(P.runs_message([self.run_json(r) for r in self.store.runs()], full=True, loading=self._loading()))

    def subscribe(self, c: Client, sub: P.Subscribe) -> None:
        for run in sub.runs:
            if self.store.get_run(run) is None:
                self._enqueue(c, ("msg", P.dumps(P.error(f"unknown run: {run[:200]}"))))
                continue
            c.subs[run] = sub.metrics
            c.points[run] = sub.points
            c.pending.pop(run, None)
            cursor = sub.cursors.get(run)
            self._enqueue(c, ("resume", (run, cursor)) if cursor else ("snapshot", run))

    def unsubscribe(self, c: Client, runs: list[str]) -> None:
        for run in runs:
            c.subs.pop(run, None)
            c.pending.pop(run, None)
            c.marks.pop(run, None)

    async def catch_up(
        self, c: Client, run: str, cursor: str | None, *, points_budget: int | None = None, skip_empty: bool = False
    ) -> list[bytes]:
        """What brings a client up to date on ``run``: the delta since ``cursor``, or (no cursor, a
        cursor the store cannot resume from, or one too far behind) a reset and a snapshot. Built in
        a worker thread; at most ``build_slots`` heavy jobs at once. ``skip_empty``: nothing when the cursor is
        current (a long-poll waits on)."""
        if run not in c.subs:
            return []
        return await self.in_worker(
            lambda: self._catch_up(c, run, cursor, points_budget, skip_empty), size=lambda out: sum(map(len, out))
        )

    async def in_worker(self, fn: Callable[[], T], *, size: Callable[[T], int] | None = None) -> T:
        """Run heavy work (a store query, a snapshot, an encoding) in a worker thread, at most
        ``build_slots`` at once. With ``size``, what it produced is a bulk answer: its bytes are
        spent from the bulk budget inside the slot, so at most a slot's worth of answers waits."""
        assert self.work is not None, "Hub.start() first"
        async with self.work:
            out = await asyncio.to_thread(fn)
            if size is not None and self.bulk is not None:
                await self.bulk.spend(size(out))
            return out

    async def wait_changed(self, version: int, timeout: float) -> None:
        """Return when the store changed after ``version`` (see ``self.version``), or after ``timeout``."""
        async with self.changed:
            if self.version == version:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), timeout)

    def _catch_up(
        self, c: Client, run: str, cursor: str | None, points_budget: int | None, skip_empty: bool
    ) -> list[bytes]:
        out: list[bytes] = []
        if cursor:
            try:
                got = self.store.since(run, cursor, metrics=c.subs.get(run), max_bytes=self.max_resume_bytes)
            except KeyError:
                return [P.dumps(P.reset(run, "gone"))]
            if not isinstance(got, Reset):
                c.marks[run] = got.cursor
                if skip_empty and not got.series:
                    return []
                return [P.dumps(P.delta(run, got.cursor, got.series))]
            out.append(P.dumps(P.reset(run, got.reason)))
        snap = self._snapshot(c, run, points_budget)
        if snap is not None:
            out.append(snap)
        return out

    def _snapshot(self, c: Client, run: str, points_budget: int | None) -> bytes | None:
        if run not in c.subs:
            return None
        metrics = c.subs[run]
        points = c.points.get(run, 2000)
        budget = self.max_response_points if points_budget is None else points_budget
        key = (run, None if metrics is None else tuple(metrics), points, budget)
        try:
            version = self.store.version(run)
            hit = self._snapshots.get(key)
            if hit is not None and hit[0] == version:
                self._snapshots.move_to_end(key)
                c.marks[run] = hit[1]
                return hit[2]
            cursor, series = self.store.snapshot(run, metrics=metrics, points=points, budget=budget)
        except KeyError:
            return P.dumps(P.reset(run, "gone"))
        c.marks[run] = cursor
        body = P.dumps(P.snapshot(run, cursor, series))
        self._remember_snapshot(key, (version, cursor, body))
        return body

    def _remember_snapshot(self, key: tuple[Any, ...], entry: tuple[int, str, bytes]) -> None:
        # runs in worker threads: the OrderedDict operations below are each atomic under the GIL,
        # and a lost race only costs a rebuild
        old = self._snapshots.pop(key, None)
        if old is not None:
            self._snapshot_bytes -= len(old[2])
        if len(entry[2]) > SNAPSHOT_CACHE_BYTES // 4:
            return
        self._snapshots[key] = entry
        self._snapshot_bytes += len(entry[2])
        while self._snapshot_bytes > SNAPSHOT_CACHE_BYTES and self._snapshots:
            _, dropped = self._snapshots.popitem(last=False)
            self._snapshot_bytes -= len(dropped[2])

    def merge_deltas(self, c: Client, run: str, deltas: list[Delta]) -> bytes | None:
        """One delta message of the events not already included by a snapshot or resume."""
        if run not in c.subs:
            return None
        mark = c.marks.get(run)
        fresh = [d for d in deltas if not covered(d.cursor, mark)]
        if not fresh:
            return None
        wanted = c.subs[run]
        cursor = fresh[-1].cursor
        c.marks[run] = cursor
        # Clients that follow the same run are usually sent the very same deltas: encode them once
        # (the key holds the Delta objects themselves, so their ids cannot be reused meanwhile).
        key = (run, tuple(map(id, fresh)), None if wanted is None else tuple(wanted))
        hit = self._encoded.get(key)
        if hit is not None:
            return hit[1]
        parts: dict[str, list[Series]] = {}
        for d in fresh:
            for name, s in d.series.items():
                if wanted is None or name in wanted:
                    parts.setdefault(name, []).append(s)
        merged = {}
        for name, ss in parts.items():
            st, v, t = concat([(p.steps, p.values, p.times) for p in ss])
            merged[name] = Series(st, v, t, False, int(st.shape[0]))
        body = P.dumps(P.delta(run, cursor, merged))
        self._encoded[key] = (fresh, body)
        if len(self._encoded) > ENCODED_DELTAS:
            self._encoded.popitem(last=False)
        return body

    async def pump(self, c: Client) -> None:
        """Send the client's queue until it closes (runs in the client's own task). Raises
        :class:`SlowClient` when the client's socket does not take a message in ``send_timeout``."""
        while not c.closed:
            kind, payload = await c.queue.get()
            if kind == "msg":
                await self._send(c, payload)
            elif kind == "deltas":
                msg = self.merge_deltas(c, *payload)
                if msg is not None:
                    await self._send(c, msg)
            elif kind == "snapshot":
                for msg in await self.catch_up(c, payload, None):
                    await self._send(c, msg)
            elif kind == "resume":
                for msg in await self.catch_up(c, *payload):
                    await self._send(c, msg)
            elif kind == "lagged":
                c.lagging = False
                runs = list(c.subs)
                for run in runs:
                    await self._send(c, P.dumps(P.reset(run, "lagging")))
                for run in runs:
                    for msg in await self.catch_up(c, run, None):
                        await self._send(c, msg)

    async def _send(self, c: Client, message: bytes) -> None:
        try:
            await asyncio.wait_for(c.send_bytes(message), self.send_timeout)
        except asyncio.TimeoutError:
            raise SlowClient(f"a message of {len(message)} bytes was not taken in {self.send_timeout:g} s") from None
