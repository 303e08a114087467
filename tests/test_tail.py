"""FileTail on real files: what it hands out, byte for byte."""

from __future__ import annotations

import itertools
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
from tailboard.sidecar.tail import (
    Chunk,
    FileTail,
    NotRegularFile,
    Opened,
    Reset,
    Skipped,
    TailEvent,
    head_signature,
    open_regular,
    split_lines,
)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def read_all(tail: FileTail) -> list[TailEvent]:
    return list(tail.read())


def chunk_bytes(events: list[TailEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Chunk))


def test_complete_lines_only_and_partial_held(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n{"a":2')
    tail = FileTail(str(p))
    ev = read_all(tail)
    assert isinstance(ev[0], Opened)
    st = os.stat(p)
    assert ev[0].key.startswith(f"{st.st_dev}:{st.st_ino}:")
    assert ev[1:] == [Chunk(b'{"a":1}\n', 0, 8)]
    assert tail.offset == 8
    assert read_all(tail) == []  # nothing new
    append(p, b"2}\n")
    assert read_all(tail) == [Chunk(b'{"a":22}\n', 8, 17)]
    tail.close()


def test_split_reads_byte_by_byte(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    text = b"".join(b'{"i":%d}\n' % i for i in range(50))
    tail = FileTail(str(p), read_bytes=7)
    got: list[TailEvent] = []
    for i in range(len(text)):
        append(p, text[i : i + 1])
        got += read_all(tail)
    chunks = [e for e in got if isinstance(e, Chunk)]
    assert b"".join(c.data for c in chunks) == text
    assert all(c.data.endswith(b"\n") for c in chunks)
    # offsets are contiguous
    assert [c.start for c in chunks[1:]] == [c.end for c in chunks[:-1]]
    tail.close()


def test_no_events_until_head_settles(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"k":"hea')
    tail = FileTail(str(p))
    assert read_all(tail) == []
    append(p, b'der"}\n')
    ev = read_all(tail)
    assert [type(e) for e in ev] == [Opened, Chunk]
    tail.close()


def test_head_signature() -> None:
    assert head_signature(b"abc") is None
    assert head_signature(b"abc\nmore") == head_signature(b"abc\nother")
    assert head_signature(b"x" * 300) == head_signature(b"x" * 256 + b"y")


def test_truncation_by_shrink(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n{"a":2}\n')
    tail = FileTail(str(p))
    read_all(tail)
    with open(p, "r+b") as f:
        f.truncate(0)
    append(p, b'{"b":1}\n')
    ev = read_all(tail)
    assert isinstance(ev[0], Reset) and ev[0].reason == "truncated"
    assert chunk_bytes(ev) == b'{"b":1}\n'
    assert ev[-1] == Chunk(b'{"b":1}\n', 0, 8)
    tail.close()


def test_truncation_then_regrowth_is_seen_by_changed_bytes(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n')
    tail = FileTail(str(p))
    read_all(tail)
    with open(p, "r+b") as f:
        f.truncate(0)
    append(p, b'{"b":10}\n{"b":20}\n')  # already longer than the old offset
    ev = read_all(tail)
    assert [type(e) for e in ev][0] is Reset
    assert chunk_bytes(ev) == b'{"b":10}\n{"b":20}\n'
    tail.close()


def test_copytruncate_with_stale_writer_skips_nul_run(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    writer = open(p, "wb", buffering=0)  # no O_APPEND: keeps its own offset
    writer.write(b'{"a":1}\n{"a":2}\n')
    tail = FileTail(str(p))
    assert chunk_bytes(read_all(tail)) == b'{"a":1}\n{"a":2}\n'
    os.truncate(p, 0)  # copytruncate: the copy is elsewhere, the writer goes on at offset 16
    writer.write(b'{"a":3}\n')
    ev = read_all(tail)
    assert isinstance(ev[0], Reset)
    assert Skipped("nul_bytes") in ev
    assert chunk_bytes(ev) == b'{"a":3}\n'
    assert [e for e in ev if isinstance(e, Chunk)][0].start == 16
    writer.write(b'{"a":4}\n')
    assert read_all(tail) == [Chunk(b'{"a":4}\n', 24, 32)]
    writer.close()
    tail.close()


def test_rename_rotation_finishes_old_file_first(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n')
    tail = FileTail(str(p))
    read_all(tail)
    old = open(p, "ab", buffering=0)
    os.rename(p, tmp_path / "a.jsonl.1")
    old.write(b'{"a":2}\n')  # the writer has not reopened yet
    append(p, b'{"b":1}\n')  # the new file
    ev = read_all(tail)
    assert ev[0] == Chunk(b'{"a":2}\n', 8, 16)
    assert isinstance(ev[1], Opened) and ev[1].key != "" and tail.offset == 8
    assert ev[2] == Chunk(b'{"b":1}\n', 0, 8)
    assert not any(isinstance(e, Reset) for e in ev)
    old.close()
    tail.close()


def test_delete_and_recreate_resets(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n')
    tail = FileTail(str(p))
    read_all(tail)
    append(p, b'{"a":2}\n')
    os.unlink(p)
    ev = read_all(tail)  # the deleted file is read to its end through the descriptor
    assert ev == [Chunk(b'{"a":2}\n', 8, 16)]
    assert not tail.is_open
    assert read_all(tail) == []
    append(p, b'{"c":1}\n')
    ev = read_all(tail)
    assert isinstance(ev[0], Reset) and ev[0].reason == "replaced"
    assert chunk_bytes(ev) == b'{"c":1}\n'
    tail.close()


def test_long_line_skipped_and_counted(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    big = b'{"x":"' + b"y" * (5 << 20) + b'"}\n'
    append(p, b'{"a":1}\n' + big + b'{"a":2}\n')
    tail = FileTail(str(p), max_line_bytes=1 << 20, read_bytes=1 << 20)
    ev = read_all(tail)
    assert chunk_bytes(ev) == b'{"a":1}\n{"a":2}\n'
    assert [e for e in ev if isinstance(e, Skipped)] == [Skipped("line_too_long")]
    assert tail.offset == os.path.getsize(p)
    tail.close()


def test_long_line_written_slowly_is_skipped_once(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n')
    tail = FileTail(str(p), max_line_bytes=1000, read_bytes=300)
    read_all(tail)
    got: list[TailEvent] = []
    for _ in range(20):
        append(p, b"z" * 250)
        got += read_all(tail)
        assert tail._partial == b"" or len(tail._partial) <= 1000  # bounded memory
    append(p, b'\n{"a":2}\n')
    got += read_all(tail)
    assert [e for e in got if isinstance(e, Skipped)] == [Skipped("line_too_long")]
    assert chunk_bytes(got) == b'{"a":2}\n'
    tail.close()


def test_line_exactly_at_cap_is_kept(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    line = b"x" * 99 + b"\n"
    append(p, line + b"y" * 100 + b"\n")
    tail = FileTail(str(p), max_line_bytes=100)
    ev = read_all(tail)
    assert chunk_bytes(ev) == line
    assert Skipped("line_too_long") in ev
    tail.close()


def test_split_lines() -> None:
    assert split_lines(b"ab\ncd\nef", 10) == ([("data", 0, 6)], 6, False)
    assert split_lines(b"\0\0ab\n", 10) == ([("nul_bytes", 0, 2), ("data", 2, 5)], 5, False)
    assert split_lines(b"ab\n\0\0cd\n", 10) == (
        [("data", 0, 3), ("nul_bytes", 3, 5), ("data", 5, 8)], 8, False)
    # a NUL inside a line is left for the parser to count
    assert split_lines(b"a\0b\n", 10) == ([("data", 0, 4)], 4, False)
    assert split_lines(b"ab\n" + b"x" * 20 + b"\ncd\n", 10) == (
        [("data", 0, 3), ("line_too_long", 3, 24), ("data", 24, 27)], 27, False)
    assert split_lines(b"ab\n" + b"x" * 20, 10) == ([("data", 0, 3)], 3, True)


def test_missing_file_and_bad_arguments(tmp_path: Path) -> None:
    tail = FileTail(str(tmp_path / "none.jsonl"))
    assert read_all(tail) == []
    with pytest.raises(ValueError, match="max_line_bytes"):
        FileTail("x", max_line_bytes=0)
    with pytest.raises(ValueError, match="read_bytes"):
        FileTail("x", read_bytes=0)


def test_symlink_outside_root_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.jsonl"
    append(outside, b'{"s":1}\n')
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jsonl").symlink_to(outside)
    tail = FileTail(str(root / "a.jsonl"), root=str(root))
    assert read_all(tail) == []
    assert not tail.is_open


def test_100_mb_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    import tracemalloc

    p = tmp_path / "a.jsonl"
    block = b"x" * (1 << 20)
    with open(p, "wb") as f:
        f.write(b'{"a":1}\n')
        for _ in range(100):
            f.write(block)
        f.write(b'\n{"a":2}\n')
    del block
    tail = FileTail(str(p))  # defaults: 1 MiB cap, 1 MiB reads
    tracemalloc.start()
    try:
        events = read_all(tail)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunk_bytes(events) == b'{"a":1}\n{"a":2}\n'
    assert [e for e in events if isinstance(e, Skipped)] == [Skipped("line_too_long")]
    assert peak < 8 << 20, f"peak {peak} bytes while skipping a 100 MB line"
    tail.close()


def test_park_and_resume(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n{"a":2')
    tail = FileTail(str(p))
    assert chunk_bytes(read_all(tail)) == b'{"a":1}\n'
    key = tail.key
    tail.park()
    assert tail.parked and not tail.is_open and tail.identity is not None
    append(p, b'}\n{"a":3}\n')
    ev = read_all(tail)  # same file: resumes at its offset, partial line kept
    assert ev == [Chunk(b'{"a":2}\n{"a":3}\n', 8, 24)]
    assert tail.key == key and tail.is_open
    # truncated while parked: noticed on resume
    tail.park()
    with open(p, "wb") as f:
        f.write(b'{"b":1}\n')
    ev = read_all(tail)
    assert isinstance(ev[0], Reset) and chunk_bytes(ev) == b'{"b":1}\n'
    # rotated while parked, after more was appended to it: the old file is read to its end under
    # its new name, then the new file from its start; nothing voided
    tail.park()
    append(p, b'{"b":2}\n')
    os.rename(p, tmp_path / "a.jsonl.1")
    append(p, b'{"c":1}\n')
    ev = read_all(tail)
    assert [type(e) for e in ev] == [Chunk, Opened, Chunk]
    assert chunk_bytes(ev) == b'{"b":2}\n{"c":1}\n'
    # replaced while parked (a new file renamed over it, so its inode cannot be reused): the old
    # one is in no folder any more, the stream's data is void, the new file starts over
    tail.park()
    append(tmp_path / "new.tmp", b'{"d":1}\n')
    os.rename(tmp_path / "new.tmp", p)
    ev = read_all(tail)
    assert isinstance(ev[0], Reset) and ev[0].reason == "replaced"
    assert chunk_bytes(ev) == b'{"d":1}\n'
    tail.close()


def test_park_before_head_is_settled_keeps_descriptor(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a"')
    tail = FileTail(str(p))
    read_all(tail)
    tail.park()  # nothing handed out yet: nothing worth parking
    assert tail.is_open and not tail.parked
    tail.close()


def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n')
    fd = open_regular(str(p))
    try:
        assert os.read(fd, 100) == b'{"a":1}\n'
    finally:
        os.close(fd)
    os.mkfifo(tmp_path / "fifo.jsonl")
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    for bad in ("fifo.jsonl", "zero.jsonl", "."):
        with pytest.raises(NotRegularFile):
            open_regular(str(tmp_path / bad))
    with pytest.raises(FileNotFoundError):
        open_regular(str(tmp_path / "none.jsonl"))


def test_fifo_at_the_path_is_told_once_and_never_blocks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    p = tmp_path / "a.jsonl"
    append(p, b'{"a":1}\n')
    tail = FileTail(str(p))
    assert chunk_bytes(read_all(tail)) == b'{"a":1}\n'
    p.unlink()
    os.mkfifo(p)
    # Should a read block opening the FIFO, a writer's open lets it go after 2 s (and it fails).
    rescue = threading.Timer(2.0, lambda: os.close(os.open(p, os.O_WRONLY | os.O_NONBLOCK)))
    rescue.start()
    try:
        with caplog.at_level(logging.WARNING, logger="tailboard.sidecar.tail"):
            assert read_all(tail) == [Skipped("not_regular")]
            assert read_all(tail) == [] and read_all(tail) == []  # told once
    finally:
        rescue.cancel()
    assert not tail.is_open
    assert [r.getMessage() for r in caplog.records if str(p) in r.getMessage()] == [
        f"not following {p}: not a regular file (a FIFO, a device, a socket or a folder)"]
    # as after a delete: a regular file back at the path starts the stream over
    p.unlink()
    append(p, b'{"b":1}\n')
    ev = read_all(tail)
    assert isinstance(ev[0], Reset) and ev[0].reason == "replaced"
    assert chunk_bytes(ev) == b'{"b":1}\n'
    tail.close()


def test_device_node_at_the_path_is_not_read(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    try:
        os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # what /dev/zero is
    except PermissionError:
        pytest.skip("creating device nodes is not permitted here")
    tail = FileTail(str(p))
    # reading it would never end: look at the first few events only
    assert list(itertools.islice(tail.read(), 5)) == [Skipped("not_regular")]
    assert list(itertools.islice(tail.read(), 5)) == []
    assert not tail.is_open


def test_symlink_outside_root_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.jsonl").symlink_to("/dev/zero")
    tail = FileTail(str(root / "a.jsonl"), root=str(root))
    with caplog.at_level(logging.WARNING, logger="tailboard.sidecar.tail"):
        for _ in range(3):
            assert list(itertools.islice(tail.read(), 5)) == []
    assert len(caplog.records) == 1 and "outside the log root" in caplog.records[0].getMessage()


def test_park_unread_file_reopens_from_its_start(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.touch()
    tail = FileTail(str(p))
    assert read_all(tail) == []
    tail.park(unread=True)  # nothing handed out yet: parked all the same when asked to
    assert tail.parked and not tail.is_open
    append(p, b'{"a":1}\n')
    ev = read_all(tail)  # same inode: from offset 0
    assert [type(e) for e in ev] == [Opened, Chunk] and chunk_bytes(ev) == b'{"a":1}\n'
    tail.close()
    # deleted and re-created while parked: nothing of the old file was handed out, so the new one
    # simply continues the stream (no reset)
    q = tmp_path / "b.jsonl"
    q.touch()
    tail = FileTail(str(q))
    assert read_all(tail) == []
    tail.park(unread=True)
    q.unlink()
    append(q, b'{"b":1}\n')
    ev = read_all(tail)
    assert [type(e) for e in ev] == [Opened, Chunk] and chunk_bytes(ev) == b'{"b":1}\n'
    tail.close()


def test_a_deferring_tail_hands_out_every_byte_and_keeps_what_the_consumer_left(tmp_path: Path) -> None:
    """``defer``: each chunk is every byte read; the consumer sends back how many were whole records
    and the rest comes again, first, in the next chunk. While a record longer than a read is
    incomplete the tail frames it itself instead of handing out the same growing bytes each read."""
    from tailboard.sidecar.tail import Framing

    def whole(buf: bytes) -> int:  # records: a 4-byte length, then that many bytes
        at = 0
        while at + 4 <= len(buf) and at + 4 + int.from_bytes(buf[at:at + 4], "little") <= len(buf):
            at += 4 + int.from_bytes(buf[at:at + 4], "little")
        return at

    def record(n: int, fill: bytes) -> bytes:
        return n.to_bytes(4, "little") + fill * n

    p = tmp_path / "records.bin"
    small = b"".join(record(10, b"%c" % (97 + i)) for i in range(30))  # 420 bytes
    big = record(1000, b"B")
    append(p, small + big[:500])
    tail = FileTail(str(p), read_bytes=128, framing=Framing(whole, max_record=1 << 20))
    tail.defer = True
    events = tail.read()
    handed: list[Chunk] = []
    got = b""
    taken: int | None = None
    for _ in range(1000):
        try:
            ev = events.send(taken)
        except StopIteration:
            break
        taken = None
        if isinstance(ev, Chunk):
            handed.append(ev)
            assert ev.start == len(got)  # what was left comes again first
            taken = whole(ev.data)
            got += ev.data[:taken]
    assert got == small
    starved = [c for c in handed if whole(c.data) == 0]
    assert len(starved) == 1  # the big record's head is handed out once, not after every read
    assert tail.offset == len(small)
    append(p, big[500:])
    rest = [e for e in tail.read() if isinstance(e, Chunk)]
    assert b"".join(c.data for c in rest) == big and rest[0].start == len(small)
    assert tail.offset == len(small) + len(big)
