"""Find runs and their streams under the log root.

Every folder that holds ``*.jsonl`` files, at any depth, is a run; its id is the folder's path
relative to the root with ``/`` separators (``"."`` for the root itself), and each ``.jsonl`` file
in it is a stream named after the file. Nothing outside the root is ever looked at: a symlink (to a
folder or to a file) is followed only when its target resolves inside the root, and each real
folder is walked once, so symlink loops end.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Container, Iterable
from dataclasses import dataclass

__all__ = ["StreamRef", "contained", "run_id_for", "scan"]

logger = logging.getLogger(__name__)

SUFFIX = ".jsonl"


@dataclass(frozen=True)
class StreamRef:
    """One ``.jsonl`` file found under the root."""

    run_id: str
    stream: str
    path: str  # as reached from the root (not resolved), absolute
    folder: str  # the run folder, absolute


def contained(real: str, real_root: str) -> bool:
    """True when the resolved path ``real`` is ``real_root`` or inside it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def run_id_for(root: str, folder: str) -> str:
    rel = os.path.relpath(folder, root)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


def scan(
    root: str,
    folders: list[str] | None = None,
    *,
    under: Iterable[str] | None = None,
    known: Container[str] = (),
) -> dict[str, StreamRef]:
    """Every stream under ``root``, keyed by its path. A missing root gives an empty result.

    ``folders``, when given, receives every folder walked (a poller can stat them to notice new
    entries).

    ``under`` limits the walk to these folders (paths inside ``root``, as reached from it), and to
    those of their subfolders that are not in ``known``: a folder that changed is listed again
    without walking the whole tree, while a folder seen before has its own hints. Run ids stay
    relative to ``root``.
    """
    root = os.path.abspath(root)
    real_root = os.path.realpath(root)
    found: dict[str, StreamRef] = {}
    seen_dirs: set[tuple[int, int]] = set()
    warned: set[str] = set()
    if under is None:
        stack = [root]
    else:
        inside = root.rstrip(os.sep) + os.sep
        stack = [p for p in under if (p == root or p.startswith(inside))
                 and contained(os.path.realpath(p), real_root)]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            ident = (st.st_dev, st.st_ino)
            if ident in seen_dirs:
                continue  # reached twice (a symlink loop or alias): walk it once
            seen_dirs.add(ident)
            entries = list(os.scandir(folder))
        except OSError:
            continue  # vanished or unreadable while walking: the next sweep will tell
        if folders is not None:
            folders.append(folder)
        run_id: str | None = None
        for entry in entries:
            try:
                if entry.is_symlink():
                    real = os.path.realpath(entry.path)
                    if not contained(real, real_root):
                        if entry.path not in warned:
                            warned.add(entry.path)
                            logger.debug("skipping %s: it points outside the log root", entry.path)
                        continue
                if entry.is_dir():
                    if entry.path not in known:
                        stack.append(entry.path)
                elif entry.name.endswith(SUFFIX) and entry.is_file():
                    if run_id is None:
                        run_id = run_id_for(root, folder)
                    found[entry.path] = StreamRef(run_id, entry.name, entry.path, folder)
            except OSError:
                continue
    return found
