"""Find runs and their streams under the log root.

Every folder that holds log files, at any depth, is a run (as TensorBoard takes the folder holding
event files); its id is the folder's path relative to the root with ``/`` separators (``"."`` for the
root itself), and each log file in it is a stream named after the file. Which files may be logs is
the caller's to say (``candidate``, by relative path: ``readers.Registry.candidate``; by default the
writer's ``.jsonl`` files); what a candidate holds is looked at later, by the follower. Nothing outside the root is ever looked at: a symlink (to a
folder or to a file) is followed only when its target resolves inside the root, and each real
folder is walked once, so symlink loops end.

One layout is a run spread over folders: transformers' ``Trainer`` writes its whole history into
every checkpoint it saves (``out/checkpoint-500/trainer_state.json``) and, from ``save_state()``,
into the output folder itself. Those files are versions of one history: each is the stream
``trainer_state.json`` of the run ``out`` (``StreamRef.version`` orders them; the follower reads
the newest), so a checkpoint folder is no run of its own.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass

from tailboard.format import STREAM_SUFFIX

__all__ = ["HISTORY", "Listings", "StreamRef", "contained", "run_id_for", "scan"]

logger = logging.getLogger(__name__)

SUFFIX = STREAM_SUFFIX  # which files are logs: the format says
#: The history the Trainer writes into each checkpoint folder (see the module docstring).
HISTORY = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")


@dataclass(frozen=True)
class StreamRef:
    """One candidate log file found under the root."""

    run_id: str
    stream: str
    path: str  # as reached from the root (not resolved), absolute
    folder: str  # the run folder, absolute
    # a version of the run's history saved in a checkpoint folder: the checkpoint's number
    version: int | None = None


def stream_ref(root: str, folder: str, name: str) -> StreamRef:
    """The stream of the file ``name`` in ``folder``: of the folder's run, or for a checkpoint's
    history, of the run above it."""
    path = os.path.join(folder, name)
    match = _CHECKPOINT.fullmatch(os.path.basename(folder)) if name == HISTORY else None
    if match is not None and folder != root:
        parent = os.path.dirname(folder)
        return StreamRef(run_id_for(root, parent), name, path, parent, int(match[1]))
    return StreamRef(run_id_for(root, folder), name, path, folder)


def contained(real: str, real_root: str) -> bool:
    """True when the resolved path ``real`` is ``real_root`` or inside it."""
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def is_stream(rel: str) -> bool:
    """The default candidate rule: the writer's own files."""
    return rel.endswith(SUFFIX)


def run_id_for(root: str, folder: str) -> str:
    rel = os.path.relpath(folder, root)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


class Listings:
    """What :func:`scan` found in each folder, so that the next scan lists only what changed.

    Adding, removing or renaming an entry changes a folder's mtime: a folder whose device, inode
    and mtime are what they were when it was listed is taken from here (one ``stat`` instead of
    a listing, about 7 times cheaper). Never kept: a folder whose mtime was less than
    ``RACY_SECONDS`` old when it was listed (a change within the same clock tick would not show,
    as git's "racily clean" entries), and a folder holding symlinks (where they lead can change
    while the folder does not).
    """

    RACY_SECONDS = 2.0

    def __init__(self) -> None:
        # folder -> ((dev, ino, mtime_ns), subfolders, streams)
        self._kept: dict[str, tuple[tuple[int, int, int], list[str], list[StreamRef]]] = {}

    def __len__(self) -> int:
        return len(self._kept)

    def get(self, folder: str, sig: tuple[int, int, int]) -> tuple[list[str], list[StreamRef]] | None:
        kept = self._kept.get(folder)
        return (kept[1], kept[2]) if kept is not None and kept[0] == sig else None

    def keep(self, folder: str, sig: tuple[int, int, int], subfolders: list[str],
             streams: list[StreamRef]) -> None:
        if time.time() - sig[2] / 1e9 > self.RACY_SECONDS:
            self._kept[folder] = (sig, subfolders, streams)
        else:
            self._kept.pop(folder, None)

    def only(self, folders: Iterable[str]) -> None:
        """Forget every folder but these (the ones a whole scan walked)."""
        walked = set(folders)
        self._kept = {k: v for k, v in self._kept.items() if k in walked}


def scan(
    root: str,
    folders: list[str] | None = None,
    *,
    under: Iterable[str] | None = None,
    known: Container[str] = (),
    listings: Listings | None = None,
    candidate: Callable[[str], bool] = is_stream,
) -> dict[str, StreamRef]:
    """Every stream under ``root``, keyed by its path. A missing root gives an empty result.

    ``folders``, when given, receives every folder walked (a poller can stat them to notice new
    entries).

    ``under`` limits the walk to these folders (paths inside ``root``, as reached from it), and to
    those of their subfolders that are not in ``known``: a folder that changed is listed again
    without walking the whole tree, while a folder seen before has its own hints. Run ids stay
    relative to ``root``.

    ``listings`` remembers each folder's entries between scans, and lists again only the folders
    that changed (see :class:`Listings`).
    """
    root = os.path.abspath(root)
    real_root = os.path.realpath(root)
    found: dict[str, StreamRef] = {}
    seen_dirs: set[tuple[int, int]] = set()
    warned: set[str] = set()
    walked = folders if folders is not None else []
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
            sig = (st.st_dev, st.st_ino, st.st_mtime_ns)
            kept = listings.get(folder, sig) if listings is not None else None
            if kept is None:
                subfolders, names, linked = _list(folder, real_root, warned)
                run_id = run_id_for(root, folder)
                prefix = "" if run_id == "." else run_id + "/"
                names = [n for n in names if candidate(prefix + n)]
                streams = [stream_ref(root, folder, n) for n in names]
                if listings is not None and not linked:
                    listings.keep(folder, sig, subfolders, streams)
            else:
                subfolders, streams = kept
        except OSError:
            continue  # vanished or unreadable while walking: the next sweep will tell
        walked.append(folder)
        stack.extend([p for p in subfolders if p not in known] if known else subfolders)
        for ref in streams:
            found[ref.path] = ref
    if listings is not None and under is None:
        listings.only(walked)
    return found


def _list(folder: str, real_root: str, warned: set[str]) -> tuple[list[str], list[str], bool]:
    """A folder's subfolders (paths) and files (names, in their order: a run's files are caught up
    in it, event files by the start time in their names as TensorBoard reads them), and whether it
    holds symlinks."""
    subfolders: list[str] = []
    streams: list[str] = []
    linked = False
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                if entry.is_symlink():
                    linked = True
                    real = os.path.realpath(entry.path)
                    if not contained(real, real_root):
                        if entry.path not in warned:
                            warned.add(entry.path)
                            logger.debug("skipping %s: it points outside the log root", entry.path)
                        continue
                if entry.is_dir():
                    subfolders.append(entry.path)
                elif entry.is_file():
                    streams.append(entry.name)
            except OSError:
                continue
    return subfolders, sorted(streams), linked
