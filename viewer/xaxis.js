// What a chart's x axis is: the step, the time since the run started ("relative"), the wall time,
// or any metric of the run ("m:epoch", "m:tokens_seen").
//
// A metric as x pairs each point of the charted series with the x metric's value at the same step.
// Where the x metric has no point at that step, its value there is read on the straight line
// between its points at the steps just before and after (an x metric logged every 10 steps still
// places every step between); a point before the x metric's first step or after its last has no x
// and is left out, as is one where the x value is not finite (so a run that has not logged its x
// metric yet shows nothing on that chart, and a point appears once the x metric has caught up).
// The points are drawn in the order of their x: when the x metric does not only grow (x = the
// loss), they are sorted by it, so the line is a function of x, not a path through time.

/** The x axis modes besides a metric. */
export const TIME_AXES = Object.freeze(["step", "relative", "wall"]);

/** The metric of an axis ("m:epoch" -> "epoch"), null for step and time axes. */
export const axisMetric = (axis) => (typeof axis === "string" && axis.startsWith("m:") && axis.length > 2 ? axis.slice(2) : null);

/** True when `axis` is one the page knows: a time axis or a metric. */
export const validAxis = (axis) => TIME_AXES.includes(axis) || axisMetric(axis) != null;

/** x values of a run series on a step or time axis: "step", "relative" (seconds since the run's
 *  start, t0, else its first point) or "wall". A series that carries its own (`xs`) keeps them. */
export function xValues(series, mode) {
  if (series.xs) return series.xs;
  if (mode === "step") return series.steps;
  const t = series.times;
  if (mode === "wall") return t;
  const out = new Float64Array(t.length);
  const t0 = series.t0 ?? (t.length ? t[0] : 0);
  for (let i = 0; i < t.length; i++) out[i] = t[i] - t0;
  return out;
}

/**
 * The points of series `y` ({steps, values, times}, by step) that have an x in series `x` (the x
 * metric's {steps, values}): {steps, values, times, xs}, in x order (see the module's comment).
 */
export function pairByStep(y, x) {
  const n = y.steps.length, xs = new Float64Array(n), keep = new Uint32Array(n);
  let m = 0, j = 0;
  const xsteps = x.steps, xvals = x.values, xn = xsteps.length;
  for (let i = 0; i < n; i++) {
    const s = y.steps[i];
    while (j < xn && xsteps[j] < s) j++;
    if (j >= xn) break; // past the x metric's last step: nothing further has an x
    let v;
    if (xsteps[j] === s) v = xvals[j];
    else if (j === 0) continue; // before its first step
    else v = xvals[j - 1] + (xvals[j] - xvals[j - 1]) * (s - xsteps[j - 1]) / (xsteps[j] - xsteps[j - 1]);
    if (!(v === v && v !== Infinity && v !== -Infinity)) continue;
    xs[m] = v;
    keep[m++] = i;
  }
  let order = null;
  for (let k = 1; k < m; k++) if (xs[k] < xs[k - 1]) { order = true; break; }
  const idx = keep.subarray(0, m);
  if (order) {
    const by = Array.from(idx.keys()).sort((a, b) => xs[a] - xs[b] || a - b);
    const sortedXs = Float64Array.from(by, (k) => xs[k]);
    const sortedIdx = Uint32Array.from(by, (k) => idx[k]);
    return pick(y, sortedIdx, sortedXs);
  }
  return pick(y, idx, xs.subarray(0, m));
}

function pick(y, idx, xs) {
  const take = (a) => (a && a.length === y.steps.length ? Float64Array.from(idx, (i) => a[i]) : new Float64Array(idx.length).fill(NaN));
  return { steps: take(y.steps), values: take(y.values), times: take(y.times), xs };
}

/** The x axes a select offers: [value, text] for step and the times, then each metric's. */
export function axisChoices(metrics) {
  return [["step", "step"], ["relative", "relative time"], ["wall", "wall time"], ...metrics.map((m) => [`m:${m}`, m])];
}
