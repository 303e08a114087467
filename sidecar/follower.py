"""Follower: the glue from the log tree to the store (watch -> discovery -> tail -> store).

Which files are logs and how each is read is the readers' (``readers.Registry``): discovery lists the
files whose names may be logs, the follower looks at a new one once to choose its reader (a file no
reader claims is reported as unrecognised, and looked at again when it changes), its tail cuts the
reader's records, and the store decodes them with the reader. Files that
are versions of one stream (discovery: a Trainer's ``checkpoint-N/trainer_state.json``) are read one
at a time, the newest (the latest modified; then the highest checkpoint, the run's own file last):
when a newer one appears the stream goes on in it, as after a rotation, and the reader takes only
what the history did not hold yet.

``await Follower(root, store).start()`` finds every run, makes the watcher live, then catches up the
whole backlog, then follows. Because the watcher is live before the first byte is read, whatever is
appended after the catch-up read a file has an event (or a poll, or the sweep) waiting for it: there
is no gap between catch-up and live following, and offsets make re-reads free of duplicates.

All file reading and all store feeding happen in one worker thread at a time (the store is fed by
nobody else), so the event loop stays free to serve while a big backlog loads.

Bounds, so that a huge tree or a hostile file cannot exhaust the process or stall the others:

- Descriptors: at most ``max_open_files`` log files are open at once (default: half the
  ``RLIMIT_NOFILE`` soft limit, at most 4096; the rest is for the server's sockets, the parse
  workers and the store). Beyond it the least recently active files are parked (closed, their
  place kept; see :meth:`FileTail.park`), files that never held a line included; a parked file is
  re-opened when it changes. Files idle for ``idle_close_after`` seconds are parked anyway.
- A hint names the paths that changed: a followed file is read, a new or changed folder is listed
  (and only its new subfolders walked), a deleted folder ends its runs. The tree is never walked
  whole for a hint.
- The sweep (the full walk plus one ``stat`` per file, the safety net for changes that gave no
  hint; a folder whose mtime did not change is not listed again, see :class:`.discovery.Listings`)
  waits ``max(sweep_interval, 20 x its last duration)`` after the last one ended: about 5% of one
  core at most, however big the tree. Resulting freshness, measured with bench/follow_tree.py:
  with inotify a new run is seen within 0.1 s whatever the size of the tree; with 10,000 runs a
  sweep takes 0.09 s (one every 1.8 s), with 100,000 runs 0.9 s (one every 19 s), which is how
  long a write that gives no event at all (a hard link written outside the root, another NFS
  client) may wait. In poll mode the stat pass over every folder and file has the same budget
  (see :mod:`.watch`): a pass over 100,000 runs takes 0.7 s and comes every 13 s, so a new run
  in such a tree is seen within about 14 s (about 3 s with 10,000 runs).
- A failure to read a file is logged once per file and reason (and at most 10 such lines a
  minute in all), never once per attempt; the file is tried again at the next sweep.
- Every log file is opened through :func:`open_regular`: a FIFO or a device node put at a
  followed path is never opened for reading (it would block or never end), it is reported once as
  a skip (``"not_regular"``) and the path counts as deleted until a regular file is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import resource
import stat
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable, ParamSpec

from ..format import MAX_LINE_BYTES
from .discovery import Listings, StreamRef, scan
from .parallel import DEPTH, ParsePool
from .readers.base import Reader
from .readers.registry import EXAMPLES, Registry
from .store.feed import Feed
from .tail import Chunk, Events, FileTail, Framing, Opened, Reset, Skipped
from .watch import Hints, Watcher, stat_signature

__all__ = ["Follower"]

_P = ParamSpec("_P")

logger = logging.getLogger(__name__)

#: Progress is reported to the store at most this often during catch-up.
PROGRESS_EVERY = 0.1
#: At most this many log files are open at once, however high the descriptor limit...
MAX_OPEN_FILES = 4096
#: ... and at most this share of RLIMIT_NOFILE, leaving the rest to sockets and the store.
OPEN_FILES_SHARE = 0.5
#: Read failures logged one by one per minute, in all; the rest are summed up in one line.
FAILURES_LOGGED_PER_MINUTE = 10


@dataclass
class _Followed:
    tail: FileTail
    ref: StreamRef
    # stat signature of the path taken just before the last read: a sweep skips the file while
    # it stays the same (one stat per file instead of a read)
    seen: tuple[int, int, int, int] | None = None
    active: float = 0.0  # time.monotonic() of the last bytes handed over
    ident: tuple[int, int] | None = None  # (device, inode) when found, before the tail knows it
    reader: str = "jsonl"


def framing(reader: Reader, max_line_bytes: int) -> Framing:
    """How a tail cuts the records of ``reader``'s format."""
    if getattr(reader, "lines", False):
        return Framing(reader.complete, lines=True, max_record=max_line_bytes)
    return Framing(reader.complete, max_record=getattr(reader, "max_record", max_line_bytes),
                   whole=getattr(reader, "whole", False))


class _FailureLog:
    """Read failures, logged once per path and reason, and at most ``limit`` lines a minute."""

    def __init__(self, limit: int = FAILURES_LOGGED_PER_MINUTE) -> None:
        self.limit = limit
        self._told: dict[str, str] = {}  # path -> the reason last logged for it
        self._since = time.monotonic()
        self._lines = 0
        self._untold = 0  # failures in this minute beyond the limit

    def failed(self, path: str, exc: OSError) -> None:
        reason = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        if self._told.get(path) == reason:
            return
        self._told[path] = reason
        self.flush()
        if self._lines < self.limit:
            self._lines += 1
            logger.warning("reading %s failed: %s (retried at each sweep, not logged again)",
                           path, exc)
        else:
            self._untold += 1

    def recovered(self, path: str) -> None:
        if self._told.pop(path, None) is not None:
            logger.info("reading %s again", path)

    def flush(self) -> None:
        """Start a new minute, summing up what the last one did not log."""
        now = time.monotonic()
        if now - self._since < 60.0:
            return
        if self._untold:
            logger.warning("%d more files could not be read in the last minute", self._untold)
        self._since, self._lines, self._untold = now, 0, 0


@dataclass
class _Lane:
    """A run's files during the parallel catch-up, read one after the other."""

    files: deque[_Followed]
    current: _Followed | None = None
    events: Events | None = None
    # bytes of the last chunk a worker decoded (``decode_head``), sent back to its deferring tail
    taken: int | None = None


class Follower:
    """Follow every log file under ``root`` and feed ``store``.

    ``readers`` chooses and reads the formats (by default the store's own ``readers``).

    ``poll=True`` uses the stat poller instead of inotify (network and overlay filesystems give no
    events); inotify falls back to it by itself when it cannot start. ``hot_interval`` is how often
    files that changed in the last seconds are polled in that mode. ``sweep_interval`` is the
    shortest time between sweeps (a big tree is swept less often, see the module docstring), and
    ``max_open_files`` the most log files open at once (None: from the descriptor limit).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        store: Feed,
        *,
        poll: bool = False,
        poll_interval: float = 0.25,
        hot_interval: float = 0.01,
        sweep_interval: float = 1.0,
        debounce_ms: int = 10,
        step_ms: int = 5,
        inotify_hot: bool = True,
        max_line_bytes: int = MAX_LINE_BYTES,
        read_bytes: int = 1 << 20,
        idle_close_after: float = 60.0,
        max_open_files: int | None = None,
        workers: int | None = None,
        parallel_min_bytes: int = 64 << 20,
        readers: Registry | None = None,
        load_average: Callable[[], float] | None = None,
    ) -> None:
        if max_open_files is not None and max_open_files < 1:
            raise ValueError(f"max_open_files must be at least 1, got {max_open_files}")
        self.root = os.path.abspath(os.fspath(root))
        self.store = store
        if readers is None:
            readers = getattr(store, "readers", None) or Registry()
        self.readers: Registry = readers
        # files no reader claims: path -> its stat signature when looked at
        self._unknown: dict[str, tuple[int, int, int, int]] = {}
        self._told_files: tuple[Any, ...] | None = None
        self.max_line_bytes = max_line_bytes
        self.read_bytes = read_bytes
        self.idle_close_after = idle_close_after
        # None: set by start() from the descriptor limit, once it has been raised
        self.max_open_files = max_open_files
        self._housekeeping_every = sweep_interval
        self._housekept = time.monotonic()
        # Catch-up parses in this many processes when the backlog is at least parallel_min_bytes
        # (JSON parsing holds the GIL: threads would not help). None: one per usable core, unless
        # every core is already busy (``load_average``, the system's over the last minute, at least
        # the cores): the workers' own cost (their start, results sent back) then makes the
        # catch-up slower than one process, and it takes CPU from the jobs running there.
        self.workers = _usable_cores() if workers is None else workers
        self._load_average = None if workers is not None else (load_average or _load_average)
        self.parallel_min_bytes = parallel_min_bytes
        self.catch_up_workers = 0  # how many processes the catch-up used (0: this one only)
        self._files: dict[str, _Followed] = {}
        self._streams: dict[tuple[str, str], str] = {}  # (run id, stream) -> the path followed
        # the open files, least recently active first: beyond max_open_files the first are parked
        self._open: OrderedDict[str, _Followed] = OrderedDict()
        self._aliases: dict[str, str] = {}  # second name of a followed file -> its followed path
        self._folders: set[str] = set()  # every folder walked (a hint on one lists it again)
        self._listings = Listings()  # the sweep lists again only the folders that changed
        self._failures = _FailureLog()
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
            wanted=self._candidate,
        )
        self._consumer: asyncio.Task[None] | None = None
        self._catch_up_task: asyncio.Task[None] | None = None
        self._reserved = 0  # descriptors kept for the files the parallel catch-up is reading
        self._stopping = False
        self._started = False

    def _rel(self, path: str) -> str:
        rel = os.path.relpath(path, self.root)
        return rel if os.sep == "/" else rel.replace(os.sep, "/")

    def _candidate(self, path: str) -> bool:
        """Whether a file may be a log by its name (``Registry.candidate``)."""
        return self.readers.candidate(self._rel(path))

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
        if self.max_open_files is None:
            self.max_open_files = _open_file_budget()
        began = time.monotonic()
        await asyncio.to_thread(self._rediscover)
        self._watcher.swept(time.monotonic() - began)  # the first sweep: the next is timed by it
        await self._watcher.start()
        logger.info("following %s with %s (%s)", self.root, self.mode, self.describe_files())
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
        self._streams.clear()
        self._open.clear()

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
            try:
                # wake up for the housekeeping (parking idle files, store.tick) even when idle
                paths, full = await asyncio.wait_for(self._hints.wait(), self._housekeeping_every)
            except asyncio.TimeoutError:
                paths, full = set(), False
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
        sizes: dict[str, int] = {}
        for f in files:
            with contextlib.suppress(OSError):
                sizes[f.ref.path] = os.stat(f.ref.path).st_size
        total = sum(sizes.values())
        self._progress(0, total, False)
        loaded = 0
        # only the files of readers that are worth a worker count (see _worth_shipping)
        shipped = [f for f in files if self._worth_shipping(f)]
        heavy = sum(sizes.get(f.ref.path, 0) for f in shipped)
        load = self._load_average() if self._load_average is not None else 0.0
        busy = load >= _usable_cores()
        if busy and heavy >= self.parallel_min_bytes:
            logger.info("every core is busy (load average %.1f): catching up in this process", load)
        if self.workers > 1 and len(shipped) > 1 and heavy >= self.parallel_min_bytes and not busy:
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
        behave exactly as when following) and feeds the store; only the readers' ``decode`` runs in
        the workers. A stream's chunks are parsed one after the other, each with the state the
        previous one left, so the result is the same as the serial catch-up.
        """
        # One lane per run, its files in the serial order: a run's streams share its attempts, so
        # its chunks must reach the store in the same order as in the serial catch-up.
        by_run: dict[str, deque[_Followed]] = {}
        for f in files:
            by_run.setdefault(f.ref.run_id, deque()).append(f)
        waiting: deque[_Lane] = deque(_Lane(q) for q in by_run.values())
        # A lane holds its file open between chunks: only enough of them to keep every worker
        # busy are started at once, and their files are kept out of the bound of the others.
        started = max(1, min(2 * DEPTH * len(pool.workers), self._max_open() // 2))
        self._reserved = started
        try:
            return self._run_lanes(waiting, started, total, pool)
        finally:
            self._reserved = 0

    def _run_lanes(self, waiting: deque[_Lane], started: int, total: int, pool: ParsePool) -> int:
        loaded = 0
        last_report = 0.0
        lanes: deque[_Lane] = deque()
        failed = 0  # chunks that could not be handed to a worker
        with pool:
            while (lanes or waiting or pool.busy()) and not self._stopping:
                while waiting and len(lanes) + pool.busy() < started:
                    lanes.append(waiting.popleft())
                while lanes and pool.idle():
                    lane = lanes.popleft()
                    got = self._lane_chunk(lane)
                    if got is None:
                        continue  # the run is read to its end
                    f, chunk = got
                    if not self._worth_shipping(f):
                        lane.taken = self._ingest_here(f, chunk)
                        loaded += len(chunk.data)
                        lanes.append(lane)
                        continue
                    try:
                        state = self.store.parse_state(f.ref.run_id, f.ref.stream)
                        pool.submit((lane, f, chunk), chunk.data, state, head=f.tail.defer)
                    except Exception as exc:  # noqa: BLE001 - the chunk is parsed here instead
                        # nothing is lost, so a warning; with its traceback the first time only
                        why = "a parse worker is gone" if isinstance(exc, OSError) else "handing it over failed"
                        logger.warning("%s (%r); parsing %s here", why, exc, f.ref.path, exc_info=not failed)
                        failed += 1
                        lane.taken = self._ingest_here(f, chunk)  # the lane moves on, whatever failed
                        lanes.append(lane)
                if not pool.busy():
                    last_report = self._report(loaded, total, last_report)
                    continue
                for (lane, f, chunk), parsed in pool.collect():
                    if isinstance(parsed, BaseException):
                        logger.warning("a parse worker failed on %s (%s); parsing it here", f.ref.path, parsed)
                        lane.taken = self._ingest_here(f, chunk)
                    else:
                        got_parsed, after, *took = parsed
                        end = chunk.end
                        if took:  # decoded by decode_head: the rest waits in the tail
                            lane.taken = took[0]
                            end = chunk.start + took[0]
                        if end > chunk.start:
                            self._feed(self.store.ingest_parsed, f.ref.run_id, f.ref.stream, got_parsed, after,
                                       chunk.start, end)
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

    def _worth_shipping(self, f: _Followed) -> bool:
        """Whether a file's chunks go to the parse workers: not those of a reader that says it
        decodes faster than its result travels back (``parallel = False``), which this thread reads."""
        return bool(getattr(self.readers[f.reader], "parallel", True))

    def _ingest_here(self, f: _Followed, chunk: Chunk) -> int | None:
        """Decode a chunk in this thread; for a deferring tail, how many of its bytes were records."""
        data, end, taken = chunk.data, chunk.end, None
        if f.tail.defer:
            taken = f.tail.framing.complete(data)
            data, end = data[:taken], chunk.start + taken
        if end > chunk.start:
            self._feed(self.store.ingest, f.ref.run_id, f.ref.stream, data, chunk.start, end)
        return taken

    def _lane_chunk(self, lane: _Lane) -> tuple[_Followed, Chunk] | None:
        """The next chunk of a run's lane, moving on to its next file when one is read out."""
        while True:
            if lane.events is None:
                if not lane.files:
                    if lane.current is not None:
                        # the run is read: merge its series now, while the workers parse others
                        self._feed(self.store.compact_run, lane.current.ref.run_id)
                        lane.current = None
                    return None
                lane.current = lane.files.popleft()
                tail = lane.current.tail
                # a worker frames the records it decodes: this thread does not frame them first
                tail.defer = not tail.framing.lines and not tail.framing.whole and \
                    hasattr(self.readers[lane.current.reader], "decode_head")
                lane.events = tail.read()
            assert lane.current is not None
            taken, lane.taken = lane.taken, None
            chunk = self._next_chunk(lane.current, lane.events, taken)
            if chunk is not None:
                return lane.current, chunk
            lane.current.tail.defer = False
            self._held(lane.current)
            self._park_if_idle(lane.current)
            lane.events = None

    def _next_chunk(self, f: _Followed, events: Events, taken: int | None = None) -> Chunk | None:
        """Advance a tail's events to its next chunk, handling the other events on the way;
        ``taken``: what the last chunk of a deferring tail held (sent back to it)."""
        if f.seen is None:
            f.seen = stat_signature(f.ref.path)
        try:
            while True:
                ev = events.send(taken)
                taken = None
                if isinstance(ev, Chunk):
                    return ev
                self._handle(f, ev)
        except StopIteration:
            pass
        except OSError as exc:
            self._failed(f, exc)
        return None

    def _park_if_idle(self, f: _Followed) -> None:
        if f.seen is not None and time.time() - f.seen[3] / 1e9 > self.idle_close_after:
            self._park(f)  # a finished log: no descriptor held until it changes

    # -- the descriptor bound -----------------------------------------------------------------

    def _max_open(self) -> int:
        return self.max_open_files if self.max_open_files is not None else _open_file_budget()

    def _held(self, f: _Followed) -> None:
        """Note whether ``f`` holds a descriptor after a read; beyond the bound, park the least
        recently active files. Only called between reads (a tail is never parked mid-read)."""
        path = f.ref.path
        if not f.tail.is_open:
            self._open.pop(path, None)
            return
        self._open[path] = f
        self._open.move_to_end(path)
        bound = max(1, self._max_open() - self._reserved)
        while len(self._open) > bound:
            _, oldest = self._open.popitem(last=False)
            oldest.tail.park(unread=True)

    def _park(self, f: _Followed) -> None:
        f.tail.park(unread=True)
        if not f.tail.is_open:
            self._open.pop(f.ref.path, None)

    def _housekeep(self) -> None:
        """Park the files idle for idle_close_after, let the store notice stalled runs."""
        now = time.monotonic()
        self._housekept = now
        for f in [f for f in self._open.values() if now - f.active > self.idle_close_after]:
            self._park(f)
        self._failures.flush()
        try:
            self.store.tick(time.time())
        except Exception:
            logger.exception("store.tick failed")

    def _progress(self, loaded: int, total: int, done: bool) -> None:
        try:
            self.store.set_progress(loaded, total, done)
        except Exception:
            logger.exception("store.set_progress failed")

    def _process(self, paths: set[str], full: bool) -> None:
        if full:
            # The sweep, the safety net for changes that gave no hint: walk the tree, and read
            # every file whose stat changed since it was last read.
            began = time.monotonic()
            try:
                self._rediscover()
                targets = [f for f in self._files.values()
                           if f.seen is None or stat_signature(f.ref.path) != f.seen]
            finally:
                self._watcher.swept(time.monotonic() - began)  # the next sweep is timed from now
        else:
            targets = self._hinted(paths)
        handed = 0
        for f in targets:
            if self._stopping:
                return
            handed += self._pump(f)
        if handed:
            self._feed(self.store.batch_done)
        if time.monotonic() - self._housekept >= self._housekeeping_every:
            self._housekeep()

    def _hinted(self, paths: Iterable[str]) -> list[_Followed]:
        """The followed files to read for these hinted paths, finding new runs and files on the
        way: a folder is listed (and its new subfolders walked), a new ``.jsonl`` file has its
        folder listed, a deleted folder ends the runs in it. Nothing else is walked."""
        targets: dict[str, _Followed] = {}
        folders: set[str] = set()
        deleted: set[str] = set()
        for p in paths:
            f = self._files.get(p) or self._files.get(self._aliases.get(p, ""))
            if f is not None:
                targets[f.ref.path] = f
                continue
            try:
                mode = os.stat(p).st_mode
            except OSError:
                if p in self._folders:
                    deleted.add(p)
                continue
            if stat.S_ISDIR(mode):
                folders.add(p)
            elif self._candidate(p):
                folders.add(os.path.dirname(p))  # a new stream, or a second name of a followed one
        if deleted:
            self._forget_folders(deleted)
        if folders:
            walked: list[str] = []
            found = scan(self.root, walked, under=folders, known=self._folders, candidate=self.readers.candidate)
            self._folders.update(walked)
            for f in self._follow(found):
                targets[f.ref.path] = f
        if deleted or folders:
            self._watch_paths = (*self._folders, *self._files)
        return list(targets.values())

    def _rediscover(self) -> None:
        """Walk the whole tree: follow new files, end the runs whose folder is gone."""
        walked: list[str] = []
        found = scan(self.root, walked, listings=self._listings, candidate=self.readers.candidate)
        self._folders = set(walked)
        self._unknown = {p: v for p, v in self._unknown.items() if p in found}
        self._aliases = {}  # looked at again: a second name may name another file by now
        self._follow(found)
        gone = {run_id for run_id, folder in self._runs.items()
                if folder not in self._folders and not os.path.isdir(folder)}
        if gone:
            self._end_runs(gone)
        # Folders too: a new entry changes a folder's mtime, so the poller notices new runs and
        # files sooner than the sweep.
        self._watch_paths = (*walked, *self._files)

    def _follow(self, found: dict[str, StreamRef]) -> list[_Followed]:
        """Start following the files in ``found`` not followed yet; returns them, and the followed
        files that turned up under a second name (a symlinked folder), which are read instead."""
        fresh = [ref for path, ref in found.items()
                 if path not in self._files and path not in self._aliases]
        if not fresh:
            self._tell_files()
            return []
        held = {}
        for f in self._files.values():
            ident = f.tail.identity or f.ident
            if ident is not None:
                held[ident] = f
        out = []
        for ref, st in self._newest(fresh):
            key = (st.st_dev, st.st_ino)
            holder = held.get(key)
            if holder is not None and not holder.tail.is_open:
                # Parked, so its inode may have been freed and reused: it holds the key only
                # while its own path still names it.
                sig = stat_signature(holder.ref.path)
                if sig is None or sig[:2] != key:
                    holder = None
            if holder is not None:
                logger.debug("%s is a second name of %s", ref.path, holder.ref.path)
                self._aliases[ref.path] = holder.ref.path
                out.append(holder)
                continue
            reader = self._choose(ref.path, st)
            if reader is None:
                continue
            older = self._files.get(self._streams.get((ref.run_id, ref.stream), ""))
            if older is not None:
                # a newer version of the stream: it goes on in this file (the older is complete)
                logger.info("%s: continued in %s", older.ref.path, ref.path)
                self._unfollow(older)
                out = [o for o in out if o is not older]
            f = _Followed(FileTail(ref.path, max_line_bytes=self.max_line_bytes,
                                   read_bytes=self.read_bytes, root=self.root,
                                   framing=framing(self.readers[reader], self.max_line_bytes)), ref,
                          active=time.monotonic(), ident=key, reader=reader)
            self._files[ref.path] = f
            self._streams[(ref.run_id, ref.stream)] = ref.path
            held[key] = f
            self._runs.setdefault(ref.run_id, ref.folder)
            out.append(f)
        self._tell_files()
        return out

    def _newest(self, fresh: list[StreamRef]) -> list[tuple[StreamRef, os.stat_result]]:
        """The files of ``fresh`` that exist, with their stat; of versions of one stream (see the
        module docstring), only the newest, and only when newer than the version followed."""
        out: dict[tuple[str, str], tuple[StreamRef, os.stat_result]] = {}
        for ref in fresh:
            try:
                st = os.stat(ref.path)
            except OSError:
                continue
            stream = (ref.run_id, ref.stream)  # one file but for versions
            best = out.get(stream)
            if best is not None and _version(*best) >= _version(ref, st):
                continue
            current = self._files.get(self._streams.get(stream, ""))
            if current is not None:
                try:
                    if _version(current.ref, os.stat(current.ref.path)) >= _version(ref, st):
                        continue
                except OSError:
                    pass  # the version followed is gone: any other is newer
            out[stream] = (ref, st)
        return list(out.values())

    def _unfollow(self, f: _Followed) -> None:
        """Stop following a file whose stream goes on in another."""
        path = f.ref.path
        f.tail.close()
        self._files.pop(path, None)
        self._open.pop(path, None)
        if self._streams.get((f.ref.run_id, f.ref.stream)) == path:
            del self._streams[(f.ref.run_id, f.ref.stream)]

    def _choose(self, path: str, st: os.stat_result) -> str | None:
        """The reader of a file not followed yet, from its head; None while no reader claims it."""
        sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if self._unknown.get(path) == sig:
            return None  # no reader claimed it, and it did not change since
        if not stat.S_ISREG(st.st_mode):
            return None
        choice = self.readers.look(path, self._rel(path))
        if choice.reader is None:
            self._unknown[path] = sig
            return None
        self._unknown.pop(path, None)
        return choice.reader

    def files_seen(self) -> tuple[dict[str, int], int, list[str]]:
        """Followed files per format, and the files no reader claims (count, a few of them)."""
        formats: dict[str, int] = {}
        for f in self._files.values():
            formats[f.reader] = formats.get(f.reader, 0) + 1
        examples = sorted(self._rel(p) for p in self._unknown)[:EXAMPLES]
        return formats, len(self._unknown), examples

    def describe_files(self) -> str:
        """One line saying what was found: ``"3 log files: 2 jsonl, 1 csv; 4 files not recognised
        (a.bin, ...)"``."""
        formats, unknown, examples = self.files_seen()
        total = sum(formats.values())
        line = f"{total} log file{'s' if total != 1 else ''}"
        if formats:
            line += ": " + ", ".join(f"{n} {name}" for name, n in sorted(formats.items()))
        if unknown:
            line += f"; {unknown} file{'s' if unknown != 1 else ''} not recognised ({', '.join(examples)}"
            line += ", ...)" if unknown > len(examples) else ")"
        return line

    def _tell_files(self) -> None:
        seen = self.files_seen()
        told = (tuple(sorted(seen[0].items())), seen[1], tuple(seen[2]))
        if told != self._told_files:
            self._told_files = told
            self._feed(self.store.set_files, *seen)

    def _forget_folders(self, deleted: set[str]) -> None:
        """Folders that are gone (and everything below them): end the runs they held."""

        def below(path: str) -> bool:
            while path not in deleted:
                if len(path) <= len(self.root):
                    return False
                path = os.path.dirname(path)
            return True

        self._folders = {d for d in self._folders if not below(d)}
        gone = {run_id for run_id, folder in self._runs.items()
                if below(folder) and not os.path.isdir(folder)}
        if gone:
            self._end_runs(gone)

    def _end_runs(self, gone: set[str]) -> None:
        for path, f in list(self._files.items()):
            if f.ref.run_id in gone:
                del self._files[path]
                self._streams.pop((f.ref.run_id, f.ref.stream), None)
                self._pump(f)  # whatever is still readable through the open descriptor
                f.tail.close()
                self._open.pop(path, None)
        for run_id in gone:
            del self._runs[run_id]
            logger.info("run %s is gone", run_id)
            self._feed(self.store.mark_gone, run_id)

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
                    self._feed(self.store.ingest, run_id, stream, ev.data, ev.start, ev.end)
                else:
                    self._handle(f, ev)
        except OSError as exc:
            self._failed(f, exc)
        else:
            self._failures.recovered(f.ref.path)
        if handed:
            f.active = time.monotonic()
        self._held(f)
        return handed

    def _failed(self, f: _Followed, exc: OSError) -> None:
        f.seen = None  # the next sweep tries again, even if the file does not change
        self._failures.failed(f.ref.path, exc)

    def _handle(self, f: _Followed, ev: Any) -> None:
        run_id, stream = f.ref.run_id, f.ref.stream
        if isinstance(ev, Opened):
            self._feed(self.store.open_stream, run_id, stream, f.ref.path, ev.key, f.reader)
        elif isinstance(ev, Skipped):
            logger.info("%s: skipped (%s)", f.ref.path, ev.reason)
            self._feed(self.store.skip, run_id, stream, ev.reason, ev.count)
        elif isinstance(ev, Reset):
            logger.info("%s: reset (%s)", f.ref.path, ev.reason)
            self._feed(self.store.reset_stream, run_id, stream, ev.reason, ev.key)

    def _feed(self, call: Callable[_P, None], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """Hand something to the store (``Feed``: typed, so a checker sees every call)."""
        try:
            call(*args, **kwargs)
        except Exception:
            # The store counts bad input itself; anything raised here is a bug in it, and one bad
            # batch must not stop every other file from being followed.
            logger.exception("store.%s failed for %s", getattr(call, "__name__", call), args[:2])


def _version(ref: StreamRef, st: os.stat_result) -> tuple[int, float]:
    """Which of two versions of a stream is newer: the latest modified; then the highest
    checkpoint, the run's own file (no checkpoint) last."""
    return st.st_mtime_ns, math.inf if ref.version is None else ref.version


def _load_average() -> float:
    """The system's load average over the last minute; 0 where it cannot be read."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _open_file_budget() -> int:
    """How many log files may be open at once: a share of the descriptor limit, and a cap."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):
        return MAX_OPEN_FILES
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN_FILES
    return max(1, min(MAX_OPEN_FILES, int(soft * OPEN_FILES_SHARE)))


def _raise_open_file_limit() -> None:
    """Every followed file holds a descriptor: lift the soft limit to the hard one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
