"""Text records shown as Markdown in the text tab: what a writer's notes look like (headings, tables,
lists, code), and what they can't do: run markup, load an image, or send a click to another site."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import browserkit
from browserkit import BROWSER_MARKS, new_page, page_url, wait_for
from tailboard.sidecar.server import serve_in_thread

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

NOTES = """# Run notes

Trained with **AdamW** and *cosine* decay; see [the other run](?runs=exp%2Fb) or `lr=3e-4`.

| metric | value |
|:--|--:|
| loss | 0.25 |
| acc | 0.91 |

- data: CIFAR-10
  - augmented
- epochs: 3

```
for step in range(10):  # <b>not bold</b>
```

> a quote

<img src=x onerror=window.__pwned=1> <script>window.__pwned=2</script>
![a cat](http://127.0.0.1:9/cat.png) [elsewhere](https://example.org/) [js](javascript:window.__pwned=3)
"""


def test_text_records_are_markdown_that_cannot_act(browser: Any, tmp_path: Path) -> None:
    t0 = time.time()
    for name, text in (("a", NOTES), ("b", "plain *b*")):
        (tmp_path / "exp" / name).mkdir(parents=True)
        (tmp_path / "exp" / name / "rank0.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (
            {"k": "header", "format": "tailboard", "version": 1, "pid": 1, "start": t0},
            {"k": "scalars", "step": 0, "t": t0, "v": {"loss": 1.0}},
            {"k": "text", "step": 0, "t": t0, "name": "notes", "text": text},
        )))
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    page, errors = new_page(browser, viewport={"width": 1200, "height": 900})
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(page_url(handle, "runs=exp/a"))
        wait_for(page, "() => window.tailboard && window.tailboard.state.infos.size === 2 "
                       "&& window.tailboard.view.runs.includes('exp/a')")
        # the link's run is ticked in the run list, the other is not
        wait_for(page, "() => document.querySelector(\".run-row[data-run='exp/a'] input\")?.checked === true")
        assert page.evaluate("() => document.querySelector(\".run-row[data-run='exp/b'] input\").checked") is False
        assert page.inner_text("#run-count") == "1 / 2 runs"
        page.click("button[data-tab=text]")
        wait_for(page, "() => !!document.querySelector('#tab-text .md table')")
        md = "#tab-text .md"
        # what the notes say, as structure
        assert page.inner_text(f"{md} h3") == "Run notes"
        assert page.inner_text(f"{md} strong") == "AdamW" and page.inner_text(f"{md} em") == "cosine"
        cells = page.eval_on_selector_all(f"{md} td", "els => els.map((e) => [e.textContent, e.className])")
        assert cells == [["loss", "md-left"], ["0.25", "md-right"], ["acc", "md-left"], ["0.91", "md-right"]]
        assert page.eval_on_selector_all(f"{md} > ul > li", "els => els.length") == 2
        assert page.inner_text(f"{md} ul ul li") == "augmented"
        assert "<b>not bold</b>" in page.inner_text(f"{md} pre code")
        assert page.inner_text(f"{md} blockquote") == "a quote"
        # the link to this page is live (a view of this sidecar); the others are inert text
        links = page.eval_on_selector_all(f"{md} a", "els => els.map((a) => [a.textContent, a.href, a.rel])")
        assert links == [["the other run", f"{handle.base_url}/?runs=exp%2Fb", "noopener noreferrer"]], links
        inert = page.eval_on_selector_all(f"{md} .md-link-inert", "els => els.map((e) => [e.textContent, e.title])")
        assert [t for t, _ in inert] == ["elsewhere", "js"]
        assert "https://example.org/" in inert[0][1] and "javascript:" in inert[1][1]
        # markup is text, the image is its alt text and was never fetched, nothing ran
        text = page.inner_text(md)
        assert "<img src=x onerror=window.__pwned=1>" in text and "<script>window.__pwned=2</script>" in text
        assert "[image: a cat]" in text
        assert page.evaluate("() => [window.__pwned, document.querySelectorAll('#tab-text img, #tab-text script').length]") == [None, 0]
        assert not [u for u in requests if "cat.png" in u or "example.org" in u]
        # clicking the inert link goes nowhere
        before = page.url
        page.click(f"{md} .md-link-inert >> text=js")
        assert page.url == before and page.evaluate("() => window.__pwned") is None

        # the box shows the text raw, as written
        page.click("#tab-text .texts-mode input")
        wait_for(page, "() => !document.querySelector('#tab-text .md') && !!document.querySelector('#tab-text pre')")
        assert page.inner_text("#tab-text pre").startswith("# Run notes\n\nTrained with **AdamW**")
        assert not errors, errors
    finally:
        page.close()
        handle.stop()
