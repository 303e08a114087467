// The runs table's plots, on Canvas: parallel coordinates (one vertical axis per config key that
// differs, and the chosen metric's; a line per run) and a scatter (x: a config key or a metric's
// value, y: a metric's value; a point per run). Selected runs are drawn in their colours over the
// others, in grey. The pointer names the run under it; a drag on a parallel axis brushes a range
// (the runs inside every brush are selected), a drag in the scatter selects the runs in its
// rectangle, a click on a point selects or deselects its run. Drawn again only when asked.

import { h, label, visible } from "./dom.js";
import { formatNumber, linearTicks, logTicks } from "./scale.js";
import { cellText } from "./hparams.js";

const GREY = "rgba(128, 128, 128, 0.35)";
const FAINT = "rgba(128, 128, 128, 0.12)";
const SLOP = 4; // a press moving less than this (px) is a click
const NEAR = 8; // how close (px) the pointer must be to name a point or line

/**
 * Where values of one column sit on an axis: numbers on a linear scale (log10 when all are
 * positive and span two decades or more), anything else as evenly spaced categories in natural
 * order. {kind, pos(v) -> 0..1 or NaN (no value), ticks: [[pos, text]]}.
 */
export function axisScale(values) {
  const present = values.filter((v) => v != null && !(typeof v === "number" && !Number.isFinite(v)));
  if (present.length && present.every((v) => typeof v === "number")) {
    let lo = Math.min(...present), hi = Math.max(...present);
    const log = lo > 0 && hi / lo >= 100;
    const f = log ? Math.log10 : (v) => v;
    if (lo === hi) { lo -= log ? lo / 2 : 0.5; hi += log ? hi : 0.5; }
    const a = f(lo), b = f(hi);
    const pos = (v) => (typeof v === "number" && Number.isFinite(v) && (!log || v > 0) ? (f(v) - a) / (b - a) : NaN);
    const ticks = (log ? logTicks(lo, hi) : linearTicks(lo, hi, 4)).map((t) => [pos(t), formatNumber(t)]);
    return { kind: "num", log, pos, ticks };
  }
  const cats = [...new Set(present.map((v) => cellText(v)))].sort((x, y) => x.localeCompare(y, "en", { numeric: true }));
  const at = new Map(cats.map((c, i) => [c, cats.length === 1 ? 0.5 : i / (cats.length - 1)]));
  return { kind: "cat", pos: (v) => (v == null ? NaN : at.get(cellText(v)) ?? NaN), ticks: cats.map((c) => [at.get(c), c]) };
}

/** A canvas sized to its box (`size`, CSS pixels) for the device's pixels, its context scaled to
 *  CSS pixels. */
function fit(canvas, size) {
  const dpr = window.devicePixelRatio || 1;
  const { w, h: hgt } = size;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(hgt * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(hgt * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, hgt);
  return { ctx, w, h: hgt };
}

let themeCache = null;
/** The theme's colours, read once per theme (getComputedStyle in each draw recalculates styles). */
function themeColours(el) {
  const key = document.documentElement.dataset.theme || "";
  if (themeCache?.key === key) return themeCache.colours;
  const cs = getComputedStyle(el);
  const colours = { axis: cs.getPropertyValue("--muted").trim() || "#6b7280", sel: cs.getPropertyValue("--select").trim() || "rgba(59,130,246,0.15)" };
  themeCache = { key, colours };
  return colours;
}

/** Shared by both plots: a canvas, a tooltip naming the run under the pointer, drag and click. */
class Plot {
  constructor(cls, { onSelect, onToggle }) {
    this.canvas = h("canvas");
    this.tip = h("div", { class: "hp-tip", hidden: true });
    this.el = h("div", { class: `hp-plot ${cls}` }, this.canvas, this.tip);
    this.onSelect = onSelect;
    this.onToggle = onToggle;
    this.data = null;
    this.drag = null;
    // the canvas' size from a ResizeObserver: reading it in a draw would lay out the whole page (a
    // table of hundreds of rows) each time
    this.size = { w: 0, h: 0 };
    new ResizeObserver((entries) => {
      const box = entries[entries.length - 1].contentRect;
      this.size = { w: Math.round(box.width), h: Math.round(box.height) };
      if (this.data) this.draw();
    }).observe(this.canvas);
    const local = (e) => { const r = this.canvas.getBoundingClientRect(); return { x: e.clientX - r.left, y: e.clientY - r.top }; };
    this.canvas.addEventListener("pointerdown", (e) => {
      const p = local(e);
      this.drag = { x0: p.x, y0: p.y, x1: p.x, y1: p.y };
      this.canvas.setPointerCapture(e.pointerId);
    });
    this.canvas.addEventListener("pointermove", (e) => {
      const p = local(e);
      if (this.drag) { this.drag.x1 = p.x; this.drag.y1 = p.y; this.draw(); return; }
      this._hover(p);
    });
    this.canvas.addEventListener("pointerup", () => {
      const d = this.drag;
      this.drag = null;
      if (!d || !this.data) return;
      if (Math.abs(d.x1 - d.x0) < SLOP && Math.abs(d.y1 - d.y0) < SLOP) this._click(d);
      else this._dragged(d);
      this.draw();
    });
    this.canvas.addEventListener("pointerleave", () => { if (!this.tip.hidden) this.tip.hidden = true; });
  }

  /** data: {rows, values(row, col), selected: Set of ids, colorOf(id)} and the plot's own fields. */
  set(data) {
    this.data = data;
    this.draw();
  }

  _tipAt(p, row, lines) {
    if (!row) { this.tip.hidden = true; return; }
    this.tip.replaceChildren(h("b", null, label(row.label ?? row.id)), row.label != null && row.label !== row.id ? h("small", null, visible(row.id)) : null,
      ...lines.map(([name, v]) => h("div", null, label(name), `: ${cellText(v)}`)));
    this.tip.style.left = `${Math.round(p.x + 12)}px`;
    this.tip.style.top = `${Math.round(p.y + 12)}px`;
    this.tip.hidden = false;
  }

  /** Rows drawn grey first, then the selected ones in their colours (on top). */
  _ordered() {
    const { rows, selected } = this.data;
    return [...rows.filter((r) => !selected.has(r.id)), ...rows.filter((r) => selected.has(r.id))];
  }
}

export class ScatterPlot extends Plot {
  constructor(opts) {
    super("hp-scatter", opts);
    this.points = []; // [{row, x, y}] in CSS pixels, as last drawn
  }

  draw() {
    const d = this.data;
    const { ctx, w, h: hgt } = fit(this.canvas, this.size);
    this.points = [];
    if (!d || !d.x || !d.y || !w) return;
    const M = { l: 54, r: 12, t: 10, b: 30 };
    const xs = axisScale(d.rows.map((r) => d.values(r, d.x))), ys = axisScale(d.rows.map((r) => d.values(r, d.y)));
    const px = (t) => M.l + t * (w - M.l - M.r), py = (t) => hgt - M.b - t * (hgt - M.t - M.b);
    this.frame = { x0: M.l, x1: w - M.r, y0: M.t, y1: hgt - M.b }; // the plot's box, CSS pixels
    const theme = themeColours(this.el);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = theme.axis;
    ctx.strokeStyle = theme.axis;
    ctx.globalAlpha = 0.35;
    ctx.strokeRect(M.l, M.t, w - M.l - M.r, hgt - M.t - M.b);
    ctx.globalAlpha = 1;
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    for (const [t, text] of xs.ticks) ctx.fillText(visible(text).slice(0, 16), px(t), hgt - M.b + 4);
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (const [t, text] of ys.ticks) ctx.fillText(visible(text).slice(0, 10), M.l - 4, py(t));
    for (const row of this._ordered()) {
      const x = px(xs.pos(d.values(row, d.x))), y = py(ys.pos(d.values(row, d.y)));
      if (!Number.isFinite(x) || !Number.isFinite(y)) continue;
      this.points.push({ row, x, y });
      const on = d.selected.has(row.id);
      ctx.beginPath();
      ctx.arc(x, y, on ? 4 : 3.5, 0, 2 * Math.PI);
      if (on) { ctx.fillStyle = d.colorOf(row.id); ctx.fill(); } else { ctx.strokeStyle = GREY; ctx.stroke(); }
    }
    if (this.drag) {
      const { x0, y0, x1, y1 } = this.drag;
      ctx.fillStyle = theme.sel;
      ctx.fillRect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
    }
  }

  _nearest(p) {
    let best = null, bd = NEAR * NEAR;
    for (const pt of this.points) {
      const dd = (pt.x - p.x) ** 2 + (pt.y - p.y) ** 2;
      if (dd <= bd) { bd = dd; best = pt; }
    }
    return best;
  }

  _hover(p) {
    const pt = this._nearest(p);
    this._tipAt(p, pt?.row, pt ? [[this.data.x.name, this.data.values(pt.row, this.data.x)], [this.data.y.name, this.data.values(pt.row, this.data.y)]] : []);
  }

  _click(d) {
    const pt = this._nearest({ x: d.x0, y: d.y0 });
    if (pt) this.onToggle(pt.row.id);
  }

  _dragged({ x0, y0, x1, y1 }) {
    const [a, b, c, e] = [Math.min(x0, x1), Math.max(x0, x1), Math.min(y0, y1), Math.max(y0, y1)];
    this.onSelect(this.points.filter((pt) => pt.x >= a && pt.x <= b && pt.y >= c && pt.y <= e).map((pt) => pt.row.id));
  }
}

export class ParallelPlot extends Plot {
  constructor(opts) {
    super("hp-parallel", opts);
    this.brushes = new Map(); // column key -> [t0, t1] (0..1 from the axis' bottom)
    this.lines = []; // [{row, pts: [[x, y] | null]}] as last drawn
    this.layout = null;
  }

  draw() {
    const d = this.data;
    const { ctx, w, h: hgt } = fit(this.canvas, this.size);
    this.lines = [];
    if (!d || !d.axes.length || !w) return;
    const M = { l: 40, r: 40, t: 22, b: 18 };
    const scales = d.axes.map((col) => axisScale(d.rows.map((r) => d.values(r, col))));
    const ax = (i) => (d.axes.length === 1 ? w / 2 : M.l + (i * (w - M.l - M.r)) / (d.axes.length - 1));
    const py = (t) => hgt - M.b - t * (hgt - M.t - M.b);
    this.layout = { ax, py, M, hgt };
    this.frame = { axes: d.axes.map((c, i) => ({ key: c.key, x: ax(i) })), y0: py(1), y1: py(0) }; // CSS pixels
    for (const key of [...this.brushes.keys()]) if (!d.axes.some((c) => c.key === key)) this.brushes.delete(key);
    const inside = (row) => d.axes.every((col, i) => {
      const b = this.brushes.get(col.key);
      if (!b) return true;
      const t = scales[i].pos(d.values(row, col));
      return t >= b[0] && t <= b[1];
    });
    const theme = themeColours(this.el);
    ctx.lineWidth = 1;
    for (const row of this._ordered()) {
      const pts = d.axes.map((col, i) => { const t = scales[i].pos(d.values(row, col)); return Number.isFinite(t) ? [ax(i), py(t)] : null; });
      this.lines.push({ row, pts });
      const on = d.selected.has(row.id);
      ctx.strokeStyle = !inside(row) ? FAINT : on ? d.colorOf(row.id) : GREY;
      ctx.lineWidth = on ? 1.5 : 1;
      ctx.beginPath();
      let drawing = false;
      for (const p of pts) {
        if (!p) { drawing = false; continue; } // no value on that axis: the line breaks there
        if (drawing) ctx.lineTo(p[0], p[1]); else ctx.moveTo(p[0], p[1]);
        drawing = true;
      }
      ctx.stroke();
    }
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    d.axes.forEach((col, i) => {
      const x = ax(i);
      ctx.strokeStyle = theme.axis;
      ctx.beginPath(); ctx.moveTo(x + 0.5, py(0)); ctx.lineTo(x + 0.5, py(1)); ctx.stroke();
      ctx.fillStyle = theme.axis;
      ctx.textAlign = i === 0 ? "left" : i === d.axes.length - 1 ? "right" : "center";
      ctx.textBaseline = "bottom";
      ctx.fillText(visible(col.kind === "best" ? `${col.name} (${col.dir})` : col.name).slice(0, 28), x, M.t - 6);
      ctx.textAlign = "left"; ctx.textBaseline = "middle";
      for (const [t, text] of scales[i].ticks.slice(0, 12)) ctx.fillText(visible(text).slice(0, 12), x + 4, py(t));
      const b = this.brushes.get(col.key);
      if (b) { ctx.fillStyle = theme.sel; ctx.fillRect(x - 7, py(b[1]), 14, py(b[0]) - py(b[1])); }
    });
    const dragged = this.drag ? this._axisAt(this.drag.x0) : null;
    if (dragged != null) { // the brush being drawn
      ctx.fillStyle = theme.sel;
      ctx.fillRect(ax(dragged) - 7, Math.min(this.drag.y0, this.drag.y1), 14, Math.abs(this.drag.y1 - this.drag.y0));
    }
    this.inside = inside;
  }

  /** The axis a press at x is on (within 14 px), or null. */
  _axisAt(x) {
    if (!this.layout) return null;
    let best = null;
    this.data.axes.forEach((_, i) => { if (Math.abs(this.layout.ax(i) - x) <= 14 && best == null) best = i; });
    return best;
  }

  _hover(p) {
    let best = null, bd = NEAR;
    for (const line of this.lines) {
      for (let k = 1; k < line.pts.length; k++) {
        const a = line.pts[k - 1], b = line.pts[k];
        if (!a || !b || p.x < a[0] || p.x > b[0]) continue;
        const y = a[1] + ((b[1] - a[1]) * (p.x - a[0])) / (b[0] - a[0] || 1);
        if (Math.abs(y - p.y) <= bd) { bd = Math.abs(y - p.y); best = line.row; }
      }
    }
    const d = this.data;
    this._tipAt(p, best, best ? d.axes.map((col) => [col.kind === "best" ? `${col.name} (${col.dir})` : col.name, d.values(best, col)]) : []);
  }

  _click(dr) {
    const i = this._axisAt(dr.x0);
    if (i != null && this.brushes.delete(this.data.axes[i].key)) this._select(); // a click on a brush takes it away
  }

  _dragged(dr) {
    const i = this._axisAt(dr.x0);
    if (i == null) return;
    const { py } = this.layout;
    const t = (y) => (py(0) - y) / (py(0) - py(1));
    const a = t(Math.max(dr.y0, dr.y1)), b = t(Math.min(dr.y0, dr.y1));
    this.brushes.set(this.data.axes[i].key, [a, b]);
    this._select();
  }

  /** The runs inside every brush are selected (none brushed: nothing changes). */
  _select() {
    this.draw();
    if (!this.brushes.size) return;
    this.onSelect(this.data.rows.filter((r) => this.inside(r)).map((r) => r.id));
  }
}
