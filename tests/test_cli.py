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
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

TIMEOUT = 60
OPEN = re.compile(r"^  open (\S+)$", re.MULTILINE)

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
                          env=environment(tmp_path, **env), cwd=tmp_path, check=False)


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
        # read through the same buffered files (communicate() would skip what they already hold);
        # the timer bounds the reads should the child not stop
        guard = threading.Timer(TIMEOUT, child.kill)
        guard.start()
        try:
            out, err = child.stdout.read(), child.stderr.read()  # type: ignore[union-attr]
        finally:
            guard.cancel()
        child.wait(timeout=TIMEOUT)
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
                        r"pip install -e '\.\[sidecar\]' in tailboard's checkout \(README: Install\)", lines[0])


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
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], check=False).returncode != 0:
        pytest.skip("needs unshare -rm (user and mount namespaces)")
    # /tmp and /var/tmp made read-only where they are (not hidden: the checkout and its venv may live
    # in /tmp)
    logs = Path(__file__).parent / "fixtures"
    ro = " && ".join(f"mount --bind {d} {d} && mount -o remount,bind,ro {d}" for d in ("/tmp", "/var/tmp"))
    script = f"{ro} && cd /tmp && exec {sys.executable} -m tailboard.sidecar serve {logs} --port 0"
    env = environment(tmp_path)
    env.pop("TMPDIR", None)
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=TIMEOUT, env=env, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("tailboard: no usable temporary directory (")
    assert "--tmpfs /tmp" in done.stderr and len(done.stderr.splitlines()) == 1


# -- the token --------------------------------------------------------------------------------


def answers_with(url: str, token: str) -> int:
    base = url.partition("/#")[0]
    request = urllib.request.Request(base + "/api/runs", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_a_token_file_keeps_the_token_out_of_ps(tmp_path: Path, logdir: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-the-file\n")
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--token-file", str(secret))
    assert token_of(opened(out)) == "from-the-file" and "warning" not in err, err
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", TAILBOARD_TOKEN_FILE=str(secret))
    assert token_of(opened(out)) == "from-the-file"
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--token", "on-the-line")
    assert token_of(opened(out)) == "on-the-line"
    assert "tailboard: warning: a --token on the command line is visible to every user" in err
    done = run(tmp_path, "serve", str(logdir), TAILBOARD_TOKEN_FILE=str(tmp_path / "missing"))
    assert done.returncode == 2
    assert done.stderr.startswith(f"tailboard: cannot read the token file {tmp_path / 'missing'} (uid ")


def test_serve_keeps_its_token_across_restarts(tmp_path: Path, logdir: Path) -> None:
    kept = tmp_path / "config" / "tailboard" / "token"
    first = opened(serve(tmp_path, "serve", str(logdir), "--port", "0")[0])
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert kept.read_text().strip() == token_of(first)
    out, _ = serve(tmp_path, "serve", str(logdir), "--port", "0")
    second = opened(out)
    assert token_of(second) == token_of(first)
    assert f"  token kept in {kept}" in out
    printed = run(tmp_path, "serve", "--print-url", "--port", "6123")
    assert printed.returncode == 0 and printed.stdout == f"http://127.0.0.1:6123/#token={token_of(first)}\n"
    fresh = opened(serve(tmp_path, "serve", str(logdir), "--port", "0", "--no-remember-token")[0])
    assert token_of(fresh) not in ("", token_of(first))
    assert kept.read_text().strip() == token_of(first)


def test_the_kept_token_is_accepted_by_the_restarted_server(tmp_path: Path, logdir: Path) -> None:
    serve(tmp_path, "serve", str(logdir), "--port", "0")
    token = (tmp_path / "config" / "tailboard" / "token").read_text().strip()
    child = subprocess.Popen([sys.executable, "-m", "tailboard.sidecar", "serve", str(logdir), "--port", "0",
                              "--gpu", "off"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=environment(tmp_path))
    try:
        assert child.stdout is not None
        url = next(line for line in child.stdout if line.startswith("  open ")).split()[1]
        assert answers_with(url, token) == 200 and answers_with(url, "wrong") == 401
    finally:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=TIMEOUT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_a_kept_token_others_can_read_or_an_unwritable_folder_is_said(tmp_path: Path, logdir: Path) -> None:
    assert run(tmp_path, "serve", "--print-url").stderr.startswith("tailboard: no token remembered in ")
    kept = tmp_path / "config" / "tailboard" / "token"
    kept.parent.mkdir(parents=True)
    kept.write_text("shared\n")
    kept.chmod(0o644)
    done = run(tmp_path, "serve", str(logdir), "--port", "0")
    assert done.returncode == 1
    assert done.stderr == f"tailboard: the kept token {kept} can be read by other users: chmod 600 {kept}, or remove it\n"
    (tmp_path / "plain").write_text("")
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", XDG_CONFIG_HOME=str(tmp_path / "plain"))
    assert token_of(opened(out))  # served with a token for this start only
    assert f"tailboard: warning: cannot keep the token in {tmp_path / 'plain' / 'tailboard' / 'token'}" in err


# -- containers and remote machines -----------------------------------------------------------


def markers(*paths: Path) -> str:
    """main, with the container marker files replaced by ``paths`` (this machine may be a container)."""
    return ("import sys, tailboard.sidecar.cli as cli\n"
            f"cli.CONTAINER_MARKERS = {tuple(str(p) for p in paths)!r}\n"
            "raise SystemExit(cli.main(sys.argv[1:]))\n")


def test_every_interface_warns_outside_a_container_and_prints_the_ssh_line(tmp_path: Path, logdir: Path) -> None:
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--host", "0.0.0.0", code=markers())
    port = opened(out).split(":")[2].partition("/")[0]
    assert "tailboard: warning: listening on 0.0.0.0, reachable from other hosts" in err
    assert f"  from another machine: ssh -L {port}:localhost:{port} {socket.gethostname()}, then open" in out
    out, _ = serve(tmp_path, "serve", str(logdir), "--port", "0", code=markers(), SSH_CONNECTION="10.0.0.1 5 10.0.0.2 22")
    assert "ssh -L" in out  # on loopback, over SSH: the tunnel is the way in
    out, _ = serve(tmp_path, "serve", str(logdir), "--port", "0", code=markers())
    assert "ssh -L" not in out


def test_a_container_with_a_token_binds_every_interface_quietly(tmp_path: Path, logdir: Path) -> None:
    marker = tmp_path / ".dockerenv"
    marker.write_text("")
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--host", "0.0.0.0", code=markers(marker))
    assert "warning" not in err and "ssh -L" not in out, err
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--host", "0.0.0.0", code=markers(),
                     KUBERNETES_SERVICE_HOST="10.96.0.1")
    assert "warning" not in err, err
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--host", "0.0.0.0", "--no-auth",
                     code=markers(marker))
    assert "listening on 0.0.0.0" in err  # no token: anyone who reaches the port reads the logs


def test_the_public_url_is_the_one_printed(tmp_path: Path, logdir: Path) -> None:
    (tmp_path / "t").write_text("tok")
    out, _ = serve(tmp_path, "serve", str(logdir), "--port", "0", "--host", "0.0.0.0", "--token-file",
                   str(tmp_path / "t"), "--public-url", "https://gpu-box.example:16007/tb/", code=markers())
    assert opened(out) == "https://gpu-box.example:16007/tb/#token=tok"
    assert "ssh -L" not in out
    done = run(tmp_path, "serve", str(logdir), "--public-url", "gpu-box:16007")
    assert done.returncode == 2 and "give http(s)://HOST[:PORT][/PREFIX]" in done.stderr


def test_proxy_headers_alone_trusts_a_proxy_on_this_host(tmp_path: Path, logdir: Path) -> None:
    """``--proxy-headers`` without ``--forwarded-allow-ips`` (nor uvicorn's variable) starts and
    serves, believing a proxy on loopback only (it stopped with a TypeError before serving)."""
    out, err = serve(tmp_path, "serve", str(logdir), "--port", "0", "--no-auth", "--proxy-headers")
    assert "  open http://127.0.0.1:" in out, err
    assert "Traceback" not in err, err
