"""The built wheel holds the three packages and the viewer's files, and the writer needs nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contents_and_a_bare_writer_import(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, timeout=300)
    wheel = next(tmp_path.glob("tailboard-*.whl"))
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
    assert not any("/tests/" in n for n in names)
    meta = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    requires = [l for l in text.splitlines() if l.startswith("Requires-Dist:")]
    assert all("extra ==" in l for l in requires), requires  # no runtime dependency without an extra
    # the writer from the wheel alone, with site-packages out of the way
    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = "import sys, tailboard; print(tailboard.__file__)"
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.insert(0, {str(unpacked)!r}); {code}"],
                         capture_output=True, text=True, timeout=60, check=True)
    assert str(unpacked) in out.stdout
