// Per-pixel-column M4 decimation: first, min, max and last point of every column. Drawn as a line,
// the result is the same picture as all the points (Jugel et al., PVLDB 2014).

/** Index of the first element of sorted `xs` that is >= x (binary search). */
export function lowerBound(xs, x, lo = 0, hi = xs.length) {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the element of sorted `xs` nearest to x (-1 when empty). */
export function nearestIndex(xs, x) {
  const n = xs.length;
  if (n === 0) return -1;
  const i = lowerBound(xs, x);
  if (i === 0) return 0;
  if (i >= n) return n - 1;
  return x - xs[i - 1] <= xs[i] - x ? i - 1 : i;
}

/**
 * Indices to draw of points [lo, hi) of (xs, ys) mapped onto `width` pixel columns between x0 and x1.
 * Below 4 points per column nothing is dropped. Non-finite ys are kept (they break the line).
 */
export function m4Indices(xs, ys, lo, hi, x0, x1, width) {
  const count = hi - lo;
  const cols = Math.max(1, Math.floor(width));
  if (count <= cols * 4 || x1 <= x0) {
    const all = new Uint32Array(Math.max(0, count));
    for (let i = 0; i < count; i++) all[i] = lo + i;
    return all;
  }
  const out = [];
  const scale = cols / (x1 - x0);
  let col = -1, first = -1, last = -1, imin = -1, imax = -1;
  const flush = () => {
    if (first < 0) return;
    const ids = [first, imin, imax, last].filter((v) => v >= 0).sort((a, b) => a - b);
    let prev = -1;
    for (const id of ids) if (id !== prev) { out.push(id); prev = id; }
  };
  for (let i = lo; i < hi; i++) {
    const c = Math.min(cols - 1, Math.max(0, Math.floor((xs[i] - x0) * scale)));
    const y = ys[i];
    if (c !== col) {
      flush();
      col = c; first = i; last = i; imin = -1; imax = -1;
    }
    last = i;
    if (!Number.isFinite(y)) {
      out.push(i); // keep gaps visible: a NaN point always survives
      continue;
    }
    if (imin < 0 || y < ys[imin]) imin = i;
    if (imax < 0 || y > ys[imax]) imax = i;
  }
  flush();
  out.sort((a, b) => a - b);
  const dedup = [];
  for (const v of out) if (dedup.length === 0 || dedup[dedup.length - 1] !== v) dedup.push(v);
  return Uint32Array.from(dedup);
}
