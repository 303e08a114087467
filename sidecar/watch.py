"""Wake-up hints for the follower: inotify through watchfiles, a stat poller, a periodic sweep.

Nothing here reads a file. Each hint only means "look at this path again" (or "look at everything
again"); the tail re-checks the file itself from its own offset, so a lost, merged or spurious hint
costs at most one sweep interval, never data.

- inotify (watchfiles ``awatch``, the follower's debounce 10 ms and step 5 ms instead of its 1600/50
  defaults, and a filter that accepts the paths its default filter would drop, such as ``.git`` or
  ``.venv``). watchfiles gives no ready signal, so a sentinel file in a private temp folder, watched
  alongside the root, is touched until its own event comes back: from then on every change has an
  event. Streams that had events in the last 10 s (the 64 most recent) are also stat-ed every
  ``hot_interval``: under steady appends a batch of events waits for its step or the debounce, the
  stat does not.
- a stat poller, used with ``poll=True`` or when inotify cannot start (the watch limit, no free
  descriptors). It compares device, inode, size and mtime in nanoseconds (watchfiles' own poller
  compares whole seconds and ignores size). Files that changed in the last 10 s (the 128 most
  recent) are polled every ``hot_interval``, the rest every ``poll_interval``.
- a sweep every ``sweep_interval`` in either mode: the trusted safety net for events that were never
  delivered (queue overflow, network filesystems, folders created before their watch existed).

Both whole passes cost time in proportion to the tree, so both keep to a budget of about 5% of one
core (``SWEEP_BUDGET``): the next sweep waits ``max(sweep_interval, 20 x the last sweep's
duration)`` (the follower, which does the sweep's work, tells its duration through
:meth:`Watcher.swept`), and a poll pass over every path starts ``max(poll_interval, 20 x the
last pass's duration)`` after the previous one, in slices that leave the event loop free between
them. Small trees are therefore polled and swept at the configured intervals; over 100,000 run
folders (200,000 paths) a poll pass takes about 0.7 s, so one comes every 13 s or so. Hot files
keep their ``hot_interval`` whatever the size of the tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import watchfiles
from tailboard.format import STREAM_SUFFIX

__all__ = ["Hints", "StatPoller", "Watcher", "stat_signature"]

logger = logging.getLogger(__name__)

#: A file that changed less than this many seconds ago is polled at the hot interval.
HOT_SECONDS = 10.0
#: With inotify, at most this many recently written streams are also stat-ed every hot_interval.
INOTIFY_HOT_FILES = 64
#: When polling, at most this many recently changed paths are stat-ed every hot_interval.
POLL_HOT_FILES = 128
#: How long start() waits for the sentinel's event before falling back to polling.
READY_TIMEOUT = 3.0
#: Share of one core that sweeps, and poll passes over every path, may take on average.
SWEEP_BUDGET = 0.05
#: Paths stat-ed in one slice of a poll pass before the event loop gets a turn.
POLL_SLICE = 1000


class Hints:
    """Merged hints waiting for the follower: a set of paths, and a flag to re-check everything."""

    def __init__(self) -> None:
        self._paths: set[str] = set()
        self._full = False
        self._event = asyncio.Event()

    def add(self, paths: Iterable[str]) -> None:
        self._paths.update(paths)
        if self._paths:
            self._event.set()

    def add_full(self) -> None:
        self._full = True
        self._event.set()

    async def wait(self) -> tuple[set[str], bool]:
        """Wait for at least one hint, then take everything pending."""
        await self._event.wait()
        self._event.clear()
        paths, full = self._paths, self._full
        self._paths, self._full = set(), False
        return paths, full


def stat_signature(path: str) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class StatPoller:
    """Compare stat signatures of the paths it is given with those of the previous call.

    It also keeps the paths that changed in the last HOT_SECONDS, oldest first; ``hot_limit`` bounds
    how many (the least recent are dropped), so that a tree whose files all changed lately cannot
    make the hot checks as costly as a whole pass.
    """

    def __init__(self, *, hot_limit: int | None = None) -> None:
        self._last: dict[str, tuple[int, int, int, int] | None] = {}
        self._changed_at: OrderedDict[str, float] = OrderedDict()
        self.hot_limit = hot_limit

    def _heat(self, path: str, now: float) -> None:
        self._changed_at[path] = now
        self._changed_at.move_to_end(path)
        if self.hot_limit is not None and len(self._changed_at) > self.hot_limit:
            self._changed_at.popitem(last=False)

    def check(self, paths: Iterable[str], now: float, *, baseline: bool = False) -> list[str]:
        """Paths whose signature changed. A path not seen before counts as changed (it may have
        grown since it was found) unless ``baseline`` is set."""
        changed = []
        for path in paths:
            sig = stat_signature(path)
            if path not in self._last:
                self._last[path] = sig
                if not baseline:
                    changed.append(path)
                    self._heat(path, now)
                elif sig is not None and time.time() - sig[3] / 1e9 < HOT_SECONDS:
                    self._heat(path, now)  # written to lately: likely to be again
                continue
            old = self._last[path]
            self._last[path] = sig
            if sig != old:
                changed.append(path)
                self._heat(path, now)
        return changed

    def hot(self, now: float, limit: int | None = None) -> list[str]:
        """Paths that changed recently (the ``limit`` most recent ones, most recent first);
        forgets those gone quiet."""
        while self._changed_at:
            path, t = next(iter(self._changed_at.items()))
            if now - t <= HOT_SECONDS:
                break
            del self._changed_at[path]
        if limit is not None and len(self._changed_at) > limit:
            return list(itertools.islice(reversed(self._changed_at), limit))
        return list(self._changed_at)

    def forget(self, keep: set[str]) -> None:
        for p in [p for p in self._last if p not in keep]:
            del self._last[p]
            self._changed_at.pop(p, None)


def _touch(path: str) -> None:
    with open(path, "wb") as f:
        f.write(b"x")


def _is_stream(path: str) -> bool:
    return path.endswith(STREAM_SUFFIX)


class Watcher:
    """Feed ``hints`` from inotify or the poller, plus the sweep, until :meth:`stop`.

    ``paths`` returns what the poller should stat: the followed files and the folders whose
    entries may change.
    """

    def __init__(
        self,
        root: str,
        hints: Hints,
        paths: Callable[[], Iterable[str]],
        *,
        poll: bool = False,
        poll_interval: float = 0.25,
        hot_interval: float = 0.01,
        sweep_interval: float = 1.0,
        debounce_ms: int = 50,
        step_ms: int = 5,
        inotify_hot: bool = True,
        wanted: Callable[[str], bool] = _is_stream,
    ) -> None:
        if poll_interval <= 0 or hot_interval <= 0 or sweep_interval <= 0:
            raise ValueError("poll_interval, hot_interval and sweep_interval must be positive")
        self.root = os.path.abspath(root)
        self.hints = hints
        self._paths = paths
        # Which modified files matter (those that may be logs, by name): modifications of the others
        # (checkpoints being written...) are dropped. Any add or delete is kept (it may be a folder).
        self.wanted = wanted
        self.poll_interval = poll_interval
        self.hot_interval = min(hot_interval, poll_interval)
        self.sweep_interval = sweep_interval
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self.inotify_hot = inotify_hot  # with inotify, also stat the files that had events lately
        self.mode = "poll" if poll else "inotify"
        self._stop = asyncio.Event()
        self._inotify_stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._sentinel_dir: str | None = None
        self._ready = asyncio.Event()
        self._poller = StatPoller(hot_limit=POLL_HOT_FILES)
        self._heat = asyncio.Event()  # set when inotify reports files: they are hot
        self._sweep_cost = 0.0  # seconds the last sweep took, as told by swept()
        self._swept_at: float | None = None  # when the last sweep ended, as told by swept()
        self.poll_pass_cost = 0.0  # seconds the last poll pass over every path took

    def _accept(self, change: watchfiles.Change, path: str) -> bool:
        return change != watchfiles.Change.modified or self.wanted(path)

    def swept(self, seconds: float) -> None:
        """Tell that a sweep has just ended and how long it took (from any thread): the next one
        is asked for :meth:`sweep_wait` seconds later. Once told (tell the first walk of the tree
        too), no sweep is asked for before the previous one is told to have ended."""
        self._sweep_cost = seconds
        self._swept_at = time.monotonic()

    def sweep_wait(self) -> float:
        """Seconds from one sweep to the next: the interval, or longer to keep to the budget."""
        return max(self.sweep_interval, self._sweep_cost / SWEEP_BUDGET)

    async def start(self) -> None:
        """Return once changes from now on are sure to produce a hint (or be polled)."""
        if self._tasks:
            raise RuntimeError("Watcher.start() called twice")
        if self.mode == "inotify" and not await self._start_inotify():
            self.mode = "poll"
        if self.mode == "poll":
            # The first pass sets the baseline the next passes compare with.
            self._poller.check(self._paths(), time.monotonic(), baseline=True)
            self._tasks.append(asyncio.create_task(self._run_poll()))
        elif self.inotify_hot:
            self._tasks.append(asyncio.create_task(self._run_hot()))
        self._tasks.append(asyncio.create_task(self._run_sweep()))

    async def stop(self) -> None:
        self._stop.set()
        self._inotify_stop.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._sentinel_dir is not None:
            shutil.rmtree(self._sentinel_dir, ignore_errors=True)
            self._sentinel_dir = None

    # -- inotify ------------------------------------------------------------------------------

    async def _start_inotify(self) -> bool:
        self._sentinel_dir = tempfile.mkdtemp(prefix="tailboard-watch-")
        # Named like a stream so that the filter lets its modifications through.
        sentinel = os.path.join(self._sentinel_dir, "ready.jsonl")
        task = asyncio.create_task(self._run_inotify())
        deadline = time.monotonic() + READY_TIMEOUT
        # awatch starts watching on its first iteration and says nothing when it is live: touch
        # the sentinel until its event arrives.
        while not self._ready.is_set():
            if task.done() or time.monotonic() > deadline:
                break
            _touch(sentinel)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), 0.02)
        if self._ready.is_set():
            self._tasks.append(task)
            return True
        # Its Rust side checks the stop event every step: setting it ends the task at once, where a
        # bare cancel would wait for the watcher thread's timeout.
        self._inotify_stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        logger.warning("inotify did not start under %s: polling instead", self.root)
        return False

    async def _run_inotify(self) -> None:
        assert self._sentinel_dir is not None
        sentinel_dir = self._sentinel_dir
        try:
            async for changes in watchfiles.awatch(
                self.root,
                sentinel_dir,
                watch_filter=self._accept,
                debounce=self.debounce_ms,
                step=self.step_ms,
                stop_event=self._inotify_stop,
                recursive=True,
                ignore_permission_denied=True,
                force_polling=False,
            ):
                paths = set()
                for _change, path in changes:
                    if path.startswith(sentinel_dir):
                        self._ready.set()
                    else:
                        paths.add(path)
                if paths:
                    self.hints.add(paths)
                    # files written to now are likely to be again: stat them every hot_interval
                    # too, as the poller does (a batch of events waits for the debounce)
                    streams = [p for p in paths if self.wanted(p)] if self.inotify_hot else []
                    if streams:
                        self._poller.check(streams, time.monotonic())
                        self._heat.set()
        except Exception as exc:
            # Watch limit, no descriptors, a filesystem without inotify: poll from now on.
            logger.warning("inotify failed under %s (%r): polling instead", self.root, exc)
            if self._ready.is_set() and not self._stop.is_set():
                self.mode = "poll"
                self._poller.check(self._paths(), time.monotonic(), baseline=True)
                self.hints.add_full()
                self._tasks.append(asyncio.create_task(self._run_poll()))

    # -- polling and sweep --------------------------------------------------------------------

    async def _run_poll(self) -> None:
        pending: list[str] = []  # the paths of the pass under way
        at = 0  # how many of them are checked
        began = next_full = next_hot = 0.0
        cost = 0.0  # seconds spent on the pass under way
        while not self._stop.is_set():
            now = time.monotonic()
            changed = []
            if now >= next_hot:
                changed += self._poller.check(self._poller.hot(now), now)
                next_hot = now + self.hot_interval
            if at >= len(pending) and now >= next_full:
                t0 = time.perf_counter()
                pending, at, began = list(self._paths()), 0, now
                self._poller.forget(set(pending))
                cost = time.perf_counter() - t0
                next_full = now + self.poll_interval  # if there is nothing to poll
            if at < len(pending):
                t0 = time.perf_counter()
                part = pending[at : at + POLL_SLICE]
                at += len(part)
                changed += self._poller.check(part, now)
                cost += time.perf_counter() - t0
                if at >= len(pending):
                    self.poll_pass_cost = cost
                    next_full = began + max(self.poll_interval, cost / SWEEP_BUDGET)
                    pending, at = [], 0
            if changed:
                self.hints.add(changed)
            # between slices of a pass, only let the loop serve others; otherwise wait
            await asyncio.sleep(0 if pending else self.hot_interval)

    async def _run_hot(self) -> None:
        """With inotify: stat the files that had events in the last seconds every hot_interval.
        Idle (no wake-ups) while nothing is hot."""
        while not self._stop.is_set():
            if self.mode != "inotify":
                return  # fell back to polling, which polls hot files itself
            # inotify still reports every file: the stat only shortens the wait for the busiest
            paths = self._poller.hot(time.monotonic(), limit=INOTIFY_HOT_FILES)
            if not paths:
                self._heat.clear()
                await self._heat.wait()
                continue
            changed = self._poller.check(paths, time.monotonic())
            if changed:
                self.hints.add(changed)
            await asyncio.sleep(self.hot_interval)

    async def _run_sweep(self) -> None:
        asked: float | None = None  # when the last sweep was asked for
        last = time.monotonic()  # when the last sweep ended (or was asked for, if nobody tells)
        while not self._stop.is_set():
            told = self._swept_at
            if asked is not None and told is not None and told < asked:
                # Whoever sweeps tells when a sweep ends: the wait runs from there, or sweeps of
                # a big tree (seconds each) would follow one another back to back.
                await asyncio.sleep(min(0.05, self.sweep_interval))
                continue
            if told is not None:
                last = max(last, told)
            delay = last + self.sweep_wait() - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # a sweep may have been told meanwhile: look again
            asked = last = time.monotonic()
            self.hints.add_full()
