// Debiased exponential moving average, as TensorBoard smooths scalars.

/**
 * weight in [0, 1): 0 leaves the data unchanged. Non-finite values are passed through and do not
 * poison the average (a NaN stays visible as a gap, the next finite point continues the average).
 * `into`: an array to write into when it is long enough (a live chart smooths on every change; no
 * new array each time); the result is then a view of it.
 */
export function emaDebiased(values, weight, into = null) {
  const n = values.length;
  const out = into && into.length >= n ? into.subarray(0, n) : new Float64Array(n);
  if (!(weight > 0)) {
    out.set(values);
    return out;
  }
  let last = 0;
  let wk = 1; // weight ** (finite points so far), kept as a running product
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (!(v === v && v !== Infinity && v !== -Infinity)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    wk *= weight;
    out[i] = last / (1 - wk);
  }
  return out;
}
