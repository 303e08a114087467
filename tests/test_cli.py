"""The CLI as a user meets it: run as a real process, its one-line errors, exit codes and URLs."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TIMEOUT = 60
OPEN = re.compile(r"^  open (\S+)$", re.M)

# A child that cannot import the sidecar extra: a meta-path finder refuses its modules, then main runs.
WITHOUT_EXTRA = textwrap.dedent("""
    import importlib.abc, sys
    EXTRA = {"orjson", "starlette", "uvicorn", "watchfiles", "numpy", "prometheus_client"}
    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in EXTRA:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None
    sys.meta_path.insert(0, Refuse())
    from tailboard.sidecar.cli import main
    raise SystemExit(main(sys.argv[1:]))
""")


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAILBOARD_") and k not in ("SSH_CONNECTION", "KUBERNETES_SERVICE_HOST")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env.update(extra)
    return env


def run(tmp_path: Path, *args: str, code: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI to its end (errors, --help, --print-url)."""
    head = ["-c", code, *args] if code else ["-m", "tailboard.sidecar", *args]
    return subprocess.run([sys.executable, *head], capture_output=True, text=True, timeout=TIMEOUT,
                          env=environment(tmp_path, **env), cwd=tmp_path)


def serve(tmp_path: Path, *args: str, code: str | None = None, **env: str) -> tuple[str, str]:
    """Start the CLI serving, wait for its URL line, stop it with SIGINT: (stdout, stderr)."""
    head = ["-c", code, *args] if code else ["-m", "tailboard.sidecar", *args]
    child = subprocess.Popen([sys.executable, *head, "--gpu", "off"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=environment(tmp_path, **env), cwd=tmp_path)
    try:
        assert child.stdout is not None
        lines = []
        for line in child.stdout:  # ends at end-of-file when the child dies early
            lines.append(line)
            if line.startswith("  open "):
                break
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=TIMEOUT)
        return "".join(lines) + out, err
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def opened(out: str) -> str:
    found = OPEN.search(out)
    assert found, out
    return found.group(1)


def token_of(url: str) -> str:
    return url.partition("#token=")[2]


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


# -- errors -----------------------------------------------------------------------------------


def test_help_works_with_the_base_package_alone(tmp_path: Path) -> None:
    for args in (["--help"], ["serve", "--help"], ["replay", "--help"]):
        done = run(tmp_path, *args, code=WITHOUT_EXTRA)
        assert done.returncode == 0, done.stderr
        assert "exit codes:" in done.stdout and "2  usage" in done.stdout
        assert done.stderr == ""


def test_a_missing_extra_is_one_line_with_the_pip_command(tmp_path: Path, logdir: Path) -> None:
    done = run(tmp_path, "serve", str(logdir), "--port", "0", code=WITHOUT_EXTRA)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert re.fullmatch(r"tailboard: serve needs the sidecar extra \(\w+ is not installed\): "
                        r"pip install 'tailboard\[sidecar\]'", lines[0])


def test_a_taken_port_names_its_holder_and_another_port(tmp_path: Path, logdir: Path) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run(tmp_path, "serve", str(logdir), "--port", str(port))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    line = done.stderr.strip()
    assert line.startswith(f"tailboard: port {port} is in use by ")
    assert f"(pid {os.getpid()})" in line  # this test process holds it
    suggested = int(line.rpartition("--port ")[2])
    assert suggested == 0 or suggested > port


def test_a_file_instead_of_a_folder_says_so(tmp_path: Path) -> None:
    (tmp_path / "somefile.txt").write_text("loss 1\n")
    done = run(tmp_path, "serve", "somefile.txt")
    assert done.returncode == 2
    assert done.stderr == (f"tailboard: somefile.txt is a file, not a folder: give the folder that holds the "
                           f"runs (this one is in {tmp_path})\n")
    assert run(tmp_path, "serve", "missing").stderr == "tailboard: no such folder: missing\n"


def test_no_temporary_directory_says_how_to_give_one(tmp_path: Path) -> None:
    # A read-only root without /tmp, as a container started with --read-only and no tmpfs: every
    # place Python looks for a temporary directory is read-only (a mount namespace of our own).
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("needs unshare -rm (user and mount namespaces)")
    logs = Path(__file__).parent / "fixtures"  # outside /tmp, which is hidden below
    script = ("mount -t tmpfs -o ro tmpfs /tmp && mount -t tmpfs -o ro tmpfs /var/tmp && cd /tmp && "
              f"exec {sys.executable} -m tailboard.sidecar serve {logs} --port 0")
    env = environment(tmp_path)
    env.pop("TMPDIR", None)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("tailboard: no usable temporary directory (")
    assert "--tmpfs /tmp" in done.stderr and len(done.stderr.splitlines()) == 1
