"""Parse chunks of a backlog in worker processes.

JSON parsing holds the GIL, so a large catch-up parses in separate processes, one per core. They are
plain ``python -m tailboard.sidecar.parallel`` children talking length-prefixed pickles over their
stdin/stdout: no ``multiprocessing`` start method, so nothing depends on how the program that embeds
the sidecar guards its main module, and no process that runs threads is ever forked.

Chunks travel through a memory file (``memfd``) shared with each child, one slot per chunk it may
have queued (``DEPTH``): copying a megabyte into it costs a fraction of pushing it through a pipe that
the busy child must drain. Where
memory files do not exist, or a chunk is larger than the slot, the bytes go in the pickle instead.

Only trusted data crosses these pipes: chunks of log bytes with the reader and its state (the
store's own objects), and the results of our own child: the decoded points and the state after them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import pickle
import selectors
import struct
import subprocess
import sys
import time
from collections import deque
from typing import Any, BinaryIO

from .ingest import Parsed

try:
    import fcntl
except ImportError:  # not POSIX: pipes keep their default size
    fcntl = None  # type: ignore[assignment]

#: A decoded chunk and the reader's state after it (and with ``head``, the bytes it took).
Decoded = tuple[Parsed, Any] | tuple[Parsed, Any, int]

__all__ = ["ParsePool"]

_LEN = struct.Struct("<Q")
#: Chunks queued per worker: while it parses one, the next is already waiting for it.
DEPTH = 2


def _send(out: BinaryIO, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_LEN.pack(len(blob)) + blob)
    while view:  # an unbuffered pipe may take part of it
        view = view[out.write(view) or 0 :]
    out.flush()


def _read_exactly(inp: BinaryIO, n: int) -> bytes:
    parts = []
    while n:
        got = inp.read(n)
        if not got:
            raise EOFError("parse worker closed its pipe")
        parts.append(got)
        n -= len(got)
    return b"".join(parts)


def _recv(inp: BinaryIO) -> Any:
    # Unbuffered on the parent's side: bytes of a second answer must never sit in a buffer
    # while the parent waits on the descriptor for it.
    (n,) = _LEN.unpack(_read_exactly(inp, _LEN.size))
    return pickle.loads(_read_exactly(inp, n))


#: Bytes a result pipe holds: a chunk's decoded arrays (about half a megabyte a 1 MiB chunk) fit, so
#: a worker hands its result over and goes on to the next chunk without waiting for the parent.
PIPE_BYTES = 1 << 20


def _widen(fd: int) -> None:
    """Make the pipe at ``fd`` hold PIPE_BYTES where the system allows it (the default 64 KiB makes
    the worker wait, a result at a time, until the parent's thread gets round to reading)."""
    setpipe = getattr(fcntl, "F_SETPIPE_SZ", None) if fcntl is not None else None
    if setpipe is None:
        return
    try:
        fcntl.fcntl(fd, setpipe, PIPE_BYTES)
    except OSError:
        # over the user's pipe allowance: as large as it may be
        with contextlib.suppress(OSError), open("/proc/sys/fs/pipe-max-size") as f:
            fcntl.fcntl(fd, setpipe, min(PIPE_BYTES, int(f.read())))


class _Worker:
    def __init__(self, slot: int) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.map: mmap.mmap | None = None
        fds: tuple[int, ...] = ()
        argv = [sys.executable, "-m", "tailboard.sidecar.parallel"]
        fd = -1
        if slot > 0 and hasattr(os, "memfd_create"):
            try:
                fd = os.memfd_create("tailboard-chunks")
                os.ftruncate(fd, DEPTH * slot)
                self.map = mmap.mmap(fd, DEPTH * slot)
                fds = (fd,)
                argv += [str(fd), str(DEPTH * slot)]
            except OSError:
                self.map = None
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, pass_fds=fds,
                                         bufsize=0)
        finally:
            if fd >= 0:
                os.close(fd)  # the map and the child keep it
        assert self.proc.stdout is not None
        _widen(self.proc.stdout.fileno())
        self.slot = slot
        self.busy: deque[Any] = deque()  # the caller's tags of the chunks sent, in order
        self.sent = 0

    def submit(self, tag: Any, data: bytes, state: tuple[Any, Any], head: bool = False) -> None:
        assert self.proc.stdin is not None
        if self.map is not None and len(data) <= self.slot:
            # slots are used in turn; at most DEPTH chunks are in flight, so a slot is free
            at = (self.sent % DEPTH) * self.slot
            self.map[at : at + len(data)] = data
            _send(self.proc.stdin, ((at, len(data)), state, head))  # type: ignore[arg-type]
        else:
            _send(self.proc.stdin, (data, state, head))  # type: ignore[arg-type]
        self.sent += 1
        self.busy.append(tag)

    def result(self) -> Decoded:
        assert self.proc.stdout is not None
        ok, value = _recv(self.proc.stdout)  # type: ignore[arg-type]
        if not ok:
            raise RuntimeError(f"parse worker failed: {value}")
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.map is not None:
            self.map.close()


class ParsePool:
    """``n`` parse workers; ``submit`` a chunk to an idle one, ``collect`` the next finished one.

    The caller keeps a stream's chunks in order (one in flight per stream). A worker that dies makes
    ``collect`` raise; the caller parses that chunk itself.
    """

    def __init__(self, n: int, *, slot: int = 4 << 20) -> None:
        self.slot = slot
        self.workers: list[_Worker] = []
        try:
            for _ in range(n):
                self.workers.append(_Worker(slot))
        except BaseException:
            self.close()  # none left behind
            raise

    def idle(self) -> bool:
        return any(len(w.busy) < DEPTH for w in self.workers)

    def busy(self) -> int:
        return sum(len(w.busy) for w in self.workers)

    def submit(self, tag: Any, data: bytes, state: tuple[Any, Any], *, head: bool = False) -> None:
        """Parse ``data`` with ``state`` (the reader and its state): ``decode``, or with ``head`` the
        reader's ``decode_head`` (``data`` may end inside a record; the result says what it took)."""
        w = min(self.workers, key=lambda w: len(w.busy))
        if len(w.busy) >= DEPTH:
            raise RuntimeError("no idle parse worker")
        w.submit(tag, data, state, head)

    def collect(self) -> list[tuple[Any, Decoded | BaseException]]:
        """Wait for one busy worker to finish its oldest chunk: ``[(tag, parsed) or (tag, error)]``.
        A worker that dies answers for every chunk it held, with the error, and is replaced."""
        busy = [w for w in self.workers if w.busy]
        if not busy:
            raise RuntimeError("nothing in flight")
        with selectors.DefaultSelector() as sel:
            for w in busy:
                assert w.proc.stdout is not None
                sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            key, _ = sel.select()[0]
        w = key.data
        tag = w.busy.popleft()
        try:
            return [(tag, w.result())]
        except Exception as exc:  # a dead or failing worker: replace it
            lost: list[tuple[Any, Decoded | BaseException]] = [(tag, exc)] + [(t, exc) for t in w.busy]
            w.busy.clear()
            w.close()
            self.workers[self.workers.index(w)] = _Worker(self.slot)
            return lost

    def close(self) -> None:
        for w in self.workers:  # every worker sees its end of input first, then all are reaped
            if w.proc.stdin is not None:
                try:
                    w.proc.stdin.close()
                except OSError:
                    pass
        for w in self.workers:
            w.close()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve(argv: list[str]) -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    shared = mmap.mmap(int(argv[0]), int(argv[1])) if len(argv) == 2 else None
    while True:
        try:
            data, state, head = _recv(inp)
        except EOFError:
            return
        try:
            if isinstance(data, tuple):
                assert shared is not None
                data = shared[data[0] : data[0] + data[1]]
            reader, st = state
            decode = reader.decode_head if head else reader.decode
            result: tuple[bool, Any] = (True, decode(data, st, now=time.time()))
        except Exception as exc:  # reported to the parent, which parses the chunk itself
            result = (False, repr(exc))
        _send(out, result)


if __name__ == "__main__":
    _serve(sys.argv[1:])
