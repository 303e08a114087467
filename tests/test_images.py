"""Images from writer to API: PNG files beside the log, image records, the store and the routes.

The PNG files are decoded by a reader written here from the PNG specification (and by PIL where it
is installed), so the writer's encoder is not checked against itself.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tailboard
import torch
from tailboard import png
from tailboard import run as run_module
from tailboard.values import MAX_IMAGE_PIXELS, Image, image_pixels

# ---- a PNG reader from the specification ------------------------------------------------------------


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def read_png(data: bytes) -> tuple[int, int, int, bytes]:
    """Width, height, channels and pixels (rows of HWC) of an 8-bit, non-interlaced PNG; every
    chunk's CRC checked, every filter type undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    at, idat, header, ended = 8, b"", None, False
    while at < len(data):
        (n,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + n]
        (crc,) = struct.unpack(">I", data[at + 8 + n : at + 12 + n])
        assert zlib.crc32(kind + body) == crc, kind
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            ended = True
        at += 12 + n
    assert ended and at == len(data) and header is not None
    w, h, depth, colour, _, _, interlace = header
    assert depth == 8 and interlace == 0
    c = {0: 1, 4: 2, 2: 3, 6: 4}[colour]
    raw, stride = zlib.decompress(idat), w * c
    assert len(raw) == h * (stride + 1)
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - c] if i >= c else 0
            b, up_left = prev[i], (prev[i - c] if i >= c else 0)
            row[i] = (row[i] + (0, a, b, (a + b) // 2, _paeth(a, b, up_left))[f]) & 255
        out += row
        prev = row
    return w, h, c, bytes(out)


# ---- the encoder ------------------------------------------------------------------------------------


@pytest.mark.parametrize("w,h,c", [(1, 1, 1), (7, 1, 3), (1, 9, 4), (13, 11, 2), (64, 48, 3), (33, 17, 4)])
def test_png_decodes_back_exactly(w: int, h: int, c: int) -> None:
    pixels = np.random.default_rng(w * h * c).integers(0, 256, w * h * c, dtype=np.uint8).tobytes()
    data = png.encode(w, h, c, pixels)
    assert read_png(data) == (w, h, c, pixels)
    pil = pytest.importorskip("PIL.Image")
    import io

    with pil.open(io.BytesIO(data)) as im:
        assert im.size == (w, h) and im.mode == {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c]
        assert im.tobytes() == pixels


def test_png_refuses_sizes_that_do_not_agree() -> None:
    with pytest.raises(ValueError, match="channels"):
        png.encode(2, 2, 5, bytes(20))
    with pytest.raises(ValueError, match="bytes"):
        png.encode(2, 2, 3, bytes(11))


def test_smooth_images_compress_better_than_unfiltered() -> None:
    y, x = np.mgrid[0:256, 0:256]
    smooth = (np.sin(x / 23.0) * np.cos(y / 31.0) * 127 + 128).astype(np.uint8)
    rows = smooth.tobytes()
    unfiltered = zlib.compress(b"".join(b"\0" + rows[i : i + 256] for i in range(0, len(rows), 256)), 6)
    assert len(png.encode(256, 256, 1, rows)) * 4 < len(unfiltered) * 3  # 1.5x smaller here


# ---- values to pixels ---------------------------------------------------------------------------------

RGB = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)  # H=5, W=7


@pytest.mark.parametrize(
    "value,expected",
    [
        (Image(RGB), (7, 5, 3, RGB)),
        (Image(RGB.transpose(2, 0, 1)), (7, 5, 3, RGB)),  # CHW array: channels first found
        (Image(RGB.transpose(2, 0, 1).copy(), "CHW"), (7, 5, 3, RGB)),
        (Image(RGB[..., 0]), (7, 5, 1, RGB[..., 0])),
        (Image(RGB[..., :1]), (7, 5, 1, RGB[..., 0])),
        (Image(RGB[None]), (7, 5, 3, RGB)),  # a batch of one
        (Image(np.dstack([RGB, RGB[..., :1]])), (7, 5, 4, np.dstack([RGB, RGB[..., :1]]))),
        (Image(torch.from_numpy(RGB.transpose(2, 0, 1).copy())), (7, 5, 3, RGB)),  # tensors are CHW
        (Image(torch.from_numpy(RGB), "HWC"), (7, 5, 3, RGB)),
        (Image(torch.from_numpy(RGB[..., 1].copy())), (7, 5, 1, RGB[..., 1])),
        (Image(torch.from_numpy(RGB.transpose(2, 0, 1).copy())[None]), (7, 5, 3, RGB)),
        (Image(np.ma.masked_array(RGB)), (7, 5, 3, RGB)),  # a subclass of ndarray
    ],
)
def test_layouts(value: Image, expected: tuple[int, int, int, np.ndarray]) -> None:
    w, h, c, pixels = image_pixels(value)
    assert (w, h, c) == expected[:3]
    assert pixels == np.ascontiguousarray(expected[3]).tobytes()


def test_dtypes_are_scaled_and_clipped() -> None:
    floats = np.array([[0.0, 0.5, 1.0, 1.7, -0.3, np.nan, np.inf, 0.2]])
    want = bytes([0, 128, 255, 255, 0, 0, 255, 51])
    for x in (floats, floats.astype(np.float32), floats.astype(np.float16)):
        assert image_pixels(Image(x))[3] == want
    assert image_pixels(Image(torch.tensor(floats)))[3] == want
    assert image_pixels(Image(torch.tensor(floats, dtype=torch.bfloat16)))[3][:4] == want[:4]
    ints = np.array([[-5, 0, 7, 255, 256, 70000]])
    for dtype in (np.int16, np.int32, np.int64):
        assert image_pixels(Image(ints.astype(dtype)))[3] == bytes([0, 0, 7, 255, 255, 255])
    assert image_pixels(Image(np.array([[0, 300, 65535]], np.uint16)))[3] == bytes([0, 255, 255])
    assert image_pixels(Image(torch.tensor([[-5, 7, 999]])))[3] == bytes([0, 7, 255])
    assert image_pixels(Image(np.array([[True, False]])))[3] == bytes([255, 0])
    assert image_pixels(Image(torch.tensor([[True, False]])))[3] == bytes([255, 0])


def test_pil_images() -> None:
    pil = pytest.importorskip("PIL.Image")
    for mode, c in (("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)):
        im = pil.fromarray(np.ascontiguousarray(np.dstack([RGB, RGB])[..., :c].squeeze()), mode)
        assert image_pixels(Image(im)) == (7, 5, c, im.tobytes())
    palette = pil.fromarray(RGB, "RGB").convert("P")
    assert image_pixels(Image(palette)) == (7, 5, 3, palette.convert("RGB").tobytes())


def test_bad_images_raise_value_error_with_the_reason() -> None:
    with pytest.raises(ValueError, match="dataformats"):
        Image(RGB, "NHWC")
    for value, why in [
        (Image(np.zeros((5, 6, 7), np.uint8)), "no channel dimension"),
        (Image(np.zeros((2, 3, 4, 5), np.uint8)), "2 or 3 dimensions"),
        (Image(np.zeros((5, 6), np.uint8), "CHW"), "is not CHW"),
        (Image(np.zeros((5, 6, 7), np.uint8), "HWC"), "1 to 4 channels"),
        (Image(np.zeros((0, 6), np.uint8)), "empty"),
        (Image(np.array([["a"]])), "dtype"),
        (Image([[1, 2]]), "numpy array, a torch tensor or a PIL image"),
    ]:
        with pytest.raises(ValueError, match=why):
            image_pixels(value)


# ---- the run: files beside the log, records after them ----------------------------------------------


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (path / "rank0.jsonl").read_text().splitlines()]


def test_log_writes_the_file_before_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line written that names an image names a file that is already whole."""
    seen: list[str] = []
    real_write = run_module._write

    def checking_write(fd: int, data: Any) -> int:
        line = bytes(data)
        if b'"k":"image"' in line:
            rec = json.loads(line)
            file = tmp_path / "r" / rec["path"]
            assert file.is_file(), rec["path"]
            assert read_png(file.read_bytes())[:3] == (rec["w"], rec["h"], rec["c"])
            seen.append(rec["path"])
        return real_write(fd, data)

    monkeypatch.setattr(run_module, "_write", checking_write)
    frames = [np.full((4, 6, 3), 40 * i, np.uint8) for i in range(5)]
    with tailboard.init(tmp_path / "r") as run:
        for i, frame in enumerate(frames):
            run.log({"loss": 1.0 / (i + 1), "samples": Image(frame), "maps/a": Image(frame[..., 0])}, step=i * 10)
    assert len(seen) == 10 and run.dropped == 0
    recs = [r for r in records(tmp_path / "r") if r["k"] == "image"]
    assert [(r["name"], r["step"], r["path"]) for r in recs[:2]] == [
        ("samples", 0, "media/samples/0.png"), ("maps/a", 0, "media/maps/a/0.png")]
    assert recs[-2] == {**recs[-2], "w": 6, "h": 4, "c": 3}
    assert recs[-2]["bytes"] == (tmp_path / "r" / recs[-2]["path"]).stat().st_size
    assert read_png((tmp_path / "r" / "media/samples/40.png").read_bytes())[3] == frames[4].tobytes()
    leftovers = [p.name for p in (tmp_path / "r" / "media").rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_a_taken_name_is_never_overwritten(tmp_path: Path) -> None:
    with tailboard.init(tmp_path / "r") as run:
        run.log({"x": Image(np.zeros((2, 2), np.uint8))}, step=3)
        run.log({"x": Image(np.full((2, 2), 9, np.uint8))}, step=3)
    with tailboard.init(tmp_path / "r") as again:  # a restart at the same step
        again.log({"x": Image(np.full((2, 2), 200, np.uint8))}, step=3)
    paths = [r["path"] for r in records(tmp_path / "r") if r["k"] == "image"]
    assert paths == ["media/x/3.png", "media/x/3-1.png", "media/x/3-2.png"]
    assert [read_png((tmp_path / "r" / p).read_bytes())[3][0] for p in paths] == [0, 9, 200]


def test_a_media_folder_removed_during_the_run_is_made_again(tmp_path: Path) -> None:
    import shutil

    with tailboard.init(tmp_path / "r") as run:
        run.log({"x": Image(np.zeros((2, 2), np.uint8))}, step=0)
        shutil.rmtree(tmp_path / "r" / "media")
        run.log({"x": Image(np.zeros((2, 2), np.uint8))}, step=1)
    assert run.dropped == 0 and (tmp_path / "r" / "media/x/1.png").is_file()


def test_names_never_lead_outside_the_media_folder(tmp_path: Path) -> None:
    names = ["../../escape", "/abs/olute", "a/./b/../c", ".hidden", "ünï cödé", "x" * 300, "a//b"]
    with tailboard.init(tmp_path / "r") as run:
        run.log({n: Image(np.zeros((1, 1), np.uint8)) for n in names}, step=0)
    recs = [r for r in records(tmp_path / "r") if r["k"] == "image"]
    assert [r["name"] for r in recs] == names
    media = (tmp_path / "r" / "media").resolve()
    for r in recs:
        file = (tmp_path / "r" / r["path"]).resolve()
        assert file.is_file() and media in file.parents, r["path"]
        assert not any(part.startswith(".") for part in Path(r["path"]).parts), r["path"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_an_oversized_image_is_counted_and_skipped(tmp_path: Path) -> None:
    side = int(MAX_IMAGE_PIXELS**0.5)
    huge = np.broadcast_to(np.uint8(0), (side + 1, side))  # no memory: the size is refused first
    with tailboard.init(tmp_path / "r") as run, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run.log({"big": Image(huge), "small": Image(np.zeros((2, 2), np.uint8))}, step=0)
    assert run.drops == {"big": 1} and run.dropped == 1
    assert any("over the limit of 16,777,216 pixels" in str(w.message) for w in caught)
    assert [r["name"] for r in records(tmp_path / "r") if r["k"] == "image"] == ["small"]
    assert not (tmp_path / "r" / "media" / "big").exists()
    assert records(tmp_path / "r")[-1]["dropped"] == 1


def test_an_image_that_cannot_be_written_is_counted_and_training_goes_on(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "media").write_text("a file where the folder would be")
    with tailboard.init(tmp_path / "r") as run, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run.log({"img": Image(np.zeros((2, 2), np.uint8)), "loss": 1.0}, step=0)
        run.log({"img": Image(object())}, step=1)  # type: ignore[arg-type]
    assert run.drops == {"img": 2}
    assert [r["k"] for r in records(tmp_path / "r")] == ["header", "scalars", "end"]


def test_summary_writer_add_image(tmp_path: Path) -> None:
    chw = torch.rand(3, 8, 5)
    with tailboard.SummaryWriter(tmp_path / "tb") as w:
        w.add_image("chw", chw, 0)
        w.add_image("hwc", RGB, 1, dataformats="HWC")
        w.add_image("hw", RGB[..., 2], 2, dataformats="HW")
        with pytest.raises(ValueError, match="dataformats"):
            w.add_image("bad", RGB, 3, dataformats="WHC")
    recs = {r["name"]: r for r in records(tmp_path / "tb") if r["k"] == "image"}
    assert {n: (r["step"], r["w"], r["h"], r["c"]) for n, r in recs.items()} == {
        "chw": (0, 5, 8, 3), "hwc": (1, 7, 5, 3), "hw": (2, 7, 5, 1)}
    want = (chw.permute(1, 2, 0) * 255).round().byte().numpy().tobytes()
    assert read_png((tmp_path / "tb" / recs["chw"]["path"]).read_bytes())[3] == want
    assert read_png((tmp_path / "tb" / recs["hw"]["path"]).read_bytes())[3] == RGB[..., 2].tobytes()


def test_the_writer_imports_neither_numpy_nor_torch() -> None:
    import subprocess
    import sys

    code = ("import sys, tailboard; "
            "print(sorted(m for m in ('numpy', 'torch', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
    assert os.path.basename(png.__file__) == "png.py"


# ---- the sidecar: the reader, the store and the routes ----------------------------------------------

TOKEN = "test-token-images"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}


def test_image_lines_are_records_not_metrics(tmp_path: Path) -> None:
    from tailboard.sidecar.readers.jsonl import JsonlReader
    from tailboard.sidecar.store import Store

    with tailboard.init(tmp_path / "r") as run:
        for i in range(3):
            run.log({"loss": 1.0 / (i + 1), "img": Image(np.full((2, 3), i, np.uint8))}, step=i)
    with tailboard.init(tmp_path / "r") as again:  # a second attempt in the same file
        again.log({"img": Image(np.zeros((2, 3), np.uint8))}, step=1)
    data = (tmp_path / "r" / "rank0.jsonl").read_bytes()
    reader = JsonlReader()
    parsed, after = reader.decode(data, reader.new_state(), now=0.0)
    assert set().union(*parsed.segments) == {"loss"}
    images = [(seg, rec["step"]) for seg, rec in parsed.others if rec["k"] == "image"]
    assert images == [(0, 0), (0, 1), (0, 2), (1, 1)] and after.native
    store = Store(tmp_path)
    store.open_stream("r", "rank0.jsonl", str(tmp_path / "r" / "rank0.jsonl"), "key")
    store.ingest("r", "rank0.jsonl", data, 0, len(data))
    assert store.metrics("r") == ["loss"]
    assert store.get_run("r").listed["images"] == ("img",)  # type: ignore[union-attr]
    got = store.images("r", "img")
    assert got["steps"] == [0, 1, 2, 1] and got["paths"][1] == "media/img/1.png" and got["widths"] == [3] * 4
    assert store.images("r", "img", step=1.5)["paths"] == ["media/img/1-1.png"]  # the latest at or before
    assert read_png(store.image("r", got["paths"][2]))[3] == bytes([2] * 6)


def test_images_arrive_in_order_with_their_attempt_whatever_the_chunks(tmp_path: Path) -> None:
    """The writer's file fed to the Store in pieces cut at any line (as the tail hands it over):
    every image, in order, in the attempt it was written in, as when the file is read whole."""
    from tailboard.sidecar.store import Store

    with tailboard.init(tmp_path / "r") as run:
        for i in range(6):
            run.log({"loss": 1.0 / (i + 1), "img": Image(np.full((2, 2), i, np.uint8))}, step=i)
            if i % 2:
                run.log({"other": Image(np.zeros((1, 1), np.uint8))}, step=i)
    with tailboard.init(tmp_path / "r") as again:  # resumed at step 3
        for i in range(3, 5):
            again.log({"img": Image(np.full((2, 2), 9, np.uint8)), "loss": 0.1}, step=i)
    data = (tmp_path / "r" / "rank0.jsonl").read_bytes()
    lines = data.splitlines(keepends=True)

    def read(cuts: list[int]) -> tuple[Any, ...]:
        store = Store(tmp_path)
        store.open_stream("r", "rank0.jsonl", str(tmp_path / "r" / "rank0.jsonl"), "key")
        at = 0
        for a, b in zip([0, *cuts], [*cuts, len(lines)]):
            piece = b"".join(lines[a:b])
            store.ingest("r", "rank0.jsonl", piece, at, at + len(piece))
            at += len(piece)
        info = store.get_run("r")
        assert info is not None and info.skipped == {"total": 0}
        per_attempt = [store.series("r", "loss", attempt=k).steps.tolist() for k in range(info.attempts)]
        return store.images("r", "img"), store.images("r", "other"), per_attempt

    whole = read([])
    img, other, per_attempt = whole
    assert img["steps"] == [0, 1, 2, 3, 4, 5, 3, 4] and other["steps"] == [1, 3, 5]
    assert img["paths"][6:] == ["media/img/3-1.png", "media/img/4-1.png"]  # the second attempt's
    assert per_attempt == [[0, 1, 2, 3, 4, 5], [3, 4]]
    rng = np.random.default_rng(7)
    for cuts in [list(range(1, len(lines)))] + [sorted(set(rng.integers(1, len(lines), 4).tolist())) for _ in range(20)]:
        assert read(cuts) == whole, cuts


def test_bad_image_records_are_counted(tmp_path: Path) -> None:
    from tailboard.sidecar.store import Store

    (tmp_path / "r").mkdir()
    lines = [{"k": "header", "format": "tailboard", "version": 1, "rank": 0},
             {"k": "image", "step": 0, "t": 1.0, "name": "x", "path": "../../etc/x.png", "w": 1, "h": 1, "c": 1},
             {"k": "image", "step": 0, "t": 1.0, "name": "x", "path": "media/x/0.png", "w": 0, "h": 1, "c": 1},
             {"k": "image", "step": 0, "t": 1.0, "name": "x", "path": "media/x/0.png", "w": 1, "h": 1, "c": 1}]
    data = "".join(json.dumps(x) + "\n" for x in lines).encode()
    store = Store(tmp_path)
    store.open_stream("r", "rank0.jsonl", str(tmp_path / "r" / "rank0.jsonl"), "key")
    store.ingest("r", "rank0.jsonl", data, 0, len(data))
    info = store.get_run("r")
    assert info is not None and info.skipped == {"total": 2, "bad_image": 2} and info.metrics == ()
    assert store.images("r", "x")["total"] == 1


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    from tailboard.sidecar.server import Server

    for name, shade in (("a", 10), ("b", 200)):
        with tailboard.init(tmp_path / name) as run:
            for step in range(3):
                run.log({"loss": 1.0, "samples": Image(np.full((4, 5, 3), shade + step, np.uint8))}, step=step * 5)
    server = Server(tmp_path, port=0, token=TOKEN, follower_options=FAST)
    await server.start(wait_for_backlog=True)
    yield server, tmp_path
    await server.stop()


async def test_the_api_lists_and_serves_images(served: Any) -> None:
    import httpx

    server, root = served
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=10) as client:
        runs = (await client.get("/api/runs")).json()
        assert {r["id"]: r["images"] for r in runs["runs"]} == {"a": ["samples"], "b": ["samples"]}
        listed = (await client.get("/api/images", params={"run": "a", "tag": "samples"})).json()
        assert listed["steps"] == [0, 5, 10] and listed["paths"][2] == "media/samples/10.png"
        assert (listed["widths"], listed["heights"], listed["channels"]) == ([5] * 3, [4] * 3, [3] * 3)
        at = (await client.get("/api/images", params={"run": "a", "tag": "samples", "step": 7})).json()
        assert at["steps"] == [5]
        got = await client.get("/api/image", params={"run": "b", "path": "media/samples/5.png"})
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        assert got.headers["x-content-type-options"] == "nosniff"
        # the image's own policy, not the page's: opened by itself it loads and runs nothing
        assert got.headers.get_list("content-security-policy") == ["default-src 'none'; frame-ancestors 'none'; sandbox"]
        assert got.content == (root / "b/media/samples/5.png").read_bytes()  # the bytes, not base64 in JSON
        assert read_png(got.content)[3] == bytes([201] * 60)
        page = await client.get("/api/runs")
        assert "img-src 'self' data: blob:" in page.headers["content-security-policy"]  # the page shows it from a Blob
        as_json = await client.get("/api/image", params={"run": "b", "path": "media/samples/5.png", "encoding": "base64"})
        assert as_json.status_code == 400 and "PNG's bytes" in as_json.json()["error"]
        missing = await client.get("/api/images", params={"run": "a", "tag": "nope"})
        assert missing.status_code == 404
        for params in ({"run": "a", "tag": "samples"}, {"run": "a", "path": "media/samples/0.png"}):
            path = "/api/images" if "tag" in params else "/api/image"
            refused = await client.get(path, params=params, headers={"Authorization": "Bearer wrong"})
            assert refused.status_code == 401
            assert (await httpx.AsyncClient(base_url=server.base_url).get(path, params=params)).status_code == 401


async def test_paths_out_of_the_run_folder_are_refused(served: Any) -> None:
    import httpx

    server, root = served
    outside = root.parent / f"{root.name}-outside.png"
    outside.write_bytes((root / "a/media/samples/0.png").read_bytes())
    (root / "a/media/link.png").symlink_to(outside)
    (root / "a/media/dirlink").symlink_to(root.parent)
    os.mkfifo(root / "a/media/fifo.png")
    (root / "a/media/inside.png").symlink_to(root / "a/media/samples/5.png")  # a link within: fine
    cases = {
        "../b/media/samples/0.png": (403, "not a path inside"),
        "media/../../b/media/samples/0.png": (403, "not a path inside"),
        "/etc/passwd": (403, "not a path inside"),
        str(root / "a/media/samples/0.png"): (403, "not a path inside"),
        "media/link.png": (403, "outside the run's folder"),
        f"media/dirlink/{outside.name}": (403, "outside the run's folder"),
        "media/fifo.png": (403, "not a regular file"),
        "media": (403, "not a regular file"),
        "rank0.jsonl": (403, "not a PNG"),
        "media/samples/99.png": (404, "no such image"),
        "@3": (404, "no longer held"),
        "": (404, "no image named"),
    }
    async with httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {TOKEN}"},
                                 timeout=10) as client:
        for path, (status, why) in cases.items():
            got = await client.get("/api/image", params={"run": "a", "path": path})
            assert (got.status_code, got.headers["content-type"]) == (status, "application/json"), path
            assert why in got.json()["error"] and str(root) not in got.text, path
        inside = await client.get("/api/image", params={"run": "a", "path": "media/inside.png"})
        assert inside.content == (root / "a/media/samples/5.png").read_bytes()
        raw = await client.get("/api/image?run=a&path=%2e%2e%2fb%2fmedia%2fsamples%2f0.png")
        assert raw.status_code == 403
        unknown = await client.get("/api/image", params={"run": "../a", "path": "media/samples/0.png"})
        assert unknown.status_code == 404


def test_tensorboard_event_files_images(tmp_path: Path) -> None:
    from tailboard.sidecar.readers.tfevents import TfEventsReader
    from tailboard.sidecar.store import Store
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    frames = [np.random.default_rng(i).integers(0, 256, (3, 6, 4), dtype=np.uint8) for i in range(3)]
    with TorchWriter(str(tmp_path / "tb")) as w:
        for i, frame in enumerate(frames):
            w.add_image("samples", frame, i)
            w.add_scalar("loss", 1.0, i)
    (event_file,) = (tmp_path / "tb").iterdir()
    data = event_file.read_bytes()
    store = Store(tmp_path, readers=None)
    store.open_stream("tb", event_file.name, str(event_file), "key", reader="tfevents")
    store.ingest("tb", event_file.name, data, 0, len(data))
    assert store.metrics("tb") == ["loss"]
    got = store.images("tb", "samples")
    assert got["steps"] == [0, 1, 2] and (got["widths"], got["heights"], got["channels"]) == ([4] * 3, [6] * 3, [3] * 3)
    assert got["paths"] == ["@0", "@1", "@2"]
    for path, frame in zip(got["paths"], frames):
        assert read_png(store.image("tb", path))[3] == frame.transpose(1, 2, 0).tobytes()
    parsed, _ = TfEventsReader().decode(data, TfEventsReader().new_state(), now=0.0)
    assert "unsupported_summary" not in parsed.skipped
