"""Parse chunks of a backlog in worker processes.

JSON parsing holds the GIL, so a large catch-up parses in separate processes, one per core. They are
plain ``python -m tailboard.sidecar.parallel`` children talking length-prefixed pickles over their
stdin/stdout: no ``multiprocessing`` start method, so nothing depends on how the program that embeds
the sidecar guards its main module, and no process that runs threads is ever forked.

Only trusted data crosses these pipes: chunks of log bytes and the parse results of our own child.
"""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from typing import Any, BinaryIO

from .ingest import Parsed, parse_chunk

__all__ = ["ParsePool"]

_LEN = struct.Struct("<Q")


def _send(out: BinaryIO, obj: Any) -> None:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(_LEN.pack(len(blob)))
    out.write(blob)
    out.flush()


def _recv(inp: BinaryIO) -> Any:
    head = inp.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError("parse worker closed its pipe")
    (n,) = _LEN.unpack(head)
    blob = inp.read(n)
    if len(blob) < n:
        raise EOFError("parse worker closed its pipe")
    return pickle.loads(blob)


class _Worker:
    def __init__(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tailboard.sidecar.parallel"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        self.busy: Any = None  # the caller's tag of the chunk being parsed

    def submit(self, tag: Any, data: bytes, state: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        _send(self.proc.stdin, (data, state))  # type: ignore[arg-type]
        self.busy = tag

    def result(self) -> Parsed:
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


class ParsePool:
    """``n`` parse workers; ``submit`` a chunk to an idle one, ``collect`` the next finished one.

    The caller keeps a stream's chunks in order (one in flight per stream). A worker that dies makes
    ``collect`` raise; the caller parses that chunk itself.
    """

    def __init__(self, n: int) -> None:
        self.workers = [_Worker() for _ in range(n)]

    def idle(self) -> bool:
        return any(w.busy is None for w in self.workers)

    def busy(self) -> int:
        return sum(w.busy is not None for w in self.workers)

    def submit(self, tag: Any, data: bytes, state: dict[str, Any]) -> None:
        for w in self.workers:
            if w.busy is None:
                w.submit(tag, data, state)
                return
        raise RuntimeError("no idle parse worker")

    def collect(self) -> tuple[Any, Parsed | BaseException]:
        """Wait for one busy worker to finish: ``(tag, parsed)`` or ``(tag, error)``."""
        import selectors

        busy = [w for w in self.workers if w.busy is not None]
        if not busy:
            raise RuntimeError("nothing in flight")
        with selectors.DefaultSelector() as sel:
            for w in busy:
                assert w.proc.stdout is not None
                sel.register(w.proc.stdout, selectors.EVENT_READ, w)
            key, _ = sel.select()[0]
        w = key.data
        tag, w.busy = w.busy, None
        try:
            return tag, w.result()
        except Exception as exc:  # a dead or failing worker: replace it
            w.close()
            self.workers[self.workers.index(w)] = _Worker()
            return tag, exc

    def close(self) -> None:
        for w in self.workers:
            w.close()

    def __enter__(self) -> ParsePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _serve() -> None:
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            data, state = _recv(inp)
        except EOFError:
            return
        try:
            result: tuple[bool, Any] = (True, parse_chunk(data, **state))
        except Exception as exc:  # reported to the parent, which parses the chunk itself
            result = (False, repr(exc))
        _send(out, result)


if __name__ == "__main__":
    _serve()
