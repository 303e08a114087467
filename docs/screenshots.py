"""The screenshots in docs/img/, made again from real parts: logs written by tailboard's writer, the
sidecar serving them on loopback, the page in headless Chromium. `make screenshots` runs this.

- grouped.png: six runs of a learning-rate sweep (three seeds each) grouped by their `lr` config key,
  each group its mean with a min-max band;
- straggler.png: one run of four ranks written live, rank 2 four times slower: its band and the
  straggler card naming it;
- images.png: two runs' images side by side in the Images tab.
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import tailboard
from playwright.sync_api import sync_playwright
from tailboard.sidecar.server import serve_in_thread

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu"]
OUT = Path(__file__).resolve().parent / "img"


def sweep(root: Path) -> None:
    for lr in (0.1, 0.3):
        for seed in range(3):
            rng = random.Random(seed * 10 + int(lr * 10))
            run = tailboard.init(root / "sweep" / f"lr{lr}-s{seed}", config={"lr": lr, "seed": seed})
            for step in range(300):
                loss = 2.0 * math.exp(-step * lr / 30) + 0.1 + rng.gauss(0, 0.05)
                run.log({"train/loss": loss, "train/acc": 1 - loss / 2.2}, step=step)
            run.finish()


def ranks(root: Path, stop: threading.Event) -> list[threading.Thread]:
    def train(rank: int) -> None:
        run = tailboard.init(root / "ddp", rank=rank, world_size=4)
        step = 0
        while not stop.is_set():
            run.log({"loss": 2.0 * math.exp(-step / 150) + 0.05 * rank}, step=step)
            step += 1
            time.sleep(0.04 if rank == 2 else 0.01)
        run.finish()

    threads = [threading.Thread(target=train, args=(r,), daemon=True) for r in range(4)]
    for t in threads:
        t.start()
    return threads


def images(root: Path) -> None:
    ys, xs = np.mgrid[0:48, 0:48]
    for name, order in (("a", (0, 1, 2)), ("b", (2, 0, 1))):
        run = tailboard.init(root / "gallery" / name)
        for step in range(4):
            v = ((xs * 5 + ys * 3 + step * 40) % 256).astype(np.uint8)
            planes = [v, 255 - v, np.full_like(v, 128)]
            run.log({"samples": tailboard.Image(np.stack([planes[k] for k in order], axis=-1))}, step=step)
        run.finish()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sweep(root)
        images(root)
        stop = threading.Event()
        threads = ranks(root, stop)
        handle = serve_in_thread(root, token="shots", follower_options={"poll_interval": 0.05})
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 820})
                base = f"{handle.base_url}/"
                shots = [
                    ("grouped.png", "runs=" + ",".join(f"sweep/lr{lr}-s{s}" for lr in (0.1, 0.3) for s in range(3))
                     + "&group=cfg:lr&smooth=0.6", "() => window.tailboard.charts.get('train/loss')?.draws > 0", None),
                    ("straggler.png", "runs=ddp&smooth=0",
                     "() => document.querySelector('.rank-slowest')?.innerText === 'slowest: rank 2'", None),
                    ("images.png", "runs=gallery/a,gallery/b", "() => document.querySelectorAll('#tab-images img').length >= 2",
                     "button[data-tab=images]"),
                ]
                for name, query, ready, tab in shots:
                    page.goto(f"{base}?{query}#token={handle.token}")
                    page.wait_for_function("() => window.tailboard && window.tailboard.state.infos.size > 0", timeout=20_000)
                    if tab:
                        page.click(tab)
                    page.wait_for_function(ready, timeout=20_000)
                    time.sleep(0.5)  # the next frames: lines settled, no hover
                    page.screenshot(path=str(args.out / name))
                    print(f"{args.out / name}")
                browser.close()
        finally:
            stop.set()
            for t in threads:
                t.join(5)
            handle.stop()


if __name__ == "__main__":
    main()
