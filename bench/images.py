"""Writer cost per image, side by side with TensorBoard's SummaryWriter.add_image.

    .venv/bin/python bench/images.py [--repeats 5]

For 64x64 and 512x512 RGB images (a smooth picture with a little noise, as samples and feature maps
are; and plain noise, the worst case for compression), as a float CHW tensor in 0..1 and as a uint8
HWC array, prints the median microseconds per call over the repeats and the bytes written per image:
tailboard's ``run.log({"img": Image(x)})`` (a PNG file and a record, on disk when it returns) and
torch's ``SummaryWriter.add_image`` (the PNG encoded by PIL in the call, the event queued for a
writer thread; its ``flush()`` at the end is not counted). Then the PNG encoder alone, with "Up"
filtering (the writer's) and without, at zlib levels 1 and 6, to show why the writer's settings.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import tailboard
import torch
from tailboard import png

from writer import per_call  # bench/writer.py's timing (this folder is first on sys.path)

CALLS = {64: 400, 512: 20}


def picture(n: int, noise: float, seed: int = 0) -> np.ndarray:
    """An n x n RGB picture, uint8 HWC: smooth colour fields, plus Gaussian noise of ``noise`` levels
    (255 = uniform noise)."""
    rng = np.random.default_rng(seed)
    if noise >= 255:
        return rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
    y, x = np.mgrid[0:n, 0:n] / n
    base = np.stack([np.sin(6 * x) * 0.5 + 0.5, y, x * y], -1) * 255
    return (base + rng.normal(0, noise, base.shape)).clip(0, 255).astype(np.uint8)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def unfiltered(w: int, h: int, c: int, pixels: bytes, level: int) -> bytes:
    stride = w * c
    return zlib.compress(b"".join(b"\0" + pixels[i : i + stride] for i in range(0, len(pixels), stride)), level)


def encode_at(level: int, n: int, pixels: bytes) -> bytes:
    saved, png.LEVEL = png.LEVEL, level
    try:
        return png.encode(n, n, 3, pixels)
    finally:
        png.LEVEL = saved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    from torch.utils.tensorboard import SummaryWriter as TBWriter

    tmp = Path(tempfile.mkdtemp(prefix="tailboard-bench-images-"))
    print("| image | input | tailboard us/call | bytes/image | TensorBoard add_image us/call | bytes/image | TB / tailboard |")
    print("|---|---|---|---|---|---|---|")
    for n in (64, 512):
        for content, noise in (("smooth + noise", 3.0), ("noise", 255.0)):
            hwc = picture(n, noise)
            chw = torch.from_numpy(hwc).permute(2, 0, 1).float() / 255
            for kind, value, formats in (("float CHW tensor", chw, "CHW"), ("uint8 HWC array", hwc, "HWC")):
                key = f"{n}-{content.replace(' ', '')}-{formats}"
                calls = CALLS[n]
                run = tailboard.init(tmp / f"ours-{key}")
                ours = per_call(lambda i: run.log({"img": tailboard.Image(value, formats)}, step=i), calls, args.repeats)
                run.finish()
                ours_bytes = folder_bytes(tmp / f"ours-{key}" / "media") / (calls * args.repeats)
                tb = TBWriter(str(tmp / f"tb-{key}"))
                theirs = per_call(lambda i: tb.add_image("img", value, i, dataformats=formats), calls, args.repeats)
                tb.close()
                tb_bytes = folder_bytes(tmp / f"tb-{key}") / (calls * args.repeats)
                print(f"| {n}x{n} RGB, {content} | {kind} | {ours:,.0f} | {ours_bytes:,.0f} | {theirs:,.0f} | "
                      f"{tb_bytes:,.0f} | {theirs / ours:.1f}x |")
    print()
    print("| image | encoder | us/image | bytes |")
    print("|---|---|---|---|")
    for n in (64, 512):
        for content, noise in (("clean", 0.0), ("smooth + noise", 3.0), ("noise", 255.0)):
            pixels = picture(n, noise).tobytes()
            for label, fn in (
                ("Up, zlib 1 (the writer's)", lambda: png.encode(n, n, 3, pixels)),
                ("Up, zlib 6", lambda: encode_at(6, n, pixels)),
                ("no filter, zlib 1", lambda: unfiltered(n, n, 3, pixels, 1)),
                ("no filter, zlib 6", lambda: unfiltered(n, n, 3, pixels, 6)),
            ):
                us = per_call(lambda _: fn(), CALLS[n], args.repeats)
                print(f"| {n}x{n} RGB, {content} | {label} | {us:,.0f} | {len(fn()):,} |")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
