// The dashboard's composition root: the data the page holds, and the wiring of the connection, the
// run list and its width, the run labels and configs, the chart grid and what its charts draw
// (runs or groups, on which x axis), the controls, time travel, zoom detail, the tabs and the login.
// Each of those is its own module; what is here is what joins them.

import { Connection } from "./connection.js";
import { RunData, runColor, setColorSelection, queryToView, toCSV } from "./state.js";
import { lowerBound } from "./decimate.js";
import { RunList } from "./runs.js";
import { ChartGrid } from "./layout.js";
import { exportButtons } from "./exports.js";
import { bindControls, saveView, applyTheme, isDark, metricFilter, showZoom, showAxes, showGroups } from "./controls.js";
import { runLabels, differingKeys } from "./names.js";
import { RunConfigs } from "./configs.js";
import { SeriesComposer } from "./compose.js";
import { RunsTable } from "./hptable.js";
import { resizableSidebar } from "./sidebar.js";
import { TimeTravel } from "./timetravel.js";
import { ZoomDetail } from "./detail.js";
import { showTab, bindTabs } from "./tabs.js";
import { showConnection, showProgress } from "./status.js";
import { describeFound, showFound } from "./found.js";
import { getJSON, getToken, setToken, setUnauthorizedHandler, takeTokenFromAddressBar, Unauthorized } from "./api.js";
import { LoginForm } from "./login.js";
import { RankedRuns } from "./ranks.js";
import { AlertsView } from "./alertview.js";
import { StopPanel } from "./stop.js";
import { GpuCharts, autoSelection } from "./gpucharts.js";

const $ = (id) => document.getElementById(id);
const AUTO_SELECT = 12;

// The token came in the address bar (#token=, or ?token=): keep it, and keep it out of URLs that get
// copied around.
takeTokenFromAddressBar();

const view = queryToView(location.search);
setColorSelection(view.runs);
const detail = new ZoomDetail({ onData: () => redraw() });
const state = {
  runs: new Map(), // id -> RunData
  infos: new Map(), // id -> run object
  infosVersion: 0, // bumped by every runs message
  charts: null, // metric -> Chart (the grid's)
  detail: detail.series,
  metrics: new Set(), // every metric of the selected runs (what a chart's x axis may be)
  dark: false, // the theme, as of the last sync
  axes: new Map(), // metric -> the x axis of its chart when not the page's (view.cx)
  tab: "scalars",
  loading: null, // the latest runs message's `loading`: the backlog's progress and the files found
  until: null, // time travel: show points with step <= until (null = live)
  dirty: true,
  userSelected: view.runs.length > 0,
};

const conn = new Connection({ points: 2000, onStatus: showConnection, onMessage: (msg) => handle(msg) });

const runList = new RunList($("runs"), {
  dark: isDark,
  onSelect: (sel) => { state.userSelected = true; setSelection([...sel]); },
});
runList.setSelected(view.runs); // the runs of the link: ticked before the first runs message

// Alerts (alertview.js) and the stop control (stop.js): each takes the server messages it needs.
const alerts = new AlertsView($("tab-alerts"), $("alert-count"), { get: getJSON });
const stops = new StopPanel($("stops"));

const grid = new ChartGrid($("sections"), {
  chartOptions: { onZoom, onHover: (x, source) => grid.hover(x, source) },
  metrics: () => [...state.metrics],
  // the CSV holds every point the page has of the selected runs (not only what is drawn)
  toolbar: (metric, chart) => exportButtons(metric, chart, () =>
    toCSV(metric, gpus.csvEntries(metric) ?? view.runs.map((r) => [r, state.runs.get(r)?.series.get(metric) ?? state.runs.get(r)?.ranksOf(metric)?.[0][1]]).filter(([, b]) => b))),
  onOpen: () => redraw(),
  onLayout: changeLayout,
});
state.charts = grid.charts;

const configs = new RunConfigs();
const gpus = new GpuCharts({ onData: () => redraw() }); // the "GPU" section: the selected runs' GPUs
const seriesHeld = new Map(); // run -> metric -> {what a series was made of, series} (seriesFor)
const colors = { version: 0 }; // bumped when the runs' colours may change (the selection)
const composer = new SeriesComposer();
const ranks = new RankedRuns($("ranks"), { infos: state.infos, runs: state.runs, onRanks: (key) => changeLayout({ group: key }) });
/** Labels of the selected runs (names.js), made again (once per sync) when the selection, the mode
 *  or a config changed. */
const labels = { key: "", map: new Map() };
function refreshLabels() {
  const key = `${view.labels}\u0000${configs.version}\u0000${view.runs.join("\u0000")}`;
  if (key !== labels.key) { labels.key = key; labels.map = runLabels(view.runs, configs.configs, view.labels); }
}

/** The x axis of a metric's chart: its own, else the page's. */
const axisOf = (metric) => state.axes.get(metric) || view.xaxis;

/** A card asks for a pin, an enlargement (both toggles), a section folded or opened, an x axis of
 *  its own, or a group of runs shown as its runs (or back). */
function changeLayout({ pin, big, fold, open, x, axis, group }) {
  const toggle = (list, m) => (list.includes(m) ? list.filter((k) => k !== m) : [...list, m]);
  if (pin != null) view.pins = toggle(view.pins, pin);
  else if (big != null) view.big = view.big === big ? "" : big;
  else if (fold != null) {
    if (open === !view.fold.includes(fold)) return; // the view says so already (the page set it)
    view.fold = toggle(view.fold, fold);
  } else if (x != null) {
    view.cx = [...view.cx.filter(([m]) => m !== x), ...(axis && axis !== view.xaxis ? [[x, axis]] : [])];
  } else if (group != null) {
    if (view.members) { // every group was shown as its runs: all but this one stay so
      view.members = false;
      view.gopen = [...composer.grouping.groups.keys()].filter((k) => k !== group);
    } else {
      view.gopen = toggle(view.gopen, group);
    }
    showGroupControls();
  }
  saveView(view);
  redraw();
}

const table = new RunsTable($("tab-config"), {
  view,
  onView: () => saveView(view),
  onSelect: (ids) => { state.userSelected = true; setSelection(ids); },
  onToggle: (id) => { state.userSelected = true; setSelection(view.runs.includes(id) ? view.runs.filter((r) => r !== id) : [...view.runs, id]); },
  colorOf: (id) => runColor(id, isDark()),
});

/** The runs table from what the page holds (now: a user's change; else within a second). */
function refreshTable(now = false) {
  table.update({ infos: state.infos, infosVersion: state.infosVersion, configs, runData: state.runs, selected: new Set(view.runs) });
  table.refresh(now);
}

const timeTravel = new TimeTravel({
  slider: $("replay"), play: $("play"), out: $("replay-out"),
  maxStep: () => {
    let m = 0;
    for (const r of view.runs) for (const buf of state.runs.get(r)?.series.values() || []) if (buf.length) m = Math.max(m, buf.steps[buf.length - 1]);
    return m;
  },
  onChange: (until) => { state.until = until; redraw(); },
});

/** The charts draw again in the next frame (once, however many changes came before it). */
function redraw() {
  state.dirty = true;
  schedule();
}

let frame = 0;
function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    if (state.dirty && state.tab === "scalars") sync();
    else if (state.dirty && state.tab === "config") { state.dirty = false; refreshTable(); }
  });
}

function setSelection(ids) {
  const before = new Set(view.runs);
  view.runs = ids.filter((id) => state.infos.has(id) || !state.infos.size).sort();
  setColorSelection(view.runs);
  colors.version++;
  const now = new Set(view.runs);
  conn.unsubscribe([...before].filter((r) => !now.has(r)));
  conn.subscribe(view.runs.filter((r) => !before.has(r) || !state.runs.get(r)?.loaded));
  for (const r of before) if (!now.has(r)) { state.runs.delete(r); seriesHeld.delete(r); }
  runList.setSelected(view.runs);
  stops.update(view.runs, state.infos);
  saveView(view);
  redraw();
  if (state.tab === "config") refreshTable(true);
  else if (state.tab !== "scalars") selectTab(state.tab);
}

function runData(id) {
  let r = state.runs.get(id);
  if (!r) { r = new RunData(id); state.runs.set(id, r); }
  return r;
}

function handle(msg) {
  switch (msg.type) {
    case "runs": {
      state.infosVersion++;
      for (const r of msg.runs || []) state.infos.set(r.id, r);
      for (const id of msg.removed || []) state.infos.delete(id);
      if (msg.full) for (const id of [...state.infos.keys()]) if (!msg.runs.some((r) => r.id === id)) state.infos.delete(id);
      runList.update(msg.runs || [], msg.removed || [], !!msg.full);
      configs.update(msg.runs || [], msg.removed || [], !!msg.full);
      if (msg.loading) { state.loading = msg.loading; showProgress(msg.loading); }
      if (!state.userSelected) {
        const auto = autoSelection(state.infos.keys(), AUTO_SELECT); // never the hosts' system runs
        if (auto.join() !== view.runs.join()) setSelection(auto);
      } else if (!conn.runs.size && view.runs.length) {
        setSelection(view.runs);
      }
      showEmpty();
      state.dirty = true;
      break;
    }
    case "snapshot":
      runData(msg.run).applySnapshot(msg);
      detail.clearRun(msg.run);
      state.dirty = true;
      break;
    case "delta":
      runData(msg.run).applyDelta(msg);
      state.dirty = true;
      break;
    case "reset":
      runData(msg.run).applySnapshot({ series: {} });
      detail.clearRun(msg.run);
      state.dirty = true;
      break;
    default:
      break;
  }
  alerts.handle(msg);
  stops.handle(msg, view.runs, state.infos);
  schedule();
}

/** What the page says when no chart is shown, rebuilt only when that changes (runs messages come
 *  often while the backlog loads). */
let emptySaid = "";
function showEmpty() {
  const found = describeFound(state.loading, state.infos.size);
  const said = JSON.stringify(found);
  if (said !== emptySaid) { emptySaid = said; showFound($("empty"), found); }
}

/** Series of one run and metric as drawn: zoom detail when fetched (on the page's step axis), cut
 *  at the time-travel step. The same object while none of that changed: a sync runs for every
 *  message, and a page of 64 runs x 16 metrics made 5,000 objects a frame of which most were the
 *  same as the frame before (their collection cost draws up to 30 ms). */
function seriesFor(run, metric) {
  const buf = state.runs.get(run)?.series.get(metric);
  if (!buf || !buf.length) return null;
  const fine = view.zoom && !state.axes.has(metric) ? detail.get(run, metric) : null;
  const label = labels.map.get(run) ?? run, t0 = state.infos.get(run)?.started;
  let held = seriesHeld.get(run);
  if (!held) { held = new Map(); seriesHeld.set(run, held); }
  const hit = held.get(metric);
  if (hit && hit.buf === buf && hit.version === buf.version && hit.fine === fine && hit.until === state.until &&
      hit.dark === state.dark && hit.colors === colors.version && hit.label === label && hit.t0 === t0) return hit.series;
  const series = makeSeries(run, buf, fine, label, t0);
  held.set(metric, { buf, version: buf.version, fine, until: state.until, dark: state.dark, colors: colors.version, label, t0, series });
  return series;
}

function makeSeries(run, buf, fine, label, t0) {
  let v = buf.view(), version = buf.version;
  if (fine) {
    // finer data inside the zoomed range, what we hold outside it
    v = fine; version = `d${fine.version}`;
  }
  if (state.until != null) {
    const n = lowerBound(v.steps, state.until + 1e-9);
    v = { steps: v.steps.subarray(0, n), values: v.values.subarray(0, n), times: v.times.subarray(0, n) };
    version = `${version}@${state.until}`;
  }
  const dark = state.dark; // read once a sync: the page's dataset is slow to read per series
  return { steps: v.steps, values: v.values, times: v.times, id: run, color: runColor(run, dark), label, version: `${version}|${dark}`, t0 };
}

/** The chart grid from the data held: one chart per metric of the selected runs that passes the
 *  filter, drawing the runs alone or in their groups (compose.js) on its x axis. */
function sync() {
  state.dirty = false;
  state.dark = isDark();
  const filter = metricFilter(view);
  const names = new Set();
  state.metrics.clear();
  for (const r of view.runs) {
    for (const m of state.runs.get(r)?.series.keys() || []) {
      state.metrics.add(m);
      if (!filter || filter.test(m)) names.add(ranks.chartName(r, m)); // a rank's series: in its metric's chart
    }
  }
  gpus.show(view.runs, state.infos, names, filter); // adds the GPU charts that have lines
  $("empty").hidden = names.size > 0;
  const cols = view.cols ? String(view.cols) : "";
  if ($("sections").dataset.cols !== cols) $("sections").dataset.cols = cols;
  showZoom(view);
  showAxes(view, state.metrics);
  refreshLabels();
  state.axes = new Map(view.cx.filter(([, a]) => a !== view.xaxis));
  gpus.placeAxes(state.axes, view.xaxis);
  const grouping = composer.regroup(view.runs, view.group, configs.configs, configs.version, view.labels);
  showGroupControls(grouping);
  const base = { logy: view.logy, outliers: view.outliers, smoothing: view.smoothing };
  const viewOf = (metric) => (state.axes.has(metric) ? { ...base, xaxis: state.axes.get(metric) }
    : { ...base, xaxis: view.xaxis, zoom: view.zoom }); // a chart on its own axis keeps its own zoom
  const opts = { agg: view.agg, band: view.band, members: view.members, open: new Set(view.gopen), dark: state.dark, ranks };
  grid.sync(names, (m) => gpus.view(m, viewOf(m)), (m) => gpus.seriesOf(m, { labelOf: (r) => labels.map.get(r) ?? r,
    dark: state.dark }) ?? composer.seriesOf(m, axisOf(m), seriesFor, opts),
    { pins: view.pins, big: view.big, fold: view.fold, axes: state.axes });
  ranks.show(view.runs, labels.map, opts.open, (r) => runColor(r, state.dark)); // the straggler view
}

/** Zoom is shared by the charts on the page's x axis (one on an axis of its own zooms alone); where
 *  we hold thinned data, ask the server for detail. */
async function onZoom(range, chart = null) {
  const metric = chart && [...grid.charts].find(([, c]) => c === chart)?.[0];
  if (metric != null && state.axes.has(metric)) return;
  view.zoom = range;
  saveView(view);
  showZoom(view);
  detail.clear();
  redraw();
  if (!range || view.xaxis !== "step") return;
  const wanted = [];
  for (const run of view.runs) {
    for (const [metric, buf] of state.runs.get(run)?.series || []) {
      if (!buf.downsampled || !grid.charts.has(ranks.chartName(run, metric)) || state.axes.has(metric)) continue;
      wanted.push({ run, metric, width: grid.charts.get(ranks.chartName(run, metric)).canvas.clientWidth || 500 });
    }
  }
  await detail.request(range, wanted);
}

/** The config keys of the selected runs, those whose values differ first (a group is made by one). */
function configKeys() {
  const all = new Set();
  for (const r of view.runs) for (const k of Object.keys(configs.configs.get(r) || {})) all.add(k);
  const differ = differingKeys(view.runs, configs.configs);
  return [...differ, ...[...all].filter((k) => !differ.includes(k)).sort()];
}

/** The group controls say what the rule made: how many groups, or why none. */
function showGroupControls(grouping = composer.grouping) {
  showGroups(view, grouping);
}

function selectTab(tab) {
  state.tab = tab;
  alerts.show(tab === "alerts");
  showTab(tab, { runs: view.runs, infos: state.infos, onScalars: redraw, onTable: () => refreshTable(true) });
}

function bind() {
  bindControls(view, {
    change: (what) => {
      if (what === "xaxis") detail.clear();
      if (what === "theme") runList.render();
      redraw();
    },
    resetZoom: () => onZoom(null),
    runFilter: (text) => runList.setFilter(text),
    selectShown: () => { state.userSelected = true; setSelection(runList.visibleIds()); },
    selectNone: () => { state.userSelected = true; setSelection([]); },
    configKeys,
  });
  bindTabs(selectTab);
  window.addEventListener("resize", () => grid.invalidateAll());
  resizableSidebar(document.querySelector(".side"), document.querySelector(".side-resizer"), () => runList.render());
  // Escape puts an enlarged chart back in the grid
  document.addEventListener("keydown", (e) => { if (e.key === "Escape" && view.big) changeLayout({ big: view.big }); });
  // "updated N s ago" stays current
  setInterval(() => runList.render(), 5000);
}

// Without a token, or with one the server refuses, the page asks for it; "log out" forgets it.
const login = new LoginForm(document.body, { onToken: (token) => { setToken(token); begin(); } });
function signOut(message) {
  setToken(null);
  conn.stop();
  showConnection("offline");
  login.show(message);
}
setUnauthorizedHandler(() => signOut("The sidecar refused that token: paste the one it printed."));
$("logout").addEventListener("click", () => signOut());

/** Check the token with the run list (shown at once), then connect. */
async function begin() {
  if (!getToken()) { login.show(); return; }
  try {
    const body = await getJSON("/api/runs");
    handle({ type: "runs", runs: body.runs || [], removed: [], full: true, loading: body.loading, features: body.features });
  } catch (e) {
    if (e instanceof Unauthorized) return; // the handler shows the form
    // the sidecar is not reachable now: the connection retries on its own
  }
  login.hide();
  conn.start();
}

applyTheme(view);
redraw();
bind();
if (view.runs.length) conn.subscribe(view.runs);
begin();

// For tests and benchmarks: a read-only window onto the page's state.
window.tailboard = { state, view, conn, charts: grid.charts, runList, composer, table, gpus };
