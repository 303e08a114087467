"""The trainer the example image runs: a small MLP on synthetic data, logged with tailboard.

    python examples/train_container.py --logdir runs --run demo --steps 300 --step-delay 0.05

Self-contained on purpose (no data set to download, torch only): a container started anywhere has
something to show. It uses the GPU when torch sees one. Every step logs train/loss, train/accuracy,
train/lr and the per-layer gradient norms; every ``--eval-every`` steps eval/loss and eval/accuracy
and a histogram of the first layer's weights.

The run folder is ``LOGDIR/RUN`` (``$TAILBOARD_LOGDIR``, ``$TAILBOARD_RUN``; the run defaults to the
host name, which is the pod's name on Kubernetes). Each process writes ``rank{RANK}.jsonl`` there
(``RANK`` / ``WORLD_SIZE`` from torchrun's environment, or from an indexed Job's completion index).

The exit code is 3 when tailboard could not write every record (a log volume this user cannot
write, a full disk): training itself never stops for logging, but a job that lost its logs should
not look like a success.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

import tailboard
import torch
from torch import nn

#: Exit code when records were dropped (0 and 1 stay what training itself returns).
EXIT_DROPPED = 3


def blobs(n: int, centres: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points around ``centres``, labelled by centre: learnt in a few hundred steps."""
    y = torch.randint(0, len(centres), (n,), generator=generator)
    x = centres[y] + torch.randn(n, centres.shape[1], generator=generator) * 1.5
    return x, y


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--logdir", default=os.environ.get("TAILBOARD_LOGDIR", "runs"))
    ap.add_argument("--run", default=os.environ.get("TAILBOARD_RUN") or socket.gethostname())
    ap.add_argument("--steps", type=int, default=int(os.environ.get("TRAIN_STEPS", "600")))
    ap.add_argument("--step-delay", type=float, default=float(os.environ.get("TRAIN_STEP_DELAY", "0.05")),
                    help="seconds to sleep per step, so that a live page has something to follow")
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    # An indexed Job numbers its pods; use that as the rank when no launcher set one.
    if "RANK" not in os.environ and "JOB_COMPLETION_INDEX" in os.environ:
        os.environ["RANK"] = os.environ["JOB_COMPLETION_INDEX"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    g = torch.Generator().manual_seed(args.seed)
    classes, dim = 10, 32
    centres = torch.randn(classes, dim, generator=g)
    xtr, ytr = blobs(8192, centres, g)
    xte, yte = blobs(1024, centres, g)
    xtr, ytr, xte, yte = (t.to(device) for t in (xtr, ytr, xte, yte))
    torch.manual_seed(args.seed)
    model = nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, classes))
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.steps))
    loss_fn = nn.CrossEntropyLoss()
    layers = [m for m in model if isinstance(m, nn.Linear)]
    config = {k: v for k, v in vars(args).items() if k not in ("logdir", "run")}
    config["device"] = str(device)

    run = tailboard.init(os.path.join(args.logdir, args.run), config=config)
    print(f"train_container: logging to {run.file} on {device}", flush=True)
    with run:
        for step in range(args.steps):
            idx = torch.randint(0, len(xtr), (args.batch_size,), generator=g).to(device)
            logits = model(xtr[idx])
            loss = loss_fn(logits, ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norms = [float(m.weight.grad.norm()) for m in layers if m.weight.grad is not None]
            opt.step()
            sched.step()
            acc = (logits.argmax(1) == ytr[idx]).float().mean()
            metrics: dict[str, object] = {"train/loss": loss.item(), "train/accuracy": acc.item(),
                                          "train/lr": sched.get_last_lr()[0], "grad_norm": norms}
            if step % args.eval_every == 0 or step == args.steps - 1:
                with torch.no_grad():
                    out = model(xte)
                    metrics["eval/loss"] = loss_fn(out, yte).item()
                    metrics["eval/accuracy"] = (out.argmax(1) == yte).float().mean().item()
                metrics["weights/fc1"] = tailboard.Histogram(layers[0].weight.detach().cpu())
            run.log(metrics, step=step)
            if args.step_delay > 0:
                time.sleep(args.step_delay)
    print(f"train_container: {args.steps} steps, {run.dropped} dropped", flush=True)
    if run.dropped:
        print(f"train_container: {run.dropped} records or values were not written to {run.file} "
              f"(uid {os.getuid()}, gid {os.getgid()}); see the warnings above", file=sys.stderr)
        return EXIT_DROPPED
    return 0


if __name__ == "__main__":
    sys.exit(main())
