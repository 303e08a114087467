"""`make demo`: train three learning rates side by side and watch them live in tailboard.

Starts the sidecar on the log folder, then the trainings (real training of a small network on
scikit-learn's digits, paced so that the charts have time to grow), prints the URL, and keeps
serving after the trainings finish until Ctrl-C.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEARNING_RATES = ("0.3", "0.1", "0.03")


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the sidecar exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as res:
                if res.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the sidecar did not become healthy in time")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--logdir", default="demo-logs")
    ap.add_argument("--port", type=int, default=6007)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--step-delay", type=float, default=0.05, help="seconds to sleep per step")
    ap.add_argument("--keep", action="store_true", help="keep earlier demo logs")
    args = ap.parse_args(argv)

    logdir = Path(args.logdir)
    if logdir.exists() and not args.keep:
        shutil.rmtree(logdir)
    logdir.mkdir(parents=True, exist_ok=True)

    token = secrets.token_urlsafe(18)
    base = f"http://127.0.0.1:{args.port}"
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "tailboard.sidecar", "serve", str(logdir), "--port", str(args.port),
         "--token", token],
    )
    trainers: list[subprocess.Popen[bytes]] = []
    try:
        wait_healthy(base, sidecar)
        for lr in LEARNING_RATES:
            trainers.append(subprocess.Popen(
                [sys.executable, str(HERE / "train_digits.py"), "--logdir", str(logdir),
                 "--run-name", f"lr_{lr}/seed0", "--lr", lr, "--epochs", str(args.epochs),
                 "--step-delay", str(args.step_delay)],
            ))
        print(f"\n  tailboard is serving {logdir}/ at\n\n    {base}/#token={token}\n", flush=True)
        print("  training three learning rates side by side; Ctrl-C stops the demo.\n", flush=True)
        for t in trainers:
            t.wait()
        print("  training finished; still serving (Ctrl-C to stop).", flush=True)
        sidecar.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for p in [*trainers, sidecar]:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in [*trainers, sidecar]:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
