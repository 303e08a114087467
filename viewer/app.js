// The dashboard: wires the connection, the run list, the charts and the panels together.

import { Connection } from "./connection.js";
import { RunData, runColor, setColorSelection, viewToQuery, queryToView, groupByPrefix, toCSV } from "./state.js";
import { decodeSeries } from "./protocol.js";
import { lowerBound } from "./decimate.js";
import { Chart } from "./chart.js";
import { RunList } from "./runs.js";
import { showHistograms, showVectors, showTexts, showConfig } from "./panels.js";
import { getJSON, getToken, setToken, setUnauthorizedHandler, takeTokenFromAddressBar, Unauthorized } from "./api.js";
import { h, label, visible } from "./dom.js";
import { LoginForm } from "./login.js";

const $ = (id) => document.getElementById(id);
const AUTO_SELECT = 12;

// The token came in the address bar (#token=, or ?token=): keep it, and keep it out of URLs that get
// copied around.
takeTokenFromAddressBar();

const view = queryToView(location.search);
setColorSelection(view.runs);
const state = {
  runs: new Map(), // id -> RunData
  infos: new Map(), // id -> run object
  charts: new Map(), // metric -> Chart
  detail: new Map(), // `${run}\u0000${metric}` -> decoded series for the zoomed range
  tab: "scalars",
  until: null, // time travel: show points with step <= until (null = live)
  dirty: true,
  userSelected: view.runs.length > 0,
};

const dark = () => document.documentElement.dataset.theme === "dark";
function applyTheme() {
  const t = view.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
  document.documentElement.dataset.theme = t;
  state.dirty = true;
  schedule();
}

let urlTimer = 0;
function saveView() {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const q = viewToQuery(view);
    history.replaceState(null, "", `${location.pathname}${q ? "?" + q : ""}`);
  }, 150);
}

const conn = new Connection({
  points: 2000,
  onStatus: (s) => {
    const el = $("conn");
    el.dataset.state = s;
    el.querySelector("span").textContent = s;
  },
  onMessage: (msg) => handle(msg),
});

const runList = new RunList($("runs"), {
  dark,
  onSelect: (sel) => {
    state.userSelected = true;
    setSelection([...sel]);
  },
});

function setSelection(ids) {
  const before = new Set(view.runs);
  view.runs = ids.filter((id) => state.infos.has(id) || !state.infos.size).sort();
  setColorSelection(view.runs);
  const now = new Set(view.runs);
  conn.unsubscribe([...before].filter((r) => !now.has(r)));
  conn.subscribe(view.runs.filter((r) => !before.has(r) || !state.runs.get(r)?.loaded));
  for (const r of before) if (!now.has(r)) state.runs.delete(r);
  runList.setSelected(view.runs);
  saveView();
  state.dirty = true;
  schedule();
  if (state.tab !== "scalars") showTab(state.tab);
}

function runData(id) {
  let r = state.runs.get(id);
  if (!r) { r = new RunData(id); state.runs.set(id, r); }
  return r;
}

function handle(msg) {
  switch (msg.type) {
    case "runs": {
      for (const r of msg.runs || []) state.infos.set(r.id, r);
      for (const id of msg.removed || []) state.infos.delete(id);
      if (msg.full) for (const id of [...state.infos.keys()]) if (!msg.runs.some((r) => r.id === id)) state.infos.delete(id);
      runList.update(msg.runs || [], msg.removed || [], !!msg.full);
      if (msg.loading) progress(msg.loading);
      if (!state.userSelected) {
        const auto = [...state.infos.keys()].sort().slice(0, AUTO_SELECT);
        if (auto.join() !== view.runs.join()) setSelection(auto);
      } else if (!conn.runs.size && view.runs.length) {
        setSelection(view.runs);
      }
      $("empty").textContent = state.infos.size ? "Select runs on the left to compare them." : "Waiting for runs…";
      state.dirty = true;
      break;
    }
    case "snapshot":
      runData(msg.run).applySnapshot(msg);
      clearDetail(msg.run);
      state.dirty = true;
      break;
    case "delta":
      runData(msg.run).applyDelta(msg);
      state.dirty = true;
      break;
    case "reset":
      runData(msg.run).applySnapshot({ series: {} });
      clearDetail(msg.run);
      state.dirty = true;
      break;
    case "progress":
      progress(msg);
      break;
    default:
      break;
  }
  schedule();
}

function progress(p) {
  const el = $("progress");
  const total = p.total_bytes || 0, done = p.done || (total && p.bytes >= total);
  el.hidden = !!done || !total;
  if (!el.hidden) {
    const f = Math.min(1, (p.bytes || 0) / total);
    el.querySelector("div").style.width = `${(f * 100).toFixed(1)}%`;
    el.querySelector("span").textContent = `loading ${(f * 100).toFixed(0)}%`;
  }
}

function clearDetail(run) {
  for (const k of [...state.detail.keys()]) if (k.startsWith(run + "\u0000")) state.detail.delete(k);
}

let frame = 0;
function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    if (state.dirty && state.tab === "scalars") sync();
  });
}

function metricFilter() {
  try {
    return view.metrics ? new RegExp(view.metrics, "i") : null;
  } catch {
    return null;
  }
}

/** Series of one run and metric as drawn: zoom detail when fetched, cut at the time-travel step. */
function seriesFor(run, metric) {
  const rd = state.runs.get(run);
  const buf = rd?.series.get(metric);
  if (!buf || !buf.length) return null;
  const detail = state.detail.get(run + "\u0000" + metric);
  let v = buf.view(), version = buf.version;
  if (detail && view.zoom) {
    // finer data inside the zoomed range, what we hold outside it
    v = detail; version = `d${detail.version}`;
  }
  if (state.until != null) {
    const n = lowerBound(v.steps, state.until + 1e-9);
    v = { steps: v.steps.subarray(0, n), values: v.values.subarray(0, n), times: v.times.subarray(0, n) };
    version = `${version}@${state.until}`;
  }
  const info = state.infos.get(run);
  return { steps: v.steps, values: v.values, times: v.times, id: run, color: runColor(run, dark()),
    version: `${version}|${dark()}`, t0: info?.started };
}

/** Rebuild the chart grid from the data held: one chart per metric, grouped by tag prefix. */
function sync() {
  state.dirty = false;
  const filter = metricFilter();
  const names = new Set();
  for (const r of view.runs) for (const m of state.runs.get(r)?.series.keys() || []) if (!filter || filter.test(m)) names.add(m);
  const groups = groupByPrefix(names);
  const host = $("sections");
  $("empty").hidden = names.size > 0;
  for (const [metric, chart] of state.charts) if (!names.has(metric)) { chart.destroy(); state.charts.delete(metric); }
  for (const [group, metrics] of groups) {
    const gid = `section-${group || "_"}`;
    let sec = document.getElementById(gid);
    if (!sec) {
      sec = h("details", { class: "section", id: gid, open: true },
        h("summary", null, group ? label(group) : "metrics"), h("div", { class: "grid" }));
      sec.addEventListener("toggle", () => { if (sec.open) { state.dirty = true; schedule(); } });
      const after = [...host.children].find((c) => c.id > gid);
      host.insertBefore(sec, after || null);
    }
    const grid = sec.querySelector(".grid");
    for (const metric of metrics) {
      let chart = state.charts.get(metric);
      if (!chart) {
        chart = new Chart(grid, metric, { onZoom, onHover, onExport });
        state.charts.set(metric, chart);
      }
      chart.setView({ xaxis: view.xaxis, logy: view.logy, outliers: view.outliers, smoothing: view.smoothing, zoom: view.zoom });
      if (!sec.open) continue; // collapsed sections are not drawn
      chart.setSeries(view.runs.map((r) => seriesFor(r, metric)).filter(Boolean));
    }
  }
  for (const sec of [...host.children]) if (!sec.querySelector(".chart")) sec.remove();
  updateReplayRange();
}

function onHover(x, source) {
  for (const c of state.charts.values()) if (c !== source) { c.hoverX = x; c.invalidate(); }
}

let zoomSeq = 0;
/** Zoom is shared by every chart; where we hold thinned data, ask the server for detail. */
async function onZoom(range) {
  view.zoom = range;
  saveView();
  state.detail.clear();
  state.dirty = true;
  schedule();
  if (!range || view.xaxis !== "step") return;
  const seq = ++zoomSeq;
  const jobs = [];
  for (const r of view.runs) {
    for (const [metric, buf] of state.runs.get(r)?.series || []) {
      if (!buf.downsampled || !state.charts.has(metric)) continue;
      const width = state.charts.get(metric).canvas.clientWidth || 500;
      const q = { run: r, metric, start: String(Math.floor(range[0])), end: String(Math.ceil(range[1])), points: String(width * 4) };
      jobs.push(getJSON("/api/series", q).then((body) => {
        if (seq !== zoomSeq) return;
        const d = decodeSeries(body);
        d.version = seq;
        state.detail.set(r + "\u0000" + metric, d);
        state.dirty = true;
        schedule();
      }).catch(() => {}));
    }
  }
  await Promise.all(jobs);
}

function download(name, href) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

function onExport(kind, chart) {
  const safe = chart.title.replace(/[^\w.-]+/g, "_");
  if (kind === "png") {
    download(`${safe}.png`, chart.canvas.toDataURL("image/png"));
  } else {
    const entries = view.runs.map((r) => [r, state.runs.get(r)?.series.get(chart.title)]).filter(([, b]) => b);
    const url = URL.createObjectURL(new Blob([toCSV(chart.title, entries)], { type: "text/csv" }));
    download(`${safe}.csv`, url);
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }
}

// Time travel: the slider covers steps 0..max over the selected runs; at its right end it follows live.
function maxStep() {
  let m = 0;
  for (const r of view.runs) for (const buf of state.runs.get(r)?.series.values() || []) if (buf.length) m = Math.max(m, buf.steps[buf.length - 1]);
  return m;
}
function updateReplayRange() {
  const out = $("replay-out");
  out.textContent = state.until == null ? "live" : `step ${Math.round(state.until)}`;
}
let playTimer = 0;
function setUntil(frac) {
  // a whole step: the one named in #replay-out is the last one drawn
  state.until = frac >= 1 ? null : Math.round(frac * maxStep());
  state.dirty = true;
  schedule();
  updateReplayRange();
}

function showTab(tab) {
  state.tab = tab;
  for (const b of $("tabs").querySelectorAll("button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== `tab-${tab}`;
  $("controls").hidden = tab !== "scalars";
  const el = $(`tab-${tab}`);
  const runs = view.runs;
  const fail = (e) => { el.replaceChildren(h("p", { class: "empty" }, `Could not load: ${visible(e.message || e)}`)); };
  if (tab === "scalars") { state.dirty = true; schedule(); }
  else if (tab === "histograms") showHistograms(el, runs, state.infos).catch(fail);
  else if (tab === "vectors") showVectors(el, runs, state.infos).catch(fail);
  else if (tab === "text") showTexts(el, runs, state.infos).catch(fail);
  else if (tab === "config") showConfig(el, runs, state.runs).catch(fail);
}

function bindControls() {
  const sm = $("smoothing");
  sm.value = String(view.smoothing);
  $("smoothing-out").textContent = view.smoothing.toFixed(2);
  sm.addEventListener("input", () => {
    view.smoothing = +sm.value;
    $("smoothing-out").textContent = view.smoothing.toFixed(2);
    saveView(); state.dirty = true; schedule();
  });
  const xa = $("xaxis");
  xa.value = view.xaxis;
  xa.addEventListener("change", () => { view.xaxis = xa.value; view.zoom = null; state.detail.clear(); saveView(); state.dirty = true; schedule(); });
  for (const id of ["logy", "outliers"]) {
    const el = $(id);
    el.checked = view[id];
    el.addEventListener("change", () => { view[id] = el.checked; saveView(); state.dirty = true; schedule(); });
  }
  const mf = $("metric-filter");
  mf.value = view.metrics;
  mf.addEventListener("input", () => { view.metrics = mf.value; saveView(); state.dirty = true; schedule(); });
  const rf = $("run-filter");
  rf.value = view.filter;
  runList.setFilter(view.filter);
  rf.addEventListener("input", () => { view.filter = rf.value; runList.setFilter(rf.value); saveView(); });
  $("sel-all").addEventListener("click", () => { state.userSelected = true; setSelection(runList.visibleIds()); });
  $("sel-none").addEventListener("click", () => { state.userSelected = true; setSelection([]); });
  $("theme").addEventListener("click", () => { view.theme = dark() ? "light" : "dark"; saveView(); applyTheme(); runList.render(); });
  const rp = $("replay");
  rp.addEventListener("input", () => { clearInterval(playTimer); playTimer = 0; setUntil(+rp.value / 1000); });
  $("play").addEventListener("click", () => {
    if (playTimer) { clearInterval(playTimer); playTimer = 0; $("play").textContent = "▶"; return; }
    if (+rp.value >= 1000) rp.value = "0";
    $("play").textContent = "❚❚";
    playTimer = setInterval(() => {
      rp.value = String(Math.min(1000, +rp.value + 5));
      setUntil(+rp.value / 1000);
      if (+rp.value >= 1000) { clearInterval(playTimer); playTimer = 0; $("play").textContent = "▶"; }
    }, 50);
  });
  $("tabs").addEventListener("click", (e) => { const b = e.target.closest("button"); if (b) showTab(b.dataset.tab); });
  window.addEventListener("resize", () => { for (const c of state.charts.values()) c.invalidate(); });
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);
  // "updated N s ago" stays current
  setInterval(() => runList.render(), 5000);
}

// Without a token, or with one the server refuses, the page asks for it; "log out" forgets it.
const login = new LoginForm(document.body, { onToken: (token) => { setToken(token); begin(); } });
setUnauthorizedHandler(() => {
  setToken(null);
  conn.stop();
  conn.onStatus("offline");
  login.show("The sidecar refused that token: paste the one it printed.");
});
$("logout").addEventListener("click", () => {
  setToken(null);
  conn.stop();
  conn.onStatus("offline");
  login.show();
});

/** Check the token with the run list (shown at once), then connect. */
async function begin() {
  if (!getToken()) { login.show(); return; }
  try {
    const body = await getJSON("/api/runs");
    handle({ type: "runs", runs: body.runs || [], removed: [], full: true, loading: body.loading });
  } catch (e) {
    if (e instanceof Unauthorized) return; // the handler shows the form
    // the sidecar is not reachable now: the connection retries on its own
  }
  login.hide();
  conn.start();
}

applyTheme();
bindControls();
if (view.runs.length) conn.subscribe(view.runs);
begin();

// For tests and benchmarks: a read-only window onto the page's state.
window.tailboard = { state, view, conn, charts: state.charts, runList };
