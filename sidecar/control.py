"""Stop control (``serve --allow-control``): a stop request is a file in the run's folder, which the
trainer reads (``run.should_stop()``) and acknowledges with a record. The sidecar never sends a
signal: it cannot reach the trainer's process (another container, another node), and a process
that stops by itself writes its final record, saves what it wants to and ends as ``finished``.

``request_stop`` writes ``<run folder>/.tailboard-control`` atomically: a temporary file (created
exclusively, a hidden name the follower never reads), fsync, rename over the old one, fsync of the
folder. It holds ``{"action": "stop", "nonce", "requested", "reason", "by"}``; the nonce tells this
request from an older one (a process starting finds the file of an earlier request and ignores it).
The run's ``stop`` state is what the page shows: ``requested`` (the file is written), then
``acknowledged`` (the trainer's ``tailboard/control`` record with that nonce arrived), then
``finished`` (the run's final record). Acknowledgements are read from the log, so they survive a
restart of the sidecar; a request not yet acknowledged does not.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from tailboard import __version__
from tailboard.format import K_HEADER, K_TEXT, KIND, decode_float
from tailboard.run import CONTROL_FILE, CONTROL_TEXT

from .discovery import contained
from .store import Store
from .store.events import RecordsKept, StoreEvent

__all__ = ["STOPPABLE", "ControlPlane", "ControlRefused", "StopState"]

logger = logging.getLogger(__name__)

#: The statuses of a run that can be asked to stop (a stalled run may be in a long evaluation).
STOPPABLE = ("running", "stalled")
_ENDED = ("finished", "failed")
#: The longest reason kept in a request.
MAX_REASON = 500


class ControlRefused(Exception):
    """A request the sidecar cannot carry out; ``status`` is the HTTP code, the text is safe to send."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StopState:
    nonce: str
    requested: float | None
    reason: str | None = None
    acknowledged: float | None = None

    def to_json(self, status: str | None) -> dict[str, Any]:
        state = "requested" if self.acknowledged is None else "acknowledged"
        if status in _ENDED:
            state = "finished"
        return {"state": state, "nonce": self.nonce, "requested": self.requested,
                "acknowledged": self.acknowledged, "reason": self.reason}


class ControlPlane:
    """``on_change(run_id)`` is told when a run's stop state changes (the page's run list)."""

    def __init__(self, root: str, store: Store, *, clock: Callable[[], float] = time.time,
                 on_change: Callable[[str], None] | None = None) -> None:
        self.root = os.path.abspath(root)
        self.store = store
        self.clock = clock
        self.on_change = on_change
        self._stops: dict[str, StopState] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self.store.add_listener(self.on_store_event)

    def stop(self) -> None:
        self.store.remove_listener(self.on_store_event)

    # ---- requests (a worker thread) ------------------------------------------------------------

    def request_stop(self, run_id: str, reason: str | None = None) -> StopState:
        """Write a stop request into the run's folder. A request already waiting for its
        acknowledgement is answered again, not written twice. Raises ``ControlRefused``."""
        info = self.store.get_run(run_id)
        if info is None:
            raise ControlRefused(404, "unknown run")
        if info.status not in STOPPABLE:
            raise ControlRefused(409, f"the run is {info.status}: only a running run can be stopped")
        folder = self._folder(run_id)
        with self._lock:
            pending = self._stops.get(run_id)
            if pending is not None and pending.acknowledged is None:
                return pending
            state = StopState(secrets.token_hex(8), self.clock(),
                              None if not reason else " ".join(reason.split())[:MAX_REASON])
            self._stops[run_id] = state  # before the file exists: its acknowledgement may come at once
        try:
            self._write(folder, state)
        except OSError as e:
            with self._lock:
                if self._stops.get(run_id) is state:
                    del self._stops[run_id]
            if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise ControlRefused(409, "the log tree is read-only here: a stop request cannot be written "
                                          f"into the run's folder ({os.strerror(e.errno)})") from None
            raise ControlRefused(500, f"the stop request could not be written ({e.strerror or e})") from None
        logger.warning("stop requested for run %s", run_id)
        self._changed(run_id)
        return state

    def _folder(self, run_id: str) -> str:
        folder = os.path.normpath(os.path.join(self.root, run_id))
        real_root = os.path.realpath(self.root)
        if not contained(os.path.realpath(folder), real_root) or not os.path.isdir(folder):
            raise ControlRefused(404, "the run has no folder under the log root")
        return folder

    def _write(self, folder: str, state: StopState) -> None:
        body = orjson.dumps({"action": "stop", "nonce": state.nonce, "requested": state.requested,
                             "reason": state.reason, "by": f"tailboard {__version__}"})
        final = os.path.join(folder, CONTROL_FILE)
        temp = os.path.join(folder, f"{CONTROL_FILE}.{state.nonce}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, final)
        except BaseException:
            try:
                os.unlink(temp)
            except OSError:
                pass
            raise
        try:  # the rename itself survives a crash once the folder is synced
            dfd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass

    # ---- acknowledgements (the store listener: the follower's thread, no I/O) -----------------

    def on_store_event(self, event: StoreEvent) -> None:
        if not isinstance(event, RecordsKept):
            return
        changed = False
        for rec in event.records:
            kind = rec.get(KIND)
            if kind == K_HEADER:  # a new process: what was asked of the last one is done with
                with self._lock:
                    old = self._stops.get(event.run_id)
                    if old is not None and old.acknowledged is not None:
                        del self._stops[event.run_id]
                        changed = True
            elif kind == K_TEXT and rec.get("name") == CONTROL_TEXT and rec.get("action") == "stop":
                changed |= self._acknowledged(event.run_id, rec)
        if changed:
            self._changed(event.run_id)

    def _acknowledged(self, run_id: str, rec: dict[str, Any]) -> bool:
        nonce = rec.get("nonce")
        if type(nonce) is not str:
            return False
        at = decode_float(rec.get("t"))
        with self._lock:
            known = self._stops.get(run_id)
            if known is not None and known.nonce == nonce:
                if known.acknowledged is not None:
                    return False  # another rank's acknowledgement
                self._stops[run_id] = replace(known, acknowledged=at)
            else:  # one this sidecar did not write (before a restart): the log says it all
                requested = decode_float(rec.get("requested"))
                self._stops[run_id] = StopState(nonce[:100], requested, None, at)
        return True

    def _changed(self, run_id: str) -> None:
        if self.on_change is not None:
            try:
                self.on_change(run_id)
            except Exception:
                logger.exception("telling of a stop state failed")

    # ---- asking --------------------------------------------------------------------------------

    def state(self, run_id: str, status: str | None) -> dict[str, Any] | None:
        with self._lock:
            known = self._stops.get(run_id)
        return None if known is None else known.to_json(status)
