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
 * Runs on every redraw of a live chart, so it allocates at most one output array (none with a
 * large enough `scratch`) and nothing per column.
 */
export function m4Indices(xs, ys, lo, hi, x0, x1, width, scratch = null) {
  const count = Math.max(0, hi - lo);
  const cols = Math.max(1, Math.floor(width));
  // `scratch`, when large enough, is written instead of a new array (no garbage per redraw)
  const out = scratch && scratch.length >= count ? scratch : new Uint32Array(count);
  if (count <= cols * 4 || x1 <= x0) {
    for (let i = 0; i < count; i++) out[i] = lo + i;
    return out.subarray(0, count);
  }
  let n = 0;
  const scale = cols / (x1 - x0);
  let i = lo;
  while (i < hi) {
    let c = Math.floor((xs[i] - x0) * scale);
    c = c < 0 ? 0 : c >= cols ? cols - 1 : c;
    const first = i;
    let imin = -1, imax = -1, nan = false;
    let j = i;
    for (; j < hi; j++) {
      let cj = Math.floor((xs[j] - x0) * scale);
      cj = cj < 0 ? 0 : cj >= cols ? cols - 1 : cj;
      if (cj !== c) break;
      const y = ys[j];
      if (y === y && y !== Infinity && y !== -Infinity) {
        if (imin < 0 || y < ys[imin]) imin = j;
        if (imax < 0 || y > ys[imax]) imax = j;
      } else {
        nan = true;
      }
    }
    const last = j - 1;
    if (nan) {
      // rare: keep every non-finite point of the column with the four, in order
      for (let k = first; k <= last; k++) {
        const y = ys[k];
        if (k === first || k === last || k === imin || k === imax || !(y === y && y !== Infinity && y !== -Infinity)) out[n++] = k;
      }
    } else {
      // first <= min, max <= last: emit the (at most) four in index order, without duplicates
      out[n++] = first;
      let a = imin, b = imax;
      if (a > b) { const t = a; a = b; b = t; }
      if (a > first && a < last) out[n++] = a;
      if (b > first && b < last && b !== a) out[n++] = b;
      if (last !== first) out[n++] = last;
    }
    i = j;
  }
  return out.subarray(0, n);
}
