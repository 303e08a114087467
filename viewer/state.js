// Client-side state: columnar series buffers per run and metric, run colours, and the URL state.

import { decodeSeries } from "./protocol.js";
import { m4Indices } from "./decimate.js";
import { LABEL_MODES } from "./names.js";
import { Palette } from "./colors.js";
import { parseGroupSpec, AGGREGATES, BANDS } from "./groups.js";
import { validAxis } from "./xaxis.js";
import { splitRank } from "./ranks.js";

export { assignHues } from "./colors.js";

/** Points a live series may hold in the page before its history is M4-decimated (a chart shows at
 *  most about 4 points per pixel column; zooming fetches finer data from the sidecar). */
export const MAX_POINTS = 100000;

/** A growable columnar series (steps, values, wall times) in typed arrays. */
export class SeriesBuffer {
  constructor(capacity = 256) {
    this.steps = new Float64Array(capacity);
    this.values = new Float64Array(capacity);
    this.times = new Float64Array(capacity);
    this.length = 0;
    this.version = 0; // bumped on every change: charts cache their paths per version
    this.downsampled = false;
    this.total = 0;
  }
  _reserve(n) {
    if (n <= this.steps.length) return;
    let cap = this.steps.length || 16;
    while (cap < n) cap *= 2;
    for (const k of ["steps", "values", "times"]) {
      const a = new Float64Array(cap);
      a.set(this[k].subarray(0, this.length));
      this[k] = a;
    }
  }
  /** Replace everything with a snapshot part ({steps, values, times} as sent, or decoded). */
  replace(part) {
    const s = part.steps instanceof Float64Array ? part : decodeSeries(part);
    this.length = 0;
    this._reserve(s.steps.length);
    this.steps.set(s.steps); this.values.set(s.values);
    if (s.times.length === s.steps.length) this.times.set(s.times); else this.times.fill(NaN, 0, s.steps.length);
    this.length = s.steps.length;
    this.downsampled = !!s.downsampled;
    this.total = s.total ?? this.length;
    this.version++;
  }
  /** Append a delta part (points in step order after what is held). */
  append(part) {
    const s = part.steps instanceof Float64Array ? part : decodeSeries(part);
    const n = s.steps.length;
    if (n === 0) return;
    this._reserve(this.length + n);
    this.steps.set(s.steps, this.length);
    this.values.set(s.values, this.length);
    if (s.times.length === n) this.times.set(s.times, this.length); else this.times.fill(NaN, this.length, this.length + n);
    this.length += n;
    this.total += n;
    this.version++;
  }
  view() {
    return {
      steps: this.steps.subarray(0, this.length),
      values: this.values.subarray(0, this.length),
      times: this.times.subarray(0, this.length),
    };
  }
  last() {
    return this.length ? { step: this.steps[this.length - 1], value: this.values[this.length - 1], time: this.times[this.length - 1] } : null;
  }
  /** Keeps memory bounded on long live runs: above `max` points, M4 over max/4 step buckets. */
  compact(max) {
    if (this.length <= max) return false;
    const v = this.view();
    const idx = m4Indices(v.steps, v.values, 0, this.length, v.steps[0], v.steps[this.length - 1], Math.floor(max / 4));
    // into arrays sized for what is kept (plus room to grow): the old ones go to the collector
    const cap = Math.max(256, idx.length * 2);
    for (const k of ["steps", "values", "times"]) {
      const a = this[k];
      const b = new Float64Array(cap);
      for (let i = 0; i < idx.length; i++) b[i] = a[idx[i]];
      this[k] = b;
    }
    this.length = idx.length;
    this.downsampled = true;
    this.version++;
    return true;
  }
}

/** The run each series buffer is of (RunData.metric makes them): a CSV of a metric finds the
 *  run's ranks' series from its own (toCSV). */
const owners = new WeakMap();

/** Everything the page holds for one run. */
export class RunData {
  constructor(id) {
    this.id = id;
    this.info = null; // the run object of the `runs` message
    this.series = new Map(); // metric -> SeriesBuffer
    this.loaded = false;
  }
  metric(name) {
    let s = this.series.get(name);
    if (!s) { s = new SeriesBuffer(); this.series.set(name, s); owners.set(s, this); }
    return s;
  }
  /** [[rank, buffer]] by rank of `metric` when the run holds other ranks' series of it
   *  (`loss@rank3`, ranks.js; rank 0's is the metric's own), else null. */
  ranksOf(metric) {
    const out = [];
    for (const [name, buf] of this.series) {
      const { base, rank } = splitRank(name);
      if (name === metric) out.push([0, buf]);
      else if (base === metric && rank > 0) out.push([rank, buf]);
    }
    return out.some(([rank]) => rank > 0) ? out.sort((a, b) => a[0] - b[0]) : null;
  }
  applySnapshot(msg) {
    this.series.clear();
    for (const [name, part] of Object.entries(msg.series || {})) this.metric(name).replace(part);
    this.loaded = true;
  }
  applyDelta(msg, maxPoints = MAX_POINTS) {
    for (const [name, part] of Object.entries(msg.series || {})) {
      const buf = this.metric(name);
      buf.append(part);
      buf.compact(maxPoints);
    }
  }
}

const runs = new Palette();

/** The runs drawn together now (the selection): their colours are kept apart, and those that stay
 *  selected keep theirs (colors.js). */
export function setColorSelection(ids) {
  runs.select(ids);
}

/** A stable colour per run id, readable on light and dark. */
export function runColor(id, dark = false) {
  return runs.color(id, dark);
}

export const DEFAULT_VIEW = Object.freeze({ runs: [], metrics: "", smoothing: 0.6, xaxis: "step", logy: false, outliers: false,
  zoom: null, filter: "", theme: "", labels: "auto", cols: 0, pins: Object.freeze([]), big: "", fold: Object.freeze([]),
  // groups (groups.js): the rule's text, the line, the band, every group shown as its runs, or these
  group: "", agg: "mean", band: "minmax", members: false, gopen: Object.freeze([]),
  // per chart x axes: [[metric, axis]]
  cx: Object.freeze([]),
  // the runs table (hparams.js): sort column and order, metric directions ["min:loss"], row filter,
  // the scatter's axes
  hsort: "", hdesc: false, hdir: Object.freeze([]), hfilter: "", hx: "", hy: "" });

const MAX_COLS = 4;

/** The view as URL search parameters (what is shared when the URL is copied). */
export function viewToQuery(view) {
  const p = new URLSearchParams();
  if (view.runs.length) p.set("runs", view.runs.join(","));
  if (view.metrics) p.set("metrics", view.metrics);
  if (view.smoothing !== DEFAULT_VIEW.smoothing) p.set("smooth", String(view.smoothing));
  if (view.xaxis !== "step") p.set("x", view.xaxis);
  if (view.logy) p.set("logy", "1");
  if (view.outliers) p.set("outliers", "1");
  if (view.zoom) p.set("zoom", view.zoom.map((v) => +v.toPrecision(10)).join(","));
  if (view.filter) p.set("filter", view.filter);
  if (view.theme) p.set("theme", view.theme);
  if (view.labels !== "auto") p.set("labels", view.labels);
  if (view.cols) p.set("cols", String(view.cols));
  // metric and group names may hold commas: one parameter each
  for (const m of view.pins) p.append("pin", m);
  if (view.big) p.set("big", view.big);
  for (const g of view.fold) p.append("fold", g);
  if (view.group) p.set("group", view.group);
  if (view.agg !== "mean") p.set("agg", view.agg);
  if (view.band !== "minmax") p.set("band", view.band);
  if (view.members) p.set("members", "1");
  for (const g of view.gopen) p.append("gopen", g);
  // a metric and an axis (itself maybe a metric's name): a JSON pair, exact whatever they hold
  for (const pair of view.cx) p.append("cx", JSON.stringify(pair));
  if (view.hsort) p.set("hsort", view.hsort);
  if (view.hdesc) p.set("hdesc", "1");
  for (const d of view.hdir) p.append("hdir", d);
  if (view.hfilter) p.set("hfilter", view.hfilter);
  if (view.hx) p.set("hx", view.hx);
  if (view.hy) p.set("hy", view.hy);
  return p.toString();
}

const oneOf = (v, allowed, d) => (allowed.includes(v) ? v : d);

/** [metric, axis] pairs of per chart x axes, from their JSON (malformed ones left out). */
function chartAxes(values) {
  const out = new Map();
  for (const text of values) {
    try {
      const pair = JSON.parse(text);
      if (Array.isArray(pair) && pair.length === 2 && typeof pair[0] === "string" && validAxis(pair[1])) out.set(pair[0], pair[1]);
    } catch {
      // a hand-edited URL: that pair is left out
    }
  }
  return [...out];
}

export function queryToView(query) {
  const p = new URLSearchParams(query);
  const view = { ...DEFAULT_VIEW, runs: [], pins: [], fold: [] };
  if (p.get("runs")) view.runs = p.get("runs").split(",").filter(Boolean);
  view.metrics = p.get("metrics") || "";
  const sm = parseFloat(p.get("smooth"));
  if (Number.isFinite(sm) && sm >= 0 && sm < 1) view.smoothing = sm;
  if (validAxis(p.get("x"))) view.xaxis = p.get("x");
  view.logy = p.get("logy") === "1";
  view.outliers = p.get("outliers") === "1";
  const z = (p.get("zoom") || "").split(",").map(Number);
  if (z.length === 2 && z.every(Number.isFinite) && z[0] < z[1]) view.zoom = z;
  view.filter = p.get("filter") || "";
  view.theme = ["light", "dark"].includes(p.get("theme")) ? p.get("theme") : "";
  if (LABEL_MODES.includes(p.get("labels"))) view.labels = p.get("labels");
  const cols = Number(p.get("cols"));
  if (Number.isInteger(cols) && cols >= 1 && cols <= MAX_COLS) view.cols = cols;
  view.pins = [...new Set(p.getAll("pin").filter(Boolean))];
  view.big = p.get("big") || "";
  view.fold = [...new Set(p.getAll("fold"))];
  view.group = parseGroupSpec(p.get("group")) ? p.get("group") : "";
  view.agg = oneOf(p.get("agg"), AGGREGATES, "mean");
  view.band = oneOf(p.get("band"), BANDS, "minmax");
  view.members = p.get("members") === "1";
  view.gopen = [...new Set(p.getAll("gopen"))];
  view.cx = chartAxes(p.getAll("cx"));
  view.hsort = p.get("hsort") || "";
  view.hdesc = p.get("hdesc") === "1";
  view.hdir = [...new Set(p.getAll("hdir").filter((d) => /^(min|max|none):./s.test(d)))];
  view.hfilter = p.get("hfilter") || "";
  view.hx = p.get("hx") || "";
  view.hy = p.get("hy") || "";
  return view;
}

/** Metric names grouped by their tag prefix ("train/loss" -> "train"); no prefix -> "". */
export function groupByPrefix(names) {
  const groups = new Map();
  for (const n of [...names].sort()) {
    const i = n.indexOf("/");
    const g = i > 0 ? n.slice(0, i) : "";
    if (!groups.has(g)) groups.set(g, []);
    groups.get(g).push(n);
  }
  // Untagged metrics first, then the tags in alphabetical order.
  return new Map([...groups.entries()].sort(([a], [b]) => (a === b ? 0 : a === "" ? -1 : b === "" ? 1 : a < b ? -1 : 1)));
}

/** Runs as a tree of folders: {name, path, children: Map, run}. */
export function buildTree(ids) {
  const root = { name: "", path: "", children: new Map(), run: null };
  for (const id of [...ids].sort()) {
    let node = root;
    const parts = id.split("/");
    parts.forEach((part, i) => {
      const path = parts.slice(0, i + 1).join("/");
      if (!node.children.has(part)) node.children.set(part, { name: part, path, children: new Map(), run: null });
      node = node.children.get(part);
    });
    node.run = id;
  }
  return root;
}

/**
 * The tree with each chain of folders that hold one thing only shown as one node named by the
 * chain ("lr_0.1/seed0"): a run alone in its folder is not labelled by its last part only.
 */
export function compactTree(node) {
  const children = new Map();
  for (const [key, child] of node.children) {
    let c = child, name = child.name;
    while (!c.run && c.children.size === 1) {
      c = c.children.values().next().value;
      name = `${name}/${c.name}`;
    }
    children.set(key, { ...compactTree(c), name });
  }
  return { ...node, children };
}

/**
 * A name as a CSV cell: quoted, its quotes doubled, and one that a spreadsheet would read as a
 * formula (it starts with =, +, -, @, a tab or a carriage return) led by an apostrophe. Names are
 * log content; numbers are written as they are.
 */
export function csvName(text) {
  const t = String(text);
  return `"${(/^[=+\-@\t\r]/.test(t) ? `'${t}` : t).replaceAll('"', '""')}"`;
}

/**
 * Series as CSV text: one row per (run, step). entries: [[run, buffer]]. A run that holds its
 * ranks' series of the metric (a buffer of a RunData, ranks.js) has a block of rows per rank, in
 * rank order, and the CSV a `rank` column (empty for a run without ranks).
 */
export function toCSV(metric, entries) {
  const blocks = entries.map(([run, buf]) => [run, owners.get(buf)?.ranksOf(metric) ?? [[null, buf]]]);
  const ranked = blocks.some(([, list]) => list[0][0] != null);
  const rows = [ranked ? "run,rank,metric,step,value,wall_time" : "run,metric,step,value,wall_time"];
  const name = csvName(metric);
  for (const [run, list] of blocks) {
    for (const [rank, buf] of list) {
      const lead = ranked ? `${csvName(run)},${rank ?? ""},${name}` : `${csvName(run)},${name}`;
      const v = buf.view();
      for (let i = 0; i < v.steps.length; i++) {
        rows.push(`${lead},${v.steps[i]},${v.values[i]},${Number.isFinite(v.times[i]) ? v.times[i] : ""}`);
      }
    }
  }
  return rows.join("\n") + "\n";
}
