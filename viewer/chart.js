// A line chart on Canvas 2D, in uPlot's spirit: columnar typed arrays, one Path2D per series cached
// until its data or the scales change, at most one draw per animation frame, devicePixelRatio aware.
// A point with no drawable neighbour (a series of one point, a value between two gaps) is drawn as
// a dot: a line through it would have no length. A series with a band (a group of runs, groups.js)
// has it filled under its line, smoothed as the line is.
// The chart only draws (and answers the pointer on its own canvas: hover, drag to zoom, click to pin
// a position): the card around it, its title, toolbar, legend and data tables are layout.js's and
// readout.js's (given the values read at the hovered or pinned position through opts.onReadout),
// exports are exports.js's, data comes from app.js.

import { Scale, extent, robustExtent, pad } from "./scale.js";
import { drawAxes } from "./axes.js";
import { emaDebiased } from "./smooth.js";
import { lowerBound, nearestIndex } from "./decimate.js";
import { seriesPath, bandPath } from "./paths.js";
import { xValues } from "./xaxis.js";
import { h } from "./dom.js";
import { requestDraw, cancelDraw, watchVisibility, unwatchVisibility } from "./frames.js";

const MARGIN = { left: 52, right: 10, top: 8, bottom: 22 };
const CLICK_SLOP = 4; // a press that moves less than this (CSS pixels) is a click, not a zoom drag
const FAINT = 0.3; // alpha of the raw line under a smoothed one
const DIMMED = 0.15; // alpha of the other runs while one is highlighted
const BAND = 0.2; // alpha of a band
let themeCache = null;

export class Chart {
  /**
   * The chart's element (`el`: the canvas, in a box the caller may add to) is for the caller to put
   * in the page. opts.onZoom(range|null) is called when the user zooms ([x0, x1] in x units) or
   * resets (null). opts.onHover(x|null) lets charts share a crosshair. opts.onReadout(chart,
   * {hover, pin}) is given, after each draw that has them, the values at the position the pointer is
   * on (when it is on this chart) and at the pinned one: {x, rows: [{s, i, smoothed}]}, x the nearest
   * real point's, i that point's index in series s.
   */
  constructor(opts = {}) {
    this.opts = opts;
    this.canvas = h("canvas");
    this.el = h("div", { class: "chart-body" }, this.canvas);
    this.ctx = this.canvas.getContext("2d");
    // [{id, color, steps, values, times, version, t0}], and optionally `xs` (x values of its own:
    // a metric axis, a group) and `band` ({lo, hi}, as long as values)
    this.series = [];
    this.view = { xaxis: "step", logy: false, outliers: false, smoothing: 0, zoom: null };
    this.hoverX = null;
    this.pointer = false; // the pointer is on this chart (not only its crosshair, shared)
    this.pinX = null;
    this.highlight = null; // a run id drawn over the others, dimmed
    this.readingOut = false; // the last readout given had something in it
    this.drag = null;
    this.xCache = new Map(); // series id -> {key, xs}: relative x values, made once per data version
    this.paths = new Map(); // series id -> {key, raw: Path2D, smooth: Path2D}
    this.smoothCache = new Map(); // series id (and band bound) -> {key, values}
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

  /** view: {xaxis, logy, outliers, smoothing, zoom}; without `zoom`, the chart keeps its own (one
   *  not shared), dropped with a change of x axis as the pin is (they were in other units). */
  setView(view) {
    if (view.xaxis && view.xaxis !== this.view.xaxis) { this.pinX = null; this.view.zoom = null; }
    Object.assign(this.view, view);
    this.invalidate();
  }

  /** Pin the data table at x (x units; null unpins). */
  setPin(x) {
    this.pinX = x;
    this.invalidate();
  }

  /** Draw run `id` over the others, which are dimmed (null: none). */
  setHighlight(id) {
    if (id === this.highlight) return;
    this.highlight = id;
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
      this.pointer = true;
      this.hoverX = this.sx ? this.sx.value(p.x) : null;
      if (this.opts.onHover) this.opts.onHover(this.hoverX, this);
      this.invalidate();
    });
    c.addEventListener("mouseleave", () => {
      this.hoverX = null;
      this.pointer = false;
      if (this.opts.onHover) this.opts.onHover(null, this);
      this.invalidate();
    });
    window.addEventListener("mouseup", () => {
      if (!this.drag) return;
      const { x0, x1 } = this.drag;
      this.drag = null;
      if (!this.sx) return;
      if (Math.abs(x1 - x0) > CLICK_SLOP) {
        const a = this.sx.value(Math.min(x0, x1)), b = this.sx.value(Math.max(x0, x1));
        this.setView({ zoom: [a, b] });
        if (this.opts.onZoom) this.opts.onZoom([a, b], this);
      } else {
        // a click pins the nearest real point's position; a click on the pin takes it away
        const x = this._nearestX(this.sx.value(x1));
        const onPin = this.pinX != null && Math.abs(this.sx.px(this.pinX) - x1) <= CLICK_SLOP;
        this.pinX = onPin || x == null ? null : x;
      }
      this.invalidate();
    });
    c.addEventListener("dblclick", () => {
      this.pinX = null;
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

  /** The series' values smoothed (`part`: "lo" or "hi" of its band instead), once per version. */
  _smoothed(s, part = null) {
    const id = part ? `${s.id}\u0000${part}` : s.id;
    const key = `${s.version}|${this.view.smoothing}`;
    const hit = this.smoothCache.get(id);
    if (hit && hit.key === key) return hit.values;
    const src = part ? s.band[part] : s.values;
    // written over the last version's array when it has room (room to grow made once in a while)
    const room = hit && hit.room.length >= src.length ? hit.room : new Float64Array(Math.ceil(src.length * 1.25) + 16);
    const values = emaDebiased(src, this.view.smoothing, room);
    this.smoothCache.set(id, { key, values, room });
    return values;
  }

  /** A series' band as drawn ({lo, hi}, smoothed with its line), or null. */
  _band(s) {
    const b = s.band;
    if (!b || !(this.view.smoothing > 0)) return b;
    return { lo: this._smoothed(s, "lo"), hi: this._smoothed(s, "hi") };
  }

  /** A series' x values for the current mode (relative ones made once per data version). */
  _xs(s) {
    const mode = this.view.xaxis;
    if (s.xs || mode !== "relative") return xValues(s, mode);
    const key = `${s.version}|${s.t0}`;
    const hit = this.xCache.get(s.id);
    if (hit && hit.key === key) return hit.xs;
    const xs = xValues(s, mode);
    this.xCache.set(s.id, { key, xs });
    return xs;
  }

  _scales() {
    const { w, h } = this.size;
    let xlo = Infinity, xhi = -Infinity;
    const ys = [];
    for (const s of this.series) {
      const xs = this._xs(s);
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
      const band = this._band(s);
      if (band) ys.push(band.lo.subarray(lo, hi), band.hi.subarray(lo, hi));
    }
    if (this.view.zoom) [xlo, xhi] = this.view.zoom;
    if (!(xhi >= xlo)) [xlo, xhi] = [0, 1];
    if (xhi === xlo) { xlo -= 0.5; xhi += 0.5; } // one x only: in the middle, not on the edge
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
    const mode = this.view.xaxis;
    drawAxes(ctx, { sx: this.sx, sy: this.sy, w, h, margin: MARGIN, mode, theme });
    const scaleKey = `${w}x${h}|${mode}|${this.sx.lo},${this.sx.hi}|${this.sy.lo},${this.sy.hi}|${this.view.logy}|${this.view.smoothing}`;
    ctx.save();
    ctx.beginPath();
    ctx.rect(MARGIN.left, MARGIN.top, w - MARGIN.left - MARGIN.right, h - MARGIN.top - MARGIN.bottom);
    ctx.clip();
    ctx.lineJoin = "miter";
    // One pixel wide: software rasterizers draw that as a hairline, several times faster
    // than a 1.5 px stroke (about 1 ms against 5 ms for 8 x 2,000 points here).
    ctx.lineWidth = 1;
    // the highlighted run drawn last, over the others (dimmed only while it is drawn: a run that
    // left the chart under the pointer leaves nothing dimmed)
    const top = this.series.find((s) => s.id === this.highlight) || null;
    for (const s of this.series) if (s !== top) this._drawSeries(ctx, s, scaleKey, top ? DIMMED : 1);
    if (top) this._drawSeries(ctx, top, scaleKey, 1);
    ctx.globalAlpha = 1;
    ctx.restore();
    if (this.drag) {
      ctx.fillStyle = theme.sel;
      const a = Math.min(this.drag.x0, this.drag.x1), b = Math.max(this.drag.x0, this.drag.x1);
      ctx.fillRect(a, MARGIN.top, b - a, h - MARGIN.top - MARGIN.bottom);
    }
    this._readout(ctx, theme);
  }

  _path(xs, ys, lo, hi) {
    if (!this.scratch || this.scratch.length < hi - lo) this.scratch = new Uint32Array(Math.max(1024, (hi - lo) * 1.5) | 0);
    return seriesPath(xs, ys, lo, hi, this.sx, this.sy, this.scratch);
  }

  /** One series: its band, its raw line (faint under a smoothed one), the smoothed line, their dots. */
  _drawSeries(ctx, s, scaleKey, alpha) {
    const xs = this._xs(s);
    if (!xs.length) return;
    const key = `${s.version}|${scaleKey}`;
    let cached = this.paths.get(s.id);
    if (!cached || cached.key !== key) {
      const lo = Math.max(0, lowerBound(xs, this.sx.lo) - 1);
      const hi = Math.min(xs.length, lowerBound(xs, this.sx.hi) + 1);
      cached = { key, raw: this._path(xs, s.values, lo, hi), smooth: null, band: null };
      if (this.view.smoothing > 0) cached.smooth = this._path(xs, this._smoothed(s), lo, hi);
      const band = this._band(s);
      if (band) cached.band = bandPath(xs, band.lo, band.hi, lo, hi, this.sx, this.sy);
      this.paths.set(s.id, cached);
    }
    ctx.strokeStyle = s.color;
    ctx.fillStyle = s.color;
    if (cached.band) {
      ctx.globalAlpha = BAND * alpha;
      ctx.fill(cached.band);
    }
    const paint = (p, a) => {
      ctx.globalAlpha = a;
      ctx.stroke(p.line);
      if (p.dots) ctx.fill(p.dots);
    };
    if (cached.smooth) {
      paint(cached.raw, FAINT * alpha);
      paint(cached.smooth, alpha);
    } else {
      paint(cached.raw, alpha);
    }
  }

  /** x of the real point nearest to x over every series (null when there is none). */
  _nearestX(x) {
    let best = null;
    for (const s of this.series) {
      const xs = this._xs(s);
      const i = nearestIndex(xs, x);
      if (i >= 0 && (best == null || Math.abs(xs[i] - x) < Math.abs(best - x))) best = xs[i];
    }
    return best;
  }

  /** Per series, its point nearest to x (binary search), with its smoothed value. */
  _rowsAt(x) {
    const rows = [];
    for (const s of this.series) {
      const i = nearestIndex(this._xs(s), x);
      if (i >= 0) rows.push({ s, i, smoothed: this.view.smoothing > 0 ? this._smoothed(s)[i] : s.values[i] });
    }
    return rows;
  }

  /** A vertical rule at x (dashed: the pointer's; solid: the pin) and a dot on each series there. */
  _mark(ctx, theme, x, rows, dashed) {
    const px = Math.round(this.sx.px(x)) + 0.5;
    ctx.strokeStyle = theme.axis;
    ctx.lineWidth = 1;
    ctx.setLineDash(dashed ? [3, 3] : []);
    ctx.beginPath();
    ctx.moveTo(px, MARGIN.top);
    ctx.lineTo(px, this.size.h - MARGIN.bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    for (const { s, i, smoothed } of rows) {
      const y = this.sy.px(smoothed);
      if (!Number.isFinite(y)) continue;
      ctx.fillStyle = s.color;
      ctx.beginPath();
      ctx.arc(this.sx.px(this._xs(s)[i]), y, 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  /** The crosshair and the pin, and what they read given to opts.onReadout. */
  _readout(ctx, theme) {
    const inside = (x) => x != null && this.series.length > 0 && x >= this.sx.lo && x <= this.sx.hi;
    let hover = null, pin = null;
    if (inside(this.hoverX)) {
      const rows = this._rowsAt(this.hoverX);
      this._mark(ctx, theme, this.hoverX, rows, true);
      if (this.pointer) hover = { x: this._nearestX(this.hoverX), rows };
    }
    if (this.pinX != null && this.series.length) {
      const rows = this._rowsAt(this.pinX);
      if (inside(this.pinX)) this._mark(ctx, theme, this.pinX, rows, false);
      pin = { x: this.pinX, rows };
    }
    const any = hover != null || pin != null;
    // nothing to say twice: a chart with neither costs no call per draw
    if ((any || this.readingOut) && this.opts.onReadout) this.opts.onReadout(this, { hover, pin });
    this.readingOut = any;
  }
}
