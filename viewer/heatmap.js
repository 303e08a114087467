// Histograms over time as a heatmap: one column per record (logged step), one cell per bin, drawn at
// the bin's true bounds: the record's `edges` when it has them (TensorBoard's buckets are not of
// equal width), else equal-width bins from `lo` to `hi` (the writer's). A cell's colour is how
// densely its bin is filled, its count per pixel of height, relative to the densest bin of its
// column: a wide bin holding as many values as a narrow one is the paler of the two, as the values
// are spread thinner in it. The pointer over a cell shows its step, bounds and count.
// Like the scalar chart, it only draws (and answers the pointer on its own canvas).

import { decodeValues } from "./protocol.js";
import { formatNumber, Scale, linearTicks } from "./scale.js";
import { fitCanvas, h } from "./dom.js";

/** The plot box inside the canvas, in CSS pixels: room for the value labels and the step labels. */
export const BOX = { left: 50, right: 8, top: 8, bottom: 20 };

/**
 * The n + 1 bounds of a record's n bins (bin i spans bounds[i]..bounds[i+1]), as a Float64Array:
 * its `edges` when they are n + 1 finite, non-decreasing numbers; else n equal bins from lo to hi.
 * null when neither can be placed (no finite lo and hi).
 */
export function binBounds(counts, lo, hi, edges) {
  const n = counts.length;
  if (Array.isArray(edges) && edges.length === n + 1) {
    const b = decodeValues(edges);
    let ok = true;
    for (let i = 0; i <= n && ok; i++) ok = Number.isFinite(b[i]) && (i === 0 || b[i] >= b[i - 1]);
    if (ok) return b;
  }
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi < lo) return null;
  const b = new Float64Array(n + 1);
  for (let i = 0; i < n; i++) b[i] = lo + ((hi - lo) * i) / n;
  b[n] = n ? hi : lo;
  return b;
}

/**
 * The records of an /api/histograms answer, each with its counts and bin bounds (records whose bins
 * cannot be placed are left out), and the value range their bins span together (0..1 when none).
 */
export function heatmapRecords(hist) {
  const los = decodeValues(hist.lo), his = decodeValues(hist.hi);
  const records = [];
  let lo = Infinity, hi = -Infinity;
  for (let j = 0; j < hist.steps.length; j++) {
    const counts = decodeValues(hist.counts[j]);
    const bounds = binBounds(counts, los[j], his[j], hist.edges ? hist.edges[j] : null);
    if (!bounds) continue;
    records.push({ step: hist.steps[j], counts, bounds });
    if (!counts.length) continue; // an empty histogram: a column with nothing in it
    lo = Math.min(lo, bounds[0]);
    hi = Math.max(hi, bounds[counts.length]);
  }
  return lo <= hi ? { records, lo, hi } : { records, lo: 0, hi: 1 };
}

/** The pixel rows a bin is drawn over: at least one pixel, so a bin of width zero still shows. */
function span(sy, a, b) {
  const y0 = sy.px(b), y1 = sy.px(a); // values grow upwards
  return y1 - y0 >= 1 ? [y0, y1] : [(y0 + y1) / 2 - 0.5, (y0 + y1) / 2 + 0.5];
}

export class Heatmap {
  constructor() {
    this.canvas = h("canvas");
    this.tooltip = h("div", { class: "tooltip", hidden: true });
    this.el = h("div", { class: "chart-body" }, this.canvas, this.tooltip);
    this.data = null; // heatmapRecords() of what is drawn
    this.sy = null;
    this.colW = 0;
    this.canvas.addEventListener("mousemove", (e) => this._hover(e.offsetX, e.offsetY));
    this.canvas.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
  }

  /** Draw an /api/histograms answer; `dark`: the theme, `muted`: the colour of the labels, `range`:
   * the values the plot spans ({lo, hi}, e.g. shared by the runs shown side by side), else its own. */
  draw(hist, { dark = false, muted = "#6b7280", range = null } = {}) {
    const { canvas } = this;
    const { ctx, w, h: H } = fitCanvas(canvas);
    this.tooltip.hidden = true;
    const data = (this.data = heatmapRecords(hist));
    const n = data.records.length;
    if (!n) return;
    const { lo, hi } = range || data;
    const sy = (this.sy = new Scale(lo, hi, H - BOX.bottom, BOX.top));
    const colW = (this.colW = (w - BOX.left - BOX.right) / n);
    const rgb = dark ? "96,165,250" : "37,99,235";
    data.records.forEach(({ counts, bounds }, j) => {
      const spans = [], density = [];
      let max = 0;
      for (let i = 0; i < counts.length; i++) {
        spans.push(span(sy, bounds[i], bounds[i + 1]));
        density.push(counts[i] > 0 ? counts[i] / (spans[i][1] - spans[i][0]) : 0);
        if (density[i] > max) max = density[i];
      }
      for (let i = 0; i < counts.length; i++) {
        if (!density[i]) continue;
        ctx.fillStyle = `rgba(${rgb},${0.08 + (0.92 * density[i]) / max})`;
        ctx.fillRect(BOX.left + j * colW, spans[i][0], Math.max(1, colW + 0.5), spans[i][1] - spans[i][0]);
      }
    });
    ctx.fillStyle = muted;
    ctx.font = "11px system-ui";
    ctx.textAlign = "right";
    for (const t of linearTicks(lo, hi, 5)) ctx.fillText(formatNumber(t), BOX.left - 4, sy.px(t) + 4);
    ctx.textAlign = "center";
    for (const k of new Set([0, Math.floor(n / 2), n - 1])) {
      ctx.fillText(`step ${formatNumber(data.records[k].step)}`, BOX.left + (k + 0.5) * colW, H - 5);
    }
  }

  /** The bin drawn at (x, y) in CSS pixels: {step, lo, hi, count}, or null. */
  cellAt(x, y) {
    if (!this.data || !this.colW) return null;
    const j = Math.floor((x - BOX.left) / this.colW);
    const rec = this.data.records[j];
    if (!rec) return null;
    // the last bin drawn over y: a bin drawn one pixel high (width zero) wins over the wide one under it
    for (let i = rec.counts.length - 1; i >= 0; i--) {
      const [y0, y1] = span(this.sy, rec.bounds[i], rec.bounds[i + 1]);
      if (y >= y0 && y <= y1) return { step: rec.step, lo: rec.bounds[i], hi: rec.bounds[i + 1], count: rec.counts[i] };
    }
    return null;
  }

  _hover(x, y) {
    const cell = this.cellAt(x, y);
    if (!cell) { this.tooltip.hidden = true; return; }
    this.tooltip.replaceChildren(
      h("div", { class: "tt-x" }, `step ${formatNumber(cell.step)}`),
      h("div", null, `${formatNumber(cell.lo)} to ${formatNumber(cell.hi)}`),
      h("div", null, h("b", null, formatNumber(cell.count)), cell.count === 1 ? " value" : " values"));
    this.tooltip.hidden = false;
    const w = this.canvas.clientWidth;
    this.tooltip.style.left = `${x + 12 + 220 > w ? Math.max(0, x - 232) : x + 12}px`;
  }
}
