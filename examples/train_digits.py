"""Train a small MLP on scikit-learn's digits (offline) and log it with tailboard.

    python examples/train_digits.py --logdir runs --run-name lr_0.1/seed0 --lr 0.1

Logs train/loss, train/accuracy, train/lr every step; eval/loss and eval/accuracy every epoch; the
per-layer gradient norms as a vector; weight histograms every few steps; and the config.
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from sklearn.datasets import load_digits
from torch import nn

import tailboard


def data(seed: int) -> tuple[torch.Tensor, ...]:
    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32) / 16.0
    y = torch.tensor(y, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    split = int(0.8 * len(x))
    return x[order[:split]], y[order[:split]], x[order[split:]], y[order[split:]]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--logdir", default="runs")
    ap.add_argument("--run-name", default="digits")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--step-delay", type=float, default=0.0, help="sleep per step, for live demos")
    ap.add_argument("--hist-every", type=int, default=20)
    ap.add_argument("--no-log", action="store_true", help="compute the metrics but do not log (benchmark)")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    xtr, ytr, xte, yte = data(args.seed)
    model = nn.Sequential(nn.Linear(64, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                          nn.Linear(args.hidden, 10))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    config = {k: v for k, v in vars(args).items() if k not in ("logdir", "no_log")}
    config["model"] = {"layers": 3, "params": sum(p.numel() for p in model.parameters())}

    run = None if args.no_log else tailboard.init(os.path.join(args.logdir, args.run_name), config=config)
    step = 0
    layers = [m for m in model if isinstance(m, nn.Linear)]
    try:
        for epoch in range(args.epochs):
            model.train()
            perm = torch.randperm(len(xtr))
            for b in range(steps_per_epoch):
                idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
                out = model(xtr[idx])
                loss = loss_fn(out, ytr[idx])
                opt.zero_grad()
                loss.backward()
                # the metrics are computed either way, so --no-log isolates what logging costs
                grad_norms = torch.stack([layer.weight.grad.norm() for layer in layers])
                metrics = {
                    "train/loss": loss.detach(),
                    "train/accuracy": (out.argmax(1) == ytr[idx]).float().mean(),
                    "train/lr": sched.get_last_lr()[0],
                    "grad_norm/layers": grad_norms,
                }
                if step % args.hist_every == 0:
                    for i, layer in enumerate(layers):
                        metrics[f"weights/fc{i}"] = tailboard.Histogram(layer.weight.detach())
                if run is not None:
                    run.log(metrics, step=step)
                opt.step()
                sched.step()
                step += 1
                if args.step_delay:
                    time.sleep(args.step_delay)
            model.eval()
            with torch.no_grad():
                out = model(xte)
                if run is not None:
                    run.log({"eval/loss": loss_fn(out, yte), "eval/accuracy": (out.argmax(1) == yte).float().mean(),
                             "epoch": epoch}, step=step - 1)
    except BaseException as e:
        if run is not None:
            run.finish("failed", f"{type(e).__name__}: {e}")
        raise
    if run is not None:
        run.finish()


if __name__ == "__main__":
    main()
