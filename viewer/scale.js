// Scales and ticks: linear and log y, step / relative-time / wall-time x.

/** A "nice" step (1, 2 or 5 times a power of ten) giving about `count` ticks over `span`. */
export function niceStep(span, count) {
  if (!(span > 0) || !(count > 0)) return 1;
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const r = raw / mag;
  const m = r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10;
  return m * mag;
}

/** Tick values inside [lo, hi], on multiples of a nice step. */
export function linearTicks(lo, hi, count = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const step = niceStep(hi - lo, count);
  const start = Math.ceil(lo / step - 1e-9) * step;
  const out = [];
  for (let v = start; v <= hi + step * 1e-9 && out.length < 1000; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
  }
  return out;
}

/** Powers of ten inside [lo, hi] (both > 0); with few decades, 2x and 5x too. */
export function logTicks(lo, hi) {
  if (!(lo > 0) || !(hi > 0)) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  const a = Math.floor(Math.log10(lo)), b = Math.ceil(Math.log10(hi));
  const mults = b - a <= 2 ? [1, 2, 5] : [1];
  const every = Math.max(1, Math.ceil((b - a) / 8));
  const out = [];
  for (let e = a; e <= b; e += every) {
    for (const m of mults) {
      const v = m * Math.pow(10, e);
      if (v >= lo * (1 - 1e-12) && v <= hi * (1 + 1e-12)) out.push(+v.toPrecision(12));
    }
  }
  return out;
}

export class Scale {
  /** Maps [lo, hi] onto pixels [p0, p1]; `log` maps log10 of the value (values <= 0 are not drawable). */
  constructor(lo, hi, p0, p1, log = false) {
    this.log = log;
    this.lo = lo; this.hi = hi; this.p0 = p0; this.p1 = p1;
    this.a = log ? Math.log10(lo) : lo;
    this.b = log ? Math.log10(hi) : hi;
    if (this.b === this.a) { this.a -= 0.5; this.b += 0.5; }
    this.k = (p1 - p0) / (this.b - this.a);
  }
  px(v) {
    const t = this.log ? (v > 0 ? Math.log10(v) : NaN) : v;
    return this.p0 + (t - this.a) * this.k;
  }
  value(px) {
    const t = this.a + (px - this.p0) / this.k;
    return this.log ? Math.pow(10, t) : t;
  }
  ticks(count = 5) {
    return this.log ? logTicks(this.lo, this.hi) : linearTicks(this.lo, this.hi, count);
  }
}

/** Extent of finite values (for log scale: of positive values); null when there are none. */
export function extent(values, { log = false } = {}) {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v) || (log && v <= 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : null;
}

/** A y range that ignores outliers: the [q, 1-q] quantiles of the finite values, padded. */
export function robustExtent(values, q = 0.01, { log = false } = {}) {
  const finite = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v) && (!log || v > 0)) finite.push(v);
  }
  if (finite.length === 0) return null;
  const sorted = Float64Array.from(finite).sort();
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(p * (sorted.length - 1))))];
  return [at(q), at(1 - q)];
}

/** Pads a range by a fraction of its span (multiplicatively on a log scale). */
export function pad(range, frac = 0.05, log = false) {
  let [lo, hi] = range;
  if (log) {
    const a = Math.log10(lo), b = Math.log10(hi), d = (b - a || 1) * frac;
    return [Math.pow(10, a - d), Math.pow(10, b + d)];
  }
  const d = (hi - lo || Math.abs(hi) || 1) * frac;
  return [lo - d, hi + d];
}

/** Short label for a number: 1.2k, 3.4M, 0.0012, 1e-7. */
export function formatNumber(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a === 0) return "0";
  if (a >= 1e15 || a < 1e-4) return v.toExponential(1).replace("e+", "e");
  if (a >= 1e9) return +(v / 1e9).toPrecision(3) + "G";
  if (a >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (a >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  return String(+v.toPrecision(4));
}

/** Label for a duration in seconds: 45s, 12m, 3.5h, 2d. */
export function formatDuration(s) {
  if (!Number.isFinite(s)) return "";
  const a = Math.abs(s);
  if (a < 60) return `${+s.toPrecision(3)}s`;
  if (a < 3600) return `${+(s / 60).toPrecision(3)}m`;
  if (a < 86400) return `${+(s / 3600).toPrecision(3)}h`;
  return `${+(s / 86400).toPrecision(3)}d`;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

/** Ticks for seconds on a clock: round seconds, minutes, hours or days. */
export function timeTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  let step = TIME_STEPS.find((s) => s >= raw);
  if (step === undefined) step = Math.ceil(raw / 86400) * 86400;
  if (raw < 1) return linearTicks(lo, hi, count);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi && out.length < 1000; v += step) out.push(v);
  return out;
}

/** Wall-clock label (local time) for unix seconds. */
export function formatClock(t, span = 3600) {
  const d = new Date(t * 1000);
  const hh = String(d.getHours()).padStart(2, "0"), mm = String(d.getMinutes()).padStart(2, "0");
  if (span < 120) return `${hh}:${mm}:${String(d.getSeconds()).padStart(2, "0")}`;
  if (span < 2 * 86400) return `${hh}:${mm}`;
  return `${d.getMonth() + 1}/${d.getDate()} ${hh}:${mm}`;
}

/** A value as a data table shows it: six significant digits, exponent only for tiny or huge. */
export function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e15 || a < 1e-4)) return v.toExponential(5).replace(/\.?0+e/, "e").replace("e+", "e");
  return String(+v.toPrecision(6));
}

const pad2 = (n) => String(n).padStart(2, "0");

/** A duration in seconds as a data table shows it: "340 ms", "4.25 s", "12.5 s", "3 min 05 s",
 *  "2 h 07 min", "3 d 04 h". */
export function formatElapsed(s) {
  if (!Number.isFinite(s)) return "";
  if (s < 0) return `−${formatElapsed(-s)}`;
  if (s < 0.9995) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad2(Math.floor(s % 60))} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad2(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${pad2(Math.floor((s % 86400) / 3600))} h`;
}

/** Unix seconds as a local date and time: "2025-11-24 13:05:09". */
export function formatWall(t) {
  if (!Number.isFinite(t)) return "";
  const d = new Date(t * 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
