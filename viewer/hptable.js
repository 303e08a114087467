// The runs table tab: every run of the log folder as a row (its name, status, the config values that
// differ between the runs, each metric's last value and best one), sorted by a click on a heading
// (again: the other way), narrowed by a filter (`lr>=0.01 adam`: see hparams.js rowFilter), with
// the config values every run shares folded above it, and its plots (hpplots.js) over it. A row's
// click, a brush on a parallel axis, a rectangle or a click in the scatter select runs in the page
// (the charts, the run list). A metric's best follows its direction, set by the button in its
// heading (min, max, none). Metric values come from the series the page holds: a run never
// selected has none yet (select it, or all shown, to fill them); they stay once it was.
// Built again at most once a second while runs change; a row shown before has only the cells that
// changed written, and the table is laid out by column widths it sets (not by measuring every cell).

import { h, label, visible } from "./dom.js";
import { pathLabels } from "./names.js";
import { streamFormats } from "./runs.js";
import { Summaries, configColumns, tableColumns, columnOf, cellValue, cellText, sortRows, rowFilter,
  setDirection, nextDirection } from "./hparams.js";
import { ParallelPlot, ScatterPlot } from "./hpplots.js";

const REFRESH_MS = 1000;
/** Rows in the DOM at first, and more a click (a table lays out all its cells again whenever one
 *  changes: a few hundred rows of forty cells cost a long task a refresh). */
export const ROWS = 50;
/** Rows kept built beyond those shown (a sort the other way shows them again). */
const KEPT_ROWS = 600;
/** Metrics with columns at most (the metric filter picks them). */
export const MAX_METRICS = 16;
/** Config keys with an axis in the parallel plot at most. */
const MAX_AXES = 8;
const ARROW = { min: "↓", max: "↑", none: "·" };
const WIDEST = 28; // characters a column shows at most (a longer value is cut, whole in its title)
const SEL = 4; // the selection column: a checkbox and a swatch
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
    this.rowEls = new Map(); // id -> {colSig, tr, its cells and what they show}
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
    this.cols = h("colgroup");
    this.thead = h("thead");
    this.tbody = h("tbody");
    this.note = h("p", { class: "hp-note", hidden: true });
    this.limit = ROWS;
    this.more = h("button", { class: "hp-more", hidden: true, onclick: () => { this.limit += ROWS; this.refresh(true); } }, `Show ${ROWS} more`);
    el.replaceChildren(
      h("div", { class: "hp-bar" }, this.filter, this.metricFilter, this.selectShown, this.count),
      this.constant,
      h("div", { class: "hp-plots" }, this.parallel.el,
        h("div", { class: "hp-scatter-box" }, h("div", { class: "hp-axes" }, h("label", null, "x ", this.xSel), h("label", null, "y ", this.ySel)),
          this.scatter.el)),
      h("div", { class: "table-wrap" }, (this.table = h("table", { class: "hp" }, this.cols, this.thead, this.tbody))), this.note, this.more);
    this._bind();
  }

  _bind() {
    this.filter.addEventListener("input", () => { this.view.hfilter = this.filter.value; this.onView(); this.refresh(true); });
    this.metricFilter.addEventListener("input", () => this.refresh(true));
    this.selectShown.addEventListener("click", () => this.onSelect(this.rows.map((r) => r.id)));
    for (const [sel, key] of [[this.xSel, "hx"], [this.ySel, "hy"]]) {
      sel.addEventListener("change", () => { this.view[key] = sel.value; this.onView(); this.refresh(true); });
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
      this.refresh(true);
    });
    this.tbody.addEventListener("click", (e) => {
      const tr = e.target.closest("tr");
      if (tr) this.onToggle(tr.dataset.run);
    });
  }

  /** What the table shows: infos (id -> run object) and their version (changes with any of them),
   *  configs (a RunConfigs), runData (id -> RunData, the runs whose series the page holds),
   *  selected (Set of ids). */
  update(src) {
    this.src = src;
  }

  /** What depends on the runs and their configs only, made again when those change: ids, rows,
   *  labels, config columns, metric names. */
  _runs() {
    const { infos, infosVersion, configs } = this.src;
    const key = `${infosVersion}|${configs.version}`;
    if (this.runsKey === key) return this.runsData;
    this.runsKey = key;
    const ids = [...infos.keys()].sort();
    const labels = pathLabels(ids);
    const rows = ids.map((id) => ({ id, label: labels.get(id), status: infos.get(id)?.status, files: streamFormats(infos.get(id)),
      config: configs.configs.get(id) || {} }));
    const names = new Set();
    for (const info of infos.values()) for (const m of info.metrics || []) names.add(m);
    this.runsData = { ids, rows, names, ...configColumns(ids, configs.configs) };
    return this.runsData;
  }

  /**
   * Build again: in a task of its own if `now` (a user's change: not in the frame that handles the
   * click, which then lays out and paints, so that neither is a long task), else within a second
   * (runs and their data change often).
   */
  refresh(now = false) {
    const wait = now ? 0 : Math.max(0, REFRESH_MS - (Date.now() - this.last));
    if (this.timer && (!now || this.due <= Date.now())) return;
    clearTimeout(this.timer);
    this.due = Date.now() + wait;
    this.timer = setTimeout(() => { this.timer = 0; this.render(); }, wait);
  }

  render() {
    clearTimeout(this.timer);
    this.timer = 0;
    this.last = Date.now();
    const { configs, runData, selected } = this.src;
    const { ids, rows: all, names, varying, constant } = this._runs();
    if (this.summariesFor !== ids) { this.summariesFor = ids; this.summaries.keep(new Set(ids)); }
    for (const [id, rd] of runData) this.summaries.update(id, rd);
    this.rows = all.filter(rowFilter(this.view.hfilter, this.summaries, this.view.hdir));
    const metrics = this._metrics(names, runData);
    const cols = tableColumns(varying, metrics.shown, this.view.hdir);
    const sortCol = columnOf(this.view.hsort, this.view.hdir) || cols[0];
    const sorted = sortRows(this.rows, sortCol, this.summaries, this.view.hdesc);
    this._constant(constant, configs.truncated.size);
    this._head(cols, sortCol);
    this._body(sorted.slice(0, this.limit), cols, selected);
    this.count.textContent = `${this.rows.length} of ${all.length} runs, ${selected.size} selected`;
    const notes = [];
    const cut = sorted.length > this.limit;
    if (cut) notes.push(`${this.limit} of ${sorted.length} rows shown: sort or filter to see the others.`);
    if (this.more.hidden === cut) this.more.hidden = !cut;
    if (metrics.all > metrics.shown.length) notes.push(`${metrics.shown.length} of ${metrics.all} metrics have columns: the metric filter picks them.`);
    this.note.textContent = notes.join(" ");
    this.note.hidden = !notes.length;
    // the plots in the next frame: the table's rows show first, each part a short task
    this.plotArgs = [varying, cols, selected];
    if (!this.plotFrame) this.plotFrame = requestAnimationFrame(() => { this.plotFrame = 0; this._plots(...this.plotArgs); });
  }

  /** The metrics with columns: those of every run (run objects name them) the filter leaves. */
  _metrics(known, runData) {
    const names = new Set(known);
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
      const hit = this.rowEls.get(row.id);
      if (hit && hit.colSig === colSig) { this._patch(hit, { on, color, texts, tops }, cols); return hit.tr; }
      const cells = cols.map((c, i) => h("td", { class: `${c.kind}${tops[i] ? " best-run" : ""}`, title: texts[i].length > WIDEST ? visible(texts[i]) : null },
        c.kind === "run" ? label(texts[i]) : visible(texts[i])));
      const box = h("input", { type: "checkbox", tabindex: "-1", checked: on });
      const sw = h("i", { class: "sw", style: { background: on ? color : "transparent" } });
      const tr = h("tr", { dataset: { run: row.id }, class: on ? "on" : null, title: visible(row.id) }, h("td", { class: "sel" }, box, sw), cells);
      this.rowEls.set(row.id, { colSig, tr, box, sw, cells, on, color, texts, tops });
      return tr;
    });
    if (this.rowEls.size > KEPT_ROWS) {
      const shown = new Set(rows.map((r) => r.id));
      for (const id of [...this.rowEls.keys()]) if (!shown.has(id)) this.rowEls.delete(id);
    }
    this._widths(cols, rows);
    order(this.tbody, trs);
  }

  /** A row shown before, with the same columns: only what changed in it is written (a live value
   *  is one text; rows rebuilt whole cost the table's layout and paint again). */
  _patch(row, now, cols) {
    if (row.on !== now.on || row.color !== now.color) {
      row.tr.classList.toggle("on", now.on);
      row.box.checked = now.on;
      row.sw.style.background = now.on ? now.color : "transparent";
      row.on = now.on; row.color = now.color;
    }
    now.texts.forEach((text, i) => {
      const td = row.cells[i];
      if (text !== row.texts[i]) {
        if (cols[i].kind === "run") td.replaceChildren(label(text)); else td.textContent = visible(text);
        if (text.length > WIDEST) td.title = visible(text); else td.removeAttribute("title");
      }
      if (now.tops[i] !== row.tops[i]) td.classList.toggle("best-run", now.tops[i]);
    });
    row.texts = now.texts; row.tops = now.tops;
  }

  /**
   * Column widths set from the longest text of each column (in characters, at most WIDEST): the
   * table is laid out by them alone (table-layout: fixed), not by measuring every cell again
   * whenever one changes, as a live table's do every second. Widths only grow while the columns
   * stay the same, so a live value getting shorter does not move the columns.
   */
  _widths(cols, rows) {
    if (this.widthsFor !== this.headSig) { this.widthsFor = this.headSig; this.widths = cols.map(() => 0); }
    const extra = (c) => (c.metric ? 5 : 2); // a heading's arrows and direction button
    cols.forEach((c, i) => {
      let n = c.name.length + ((c.kind === "last" || c.kind === "best") ? 5 : 0) + extra(c);
      for (const r of rows) n = Math.max(n, this.rowEls.get(r.id).texts[i].length);
      this.widths[i] = Math.max(this.widths[i], Math.min(WIDEST, n));
    });
    const sig = this.widths.join();
    if (sig === this.widthSig) return;
    this.widthSig = sig;
    const col = (ch) => h("col", { style: { width: `calc(${ch}ch + 18px)` } });
    this.cols.replaceChildren(col(SEL), ...this.widths.map(col));
    const total = this.widths.reduce((a, b) => a + b, SEL);
    this.table.style.width = `calc(${total}ch + ${18 * (this.widths.length + 1)}px)`;
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
    const axes = varying.slice(0, MAX_AXES).map((k) => columnOf(`c:${k}`));
    if (y) axes.push(y);
    // drawn again only when what they show changed (a live refresh often changes nothing of it)
    const sig = JSON.stringify([this.rows.map((r) => r.id), [...selected], axes.map((c) => c.key), x?.key, y?.key,
      this.summaries.version, this.src.infosVersion, this.src.configs.version, document.documentElement.dataset.theme]);
    if (sig === this.plotSig) return;
    this.plotSig = sig;
    const base = { rows: this.rows, values, selected, colorOf: this.colorOf };
    this.parallel.set({ ...base, axes });
    this.scatter.set({ ...base, x, y });
  }
}
