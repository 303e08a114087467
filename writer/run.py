"""A run: one file per process, one ``write()`` per record, nothing that can break training.

Every record is encoded to one complete line and handed to the kernel with a single ``os.write`` on a
descriptor opened with ``O_APPEND``: a reader sees it at once, a killed process loses nothing that
``log()`` returned from, and lines of several processes never interleave. There is no buffer, no
thread and no fsync.

``log()`` raises only for misuse (a metrics argument that is not a dict); anything else that goes
wrong is counted (``dropped``, per name in ``drops``) and warned about, boundedly, and training goes
on. The common case (a dict of floats and ints with string keys) is one orjson call and one write;
a value orjson refuses, or a line over ``MAX_LINE_BYTES``, takes the slow path, which keeps every
good value. A write cut short (a full disk) leaves the file mid-line: the next write starts with a
newline, so the torn piece is one bad line for the reader and every later record is whole.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import socket
import stat
import sys
import threading
import time
import warnings
import weakref
from typing import Any, Callable, Mapping

from . import png
from .format import (
    FORMAT,
    FORMAT_VERSION,
    K_CONFIG,
    K_END,
    K_HEADER,
    K_HIST,
    K_TEXT,
    K_VECTOR,
    KIND,
    MAX_LINE_BYTES,
    STATUS_FAILED,
    STATUS_FINISHED,
    STREAM_SUFFIX,
    encode,
    encode_float,
    scalars_record,
)
from .values import (
    K_IMAGE,
    MAX_DEPTH,
    STEP_MAX,
    Problem,
    as_step,
    classify,
    clean_json,
    clean_key,
    clean_scalar,
    fit_items,
    fit_text,
    image_pixels,
)

__all__ = [
    "LogFolderError",
    "Run",
    "TailboardWarning",
    "stream_name",
    "MAX_WARNINGS",
    "ALERT_LEVELS",
    "ALERT_TEXT",
    "CONTROL_TEXT",
    "CONTROL_FILE",
    "STOP_CHECK_INTERVAL",
    "MEDIA_FOLDER",
    "media_name",
]

#: Distinct warnings one run shows; later problems are only counted.
MAX_WARNINGS = 20
#: Distinct names counted in ``Run.drops``; later ones are counted under ``"<other>"``.
MAX_DROP_NAMES = 1000

#: Levels of ``Run.alert``, least to most urgent.
ALERT_LEVELS = ("info", "warning", "error")
#: The text record an alert from the trainer is (a reader that knows no alerts shows it as text),
#: with the fields ``title`` and ``level`` beside ``text`` (docs/alerts.md).
ALERT_TEXT = "tailboard/alert"
#: The text record by which a process acknowledges a control request, with ``action`` and ``nonce``.
CONTROL_TEXT = "tailboard/control"
#: The file in the run folder where the sidecar (``serve --allow-control``) writes a stop request. A
#: hidden name: the sidecar never takes it for a log.
CONTROL_FILE = ".tailboard-control"
#: ``should_stop()`` looks at the control file at most this often (seconds).
STOP_CHECK_INTERVAL = 1.0
#: The longest control file read (a request is a small JSON object).
MAX_CONTROL_BYTES = 4096
#: The folder of the run where images are written, one folder per name below it (docs/format.md).
MEDIA_FOLDER = "media"
#: Names an image file of one step may take (``<step>.png``, ``<step>-1.png``, ...): then it is
#: dropped.
MAX_MEDIA_TRIES = 100
_MEDIA_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

_time = time.time
_monotonic = time.monotonic
_write = os.write
try:
    from orjson import OPT_APPEND_NEWLINE as _OPT
    from orjson import dumps as _dumps
except ImportError:  # the stdlib path in format.encode is used
    _dumps = None  # type: ignore[assignment]
    _OPT = 0


class TailboardWarning(RuntimeWarning):
    """Something went wrong in logging; training goes on."""


class LogFolderError(OSError):
    """``init()`` cannot create or write the run's file: raised at once, before training starts,
    rather than dropping every record of the run (a shared volume owned by another user)."""

    def __init__(self, code: int | None, message: str, filename: str) -> None:
        super().__init__(code, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _folder_error(path: str, file: str, exc: OSError) -> LogFolderError:
    """The error ``init()`` raises: what failed, as which user, and who owns the nearest folder."""
    who = f"uid {os.getuid()} gid {os.getgid()}" if hasattr(os, "getuid") else "this user"
    folder = path
    while folder and not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    owner = ""
    try:
        st = os.stat(folder)
        owner = f"; {folder} is owned by uid {st.st_uid} gid {st.st_gid}, mode {stat.filemode(st.st_mode)}"
    except OSError:
        pass
    return LogFolderError(exc.errno, f"tailboard: cannot write {file} as {who}: {exc.strerror or exc}{owner}. "
                          "Make the log folder writable for this user (a group both containers share: "
                          "fsGroup, chgrp + chmod g+ws) or log to another path", file)


def media_name(name: str) -> str:
    """The folder of an image name below ``media/``: its ``/``-separated parts kept (at most 8, of
    at most 64 characters), every character but letters, digits, ``.``, ``_`` and ``-`` made ``_``;
    a part that would be empty, ``.`` or ``..``, or start with ``.`` (hidden) starts with ``_``. So a name
    never leads outside the folder."""
    parts = []
    for part in name.split("/")[:8]:
        part = "".join(ch if ch in _MEDIA_CHARS else "_" for ch in part[:64])
        parts.append("_" + part if not part or part.startswith(".") else part)
    return "/".join(parts)


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
    """Create with ``tailboard.init(path)``. ``log()`` appends; ``finish()`` writes the final record.

    ``dropped`` counts the records not written and the values left out of records that were;
    ``drops`` splits it by metric name (``"<io>"``: lost to a write error or an unopened file,
    ``"<finished>"``: logged after ``finish()``, ``"<error>"``: a call that failed as a whole).
    ``truncated`` counts texts cut to fit the line limit, ``bad_steps`` steps that were not
    integers and were replaced by the previous step + 1.

    The header records where the process runs and which GPUs it uses (``_attribution``), and
    ``argv``: ``sys.argv`` unless given (a service writing its own run leaves out its secrets).

    ``should_stop()`` tells whether a stop was requested from the sidecar's page (a control file in
    the run folder, written by ``serve --allow-control``); ``on_stop`` is called once when one is
    seen, by ``should_stop()`` or by ``log()``. ``stop_request`` holds the request once seen.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        config: Mapping[str, Any] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        rank_zero_only: bool = False,
        name: str | None = None,
        argv: list[str] | None = None,
        on_stop: Callable[[], Any] | None = None,
    ) -> None:
        if on_stop is not None and not callable(on_stop):
            raise TypeError(f"on_stop must be callable, not {type(on_stop).__name__}")
        self.path = os.fspath(path)
        self.rank = rank if rank is not None else (_env_int("RANK") or 0)
        self.world_size = world_size if world_size is not None else (_env_int("WORLD_SIZE") or 1)
        self.name = name if name is not None else self.path
        self.enabled = not (rank_zero_only and self.rank != 0)
        self.dropped = 0
        self.drops: dict[str, int] = {}
        self.truncated = 0
        self.bad_steps = 0
        self.records = 0
        self.finished = False
        self._step = -1
        self._warned: set[str] = set()
        self._pid = os.getpid()
        self._pending: list[tuple[int, float, str, Any, Any]] = []  # device copies not yet resolved
        self._media_folders: set[str] = set()  # made already: no makedirs per image
        self._lock = threading.Lock()
        self._fd = -1
        self._direct = False  # the hot path may encode and write at once: orjson, a file, not torn
        self._torn = False  # a write was cut short: the file may end mid-line
        self._torn_whole = False  # ... and what is missing is only the newline of a whole record
        self._forked = False
        self._off = not self.enabled  # log() does nothing: disabled rank, forked child, finished
        self.file = os.path.join(self.path, stream_name(self.rank))
        # stop control: every rank looks (all of them must stop), only enabled ones acknowledge
        self.stop_request: dict[str, Any] | None = None
        self._on_stop = on_stop
        self._control = os.path.join(self.path, CONTROL_FILE)
        self._control_seen: tuple[int, int, int] | None = None  # (inode, mtime ns, size) last read
        self._stale_nonce: str | None = None
        self._next_stop_check = 0.0
        self._read_request()  # a request already there was made to an earlier process: not ours
        if self.stop_request is not None:
            self._stale_nonce, self.stop_request = self.stop_request.get("nonce"), None
        if not self.enabled:
            return
        try:
            os.makedirs(self.path, exist_ok=True)
            self._fd = os.open(self.file, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._direct = _dumps is not None
        except OSError as e:
            # before training starts: say it loudly now, rather than drop every record of the run
            raise _folder_error(self.path, self.file, e) from e
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
                "argv": list(sys.argv if argv is None else argv),
                **_attribution(),
            },
            "<header>",
        )
        if config:
            self.config(config)
        _live.add(self)

    # ---- the hot path --------------------------------------------------------------------------

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Append the values of ``metrics`` at ``step`` (the previous step + 1 when omitted).

        Scalars go into one record (several when one line would be too long); vectors, histograms
        and text get a record each. Raises only when ``metrics`` is not a dict; see docs/writer.md.
        """
        if type(metrics) is not dict and not isinstance(metrics, Mapping):
            raise TypeError(f"log() takes a dict of metrics, not {type(metrics).__name__}")
        if self._on_stop is not None and self.stop_request is None and _monotonic() >= self._next_stop_check:
            self.should_stop()
        try:
            if step is None:
                step = self._step + 1
            if type(step) is not int or not -0x8000000000000000 <= step <= 0x7FFFFFFFFFFFFFFF:  # int64
                step = self._bad_step(step)
            self._step = step
            if self._off:
                self._ignored()
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
                    self._other(v, "", key, x, step, t, (id(metrics),))
            if v:
                record = scalars_record(step, t, v)
                if self._direct:
                    # the common case inlined: one encode, one write
                    try:
                        line = _dumps(record, option=_OPT)
                    except TypeError:  # orjson.JSONEncodeError: the slow path keeps the good values
                        line = None
                    if line is not None and len(line) <= MAX_LINE_BYTES:
                        self._write_line(line)
                        return
                self._scalars(step, t, v)
        except Exception as e:  # a bug or a hostile object: never into the loop
            self._drop("<error>", f"log() failed: {type(e).__name__}: {e}")

    def _other(self, v: dict[str, Any], prefix: str, key: Any, x: Any, step: int, t: float,
               parents: tuple[int, ...]) -> None:
        """A value that is not a plain float or int: flattened, classified, or dropped by name."""
        name = prefix or "?"
        try:
            name = f"{prefix}/{key}" if prefix else (key if type(key) is str else str(key))
            if isinstance(x, Mapping):
                if len(parents) >= MAX_DEPTH:
                    self._drop(name, f"nested deeper than {MAX_DEPTH} levels")
                elif id(x) in parents:
                    self._drop(name, "it contains itself")
                else:
                    inner = parents + (id(x),)
                    for k2, x2 in x.items():
                        self._other(v, name, k2, x2, step, t, inner)
                return
            kind, payload = classify(x)
            if kind == "scalar":
                v[name] = payload
            elif kind == "vector":
                self._emit({KIND: K_VECTOR, "step": step, "t": t, "name": name, "v": payload}, name)
            elif kind == "hist":
                self._emit({KIND: K_HIST, "step": step, "t": t, "name": name, **payload}, name)
            elif kind == "text":
                self._emit({KIND: K_TEXT, "step": step, "t": t, "name": name, "text": payload}, name)
            elif kind == "image":
                self._image(name, payload, step, t)
            elif kind == "tensor":
                self._defer(name, payload, step, t)
            else:
                self._drop(name, payload)
        except Exception as e:  # this value only; the rest of the call goes on
            self._drop(name, f"{type(e).__name__}: {e}")

    def _image(self, name: str, image: Any, step: int, t: float) -> None:
        """Encode ``image`` as a PNG file in the run's media folder, then write the record that
        names it: a reader that sees the record finds the file whole (temp file, then a link)."""
        if self._fd < 0:
            self._drop("<io>", "no file", warn=False)
            return
        try:
            w, h, c, pixels = image_pixels(image)
        except ValueError as e:
            self._drop(name, str(e))
            return
        data = png.encode(w, h, c, pixels)
        rel = self._publish(name, step, data)
        if rel is not None:
            self._emit({KIND: K_IMAGE, "step": step, "t": t, "name": name, "path": rel, "w": w, "h": h,
                        "c": c, "bytes": len(data)}, name)

    def _publish(self, name: str, step: int, data: bytes) -> str | None:
        """Write ``data`` to ``media/<name>/<step>.png`` (``<step>-1.png``, ... when taken: another
        rank, an earlier attempt) and return that path relative to the run folder, or None (counted).
        The file is written under a hidden temporary name and linked to its name only when complete;
        the link never replaces a file (where links are not supported, a rename does)."""
        folder = f"{MEDIA_FOLDER}/{media_name(name)}"
        where = os.path.join(self.path, *folder.split("/"))
        temp = os.path.join(where, f".{step}.{self._pid}.{threading.get_ident()}.tmp")
        try:
            if where not in self._media_folders:
                os.makedirs(where, exist_ok=True)
                if len(self._media_folders) < MAX_DROP_NAMES:
                    self._media_folders.add(where)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
            try:
                fd = os.open(temp, flags, 0o644)
            except FileNotFoundError:  # the folder was removed since: made again
                os.makedirs(where, exist_ok=True)
                fd = os.open(temp, flags, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[_write(fd, view):]
            finally:
                os.close(fd)
            try:
                for n in range(MAX_MEDIA_TRIES):
                    rel = f"{folder}/{step}.png" if n == 0 else f"{folder}/{step}-{n}.png"
                    try:
                        os.link(temp, os.path.join(self.path, *rel.split("/")))
                        return rel
                    except FileExistsError:
                        continue
                    except OSError as e:
                        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EXDEV):
                            raise
                        os.replace(temp, os.path.join(self.path, *rel.split("/")))  # no links here
                        return rel
            finally:
                if os.path.lexists(temp):
                    os.unlink(temp)
        except OSError as e:
            self._drop(name, f"its image file cannot be written: {e}")
            return None
        self._drop(name, f"{MAX_MEDIA_TRIES} image files of step {step} exist already")
        return None

    def _bad_step(self, step: Any) -> int:
        fixed = as_step(step)
        if fixed is not None:
            return fixed
        self.bad_steps += 1
        fallback = min(self._step + 1, STEP_MAX)
        self._warn("step", f"tailboard: step={_short(step)} is not an integer step; the record is "
                           f"written at step {fallback} (the previous step + 1), and so are later "
                           "ones like it (counted in run.bad_steps)")
        return fallback

    def _ignored(self) -> None:
        if self._forked:
            self._warn("fork", "tailboard: log() in a forked child is ignored "
                               "(the parent owns the run)")
        elif self.finished:
            self._drop("<finished>", "", warn=False)
            self._warn("finished", "tailboard: log() after finish() is ignored: the run is closed "
                                   "(counted in run.dropped)")

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
            self._drop(key, f"{type(e).__name__}: {e}")

    def _resolve(self, *, block: bool) -> None:
        still = []
        for step, t, key, cpu, event in self._pending:
            if event is not None and not block and not event.query():
                still.append((step, t, key, cpu, event))
                continue
            if event is not None:
                event.synchronize()
            v: dict[str, Any] = {}
            self._other(v, "", key, cpu, step, t, ())
            if v:
                self._scalars(step, t, v)
        self._pending = still

    # ---- the slow paths: keep every good value, never write a line the reader skips -------------

    def _scalars(self, step: int, t: float, v: dict[str, Any]) -> None:
        """Write the scalars ``v``: each bad one dropped by name, in as many lines as needed."""
        problems: list[Problem] = []
        clean: dict[str, Any] = {}
        for key, x in v.items():
            try:
                name = clean_key(key, problems)
            except Exception as e:
                self._drop("?", f"a name that cannot be made a string ({type(e).__name__})")
                continue
            value = clean_scalar(name, x, problems)
            if value is not None:
                clean[name] = value
        self._report(problems)
        if clean:
            self._fit(lambda part: scalars_record(step, t, part),
                      list(clean.items()), "")

    def _fit(self, make: Any, items: list[tuple[str, Any]], prefix: str) -> None:
        lines, lost = fit_items(make, items, encode, MAX_LINE_BYTES)
        for line in lines:
            self._put(line)
        for name, why in lost:
            self._drop(prefix + name, why)

    def _emit(self, record: dict[str, Any], name: str) -> None:
        """Write one record that is not scalars; ``name`` says what it is in drops and warnings."""
        line: bytes | None = None
        if _dumps is not None:  # (json would escape a lone surrogate the reader then refuses)
            try:
                line = encode(record)
            except (TypeError, ValueError):
                pass
        if line is None:
            problems: list[Problem] = []
            record = clean_json(record, name, problems)
            if any(lost for _, _, lost in problems):  # a record with a part missing is wrong
                self._drop(name, "; ".join(why for _, why, lost in problems if lost))
                return
            self._report([(name, why, False) for _, why, _ in problems])
            try:
                line = encode(record)
            except (TypeError, ValueError) as e:
                self._drop(name, f"it cannot be encoded ({e})")
                return
        if len(line) > MAX_LINE_BYTES:
            line = self._shorten(record, name, len(line))
            if line is None:
                return
        self._put(line)

    def _shorten(self, record: dict[str, Any], name: str, size: int) -> bytes | None:
        """A record over the line limit: a text is cut (counted), the header's argv is cut, anything
        else is dropped (counted)."""
        kind = record[KIND]
        line: bytes | None = None
        if kind == K_TEXT:
            line = fit_text(lambda text: {**record, "text": text}, record["text"], encode,
                            MAX_LINE_BYTES)
            if line is not None:
                self.truncated += 1
                self._warn(f"cut:{name}", f"tailboard: text {_short(name)} was cut to fit the line "
                                          f"limit of {MAX_LINE_BYTES} bytes (counted in run.truncated)")
        elif kind == K_HEADER:
            argv = [str(a)[:200] for a in record.get("argv", [])[:50]] + ["[... tailboard: argv cut]"]
            line = encode({**record, "argv": argv, "run": str(record.get("run", ""))[:4096]})
            line = line if len(line) <= MAX_LINE_BYTES else None
        if line is None:
            self._drop(name, f"its line would be {size} bytes, over the limit of {MAX_LINE_BYTES}")
        return line

    def _write_line(self, line: bytes) -> None:
        """Write a line on the fast path (``_direct``: the file is open and does not end mid-line)."""
        try:
            n = _write(self._fd, line)
        except OSError as e:
            self._write_failed(line, 0, 0, e)
            return
        if n == len(line):
            self.records += 1
        else:
            self._write_rest(line, n, 0)

    def _put(self, line: bytes) -> None:
        """Write a line from a slow path: the file may be missing or end mid-line."""
        if self._fd < 0:
            self._drop("<io>", "no file", warn=False)  # the failed open was warned about
        elif not self._torn:
            self._write_line(line)
        else:
            self._write_rest(b"\n" + line, 0, 1)

    def _write_rest(self, data: bytes, n: int, mend: int) -> None:
        """Write ``data`` from byte ``n`` on (a write was short: a full disk or similar). Its first
        ``mend`` bytes are the newline that ends a torn piece."""
        try:
            while n < len(data):
                more = _write(self._fd, data[n:])
                if more <= 0:
                    raise OSError(errno.EIO, "write() made no progress")
                n += more
        except OSError as e:
            self._write_failed(data, n, mend, e)
            return
        if mend:
            self._mended()
        self.records += 1

    def _write_failed(self, data: bytes, n: int, mend: int, error: OSError) -> None:
        """``n`` bytes of ``data`` reached the file. Never truncate: other processes may be appending
        to it. Remember that it ends mid-line instead, so that the next write starts with a newline."""
        if n and mend:
            self._mended()
        if n > mend:  # the file now ends inside this record
            self._torn = True
            self._torn_whole = n == len(data) - 1
            self._direct = False
        self._drop("<io>", "", warn=False)
        self._warn("write", f"tailboard: cannot write to {self.file}: {error}; records are dropped "
                            "and counted, training goes on")

    def _mended(self) -> None:
        """The newline that ends the torn piece is written; if that piece was a whole record but for
        its newline, it is complete now: written, not dropped."""
        if self._torn_whole:
            self.records += 1
            self.dropped -= 1
            if self.drops.get("<io>"):
                self.drops["<io>"] -= 1
        self._torn = self._torn_whole = False
        self._direct = self._fd >= 0 and _dumps is not None

    # ---- counting and warning ------------------------------------------------------------------

    def _drop(self, name: str, why: str, *, warn: bool = True) -> None:
        self.dropped += 1
        drops = self.drops
        if name not in drops and len(drops) >= MAX_DROP_NAMES:
            name = "<other>"
        drops[name] = drops.get(name, 0) + 1
        if warn:
            self._warn(f"drop:{name}", f"tailboard: {_short(name)} not logged: {why} "
                                       "(counted in run.dropped; training goes on)")

    def _report(self, problems: list[Problem]) -> None:
        for name, why, lost in problems:
            if lost:
                self._drop(name, why)
            else:
                self._warn(f"fix:{name}", f"tailboard: {_short(name)}: {why}")

    def _warn(self, key: str, message: str) -> None:
        """One warning per key, at most MAX_WARNINGS per run, then one saying the rest are counted."""
        if key in self._warned:
            return
        if len(self._warned) >= MAX_WARNINGS:
            if len(self._warned) > MAX_WARNINGS:
                return
            key, message = "<more>", (f"tailboard: more than {MAX_WARNINGS} logging problems; further "
                                      "problems are counted (run.dropped, run.drops), not shown")
        self._warned.add(key)
        warnings.warn(message, TailboardWarning, stacklevel=_caller_level())

    # ---- the rest of the API -------------------------------------------------------------------

    def config(self, config: Mapping[str, Any]) -> None:
        """Record hyper-parameters (nested dicts allowed); later calls update earlier ones.

        Raises only when ``config`` is not a dict; a value that cannot be written is dropped by name.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, not {type(config).__name__}")
        if self._off:
            return
        try:
            problems: list[Problem] = []
            clean = clean_json(config, "config", problems)
            self._report(problems)
            if config and not clean:
                return  # every value was dropped
            t = _time()
            # Several records when one line would be too long: a later config updates the earlier.
            self._fit(lambda part: {KIND: K_CONFIG, "t": t, "config": part}, list(clean.items()),
                      "config/")
        except Exception as e:
            self._drop("config", f"config() failed: {type(e).__name__}: {e}")

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """Tell whoever watches the run: the sidecar lists it with its own alerts and sends it to its
        webhooks (docs/alerts.md). One text record ``tailboard/alert``; an alert of the same title
        while the last one is still shown is folded into it by the sidecar.

        Raises only for misuse: a ``title`` that is not a non-empty string, a ``text`` that is not a
        string, a ``level`` that is not one of ``ALERT_LEVELS``.
        """
        if type(title) is not str or not title.strip():
            raise TypeError(f"alert() takes a non-empty title string, not {_short(title)}")
        if type(text) is not str:
            raise TypeError(f"alert() takes a text string, not {type(text).__name__}")
        if level not in ALERT_LEVELS:
            raise ValueError(f"alert() level must be one of {', '.join(ALERT_LEVELS)}, not {_short(level)}")
        if self._off:
            self._ignored()
            return
        try:
            title = " ".join(title.split())[:200]
            line = f"{title}: {text}" if text else title
            self._emit({KIND: K_TEXT, "step": max(self._step, 0), "t": _time(), "name": ALERT_TEXT,
                        "text": line, "title": title, "level": level}, ALERT_TEXT)
        except Exception as e:  # never into the loop
            self._drop(ALERT_TEXT, f"alert() failed: {type(e).__name__}: {e}")

    def should_stop(self) -> bool:
        """True once a stop of this run was requested from the sidecar (``serve --allow-control``).

        Looks at the control file at most once a second (one ``stat``, and a read when it changed);
        between two looks it costs a clock read. The first time a request is seen, the run writes an
        acknowledgement (a ``tailboard/control`` text record) and calls ``on_stop``. Never raises.
        """
        if self.stop_request is not None:
            return True
        now = _monotonic()
        if now < self._next_stop_check:
            return False
        self._next_stop_check = now + STOP_CHECK_INTERVAL
        try:
            self._read_request()
            if self.stop_request is None:
                return False
            self._acknowledge(self.stop_request)
        except Exception as e:  # a bug here must not reach the loop
            self._warn("control", f"tailboard: reading the stop request failed: {type(e).__name__}: {e}")
        return self.stop_request is not None

    def _read_request(self) -> None:
        """Read the control file if it changed since the last look; a valid stop request whose
        nonce is not the stale one becomes ``stop_request``. Bad files are ignored (log content)."""
        try:
            st = os.stat(self._control)
        except OSError:
            self._control_seen = None
            return
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen == self._control_seen:
            return
        self._control_seen = seen
        try:
            with open(self._control, "rb") as f:
                raw = f.read(MAX_CONTROL_BYTES + 1)
            request = json.loads(raw) if len(raw) <= MAX_CONTROL_BYTES else None
        except (OSError, ValueError):
            return
        if not isinstance(request, dict) or request.get("action") != "stop":
            return
        nonce = request.get("nonce")
        if type(nonce) is not str or not 0 < len(nonce) <= 100 or nonce == self._stale_nonce:
            return
        self.stop_request = request

    def _acknowledge(self, request: dict[str, Any]) -> None:
        reason = request.get("reason")
        why = f" ({' '.join(reason.split())[:200]})" if isinstance(reason, str) and reason.strip() else ""
        if not self._off:
            self._emit({KIND: K_TEXT, "step": max(self._step, 0), "t": _time(), "name": CONTROL_TEXT,
                        "text": f"stop requested from tailboard{why}: acknowledged", "action": "stop",
                        "nonce": request["nonce"], "requested": request.get("requested")}, CONTROL_TEXT)
        callback = self._on_stop
        if callback is not None:
            try:
                callback()
            except Exception as e:  # the trainer's callback: warned, never into the loop
                self._warn("on_stop", f"tailboard: on_stop raised {type(e).__name__}: {e}")

    def finish(self, status: str = STATUS_FINISHED, reason: str | None = None) -> None:
        """Write the final record and close the file. Idempotent; never raises."""
        with self._lock:
            if self.finished:
                return
            self.finished = True
            was_off, self._off = self._off, True
        _live.discard(self)
        if was_off:
            return
        try:
            if self._pending:
                try:
                    self._resolve(block=True)
                except Exception as e:
                    self._drop("<pending>", f"device values lost at finish: {e}")
            record: dict[str, Any] = {KIND: K_END, "t": _time(), "status": str(status)[:100],
                                      "dropped": self.dropped}
            if reason:
                record["reason"] = " ".join(str(reason).split())[:500]
            if self.truncated:
                record["truncated"] = self.truncated
            self._emit(record, "<end>")
        except Exception as e:
            self._drop("<end>", f"finish() failed: {type(e).__name__}: {e}")
        self._direct = False
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


def _short(x: Any, limit: int = 120) -> str:
    """``repr(x)`` cut for a warning: a name may be a megabyte long."""
    try:
        text = repr(x)
    except Exception:
        text = f"<{type(x).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: Devices named in a header at most (a process sees a handful; a bound keeps the header small).
MAX_HEADER_DEVICES = 64
#: Visible-device variables recorded in the header, and their key there.
_DEVICE_VARIABLES = (("CUDA_VISIBLE_DEVICES", "cuda_visible_devices"),
                     ("NVIDIA_VISIBLE_DEVICES", "nvidia_visible_devices"))


def _attribution() -> dict[str, Any]:
    """What the sidecar needs to tell which GPUs this process uses (docs/gpu.md): its PID namespace
    (the PIDs NVML reports can be matched to ``pid`` only from the same namespace), the visible-device
    variables, and the UUIDs of the CUDA devices, when torch is imported and CUDA already initialised
    by the program. Never imports torch, never initialises CUDA, never raises."""
    out: dict[str, Any] = {}
    try:
        link = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]": the namespace's inode
        out["pid_ns"] = int(link[link.index("[") + 1 : link.index("]")])
    except (OSError, ValueError, AttributeError):  # not Linux, no /proc
        pass
    try:
        for variable, key in _DEVICE_VARIABLES:
            value = os.environ.get(variable)
            if value is not None:
                out[key] = value[:1000]
        out.update(_cuda_devices())
    except Exception:  # an odd environment or torch build: the header goes without these fields
        pass
    return out


def _cuda_devices() -> dict[str, Any]:
    """``cuda_uuids`` (one per visible device, bare: no ``GPU-`` prefix, as CUDA gives them) and
    ``cuda_device`` (the current device's index in that list), or nothing."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is None or not cuda.is_initialized():  # asking more would initialise CUDA
        return {}
    uuids: list[str | None] = []
    for i in range(min(cuda.device_count(), MAX_HEADER_DEVICES)):
        uuid = getattr(cuda.get_device_properties(i), "uuid", None)  # absent in some builds
        uuids.append(None if uuid is None else str(uuid)[:100])
    if not any(uuids):
        return {}
    return {"cuda_uuids": uuids, "cuda_device": cuda.current_device()}


_HERE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside tailboard (the call in
    the training loop), however deep inside the writer it was raised."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and frame.f_code.co_filename.startswith(_HERE):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


# ---- process-wide hooks -------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    # A DataLoader worker inherits the parent's runs: it must not write into the parent's file, and
    # its exit must not write the parent's final record. Marking its copies of the runs off does
    # that, and the inherited descriptors are closed so the child holds nothing of the parent's.
    for run in list(_live):
        run._forked = True
        run._off = True
        run._direct = False
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
