"""Catch-up ingest of every input format, each beside the peer that loads it elsewhere.

    .venv/bin/python bench/ingest.py [--formats native,foreign,tfevents,csv,jsondoc,text] [--runs 20]
        [--scale 1] [--repeats 3] [--budget 30] [--ea-runs 1] [--skip-rustboard] [--commit HEAD]
        [--against REV]

For each format one run's log is written by the real writer of that format (or in its exact layout),
then copied into --runs run folders. Each loader then runs in a fresh subprocess (its resident memory
is its own), --repeats times, the loaders taking turns (a loader whose runs took over --budget seconds
is not repeated); the median is printed, with points/s, CPU seconds (the process and the children it
waited for: another job on the machine changes them less than the wall time), bytes resident per
point and the ratios.
What each format holds at --scale 1 (every count of steps is multiplied by --scale):

- native: tailboard's writer, ``run.log`` of 10 metrics x 50,000 steps a run (10M points in 20 runs);
- foreign: JSON lines of ``json.dumps({"iter": i, "loss": ..., ...})``, 20 metrics x 25,000 lines
  a run (10M points);
- tfevents: torch's SummaryWriter.add_scalar, 10 tags x 50,000 steps a run (10M points);
- csv: Lightning's CSV writer (``metrics.csv``): a row of 10 train metrics and the epoch every step,
  a row of 10 validation metrics every 50 steps, the other cells empty, 20,000 steps a run;
- jsondoc: transformers' ``trainer_state.json`` (json.dumps, indent 2, keys sorted) with 5,000
  training entries of 4 metrics and an evaluation entry of 5 every 100, the final version only
  (0.85 MB: the follower does not read a document over its 1 MiB read size at 858cf55);
- text: a logging-formatted stdout, ``epoch E | step S | loss=... lr=...`` (5 metrics), 10,000 lines.

Loaders:
- tailboard: the real Follower feeding the real Store (what ``tailboard serve`` runs), from
  ``start()`` until the backlog is loaded; every point is kept and counted from the store;
- TensorBoard's Rust loader (``tensorboard --load_fast=true``, the tensorboard-data-server binary) on
  the same event files: from its start until its HTTP API shows every run's last step (it keeps 1,000
  points per tag), and the same less its start-up (until its API answers on an empty folder: taken
  off whole, which favours it, as its data server starts loading before its web server is up; the
  start-up of tailboard's process is not timed either), and EventAccumulator keeping every scalar (size_guidance 0) on --ea-runs runs;
- floors that keep nothing: orjson per line (JSON lines), orjson per document, Python's csv module,
  a regular expression per text line: what a script of a few lines would spend before storing anything.

--commit REV runs tailboard (the sidecar and the native writer) as it was at that commit, from a `git
archive` in the temp folder, so that committed code is measured while the working tree changes.
--against REV also runs tailboard as it was at REV, as one more loader taking its turn with the others
(the change a commit made, measured side by side on the same files at the same moments).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loopback import free_port

REPO = Path(__file__).resolve().parent.parent
FORMATS = ("native", "foreign", "tfevents", "csv", "jsondoc", "text")
#: The peers run beside tailboard for each format (child kinds).
PEERS = {
    "native": ["orjson-lines"],
    "foreign": ["orjson-lines"],
    "tfevents": ["rustboard", "accumulator"],
    "csv": ["csv-module"],
    "jsondoc": ["orjson-doc"],
    "text": ["regex-lines"],
}
LABELS = {
    "tailboard": "tailboard Follower + Store (all kept)",
    "orjson-lines": "orjson.loads per line, nothing kept",
    "rustboard": "TensorBoard --load_fast=true (keeps 1,000/tag)",
    "rustboard-loading": "the same, its start-up taken off",
    "accumulator": "TensorBoard EventAccumulator (all kept)",
    "csv-module": "csv.reader + float() per cell, nothing kept",
    "orjson-doc": "orjson.loads per document, nothing kept",
    "regex-lines": "re.findall + float() per line, nothing kept",
}
TAGS = 10  # metrics of the native and tfevents runs
FOREIGN_METRICS = 20
STEPS = {"native": 50_000, "foreign": 25_000, "tfevents": 50_000, "csv": 20_000, "jsondoc": 5_000, "text": 10_000}
#: Formats whose points tailboard did not all keep (the figures of a run that loses points are wrong).
MISSED: list[str] = []


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def value(i: int, j: int) -> float:
    return math.sin(i / 100 + j)


def use_commit(rev: str, into: Path) -> str:
    """Run the package as it was at commit ``rev`` (this process and its children), so that main can
    be measured while the working tree changes; returns what runs. Without it, the working tree runs."""
    src, what = extract_commit(rev, into)
    sys.path.insert(0, str(src))  # found before the editable install (a meta path finder at the end)
    os.environ["PYTHONPATH"] = str(src)
    return what


def module_at(commit: str | None, into: Path, name: str) -> tuple[Any, str]:
    """Module ``name`` of tailboard at ``commit`` (None: the working tree), imported beside any
    tailboard already imported in this process (which stays as it was), and what it is."""
    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if k.split(".")[0] == "tailboard"}
    path, env = list(sys.path), os.environ.get("PYTHONPATH")
    try:
        what = use_commit(commit, into) if commit else "working tree"
        return importlib.import_module(name), what
    finally:
        for k in [k for k in sys.modules if k.split(".")[0] == "tailboard"]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.path[:] = path
        if env is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env


def decode_in_chunks(cls: Any, data: bytes, chunk: int) -> tuple[list[Any], float, float]:
    """``data`` decoded by a new reader of class ``cls`` in ``chunk``-byte reads cut where its
    ``complete`` says, as the follower hands them over: every chunk's segments, and the wall and CPU
    seconds of decoding them all."""
    r = cls()
    state, buf, got = r.new_state(), b"", []
    wall, cpu = time.perf_counter(), time.process_time()
    for at in range(0, len(data), chunk):
        buf += data[at : at + chunk]
        n = r.complete(buf)
        if n:
            parsed, state = r.decode(buf[:n], state, now=0.0)
            buf = buf[n:]
            got.append(parsed.segments)
    return got, time.perf_counter() - wall, time.process_time() - cpu


def extract_commit(rev: str, into: Path) -> tuple[Path, str]:
    """The package as it was at commit ``rev``, importable from the folder returned, and what it is."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True).stdout.strip()

    sha = git("rev-parse", "--verify", f"{rev}^{{commit}}")
    src = into / "src"
    src.mkdir(parents=True)
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", sha, "writer", "sidecar"], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(src)], stdin=archive.stdout, check=True)
    archive.wait()
    (src / "writer").rename(src / "tailboard")  # the layout of pyproject.toml's package-dir
    (src / "sidecar").rename(src / "tailboard" / "sidecar")
    return src, git("log", "-1", "--format=%h %s", sha)[:100]


# -- one run of each format, written as its writer writes it; returns its file and its points ------

def write_native(folder: Path, steps: int) -> tuple[Path, int]:
    import tailboard

    run = tailboard.Run(folder, rank=0, world_size=1)
    names = [f"train/m{j}" for j in range(TAGS)]
    for i in range(steps):
        run.log({n: value(i, j) for j, n in enumerate(names)}, step=i)
    run.finish()
    return folder / "rank0.jsonl", steps * TAGS


def write_foreign(folder: Path, steps: int) -> tuple[Path, int]:
    names = ["loss"] + [f"loss_{j:02d}" for j in range(1, FOREIGN_METRICS - 1)] + ["lr"]
    path = folder / "metrics.jsonl"
    with open(path, "w") as f:
        f.writelines(json.dumps({"iter": i, **{n: value(i, j) for j, n in enumerate(names)}}) + "\n"
                     for i in range(steps))
    return path, steps * FOREIGN_METRICS


def write_tfevents(folder: Path, steps: int) -> tuple[Path, int]:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(folder), max_queue=10_000, flush_secs=3600)
    names = [f"train/m{j}" for j in range(TAGS)]
    for i in range(steps):
        for j, name in enumerate(names):
            w.add_scalar(name, value(i, j), i, walltime=1.7e9 + i * 0.1)
    w.close()
    (path,) = folder.glob("events.out.tfevents.*")
    return path, steps * TAGS


def write_csv(folder: Path, steps: int) -> tuple[Path, int]:
    from lightning.fabric.loggers.csv_logs import _ExperimentWriter

    w = _ExperimentWriter(str(folder))
    points = 0
    for i in range(steps):
        w.log_metrics({"epoch": i // 1000, **{f"train/m{j}": value(i, j) for j in range(TAGS)}}, step=i)
        points += TAGS + 1
        if i % 50 == 49:
            w.log_metrics({"epoch": i // 1000, **{f"val/m{j}": value(i, -j) for j in range(TAGS)}}, step=i)
            points += TAGS + 1
        if i % 100 == 99:  # Lightning saves every 100 steps by default
            w.save()
    w.save()
    return folder / "metrics.csv", points


def write_jsondoc(folder: Path, steps: int) -> tuple[Path, int]:
    history: list[dict[str, Any]] = []
    points = 0
    for i in range(steps):
        step = 10 * (i + 1)
        history.append({"epoch": step / 1000, "grad_norm": 1 + value(i, 1), "learning_rate": 5e-5 * (1 - i / steps),
                        "loss": 2 + value(i, 0), "step": step})
        points += 4
        if i % 100 == 99:
            history.append({"epoch": step / 1000, "eval_loss": 2 + value(i, 2), "eval_runtime": 12.5 + value(i, 3),
                            "eval_samples_per_second": 80 + value(i, 4), "eval_steps_per_second": 10 + value(i, 5),
                            "step": step})
            points += 5
    state = {"best_metric": None, "best_model_checkpoint": None, "epoch": steps / 100, "eval_steps": 1000,
             "global_step": 10 * steps, "is_hyper_param_search": False, "is_local_process_zero": True,
             "is_world_process_zero": True, "log_history": history, "logging_steps": 10, "max_steps": 10 * steps,
             "num_input_tokens_seen": 0, "num_train_epochs": 10, "save_steps": 500, "total_flos": 0.0,
             "train_batch_size": 8, "trial_name": None, "trial_params": None}
    path = folder / "trainer_state.json"
    path.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")  # as transformers' TrainerState does
    return path, points


def write_text(folder: Path, steps: int) -> tuple[Path, int]:
    path = folder / "train.log"
    with open(path, "w") as f:
        for i in range(steps):
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(1.7e9 + i)) + f",{i % 1000:03d}"
            f.write(f"{stamp} INFO epoch {i // 1000} | step {i} | loss={2 + value(i, 0):.4f} lr={5e-5 * (1 - i / steps):.3e} "
                    f"acc={50 + 40 * value(i, 1):.2f} grad_norm={1 + value(i, 2):.4f} tok_s={9000 + 500 * value(i, 3):.1f}\n")
    return path, steps * 5


WRITERS: dict[str, Callable[[Path, int], tuple[Path, int]]] = {
    "native": write_native, "foreign": write_foreign, "tfevents": write_tfevents,
    "csv": write_csv, "jsondoc": write_jsondoc, "text": write_text,
}


def generate(root: Path, fmt: str, runs: int, steps: int) -> dict[str, Any]:
    """One run written by the format's writer into run00, copied into the other runs."""
    first = root / "run00"
    first.mkdir(parents=True)
    src, points = WRITERS[fmt](first, steps)
    for r in range(1, runs):
        (root / f"run{r:02d}").mkdir()
        shutil.copyfile(src, root / f"run{r:02d}" / src.name)
    return {"points": points * runs, "bytes": src.stat().st_size * runs, "runs": runs, "steps": steps}


# -- the loaders, each in its own process -------------------------------------------------------

def _cpu() -> float:
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def tree_cpu(root_pid: int) -> float:
    """CPU seconds of a live process and of its live descendants (from /proc: TensorBoard does not
    wait for its data server, so the server's CPU never reaches a getrusage of ours)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU seconds)
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        stats[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    total, todo = 0.0, [root_pid]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0.0))[1]
        todo.extend(child for child, (parent, _) in stats.items() if parent == pid)
    return total


class Clock:
    """Wall time and CPU time since it was made; the CPU of this process and of the children it has
    waited for (the parse workers, TensorBoard), which other work on the machine changes less."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), _cpu()

    def lap(self) -> dict[str, float]:
        return {"seconds": time.perf_counter() - self.wall, "cpu": _cpu() - self.cpu}


def child_tailboard(root: str, spec: dict[str, Any]) -> dict[str, float]:
    from tailboard.sidecar.follower import Follower
    from tailboard.sidecar.store import Store

    base = rss_bytes()
    store = Store(root)
    follower = Follower(root, store)

    async def load() -> dict[str, float]:
        clock = Clock()
        await follower.start()
        seconds = clock.lap()["seconds"]
        await follower.stop()  # the parse workers have ended: their CPU is counted
        return {**clock.lap(), "seconds": seconds}

    timing = asyncio.run(load())
    runs = store.runs()
    return {**timing, "points": sum(r.points for r in runs), "rss": rss_bytes() - base,
            "skipped": sum(sum(r.skipped.values()) for r in runs), "workers": follower.catch_up_workers}


def child_rustboard(root: str, spec: dict[str, Any]) -> dict[str, float]:
    port = free_port()
    clock = Clock()
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", root, "--load_fast=true",
                             "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = f"train/m{spec.get('tags', TAGS) - 1}"
    waiting = {f"run{r:02d}" for r in range(spec["runs"])}
    try:
        deadline = time.monotonic() + 600
        while waiting and time.monotonic() < deadline:
            for run in sorted(waiting):
                url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={run}&tag={last}"
                try:
                    with urllib.request.urlopen(url, timeout=5) as res:
                        pts = json.loads(res.read())
                except (OSError, ValueError):
                    break
                if pts and pts[-1][1] == spec["steps"] - 1:
                    waiting.discard(run)
                else:
                    break
            else:
                continue
            time.sleep(0.05)
        seconds = clock.lap()["seconds"]
        cpu = tree_cpu(proc.pid) + _cpu() - clock.cpu  # TensorBoard and its data server, then this poller
    finally:
        proc.terminate()
        proc.wait(10)
    if waiting:
        raise RuntimeError(f"the Rust loader did not load {sorted(waiting)} in time")
    return {"seconds": seconds, "cpu": cpu, "points": spec["points"], "rss": 0}


def child_rustboard_startup(root: str, spec: dict[str, Any]) -> dict[str, float]:
    """TensorBoard's start-up alone: from its start until its HTTP API answers, on an empty folder."""
    with tempfile.TemporaryDirectory(prefix="tailboard-empty-") as empty:
        port = free_port()
        clock = Clock()
        proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", empty, "--load_fast=true",
                                 "--host", "127.0.0.1", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as res:
                        json.loads(res.read())
                    break
                except (OSError, ValueError):
                    time.sleep(0.02)
            seconds = clock.lap()["seconds"]
            cpu = tree_cpu(proc.pid) + _cpu() - clock.cpu
        finally:
            proc.terminate()
            proc.wait(10)
    return {"seconds": seconds, "cpu": cpu, "points": 0, "rss": 0}


def child_accumulator(root: str, spec: dict[str, Any]) -> dict[str, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    base = rss_bytes()
    clock = Clock()
    points = 0
    keep = []
    for run in sorted(os.listdir(root))[:spec["ea_runs"]]:
        acc = EventAccumulator(os.path.join(root, run), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            points += len(acc.Scalars(tag))
        keep.append(acc)
    return {**clock.lap(), "points": points, "rss": rss_bytes() - base}


def _files(root: str) -> list[str]:
    return sorted(str(p) for p in Path(root).rglob("*") if p.is_file())


def child_orjson_lines(root: str, spec: dict[str, Any]) -> dict[str, float]:
    import orjson

    clock = Clock()
    points = 0
    for path in _files(root):
        with open(path, "rb") as f:
            for line in f:
                obj = orjson.loads(line)
                v = obj.get("v")
                if v is not None:  # tailboard's scalars record
                    points += len(v)
                elif "k" not in obj:  # a foreign line: every number but the step
                    points += sum(type(x) is float for x in obj.values())
    return {**clock.lap(), "points": points, "rss": 0}


def child_csv_module(root: str, spec: dict[str, Any]) -> dict[str, float]:
    import csv

    clock = Clock()
    points = 0
    for path in _files(root):
        with open(path, newline="") as f:
            rows = csv.reader(f)
            header = next(rows)
            step = header.index("step")
            for row in rows:
                for k, cell in enumerate(row):
                    if cell and k != step:
                        float(cell)
                        points += 1
    return {**clock.lap(), "points": points, "rss": 0}


def child_orjson_doc(root: str, spec: dict[str, Any]) -> dict[str, float]:
    import orjson

    clock = Clock()
    points = 0
    for path in _files(root):
        with open(path, "rb") as f:
            doc = orjson.loads(f.read())
        for entry in doc["log_history"]:
            points += sum(type(x) is float for k, x in entry.items() if k != "step")
    return {**clock.lap(), "points": points, "rss": 0}


_PAIR = re.compile(r"(\w+)=(\S+)")


def child_regex_lines(root: str, spec: dict[str, Any]) -> dict[str, float]:
    clock = Clock()
    points = 0
    for path in _files(root):
        with open(path) as f:
            for line in f:
                for _, text in _PAIR.findall(line):
                    float(text)
                    points += 1
    return {**clock.lap(), "points": points, "rss": 0}


CHILDREN: dict[str, Callable[[str, dict[str, Any]], dict[str, float]]] = {
    "tailboard": child_tailboard, "rustboard": child_rustboard, "rustboard-startup": child_rustboard_startup,
    "accumulator": child_accumulator,
    "orjson-lines": child_orjson_lines, "csv-module": child_csv_module, "orjson-doc": child_orjson_doc,
    "regex-lines": child_regex_lines,
}


#: --against: the folder tailboard at that commit is imported from ("tailboard-against" loader)
AGAINST: dict[str, str] = {}


def run_child(kind: str, root: Path, spec: dict[str, Any]) -> dict[str, float]:
    env = None
    if kind == "tailboard-against":
        kind, env = "tailboard", {**os.environ, "PYTHONPATH": AGAINST["src"]}
    out = subprocess.run([sys.executable, __file__, "--child", kind, str(root), json.dumps(spec)],
                         capture_output=True, text=True, timeout=900, check=False, env=env)
    if out.returncode:
        raise RuntimeError(f"{kind} on {root} failed:\n{out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def measure_loaders(kinds: list[str], root: Path, spec: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Each loader --repeats times, interleaved (so a slow moment of the machine hits them all), a
    loader repeated only while its own runs took less than --budget seconds; the median of each."""
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    spent = dict.fromkeys(kinds, 0.0)
    for i in range(args.repeats):
        for kind in kinds:
            if i and spent[kind] > args.budget:
                continue
            t0 = time.perf_counter()
            results[kind].append(run_child(kind, root, spec))
            spent[kind] += time.perf_counter() - t0
    out = {}
    for kind, runs in results.items():
        runs.sort(key=lambda r: r["seconds"])
        out[kind] = {**runs[len(runs) // 2], "all": [r["points"] / r["seconds"] for r in runs]}
    return out


def measure(fmt: str, root: Path, args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    steps = max(1, round(STEPS[fmt] * args.scale))
    t0 = time.perf_counter()
    spec = {**generate(root, fmt, args.runs, steps), "ea_runs": args.ea_runs}
    print(f"\n{fmt}: {args.runs} runs, {spec['points']:,} points, {spec['bytes'] / 1e6:.0f} MB "
          f"({spec['bytes'] / spec['points']:.1f} bytes a point), written in {time.perf_counter() - t0:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    skip = {"rustboard"} if args.skip_rustboard else set()
    skip |= {"accumulator"} if args.ea_runs < 1 else set()
    kinds = ["tailboard"] + (["tailboard-against"] if AGAINST else []) + [p for p in PEERS[fmt] if p not in skip]
    rows = list(measure_loaders(kinds, root, spec, args).items())
    if "rustboard" in kinds:
        # Its start-up (the Python server) taken off whole: this favours it, as its data server starts
        # loading before the web server is up. tailboard's start-up is not timed either.
        start = measure_loaders(["rustboard-startup"], root, spec, args)["rustboard-startup"]
        at = kinds.index("rustboard")
        rust = rows[at][1]
        rows.insert(at + 1, ("rustboard-loading", {**rust, "seconds": rust["seconds"] - start["seconds"],
                                              "cpu": rust["cpu"] - start["cpu"], "all": []}))
        print(f"  TensorBoard's start-up on an empty folder: {start['seconds']:.2f} s, {start['cpu']:.2f} CPU s")
    ours = rows[0][1]
    if ours["points"] != spec["points"] or ours["skipped"]:
        MISSED.append(f"{fmt}: tailboard kept {ours['points']:,} of the {spec['points']:,} points written "
                      f"(skipped {ours['skipped']:,})")
        print(f"  MISSED {MISSED[-1]}")
    print(f"  {'loader':<48} {'points':>12} {'seconds':>8} {'points/s':>12} {'CPU s':>7} {'pts/CPU s':>10} "
          f"{'bytes/pt':>9}   each run")
    for kind, r in rows:
        per = f"{r['rss'] / max(r['points'], 1):>9.1f}" if r["rss"] else f"{'':>9}"
        each = " / ".join(f"{x / 1e6:.2f}M" for x in r["all"])
        print(f"  {LABELS[kind]:<48} {r['points']:>12,.0f} {r['seconds']:>8.2f} {r['points'] / r['seconds']:>12,.0f} "
              f"{r['cpu']:>7.2f} {r['points'] / r['cpu']:>10,.0f} {per}   {each}")
    rate = ours["points"] / ours["seconds"]
    for kind, r in rows[1:]:
        print(f"  tailboard / {LABELS[kind].split(' (')[0].split(',')[0]}: {rate / (r['points'] / r['seconds']):.2f}x "
              f"the points per second, {(ours['points'] / ours['cpu']) / (r['points'] / r['cpu']):.2f}x per CPU second")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated, of " + ", ".join(FORMATS))
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every format's steps")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=30.0,
                    help="seconds of runs after which a loader is not repeated (the slow ones run once)")
    ap.add_argument("--ea-runs", type=int, default=1, help="runs EventAccumulator loads (it is slow; 0: not run)")
    ap.add_argument("--skip-rustboard", action="store_true", help="do not run tensorboard --load_fast=true")
    ap.add_argument("--commit", help="run tailboard as it was at this commit (default: the working tree)")
    ap.add_argument("--against", metavar="REV",
                    help="also run tailboard as it was at this commit, beside the other loaders")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, root, spec = args.child
        print(json.dumps(CHILDREN[kind](root, json.loads(spec))))
        return
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        ap.error(f"unknown formats {sorted(unknown)}; known: {', '.join(FORMATS)}")
    top = Path(tempfile.mkdtemp(prefix="tailboard-ingest-"))
    began = time.perf_counter()
    results = {}
    try:
        if args.commit:
            print(f"tailboard at {use_commit(args.commit, top)}")
        if args.against:
            src, what = extract_commit(args.against, top / "against")
            AGAINST["src"] = str(src)
            LABELS["tailboard-against"] = f"the same at {what.split()[0]}"
            print(f"beside tailboard at {what}")
        for fmt in formats:
            results[fmt] = dict(measure(fmt, top / fmt, args))
            shutil.rmtree(top / fmt, ignore_errors=True)  # the page cache and the disk for the next one
    finally:
        shutil.rmtree(top, ignore_errors=True)
    print("\ntailboard catch-up, points/s (median):")
    for fmt, rows in results.items():
        r = rows["tailboard"]
        print(f"  {fmt:<9} {r['points'] / r['seconds'] / 1e6:6.2f}M   ({r['rss'] / max(r['points'], 1):.1f} bytes a point, "
              f"{int(r['workers'])} parse workers)")
    if "native" in results and "tfevents" in results and "rustboard" in results["tfevents"]:
        ours, rust = results["native"]["tailboard"], results["tfevents"]["rustboard"]
        print(f"  native JSONL / the Rust loader on event files of the same points: "
              f"{(ours['points'] / ours['seconds']) / (rust['points'] / rust['seconds']):.2f}x")
    print(f"whole run {time.perf_counter() - began:.0f} s")
    if MISSED:
        sys.exit("points were lost:\n" + "\n".join(MISSED))


if __name__ == "__main__":
    main()
