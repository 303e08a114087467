"""The viewer treats log content as hostile: real Chromium, the real sidecar, log files written by
hand the way any process could write them.

- Markup in any name or value (metric, run folder, text record, config key and value, histogram and
  vector names, host, end reason) is shown as text on every tab; nothing of it becomes an element or
  runs, and the page raises no Content-Security-Policy violation under the sidecar's strict policy.
- Bidi controls in a name are shown (``⟨U+202E⟩``), not applied.
- The token travels in the URL fragment once, then lives in localStorage and in headers: no cookie,
  nothing in the address bar, a wrong one gets the login form.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import browserkit
import pytest
from browserkit import BROWSER_MARKS, ink, new_page, page_url, wait_for
from tailboard.sidecar.server import ServerHandle, serve_in_thread

browser = browserkit.browser  # the shared fixture

pytestmark = BROWSER_MARKS

IMG = "<img src=x onerror=window.__pwned=1>"
SVG = '"><svg onload=window.__pwned=2>'
SCRIPT = "<script>window.__pwned=3</script>"
RLO = "\u202e"

HOSTILE_RUN = f"{IMG}/{SVG}"  # a folder and a run folder named with markup
FOREIGN_RUN = "<script>"
SPOOF_RUN = f"report{RLO}fdp.exe"  # shows as "reportexe.pdf" when the control is applied
SPOOF_METRIC = f"acc{RLO}ssol"

# Every security-policy violation the page reports, from before its first script runs.
CSP_PROBE = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__csp.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sample}`));
"""

# Nothing from a payload in the DOM, nothing ran: the page's own script is the only one.
NO_PAYLOAD = """() => ({
    pwned: window.__pwned === undefined ? null : window.__pwned,
    img: !!document.querySelector('img'),
    svg: !!document.querySelector('svg'),
    scripts: [...document.scripts].map((s) => s.getAttribute('src')),
    handlers: [...document.querySelectorAll('*')].flatMap((el) =>
        [...el.attributes].filter((a) => /^on/i.test(a.name)).map((a) => `${el.tagName} ${a.name}`)),
})"""
FORM_SHOWN = "() => { const f = document.getElementById('login'); return !!f && f.offsetParent !== null; }"
CLEAN = {"pwned": None, "img": False, "svg": False, "scripts": ["app.js"], "handlers": []}


def line(rec: dict[str, Any]) -> str:
    return json.dumps(rec, ensure_ascii=False) + "\n"


def write_hostile(root: Path) -> None:
    t0 = time.time() - 60
    folder = root / IMG / SVG
    folder.mkdir(parents=True)
    recs: list[dict[str, Any]] = [
        {"k": "header", "format": "tailboard", "version": 1, "run": SCRIPT, "host": f"{SVG}{IMG}", "pid": 1,
         "rank": 0, "world_size": 1, "start": t0, "argv": [SCRIPT]},
        {"k": "config", "t": t0, "config": {IMG: SCRIPT, "opt": {SVG: IMG}, "lr": 0.1}},
    ]
    for i in range(20):
        t = t0 + i
        recs.append({"k": "scalars", "step": i, "t": t, "v": {f"{IMG}/loss": 1 / (i + 1), SVG: i, f"{SCRIPT}/acc": i / 20}})
        recs.append({"k": "vector", "step": i, "t": t, "name": f"{SVG}/norms", "v": [1.0, 2.0 + i, 3.0]})
        recs.append({"k": "hist", "step": i, "t": t, "name": f"{IMG}/weights", "lo": -1.0, "hi": 1.0,
                     "counts": [1, 4 + i, 9, 4, 1], "n": 19 + i, "sum": 0.0, "sumsq": 1.0, "min": -0.9, "max": 0.9})
        recs.append({"k": "text", "step": i, "t": t, "name": IMG, "text": f"{SCRIPT}\n{SVG} {IMG}"})
    recs.append({"k": "end", "t": t0 + 30, "status": "failed", "reason": f"{IMG} {SCRIPT}", "dropped": 0})
    (folder / "rank0.jsonl").write_text("".join(line(r) for r in recs), encoding="utf-8")
    # a log line from any program: the tag prefix of the metric is markup
    (root / FOREIGN_RUN).mkdir()
    (root / FOREIGN_RUN / "metrics.jsonl").write_text(
        "".join(line({"step": i, f"{IMG}/loss": 1.0 + i}) for i in range(5)), encoding="utf-8")
    (root / SPOOF_RUN).mkdir()
    (root / SPOOF_RUN / "rank0.jsonl").write_text(
        "".join(line({"step": i, SPOOF_METRIC: i / 10}) for i in range(5)), encoding="utf-8")


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[ServerHandle]:
    write_hostile(tmp_path)
    handle = serve_in_thread(tmp_path, token="tok", follower_options={"poll_interval": 0.05})
    yield handle
    handle.stop()


def open_page(browser: Any, url: str, **kwargs: Any) -> tuple[Any, list[str]]:
    context = browser.new_context(viewport={"width": 1300, "height": 900}, **kwargs)
    page, errors = new_page(context)
    page.add_init_script(CSP_PROBE)
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    return page, errors


def visible_text(page: Any, selector: str) -> str:
    return str(page.inner_text(selector))


def test_markup_in_logs_is_shown_as_text_on_every_tab_under_a_strict_csp(browser: Any, hostile: ServerHandle) -> None:
    page, errors = open_page(browser, hostile.url)
    try:
        response = page.goto(hostile.url)
        wait_for(page, "() => window.tailboard && window.tailboard.state.infos.size === 3 "
                       "&& document.querySelectorAll('details.section').length === 3")
        assert page.evaluate(NO_PAYLOAD) == CLEAN
        wait_for(page, f"""() => {{ const t = window.tailboard; return t && t.state.infos.size === 3
            && t.charts.has({f"{IMG}/loss"!r}) && t.charts.get({f"{IMG}/loss"!r}).draws > 0
            && t.charts.has({SVG!r}) && t.charts.has({f"{SCRIPT}/acc"!r}); }}""")
        assert page.evaluate(NO_PAYLOAD) == CLEAN

        # scalars: the tag group, the chart titles and the run tree are text
        sections = page.eval_on_selector_all("details.section > summary", "els => els.map((e) => e.textContent)")
        assert IMG in sections and SCRIPT.split("/")[0] in sections, sections  # the tag: up to the first "/"
        titles = page.eval_on_selector_all(".chart-title", "els => els.map((e) => e.textContent)")
        assert {f"{IMG}/loss", SVG, f"{SCRIPT}/acc"} <= set(titles), titles
        tree = visible_text(page, "#runs")
        assert IMG in tree and SVG in tree and FOREIGN_RUN in tree
        row = page.evaluate(f"() => document.querySelector(`.run-row[data-run='{HOSTILE_RUN}']`).title")
        assert IMG in row and SCRIPT in row  # the end reason, in the tooltip
        assert ink(page, f"{IMG}/loss") > 500
        # the hover tooltip names the runs
        box = page.eval_on_selector(f"[data-metric='{SVG}'] canvas", "c => { const r = c.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; }")
        page.mouse.move(box[0] + box[2] * 0.6, box[1] + box[3] / 2)
        wait_for(page, f"() => !document.querySelector(`[data-metric='{SVG}'] .tooltip`).hidden")
        assert HOSTILE_RUN in visible_text(page, f"[data-metric='{SVG}'] .tooltip")
        assert page.evaluate(NO_PAYLOAD) == CLEAN

        page.click("button[data-tab=histograms]")
        wait_for(page, "() => { const c = document.querySelector('#tab-histograms canvas'); return c && c.width > 0; }")
        options = page.eval_on_selector_all("#tab-histograms .dist-name option", "els => els.map((e) => e.textContent)")
        assert options == [f"{IMG}/weights"], options
        assert page.inner_text("#tab-histograms .dist-title") == HOSTILE_RUN
        assert page.evaluate(NO_PAYLOAD) == CLEAN

        page.click("button[data-tab=vectors]")
        wait_for(page, "() => document.querySelectorAll('#tab-vectors .dist-key').length === 1")
        options = page.eval_on_selector_all("#tab-vectors .dist-name option", "els => els.map((e) => e.textContent)")
        assert options == [f"{SVG}/norms"], options
        assert page.inner_text("#tab-vectors .dist-key").startswith(HOSTILE_RUN)
        assert page.evaluate(NO_PAYLOAD) == CLEAN

        page.click("button[data-tab=text]")
        wait_for(page, "() => document.querySelectorAll('#tab-text .entry').length === 20")
        text = visible_text(page, "#tab-text")
        assert SCRIPT in text and IMG in text and SVG in text and HOSTILE_RUN in text
        assert page.evaluate(NO_PAYLOAD) == CLEAN

        page.click("button[data-tab=config]")
        wait_for(page, "() => document.querySelectorAll('#tab-config tbody tr').length === 3")
        head = visible_text(page, "#tab-config thead")
        assert IMG in head and f"opt.{SVG}" in head and f"{IMG}/loss last" in head
        body = visible_text(page, "#tab-config tbody")
        assert SCRIPT in body and IMG in body and HOSTILE_RUN in body
        assert page.evaluate(NO_PAYLOAD) == CLEAN

        page.click("button[data-tab=scalars]")
        wait_for(page, f"() => window.tailboard.charts.get({f'{IMG}/loss'!r}).draws > 0")
        assert page.evaluate(NO_PAYLOAD) == CLEAN
        assert page.evaluate("() => window.__csp") == []
        assert not errors, errors

        # ... under the sidecar's policy: no inline script or style, no eval
        csp = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "default-src 'none'" in csp, csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        # the probe does catch a violation: an inline style, the regression it is here for
        page.evaluate("() => document.getElementById('empty').setAttribute('style', 'color: red')")
        wait_for(page, "() => window.__csp.length > 0")
        assert page.evaluate("() => window.__csp[0]").startswith("style-src")
    finally:
        page.context.close()


def test_bidi_controls_in_names_are_shown_not_applied(browser: Any, hostile: ServerHandle) -> None:
    page, errors = open_page(browser, hostile.url)
    try:
        page.goto(hostile.url)
        wait_for(page, f"() => window.tailboard && window.tailboard.charts.has({SPOOF_METRIC!r})")
        shown = "report⟨U+202E⟩fdp.exe"
        name = page.eval_on_selector(f".run-row[data-run='{SPOOF_RUN}'] .name", "e => e.textContent")
        assert name == shown
        # isolated: its direction cannot reorder what is around it
        assert page.eval_on_selector(f".run-row[data-run='{SPOOF_RUN}'] .name",
                                     "e => getComputedStyle(e).unicodeBidi") == "isolate"
        title = page.eval_on_selector(f"[data-metric='{SPOOF_METRIC}'] .chart-title", "e => e.textContent")
        assert title == "acc⟨U+202E⟩ssol"
        assert shown in page.evaluate(f"() => document.querySelector(`.run-row[data-run='{SPOOF_RUN}']`).title")
        # nowhere on the page is the control itself left to act
        assert RLO not in page.inner_text("body")
        page.click("button[data-tab=config]")
        wait_for(page, "() => document.querySelectorAll('#tab-config tbody tr').length === 3")
        assert shown in visible_text(page, "#tab-config tbody")
        assert RLO not in page.inner_text("body")
        # the raw name is what the page asks for and keeps in the URL
        assert SPOOF_RUN in page.evaluate("() => window.tailboard.view.runs")
        assert not errors, errors
    finally:
        page.context.close()


def test_the_token_moves_from_the_url_to_local_storage_and_headers(browser: Any, hostile: ServerHandle) -> None:
    page, errors = open_page(browser, hostile.url)
    api: list[tuple[str, str | None]] = []
    sockets: list[str] = []
    page.on("request", lambda r: api.append((r.url, r.headers.get("authorization"))) if "/api/" in r.url else None)
    page.on("websocket", lambda ws: sockets.append(ws.url))
    loaded = "() => window.tailboard && window.tailboard.state.infos.size === 3 && window.tailboard.charts.size > 0"
    try:
        assert "#token=tok" in hostile.url
        page.goto(hostile.url)
        wait_for(page, loaded)
        wait_for(page, "() => document.getElementById('conn').dataset.state === 'live'")
        assert "tok" not in page.url and "token" not in page.url
        assert page.evaluate("() => document.cookie") == ""
        assert page.context.cookies() == []
        assert page.evaluate("() => localStorage.getItem('tailboard.token')") == "tok"
        # every REST call carries the header, none the token in its URL; the socket neither
        assert api and all(auth == "Bearer tok" and "tok" not in url for url, auth in api), api
        assert sockets and all("tok" not in u for u in sockets), sockets
        assert page.evaluate(FORM_SHOWN) is False

        # a reload without the token in the URL still works: the page kept it
        page.goto(f"{hostile.base_url}/?x=wall")
        wait_for(page, loaded)
        wait_for(page, "() => document.getElementById('conn').dataset.state === 'live'")
        assert page.evaluate("() => window.tailboard.view.xaxis") == "wall"

        # log out: the token is forgotten, the form is back
        page.click("#logout")
        wait_for(page, FORM_SHOWN)
        assert page.evaluate("() => localStorage.getItem('tailboard.token')") is None
        assert not errors, errors
    finally:
        page.context.close()


def test_a_wrong_or_missing_token_gets_the_login_form(browser: Any, hostile: ServerHandle) -> None:
    page, errors = open_page(browser, hostile.url)
    try:
        # ?token= works too, and leaves the address bar with the rest of the query kept
        page.goto(page_url(hostile, "x=relative&token=wrong", token=""))
        wait_for(page, FORM_SHOWN)
        assert "wrong" not in page.url and "x=relative" in page.url
        assert "refused" in page.inner_text("#login")
        assert page.evaluate("() => window.tailboard.state.infos.size") == 0
        assert page.evaluate("() => localStorage.getItem('tailboard.token')") is None
        page.fill("#login input", "tok")
        page.click("#login button[type=submit]")
        wait_for(page, "() => window.tailboard.state.infos.size === 3 && window.tailboard.charts.size > 0")
        wait_for(page, "() => document.getElementById('conn').dataset.state === 'live'")
        assert page.evaluate(FORM_SHOWN) is False
        assert page.evaluate("() => localStorage.getItem('tailboard.token')") == "tok"
        assert page.evaluate("() => window.tailboard.view.xaxis") == "relative"

        # a fresh browser with no token at all: the form, before anything else
        other, other_errors = open_page(browser, hostile.url)
        other.goto(f"{hostile.base_url}/")
        wait_for(other, FORM_SHOWN)
        assert other.evaluate("() => window.tailboard.state.infos.size") == 0
        assert "refused" not in other.inner_text("#login")
        other.context.close()
        assert page.evaluate("() => window.__csp") == []
        assert not errors and not other_errors, errors + other_errors
    finally:
        page.context.close()


def test_two_sidecars_on_two_ports_keep_their_own_tokens(
        browser: Any, hostile: ServerHandle, tmp_path_factory: pytest.TempPathFactory) -> None:
    second_root = tmp_path_factory.mktemp("second")
    (second_root / "only").mkdir(parents=True)
    (second_root / "only" / "m.jsonl").write_text(line({"step": 0, "loss": 1.0}))
    second = serve_in_thread(second_root, token="other", follower_options={"poll_interval": 0.05})
    context = browser.new_context()
    try:
        a, b = context.new_page(), context.new_page()
        a.goto(hostile.url)
        b.goto(second.url)
        wait_for(a, "() => window.tailboard && window.tailboard.state.infos.size === 3")
        wait_for(b, "() => window.tailboard && window.tailboard.state.infos.size === 1")
        # each one, reloaded without its token, still has its own
        a.goto(f"{hostile.base_url}/")
        b.goto(f"{second.base_url}/")
        wait_for(a, "() => window.tailboard && window.tailboard.state.infos.size === 3")
        wait_for(b, "() => window.tailboard && window.tailboard.state.infos.size === 1")
        assert context.cookies() == []
    finally:
        context.close()
        second.stop()
