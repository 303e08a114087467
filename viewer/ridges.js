// Histograms over time as offset ridges (TensorBoard's "offset" view): one outline per logged step,
// value along x, how densely each bin is filled as the ridge's height, the oldest step at the back
// (top) and the newest in front (bottom), each painted over the ones behind it. Bins are drawn at
// their true bounds (heatmap.js's records). The pointer names the step of the ridge under it and
// the bin at its value. Like the other charts, it only draws.

import { formatNumber, Scale, linearTicks } from "./scale.js";
import { fitCanvas, h } from "./dom.js";

export const RIDGE_BOX = { left: 50, right: 60, top: 8, bottom: 20 };
export const MAX_RIDGES = 48; // more steps are thinned to this many, evenly, the newest kept
const RISE = 0.3; // a ridge's full height, as a share of the plot's height

/** Which of n records are drawn: all of them up to `max`, else `max` evenly spread, the last included. */
export function ridgeIndices(n, max = MAX_RIDGES) {
  if (n <= max) return Array.from({ length: n }, (_, i) => i);
  const out = [];
  for (let k = 0; k < max; k++) out.push(Math.round(((n - 1) * k) / (max - 1)));
  return [...new Set(out)];
}

/** A record's outline: [value, density share 0..1] at each bin's two bounds, densities relative to
 * the densest bin of all the drawn records (so ridges compare across steps). */
export function outline(rec, densest) {
  const pts = [];
  for (let i = 0; i < rec.counts.length; i++) {
    const width = rec.bounds[i + 1] - rec.bounds[i];
    const d = rec.counts[i] > 0 ? (width > 0 ? rec.counts[i] / width : densest) : 0;
    pts.push([rec.bounds[i], d / densest], [rec.bounds[i + 1], d / densest]);
  }
  return pts;
}

/** The densest bin (count per unit of value) of the records; a bin of width zero counts as its count. */
export function densestBin(records) {
  let max = 0;
  for (const rec of records) {
    for (let i = 0; i < rec.counts.length; i++) {
      const width = rec.bounds[i + 1] - rec.bounds[i];
      if (rec.counts[i] > 0) max = Math.max(max, width > 0 ? rec.counts[i] / width : rec.counts[i]);
    }
  }
  return max || 1;
}

export class Ridges {
  constructor() {
    this.canvas = h("canvas");
    this.tooltip = h("div", { class: "tooltip", hidden: true });
    this.el = h("div", { class: "chart-body" }, this.canvas, this.tooltip);
    this.drawn = []; // {rec, base} of each ridge, back to front
    this.sx = null;
    this.rise = 0;
    this.canvas.addEventListener("mousemove", (e) => this._hover(e.offsetX, e.offsetY));
    this.canvas.addEventListener("mouseleave", () => { this.tooltip.hidden = true; });
  }

  /** Draw heatmapRecords() output over the value range {lo, hi}; `color` strokes the outlines. */
  draw(data, { lo, hi, color = "#2563eb", background = "#ffffff", muted = "#6b7280" } = {}) {
    const { canvas } = this;
    const { ctx, w, h: H } = fitCanvas(canvas);
    this.tooltip.hidden = true;
    const records = ridgeIndices(data.records.length).map((j) => data.records[j]);
    this.drawn = [];
    if (!records.length) return;
    const sx = (this.sx = new Scale(lo, hi, RIDGE_BOX.left, w - RIDGE_BOX.right));
    const plotH = H - RIDGE_BOX.top - RIDGE_BOX.bottom;
    const rise = (this.rise = plotH * RISE);
    const gap = records.length > 1 ? (plotH - rise) / (records.length - 1) : 0;
    const densest = densestBin(records);
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui";
    records.forEach((rec, k) => {
      const base = RIDGE_BOX.top + rise + k * gap;
      this.drawn.push({ rec, base });
      const pts = outline(rec, densest);
      if (!pts.length) return;
      ctx.beginPath();
      ctx.moveTo(sx.px(pts[0][0]), base);
      for (const [v, d] of pts) ctx.lineTo(sx.px(v), base - d * rise);
      ctx.lineTo(sx.px(pts[pts.length - 1][0]), base);
      ctx.closePath();
      ctx.fillStyle = background; // hides the ridges behind this one
      ctx.fill();
      ctx.globalAlpha = 0.25 + (0.75 * (k + 1)) / records.length; // older ridges fainter
      ctx.strokeStyle = color;
      ctx.stroke();
      ctx.globalAlpha = 1;
    });
    ctx.fillStyle = muted;
    ctx.textAlign = "center";
    for (const t of linearTicks(lo, hi, 5)) ctx.fillText(formatNumber(t), sx.px(t), H - 5);
    ctx.textAlign = "left";
    const labelled = new Set([0, Math.floor((this.drawn.length - 1) / 2), this.drawn.length - 1]);
    for (const k of labelled) {
      const { rec, base } = this.drawn[k];
      ctx.fillText(`step ${formatNumber(rec.step)}`, w - RIDGE_BOX.right + 4, base);
    }
  }

  /** The ridge whose baseline is nearest below y, and its bin at x: {step, lo, hi, count}, or null. */
  binAt(x, y) {
    if (!this.drawn.length || !this.sx) return null;
    let best = null;
    for (const d of this.drawn) if (d.base >= y && (!best || d.base < best.base)) best = d;
    if (!best || best.base - y > this.rise) return null;
    const v = this.sx.value(x), { rec } = best;
    for (let i = 0; i < rec.counts.length; i++) {
      if (v >= rec.bounds[i] && v <= rec.bounds[i + 1]) return { step: rec.step, lo: rec.bounds[i], hi: rec.bounds[i + 1], count: rec.counts[i] };
    }
    return { step: rec.step, lo: v, hi: v, count: 0 };
  }

  _hover(x, y) {
    const bin = this.binAt(x, y);
    if (!bin) { this.tooltip.hidden = true; return; }
    this.tooltip.replaceChildren(
      h("div", { class: "tt-x" }, `step ${formatNumber(bin.step)}`),
      h("div", null, `${formatNumber(bin.lo)} to ${formatNumber(bin.hi)}`),
      h("div", null, h("b", null, formatNumber(bin.count)), bin.count === 1 ? " value" : " values"));
    this.tooltip.hidden = false;
  }
}
