"""The Images panel in headless Chromium: trainers in their own processes log images over steps, the
real sidecar serves them, and the page's pixels are read back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import pytest
from browserkit import BROWSER_MARKS, new_page, page_url, wait_for
from tailboard.sidecar.server import ServerHandle, serve_in_thread

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

TAG = "samples/<b>gen</b>"  # a name that would be markup if it were parsed as HTML
STEPS = {"sweep/a": [0, 10, 20, 30, 40], "sweep/b": [0, 20, 40]}
W, H = 8, 6

# A small training loop: a linear model fitted for a few steps, each logged step an image whose
# colour says which run and step it is (the corner pixel is white: the image is not flipped).
TRAINER = textwrap.dedent("""
    import sys, torch, tailboard
    root, run_id, steps, base = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")], int(sys.argv[4])
    tag = sys.argv[5] if len(sys.argv) > 5 else %(tag)r
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    with tailboard.init(f"{root}/{run_id}") as run:
        for step in range(max(steps) + 1):
            loss = torch.nn.functional.mse_loss(model(x), y)
            opt.zero_grad(); loss.backward(); opt.step()
            metrics = {"train/loss": loss.item()}
            if step in steps:
                image = torch.empty(3, %(h)d, %(w)d)
                image[0], image[1], image[2] = base / 255, step * 4 / 255, (255 - base) / 255
                image[:, 0, 0] = 1.0
                metrics[tag] = tailboard.Image(image)
            run.log(metrics, step=step)
""" % {"h": H, "w": W, "tag": TAG})
BASE = {"sweep/a": 40, "sweep/b": 200}


def images_site_script(handle: ServerHandle) -> Path:
    root = Path(handle.server.logdir)
    return root.parent / f"{root.name}-trainer.py"


def colour(run: str, step: int) -> tuple[int, int, int]:
    return (BASE[run], step * 4, 255 - BASE[run])


@pytest.fixture
def images_site(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    script = tmp_path.parent / f"{tmp_path.name}-trainer.py"
    script.write_text(TRAINER)
    for run, steps in STEPS.items():
        subprocess.run([sys.executable, str(script), str(tmp_path), run, ",".join(map(str, steps)), str(BASE[run])],
                       check=True, timeout=120)
    yield handle
    handle.stop()


SHOWN = """([tag, runs]) => { const card = [...document.querySelectorAll('.img-card')].find((c) => c.dataset.tag === tag);
    if (!card) return null;
    const out = {};
    for (const f of card.querySelectorAll('.img-figure')) {
      const img = f.querySelector('img');
      if (!img.complete || !img.naturalWidth || !img.src.startsWith('blob:')) return null;
      const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
      const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
      const px = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data.slice(0, 3));
      out[f.dataset.run] = { step: +img.dataset.step, corner: px(0, 0), middle: px(img.naturalWidth >> 1, img.naturalHeight >> 1),
        size: [img.naturalWidth, img.naturalHeight], src: img.src, meta: f.querySelector('.img-meta').textContent,
        name: f.querySelector('.img-run').textContent, rendering: getComputedStyle(img).imageRendering,
        shownWidth: img.getBoundingClientRect().width };
    }
    return runs.every((r) => out[r]) ? out : null; }"""


def shown(page: Any, steps: dict[str, int], tag: str = TAG) -> dict[str, Any]:
    """What each run's figure shows, once every one shows the image of the step given."""
    runs = list(steps)
    wait_for(page, f"() => {{ const s = ({SHOWN})({[tag, runs]!r}); "
                   f"return s && Object.entries({steps!r}).every(([r, k]) => s[r].step === k); }}")
    return page.evaluate(SHOWN, [tag, runs])  # type: ignore[no-any-return]


def test_images_of_two_runs_side_by_side_follow_the_step_slider(browser: Any, images_site: ServerHandle) -> None:
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    page.goto(page_url(images_site))
    wait_for(page, "() => document.querySelectorAll('.run-row[data-run]').length === 2")
    page.click("#tabs button[data-tab='images']")
    got = shown(page, {"sweep/a": 40, "sweep/b": 40})  # the slider starts at the latest step
    head = page.eval_on_selector(".img-card .panel-head b", "b => b.textContent")
    assert head == TAG and page.eval_on_selector(".img-card .panel-head b", "b => b.children.length") == 1  # the <bdi>
    assert page.evaluate("() => document.querySelectorAll('.img-card b b, .img-card bdi b').length") == 0  # no markup
    for run in STEPS:
        assert got[run]["name"] == run
        assert got[run]["size"] == [W, H] and got[run]["meta"] == f"step 40 · {W}×{H}"
        assert got[run]["corner"] == [255, 255, 255]
        assert got[run]["middle"] == list(colour(run, 40))
        assert got[run]["rendering"] == "pixelated" and got[run]["shownWidth"] > W * 4  # scaled up, crisp
    # side by side: the two figures share a row
    boxes = page.eval_on_selector_all(".img-card .img-figure", "fs => fs.map((f) => f.getBoundingClientRect().top)")
    assert len(boxes) == 2 and abs(boxes[0] - boxes[1]) < 1
    # the trainer of a goes on (a second process on the run): the slider, at the latest step, follows
    script = images_site_script(images_site)
    subprocess.run([sys.executable, str(script), str(images_site.server.logdir), "sweep/a", "50,60", str(BASE["sweep/a"])],
                   check=True, timeout=120)
    got = shown(page, {"sweep/a": 60, "sweep/b": 40})
    assert got["sweep/a"]["middle"] == list(colour("sweep/a", 60))
    old = got["sweep/a"]["src"]
    slider = ".img-card input.scrub"
    steps = page.eval_on_selector(slider, "s => [s.min, s.max, s.value].map(Number)")
    assert steps == [0, 6, 6]  # steps 0, 10, 20, 30, 40, 50, 60 of either run
    page.eval_on_selector(slider, "s => { s.value = '1'; s.dispatchEvent(new Event('input')); }")  # step 10
    got = shown(page, {"sweep/a": 10, "sweep/b": 0})  # b logged none at 10: its latest before
    assert got["sweep/a"]["middle"] == list(colour("sweep/a", 10))
    assert got["sweep/b"]["middle"] == list(colour("sweep/b", 0))
    assert page.eval_on_selector(".img-card .img-step", "o => o.textContent") == "step 10"
    revoked = page.evaluate("(u) => fetch(u).then(() => false, () => true)", old)
    assert revoked, "the object URL of the image replaced is revoked"
    page.eval_on_selector(slider, "s => { s.value = '3'; s.dispatchEvent(new Event('input')); }")  # step 30
    got = shown(page, {"sweep/a": 30, "sweep/b": 20})
    assert got["sweep/a"]["middle"] == list(colour("sweep/a", 30))
    assert got["sweep/b"]["middle"] == list(colour("sweep/b", 20))
    assert errors == []
    page.close()


def test_a_name_logged_while_the_tab_is_open_gets_its_card(browser: Any, images_site: ServerHandle) -> None:
    """The trainers log an image name the tab did not know when it opened: it gets a card, in name
    order, then a figure for the second run once that one logs it too; the bytes come as a PNG (no
    JSON), and the object URLs are revoked when the tab is hidden."""
    page, errors = new_page(browser, viewport={"width": 1200, "height": 800})
    answers: list[tuple[str, str]] = []
    page.on("response", lambda r: answers.append((r.url, r.headers.get("content-type", "")))
            if "/api/image?" in r.url else None)
    page.goto(page_url(images_site))
    wait_for(page, "() => document.querySelectorAll('.run-row[data-run]').length === 2")
    page.click("#tabs button[data-tab='images']")
    shown(page, {"sweep/a": 40, "sweep/b": 40})
    script, root = images_site_script(images_site), str(images_site.server.logdir)
    late = "late/<i>pred</i>"  # sorts before TAG ("s..."): its card comes first
    subprocess.run([sys.executable, str(script), root, "sweep/a", "3,7", str(BASE["sweep/a"]), late],
                   check=True, timeout=120)
    got = shown(page, {"sweep/a": 7}, tag=late)
    assert got["sweep/a"]["middle"] == list(colour("sweep/a", 7)) and got["sweep/a"]["corner"] == [255, 255, 255]
    assert got["sweep/a"]["meta"] == f"step 7 · {W}×{H}"
    assert page.eval_on_selector_all(".img-card", "cs => cs.map((c) => c.dataset.tag)") == [late, TAG]
    assert page.eval_on_selector_all(f".img-card[data-tag='{late}'] .img-figure", "fs => fs.map((f) => f.dataset.run)") == ["sweep/a"]
    # the other run logs it too: its figure joins the card, beside a's, in the selection's order
    subprocess.run([sys.executable, str(script), root, "sweep/b", "5", str(BASE["sweep/b"]), late], check=True, timeout=120)
    got = shown(page, {"sweep/a": 7, "sweep/b": 5}, tag=late)  # the slider stays at the latest step
    assert got["sweep/b"]["middle"] == list(colour("sweep/b", 5)) and got["sweep/a"]["step"] == 7
    assert page.eval_on_selector_all(f".img-card[data-tag='{late}'] .img-figure", "fs => fs.map((f) => f.dataset.run)") == ["sweep/a", "sweep/b"]
    assert answers and all(kind == "image/png" and "encoding=" not in url for url, kind in answers), answers
    # another tab: the images' object URLs are revoked
    urls = page.eval_on_selector_all(".img-card img", "is => is.map((i) => i.src)")
    assert len(urls) == 4 and all(u.startswith("blob:") for u in urls)
    page.click("#tabs button[data-tab='scalars']")
    wait_for(page, "() => [...document.querySelectorAll('.img-card img')].every((i) => !i.src)")
    assert page.evaluate("(us) => Promise.all(us.map((u) => fetch(u).then(() => false, () => true)))", urls) == [True] * 4
    assert errors == []
    page.close()


def test_chromium_decodes_the_writers_png_exactly(browser: Any) -> None:
    """Random pixels of each channel count, encoded by the writer, read back from Chromium's decoder
    (alpha kept opaque: a canvas stores premultiplied colours, which would round the others)."""
    import base64

    import numpy as np
    from tailboard import png

    page = browser.new_page()
    rng = np.random.default_rng(7)
    for c in (1, 2, 3, 4):
        pixels = rng.integers(0, 256, (9, 13, c), dtype=np.uint8)
        if c in (2, 4):
            pixels[..., -1] = 255
        data = base64.b64encode(png.encode(13, 9, c, pixels.tobytes())).decode()
        rgba = page.evaluate("""async (b64) => {
            const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
            const bitmap = await createImageBitmap(new Blob([bytes], { type: 'image/png' }),
                                                   { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
            const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
            const ctx = canvas.getContext('2d'); ctx.drawImage(bitmap, 0, 0);
            return Array.from(ctx.getImageData(0, 0, bitmap.width, bitmap.height).data); }""", data)
        got = np.array(rgba, np.uint8).reshape(9, 13, 4)
        grey = pixels[..., :1] if c <= 2 else pixels[..., :3]
        want = np.concatenate([np.repeat(grey, 3, axis=2) if c <= 2 else grey,
                               pixels[..., -1:] if c in (2, 4) else np.full((9, 13, 1), 255, np.uint8)], axis=2)
        assert (got == want).all(), c
    page.close()
