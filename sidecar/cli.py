"""`tailboard serve LOGDIR`, `tailboard replay LOGDIR`, `tailboard gpu LOGDIR` and `tailboard top LOGDIR`.

Only the standard library and the writer are imported before the arguments are parsed: `--help`
works with the base package alone, and a missing sidecar extra is one line naming the pip command.
Every failure the user can fix is one line, ``tailboard: what; the fix``, with the exit codes of
:data:`EXIT_CODES` (``tailboard.notebook`` reads those lines as the reason a sidecar did not start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import math
import os
import re
import signal
import socket
import sys
import tempfile
import threading
from typing import Any

from tailboard import __version__

from .auth import new_token
from .gpu import MIN_INTERVAL

__all__ = ["EXIT_CODES", "build_parser", "main"]

logger = logging.getLogger("tailboard")

EXIT_CODES = """exit codes:
  0  stopped cleanly (SIGINT, SIGTERM), or done (export)
  1  could not run: the port is in use, the sidecar extra is missing, no temporary directory, no run
     to export, no Playwright or Chromium for export --png...
  2  usage: a bad option, a file instead of a folder, a token file that cannot be read"""

# tailboard is not on PyPI yet: the extra is installed from a checkout or a built wheel (README: Install)
SIDECAR_EXTRA = "pip install -e '.[sidecar]' in tailboard's checkout (README: Install)"


class CliError(Exception):
    """A failure the user can fix, said in one line (no traceback) with its exit code."""

    code = 1


class UsageError(CliError):
    code = 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tailboard", description="Live monitor for PyTorch training.",
                                 epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"tailboard {__version__}")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("logdir", nargs="?", help="the log root: every folder below it holding log files is a run "
                                      "(JSON lines, TensorBoard event files, CSV, JSON documents, text logs)")
        p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
        p.add_argument("--port", type=int, default=6007)
        p.add_argument("--token", help="access token; visible to every user in `ps`: prefer $TAILBOARD_TOKEN "
                                      "or --token-file (default: $TAILBOARD_TOKEN, else a random one)")
        p.add_argument("--token-file", metavar="PATH", help="read the token from this file, e.g. a mounted "
                       "secret (default: $TAILBOARD_TOKEN_FILE)")
        p.add_argument("--public-url", type=public_url, metavar="URL",
                       help="how the outside reaches this server (a published port, a proxy): the printed "
                            "URL uses it, e.g. http://gpu-box:16007")
        p.add_argument("--base-url", type=prefix, default="", metavar="PREFIX",
                       help="serve everything below this path, for a reverse proxy that keeps it (e.g. "
                            "/tailboard); a proxy that strips its prefix needs none (docs/deploy.md)")
        p.add_argument("--proxy-headers", action="store_true",
                       help="believe X-Forwarded-For/-Proto/-Host (or Forwarded) from the proxy's "
                            "addresses (--forwarded-allow-ips): the page's origin is then the public one")
        p.add_argument("--forwarded-allow-ips", metavar="IPS",
                       help="with --proxy-headers: the proxies' addresses or networks, comma-separated, or * "
                            "(default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)")
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

    sp = sub.add_parser("serve", help="follow a log folder and serve the viewer", epilog=EXIT_CODES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    common(sp)
    sp.add_argument("--no-remember-token", dest="remember_token", action="store_false",
                    help="a new random token at each start, instead of the one kept in the user's config "
                         "folder ($XDG_CONFIG_HOME/tailboard/token) so that a restart keeps URLs working")
    sp.add_argument("--print-url", action="store_true",
                    help="print the URL of the remembered token (with --host, --port, --public-url) and exit")
    sp.add_argument("--gpu", choices=("auto", "off"), default="auto",
                    help="sample this host's GPUs (NVML) into LOGDIR/_system/<host>/ when a driver is "
                         "there (auto, the default) or not at all (off); see docs/gpu.md")
    sp.add_argument("--gpu-interval", type=interval, default=1.0, metavar="SECONDS",
                    help=f"seconds between GPU samples (default 1, at least {MIN_INTERVAL:g})")
    sp.add_argument("--gpu-idle", type=idle_rule, default=None, metavar="PERCENT/SAMPLES",
                    help="a GPU under a running run is idle when its utilisation stays under PERCENT for "
                         "SAMPLES samples in a row (default 5/60: a minute at 1 Hz)")
    sp.add_argument("--gpu-history", type=gpu_history, default=None, metavar="HOURS/DAYS",
                    help="GPU samples kept in memory: the last HOURS as sampled, then up to DAYS thinned "
                         "to each minute's first, smallest, largest and last (default 6/7; the files keep all)")
    sp.add_argument("--allow-control", action="store_true",
                    help="let the page ask a run to stop (POST /api/runs/RUN/stop writes a request into the "
                         "run's folder, which run.should_stop() reads); needs the token")
    nvml_module(sp)
    rp = sub.add_parser("replay", help="serve finished logs as if they were being written now", epilog=EXIT_CODES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    common(rp)
    rp.add_argument("--speed", type=float, default=1.0, help="compress recorded time this many times")
    gp = sub.add_parser("gpu", help="sample this host's GPUs into a log folder, without serving "
                                    "(one per node: a process, a container, a DaemonSet)",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    tp = sub.add_parser("top", help="the runs in this terminal, redrawn in place (no server, no token)",
                        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    tp.add_argument("logdir", help="the log root: every folder below it holding log files is a run")
    tp.add_argument("--metrics", metavar="REGEX",
                    help="show the metrics whose name matches REGEX (searched, e.g. 'loss|acc'); "
                         "default: 4 of each run, losses first")
    tp.add_argument("--interval", type=seconds, default=1.0, metavar="SECONDS",
                    help="seconds between redraws (default 1)")
    tp.add_argument("--once", action="store_true",
                    help="print one frame once the logs are read, then exit (implied when stdout is not "
                         "a terminal)")
    tp.add_argument("--spark", type=count, default=24, metavar="N",
                    help="characters of each sparkline (default 24)")
    tp.add_argument("--poll", action="store_true", help="poll files instead of inotify (NFS, overlayfs)")
    tp.add_argument("--stall-after", type=float, default=120.0, metavar="SECONDS",
                    help="a run with no record for this long and no final record is stalled")
    tp.add_argument("-v", "--verbose", action="store_true")
    ep = sub.add_parser("export", help="write the runs' charts into one HTML file that opens anywhere, offline "
                        "(docs/report.md)", epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    ep.add_argument("paths", nargs="+", metavar="RUN_OR_DIR", help="a run's folder, or a log root (every run below it)")
    ep.add_argument("-o", "--output", default="report.html", metavar="FILE", help="the report (default report.html)")
    ep.add_argument("--metrics", metavar="REGEX", help="chart the metrics whose name matches REGEX (searched)")
    ep.add_argument("--title", help="the report's title (default: the folders' names)")
    ep.add_argument("--max-points", type=count, default=500_000, metavar="N",
                    help="points kept in all (default 500,000: about 22 MB); beyond it the biggest series are "
                         "M4-downsampled")
    ep.add_argument("--png", metavar="DIR", help="also save each chart as DIR/<metric>.png (needs Playwright "
                                                  "and a Chromium)")
    ep.add_argument("-v", "--verbose", action="store_true")
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


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.05 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds of at least 0.05: {text!r}")
    return value


def public_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise argparse.ArgumentTypeError(f"{text!r}: give http(s)://HOST[:PORT][/PREFIX], as a browser "
                                         "outside would open it")
    return text.rstrip("/")


def prefix(text: str) -> str:
    from .proxy import base_path

    try:
        return base_path(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return value


def _pair(text: str, what: str) -> tuple[float, float]:
    a, sep, b = text.partition("/")
    try:
        if not sep:
            raise ValueError
        return float(a), float(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def idle_rule(text: str) -> Any:
    """--gpu-idle PERCENT/SAMPLES as the store's rule."""
    from .store.gpus import IdleRule

    util, samples = _pair(text, "PERCENT/SAMPLES, e.g. 5/60")
    if not 0 <= util <= 100 or samples != int(samples) or samples < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: PERCENT from 0 to 100, SAMPLES a whole number from 1")
    return IdleRule(util=util, samples=int(samples))


def gpu_history(text: str) -> Any:
    """--gpu-history HOURS/DAYS as the store's retention of system runs."""
    from .store.retention import SystemRetention

    hours, days = _pair(text, "HOURS/DAYS, e.g. 6/7")
    if not (hours > 0 and days > 0 and hours <= 24 * days and math.isfinite(days)):
        raise argparse.ArgumentTypeError(f"{text!r}: HOURS and DAYS above 0, HOURS no longer than DAYS")
    full = max(hours * 3600.0, 60.0)
    return SystemRetention(full=full, keep=max(days * 86400.0, full))


def _gpu(args: argparse.Namespace) -> int:
    """`tailboard gpu LOGDIR`: the sampler alone, until SIGINT / SIGTERM."""
    from .gpu import GpuSampler

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
    from .alerts import load_config
    from .alerts.webhooks import parse_webhook
    from .auth import security_headers
    from .readers.registry import Registry, Rule, parse_rule
    from .replay import Replayer
    from .server import Server, is_loopback

    scratch = None
    replayer = None
    logdir = args.logdir
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
        if args.forwarded_allow_ips is not None and not args.proxy_headers:
            raise ValueError("--forwarded-allow-ips says whose forwarded headers to believe: add --proxy-headers")
        if args.proxy_headers:
            from .proxy import LOOPBACK_PROXIES, TrustedProxies

            # a bad address is said here, in one line; none given: a proxy on this host, as the server
            TrustedProxies(forwarded_allow_ips(args) or LOOPBACK_PROXIES)
        if getattr(args, "allow_control", False) and args.no_auth:
            raise ValueError("--allow-control needs the token: it does not go with --no-auth")
    except re.error as e:
        print(f"tailboard: --metrics-include is not a regular expression: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"tailboard: {e}", file=sys.stderr)
        return 2
    # after the checks above: a start that fails on them leaves no token behind
    args.token = None if args.no_auth else resolve_token(args, create=args.command == "serve")
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
        gpu_idle=getattr(args, "gpu_idle", None),
        system_retention=getattr(args, "gpu_history", None),
        frame_ancestors=args.frame_ancestors,
        alerts=alerts,
        webhooks=args.webhook,
        allow_control=getattr(args, "allow_control", False),
        metrics=args.metrics,
        metrics_include=args.metrics_include,
        public_url=args.public_url,
        base_url=args.base_url,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=forwarded_allow_ips(args),
    )
    # In a container, binding every interface is how the published port reaches the server: with a
    # token that is the normal set-up, not a warning at every start.
    if not is_loopback(args.host) and not (in_container() and not args.no_auth):
        print(f"tailboard: warning: listening on {args.host}, reachable from other hosts", file=sys.stderr)
    if args.no_auth:
        print("tailboard: warning: authentication is off; anyone who can reach the port can read the logs",
              file=sys.stderr)
    try:
        await server.start()
    except (OSError, SystemExit) as e:  # uvicorn exits when it cannot bind: taken since the check
        with contextlib.suppress(Exception):
            await server.stop()
        reason = e.strerror if isinstance(e, OSError) else "see the error above"
        raise CliError(f"cannot listen on {args.host}:{args.port} ({reason}): choose another port with "
                       "--port") from None
    tasks = []
    if replayer is not None:
        tasks.append(asyncio.create_task(replayer.run()))
    print(f"tailboard {__version__}: {'replaying' if replayer else 'following'} {os.path.abspath(args.logdir)}",
          flush=True)
    if replayer is None:
        print(f"  found {server.follower.describe_files()}", flush=True)
    print(f"  open {server.url}", flush=True)
    tunnel = ssh_tunnel(args.host, server.port, public=args.public_url)
    if tunnel:
        print(f"  from another machine: {tunnel}, then open the URL above", flush=True)
    if args.token_note:
        print(f"  {args.token_note}", flush=True)
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
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "logdir", "") is None and args.command != "gpu" and not getattr(args, "print_url", False):
        parser.error(f"{args.command}: the log folder is required (LOGDIR)")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return _main(args)
    except CliError as e:
        print(f"tailboard: {e}", file=sys.stderr, flush=True)
        return e.code


def _main(args: argparse.Namespace) -> int:
    if args.command == "export":
        try:
            from .report import export
        except ModuleNotFoundError as e:
            raise _missing_extra(args.command, e) from None
        return export(args)
    if not getattr(args, "print_url", False):
        check_folder(args.logdir)
    if args.command == "gpu":
        return _gpu(args)
    if args.command == "top":
        try:
            from .top import top
        except ModuleNotFoundError as e:
            raise _missing_extra(args.command, e) from None
        if not args.poll:
            check_temp()  # inotify's sentinel
        return top(args)
    if (args.certfile is None) != (args.keyfile is None):
        raise UsageError("--certfile and --keyfile go together")
    try:  # the sidecar's dependencies, after parsing: `--help` needs none of them
        from . import replay, server  # noqa: F401
    except ModuleNotFoundError as e:
        raise _missing_extra(args.command, e) from None
    args.token_note = None
    if args.print_url:
        token = None if args.no_auth else resolve_token(args, create=False)
        base = server.site_url(server.bound_url(args.host, args.port, tls=bool(args.certfile)), args.base_url,
                               args.public_url)
        print(server.page_url(base, token), flush=True)
        return 0
    if not args.poll or args.command == "replay":
        check_temp()  # inotify's sentinel, replay's copy
    problem = port_problem(args.host, args.port)
    if problem:
        raise CliError(problem)
    # This process is the sidecar: its event loop shares the GIL with query and parse threads. A
    # thread holds the GIL up to the switch interval before the loop gets it back: 1 ms instead of
    # 5 keeps a WebSocket send from waiting behind a big query.
    sys.setswitchinterval(0.001)
    return asyncio.run(_run(args))


def forwarded_allow_ips(args: argparse.Namespace) -> str | None:
    """Whose forwarded headers to believe, with --proxy-headers: the option, else uvicorn's variable."""
    if not args.proxy_headers:
        return None
    return args.forwarded_allow_ips or os.environ.get("FORWARDED_ALLOW_IPS") or None


def _missing_extra(command: str, e: ModuleNotFoundError) -> CliError:
    if (e.name or "").partition(".")[0] == "tailboard":
        raise e  # a bug of ours, not a missing extra
    return CliError(f"{command} needs the sidecar extra ({e.name} is not installed): {SIDECAR_EXTRA}")


def check_folder(path: str) -> None:
    if os.path.isdir(path):
        return
    if os.path.exists(path):
        folder = os.path.dirname(os.path.abspath(path))
        raise UsageError(f"{path} is a file, not a folder: give the folder that holds the runs (this one is "
                         f"in {folder})")
    raise UsageError(f"no such folder: {path}")


def check_temp() -> None:
    try:
        tempfile.gettempdir()
    except FileNotFoundError:
        raise CliError("no usable temporary directory ($TMPDIR, /tmp, /var/tmp, /usr/tmp and the current "
                       "folder are missing or read-only): mount a writable /tmp (docker run --tmpfs /tmp, "
                       "an emptyDir on Kubernetes), set TMPDIR, or give --poll") from None


#: Files a container runtime leaves: Docker's, podman's.
CONTAINER_MARKERS = ("/.dockerenv", "/run/.containerenv")


def in_container() -> bool:
    """Docker, podman or a Kubernetes pod (whose runtime may leave no marker file)."""
    return any(os.path.exists(m) for m in CONTAINER_MARKERS) or "KUBERNETES_SERVICE_HOST" in os.environ


def ssh_tunnel(host: str, port: int, *, public: str | None) -> str | None:
    """The `ssh -L` line that reaches this server from another machine, when one helps: bound beyond
    loopback or run over SSH, and no --public-url to say better (nor a container, whose host name
    is its own)."""
    from .server import is_loopback

    if public or in_container():
        return None
    if is_loopback(host) and "SSH_CONNECTION" not in os.environ:
        return None
    target = "localhost" if is_loopback(host) or host in ("0.0.0.0", "::", "[::]", "") else host
    return f"ssh -L {port}:{target}:{port} {socket.gethostname()}"


# -- the port ---------------------------------------------------------------------------------


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on, in one line with the fix; None when it can. Bound
    and let go here, as uvicorn binds (SO_REUSEADDR: a closed connection's TIME_WAIT is no conflict)."""
    if port == 0:
        return None
    error = _bind_error(host, port)
    if error is None:
        return None
    if isinstance(error, socket.gaierror):
        return f"--host {host}: {error.strerror}: give an address of this machine (127.0.0.1, 0.0.0.0)"
    if error.errno == errno.EADDRINUSE:
        holder = port_holder(port)
        by = f" by {holder}" if holder else ""
        return f"port {port} is in use{by}: stop it or choose another port with --port {_free_port(host, port)}"
    if error.errno == errno.EACCES:
        return f"port {port} needs privileges: choose one above 1023 with --port"
    if error.errno == errno.EADDRNOTAVAIL:
        return f"--host {host} is not an address of this machine: give 127.0.0.1 or 0.0.0.0 (every interface)"
    return f"cannot listen on {host}:{port} ({error.strerror}): choose another --host or --port"


def _bind_error(host: str, port: int) -> OSError | None:
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return e
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as e:
                return e
    return None


def _free_port(host: str, port: int) -> int:
    """A port near ``port`` that is free now, to suggest (0, any free port, when none of them is)."""
    for candidate in range(port + 1, min(port + 20, 65535) + 1):
        if _bind_error(host, candidate) is None:
            return candidate
    return 0


def port_holder(port: int) -> str | None:
    """The process listening on TCP ``port`` in this network namespace, as 'name (pid N)', when
    /proc says so: the socket's inode from /proc/net/tcp{,6}, then the process holding that inode
    among the ones whose /proc/PID/fd this user may read."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()  # sl local_address rem_address st ... uid timeout inode
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link in inodes:
                try:
                    with open(f"/proc/{pid}/comm") as f:
                        name = f.read().strip()
                except OSError:
                    name = "a process"
                return f"{name} (pid {pid})"
    return None


# -- the token --------------------------------------------------------------------------------


def resolve_token(args: argparse.Namespace, *, create: bool) -> str | None:
    """The token to serve with: --token, --token-file, $TAILBOARD_TOKEN, $TAILBOARD_TOKEN_FILE, then
    the remembered one (made when ``create``); None lets the server draw a random one."""
    if args.token is not None and args.token_file is not None:
        raise UsageError("--token and --token-file: give one of them")
    if args.token is not None:
        if not args.token.strip():
            raise UsageError("--token is empty")
        print("tailboard: warning: a --token on the command line is visible to every user of this machine "
              "in `ps`: set TAILBOARD_TOKEN or give --token-file instead", file=sys.stderr, flush=True)
        return str(args.token)
    if args.token_file is not None:
        return read_token_file(args.token_file)
    if os.environ.get("TAILBOARD_TOKEN", "").strip():
        return os.environ["TAILBOARD_TOKEN"].strip()
    if os.environ.get("TAILBOARD_TOKEN_FILE"):
        return read_token_file(os.environ["TAILBOARD_TOKEN_FILE"])
    if getattr(args, "remember_token", False) or getattr(args, "print_url", False):
        path = token_path()
        token = remembered_token(path, create=create)
        if token is not None:
            args.token_note = f"token kept in {path}: `tailboard serve --print-url` prints this URL again"
        elif not create:
            raise CliError(f"no token remembered in {path} yet: `tailboard serve LOGDIR` makes one")
        return token
    return None


def read_token_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()  # secret files mostly end with a newline
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the token file {path} (uid {os.getuid()}, gid {os.getgid()}): "
                         f"{reason}") from None
    if not token:
        raise UsageError(f"the token file {path} is empty")
    return token


def token_path() -> str:
    """Where `serve` keeps its token: $XDG_CONFIG_HOME/tailboard/token (the spec says to ignore a
    relative $XDG_CONFIG_HOME), else ~/.config/tailboard/token."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "tailboard", "token")


def remembered_token(path: str, *, create: bool) -> str | None:
    """The token kept at ``path``; when there is none and ``create``, a new one kept there (None,
    with a warning, where it cannot be written: the server then draws one for this start only)."""
    try:
        return _read_remembered(path)
    except (FileNotFoundError, NotADirectoryError):  # none kept (a file where a folder would be: neither)
        if not create:
            return None
    try:
        return _remember(path, new_token())
    except OSError as e:
        print(f"tailboard: warning: cannot keep the token in {path} ({e.strerror}): a restart will change "
              "the URL; set TAILBOARD_TOKEN or --token-file to keep one", file=sys.stderr, flush=True)
        return None


def _read_remembered(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except OSError as e:
        raise CliError(f"cannot read the kept token {path} ({e.strerror}): remove it, or give "
                       "--no-remember-token") from None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as f:
        st = os.fstat(f.fileno())
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise CliError(f"the kept token {path} can be read by other users: chmod 600 {path}, or remove it")
        token = f.read().strip()
    if not token:
        raise CliError(f"the kept token {path} is empty: remove it and a new one is made")
    return token


def _remember(path: str, token: str) -> str:
    """Write ``token`` to ``path`` whole and private, never over an existing file: written to a
    private temporary file beside it, then linked into place (when another `serve` won the race,
    its token is the one kept)."""
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=folder, prefix=".token-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        try:
            os.link(scratch, path)
        except FileExistsError:
            return _read_remembered(path)
    finally:
        os.unlink(scratch)
    return token
