"""Which files under the log root are logs, and which reader reads each.

A file is looked at in two steps. By name first, for free: ``--exclude`` globs drop it, ``--include``
globs keep it (and may name its reader: ``'*.out=text'``), hidden files, the suffixes of things
that are never metric logs (weights, images, archives, code, configs) and rotated copies (``x.jsonl.1``:
the tail already follows a stream across its rotation) are passed over without being opened. Then by
content: its first ``HEAD_BYTES`` are read and every reader says how sure it is (``Reader.claims``);
the surest one reads the file. When none is sure and the file is longer, its last ``HEAD_BYTES``
(from a line start) are judged the same way: a script's stdout may open with pages of warnings before
its first metric line. A file no reader claims is "unrecognised" and reported (count and a few
examples, at start and in ``/api/runs``); it may still become a log (an empty ``metrics.csv`` just
created, a text log reaching its first metric line), so it is looked at again when it changes.

Globs are ``fnmatch`` patterns matched against the path relative to the root (``runs/*/log.txt``) and,
for a pattern without ``/``, against the file name (``*.log``).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..tail import open_regular
from .base import Reader
from .csvlog import CsvReader
from .jsondoc import JsonDocReader
from .jsonl import JsonlReader
from .textlog import TextReader
from .tfevents import FILE_PREFIX as TFEVENTS_PREFIX
from .tfevents import TfEventsReader

__all__ = ["HEAD_BYTES", "Choice", "Registry", "Rule", "parse_rule"]

#: Bytes of a file's head the readers judge it by.
HEAD_BYTES = 4096
#: Least certainty for a reader to take a file.
MIN_CLAIM = 0.25
#: Examples of unrecognised files kept for the report.
EXAMPLES = 8

#: Suffixes of files that are never metric logs: not opened, not reported.
NOT_LOGS = frozenset(
    ".pt .pth .ckpt .safetensors .bin .pkl .pickle .npy .npz .h5 .hdf5 .onnx .tflite .pb .msgpack "
    ".png .jpg .jpeg .gif .bmp .webp .svg .tif .tiff .mp4 .wav .mp3 .flac "
    ".zip .gz .tgz .bz2 .xz .zst .tar .7z "
    ".py .pyc .pyi .sh .ipynb .c .h .cc .cpp .cu .js .mjs .css .html "
    ".yaml .yml .toml .ini .cfg .conf .lock .md .rst .pdf "
    ".parquet .arrow .feather .db .sqlite .lmdb .mdb .idx .pid .swp .tmp .part".split()
)


@dataclass(frozen=True)
class Rule:
    """An ``--include`` / ``--exclude`` glob, and for an include the reader it names, if any."""

    glob: str
    reader: str | None = None

    def matches(self, rel: str) -> bool:
        if "/" not in self.glob and fnmatch.fnmatchcase(rel.rpartition("/")[2], self.glob):
            return True
        return fnmatch.fnmatchcase(rel, self.glob)


def parse_rule(text: str, readers: Iterable[str]) -> Rule:
    """``GLOB`` or ``GLOB=READER`` (``--include``); a ValueError names the readers when it is unknown."""
    glob, sep, name = text.rpartition("=") if "=" in text else (text, "", "")
    if not sep:
        return Rule(text)
    known = list(readers)
    if name not in known:
        raise ValueError(f"--include {text!r}: no reader {name!r} (readers: {', '.join(known)})")
    if not glob:
        raise ValueError(f"--include {text!r}: no glob before '='")
    return Rule(glob, name)


@dataclass(frozen=True)
class Choice:
    """What a look at a file decided: the reader (None: not a log, as far as can be told now)."""

    reader: str | None


class Registry:
    """The readers, and the rules choosing among them (see the module docstring)."""

    def __init__(
        self,
        readers: Sequence[Reader] | None = None,
        *,
        include: Sequence[Rule] = (),
        exclude: Sequence[Rule] = (),
        text_pattern: str | None = None,
    ) -> None:
        if readers is None:
            readers = [JsonlReader(), TfEventsReader(), CsvReader(), JsonDocReader(), TextReader(text_pattern)]
        self.readers: dict[str, Reader] = {r.name: r for r in readers}
        for rule in include:
            if rule.reader is not None and rule.reader not in self.readers:
                raise ValueError(f"--include {rule.glob}={rule.reader}: no such reader")
        self.include = tuple(include)
        self.exclude = tuple(exclude)

    def __getitem__(self, name: str) -> Reader:
        return self.readers[name]

    def candidate(self, rel: str) -> bool:
        """Whether the file at ``rel`` (relative to the root, ``/`` separators) may be a log, by its
        name alone; False means it is never opened."""
        if any(rule.matches(rel) for rule in self.exclude):
            return False
        if any(rule.matches(rel) for rule in self.include):
            return True
        name = rel.rpartition("/")[2]
        if name.startswith("."):
            return False
        suffix = os.path.splitext(name)[1].lower()
        if suffix[1:].isdigit() and not name.startswith(TFEVENTS_PREFIX):
            return False  # a rotated copy (logrotate's x.log.1); event files end in a number too
        return suffix not in NOT_LOGS

    def choose(self, rel: str, head: bytes, tail: bytes = b"") -> Choice:
        """The reader for a file from its relative path and its first bytes (up to HEAD_BYTES), else
        from ``tail``: its last bytes, from a line start, when it is longer."""
        for rule in self.include:
            if rule.reader is not None and rule.matches(rel):
                return Choice(rule.reader)
        forced = any(rule.matches(rel) for rule in self.include)
        for sample in (head, tail) if tail else (head,):
            best, sure = None, 0.0
            for reader in self.readers.values():
                try:
                    claim = reader.claims(rel, sample)
                except Exception:  # a reader's guess must not stop discovery; it simply does not claim
                    claim = 0.0
                if claim > sure:
                    best, sure = reader.name, claim
            if best is not None and (sure >= MIN_CLAIM or forced):
                return Choice(best)
        return Choice(None)

    def look(self, path: str, rel: str) -> Choice:
        """Read a file's head (and its tail when it is longer) and choose; an unreadable file is
        no log for now (tried again when it changes)."""
        try:
            fd = open_regular(path)
        except OSError:
            return Choice(None)
        try:
            head = os.pread(fd, HEAD_BYTES, 0)
            tail = b""
            size = os.fstat(fd).st_size
            if size > HEAD_BYTES:
                tail = os.pread(fd, HEAD_BYTES, max(HEAD_BYTES, size - HEAD_BYTES))
                tail = tail[tail.find(b"\n") + 1 :]  # from a line start: nothing when it holds none
        except OSError:
            return Choice(None)
        finally:
            os.close(fd)
        return self.choose(rel, head, tail)


class Unrecognised:
    """Files seen under the root that no reader claims: how many, and a few of them."""

    def __init__(self) -> None:
        self.paths: set[str] = set()

    def report(self) -> dict[str, object]:
        return {"count": len(self.paths), "examples": sorted(self.paths)[:EXAMPLES]}
