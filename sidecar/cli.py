"""`tailboard serve LOGDIR`, `tailboard replay LOGDIR` and `tailboard gpu LOGDIR`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
import tempfile
import threading

from tailboard import __version__

from .alerts import load_config
from .alerts.webhooks import parse_webhook
from .gpu import MIN_INTERVAL, GpuSampler
from .auth import security_headers
from .readers.registry import Registry, Rule, parse_rule
from .replay import Replayer
from .server import Server, is_loopback

__all__ = ["main", "build_parser"]

logger = logging.getLogger("tailboard")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tailboard", description="Live monitor for PyTorch training.")
    ap.add_argument("--version", action="version", version=f"tailboard {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("logdir", help="the log root: every folder below it holding log files is a run "
                                      "(JSON lines, TensorBoard event files, CSV, JSON documents, text logs)")
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=6007)
        p.add_argument("--token", default=os.environ.get("TAILBOARD_TOKEN"),
                       help="access token (default: $TAILBOARD_TOKEN, else a random one)")
        p.add_argument("--no-auth", action="store_true", help="serve without a token (not recommended)")
        p.add_argument("--poll", action="store_true", help="poll files instead of inotify (NFS, overlayfs)")
        p.add_argument("--allow-host", action="append", default=[], metavar="HOST",
                       help="extra Host header value to accept (repeatable; '*' for any)")
        p.add_argument("--stall-after", type=float, default=120.0, metavar="SECONDS",
                       help="a run with no record for this long and no final record is stalled")
        p.add_argument("--max-points", type=int, default=200_000_000, metavar="N",
                       help="resident scalar points (about 20 bytes each) before idle runs are evicted "
                            "and re-read from their files on demand (default 200M; 0: no limit)")
        p.add_argument("--evict-idle", type=float, default=60.0, metavar="SECONDS",
                       help="past --max-points, runs nobody asked for in this long are evicted (default 60)")
        p.add_argument("--frame-ancestors", action="append", default=[], metavar="SOURCE",
                       help="an origin that may show the page in a frame, e.g. a notebook's "
                            "http://localhost:8888 (repeatable; default: never framed)")
        p.add_argument("--include", action="append", default=[], metavar="GLOB[=READER]",
                       help="read files matching GLOB (relative path, or file name when it has no '/') even "
                            "if their name or content does not say they are logs; '=READER' forces the "
                            "reader (jsonl, tfevents, csv, jsondoc, text). Repeatable")
        p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                       help="never read files matching GLOB (repeatable; wins over --include)")
        p.add_argument("--text-pattern", metavar="REGEX",
                       help="for text logs: a regular expression with named groups, one per metric "
                            "(and optionally step, epoch, time), e.g. 'it (?P<step>\\d+) loss (?P<loss>\\S+)'")
        p.add_argument("--alert", action="append", default=[], metavar="KEY=VALUE",
                       help="an alert threshold (spike_factor=5, stall_min=300, gpu_memory=0.9...) or a rule "
                            "on or off (spike=off); repeatable, wins over --alerts-config; see docs/alerts.md")
        p.add_argument("--alerts-config", metavar="FILE", help="alert settings as a JSON object of the same keys")
        p.add_argument("--no-alerts", action="store_true", help="evaluate no alert rule at all")
        p.add_argument("--webhook", action="append", metavar="URL",
                       default=os.environ.get("TAILBOARD_WEBHOOKS", "").split(),
                       help="send alerts to this URL (repeatable; default: $TAILBOARD_WEBHOOKS, separated by "
                            "spaces, which keeps the URLs out of the process list). Slack and Discord URLs get "
                            "their own shape, others JSON; slack+URL, discord+URL, json+URL choose it")
        p.add_argument("--metrics", action="store_true",
                       help="serve Prometheus metrics at /metrics (the same token as the API)")
        p.add_argument("--metrics-include", metavar="REGEX",
                       help="with --metrics: export the latest value of the run metrics whose name matches "
                            "REGEX (searched, e.g. 'loss|acc'); none by default")
        p.add_argument("--certfile", help="TLS certificate (PEM)")
        p.add_argument("--keyfile", help="TLS private key (PEM)")
        p.add_argument("-v", "--verbose", action="store_true")

    def nvml_module(p: argparse.ArgumentParser) -> None:
        # Another module with pynvml's functions (module or module:attribute), for tests and demos
        # without a GPU (tailboard.sidecar.gpu.fake:demo). Not shown: it runs the module named.
        p.add_argument("--nvml-module", default="pynvml", help=argparse.SUPPRESS)

    sp = sub.add_parser("serve", help="follow a log folder and serve the viewer")
    common(sp)
    sp.add_argument("--gpu", choices=("auto", "off"), default="auto",
                    help="sample this host's GPUs (NVML) into LOGDIR/_system/<host>/ when a driver is "
                         "there (auto, the default) or not at all (off); see docs/gpu.md")
    sp.add_argument("--gpu-interval", type=interval, default=1.0, metavar="SECONDS",
                    help=f"seconds between GPU samples (default 1, at least {MIN_INTERVAL:g})")
    sp.add_argument("--allow-control", action="store_true",
                    help="let the page ask a run to stop (POST /api/runs/RUN/stop writes a request into the "
                         "run's folder, which run.should_stop() reads); needs the token")
    nvml_module(sp)
    rp = sub.add_parser("replay", help="serve finished logs as if they were being written now")
    common(rp)
    rp.add_argument("--speed", type=float, default=1.0, help="compress recorded time this many times")
    gp = sub.add_parser("gpu", help="sample this host's GPUs into a log folder, without serving "
                                    "(one per node: a process, a container, a DaemonSet)")
    gp.add_argument("logdir", help="the log root the sidecar follows; samples go into "
                                   "LOGDIR/_system/<node>/")
    gp.add_argument("--interval", type=interval, default=1.0, metavar="SECONDS",
                    help=f"seconds between samples (default 1, at least {MIN_INTERVAL:g})")
    gp.add_argument("--node", default=os.environ.get("TAILBOARD_NODE"),
                    help="the name of this host in the log tree (default: $TAILBOARD_NODE, else the "
                         "host name; on Kubernetes, the node's name from the downward API)")
    gp.add_argument("--keep", type=count, default=600, metavar="N",
                    help="samples kept in memory where the log tree is read-only (default 600)")
    gp.add_argument("-v", "--verbose", action="store_true",
                    help="log more: each field a GPU does not give")
    nvml_module(gp)
    return ap


def interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= MIN_INTERVAL or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text} s: at least {MIN_INTERVAL:g} s (NVML's utilisation is an average over up to a "
            "second: sampling faster gains nothing)")
    return value


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _gpu(args: argparse.Namespace) -> int:
    """`tailboard gpu LOGDIR`: the sampler alone, until SIGINT / SIGTERM."""
    if not os.path.isdir(args.logdir):
        print(f"tailboard: no such folder: {args.logdir}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sampler = GpuSampler(args.logdir, interval=args.interval, node=args.node, nvml=args.nvml_module,
                         keep=args.keep)
    sampler.start()
    where = sampler.sink.folder if sampler.sink is not None else "memory"
    print(f"tailboard {__version__}: sampling GPUs every {args.interval:g} s into {where}", flush=True)
    while not stop.wait(0.2) and sampler.running:
        pass
    sampler.stop()
    status = sampler.status()
    print(f"tailboard: stopped after {status.samples} samples", flush=True)
    return 1 if status.state == "no_driver" else 0


async def _run(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    scratch = None
    replayer = None
    logdir = args.logdir
    if not os.path.isdir(logdir):
        print(f"tailboard: no such folder: {logdir}", file=sys.stderr)
        return 2
    try:
        names = list(Registry().readers)
        readers = Registry(include=[parse_rule(r, names) for r in args.include],
                           exclude=[Rule(r) for r in args.exclude], text_pattern=args.text_pattern)
        security_headers(args.frame_ancestors)  # a bad source is said here, in one line
        alerts = None if args.no_alerts else load_config(args.alerts_config, args.alert)
        for url in args.webhook:
            parse_webhook(url)
        if args.webhook and alerts is None:
            raise ValueError("--webhook sends alerts: it does not go with --no-alerts")
        if args.metrics_include is not None:
            re.compile(args.metrics_include)
        if getattr(args, "allow_control", False) and args.no_auth:
            raise ValueError("--allow-control needs the token: it does not go with --no-auth")
    except re.error as e:
        print(f"tailboard: --metrics-include is not a regular expression: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"tailboard: {e}", file=sys.stderr)
        return 2
    if args.command == "replay":
        scratch = tempfile.TemporaryDirectory(prefix="tailboard-replay-")
        replayer = Replayer(logdir, scratch.name, speed=args.speed, readers=readers)
        logdir = scratch.name
    server = Server(
        logdir,
        host=args.host,
        port=args.port,
        token=args.token,
        auth=not args.no_auth,
        poll=args.poll,
        allow_hosts=args.allow_host,
        stall_after=args.stall_after,
        max_points=args.max_points or None,
        evict_idle=args.evict_idle,
        certfile=args.certfile,
        keyfile=args.keyfile,
        readers=readers,
        gpu=getattr(args, "gpu", "off"),
        gpu_interval=getattr(args, "gpu_interval", 1.0),
        nvml_module=getattr(args, "nvml_module", "pynvml"),
        frame_ancestors=args.frame_ancestors,
        alerts=alerts,
        webhooks=args.webhook,
        allow_control=getattr(args, "allow_control", False),
        metrics=args.metrics,
        metrics_include=args.metrics_include,
    )
    if not is_loopback(args.host):
        print(f"tailboard: warning: listening on {args.host}, reachable from other hosts", file=sys.stderr)
    if args.no_auth:
        print("tailboard: warning: authentication is off; anyone who can reach the port can read the logs",
              file=sys.stderr)
    try:
        await server.start()
    except OSError as e:
        print(f"tailboard: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    tasks = []
    if replayer is not None:
        tasks.append(asyncio.create_task(replayer.run()))
    print(f"tailboard {__version__}: {'replaying' if replayer else 'following'} {os.path.abspath(args.logdir)}",
          flush=True)
    if replayer is None:
        print(f"  found {server.follower.describe_files()}", flush=True)
    print(f"  open {server.url}", flush=True)
    if server.webhooks:
        print("  alerts go to " + ", ".join(f"{w['host']} ({w['kind']})" for w in server.webhooks.status()), flush=True)
    if server.control is not None:
        print("  stop control is on: the page can ask a run to stop", flush=True)
    if args.metrics:
        print(f"  Prometheus metrics at {server.base_url}/metrics", flush=True)

    async def progress_line() -> None:
        last = None
        while True:
            p = server.store.progress()
            if p.total_bytes and not p.done and (p.loaded_bytes, p.total_bytes) != last:
                pct = 100.0 * p.loaded_bytes / p.total_bytes
                print(f"  loading backlog: {pct:5.1f}% of {p.total_bytes / 1e6:.1f} MB", flush=True)
                last = (p.loaded_bytes, p.total_bytes)
            if p.done:
                if last is not None:
                    print("  backlog loaded", flush=True)
                return
            await asyncio.sleep(1.0)

    tasks.append(asyncio.create_task(progress_line()))
    await asyncio.wait([asyncio.ensure_future(stop.wait()), asyncio.ensure_future(server.wait_closed())],
                       return_when=asyncio.FIRST_COMPLETED)
    for t in tasks:
        t.cancel()
    await server.stop()
    if scratch is not None:
        scratch.cleanup()
    print("tailboard: stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "gpu":
        return _gpu(args)
    if (args.certfile is None) != (args.keyfile is None):
        print("tailboard: --certfile and --keyfile go together", file=sys.stderr)
        return 2
    # This process is the sidecar: its event loop shares the GIL with query and parse threads. A
    # thread holds the GIL up to the switch interval before the loop gets it back: 1 ms instead of
    # 5 keeps a WebSocket send from waiting behind a big query.
    sys.setswitchinterval(0.001)
    return asyncio.run(_run(args))
