"""A report file's text: viewer/report.html with the style sheets, the data and the script inline.

Its Content-Security-Policy allows no request at all (``default-src 'none'``; the one script and the
style sheets run by their SHA-256 hashes, images from ``data:``/``blob:`` only). The data goes in a
``<script type="application/json">`` with ``<``, ``>`` and ``&`` escaped as ``\\u003c``..., so no
name from the logs can end the element or open a comment; report.js builds the page from it with
dom.js, names as text nodes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
from tailboard import __version__

from .bundle import VIEWER, bundle

__all__ = ["render", "write"]


def _json_in_html(data: dict[str, Any]) -> str:
    """``data`` as JSON that cannot end its script element nor open a comment in it: ``<``, ``>``
    and ``&`` only occur inside JSON strings, where their \\u escapes mean the same."""
    text = orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def render(data: dict[str, Any], *, folder: Any = VIEWER) -> str:
    """The report file's text: report.html with the style, the data and the script inline."""
    shell = (folder / "report.html").read_text(encoding="utf-8")
    slots = {
        "version": __version__,
        "style": (folder / "style.css").read_text(encoding="utf-8"),
        "data": _json_in_html(data),
        "script": bundle(folder=folder),
    }
    if "</style" in slots["style"].lower():
        raise ValueError("style.css holds '</style', which would end the report's style element")
    styles = [slots["style"]] + [s for s in re.findall(r"<style>(.*?)</style>", shell, re.DOTALL) if s != "{{style}}"]
    slots["csp"] = ("default-src 'none'; script-src " + _sha256(slots["script"]) + "; style-src "
                    + " ".join(_sha256(s) for s in styles) + "; img-src data: blob:; base-uri 'none'; form-action 'none'")
    # one pass: text put in a slot is never searched for slots
    return re.sub(r"\{\{(\w+)\}\}", lambda m: slots[m[1]], shell)


def write(path: Path, text: str) -> None:
    """``text`` to ``path`` whole: written beside it, then renamed over it."""
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(scratch, 0o644)
        os.replace(scratch, path)
    except BaseException:
        os.unlink(scratch)
        raise
