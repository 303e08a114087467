"""FileTail: follow one log file by identity, handing out complete records only.

A tail owns one open file descriptor and a byte offset that only ever advances to the end of a
complete record (or past bytes it deliberately skips). Records are lines unless the file's reader
says otherwise (its ``Framing``: a binary record format, a whole JSON document, a CSV record with
quoted newlines). Each call to :meth:`FileTail.read` re-checks the file
and yields what changed, as plain events:

- :class:`Opened` - the file's key is known (its head holds a full first line or 256 bytes); the
  stream now continues in this file from offset 0. Also sent after a rotation.
- :class:`Chunk` - bytes ``[start, end)`` of the file, complete lines only. A tail whose ``defer``
  is set (records that are not lines; the parallel catch-up) hands out every byte it read instead,
  and the consumer, which frames them itself, sends back how many of them were complete records
  (``events.send(n)`` as it asks for the next event): the rest is held as usual.
- :class:`Skipped` - something was stepped over (an over-long line, a run of NUL bytes), or
  ``"not_regular"``: the path names a FIFO, a device, a socket or a folder, which is never read.
  That is told once (and logged once) until a regular file is back at the path; meanwhile the path
  is treated as if its file were deleted. A symlink leaving the log root is likewise logged once.
- :class:`Reset` - the data seen so far is void (the file was truncated or deleted and
  re-created); the stream restarts at offset 0 of the file with the given key.

A file read as a whole document (``Framing.whole``) is rewritten, not appended to: once a document
was handed out, any change of the file's size or modification time is a ``Reset("rewritten")`` and the
new version is read from offset 0 (the reader keeps what it had and takes only what is new).

Identity is ``(st_dev, st_ino)`` plus a signature of the head. Because the descriptor stays open,
the inode cannot be reused while it is followed, so a different ``(dev, ino)`` at the path means a
different file. Truncation is noticed when the file shrinks below what was read, or when the bytes
just before the read position no longer match (a copy-truncate followed by fresh writes).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Generator
from dataclasses import dataclass

from ..format import MAX_LINE_BYTES

__all__ = [
    "Chunk",
    "FileTail",
    "Framing",
    "NotRegularFile",
    "Opened",
    "Reset",
    "Skipped",
    "TailEvent",
    "head_signature",
    "open_regular",
    "split_lines",
]

logger = logging.getLogger(__name__)

#: Bytes of the head hashed into the signature (less if the first line is shorter).
HEAD_BYTES = 256
#: Bytes before the read position remembered to notice a rewrite (Fluent Bit uses 32 too).
GUARD_BYTES = 32
#: Default size of one read; large reads keep catch-up fast, memory stays bounded by it.
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class Framing:
    """Where a file's records end, when they are not lines (``lines=False``): ``complete(buf)``
    gives how many bytes at the start of ``buf`` are whole records; a pending record longer than
    ``max_record`` bytes is dropped (``record_too_large``); ``whole``: the file is one document
    rewritten in place (see the module docstring)."""

    complete: Callable[[bytes], int]
    lines: bool = False
    max_record: int = MAX_LINE_BYTES
    whole: bool = False


LINES = Framing(lambda buf: buf.rfind(b"\n") + 1, lines=True)


@dataclass(frozen=True)
class Opened:
    key: str


@dataclass(frozen=True)
class Chunk:
    data: bytes
    start: int
    end: int


@dataclass(frozen=True)
class Skipped:
    reason: str
    count: int = 1


@dataclass(frozen=True)
class Reset:
    reason: str
    key: str


TailEvent = Opened | Chunk | Skipped | Reset

#: What ``FileTail.read`` yields; a consumer of a deferring tail sends back what a chunk held.
Events = Generator[TailEvent, int | None, None]


class NotRegularFile(OSError):
    """The path names a FIFO, a device, a socket or a folder: never read as a log."""


def open_regular(path: str) -> int:
    """A read-only descriptor of the regular file at ``path``.

    Anything but a regular file (a FIFO, ``/dev/zero``, a socket, a folder) raises
    :class:`NotRegularFile` and is never read. A ``stat`` first means a device node is not even
    opened (opening some has effects: a tape rewinds, a terminal becomes the controlling one); the
    open itself uses ``O_NONBLOCK``, so a FIFO swapped in after the stat cannot block it, and the
    ``fstat`` of the descriptor is what decides. Every open of a log file goes through here.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise NotRegularFile(errno.EINVAL, "not a regular file", path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, "not a regular file", path)
    return fd


def head_signature(head: bytes, framing: Framing = LINES) -> str | None:
    """Signature of a file's head, or None while the head is not settled yet.

    The head is the first line (with its newline) cut at HEAD_BYTES; until the file holds a newline
    or HEAD_BYTES bytes it may still grow, so no signature is given. For records that are not lines
    it is the first HEAD_BYTES bytes (written once: the file is appended to, or rewritten whole, which
    the tail tells apart by other means), or the complete records of a shorter file. A first record
    longer than any read (a JSON document of many megabytes) must not keep the file unread.
    """
    if not framing.lines:
        if len(head) >= HEAD_BYTES:
            return hashlib.blake2b(head[:HEAD_BYTES], digest_size=8).hexdigest()
        done = framing.complete(head)
        return hashlib.blake2b(head[:done], digest_size=8).hexdigest() if done else None
    nl = head.find(b"\n", 0, HEAD_BYTES)
    if nl >= 0:
        head = head[: nl + 1]
    elif len(head) < HEAD_BYTES:
        return None
    else:
        head = head[:HEAD_BYTES]
    return hashlib.blake2b(head, digest_size=8).hexdigest()


def split_lines(buf: bytes, max_line: int) -> tuple[list[tuple[str, int, int]], int, bool]:
    """Cut ``buf`` (which starts at a line start) into pieces.

    Returns ``(pieces, consumed, overlong)``: ``pieces`` are ``(kind, a, b)`` with kind ``"data"``
    (complete lines), ``"line_too_long"`` (one line longer than ``max_line`` bytes, newline
    included) or ``"nul_bytes"`` (a run of NULs where a line should start, as a copy-truncate
    with a writer still at its old offset leaves). ``buf[consumed:]`` is an incomplete trailing
    line; ``overlong`` says it is already longer than ``max_line``.
    """
    pieces: list[tuple[str, int, int]] = []
    n = len(buf)
    data_from = 0  # start of the pending run of good lines
    p = 0  # a line start
    has_nul = b"\0" in buf
    while p < n:
        if has_nul and buf[p] == 0:
            q = p
            while q < n and buf[q] == 0:
                q += 1
            if data_from < p:
                pieces.append(("data", data_from, p))
            pieces.append(("nul_bytes", p, q))
            p = data_from = q
            continue
        # Jump by up to max_line bytes at a time: when lines are short the last newline in the
        # window is close to its end, so this costs about n / max_line searches, not one per line.
        window_end = min(p + max_line, n)
        r = buf.rfind(b"\n", p, window_end)
        if r < 0:
            if window_end == n:
                break  # an incomplete last line, not over the limit yet
            # No newline within max_line bytes of a line start: an over-long line.
            if data_from < p:
                pieces.append(("data", data_from, p))
            nl = buf.find(b"\n", window_end)
            if nl < 0:
                return pieces, p, True
            pieces.append(("line_too_long", p, nl + 1))
            p = data_from = nl + 1
            continue
        if has_nul:
            # A NUL run may start right after any newline inside the window: stop at the first.
            z = buf.find(b"\n\0", p, r + 1)
            if z >= 0:
                p = z + 1
                continue
        p = r + 1
    if data_from < p:
        pieces.append(("data", data_from, p))
    return pieces, p, False


class FileTail:
    """Follow the file at ``path``; see the module docstring for the events it yields."""

    def __init__(
        self,
        path: str,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        read_bytes: int = READ_BYTES,
        root: str | None = None,
        framing: Framing = LINES,
    ) -> None:
        if max_line_bytes < 2:
            raise ValueError(f"max_line_bytes must be at least 2, got {max_line_bytes}")
        if read_bytes < 1:
            raise ValueError(f"read_bytes must be positive, got {read_bytes}")
        self.path = path
        self.max_line_bytes = max_line_bytes
        self.read_bytes = read_bytes
        self.framing = framing
        self._stamp: tuple[int, int] | None = None  # (size, mtime_ns) when a whole document was read
        self._root = os.path.realpath(root) if root is not None else None
        self._fd: int | None = None
        self.dev = 0
        self.ino = 0
        self.key: str | None = None  # last key told to the consumer
        self.offset = 0  # everything before it is consumed; a line starts here
        self._partial = b""  # bytes from offset on, read but not yet a complete line
        self._guard = b""  # up to GUARD_BYTES before offset + len(partial), as read
        self._skipping = False  # inside an over-long line, discarding up to its newline
        self._signature: str | None = None
        self._lost: str | None = None  # why the previous file ended: "rotated" / "replaced"
        self._parked = False  # descriptor closed while idle, place kept
        self._refused: str | None = None  # why the path is not read now (told once)
        self._untold: Skipped | None = None  # a refusal not yet handed to the consumer
        #: records that are not lines: hand out all bytes read, the consumer says what it took
        self.defer = False
        self._starved = False  # deferring, the last hand-out held no whole record

    # -- state ------------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    @property
    def identity(self) -> tuple[int, int] | None:
        return (self.dev, self.ino) if self._fd is not None or self._parked else None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def park(self, *, unread: bool = False) -> None:
        """Close the descriptor of an idle file but keep its place; :meth:`read` re-opens it.

        Followers of weeks of logs would otherwise hold a descriptor per file. On re-opening, the
        same ``(dev, ino)`` resumes (the truncation check still applies). When another file is at
        the path, the parked one is looked for in its folder: found under another name, it was
        rotated, and it is read to its end before the new file; gone, it was deleted, and the
        stream is reset and starts over with the new file.

        A file that never held a complete line is kept open unless ``unread`` is set: nothing of
        it was handed out, so it re-opens from offset 0, of the same inode or of whatever file is
        at the path by then (which simply continues the stream, as after a rotation).
        """
        if self._fd is not None and (self._signature is not None or unread):
            self.close()
            self._parked = True

    @property
    def parked(self) -> bool:
        return self._parked

    def _file_key(self) -> str:
        return f"{self.dev}:{self.ino}:{self._signature or ''}"

    def _contained(self) -> bool:
        if self._root is None:
            return True
        real = os.path.realpath(self.path)
        return real == self._root or real.startswith(self._root + os.sep)

    def _refuse(self, reason: str, why: str, *, tell: bool = True) -> None:
        """Log once (and with ``tell``, hand out a Skipped event once) that the path is not read."""
        if self._refused != reason:
            self._refused = reason
            if tell:
                self._untold = Skipped(reason)
            logger.warning("not following %s: %s", self.path, why)

    def _open(self) -> bool:
        if not self._contained():
            self._refuse("outside_root", "it resolves outside the log root", tell=False)
            return False
        try:
            fd = open_regular(self.path)
        except NotRegularFile:
            # As if the file were deleted: whatever regular file comes back later is followed.
            self._refuse("not_regular", "not a regular file (a FIFO, a device, a socket or a folder)")
            return False
        except OSError as exc:
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR, errno.EACCES, errno.ELOOP):
                raise
            return False
        self._refused = None
        st = os.fstat(fd)
        if self._parked:
            self._parked = False
            if (st.st_dev, st.st_ino) == (self.dev, self.ino):
                self._fd = fd  # resume at the saved offset
                return True
            old = self._find_renamed()
            if old is not None:
                # Rotated while parked: finish the old file under its new name first (what was
                # appended to it after we parked is still to read); read() then moves on.
                os.close(fd)
                self._fd = old
                return True
            if self._signature is not None:
                self._lost = "replaced"  # gone from the folder: deleted, the new file starts over
        self._fd, self.dev, self.ino = fd, st.st_dev, st.st_ino
        self._restart()
        return True

    def _find_renamed(self) -> int | None:
        """A descriptor of the parked file if it is still in its folder under another name."""
        folder = os.path.dirname(self.path) or "."
        try:
            with os.scandir(folder) as entries:
                for e in entries:
                    if e.inode() != self.ino:
                        continue
                    try:
                        st = e.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if st.st_dev != self.dev or not e.is_file(follow_symlinks=False):
                        continue
                    try:
                        fd = open_regular(e.path)
                    except OSError:
                        continue  # gone or replaced since the listing
                    st = os.fstat(fd)
                    if (st.st_dev, st.st_ino) == (self.dev, self.ino):
                        return fd
                    os.close(fd)
        except OSError:
            return None
        return None

    def _restart(self) -> None:
        self.offset = 0
        self._partial = b""
        self._guard = b""
        self._skipping = False
        self._signature = None
        self._stamp = None

    # -- reading ----------------------------------------------------------------------------

    def read(self) -> Events:
        """Yield everything new since the last call. Never raises for what the file contains."""
        if self._fd is None:
            opened = self._open()
            if self._untold is not None:
                yield self._untold
                self._untold = None
            if not opened:
                return
            if self._lost == "replaced":
                # A new file under the same name: the old one's data is void.
                yield Reset("replaced", self._file_key())
                self.key = self._file_key()
            self._lost = None
        yield from self._drain()
        # The path may now name another file (rotation or delete + re-create): we have just read
        # the old descriptor to its end, so move on.
        try:
            st = os.stat(self.path)
            moved = (st.st_dev, st.st_ino) != (self.dev, self.ino)
        except OSError:
            st, moved = None, True
        if not moved:
            return
        assert self._fd is not None
        if self._signature is None:
            # It never held a complete line, so nothing of it was handed out: whatever came
            # next simply continues the stream.
            self._lost = "rotated"
        else:
            self._lost = "replaced" if os.fstat(self._fd).st_nlink == 0 else "rotated"
        logger.info("%s: file %s (%d bytes read)", self.path, self._lost, self.offset)
        self.close()
        if st is not None:
            yield from self.read()

    def _drain(self) -> Events:
        fd = self._fd
        assert fd is not None
        if self._truncated(fd):
            yield from self._truncation(fd)
        while True:
            if self._signature is None:
                self._signature = self._head(fd)
                if self._signature is None:
                    return  # the head is still growing; nothing complete to hand out
            if self.key != self._file_key():
                self.key = self._file_key()
                yield Opened(self.key)
            pos = self.offset + len(self._partial)
            new = os.pread(fd, self.read_bytes, pos)
            if not new:
                return
            if pos and os.pread(fd, len(self._guard), pos - len(self._guard)) != self._guard:
                # Truncated and rewritten between the check above and this read: what was just
                # read is new content at a wrong offset. Start over.
                yield from self._truncation(fd)
                continue
            self._remember(new)
            if self._skipping:
                nl = new.find(b"\n")
                if nl < 0:
                    self.offset += len(new)
                    continue
                self.offset += nl + 1
                self._skipping = False
                yield Skipped("line_too_long")
                new = new[nl + 1 :]
            buf = self._partial + new if self._partial else new
            if not self.framing.lines:
                yield from self._records(buf)
                if len(new) < self.read_bytes:
                    if self.framing.whole and not self._partial:
                        self._stamp = _stamp(os.fstat(fd))
                    return
                continue
            pieces, consumed, overlong = split_lines(buf, self.max_line_bytes)
            base = self.offset
            for kind, a, b in pieces:
                if kind == "data":
                    yield Chunk(buf[a:b], base + a, base + b)
                else:
                    yield Skipped(kind)
            if overlong:
                # Drop the over-long line's bytes now and keep dropping up to its newline:
                # memory stays bounded whatever its length.
                self.offset = base + len(buf)
                self._partial = b""
                self._skipping = True
            else:
                self.offset = base + consumed
                self._partial = buf[consumed:]
            if len(new) < self.read_bytes:
                return

    def _records(self, buf: bytes) -> Events:
        """Hand out the complete records at the start of ``buf`` (records that are not lines)."""
        framing = self.framing
        if self.defer and not self._starved:
            taken = yield Chunk(buf, self.offset, self.offset + len(buf))
            done = len(buf) if taken is None else min(max(taken, 0), len(buf))
            # nothing whole yet (a record longer than a read): frame here until one is, rather than
            # hand the consumer the same growing bytes after every read
            self._starved = done == 0
        else:
            done = framing.complete(buf)
            if done:
                self._starved = False
                yield Chunk(buf[:done], self.offset, self.offset + done)
        rest = len(buf) - done
        if rest > framing.max_record:
            # a record that never ends within the bound: drop what is held (the reader finds the
            # next record start itself); memory stays bounded whatever the file holds
            yield Skipped("record_too_large")
            done = len(buf)
        self.offset += done
        self._partial = buf[done:]

    def _truncation(self, fd: int) -> Events:
        rewritten = self._stamp is not None
        logger.info("%s: %s at offset %d, reading from the start", self.path,
                    "rewritten" if rewritten else "truncated", self.offset)
        self._restart()
        self._signature = self._head(fd)
        self.key = self._file_key()
        yield Reset("rewritten" if rewritten else "truncated", self.key)

    def _remember(self, new: bytes) -> None:
        if len(new) >= GUARD_BYTES:
            self._guard = new[-GUARD_BYTES:]
        else:
            self._guard = (self._guard + new)[-GUARD_BYTES:]

    def _truncated(self, fd: int) -> bool:
        seen = self.offset + len(self._partial)
        if seen == 0:
            return False
        info = os.fstat(fd)
        if self._stamp is not None:
            return _stamp(info) != self._stamp  # a whole document changed: a new version
        if info.st_size < seen:
            return True
        start = seen - len(self._guard)
        return os.pread(fd, len(self._guard), start) != self._guard

    def _head(self, fd: int) -> str | None:
        if self.framing.lines:
            return head_signature(os.pread(fd, HEAD_BYTES, 0))
        return head_signature(os.pread(fd, HEAD_BYTES, 0), self.framing)


def _stamp(info: os.stat_result) -> tuple[int, int]:
    return info.st_size, info.st_mtime_ns
