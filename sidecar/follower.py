"""Follower: the glue from the log tree to the store (watch -> discovery -> tail -> store).

``await Follower(root, store).start()`` finds every run, makes the watcher live, then catches up the
whole backlog, then follows. Because the watcher is live before the first byte is read, whatever is
appended after the catch-up read a file has an event (or a poll, or the sweep) waiting for it: there
is no gap between catch-up and live following, and offsets make re-reads free of duplicates.

All file reading and all store feeding happen in one worker thread at a time (the store is fed by
nobody else), so the event loop stays free to serve while a big backlog loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .discovery import StreamRef, scan
from .parallel import ParsePool
from .tail import Chunk, FileTail, Opened, Reset, Skipped
from .watch import Hints, Watcher, stat_signature

__all__ = ["Follower"]

logger = logging.getLogger(__name__)

#: Progress is reported to the store at most this often during catch-up.
PROGRESS_EVERY = 0.1


@dataclass
class _Followed:
    tail: FileTail
    ref: StreamRef
    # stat signature of the path taken just before the last read: a sweep skips the file while
    # it stays the same (one stat per file instead of a read)
    seen: tuple[int, int, int, int] | None = None
    active: float = 0.0  # time.monotonic() of the last bytes handed over


@dataclass
class _Lane:
    """A run's files during the parallel catch-up, read one after the other."""

    files: deque[_Followed]
    current: _Followed | None = None
    events: Iterator[Any] | None = None


class Follower:
    """Follow every ``*.jsonl`` file under ``root`` and feed ``store``.

    ``poll=True`` uses the stat poller instead of inotify (network and overlay filesystems give no
    events); inotify falls back to it by itself when it cannot start. ``hot_interval`` is how often
    files that changed in the last seconds are polled in that mode.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        store: Any,
        *,
        poll: bool = False,
        poll_interval: float = 0.25,
        hot_interval: float = 0.01,
        sweep_interval: float = 1.0,
        debounce_ms: int = 10,
        step_ms: int = 5,
        inotify_hot: bool = True,
        max_line_bytes: int = 1 << 20,
        read_bytes: int = 1 << 20,
        idle_close_after: float = 60.0,
        workers: int | None = None,
        parallel_min_bytes: int = 64 << 20,
    ) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.store = store
        self.max_line_bytes = max_line_bytes
        self.read_bytes = read_bytes
        self.idle_close_after = idle_close_after
        # Catch-up parses in this many processes when the backlog is at least parallel_min_bytes
        # (JSON parsing holds the GIL: threads would not help). None: one per usable core.
        self.workers = _usable_cores() if workers is None else workers
        self.parallel_min_bytes = parallel_min_bytes
        self.catch_up_workers = 0  # how many processes the catch-up used (0: this one only)
        self._files: dict[str, _Followed] = {}
        self._runs: dict[str, str] = {}  # run id -> folder
        self._watch_paths: tuple[str, ...] = ()  # replaced whole, read from the loop thread
        self._hints = Hints()
        self._watcher = Watcher(
            self.root,
            self._hints,
            lambda: self._watch_paths,
            poll=poll,
            poll_interval=poll_interval,
            hot_interval=hot_interval,
            sweep_interval=sweep_interval,
            debounce_ms=debounce_ms,
            step_ms=step_ms,
            inotify_hot=inotify_hot,
        )
        self._consumer: asyncio.Task[None] | None = None
        self._catch_up_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._started = False

    @property
    def mode(self) -> str:
        """``"inotify"`` or ``"poll"`` (after a fallback, ``"poll"``)."""
        return self._watcher.mode

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, *, wait: bool = True) -> None:
        """Find the runs, make the watcher live, catch up the backlog, then follow.

        With ``wait=False`` this returns as soon as the watcher is live; the backlog then loads in
        the background and ``store.set_progress`` tells how far it got.
        """
        if self._started:
            raise RuntimeError("Follower.start() called twice")
        self._started = True
        _raise_open_file_limit()
        await asyncio.to_thread(self._rediscover)
        await self._watcher.start()
        logger.info("following %s with %s (%d files)", self.root, self.mode, len(self._files))
        self._catch_up_task = asyncio.create_task(self._catch_up_then_follow())
        if wait:
            await asyncio.shield(self._catch_up_task)

    async def stop(self) -> None:
        """Stop following and close every file. The store keeps what it was given."""
        self._stopping = True
        await self._watcher.stop()
        self._hints.add_full()  # wake the consumer so it sees _stopping
        for task in (self._catch_up_task, self._consumer):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for followed in self._files.values():
            followed.tail.close()
        self._files.clear()

    async def _catch_up_then_follow(self) -> None:
        try:
            await asyncio.to_thread(self._catch_up)
        except Exception:
            # Following must go on: what the catch-up missed, the first sweep reads.
            logger.exception("catching up %s failed", self.root)
        if not self._stopping:
            self._consumer = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        while not self._stopping:
            paths, full = await self._hints.wait()
            if self._stopping:
                return
            try:
                await asyncio.to_thread(self._process, paths, full)
            except Exception:
                # A bug here must not end following: log it, the next sweep retries everything.
                logger.exception("following %s failed for one batch", self.root)

    # -- work done in the worker thread -------------------------------------------------------

    def _catch_up(self) -> None:
        # Scan again now that the watcher is live: files created since the first scan may have
        # had their only event before the watch existed.
        self._rediscover()
        files = list(self._files.values())
        total = 0
        for f in files:
            with contextlib.suppress(OSError):
                total += os.stat(f.ref.path).st_size
        self._progress(0, total, False)
        loaded = 0
        if self.workers > 1 and len(files) > 1 and total >= self.parallel_min_bytes:
            try:
                pool = ParsePool(self.workers, slot=2 * self.read_bytes + self.max_line_bytes)
            except (OSError, ValueError) as exc:
                logger.warning("no parse workers (%s): catching up in this process", exc)
            else:
                self.catch_up_workers = self.workers
                loaded = self._catch_up_parallel(files, total, pool)
        if not self.catch_up_workers:
            loaded = self._catch_up_serial(files, total)
        self._progress(total, total, True)
        logger.info("caught up %d bytes in %d files under %s", loaded, len(files), self.root)

    def _catch_up_serial(self, files: list[_Followed], total: int) -> int:
        loaded = 0
        last_report = 0.0
        for f in files:
            if self._stopping:
                break
            loaded += self._pump(f)
            self._park_if_idle(f)
            last_report = self._report(loaded, total, last_report)
        return loaded

    def _catch_up_parallel(self, files: list[_Followed], total: int, pool: ParsePool) -> int:
        """Parse the backlog in worker processes, several files at a time.

        This thread still reads every file through its tail (so identity, line caps and skips
        behave exactly as when following) and feeds the store; only ``parse_chunk`` runs in the
        workers. A stream's chunks are parsed one after the other, each with the state the
        previous one left, so the result is the same as the serial catch-up.
        """
        loaded = 0
        last_report = 0.0
        # One lane per run, its files in the serial order: a run's streams share its attempts, so
        # its chunks must reach the store in the same order as in the serial catch-up.
        by_run: dict[str, deque[_Followed]] = {}
        for f in files:
            by_run.setdefault(f.ref.run_id, deque()).append(f)
        lanes: deque[_Lane] = deque(_Lane(q) for q in by_run.values())
        with pool:
            while (lanes or pool.busy()) and not self._stopping:
                while lanes and pool.idle():
                    lane = lanes.popleft()
                    got = self._lane_chunk(lane)
                    if got is None:
                        continue  # the run is read to its end
                    f, chunk = got
                    try:
                        state = self.store.parse_state(f.ref.run_id, f.ref.stream)
                        pool.submit((lane, f, chunk), chunk.data, state)
                    except OSError:
                        logger.exception("a parse worker is gone; parsing %s here", f.ref.path)
                        self._ingest_here(f, chunk)
                        lanes.append(lane)
                    except Exception:
                        logger.exception("store.parse_state failed for %s", f.ref.path)
                        lanes.append(lane)
                if not pool.busy():
                    continue
                for (lane, f, chunk), parsed in pool.collect():
                    if isinstance(parsed, BaseException):
                        logger.warning("a parse worker failed on %s (%s); parsing it here", f.ref.path, parsed)
                        self._ingest_here(f, chunk)
                    else:
                        self._call("ingest_parsed", f.ref.run_id, f.ref.stream, parsed, chunk.start, chunk.end)
                    loaded += len(chunk.data)
                    f.active = time.monotonic()
                    lanes.append(lane)
                last_report = self._report(loaded, total, last_report)
        return loaded

    def _report(self, loaded: int, total: int, last: float) -> float:
        """Progress to the store at most every PROGRESS_EVERY seconds; returns when it last went."""
        now = time.monotonic()
        if now - last < PROGRESS_EVERY:
            return last
        self._progress(min(loaded, total), total, False)
        return now

    def _ingest_here(self, f: _Followed, chunk: Chunk) -> None:
        self._call("ingest", f.ref.run_id, f.ref.stream, chunk.data, chunk.start, chunk.end)

    def _lane_chunk(self, lane: _Lane) -> tuple[_Followed, Chunk] | None:
        """The next chunk of a run's lane, moving on to its next file when one is read out."""
        while True:
            if lane.events is None:
                if not lane.files:
                    if lane.current is not None:
                        # the run is read: merge its series now, while the workers parse others
                        self._call("compact_run", lane.current.ref.run_id)
                        lane.current = None
                    return None
                lane.current = lane.files.popleft()
                lane.events = lane.current.tail.read()
            assert lane.current is not None
            chunk = self._next_chunk(lane.current, lane.events)
            if chunk is not None:
                return lane.current, chunk
            self._park_if_idle(lane.current)
            lane.events = None

    def _next_chunk(self, f: _Followed, events: Iterator[Any]) -> Chunk | None:
        """Advance a tail's events to its next chunk, handling the other events on the way."""
        if f.seen is None:
            f.seen = stat_signature(f.ref.path)
        try:
            for ev in events:
                if isinstance(ev, Chunk):
                    return ev
                self._handle(f, ev)
        except OSError as exc:
            logger.warning("reading %s failed: %s", f.ref.path, exc)
        return None

    def _park_if_idle(self, f: _Followed) -> None:
        if f.seen is not None and time.time() - f.seen[3] / 1e9 > self.idle_close_after:
            f.tail.park()  # a finished log: no descriptor held until it changes

    def _progress(self, loaded: int, total: int, done: bool) -> None:
        try:
            self.store.set_progress(loaded, total, done)
        except Exception:
            logger.exception("store.set_progress failed")

    def _process(self, paths: set[str], full: bool) -> None:
        unknown = any(p not in self._files for p in paths)
        if full or unknown:
            self._rediscover()
            # A path we do not follow: a new or removed folder, a rotated name, or a followed file
            # reached through another name (a symlinked folder). Read whatever changed.
            targets = [f for f in self._files.values()
                       if f.seen is None or stat_signature(f.ref.path) != f.seen]
        else:
            targets = [self._files[p] for p in paths]
        handed = 0
        for f in targets:
            if self._stopping:
                return
            handed += self._pump(f)
        if handed:
            self._call("batch_done")
        if full:
            now = time.monotonic()
            for f in self._files.values():
                if f.tail.is_open and now - f.active > self.idle_close_after:
                    f.tail.park()
            try:
                self.store.tick(time.time())
            except Exception:
                logger.exception("store.tick failed")

    def _rediscover(self) -> list[_Followed]:
        """Scan the tree, follow new files, mark runs whose folder is gone; return the new ones."""
        folders: list[str] = []
        found = scan(self.root, folders)
        held = {f.tail.identity for f in self._files.values() if f.tail.identity is not None}
        new = []
        for path, ref in found.items():
            if path in self._files:
                continue
            try:
                st = os.stat(path)
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in held:
                logger.debug("%s is a second name of a file already followed", path)
                continue
            f = _Followed(FileTail(path, max_line_bytes=self.max_line_bytes,
                                   read_bytes=self.read_bytes, root=self.root), ref,
                          active=time.monotonic())
            self._files[path] = f
            held.add((st.st_dev, st.st_ino))
            self._runs.setdefault(ref.run_id, ref.folder)
            new.append(f)
        for run_id, folder in list(self._runs.items()):
            if os.path.isdir(folder):
                continue
            for path in [p for p, f in self._files.items() if f.ref.run_id == run_id]:
                f = self._files.pop(path)
                self._pump(f)  # whatever is still readable through the open descriptor
                f.tail.close()
            del self._runs[run_id]
            logger.info("run %s is gone", run_id)
            self._call("mark_gone", run_id)
        # Folders too: a new entry changes a folder's mtime, so the poller notices new runs and
        # files sooner than the sweep.
        self._watch_paths = (*folders, *self._files)
        return new

    def _pump(self, f: _Followed) -> int:
        """Read what is new in one file and hand it to the store. Returns the bytes handed over."""
        run_id, stream = f.ref.run_id, f.ref.stream
        handed = 0
        f.seen = stat_signature(f.ref.path)
        try:
            for ev in f.tail.read():
                if self._stopping:
                    break  # the tail is closed and dropped by stop(): no state to keep right
                if isinstance(ev, Chunk):
                    handed += len(ev.data)
                    self._call("ingest", run_id, stream, ev.data, ev.start, ev.end)
                else:
                    self._handle(f, ev)
        except OSError as exc:
            logger.warning("reading %s failed: %s", f.ref.path, exc)
        if handed:
            f.active = time.monotonic()
        return handed

    def _handle(self, f: _Followed, ev: Any) -> None:
        run_id, stream = f.ref.run_id, f.ref.stream
        if isinstance(ev, Opened):
            self._call("open_stream", run_id, stream, f.ref.path, ev.key)
        elif isinstance(ev, Skipped):
            logger.info("%s: skipped (%s)", f.ref.path, ev.reason)
            self._call("skip", run_id, stream, ev.reason, ev.count)
        elif isinstance(ev, Reset):
            logger.info("%s: reset (%s)", f.ref.path, ev.reason)
            self._call("reset_stream", run_id, stream, ev.reason, ev.key)

    def _call(self, method: str, *args: Any) -> None:
        try:
            getattr(self.store, method)(*args)
        except Exception:
            # The store counts bad input itself; anything raised here is a bug in it, and one bad
            # batch must not stop every other file from being followed.
            logger.exception("store.%s failed for %s", method, args[:2])


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _raise_open_file_limit() -> None:
    """Every followed file holds a descriptor: lift the soft limit to the hard one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
