"""A run: one file per process, one ``write()`` per record, nothing that can break training.

Every record is encoded to one complete line and handed to the kernel with a single ``os.write`` on a
descriptor opened with ``O_APPEND``: a reader sees it at once, a killed process loses nothing that
``log()`` returned from, and lines of several processes never interleave. There is no buffer, no
thread and no fsync. I/O errors are counted and warned about once; they never reach the loop.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
import time
import warnings
import weakref
from typing import Any, Mapping

from .format import (
    FORMAT,
    FORMAT_VERSION,
    K_CONFIG,
    K_END,
    K_HEADER,
    K_HIST,
    K_SCALARS,
    K_TEXT,
    K_VECTOR,
    KIND,
    STATUS_FAILED,
    STATUS_FINISHED,
    STREAM_SUFFIX,
    encode,
    encode_float,
    to_json_value,
)
from .values import classify

__all__ = ["Run", "TailboardWarning", "stream_name"]

_time = time.time
_write = os.write
try:
    from orjson import OPT_APPEND_NEWLINE as _OPT
    from orjson import dumps as _dumps
except ImportError:  # the stdlib path in format.encode is used
    _dumps = None  # type: ignore[assignment]
    _OPT = 0


class TailboardWarning(RuntimeWarning):
    """Something went wrong in logging; training goes on."""


def stream_name(rank: int) -> str:
    return f"rank{rank}{STREAM_SUFFIX}"


def _env_int(name: str) -> int | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


_live: "weakref.WeakSet[Run]" = weakref.WeakSet()
_failure: list[str] = []  # the one-line reason of an uncaught exception, set by the excepthook


class Run:
    """Create with ``tailboard.init(path)``. ``log()`` appends; ``finish()`` writes the final record."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        rank_zero_only: bool = False,
        name: str | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.rank = rank if rank is not None else (_env_int("RANK") or 0)
        self.world_size = world_size if world_size is not None else (_env_int("WORLD_SIZE") or 1)
        self.name = name if name is not None else self.path
        self.enabled = not (rank_zero_only and self.rank != 0)
        self.dropped = 0
        self.records = 0
        self.finished = False
        self._step = -1
        self._warned: set[str] = set()
        self._pid = os.getpid()
        self._pending: list[tuple[int, float, str, Any, Any]] = []  # device copies not yet resolved
        self._lock = threading.Lock()
        self._fd = -1
        self._forked = False
        self._off = not self.enabled  # log() does nothing: disabled rank, or a forked child
        self.file = os.path.join(self.path, stream_name(self.rank))
        if not self.enabled:
            return
        try:
            os.makedirs(self.path, exist_ok=True)
            self._fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            self._warn("open", f"tailboard: cannot open {self.file}: {e}; records are dropped")
        self._emit(
            {
                KIND: K_HEADER,
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "run": self.name,
                "host": socket.gethostname(),
                "pid": self._pid,
                "rank": self.rank,
                "world_size": self.world_size,
                "start": _time(),
                "argv": list(sys.argv),
            }
        )
        if config:
            self.config(config)
        _live.add(self)

    # ---- the hot path --------------------------------------------------------------------------

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append the values of ``metrics`` at ``step`` (the previous step + 1 when omitted).

        Scalars go into one record; vectors, histograms and text get a record each.
        """
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            raise TypeError(f"log() takes a dict of metrics, not {type(metrics).__name__}")
        if self.finished:
            raise RuntimeError("log() after finish(): this run is closed")
        if step is None:
            step = self._step + 1
        elif type(step) is not int:
            try:
                step = int(step)
            except (TypeError, ValueError):
                raise TypeError(f"step must be an integer, not {type(step).__name__}") from None
        self._step = step
        if self._off:
            if self._forked:
                self._warn("fork", "tailboard: log() in a forked child is ignored (the parent owns the run)")
            return
        if self._pending:
            self._resolve(block=False)
        t = _time()
        v: dict[str, Any] = {}
        for key, x in metrics.items():
            tx = type(x)
            if tx is float:
                v[key] = x if x - x == 0 else encode_float(x)
            elif tx is int:
                v[key] = x
            else:
                self._other(v, str(key), x, step, t)
        if v:
            record = {KIND: K_SCALARS, "step": step, "t": t, "v": v}
            if _dumps is not None and self._fd >= 0:
                # the common case inlined: one encode, one write
                try:
                    line = _dumps(record, option=_OPT)
                except (TypeError, ValueError):
                    line = None
                if line is not None:
                    self._write_line(line)
                    return
            self._emit(record)

    def _other(self, v: dict[str, Any], key: str, x: Any, step: int, t: float) -> None:
        if isinstance(x, Mapping):
            for k2, x2 in x.items():
                self._other(v, f"{key}/{k2}", x2, step, t)
            return
        kind, payload = classify(x)
        if kind == "scalar":
            v[key] = payload
        elif kind == "vector":
            self._emit({KIND: K_VECTOR, "step": step, "t": t, "name": key, "v": payload})
        elif kind == "hist":
            self._emit({KIND: K_HIST, "step": step, "t": t, "name": key, **payload})
        elif kind == "text":
            self._emit({KIND: K_TEXT, "step": step, "t": t, "name": key, "text": payload})
        elif kind == "tensor":
            self._defer(key, payload, step, t)
        else:
            self._warn(f"bad:{key}", f"tailboard: {key!r} not logged: {payload}")

    def _defer(self, key: str, tensor: Any, step: int, t: float) -> None:
        """Start copying a device tensor to the host without waiting; written at a later call."""
        try:
            import torch  # already imported: the value is a torch tensor

            cpu = tensor.detach().to("cpu", non_blocking=True)
            event = torch.cuda.Event() if tensor.is_cuda else None  # type: ignore[no-untyped-call]
            if event is not None:
                event.record()
            self._pending.append((step, t, key, cpu, event))
        except Exception as e:  # never into the loop
            self._warn(f"bad:{key}", f"tailboard: {key!r} not logged: {e}")

    def _resolve(self, *, block: bool) -> None:
        still = []
        for step, t, key, cpu, event in self._pending:
            if event is not None and not block and not event.query():
                still.append((step, t, key, cpu, event))
                continue
            if event is not None:
                event.synchronize()
            v: dict[str, Any] = {}
            self._other(v, key, cpu, step, t)
            if v:
                self._emit({KIND: K_SCALARS, "step": step, "t": t, "v": v})
        self._pending = still

    def _emit(self, record: dict[str, Any]) -> None:
        try:
            line = encode(record)
        except (TypeError, ValueError) as e:
            self.dropped += 1
            self._warn("encode", f"tailboard: a record could not be encoded ({e}); it is dropped")
            return
        if self._fd < 0:
            self.dropped += 1
            return
        self._write_line(line)

    def _write_line(self, line: bytes) -> None:
        try:
            n = _write(self._fd, line)
            while n < len(line):  # only on a full disk or similar: finish the line or fail
                n += _write(self._fd, line[n:])
            self.records += 1
        except OSError as e:
            self.dropped += 1
            self._warn("write", f"tailboard: cannot write to {self.file}: {e}; records are dropped "
                               "and counted, training goes on")

    def _warn(self, key: str, message: str) -> None:
        if key in self._warned:
            return
        self._warned.add(key)
        warnings.warn(message, TailboardWarning, stacklevel=4)

    # ---- the rest of the API -------------------------------------------------------------------

    def config(self, config: Mapping[str, Any]) -> None:
        """Record hyper-parameters (nested dicts allowed); later calls update earlier ones."""
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, not {type(config).__name__}")
        if not self._off:
            self._emit({KIND: K_CONFIG, "t": _time(), "config": to_json_value(dict(config))})

    def finish(self, status: str = STATUS_FINISHED, reason: str | None = None) -> None:
        """Write the final record and close the file. Idempotent."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
        _live.discard(self)
        if self._off:
            return
        if self._pending:
            try:
                self._resolve(block=True)
            except Exception as e:
                self._warn("resolve", f"tailboard: device values lost at finish: {e}")
        record: dict[str, Any] = {KIND: K_END, "t": _time(), "status": status, "dropped": self.dropped}
        if reason:
            record["reason"] = " ".join(reason.split())[:500]
        self._emit(record)
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None or (issubclass(exc_type, SystemExit) and exc.code in (0, None)):
            self.finish()
        else:
            self.finish(STATUS_FAILED, f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        return f"Run({self.path!r}, rank={self.rank}, records={self.records}, dropped={self.dropped})"


# ---- process-wide hooks -------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    # A DataLoader worker inherits the parent's runs: it must not write into the parent's file, and
    # its exit must not write the parent's final record. The pid check in log()/finish() does that;
    # here the inherited descriptors are closed so the child holds nothing of the parent's.
    for run in list(_live):
        run._forked = True
        run._off = True
        if run._fd >= 0:
            try:
                os.close(run._fd)
            except OSError:
                pass
            run._fd = -1


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    _failure.append(f"{getattr(exc_type, '__name__', exc_type)}: {exc}")
    _previous_excepthook(exc_type, exc, tb)


def _at_exit() -> None:
    reason = _failure[-1] if _failure else None
    for run in list(_live):
        try:
            if reason is not None:
                run.finish(STATUS_FAILED, reason)
            else:
                run.finish()
        except Exception:
            pass


_previous_excepthook = sys.excepthook
sys.excepthook = _excepthook
atexit.register(_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
