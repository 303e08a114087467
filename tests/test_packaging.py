"""The built wheel holds the three packages and the viewer's files, the writer needs nothing else, and
the wheel installs into a fresh venv whose `tailboard` command runs with the base package alone."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(out), str(ROOT)], check=True, timeout=300)
    return next(out.glob("tailboard-*.whl"))


def test_wheel_contents_and_a_bare_writer_import(tmp_path: Path, wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for must in ("tailboard/__init__.py", "tailboard/format.py", "tailboard/run.py", "tailboard/py.typed",
                 "tailboard/sidecar/app.py", "tailboard/sidecar/cli.py", "tailboard/viewer/index.html",
                 "tailboard/viewer/app.js", "tailboard/viewer/style.css"):
        assert must in names, must
    # every package of the source tree is in the wheel (a new one missing from pyproject's list would
    # install a sidecar that fails at import)
    for folder, prefix in (("writer", "tailboard"), ("sidecar", "tailboard/sidecar")):
        for init in (ROOT / folder).rglob("__init__.py"):
            name = f"{prefix}/{init.relative_to(ROOT / folder).as_posix()}"
            assert name in names, f"{name} (add its package to pyproject.toml)"
    # and every file of the viewer (the page's modules, the report's page)
    for f in (ROOT / "viewer").iterdir():
        if f.is_file() and f.suffix in (".js", ".html", ".css"):
            assert f"tailboard/viewer/{f.name}" in names, f"tailboard/viewer/{f.name} (add it to the package data)"
    assert not any("/tests/" in n for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    assert "License-Expression: Apache-2.0" in text.splitlines()  # an SPDX expression (PEP 639)
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    assert all("extra ==" in line for line in requires), requires  # no runtime dependency without an extra
    # the writer from the wheel alone, with site-packages out of the way
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = "import sys, tailboard; print(tailboard.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(unpacked)!r}); {code}"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert str(unpacked) in out.stdout


def test_the_wheel_installs_into_a_fresh_venv_and_its_command_runs(tmp_path: Path, wheel: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    # as the README says it, extra included (--no-deps: the base package alone, which needs nothing)
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                    "--no-index", f"{wheel}[sidecar]"], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    helped = subprocess.run([str(venv / "bin" / "tailboard"), "--help"], capture_output=True, text=True,
                            timeout=60, env=env, cwd=tmp_path, check=False)
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout and "replay" in helped.stdout
    where = subprocess.run([str(python), "-c", "import tailboard; print(tailboard.__file__)"],
                           capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=True)
    assert where.stdout.startswith(str(venv))  # the venv's copy, not the checkout's
    # without the sidecar extra, `serve` says which extra in one line rather than a traceback
    (tmp_path / "runs").mkdir()
    served = subprocess.run([str(venv / "bin" / "tailboard"), "serve", "runs"], capture_output=True,
                            text=True, timeout=60, env=env, cwd=tmp_path, check=False)
    assert served.returncode == 1
    assert len(served.stderr.splitlines()) == 1 and "sidecar extra" in served.stderr, served.stderr
