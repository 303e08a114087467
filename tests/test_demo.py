"""`make demo` and a new user's first hour: the demo's refusal of a taken port, its token kept out of
`ps`, what `make demo` installs (and does not), and environment.yml kept in step with pyproject.toml."""

from __future__ import annotations

import http.server
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo.py"


class _AnswersEverything(http.server.BaseHTTPRequestHandler):
    """Another server on the port, answering 200 to any path (/healthz included)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def other_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AnswersEverything)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return {**env, **extra}


@pytest.mark.parametrize(("under_make", "fix"), [(False, "--port "), (True, "make demo PORT=")])
def test_the_demo_refuses_a_taken_port_and_starts_nothing(
        tmp_path: Path, other_server: int, under_make: bool, fix: str) -> None:
    logdir = tmp_path / "logs"
    earlier = logdir / "lr_0.1" / "seed0" / "metrics.jsonl"  # maybe the other demo's, being written
    earlier.parent.mkdir(parents=True)
    earlier.write_text('{"step": 0}\n')
    env = _env(MAKELEVEL="1") if under_make else _env()
    started = time.monotonic()
    done = subprocess.run([sys.executable, str(DEMO), "--port", str(other_server), "--logdir", str(logdir)],
                          check=False, capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port {other_server} is in use by " in lines[0] and f"(pid {os.getpid()})" in lines[0], lines[0]
    assert fix in lines[0], lines[0]
    # nothing started: no run folder written, the earlier logs untouched
    assert sorted(p.relative_to(logdir).as_posix() for p in logdir.rglob("*")) == [
        "lr_0.1", "lr_0.1/seed0", "lr_0.1/seed0/metrics.jsonl"]
    assert earlier.read_text() == '{"step": 0}\n'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_demo_serves_its_runs_with_a_token_that_ps_does_not_show(tmp_path: Path) -> None:
    port = _free_port()
    logdir = tmp_path / "logs"
    demo = subprocess.Popen([sys.executable, str(DEMO), "--port", str(port), "--logdir", str(logdir)],
                            stdout=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in demo.stdout or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        url = None
        deadline = time.monotonic() + 40
        while url is None:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic())).strip()
            if "#token=" in line:
                url = line
        assert re.fullmatch(rf"http://127\.0\.0\.1:{port}/#token=[\w-]+", url), url
        token = url.partition("#token=")[2]
        # three trainers and the sidecar, none with the token on its command line
        children = _children(demo.pid)
        cmdlines = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") for pid in children]
        assert len(cmdlines) == 4
        assert not any(token.encode() in arg for args in cmdlines for arg in args)
        assert sorted(a[a.index(b"--run-name") + 1] for a in cmdlines if b"--run-name" in a) == [
            b"lr_0.03/seed0", b"lr_0.1/seed0", b"lr_0.3/seed0"]
        # the URL's server is this demo's: it knows the token (the trainings' runs show up as soon as
        # they have imported torch, which takes long on a busy machine: not waited for here)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/runs",
                                         headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=10) as res:
            assert res.status == 200 and "runs" in json.loads(res.read())
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)


# -- the Makefile ---------------------------------------------------------------------------------


def _make_n(target: str, venv: Path) -> str:
    done = subprocess.run(["make", "-n", target, f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=30, env=_env(), check=True)
    return done.stdout


def _installs(dry_run: str) -> list[str]:
    return [line for line in dry_run.splitlines() if " -m pip install" in line]


def _fake_venv(tmp_path: Path, *stamps: str) -> Path:
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    for stamp in stamps:
        (venv / stamp).touch()  # newer than pyproject.toml and constraints.txt
    return venv


needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


@needs_make
def test_make_demo_installs_the_demo_extra_and_torch_from_the_constraints_only(tmp_path: Path) -> None:
    venv = tmp_path / "fresh" / ".venv"
    installs = _installs(_make_n("demo", venv))
    text = "\n".join(installs)
    for dev_only in (".[dev]", "playwright", "tensorboard", "lightning", "transformers", "mypy"):
        assert dev_only not in text, text
    torch = [line for line in installs if line.rstrip().endswith(" torch")]
    assert torch and all("-c constraints.txt" in line for line in torch), text
    assert any("-e '.[demo]'" in line and "-c constraints.txt" in line for line in installs), text
    assert not venv.exists()  # a dry run
    # `make test` still installs the test set on top
    assert any("-e '.[dev]'" in line for line in _installs(_make_n("test", venv)))


@needs_make
def test_make_demo_after_make_test_installs_nothing(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path, ".installed-demo", ".installed")
    assert _installs(_make_n("demo", venv)) == []
    assert _installs(_make_n("venv", venv)) == []


@needs_make
def test_make_test_after_make_demo_installs_only_the_test_set(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path, ".installed-demo")
    installs = _installs(_make_n("venv", venv))
    assert any("-e '.[dev]'" in line for line in installs), installs
    assert not any(line.rstrip().endswith(" torch") or ".[demo]" in line for line in installs), installs


# -- environment.yml ------------------------------------------------------------------------------

#: pyproject's requirement names that conda-forge spells otherwise.
CONDA_NAMES = {"uvicorn[standard]": "uvicorn-standard", "torch": "pytorch-cpu"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_environment(text: str) -> dict[str, Any]:
    """environment.yml's shape (top-level keys, lists of strings, one nested `pip:` list), read
    without a YAML library; checked against PyYAML where it is installed."""
    doc: dict[str, Any] = {}
    key = None
    target: list[Any] | None = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            key, _, value = line.partition(":")
            doc[key] = value.strip() or []
            target = doc[key] if isinstance(doc[key], list) else None
            continue
        item = line.strip()
        assert item.startswith("- ") and key is not None, f"unexpected line: {raw!r}"
        item = item[2:].strip()
        if item.endswith(":"):  # a nested list: `- pip:`
            nested: list[str] = []
            doc[key].append({item[:-1]: nested})
            target = nested
        elif indent <= 2:
            doc[key].append(item)
            target = doc[key]
        else:
            assert target is not None
            target.append(item)
    return doc


def test_environment_yml_holds_every_dependency_of_the_sidecar_and_demo_extras() -> None:
    text = (ROOT / "environment.yml").read_text()
    env = read_environment(text)
    try:
        import yaml
    except ModuleNotFoundError:
        pass
    else:
        assert yaml.safe_load(text) == env
    assert env["channels"] == ["conda-forge"]
    conda = {}
    pip: list[str] = []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip = dep["pip"]
            continue
        name, _, bound = re.match(r"([A-Za-z0-9_.\-]+)(>=([\w.]+))?$", dep).groups()  # type: ignore[union-attr]
        conda[_canonical(name)] = bound
    assert "pip" in conda
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert conda["python"] == project["requires-python"].removeprefix(">=")
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *extras["sidecar"],
              *(d for d in extras["demo"] if not d.startswith("tailboard"))]
    for requirement in wanted:
        name, _, bound = re.match(r"([A-Za-z0-9_.\-\[\]]+)(>=([\w.]+))?", requirement).groups()  # type: ignore[union-attr]
        conda_name = _canonical(CONDA_NAMES.get(name, name))
        assert conda_name in conda, f"{requirement} (pyproject.toml) is not in environment.yml"
        assert conda[conda_name] == bound, f"{requirement} (pyproject.toml) vs {conda_name}>={conda[conda_name]}"
    assert pip == ["-e .[sidecar]"]
