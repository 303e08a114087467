"""Where a sampler's records go: its host's system run in the log tree, written by the writer itself
(``tailboard.Run``: one ``write()`` per line on an ``O_APPEND`` descriptor, a torn write mended,
nothing raised), one sampler per host at a time.

Two samplers of one host (``serve --gpu auto`` beside a ``tailboard gpu``) would write the same
figures twice: the one that takes an advisory lock (``flock``) on the run's file writes, the other
stands by and tries again now and then, so it takes over when the first stops. Where the tree cannot
be written (a read-only mount), nothing is written: the sampler keeps its samples in memory and says
so once.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from tailboard.run import Run, stream_name

from .layout import EVENTS, system_run_id

try:
    import fcntl
except ImportError:  # not POSIX: no lock, one sampler per host is then up to the deployment
    fcntl = None  # type: ignore[assignment]

__all__ = ["SystemRun", "LOG", "MEMORY", "STANDBY"]

logger = logging.getLogger(__name__)

LOG = "log"  # records go into the log tree
MEMORY = "memory"  # the tree cannot be written: records stay in the sampler's ring
STANDBY = "standby"  # another sampler writes this host's run


class SystemRun:
    """The system run of ``node`` under ``root``: ``<root>/_system/<node>/rank0.jsonl``."""

    def __init__(self, root: str | os.PathLike[str], node: str) -> None:
        self.root = os.fspath(root)
        self.run_id = system_run_id(node)
        self.folder = os.path.join(self.root, *self.run_id.split("/"))
        self.file = os.path.join(self.folder, stream_name(0))
        self.why = ""  # why records are not written, when they are not
        self._run: Run | None = None
        self._lock = -1
        self._io_drops = 0

    def open(self) -> str:
        """Try to become this host's writer: ``LOG``, ``STANDBY`` or ``MEMORY`` (``why`` says why)."""
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self.why = f"cannot write {self.file}: {e.strerror or e}"
            return MEMORY
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self.why = f"another sampler writes {self.file}"
                return STANDBY
            except OSError as e:  # a file system without locks: write anyway
                logger.info("GPU telemetry: no lock on %s (%s); writing without one", self.file, e)
        self._lock = fd
        # The sampler's own command, not the process's: the sidecar's may carry --token.
        try:
            self._run = Run(self.folder, rank=0, world_size=1, name=self.run_id, argv=["tailboard", "gpu"])
        except OSError as e:  # the writer's LogFolderError: made read-only since the check above
            self.why = f"cannot write {self.file}: {e.strerror or e}"
            self.close()
            return MEMORY
        return LOG

    def config(self, config: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.config(config)
            self._check()

    def write(self, step: int, values: dict[str, Any]) -> None:
        if self._run is not None:
            self._run.log(values, step=step)
            self._check()

    def event(self, step: int, text: str) -> None:
        if self._run is not None:
            self._run.log({EVENTS: text}, step=step)
            self._check()

    def _check(self) -> None:
        """Say once that writes fail (the writer counts them and goes on; so does the sampler:
        its ring still holds every sample)."""
        assert self._run is not None
        lost = self._run.drops.get("<io>", 0)
        if lost > self._io_drops:
            if self._io_drops == 0:
                logger.warning("GPU telemetry: writing %s fails (the records lost are counted in the "
                               "run's final record); the sampler's ring keeps the latest samples",
                               self.file)
            self._io_drops = lost

    def close(self) -> None:
        """Write the run's final record and let another sampler take over."""
        if self._run is not None:
            self._run.finish()
            self._run = None
        if self._lock >= 0:
            os.close(self._lock)  # releases the lock
            self._lock = -1
