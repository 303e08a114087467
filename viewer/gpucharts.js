// The "GPU" section of the scalar charts: one chart per field (GPU_FIELDS), one line per GPU a
// selected run uses, over that run's time span. The figures are the system run's series, asked for
// with /api/series (the step of a sample is its Unix second, so the run's span is a step range),
// again every POLL_MS while the run runs. The charts are on a time axis (gpu.js: gpuAxis), where
// they line up with the run's own charts on that axis; they are drawn unsmoothed (a hardware figure
// is what it was).

import { getJSON } from "./api.js";
import { decodeValues } from "./protocol.js";
import { Palette } from "./colors.js";
import { GPU_FIELDS, gpuAxis, gpuField, gpuLines, gpuMetric } from "./gpu.js";

export { autoSelection } from "./gpu.js";

/** How often the figures of a running run's GPUs are asked for again. */
export const POLL_MS = 2000;
/** Points asked for per line and field (M4-downsampled by the server beyond that). */
const POINTS = 1000;

export class GpuCharts {
  /** onData(): new figures arrived (the page draws again). */
  constructor({ onData = () => {} } = {}) {
    this.onData = onData;
    this.lines = []; // gpuLines of the selection
    this.data = new Map(); // line id -> field -> {steps, values, times, version}
    this.fetched = new Map(); // line id -> {at, sig}: when asked, for which span
    this.inflight = new Set();
    this.palette = new Palette();
    this.made = new Map(); // line id + field -> {key, series}: the same object while nothing changed
    this.timer = null;
    this.versions = 0;
  }

  /** The selection changed, or its runs' objects did: fetch what is new or due. */
  update(runIds, infos) {
    const lines = gpuLines(runIds, infos);
    const ids = lines.map((l) => l.id);
    if (ids.join("\u0001") !== this.lines.map((l) => l.id).join("\u0001")) {
      this.palette.select(ids);
      const keep = new Set(ids);
      for (const id of [...this.data.keys()]) if (!keep.has(id)) { this.data.delete(id); this.fetched.delete(id); }
    }
    this.lines = lines;
    this._fetchDue();
    const live = lines.some((l) => l.span[1] == null);
    if (live && !this.timer) this.timer = setInterval(() => this._fetchDue(), POLL_MS);
    else if (!live && this.timer) { clearInterval(this.timer); this.timer = null; }
  }

  /** update(), then add to `names` the GPU charts that have lines and pass `filter` (a RegExp). */
  show(runIds, infos, names, filter = null) {
    this.update(runIds, infos);
    for (const n of this.names()) if (!filter || filter.test(n)) names.add(n);
  }

  /** GPU charts are on a time axis (gpu.js: gpuAxis): in `axes` (chart -> its own x axis), each
   *  GPU chart not on the page's `pageAxis` gets its own. */
  placeAxes(axes, pageAxis) {
    for (const n of this.names()) {
      const a = gpuAxis(axes.get(n) || pageAxis);
      if (a !== pageAxis) axes.set(n, a); else axes.delete(n);
    }
  }

  /** A chart's view ({xaxis, smoothing...}): GPU charts are drawn unsmoothed. */
  view(chart, view) {
    return gpuField(chart) ? { ...view, smoothing: 0 } : view;
  }

  /** The GPU charts that have something to draw. */
  names() {
    const out = new Set();
    for (const [field, name] of GPU_FIELDS) {
      if (this.lines.some((l) => this.data.get(l.id)?.get(field)?.steps.length)) out.add(name);
    }
    return out;
  }

  /** The lines of GPU chart `chart` (null: not a GPU chart): labelOf(run) names the run, `dark`
   *  the theme. */
  seriesOf(chart, { labelOf = (run) => run, dark = false } = {}) {
    const field = gpuField(chart);
    if (!field) return null;
    const out = [];
    for (const line of this.lines) {
      const d = this.data.get(line.id)?.get(field);
      if (!d || !d.steps.length) continue;
      const label = `${labelOf(line.run)} · ${line.name}${line.idle ? " · idle" : ""}`;
      const color = this.palette.color(line.id, dark);
      const key = `${d.version}|${label}|${color}|${line.t0}`;
      const at = `${line.id}\u0000${field}`;
      let hit = this.made.get(at);
      if (!hit || hit.key !== key) {
        hit = { key, series: { id: line.id, run: line.run, color, label, steps: d.steps, values: d.values,
          times: d.times, version: `gpu${d.version}`, t0: line.t0 } };
        this.made.set(at, hit);
      }
      out.push(hit.series);
    }
    return out;
  }

  /** What a GPU chart's CSV holds (null: not a GPU chart): [label, {view()}] per line, as
   *  state.js's toCSV takes them; the label names the run and the GPU. */
  csvEntries(chart) {
    const field = gpuField(chart);
    if (!field) return null;
    return this.lines.filter((l) => this.data.get(l.id)?.get(field)).map((l) => {
      const d = this.data.get(l.id).get(field);
      return [`${l.run} · ${l.name}`, { view: () => d }];
    });
  }

  _fetchDue() {
    const now = Date.now();
    for (const line of this.lines) {
      const sig = line.span.join();
      const f = this.fetched.get(line.id);
      const due = !f || f.sig !== sig || (line.span[1] == null && now - f.at >= POLL_MS);
      if (!due || this.inflight.has(line.id)) continue;
      this.fetched.set(line.id, { at: now, sig });
      this._fetch(line);
    }
  }

  async _fetch(line) {
    this.inflight.add(line.id);
    try {
      const [start, end] = line.span;
      const ask = (field) => {
        const q = new URLSearchParams({ run: line.system, metric: gpuMetric(line.key, field), points: String(POINTS) });
        if (start != null) q.set("start", String(start));
        if (end != null) q.set("end", String(end));
        return getJSON("/api/series", q).catch(() => null); // a field this GPU does not give: no line
      };
      const got = await Promise.all(GPU_FIELDS.map(([field]) => ask(field)));
      if (!this.lines.some((l) => l.id === line.id)) return; // deselected meanwhile
      const fields = this.data.get(line.id) || new Map();
      GPU_FIELDS.forEach(([field], i) => {
        const s = got[i];
        if (!s) { fields.delete(field); return; }
        fields.set(field, { steps: decodeValues(s.steps), values: decodeValues(s.values), times: decodeValues(s.times),
          version: ++this.versions });
      });
      this.data.set(line.id, fields);
      this.onData();
    } finally {
      this.inflight.delete(line.id);
    }
  }
}
