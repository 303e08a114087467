// The runs table tab: every run of the log folder as a row (its name, status, the config values that
// differ between the runs, each metric's last value and best one), sorted by a click on a heading
// (again: the other way), narrowed by a filter (`lr>=0.01 adam`: see hparams.js rowFilter), with
// the config values every run shares folded above it, and its plots (hpplots.js) over it. A row's
// click, a brush on a parallel axis, a rectangle or a click in the scatter select runs in the page
// (the charts, the run list). A metric's best follows its direction, set by the button in its
// heading (min, max, none). Metric values come from the series the page holds: a run never
// selected has none yet (select it, or all shown, to fill them); they stay once it was.
// Built again at most once a second while runs change, rows rebuilt only when what they show does.

import { h, label, visible } from "./dom.js";
import { pathLabels } from "./names.js";
import { streamFormats } from "./runs.js";
import { Summaries, configColumns, tableColumns, columnOf, cellValue, cellText, sortRows, rowFilter,
  setDirection, nextDirection } from "./hparams.js";
import { ParallelPlot, ScatterPlot } from "./hpplots.js";

const REFRESH_MS = 1000;
/** Rows in the DOM at most (sort or filter to reach the others). */
export const MAX_ROWS = 300;
/** Metrics with columns at most (the metric filter picks them). */
export const MAX_METRICS = 16;
/** Config keys with an axis in the parallel plot at most. */
const MAX_AXES = 8;
const ARROW = { min: "↓", max: "↑", none: "·" };
const DIR_TITLE = { min: "Best is the lowest value (click: the highest)", max: "Best is the highest value (click: none)",
  none: "No best for this metric (click: the lowest)" };

/** Put `children` in `parent` in this order (moving only those out of place), and nothing else. */
function order(parent, children) {
  children.forEach((el, k) => { if (parent.children[k] !== el) parent.insertBefore(el, parent.children[k] || null); });
  while (parent.children.length > children.length) parent.lastChild.remove();
}

export class RunsTable {
  /**
   * el: the tab's element. view: the page's view (hsort, hdesc, hdir, hfilter, hx, hy are this
   * table's); onView(): it changed. onSelect(ids): select exactly these runs; onToggle(id): select
   * or deselect one. colorOf(id): a run's colour.
   */
  constructor(el, { view, onView, onSelect, onToggle, colorOf }) {
    Object.assign(this, { el, view, onView, onSelect, onToggle, colorOf });
    this.summaries = new Summaries();
    this.src = null;
    this.last = 0;
    this.timer = 0;
    this.rowEls = new Map(); // id -> {sig, tr}
    this.headSig = "";
    this.filter = h("input", { type: "search", id: "hp-filter", placeholder: "Filter rows: lr>=0.01 adam", spellcheck: "false", value: view.hfilter });
    this.metricFilter = h("input", { type: "search", id: "hp-metrics", placeholder: "Metric columns (regex)", spellcheck: "false" });
    this.count = h("span", { class: "hp-count" });
    this.selectShown = h("button", { id: "hp-select", title: "Select the runs the filter leaves (their metrics fill in)" }, "Select these");
    this.constant = h("details", { class: "hp-constant", hidden: true });
    this.xSel = h("select", { id: "hp-x", title: "The scatter's x" });
    this.ySel = h("select", { id: "hp-y", title: "The scatter's y" });
    const opts = { onSelect: (ids) => this.onSelect(ids), onToggle: (id) => this.onToggle(id) };
    this.parallel = new ParallelPlot(opts);
    this.scatter = new ScatterPlot(opts);
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.note = h("p", { class: "hp-note", hidden: true });
    el.replaceChildren(
      h("div", { class: "hp-bar" }, this.filter, this.metricFilter, this.selectShown, this.count),
      this.constant,
      h("div", { class: "hp-plots" }, this.parallel.el,
        h("div", { class: "hp-scatter-box" }, h("div", { class: "hp-axes" }, h("label", null, "x ", this.xSel), h("label", null, "y ", this.ySel)),
          this.scatter.el)),
      h("div", { class: "table-wrap" }, h("table", { class: "hp" }, this.thead, this.tbody)), this.note);
    this._bind();
  }

  _bind() {
    this.filter.addEventListener("input", () => { this.view.hfilter = this.filter.value; this.onView(); this.render(); });
    this.metricFilter.addEventListener("input", () => this.render());
    this.selectShown.addEventListener("click", () => this.onSelect(this.rows.map((r) => r.id)));
    for (const [sel, key] of [[this.xSel, "hx"], [this.ySel, "hy"]]) {
      sel.addEventListener("change", () => { this.view[key] = sel.value; this.onView(); this.render(); });
    }
    this.thead.addEventListener("click", (e) => {
      const th = e.target.closest("th");
      if (!th) return;
      const col = th.dataset.col;
      if (e.target.closest("button.dir")) {
        const c = columnOf(col, this.view.hdir);
        this.view.hdir = setDirection(this.view.hdir, c.metric, nextDirection(c.dir));
      } else {
        this.view.hdesc = this.view.hsort === col ? !this.view.hdesc : false;
        this.view.hsort = col;
      }
      this.onView();
      this.render();
    });
    this.tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (tr) this.onToggle(tr.dataset.run);
    });
  }

  /** What the table shows: infos (id -> run object), configs (id -> flat config), runData (id ->
   *  RunData, the runs whose series the page holds), selected (Set of ids). */
  update(src) {
    this.src = src;
  }

  /** Build again now if `now`, else within a second (runs and their data change often). */
  refresh(now = false) {
    if (now || Date.now() - this.last >= REFRESH_MS) { this.render(); return; }
    if (!this.timer) this.timer = setTimeout(() => { this.timer = 0; this.render(); }, REFRESH_MS - (Date.now() - this.last));
  }

  render() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.last = Date.now();
    const { infos, configs, runData, selected } = this.src;
    const ids = [...infos.keys()].sort();
    this.summaries.keep(new Set(ids));
    for (const [id, rd] of runData) this.summaries.update(id, rd);
    if (ids.join("\u0000") !== this.labelsFor) { this.labelsFor = ids.join("\u0000"); this.labels = pathLabels(ids); }
    const all = ids.map((id) => ({ id, label: this.labels.get(id), status: infos.get(id)?.status, files: streamFormats(infos.get(id)),
      config: configs.configs.get(id) || {} }));
    this.rows = all.filter(rowFilter(this.view.hfilter, this.summaries, this.view.hdir));
    const { varying, constant } = configColumns(ids, configs.configs);
    const metrics = this._metrics(infos, runData);
    const cols = tableColumns(varying, metrics.shown, this.view.hdir);
    const sortCol = columnOf(this.view.hsort, this.view.hdir) || cols[0];
    const sorted = sortRows(this.rows, sortCol, this.summaries, this.view.hdesc);
    this._constant(constant, configs.truncated.size);
    this._head(cols, sortCol);
    this._body(sorted.slice(0, MAX_ROWS), cols, selected);
    this.count.textContent = `${this.rows.length} of ${all.length} runs, ${selected.size} selected`;
    const notes = [];
    if (sorted.length > MAX_ROWS) notes.push(`${MAX_ROWS} of ${sorted.length} rows shown: sort or filter to see the others.`);
    if (metrics.all > metrics.shown.length) notes.push(`${metrics.shown.length} of ${metrics.all} metrics have columns: the metric filter picks them.`);
    this.note.textContent = notes.join(" ");
    this.note.hidden = !notes.length;
    this._plots(varying, cols, selected);
  }

  /** The metrics with columns: those of every run (run objects name them) the filter leaves. */
  _metrics(infos, runData) {
    const names = new Set();
    for (const info of infos.values()) for (const m of info.metrics || []) names.add(m);
    for (const rd of runData.values()) for (const m of rd.series.keys()) names.add(m);
    let re = null;
    try { re = this.metricFilter.value ? new RegExp(this.metricFilter.value, "i") : null; } catch { re = null; }
    const picked = [...names].sort().filter((m) => !re || re.test(m));
    return { shown: picked.slice(0, MAX_METRICS), all: picked.length };
  }

  _constant(constant, truncated) {
    this.constant.hidden = !constant.length && !truncated;
    const sig = JSON.stringify([constant, truncated]);
    if (sig === this.constantSig) return;
    this.constantSig = sig;
    this.constant.replaceChildren(
      h("summary", null, `${constant.length} config value${constant.length === 1 ? "" : "s"} shared by every run`),
      h("div", { class: "hp-shared" }, constant.map(([k, v]) => h("span", null, label(k), `=${visible(cellText(v ?? "null"))}`))),
      truncated ? h("p", { class: "hp-note" }, `The configs of ${truncated} run${truncated === 1 ? " were" : "s were"} cut to their first 64 keys (200 characters a value) in the run list: /api/run has them whole.`) : null);
  }

  _head(cols, sortCol) {
    const sig = JSON.stringify([cols, sortCol.key, this.view.hdesc]);
    if (sig === this.headSig) return;
    this.headSig = sig;
    const what = { last: " last", best: " best" };
    const sorted = (c) => c.key === sortCol.key;
    this.thead.replaceChildren(h("tr", null, h("th", { class: "sel" }), cols.map((c) => h("th", {
      dataset: { col: c.key }, class: `${c.kind}${sorted(c) ? " sorted" : ""}`,
      title: c.metric ? `${visible(c.name)}: click to sort; the arrow sets which way is better` : "click to sort",
    }, label(c.name), what[c.kind] || "", sorted(c) ? h("span", { class: "sort" }, this.view.hdesc ? " ▼" : " ▲") : null,
    c.metric ? [" ", h("button", { class: `dir ${c.dir}`, title: DIR_TITLE[c.dir] }, ARROW[c.dir])] : null))));
  }

  _body(rows, cols, selected) {
    // the best value of each best column among the rows shown, marked
    const top = new Map();
    for (const c of cols.filter((c) => c.kind === "best")) {
      let best = null;
      for (const r of this.rows) {
        const v = cellValue(r, c, this.summaries);
        if (typeof v === "number" && Number.isFinite(v) && (best == null || (c.dir === "min" ? v < best : v > best))) best = v;
      }
      top.set(c.key, best);
    }
    const colSig = this.headSig;
    const trs = rows.map((row) => {
      const on = selected.has(row.id);
      const values = cols.map((c) => cellValue(row, c, this.summaries));
      const texts = values.map(cellText);
      const tops = cols.map((c, i) => c.kind === "best" && values[i] != null && values[i] === top.get(c.key));
      const color = this.colorOf(row.id);
      const sig = JSON.stringify([colSig, on, color, texts, tops]);
      const hit = this.rowEls.get(row.id);
      if (hit && hit.sig === sig) return hit.tr;
      const tr = h("tr", { dataset: { run: row.id }, class: on ? "on" : null, title: visible(row.id) },
        h("td", { class: "sel" }, h("input", { type: "checkbox", tabindex: "-1", checked: on }),
          h("i", { class: "sw", style: { background: on ? color : "transparent" } })),
        cols.map((c, i) => h("td", { class: `${c.kind}${tops[i] ? " best-run" : ""}`, title: c.kind === "config" ? visible(texts[i]) : null },
          c.kind === "run" ? label(texts[i]) : visible(texts[i]))));
      this.rowEls.set(row.id, { sig, tr });
      return tr;
    });
    const shown = new Set(rows.map((r) => r.id));
    for (const id of [...this.rowEls.keys()]) if (!shown.has(id)) this.rowEls.delete(id);
    order(this.tbody, trs);
  }

  _plots(varying, cols, selected) {
    const choices = cols.filter((c) => c.kind === "config" || c.kind === "last" || c.kind === "best");
    const metricCols = choices.filter((c) => c.kind !== "config");
    const pick = (key, fallback) => (key && columnOf(key, this.view.hdir)) || fallback;
    const defaultY = metricCols.find((c) => c.kind === "best") || metricCols[0] || null;
    const y = pick(this.view.hy, defaultY);
    const numeric = (c) => this.rows.some((r) => typeof cellValue(r, c, this.summaries) === "number");
    const x = pick(this.view.hx, choices.find((c) => c.kind === "config" && numeric(c)) || choices.find((c) => c.kind === "config") || metricCols[0] || null);
    const fill = (sel, options, current) => {
      const sig = JSON.stringify([options.map((c) => c.key), current?.key]);
      if (sel.dataset.sig === sig) return;
      sel.dataset.sig = sig;
      const list = current && !options.some((c) => c.key === current.key) ? [current, ...options] : options;
      sel.replaceChildren(...list.map((c) => h("option", { value: c.key }, visible(c.kind === "config" ? c.name : `${c.name} ${c.kind}`))));
      if (current) sel.value = current.key;
    };
    fill(this.xSel, choices, x);
    fill(this.ySel, metricCols, y);
    const values = (row, col) => cellValue(row, col, this.summaries);
    const base = { rows: this.rows, values, selected, colorOf: this.colorOf };
    const axes = varying.slice(0, MAX_AXES).map((k) => columnOf(`c:${k}`));
    this.parallel.set({ ...base, axes: y ? [...axes, y] : axes });
    this.scatter.set({ ...base, x, y });
  }
}
