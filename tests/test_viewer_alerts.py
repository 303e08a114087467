"""The page's alerts and stop control in headless Chromium against the real sidecar: alerts raised by
the real writer's records show live as a run's badge and in the Alerts tab (hostile text as text),
a notification once a user asked for them, and a stop button that goes through the control file to
a real trainer process and back."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import pytest
import tailboard
from browserkit import BROWSER_MARKS, page_url, wait_for
from tailboard.run import CONTROL_FILE
from tailboard.sidecar.server import ServerHandle, serve_in_thread
from test_control import read_only_tree  # noqa: F401 (the fixture: a killed run in a read-only tree)

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

TOKEN = "alerts-tok"
FAST = {"poll_interval": 0.05, "sweep_interval": 0.2}
HOSTILE = '<img src=x onerror="window.pwned=1">\u202eevil'
HOSTILE_SHOWN = '<img src=x onerror="window.pwned=1">⟨U+202E⟩evil'
VIEWER = Path(__file__).resolve().parent.parent / "viewer"
# The stop button posts through api.js (the one module that makes requests); without its postJSON the
# page shows none.
CAN_POST = "export async function postJSON" in (VIEWER / "api.js").read_text()
needs_post = pytest.mark.skipif(not CAN_POST, reason="viewer/api.js has no postJSON: the page cannot post a stop request")

# Observed, not replaced: what the page does with CSP, dialogs and notifications is recorded.
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
window.__notes = []; window.__asked = 0;
if (window.Notification) {
  const Real = window.Notification;
  class Recorded extends Real {
    constructor(title, options) { window.__notes.push({ title, body: options && options.body }); super(title, options); }
  }
  const ask = Real.requestPermission.bind(Real);
  Recorded.requestPermission = (...a) => { window.__asked++; return ask(...a); };
  window.Notification = Recorded;
}
"""


class Page:
    """A page on the sidecar with its errors, dialogs and requests recorded."""

    def __init__(self, browser: Any, handle: ServerHandle, *, notifications: bool = False) -> None:
        self.context = browser.new_context(viewport={"width": 1300, "height": 850})
        if notifications:
            self.context.grant_permissions(["notifications"], origin=handle.base_url)
        self.context.add_init_script(WATCH)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.posts: list[dict[str, Any]] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        self.page.on("request", self._request)
        self.page.goto(page_url(handle))

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Any) -> None:
        if request.method == "POST":
            self.posts.append({"url": request.url, "headers": request.headers, "body": request.post_data})

    def wait(self, js: str, timeout: float = 10.0) -> None:
        wait_for(self.page, js, timeout)

    def clean(self) -> None:
        """Nothing ran that the page did not mean: no error, no dialog, no CSP violation, no markup."""
        assert self.errors == [] and self.dialogs == []
        assert self.page.evaluate("() => window.__csp") == []
        assert self.page.evaluate("() => window.pwned") is None

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[ServerHandle, dict[str, tailboard.Run]]]:
    runs = {name: tailboard.init(tmp_path / name) for name in ("exp/a", "exp/b")}
    for i in range(5):
        for run in runs.values():
            run.log({"train/loss": 1.0 / (i + 1)}, step=i)
    handle = serve_in_thread(tmp_path, token=TOKEN, follower_options=FAST)
    yield handle, runs
    for run in runs.values():
        run.finish()
    handle.stop()


def badge(run: str, text: str, level: str) -> str:
    return (f"() => {{ const b = document.querySelector('.run-row[data-run={json.dumps(run)}] .alert-badge');"
            f" return !!b && b.textContent === {json.dumps(text)} && b.classList.contains({json.dumps(level)}); }}")


def rows(page: Any) -> list[dict[str, Any]]:
    return list(page.eval_on_selector_all("#tab-alerts .alert-row", """els => els.map((e) => ({
        level: e.querySelector('.alert-level').textContent, state: e.querySelector('.alert-state').textContent,
        title: e.querySelector('.alert-title').textContent, run: e.querySelector('.alert-run')?.textContent ?? null,
        text: e.querySelector('.alert-text')?.textContent ?? '', when: e.querySelector('.alert-when').textContent }))"""))


def test_alerts_show_live_as_badges_and_in_the_list_as_text(browser: Any, tree: Any) -> None:
    handle, runs = tree
    p = Page(browser, handle)
    page = p.page
    try:
        p.wait("() => document.querySelectorAll('.run-row[data-run]').length === 2")
        assert page.query_selector(".alert-badge") is None
        runs["exp/a"].log({"train/loss": math.nan}, step=5)
        p.wait(badge("exp/a", "▲ 1", "error"))
        runs["exp/a"].alert(HOSTILE, "line one\nsecond \u202e line", level="warning")
        runs["exp/b"].alert("plateau", "no progress", level="info")
        p.wait(badge("exp/a", "▲ 2", "error"))
        p.wait(badge("exp/b", "▲ 1", "info"))
        p.wait("() => document.getElementById('alert-count').textContent === '3'")

        page.click("#tabs button[data-tab=alerts]")
        p.wait("() => document.querySelectorAll('#tab-alerts .alert-row').length === 3")
        got = rows(page)
        # newest first: the trainer's alerts came after the NaN (the two of them in either order)
        seqs = page.eval_on_selector_all("#tab-alerts .alert-row", "els => els.map((e) => Number(e.dataset.seq))")
        assert seqs == sorted(seqs, reverse=True)
        assert {r["title"] for r in got[:2]} == {HOSTILE_SHOWN, "plateau"}, got
        hostile = next(r for r in got if r["title"] == HOSTILE_SHOWN)
        assert hostile["level"] == "warning" and hostile["state"] == "active" and hostile["run"] == "exp/a"
        assert hostile["text"] == "line one\nsecond ⟨U+202E⟩ line" and hostile["when"].startswith("since ")
        nan = got[-1]
        assert nan["title"] == "Non-finite value in exp/a" and nan["level"] == "error" and "train/loss" in nan["text"]
        assert page.query_selector("#tab-alerts img") is None
        p.clean()

        # the NaN ends: its alert shows cleared, with when it ended; the badge says what is left
        runs["exp/a"].log({"train/loss": 0.5}, step=6)
        p.wait("""() => [...document.querySelectorAll('#tab-alerts .alert-row')].some((e) =>
                  e.querySelector('.alert-title').textContent === 'Non-finite value in exp/a'
                  && e.classList.contains('cleared') && e.querySelector('.alert-when').textContent.includes('until'))""")
        p.wait(badge("exp/a", "▲ 1", "warning"))
        assert [r["state"] for r in rows(page) if r["level"] == "error"] == ["cleared"]

        # a click on a run shows its alerts only; the chip shows them all again
        page.click("#tab-alerts .alert-row.info .alert-run")
        p.wait("() => document.querySelectorAll('#tab-alerts .alert-row').length === 1")
        assert [r["run"] for r in rows(page)] == ["exp/b"]
        page.click("#tab-alerts .alert-unfilter")
        p.wait("() => document.querySelectorAll('#tab-alerts .alert-row').length === 3")
        p.clean()
    finally:
        p.close()


def test_a_notification_only_after_the_user_asked_and_only_for_what_fires_then(browser: Any, tree: Any) -> None:
    handle, runs = tree
    p = Page(browser, handle, notifications=True)
    page = p.page
    try:
        p.wait("() => document.querySelectorAll('.run-row[data-run]').length === 2")
        runs["exp/a"].log({"train/loss": math.inf}, step=5)  # shown before the user asked: no notification
        page.click("#tabs button[data-tab=alerts]")
        p.wait("() => document.querySelectorAll('#tab-alerts .alert-row.error').length === 1")
        assert page.evaluate("() => [window.__asked, window.__notes.length]") == [0, 0]  # never asked on load
        page.click("#tab-alerts .alert-notify")
        p.wait("() => document.querySelector('#tab-alerts .alert-notify').textContent === 'Notifying'")
        assert page.evaluate("() => window.__asked") == 1
        runs["exp/b"].alert(HOSTILE, "at step 4", level="error")
        p.wait("() => window.__notes.length === 1")
        [note] = page.evaluate("() => window.__notes")
        assert note == {"title": f"tailboard error: {HOSTILE_SHOWN}", "body": "run exp/b\nat step 4"}
        time.sleep(0.3)  # nothing else comes: the Inf that fired before is not news
        assert page.evaluate("() => window.__notes.length") == 1
        p.clean()
    finally:
        p.close()


TRAINER = """
import sys, time, tailboard
run = tailboard.init(sys.argv[1])
step = 0
while not run.should_stop():
    run.log({"loss": 1.0 / (step + 1)}, step=step)
    step += 1
    time.sleep(0.02)
    if step > 3000:
        sys.exit(3)  # never asked to stop: bounded all the same
time.sleep(1.5)  # a checkpoint being saved: the page shows the acknowledgement meanwhile
run.finish()
"""

# Each state a run's stop line took, in order (a MutationObserver: no state is missed between polls).
STATES = """() => { window.__states = []; const seen = () => {
    const r = document.querySelector('.stop-row[data-run="exp/a"]'); const s = r ? r.dataset.state : 'absent';
    if (window.__states.at(-1) !== s) window.__states.push(s); };
  new MutationObserver(seen).observe(document.getElementById('stops'), { subtree: true, childList: true, attributes: true });
  seen(); }"""


@needs_post
def test_the_stop_button_goes_to_the_trainer_and_back(browser: Any, tmp_path: Path) -> None:
    handle = serve_in_thread(tmp_path, token=TOKEN, follower_options=FAST, allow_control=True)
    script = tmp_path / "trainer.py"
    script.write_text(TRAINER)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "exp/a")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p = Page(browser, handle)
    page = p.page
    try:
        p.wait("() => !!document.querySelector(\".stop-row[data-run='exp/a'] button[data-act=stop]\")", timeout=20)
        page.evaluate(STATES)
        page.click(".stop-row[data-run='exp/a'] button[data-act=stop]")
        page.click(".stop-row[data-run='exp/a'] button[data-act=confirm]")  # the in-page confirmation
        p.wait("() => window.__states.includes('finished')", timeout=30)
        shown = [s for s in page.evaluate("() => window.__states") if s in ("requested", "acknowledged", "finished")]
        assert shown == ["requested", "acknowledged", "finished"], page.evaluate("() => window.__states")
        assert page.inner_text(".stop-row[data-run='exp/a'] .stop-state") == "Stopped: the run finished"
        [post] = p.posts
        assert post["url"] == f"{handle.base_url}/api/runs/exp/a/stop" and json.loads(post["body"]) == {}
        assert post["headers"]["content-type"] == "application/json"
        assert post["headers"]["authorization"] == f"Bearer {TOKEN}"
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        request = json.loads((tmp_path / "exp/a" / CONTROL_FILE).read_text())
        records = [json.loads(line) for line in (tmp_path / "exp/a/rank0.jsonl").read_text().splitlines()]
        [ack] = [r for r in records if r.get("name") == "tailboard/control"]
        assert ack["nonce"] == request["nonce"] and records[-1]["status"] == "finished"
        p.clean()
    finally:
        p.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        handle.stop()


@needs_post
def test_a_refused_stop_is_one_line_under_the_run(browser: Any, read_only_tree: Path) -> None:  # noqa: F811
    handle = serve_in_thread(read_only_tree, token=TOKEN, follower_options=FAST, allow_control=True, gpu="off")
    p = Page(browser, handle)
    try:
        p.wait("() => !!document.querySelector(\".stop-row[data-run='exp/a'] button[data-act=stop]\")")
        p.page.click(".stop-row[data-run='exp/a'] button[data-act=stop]")
        p.page.click(".stop-row[data-run='exp/a'] button[data-act=confirm]")
        p.wait("() => !!document.querySelector(\".stop-row[data-run='exp/a'] .stop-error\")")
        said = p.page.inner_text(".stop-row[data-run='exp/a'] .stop-error")
        assert said.startswith("Could not stop: the log tree is read-only here") and "\n" not in said, said
        assert p.page.query_selector(".stop-row[data-run='exp/a'] button[data-act=stop]") is not None  # try again
        assert p.page.evaluate("() => document.querySelector('.stop-error').getBoundingClientRect().height") < 20
        assert not list(read_only_tree.rglob(CONTROL_FILE))
        p.clean()
    finally:
        p.close()
        handle.stop()


def test_without_control_there_is_no_stop_button(browser: Any, tree: Any) -> None:
    handle, runs = tree
    p = Page(browser, handle)
    try:
        p.wait("() => document.querySelectorAll('.run-row[data-run]').length === 2")
        p.wait("() => window.tailboard.view.runs.length === 2")
        assert p.page.evaluate("() => document.getElementById('stops').hidden")
        assert p.page.query_selector("button[data-act=stop]") is None
        p.clean()
    finally:
        p.close()
