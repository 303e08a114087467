// The page of a report file (`tailboard export`, docs/report.md): the runs' scalars as the viewer
// draws them, from data embedded in the file itself, with no server and no request. It builds its
// DOM with dom.js (every name from the logs is text, never markup) and reuses the viewer's pieces:
// Chart and Readout for drawing, zoom, crosshair and data tables, the page's run colours, labels,
// tag sections and CSV / PNG buttons. The chart modules only ever see typed arrays, as in the page.
//
// start() is called by the report file once this module's code is in place (the file inlines it:
// sidecar/report/bundle.py says how and why); it loads in Node too, where nothing runs until called.

import { Chart } from "./chart.js";
import { Readout } from "./readout.js";
import { DEFAULT_VIEW, groupByPrefix, runColor, setColorSelection, toCSV } from "./state.js";
import { runLabels } from "./names.js";
import { exportButtons, fileName } from "./exports.js";
import { decodeSeries } from "./protocol.js";
import { h, label } from "./dom.js";

/** The report's data ({title, created, runs, charts}, see sidecar/report/data.py) from its JSON script. */
export function readData(doc = document) {
  return JSON.parse(doc.getElementById("report-data").textContent);
}

/** "1,234". */
const count = (n) => Number(n).toLocaleString("en-US");

/** The chart series of one metric: typed arrays, the run's colour and label, a version that never
 *  changes (a report's data does not). */
function chartSeries(chart, runs, labels, dark) {
  return chart.series.map((s) => ({ ...decodeSeries(s), id: s.run, color: runColor(s.run, dark),
    label: labels.get(s.run) ?? s.run, version: 1, t0: runs.get(s.run)?.started ?? undefined }));
}

/** A card's note on what it holds: "M4: 4,000 of 10,000 points" when some series were downsampled. */
function note(chart) {
  const kept = chart.series.reduce((n, s) => n + s.steps.length, 0);
  const total = chart.series.reduce((n, s) => n + s.total, 0);
  if (kept >= total) return null;
  return h("small", { class: "chart-note", title: "Downsampled: each bucket of steps keeps its first, lowest, highest and last point" },
    `M4: ${count(kept)} of ${count(total)} points`);
}

/** The runs in a table: name, status, last step, points kept of those logged. */
function runTable(runs, labels, dark) {
  return h("details", { class: "section report-runs" }, h("summary", null, `${runs.length} run${runs.length === 1 ? "" : "s"}`),
    h("table", { class: "readout" },
      h("thead", null, h("tr", null, ["run", "status", "last step", "points"].map((t) => h("th", null, t)))),
      h("tbody", null, runs.map((r) => h("tr", { dataset: { run: r.id } },
        h("td", { class: "run" }, h("i", { class: "sw", style: { background: runColor(r.id, dark) } }), label(labels.get(r.id) ?? r.id, "lbl"),
          labels.get(r.id) !== r.id ? h("small", { class: "full" }, label(r.id)) : null),
        h("td", null, r.status), h("td", null, r.last_step == null ? "–" : String(r.last_step)),
        h("td", null, r.kept < r.points ? `${count(r.kept)} of ${count(r.points)}` : count(r.points)))))));
}

/**
 * Build the report in `root` from `data`; returns {charts: Map metric -> Chart} (window.tailboard,
 * as the page has it). With `png`, charts are drawn one to a row at PNG_SIZE (what --png saves).
 */
export function showReport(data, root, { png = false } = {}) {
  const doc = root.ownerDocument;
  const dark = !png && !!doc.defaultView.matchMedia?.("(prefers-color-scheme: dark)").matches;
  if (dark) doc.documentElement.dataset.theme = "dark";
  if (png) doc.body.classList.add("png");
  doc.title = data.title;
  const ids = data.runs.map((r) => r.id);
  setColorSelection(ids);
  const runs = new Map(data.runs.map((r) => [r.id, r]));
  const labels = runLabels(ids, new Map(data.runs.map((r) => [r.id, r.config || {}])));
  const charts = new Map();
  const view = { ...DEFAULT_VIEW, smoothing: png ? 0 : DEFAULT_VIEW.smoothing, zoom: null };

  const resetZoom = h("button", { title: "Show the whole x range again (or double click a chart)", hidden: true,
    onclick: () => zoomAll(null) }, "Reset zoom");
  function zoomAll(range) {
    view.zoom = range;
    for (const c of charts.values()) c.setView({ zoom: range });
    resetZoom.hidden = range == null;
  }
  const out = h("output", null, String(view.smoothing));
  const slider = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", value: String(view.smoothing),
    oninput: () => {
      view.smoothing = Number(slider.value);
      out.textContent = slider.value;
      for (const c of charts.values()) c.setView({ smoothing: view.smoothing });
    } });
  const logy = h("input", { type: "checkbox", onchange: () => { for (const c of charts.values()) c.setView({ logy: logy.checked }); } });
  const controls = h("div", { class: "controls" },
    h("label", { title: "Debiased exponential moving average" }, "Smoothing ", slider, out),
    h("label", null, logy, " log y"), resetZoom);

  const chartOptions = {
    onZoom: (range) => zoomAll(range),
    onHover: (x, source) => {
      for (const c of charts.values()) if (c !== source && c.hoverX !== x) { c.hoverX = x; c.invalidate(); }
    },
  };
  const byMetric = new Map(data.charts.map((c) => [c.metric, c]));
  const sections = h("div", { id: "sections" }, [...groupByPrefix(byMetric.keys())].map(([group, metrics]) =>
    h("details", { class: "section", open: true }, h("summary", null, group ? label(group) : "metrics"),
      h("div", { class: "grid" }, metrics.map((metric) => {
        const readout = new Readout({ onUnpin: () => chart.setPin(null), onHighlight: (id) => chart.setHighlight(id) });
        const chart = new Chart({ ...chartOptions, onReadout: (c, d) => readout.show(c, d) });
        const series = chartSeries(byMetric.get(metric), runs, labels, dark);
        chart.el.appendChild(readout.tooltip);
        chart.setView({ ...view });
        chart.setSeries(series);
        readout.setLegend(series);
        charts.set(metric, chart);
        const csv = () => toCSV(metric, series.map((s) => [s.id, { view: () => s }]));
        return h("div", { class: "chart", dataset: { metric } },
          h("div", { class: "chart-head" }, label(metric, "chart-title"), note(byMetric.get(metric)),
            png ? null : exportButtons(metric, chart, csv)),
          chart.el, readout.legend, readout.pinned);
      })))));

  const created = new Date(data.created * 1000).toISOString().slice(0, 16).replace("T", " ");
  root.replaceChildren(
    h("header", { class: "top" }, h("span", { class: "brand" }, "tailboard"), h("span", { class: "report-title" }, data.title),
      h("span", { class: "spacer" }),
      h("span", { class: "report-meta" }, `${data.runs.length} runs · ${data.charts.length} charts · ${count(data.points)} points · ${created} UTC`)),
    h("div", { class: "layout" }, h("main", null, controls, png ? null : runTable(data.runs, labels, dark), sections,
      data.charts.length ? null : h("div", { class: "empty" }, h("p", { class: "found-title" }, "No metric matched.")))));
  return { charts, data };
}

/** The charts' drawings as PNG files: [{name, url}], names by the viewer's export rule, made unique.
 *  Each is drawn now: one scrolled out of view has not been yet (frames.js draws the visible ones). */
export function pngFiles(charts) {
  const taken = new Set();
  return [...charts].map(([metric, chart]) => {
    let name = fileName(metric, "png");
    for (let k = 2; taken.has(name); k++) name = fileName(`${metric}-${k}`, "png");
    taken.add(name);
    chart.draw();
    return { name, url: chart.pngURL() };
  });
}

/** The report file's entry point: the data, the page, and window.tailboard for scripts and tests. */
export function start(doc = document) {
  const png = doc.defaultView.location.hash === "#png";
  const report = showReport(readData(doc), doc.getElementById("report"), { png });
  doc.defaultView.tailboard = { ...report, pngFiles: () => pngFiles(report.charts) };
}
