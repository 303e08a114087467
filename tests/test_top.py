"""`tailboard top` as a user meets it: a real process over a log tree written by the real writer,
its one frame (--once, stdout a pipe) and its live view in a pseudo-terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import tailboard
from tailboard.sidecar.top import NOT_FINITE, SPARKS, sparkline, visible

TIMEOUT = 60
SPARK = re.compile(f"[{SPARKS}{NOT_FINITE}]+")


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAILBOARD_")}
    env.update(extra)
    return env


def top_once(root: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "tailboard.sidecar", "top", str(root), *args],
                          capture_output=True, timeout=TIMEOUT, env=environment(), check=False)


def row(out: str, run: str) -> str:
    """The line of ``out`` that starts with the run's name."""
    lines = [line for line in out.splitlines() if line.startswith(run + " ")]
    assert len(lines) == 1, out
    return lines[0]


def test_once_names_runs_status_latest_values_and_sparkline(tmp_path: Path) -> None:
    live = tailboard.Run(tmp_path / "lr_0.1" / "seed0", config={"lr": 0.1})
    for step in range(200):
        live.log({"train/loss": 1.0 / (step + 1), "acc": step / 1000}, step=step)
    done = tailboard.Run(tmp_path / "lr_0.01" / "seed0")
    done.log({"train/loss": 0.25}, step=7)
    done.finish()
    failed = tailboard.Run(tmp_path / "diverged")
    failed.log({"train/loss": float("nan")}, step=3)
    failed.finish(status="failed", reason="loss is NaN")

    proc = top_once(tmp_path, "--spark", "16", "--metrics", "loss")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode()
    assert f"tailboard top {tmp_path}" in out and "3 runs" in out

    first = row(out, "lr_0.1/seed0")
    assert re.search(r"\brunning\s+199\s", first), first
    assert re.search(r"train/loss\s+0\.005\s", first), first  # 1/200
    assert "acc" not in out  # --metrics chose only the losses
    (spark,) = SPARK.findall(first)
    assert len(spark) == 16 and spark[0] == SPARKS[-1] and spark[-1] == SPARKS[0], spark  # falls

    second = row(out, "lr_0.01/seed0")
    assert re.search(r"\bfinished\s+7\s", second) and re.search(r"train/loss\s+0\.25\s", second), second
    assert SPARK.findall(second) == [SPARKS[3]]  # one point, one character: a flat line's height
    third = row(out, "diverged")
    assert re.search(r"\bfailed\s+3\s", third) and re.search(r"train/loss\s+nan\s", third), third
    assert SPARK.findall(third) == [NOT_FINITE]
    live.finish()


def test_hostile_names_are_text_and_control_characters_show(tmp_path: Path) -> None:
    markup = tailboard.Run(tmp_path / "[bold red]x[" / "]")  # the run's id: "[bold red]x[/]"
    markup.log({"[link=http://evil]m[/link]": 1.5, "a\u202eb": 2.0}, step=1)
    escape = tailboard.Run(tmp_path / "\x1b[2J\x1b[31mevil\x07")
    escape.log({"loss\x1b[8m": 3.0}, step=2)
    for run in (markup, escape):
        run.finish()

    proc = top_once(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert b"\x1b" not in proc.stdout and b"\x07" not in proc.stdout
    out = proc.stdout.decode()
    assert re.search(r"\[link=http://evil\]m\[/link\]\s+1\.5\s", row(out, "[bold red]x[/]"))
    assert "a\\u202eb" in out
    assert re.search(r"loss\\x1b\[8m\s+3\s", row(out, "\\x1b[2J\\x1b[31mevil\\x07"))


def test_bad_metrics_pattern_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = top_once(tmp_path, "--metrics", "(")
    assert proc.returncode == 2
    assert proc.stderr.decode().startswith("tailboard: --metrics is not a regular expression")
    assert proc.stderr.count(b"\n") == 1


def test_sparkline_keeps_each_stretch_last_value() -> None:
    steps = np.arange(10, dtype=np.float64)
    assert sparkline(steps, steps.copy(), 5) == "▁▃▅▆█"  # 1, 3, 5, 7, 9 of 0..9
    assert sparkline(steps[:3], np.array([1.0, np.inf, 3.0]), 5) == f"▁{NOT_FINITE}█"
    # a gap in the steps: the empty stretches repeat the value before them
    assert sparkline(np.array([0.0, 1.0, 2.0, 9.0]), np.arange(4.0), 3) == "▁▁█"
    assert visible("a\tb\x1b\x9b\u2028") == "a\\x09b\\x1b\\x9b\\u2028"


# -- live, in a pseudo-terminal ----------------------------------------------------------------


# The child, a session leader (start_new_session), takes its stdin as its controlling terminal, as
# a login shell does, so that a typed Ctrl-C reaches it as SIGINT; then it is the CLI.
IN_TERMINAL = ("import fcntl, sys, termios\n"
               "fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
               "from tailboard.sidecar.cli import main\n"
               "raise SystemExit(main(sys.argv[1:]))\n")


class Terminal:
    """`tailboard top` in a pseudo-terminal of 160 characters by ``lines``; ``read_until`` collects
    what it draws, bounded in time."""

    def __init__(self, root: Path, *args: str, lines: int = 40) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, 160, 0, 0))
        self.slave = slave
        self.child = subprocess.Popen(
            [sys.executable, "-c", IN_TERMINAL, "top", str(root), "--interval", "0.1", *args],
            stdin=slave, stdout=slave, stderr=slave, env=environment(TERM="xterm-256color"),
            start_new_session=True)
        self.seen = ""

    def read_until(self, text: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        start = len(self.seen)
        while text not in self.seen[start:]:
            left = deadline - time.monotonic()
            assert left > 0, f"{text!r} not drawn in {timeout} s; drawn: {self.seen[-2000:]!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536).decode(errors="replace")
                except OSError:  # the child closed the terminal
                    break
        return self.seen[start:]

    def close(self) -> None:
        if self.child.poll() is None:
            self.child.kill()
            self.child.wait(TIMEOUT)
        os.close(self.master)
        os.close(self.slave)


def test_live_redraws_on_new_records_and_quits_on_q(tmp_path: Path) -> None:
    run = tailboard.Run(tmp_path / "sweep" / "a")
    run.log({"loss": 0.75}, step=10)
    term = Terminal(tmp_path)
    try:
        term.read_until("sweep/a")
        run.log({"loss": 0.3125}, step=11)
        drawn = term.read_until("0.3125")
        assert "11" in drawn
        run.finish()
        term.read_until("finished")
        os.write(term.master, b"q")
        assert term.child.wait(TIMEOUT) == 0
        # the terminal is given back as it was: line editing and echo on
        assert termios.tcgetattr(term.slave)[3] & termios.ICANON
    finally:
        term.close()


def test_live_draws_the_runs_that_fit_moving_ones_first(tmp_path: Path) -> None:
    runs = [tailboard.Run(tmp_path / f"done{i:02}") for i in range(20)]
    for run in runs:
        run.log({"loss": 1.0}, step=1)
        run.finish()
    moving = tailboard.Run(tmp_path / "zz_moving")
    moving.log({"loss": 0.5}, step=1)
    term = Terminal(tmp_path, lines=20)  # 16 lines for runs: 8 of them, at two lines each
    try:
        drawn = term.read_until("more runs below")
        assert "zz_moving" in drawn and "done06" in drawn and "done07" not in drawn
        assert "+13 more runs below" in drawn
        os.write(term.master, b"q")
        assert term.child.wait(TIMEOUT) == 0
    finally:
        term.close()
        moving.finish()


def test_live_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    run = tailboard.Run(tmp_path / "a")
    run.log({"loss": 1.0}, step=1)
    term = Terminal(tmp_path)
    try:
        term.read_until("running")
        os.write(term.master, b"\x03")  # Ctrl-C, as typed: the terminal sends SIGINT
        assert term.child.wait(TIMEOUT) == 0
        assert "Traceback" not in term.seen
    finally:
        term.close()
        run.finish()


def test_once_on_an_empty_tree(tmp_path: Path) -> None:
    proc = top_once(tmp_path)
    assert proc.returncode == 0
    assert "0 runs" in proc.stdout.decode()


def test_without_rich_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    refuse = ("import importlib.abc, sys\n"
              "class Refuse(importlib.abc.MetaPathFinder):\n"
              "    def find_spec(self, name, path=None, target=None):\n"
              "        if name.partition('.')[0] == 'rich':\n"
              "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
              "sys.meta_path.insert(0, Refuse())\n"
              "from tailboard.sidecar.cli import main\n"
              "raise SystemExit(main(sys.argv[1:]))\n")
    proc = subprocess.run([sys.executable, "-c", refuse, "top", str(tmp_path)], capture_output=True,
                          timeout=TIMEOUT, env=environment(), check=False)
    assert proc.returncode == 1
    assert proc.stderr.decode() == ("tailboard: top needs the sidecar extra (rich is not installed): "
                                    "pip install -e '.[sidecar]' in tailboard's checkout (README: Install)\n")
