"""`make demo`: train three learning rates side by side and watch them live in tailboard.

Checks the port first: when it is taken, says by whom and how to choose another, in one line, and
starts nothing (nor wipes the log folder, which may be the one the other demo is writing). Then
starts the sidecar on the log folder and waits until it answers with this demo's token (so that
another server that took the port meanwhile is never mistaken for it), starts the trainings (real
training of a small network on scikit-learn's digits, paced so that the charts have time to grow),
and prints the URL as its last line. Keeps serving after the trainings finish, until Ctrl-C.

The token reaches the sidecar through $TAILBOARD_TOKEN, never its command line (visible in `ps`).
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tailboard.sidecar.cli import port_problem

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
LEARNING_RATES = ("0.3", "0.1", "0.03")


def port_refusal(port: int) -> str | None:
    """The CLI's one line on why ``port`` cannot be listened on, with the fix said the way this demo
    was started: `make demo PORT=N` under make (which sets MAKELEVEL for its commands), else --port N."""
    problem = port_problem(HOST, port)
    if problem is None or "MAKELEVEL" not in os.environ:
        return problem
    return re.sub(r"--port(?: (\d+))?", lambda m: f"make demo PORT={m.group(1) or 'N'}", problem)


def wait_ready(url: str, token: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Until the sidecar answers an authenticated request: only ours knows this token."""
    request = urllib.request.Request(f"{url}/api/runs", headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the sidecar exited with code {proc.returncode} (its error is above)")
        try:
            with urllib.request.urlopen(request, timeout=1) as res:
                if res.status == 200:
                    return
        except OSError:  # not listening yet, or another server on the port (then ours exits)
            time.sleep(0.2)
    raise SystemExit(f"demo: the sidecar did not answer on {url} within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logdir", default="demo-logs")
    ap.add_argument("--port", type=int, default=6007)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--step-delay", type=float, default=0.05, help="seconds to sleep per step")
    ap.add_argument("--keep", action="store_true", help="keep earlier demo logs")
    args = ap.parse_args(argv)

    refusal = port_refusal(args.port)
    if refusal:
        print(f"demo: {refusal}", file=sys.stderr)
        return 1

    logdir = Path(args.logdir)
    if logdir.exists() and not args.keep:
        shutil.rmtree(logdir)
    logdir.mkdir(parents=True, exist_ok=True)

    token = secrets.token_urlsafe(18)
    base = f"http://{HOST}:{args.port}"
    page = f"{base}/#token={token}"
    print(f"demo: starting the sidecar on {logdir}/ ...", flush=True)
    # Its stdout (its own copy of the URL) is not shown: this demo prints the URL last. Errors and
    # warnings go to stderr, which is.
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "tailboard.sidecar", "serve", str(logdir), "--host", HOST,
         "--port", str(args.port)],
        env={**os.environ, "TAILBOARD_TOKEN": token}, stdout=subprocess.DEVNULL,
    )
    trainers: list[subprocess.Popen[bytes]] = []
    try:
        wait_ready(base, token, sidecar)
        for lr in LEARNING_RATES:
            trainers.append(subprocess.Popen(
                [sys.executable, str(HERE / "train_digits.py"), "--logdir", str(logdir),
                 "--run-name", f"lr_{lr}/seed0", "--lr", lr, "--epochs", str(args.epochs),
                 "--step-delay", str(args.step_delay)],
            ))
        print(f"demo: training learning rates {', '.join(LEARNING_RATES)} side by side; Ctrl-C stops the "
              "demo. Open:", flush=True)
        print(f"  {page}", flush=True)
        for t in trainers:
            t.wait()
        print("demo: training finished; still serving (Ctrl-C to stop) at", flush=True)
        print(f"  {page}", flush=True)
        sidecar.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for p in [*trainers, sidecar]:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 10
        for p in [*trainers, sidecar]:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
