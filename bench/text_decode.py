"""The text log reader alone, at a commit and in the working tree, on backlogs of common shapes.

    .venv/bin/python bench/text_decode.py [--commit HEAD] [--points 1000000] [--repeats 5] [--shapes logging,...]

Each shape is a log of about --points points, read by ``TextReader.decode`` in 1 MiB chunks cut where
``complete`` says, as the follower hands them over (no tail, no store). Each reading runs in a fresh
process, the two readers taking turns; the medians of wall and CPU seconds are printed with points/s
and the ratio. The reader at --commit comes from a ``git archive`` of it in a temp folder.

- logging: bench/ingest.py's text log, ``2024-01-01 12:03:44,123 INFO epoch 3 | step 100 | loss=...``
  (5 metrics a line);
- tutorial: the PyTorch tutorials' ``Epoch [3/10], Step [100/600], Loss: 0.4100`` (1 metric);
- keras: ``Epoch 3/10`` then ``600/600 - 3s - 5ms/step - loss: 0.4100 - accuracy: 0.8800 - val_loss:
  ... - val_accuracy: ...`` (Keras' verbose=2, 4 metrics);
- transformers: the dicts its Trainer prints, ``{'loss': '0.4123', 'grad_norm': '1.234',
  'learning_rate': '4.8e-05', 'epoch': '0.01'}`` (4 significant digits, 3 metrics and the epoch).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHAPES = ("logging", "tutorial", "keras", "transformers")
CHUNK = 1 << 20


def write(path: Path, shape: str, points: int) -> int:
    """Writes a log of ``shape`` with about ``points`` points; returns how many it holds."""
    sys.path.insert(0, str(REPO / "bench"))
    from ingest import write_text

    if shape == "logging":
        written, n = write_text(path.parent, points // 5)
        written.rename(path)
        return n
    wave = [math.sin(i / 100) for i in range(1000)]
    with open(path, "w") as f:
        if shape == "tutorial":
            for i in range(points):
                f.write(f"Epoch [{i // 600 + 1}/{points // 600 + 1}], Step [{i % 600 + 1}/600], Loss: {1 + wave[i % 1000]:.4f}\n")
            return points
        if shape == "keras":
            epochs = points // 4
            for e in range(epochs):
                v = wave[e % 1000]
                f.write(f"Epoch {e + 1}/{epochs}\n600/600 - {3 + e % 2}s - {5 + e % 3}ms/step - loss: {1 + v:.4f} - "
                        f"accuracy: {0.5 + v / 3:.4f} - val_loss: {1.1 + v:.4f} - val_accuracy: {0.45 + v / 3:.4f}\n")
            return epochs * 4
        if shape == "transformers":
            lines = points // 3
            for i in range(lines):
                v = wave[i % 1000]
                logs = {"loss": 2 + v, "grad_norm": 1.3 + v, "learning_rate": 5e-5 * (1 - i / lines), "epoch": i / 500}
                f.write(str({k: f"{x:.4g}" for k, x in logs.items()}) + "\n")
            return lines * 3
    raise ValueError(f"no shape {shape!r}")


def child(src: str, path: str) -> None:
    """One reading of ``path``, by the reader found first on ``src`` (the working tree when empty)."""
    if src:
        sys.path.insert(0, src)
    from tailboard.sidecar.readers.textlog import TextReader

    data = Path(path).read_bytes()
    reader = TextReader()
    wall, cpu = time.perf_counter(), time.process_time()
    state, at, points = reader.new_state(), 0, 0
    while at < len(data):
        buf = data[at : at + CHUNK]
        n = reader.complete(buf)
        if not n:
            break
        parsed, state = reader.decode(buf[:n], state, now=0.0)
        points += sum(len(cols[0]) for seg in parsed.segments for cols in seg.values())
        at += n
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({"points": points, "wall": wall, "cpu": cpu}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commit", default="HEAD")
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sys.path.insert(0, str(REPO / "bench"))
        from ingest import extract_commit

        src, what = extract_commit(args.commit, Path(tmp) / "old")
        print(f"old: {what}\nnew: the working tree\nreader alone, 1 MiB chunks, medians of {args.repeats}\n")
        print(f"{'shape':<13} {'points':>9} {'MiB':>6}  {'old M/s':>8} {'cpu s':>6}  {'new M/s':>8} {'cpu s':>6}  {'ratio':>6}")
        for shape in args.shapes.split(","):
            path = Path(tmp) / f"{shape}.log"
            points = write(path, shape, args.points)
            runs: dict[str, list[dict[str, float]]] = {"old": [], "new": []}
            for _ in range(args.repeats):
                for side, where in (("old", str(src)), ("new", "")):
                    out = subprocess.run([sys.executable, __file__, "--child", where, str(path)], capture_output=True,
                                         text=True, check=True, env={**os.environ, "PYTHONPATH": ""}).stdout
                    runs[side].append(json.loads(out))
            got = {side: runs[side][0]["points"] for side in runs}
            if got["old"] != got["new"] or got["new"] != points:
                print(f"{shape}: points differ: {got} of {points}")
            med = {side: (statistics.median(r["wall"] for r in rs), statistics.median(r["cpu"] for r in rs))
                   for side, rs in runs.items()}
            rate = {side: points / med[side][0] / 1e6 for side in med}
            print(f"{shape:<13} {points:>9,} {path.stat().st_size / CHUNK:>6.1f}  {rate['old']:>8.2f} {med['old'][1]:>6.2f}"
                  f"  {rate['new']:>8.2f} {med['new'][1]:>6.2f}  {rate['new'] / rate['old']:>5.1f}x")


if __name__ == "__main__":
    main()
