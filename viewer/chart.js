// A line chart on Canvas 2D, in uPlot's spirit: columnar typed arrays, one Path2D per series cached
// until its data or the scales change, at most one draw per animation frame, devicePixelRatio aware.
// The chart only draws (and answers the pointer on its own canvas: hover, drag to zoom): the card
// around it, its title and toolbar are layout.js's, exports are exports.js's, data comes from app.js.

import { Scale, extent, robustExtent, pad, formatNumber, formatDuration, formatClock, timeTicks } from "./scale.js";
import { emaDebiased } from "./smooth.js";
import { m4Indices, lowerBound, nearestIndex } from "./decimate.js";
import { h, label } from "./dom.js";
import { requestDraw, cancelDraw, watchVisibility, unwatchVisibility } from "./frames.js";

const MARGIN = { left: 52, right: 10, top: 8, bottom: 22 };
let themeCache = null;

/** x values of a series for an axis mode: "step", "relative" (seconds since the run's first point) or "wall". */
export function xValues(series, mode) {
  if (mode === "step") return series.steps;
  const t = series.times;
  if (mode === "wall") return t;
  const out = new Float64Array(t.length);
  const t0 = series.t0 ?? (t.length ? t[0] : 0);
  for (let i = 0; i < t.length; i++) out[i] = t[i] - t0;
  return out;
}

export class Chart {
  /**
   * The chart's element (`el`: the canvas and its tooltip) is for the caller to put in the page.
   * opts.onZoom(range|null) is called when the user zooms ([x0, x1] in x units) or resets (null).
   * opts.onHover(x|null) lets charts share a crosshair.
   */
  constructor(opts = {}) {
    this.opts = opts;
    this.canvas = h("canvas");
    this.tooltip = h("div", { class: "tooltip", hidden: true });
    this.el = h("div", { class: "chart-body" }, this.canvas, this.tooltip);
    this.ctx = this.canvas.getContext("2d");
    this.series = []; // [{id, color, steps, values, times, version, t0}]
    this.view = { xaxis: "step", logy: false, outliers: false, smoothing: 0, zoom: null };
    this.hoverX = null;
    this.drag = null;
    this.paths = new Map(); // series id -> {key, raw: Path2D, smooth: Path2D}
    this.smoothCache = new Map(); // series id -> {key, values}
    this.size = { w: 0, h: 0, dpr: 1 };
    this.draws = 0;
    this.cost = 0; // running average of a draw's duration (ms), for the frame budget
    this.visible = true;
    this.stale = false;
    watchVisibility(this, this.el);
    this.cssSize = null;
    if (typeof ResizeObserver !== "undefined") {
      this.resizer = new ResizeObserver((entries) => {
        const box = entries[entries.length - 1].contentRect;
        this.cssSize = { w: Math.round(box.width), h: Math.round(box.height) };
        this.invalidate();
      });
      this.resizer.observe(this.canvas);
    }
    this._listen();
  }

  setSeries(series) {
    this.series = series;
    this.invalidate();
  }

  setView(view) {
    Object.assign(this.view, view);
    this.invalidate();
  }

  /** Ask for a draw in a coming animation frame; many calls before it cost one draw. */
  invalidate() {
    requestDraw(this);
  }

  /** The drawing as a PNG data URL (what an export saves). */
  pngURL() {
    return this.canvas.toDataURL("image/png");
  }

  destroy() {
    cancelDraw(this);
    unwatchVisibility(this.el);
    if (this.resizer) this.resizer.disconnect();
    this.el.remove();
  }

  _listen() {
    const c = this.canvas;
    const local = (e) => {
      const r = c.getBoundingClientRect();
      return { x: e.clientX - r.left, y: e.clientY - r.top };
    };
    c.addEventListener("mousedown", (e) => {
      const p = local(e);
      if (p.x < MARGIN.left) return;
      this.drag = { x0: p.x, x1: p.x };
    });
    c.addEventListener("mousemove", (e) => {
      const p = local(e);
      if (this.drag) this.drag.x1 = p.x;
      this.hoverX = this.sx ? this.sx.value(p.x) : null;
      if (this.opts.onHover) this.opts.onHover(this.hoverX, this);
      this.invalidate();
    });
    c.addEventListener("mouseleave", () => {
      this.hoverX = null;
      if (this.opts.onHover) this.opts.onHover(null, this);
      this.invalidate();
    });
    window.addEventListener("mouseup", () => {
      if (!this.drag) return;
      const { x0, x1 } = this.drag;
      this.drag = null;
      if (Math.abs(x1 - x0) > 4 && this.sx) {
        const a = this.sx.value(Math.min(x0, x1)), b = this.sx.value(Math.max(x0, x1));
        this.setView({ zoom: [a, b] });
        if (this.opts.onZoom) this.opts.onZoom([a, b], this);
      }
      this.invalidate();
    });
    c.addEventListener("dblclick", () => {
      this.setView({ zoom: null });
      if (this.opts.onZoom) this.opts.onZoom(null, this);
    });
  }

  /** The canvas' CSS size comes from a ResizeObserver: reading clientWidth in every draw would force
   *  a layout whenever anything on the page changed since the last one. */
  _resize() {
    const dpr = window.devicePixelRatio || 1;
    if (!this.cssSize) this.cssSize = { w: this.canvas.clientWidth, h: this.canvas.clientHeight };
    const { w, h } = this.cssSize;
    if (w !== this.size.w || h !== this.size.h || dpr !== this.size.dpr) {
      this.size = { w, h, dpr };
      this.canvas.width = Math.max(1, Math.round(w * dpr));
      this.canvas.height = Math.max(1, Math.round(h * dpr));
      this.paths.clear();
    }
  }

  _smoothed(s) {
    const key = `${s.version}|${this.view.smoothing}`;
    const hit = this.smoothCache.get(s.id);
    if (hit && hit.key === key) return hit.values;
    const values = emaDebiased(s.values, this.view.smoothing);
    this.smoothCache.set(s.id, { key, values });
    return values;
  }

  _scales() {
    const { w, h } = this.size;
    const mode = this.view.xaxis;
    let xlo = Infinity, xhi = -Infinity;
    const ys = [];
    for (const s of this.series) {
      const xs = xValues(s, mode);
      if (!xs.length) continue;
      let lo = 0, hi = xs.length;
      if (this.view.zoom) {
        lo = lowerBound(xs, this.view.zoom[0]);
        hi = lowerBound(xs, this.view.zoom[1] + 1e-9);
      } else {
        xlo = Math.min(xlo, xs[0]);
        xhi = Math.max(xhi, xs[xs.length - 1]);
      }
      ys.push(s.values.subarray(lo, hi));
      if (this.view.smoothing > 0) ys.push(this._smoothed(s).subarray(lo, hi));
    }
    if (this.view.zoom) [xlo, xhi] = this.view.zoom;
    if (!(xhi >= xlo)) [xlo, xhi] = [0, 1];
    if (xhi === xlo) xhi = xlo + 1;
    const log = this.view.logy;
    let yr = null;
    for (const arr of ys) {
      const e = this.view.outliers ? robustExtent(arr, 0.02, { log }) : extent(arr, { log });
      if (!e) continue;
      yr = yr ? [Math.min(yr[0], e[0]), Math.max(yr[1], e[1])] : e;
    }
    if (!yr) yr = log ? [1, 10] : [0, 1];
    yr = pad(yr, 0.05, log);
    this.sx = new Scale(xlo, xhi, MARGIN.left, w - MARGIN.right);
    this.sy = new Scale(yr[0], yr[1], h - MARGIN.bottom, MARGIN.top, log);
  }

  /** Path of points [lo, hi) of (xs, ys), decimated per pixel column, broken at non-finite values. */
  _path(xs, ys, lo, hi) {
    const sx = this.sx, sy = this.sy;
    if (!this.scratch || this.scratch.length < hi - lo) this.scratch = new Uint32Array(Math.max(1024, (hi - lo) * 1.5) | 0);
    const idx = m4Indices(xs, ys, lo, hi, sx.lo, sx.hi, sx.p1 - sx.p0, this.scratch);
    // the scales' maps inlined: this loop runs for every point of every series on each redraw
    const xa = sx.a, xk = sx.k, xp = sx.p0, ya = sy.a, yk = sy.k, yp = sy.p0, log = sy.log;
    const p = new Path2D();
    let pen = false;
    for (let k = 0; k < idx.length; k++) {
      const i = idx[k];
      const v = ys[i];
      const t = log ? (v > 0 ? Math.log10(v) : NaN) : v;
      const y = yp + (t - ya) * yk;
      if (!(y === y && y !== Infinity && y !== -Infinity)) { pen = false; continue; }
      const x = xp + (xs[i] - xa) * xk;
      if (pen) p.lineTo(x, y); else { p.moveTo(x, y); pen = true; }
    }
    return p;
  }

  /** The theme's colours, read from CSS once per theme: getComputedStyle in every draw would force
   *  a style recalculation per chart. */
  _theme() {
    const key = document.documentElement.dataset.theme || "";
    if (themeCache && themeCache.key === key) return themeCache.colors;
    const cs = getComputedStyle(this.el);
    const v = (name, d) => cs.getPropertyValue(name).trim() || d;
    const colors = { grid: v("--grid", "#e5e7eb"), axis: v("--muted", "#6b7280"), text: v("--fg", "#111"), sel: v("--select", "rgba(59,130,246,0.15)") };
    themeCache = { key, colors };
    return colors;
  }

  draw() {
    this._resize();
    const { w, h, dpr } = this.size;
    if (!w || !h) return;
    const ctx = this.ctx;
    this.draws++;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    this._scales();
    const theme = this._theme();
    this._axes(ctx, theme);
    const mode = this.view.xaxis;
    const scaleKey = `${w}x${h}|${mode}|${this.sx.lo},${this.sx.hi}|${this.sy.lo},${this.sy.hi}|${this.view.logy}|${this.view.smoothing}`;
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, w - MARGIN.left - MARGIN.right, h - MARGIN.top - MARGIN.bottom);
    ctx.clip();
    ctx.lineJoin = "miter";
    for (const s of this.series) {
      const xs = xValues(s, mode);
      if (!xs.length) continue;
      const key = `${s.version}|${scaleKey}`;
      let cached = this.paths.get(s.id);
      if (!cached || cached.key !== key) {
        const lo = Math.max(0, lowerBound(xs, this.sx.lo) - 1);
        const hi = Math.min(xs.length, lowerBound(xs, this.sx.hi) + 1);
        cached = { key, raw: this._path(xs, s.values, lo, hi), smooth: null };
        if (this.view.smoothing > 0) cached.smooth = this._path(xs, this._smoothed(s), lo, hi);
        this.paths.set(s.id, cached);
      }
      // One pixel wide: software rasterizers draw that as a hairline, several times faster
      // than a 1.5 px stroke (about 1 ms against 5 ms for 8 x 2,000 points here).
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1;
      if (cached.smooth) {
        ctx.globalAlpha = 0.3;
        ctx.stroke(cached.raw);
        ctx.globalAlpha = 1;
        ctx.stroke(cached.smooth);
      } else {
        ctx.stroke(cached.raw);
      }
    }
    ctx.restore();
    if (this.drag) {
      ctx.fillStyle = theme.sel;
      const a = Math.min(this.drag.x0, this.drag.x1), b = Math.max(this.drag.x0, this.drag.x1);
      ctx.fillRect(a, MARGIN.top, b - a, h - MARGIN.top - MARGIN.bottom);
    }
    this._crosshair(ctx, theme);
  }

  _xLabel(v) {
    const mode = this.view.xaxis;
    if (mode === "wall") return formatClock(v, this.sx.hi - this.sx.lo);
    if (mode === "relative") return formatDuration(v);
    return formatNumber(v);
  }

  _axes(ctx, theme) {
    const { w, h } = this.size;
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    ctx.strokeStyle = theme.grid;
    ctx.fillStyle = theme.axis;
    const xt = this.view.xaxis === "step" ? this.sx.ticks(Math.max(2, Math.floor(w / 90))) : timeTicks(this.sx.lo, this.sx.hi, Math.max(2, Math.floor(w / 90)));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.beginPath();
    for (const t of xt) {
      const x = Math.round(this.sx.px(t)) + 0.5;
      ctx.moveTo(x, MARGIN.top);
      ctx.lineTo(x, h - MARGIN.bottom);
      ctx.fillText(this._xLabel(t), x, h - MARGIN.bottom + 5);
    }
    const yt = this.sy.ticks(Math.max(2, Math.floor(h / 40)));
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const t of yt) {
      const y = Math.round(this.sy.px(t)) + 0.5;
      ctx.moveTo(MARGIN.left, y);
      ctx.lineTo(w - MARGIN.right, y);
      ctx.fillText(formatNumber(t), MARGIN.left - 5, y);
    }
    ctx.stroke();
  }

  /** Values of every series at the hovered x (binary search), drawn as dots and a tooltip. */
  _crosshair(ctx, theme) {
    const x = this.hoverX;
    if (x == null || !this.series.length || !(x >= this.sx.lo && x <= this.sx.hi)) {
      if (!this.tooltip.hidden) this.tooltip.hidden = true; // no DOM write (and style recalc) per draw
      return;
    }
    const height = this.size.h;
    const px = this.sx.px(x);
    ctx.strokeStyle = theme.axis;
    ctx.setLineDash([3, 3]);
    ctx.beginPath();
    ctx.moveTo(px + 0.5, MARGIN.top);
    ctx.lineTo(px + 0.5, height - MARGIN.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    const rows = [];
    for (const s of this.series) {
      const xs = xValues(s, this.view.xaxis);
      const i = nearestIndex(xs, x);
      if (i < 0) continue;
      const vals = this.view.smoothing > 0 ? this._smoothed(s) : s.values;
      const y = this.sy.px(vals[i]);
      if (Number.isFinite(y)) {
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(this.sx.px(xs[i]), y, 3, 0, 2 * Math.PI);
        ctx.fill();
      }
      rows.push({ s, i, v: s.values[i], sm: vals[i] });
    }
    rows.sort((a, b) => (b.sm || 0) - (a.sm || 0));
    const shown = this.view.smoothing > 0;
    this.tooltip.replaceChildren(
      h("div", { class: "tt-x" }, `${this.view.xaxis} ${this._xLabel(x)}`),
      ...rows.map(({ s, i, v, sm }) => h("div", { class: "tt-row" },
        h("i", { style: { background: s.color } }),
        label(s.id),
        h("b", null, formatNumber(shown ? sm : v)),
        h("small", null, `step ${formatNumber(s.steps[i])}`))));
    this.tooltip.hidden = false;
    const left = px + 12 + 220 > this.size.w ? Math.max(0, px - 232) : px + 12;
    this.tooltip.style.left = `${left}px`;
  }

}
