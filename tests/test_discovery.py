"""Discovery on real trees: run ids, streams, containment, loops."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from tailboard.sidecar.discovery import Listings, StreamRef, contained, scan


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def runs(root: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ref in scan(str(root)).values():
        out.setdefault(ref.run_id, []).append(ref.stream)
    return {k: sorted(v) for k, v in out.items()}


def test_runs_at_any_depth_and_streams(tmp_path: Path) -> None:
    touch(tmp_path / "lr_0.1" / "seed0" / "rank0.jsonl")
    touch(tmp_path / "lr_0.1" / "seed0" / "rank1.jsonl")
    touch(tmp_path / "lr_0.1" / "seed0" / "ckpt.pt")
    touch(tmp_path / "lr_0.1" / "train.jsonl")  # a parent can be a run too
    touch(tmp_path / "a" / "b" / "c" / "d" / "e" / "x.jsonl")
    touch(tmp_path / "top.jsonl")
    touch(tmp_path / ".venv" / "hidden.jsonl")  # nothing is filtered by name
    touch(tmp_path / "empty" / "notes.txt")
    assert runs(tmp_path) == {
        "lr_0.1/seed0": ["rank0.jsonl", "rank1.jsonl"],
        "lr_0.1": ["train.jsonl"],
        "a/b/c/d/e": ["x.jsonl"],
        ".": ["top.jsonl"],
        ".venv": ["hidden.jsonl"],
    }
    ref = scan(str(tmp_path))[str(tmp_path / "lr_0.1" / "seed0" / "rank1.jsonl")]
    assert ref == StreamRef("lr_0.1/seed0", "rank1.jsonl",
                            str(tmp_path / "lr_0.1" / "seed0" / "rank1.jsonl"),
                            str(tmp_path / "lr_0.1" / "seed0"))


def test_checkpoint_histories_are_streams_of_the_run_above(tmp_path: Path) -> None:
    """A Trainer's checkpoint-N/trainer_state.json is a version of its output folder's history;
    the checkpoint's other files, and a history in a folder of another name, are not."""
    out = tmp_path / "out"
    for name in ("checkpoint-5/trainer_state.json", "checkpoint-10/trainer_state.json", "trainer_state.json",
                 "checkpoint-5/log.jsonl", "best/trainer_state.json", "checkpoint-x/trainer_state.json"):
        touch(out / name)
    found = scan(str(tmp_path), candidate=lambda rel: rel.endswith((".json", ".jsonl")))
    got = sorted((os.path.relpath(r.path, tmp_path), r.run_id, r.stream, r.version) for r in found.values())
    assert got == [
        ("out/best/trainer_state.json", "out/best", "trainer_state.json", None),
        ("out/checkpoint-10/trainer_state.json", "out", "trainer_state.json", 10),
        ("out/checkpoint-5/log.jsonl", "out/checkpoint-5", "log.jsonl", None),
        ("out/checkpoint-5/trainer_state.json", "out", "trainer_state.json", 5),
        ("out/checkpoint-x/trainer_state.json", "out/checkpoint-x", "trainer_state.json", None),
        ("out/trainer_state.json", "out", "trainer_state.json", None),
    ]
    assert found[str(out / "checkpoint-5" / "trainer_state.json")].folder == str(out)
    touch(tmp_path / "checkpoint-3" / "trainer_state.json")  # the root itself has no run above
    assert scan(str(tmp_path / "checkpoint-3"), candidate=lambda rel: True)[
        str(tmp_path / "checkpoint-3" / "trainer_state.json")].run_id == "."


def test_a_folder_s_streams_come_in_the_order_of_their_names(tmp_path: Path) -> None:
    """The catch-up reads a run's files in this order: event files by their start times, as
    TensorBoard does (a folder lists its entries in any order: ext4 in hash order)."""
    names = [f"events.out.tfevents.17000000{i:02d}.host.1.0" for i in range(40)]
    for name in reversed(names):
        touch(tmp_path / "run" / name)
    found = scan(str(tmp_path), candidate=lambda rel: True)
    assert [ref.stream for ref in found.values()] == names


def test_folder_named_jsonl_is_not_a_stream(tmp_path: Path) -> None:
    (tmp_path / "odd.jsonl").mkdir()
    touch(tmp_path / "odd.jsonl" / "real.jsonl")
    assert runs(tmp_path) == {"odd.jsonl": ["real.jsonl"]}


def test_symlinks_leaving_the_root_are_not_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    touch(outside / "run" / "secret.jsonl")
    touch(root / "mine" / "a.jsonl")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "mine" / "leak.jsonl").symlink_to(outside / "run" / "secret.jsonl")
    (root / "mine" / "dotdot.jsonl").symlink_to("../../outside/run/secret.jsonl")
    (root / "dangling.jsonl").symlink_to(tmp_path / "nowhere.jsonl")
    assert runs(root) == {"mine": ["a.jsonl"]}


def test_symlinks_inside_the_root_are_walked_once(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "a.jsonl")
    (tmp_path / "alias").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "real" / "b.jsonl").symlink_to(tmp_path / "real" / "a.jsonl")
    found = runs(tmp_path)
    assert len(found) == 1
    assert next(iter(found.values())) == ["a.jsonl", "b.jsonl"]


def test_missing_root_and_root_through_symlink(tmp_path: Path) -> None:
    assert scan(str(tmp_path / "none")) == {}
    touch(tmp_path / "data" / "r" / "a.jsonl")
    (tmp_path / "link").symlink_to(tmp_path / "data", target_is_directory=True)
    assert runs(tmp_path / "link") == {"r": ["a.jsonl"]}


def test_contained() -> None:
    assert contained("/a/b", "/a")
    assert contained("/a", "/a")
    assert not contained("/ab", "/a")
    assert not contained("/", "/a")
    assert contained("/x", "/")


def test_scan_reports_folders_walked(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "b" / "x.jsonl")
    (tmp_path / "c").mkdir()
    folders: list[str] = []
    scan(str(tmp_path), folders)
    assert sorted(folders) == sorted(str(p) for p in (tmp_path, tmp_path / "a",
                                                     tmp_path / "a" / "b", tmp_path / "c"))


def test_scan_under_some_folders_walks_only_what_is_new(tmp_path: Path) -> None:
    touch(tmp_path / "old" / "a" / "x.jsonl")
    touch(tmp_path / "old" / "y.jsonl")
    known: list[str] = []
    scan(str(tmp_path), known)
    touch(tmp_path / "old" / "z.jsonl")  # a new file in a known folder
    touch(tmp_path / "old" / "a" / "w.jsonl")  # one in a known subfolder: it has its own hint
    touch(tmp_path / "old" / "new" / "deep" / "v.jsonl")  # a new subtree: walked whole
    touch(tmp_path / "elsewhere" / "u.jsonl")  # not hinted: not looked at
    walked: list[str] = []
    found = scan(str(tmp_path), walked, under=[str(tmp_path / "old")], known=set(known))
    assert sorted(found) == sorted(str(tmp_path / p) for p in (
        "old/y.jsonl", "old/z.jsonl", "old/new/deep/v.jsonl"))
    assert found[str(tmp_path / "old/new/deep/v.jsonl")].run_id == "old/new/deep"  # from the root
    assert sorted(walked) == sorted(str(tmp_path / p) for p in ("old", "old/new", "old/new/deep"))
    # a hinted path outside the root, or leaving it through a symlink, is not walked
    (tmp_path / "escape").symlink_to(tmp_path.parent, target_is_directory=True)
    assert scan(str(tmp_path / "old"), under=[str(tmp_path), str(tmp_path / "old" / "..")]) == {}
    assert scan(str(tmp_path), under=[str(tmp_path / "escape")]) == {}


def test_listings_list_again_only_the_folders_that_changed(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "x.jsonl")
    touch(tmp_path / "b" / "y.jsonl")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "alias.jsonl").symlink_to(tmp_path / "a" / "x.jsonl")
    old = time.time() - 60
    for d in ("", "a", "b", "c"):
        os.utime(tmp_path / d, (old, old))
    listings = Listings()
    first = scan(str(tmp_path), listings=listings)
    assert len(listings) == 3  # not c: where its symlink leads can change unseen
    # a file appears in a folder whose mtime is made to look unchanged: taken from memory, so not
    # seen (the cost of one stat instead of a listing)...
    touch(tmp_path / "b" / "hidden.jsonl")
    os.utime(tmp_path / "b", (old, old))
    assert scan(str(tmp_path), listings=listings) == first
    # ...while a real change (a new mtime) is listed again, and a fresh mtime is never trusted
    touch(tmp_path / "a" / "z.jsonl")
    found = scan(str(tmp_path), listings=listings)
    assert str(tmp_path / "a" / "z.jsonl") in found and str(tmp_path / "b" / "hidden.jsonl") not in found
    touch(tmp_path / "a" / "w.jsonl")  # within the same second: the racy mtime was not kept
    assert str(tmp_path / "a" / "w.jsonl") in scan(str(tmp_path), listings=listings)
    # the same scans without memory find everything, and a folder removed is forgotten
    assert str(tmp_path / "b" / "hidden.jsonl") in scan(str(tmp_path))
    shutil.rmtree(tmp_path / "b")
    assert str(tmp_path / "b" / "y.jsonl") not in scan(str(tmp_path), listings=listings)
    assert len(listings) == 0  # b forgotten; the root and a changed just now: not kept
