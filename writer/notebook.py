"""Live charts of a log folder inside a notebook: ``tailboard.notebook.show("runs")``.

``show(logdir)`` starts a sidecar for ``logdir`` in a child process (bound to 127.0.0.1, with a fresh
token), waits until its ``/healthz`` answers and returns an IPython ``IFrame`` of the page, the token in
the URL's fragment (never sent to the server). Calling it again for the same folder reuses that
sidecar. Without IPython it prints the URL and returns it.

The sidecar stops with the interpreter (the kernel): at exit (``atexit``), and also when the
interpreter dies without running exit hooks (killed, a kernel restart), because the child watches a
pipe from this process and stops when it reads end-of-file. The child is in its own session, so a
Ctrl-C meant for the training does not stop it.

Standard library only: IPython is imported only when ``show`` is called, the sidecar only in the
child (it needs the ``sidecar`` extra).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Any

__all__ = ["START_TIMEOUT", "Sidecar", "show", "start"]

#: Seconds ``start`` waits for a new sidecar to answer ``/healthz``.
START_TIMEOUT = 60.0
#: Seconds a stopping sidecar gets before it is killed.
STOP_TIMEOUT = 10.0
HOST = "127.0.0.1"

logger = logging.getLogger(__name__)

_PORT = re.compile(r"://127\.0\.0\.1:(\d+)")
_OWN_ERROR = re.compile(r"tailboard: (?!warning)")  # the CLI's one-line errors
_OTHER_ERROR = re.compile(r"ERROR\b|\w*(Error|Exception): ")  # a logged error, a raised one


class Sidecar:
    """A sidecar child process serving one log folder on 127.0.0.1 (made by :func:`start`)."""

    def __init__(self, logdir: str, process: subprocess.Popen[bytes], token: str, scratch: str) -> None:
        self.logdir = logdir
        self.process = process
        self.token = token
        self.port = 0  # known once the child says where it listens
        self.owner = os.getpid()
        self._scratch = scratch  # holds the child's output: its URL carries the token

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The page, the token in the fragment."""
        return f"{self.base_url}/#token={self.token}"

    @property
    def output(self) -> str:
        """What the child printed (its errors, when it could not start)."""
        try:
            with open(os.path.join(self._scratch, "output"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether the child is running and answers ``/healthz``."""
        if not self.port or not self.alive():
            return False
        try:
            with urllib.request.urlopen(self.base_url + "/healthz", timeout=timeout) as answer:
                return bool(answer.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the child (end-of-file on its pipe, then SIGTERM, then SIGKILL). Idempotent."""
        process = self.process
        if process.poll() is None:
            _close(process)
            try:
                process.wait(timeout=timeout / 2)
            except subprocess.TimeoutExpired:
                process.terminate()
                try:
                    process.wait(timeout=timeout / 2)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        _close(process)
        shutil.rmtree(self._scratch, ignore_errors=True)
        if _running.get(self.logdir) is self:
            del _running[self.logdir]

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        while True:
            if not self.alive():
                raise RuntimeError(f"tailboard: the sidecar for {self.logdir} did not start: "
                                   f"{_reason(self.output) or f'exit code {self.process.returncode}'}")
            if not self.port:
                found = _PORT.search(self.output)
                self.port = int(found.group(1)) if found else 0
            if self.healthy(timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"tailboard: the sidecar for {self.logdir} did not answer /healthz "
                                   f"within {timeout:g} s")
            time.sleep(0.05)

    def __repr__(self) -> str:
        state = "running" if self.alive() else "stopped"
        return f"Sidecar({self.logdir!r}, {self.base_url}, {state})"


_running: dict[str, Sidecar] = {}  # by the real path of the log folder
_lock = threading.Lock()


def start(logdir: str | os.PathLike[str], *, port: int | None = None,
          timeout: float = START_TIMEOUT) -> Sidecar:
    """The sidecar serving ``logdir``: the one already running for it (and on ``port``, when given),
    or a new one, returned once ``/healthz`` answers. ``port=None`` takes a free port."""
    if not isinstance(logdir, (str, os.PathLike)):
        raise TypeError(f"logdir must be a path, not {type(logdir).__name__}")
    path = os.path.realpath(os.fspath(logdir))
    if not os.path.isdir(path):
        what = "a file, not a folder" if os.path.exists(path) else "no such folder"
        raise NotADirectoryError(f"tailboard: {logdir}: {what}; give the folder that holds the runs")
    with _lock:
        running = _running.get(path)
        if running is not None:
            if running.healthy() and port in (None, running.port):
                return running
            running.stop()
        sidecar = _spawn(path, port)
        _running[path] = sidecar
        try:
            sidecar._wait_ready(time.monotonic() + timeout, timeout)
        except BaseException:
            sidecar.stop()
            raise
        return sidecar


def show(logdir: str | os.PathLike[str], port: int | None = None, height: int = 600) -> Any:
    """Start (or reuse) the sidecar of ``logdir`` and return an ``IFrame`` of its page, ``height``
    pixels high (a notebook shows it as the cell's result); without IPython, print its URL and
    return it."""
    sidecar = start(logdir, port=port)
    try:
        from IPython.display import IFrame
    except ImportError:
        print(f"tailboard: {sidecar.url}", flush=True)
        return sidecar.url
    return IFrame(sidecar.url, width="100%", height=height)


def _reason(output: str) -> str:
    """The line of a sidecar's output that says why it stopped: its own message, else the first
    error logged or raised (not a whole traceback, nor a warning printed before it)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for wanted in (_OWN_ERROR, _OTHER_ERROR):
        found = [line for line in lines if wanted.match(line)]
        if found:
            return found[0]
    return lines[-1] if lines else ""


#: Who may show the sidecar's page in a frame: a notebook served on this machine (Jupyter, JupyterLab
#: on any port) and VS Code's notebook view.
FRAMED_BY = ("http://localhost:*", "http://127.0.0.1:*", "https://localhost:*", "https://127.0.0.1:*",
             "vscode-webview:")


def _spawn(path: str, port: int | None) -> Sidecar:
    token = secrets.token_urlsafe(24)
    scratch = tempfile.mkdtemp(prefix="tailboard-notebook-")  # 0700: the output holds the token
    command = [sys.executable, "-m", "tailboard.notebook", "serve", path, "--host", HOST,
               "--port", str(port or 0)]
    for source in FRAMED_BY:  # the page refuses any other frame
        command += ["--frame-ancestors", source]
    with open(os.path.join(scratch, "output"), "wb") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # the pipe the child watches: end-of-file when this process is gone
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TAILBOARD_TOKEN": token},  # not on the command line, where ps shows it
            start_new_session=True,
        )
    return Sidecar(path, process, token, scratch)


def _close(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        try:
            process.stdin.close()
        except OSError:
            pass


def _stop_all() -> None:
    for sidecar in list(_running.values()):
        if sidecar.owner == os.getpid():  # a forked child that exits must not stop its parent's
            try:
                sidecar.stop()
            except (OSError, subprocess.SubprocessError) as e:  # at exit: say it, end anyway
                logger.warning("tailboard: could not stop the sidecar of %s: %s", sidecar.logdir, e)


def _after_fork_in_child() -> None:
    # A forked child (a DataLoader worker) inherits the write end of each pipe; holding it would keep
    # the sidecar alive after this interpreter dies, until the child ends too.
    for sidecar in list(_running.values()):
        _close(sidecar.process)
    _running.clear()


atexit.register(_stop_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# ---- the child: `python -m tailboard.notebook serve LOGDIR ...` --------------------------------------


def _watch_parent() -> None:
    """Stop this process when its stdin, a pipe from the interpreter that started it, ends."""
    try:
        # os.read, not sys.stdin: a thread blocked inside a buffered reader's lock makes the
        # interpreter abort at exit
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)  # the sidecar's own graceful stop
    time.sleep(STOP_TIMEOUT)
    os._exit(1)  # it did not stop in time


def _child_main(argv: list[str]) -> int:
    threading.Thread(target=_watch_parent, name="tailboard-parent-watch", daemon=True).start()
    from tailboard.sidecar.cli import main

    return int(main(argv))


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
