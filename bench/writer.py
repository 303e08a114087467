"""Writer cost per record, side by side with TensorBoard's SummaryWriter and plain JSON writes.

    .venv/bin/python bench/writer.py [--calls 50000] [--repeats 5]

Prints the median microseconds per call of each method and the ratios to tailboard, then the step
time of the demo model trained with and without logging every step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import tailboard

HERE = Path(__file__).resolve().parent


def per_call(fn: Callable[[int], None], calls: int, repeats: int) -> float:
    """Median over repeats of microseconds per call."""
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for i in range(calls):
            fn(i)
        out.append((time.perf_counter() - t0) / calls * 1e6)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-model", action="store_true")
    args = ap.parse_args()

    from torch.utils.tensorboard import SummaryWriter as TBWriter

    tmp = Path(tempfile.mkdtemp(prefix="tailboard-bench-"))
    run = tailboard.init(tmp / "ours")
    tb = TBWriter(str(tmp / "tb"))
    text = open(tmp / "json.jsonl", "a", buffering=1)
    fd = os.open(tmp / "orjson.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    ten = {f"train/m{j}": 0.1 * j for j in range(10)}

    def tb_ten(i: int) -> None:
        for k, v in ten.items():
            tb.add_scalar(k, v, i)

    rows = [
        ("tailboard run.log, 1 scalar", per_call(lambda i: run.log({"train/loss": 0.5}, step=i), args.calls, args.repeats)),
        ("TensorBoard add_scalar", per_call(lambda i: tb.add_scalar("train/loss", 0.5, i), args.calls, args.repeats)),
        ("json.dumps + line-buffered write", per_call(
            lambda i: text.write(json.dumps({"step": i, "v": {"train/loss": 0.5}}) + "\n"), args.calls, args.repeats)),
        ("orjson.dumps + os.write (floor)", per_call(
            lambda i: os.write(fd, orjson.dumps({"step": i, "v": {"train/loss": 0.5}}, option=orjson.OPT_APPEND_NEWLINE)),
            args.calls, args.repeats)),
        ("tailboard run.log, 10-metric dict", per_call(lambda i: run.log(ten, step=i), args.calls, args.repeats)),
        ("TensorBoard 10 x add_scalar", per_call(tb_ten, args.calls // 10, args.repeats)),
    ]
    run.finish()
    tb.close()
    text.close()
    os.close(fd)
    one, ten_ours = rows[0][1], rows[4][1]
    print(f"{'method':<38} {'us/call':>9} {'vs tailboard':>13}")
    for name, us in rows:
        base = ten_ours if "10" in name else one
        print(f"{name:<38} {us:>9.2f} {us / base:>12.1f}x")
    print(f"\nadd_scalar / run.log (1 scalar): {rows[1][1] / one:.1f}x cheaper (goal >= 15x)")
    print(f"10 x add_scalar / run.log (10-metric dict): {rows[5][1] / ten_ours:.1f}x cheaper (goal >= 30x)")

    if not args.skip_model:
        script = HERE.parent / "examples" / "train_digits.py"
        times: dict[str, list[float]] = {"logging every step": [], "no logging": []}
        for rep in range(3):
            for label, extra in (("logging every step", []), ("no logging", ["--no-log"])):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, str(script), "--logdir", str(tmp / f"m{rep}"), "--epochs", "8",
                                "--hist-every", "1000000", *extra], check=True)
                times[label].append(time.perf_counter() - t0)
        print("\ndemo model, 8 epochs (medians of 3, whole process):")
        for label, ts in times.items():
            print(f"  {label:<20} {statistics.median(ts):.2f} s")
        a, b = (statistics.median(times[k]) for k in times)
        print(f"  logging overhead: {100 * (a - b) / b:+.1f}%")


if __name__ == "__main__":
    main()
