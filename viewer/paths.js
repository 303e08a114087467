// A series as Canvas paths: its line, decimated per pixel column (M4) and broken at non-finite
// values, and a dot for each point with no drawable neighbour (a series of one point, a value
// between two gaps): a line through such a point would have no length, so nothing would show. And
// a band (a group's spread) as one filled shape.

import { m4Indices } from "./decimate.js";

let scratch = new Float64Array(3072); // bandPath's columns, reused between calls

/** Radius of a dot, in CSS pixels. */
export const DOT_RADIUS = 3;

/**
 * {line: Path2D, dots: Path2D | null} of points [lo, hi) of (xs, ys) on scales sx, sy (scale.js).
 * `scratch`: a Uint32Array of at least hi - lo entries, reused between calls (no garbage per draw).
 */
export function seriesPath(xs, ys, lo, hi, sx, sy, scratch) {
  const idx = m4Indices(xs, ys, lo, hi, sx.lo, sx.hi, sx.p1 - sx.p0, scratch);
  // the scales' maps inlined: this loop runs for every point of every series on each redraw
  const xa = sx.a, xk = sx.k, xp = sx.p0, ya = sy.a, yk = sy.k, yp = sy.p0, log = sy.log;
  const line = new Path2D();
  let dots = null;
  const dot = (x, y) => {
    dots ||= new Path2D();
    dots.moveTo(x + DOT_RADIUS, y);
    dots.arc(x, y, DOT_RADIUS, 0, 2 * Math.PI);
  };
  let run = 0, lx = 0, ly = 0; // points in the current stretch of line, and its last one
  for (let k = 0; k < idx.length; k++) {
    const i = idx[k];
    const v = ys[i];
    const t = log ? (v > 0 ? Math.log10(v) : NaN) : v;
    const y = yp + (t - ya) * yk;
    if (!(y === y && y !== Infinity && y !== -Infinity)) {
      if (run === 1) dot(lx, ly);
      run = 0;
      continue;
    }
    const x = xp + (xs[i] - xa) * xk;
    if (run) line.lineTo(x, y); else line.moveTo(x, y);
    run++; lx = x; ly = y;
  }
  if (run === 1) dot(lx, ly);
  return { line, dots };
}

/**
 * A band between `los` and `his` over points [lo, hi) of xs, as one Path2D to fill: per pixel
 * column the lowest low and the highest high (about two vertices per column, however many points),
 * broken where a bound is not drawable. A stretch of one column is a bar three pixels wide.
 */
export function bandPath(xs, los, his, lo, hi, sx, sy) {
  const path = new Path2D();
  if (scratch.length < (hi - lo) * 3) scratch = new Float64Array(Math.max(3072, (hi - lo) * 3));
  // the current stretch, one entry per pixel column: its x, top and bottom (screen y grows downwards)
  const col = scratch;
  let n = 0, last = NaN;
  const close = () => {
    if (n === 1) path.rect(col[0] - 1.5, col[1], 3, col[2] - col[1]);
    else if (n > 1) {
      path.moveTo(col[0], col[1]);
      for (let k = 1; k < n; k++) path.lineTo(col[3 * k], col[3 * k + 1]);
      for (let k = n - 1; k >= 0; k--) path.lineTo(col[3 * k], col[3 * k + 2]);
      path.closePath();
    }
    n = 0;
  };
  for (let i = lo; i < hi; i++) {
    const x = sx.px(xs[i]), a = sy.px(los[i]), b = sy.px(his[i]);
    if (!Number.isFinite(x) || !Number.isFinite(a) || !Number.isFinite(b)) { close(); last = NaN; continue; }
    const c = Math.floor(x), top = Math.min(a, b), bottom = Math.max(a, b);
    if (c === last) {
      const k = 3 * (n - 1);
      if (top < col[k + 1]) col[k + 1] = top;
      if (bottom > col[k + 2]) col[k + 2] = bottom;
    } else {
      col[3 * n] = x; col[3 * n + 1] = top; col[3 * n + 2] = bottom;
      n++;
      last = c;
    }
  }
  close();
  return path;
}
