// Groups of runs drawn as one line with a band: the seeds of one configuration, the runs of one
// folder. A rule puts each run in a group: a level of its path, a regular expression (its first
// capture group, else the whole match) or a config key's value; a run the rule says nothing about
// (no such level, no match, no such key) is drawn alone, as itself.
//
// A group is drawn as its members' mean (or median) at each x, with a band: min to max, or the
// line ± the members' standard deviation (n − 1). Members are aligned by interpolation, not by
// buckets: the group has a point at every x where some member has one (the union of their x
// values: steps on a step axis, seconds on a time axis, the x metric's values on a metric axis),
// and a member without a point there counts with the value on the straight line between its two
// neighbouring points. A member counts only inside its own x range (never extrapolated), and not
// where it has no finite value; the readout says how many members a point holds (n). Runs that log
// every 10 steps beside runs that log every 7 combine into a mean at every step either logs, and a
// run that stopped early leaves the group's tail to the others.
//
// Pure functions, and a small cache of results (aggregates are made when a chart draws, once per
// version of its members' data).

/** How runs are grouped: by a path level, a regex, a config key. */
export const GROUP_KINDS = Object.freeze(["path", "re", "cfg"]);
export const AGGREGATES = Object.freeze(["mean", "median"]);
export const BANDS = Object.freeze(["minmax", "std", "none"]);

/**
 * A group rule from its text ("path:-1", "path:2", "re:lr_([\d.]+)", "cfg:optimizer.lr") or null
 * (no grouping, or text that is not a rule). path:N with N > 0: the first N parts of the run's
 * path ("sweep/lr_0.1/seed0" at 2: "sweep/lr_0.1"); N < 0: all but the last -N parts (-1: the
 * run's folder). A regex that does not compile is {kind: "re", error}.
 */
export function parseGroupSpec(text) {
  const m = /^(path|re|cfg):([\s\S]+)$/.exec(text || "");
  if (!m) return null;
  const [, kind, arg] = m;
  if (kind === "path") {
    const n = Number(arg);
    return Number.isInteger(n) && n !== 0 ? { kind, arg, level: n } : null;
  }
  if (kind === "re") {
    try {
      return { kind, arg, re: new RegExp(arg) };
    } catch (e) {
      return { kind, arg, error: String(e.message || e) };
    }
  }
  return { kind, arg };
}

/** A config value as a group key writes it (not cut: two long values must not fall together). */
const valueText = (v) => (typeof v === "string" ? v : JSON.stringify(v));

/** The group of run `id` under `spec` (parsed), or null: drawn alone. config: its flat config. */
export function groupKey(id, spec, config) {
  if (!spec || spec.error) return null;
  if (spec.kind === "path") {
    const parts = id.split("/");
    const n = spec.level > 0 ? spec.level : parts.length + spec.level;
    return n >= 1 && n <= parts.length ? parts.slice(0, n).join("/") : null;
  }
  if (spec.kind === "re") {
    const m = spec.re.exec(id);
    return (m && (m.length > 1 ? m[1] : m[0])) || null; // an empty match names no group
  }
  if (!config || !Object.hasOwn(config, spec.arg)) return null;
  return `${spec.arg}=${valueText(config[spec.arg])}`;
}

const byKey = (a, b) => a.localeCompare(b, "en", { numeric: true }) || (a < b ? -1 : a > b ? 1 : 0);

/**
 * Runs `ids` in groups: {groups: Map key -> member ids (keys in natural order, "lr=2" before
 * "lr=10"), alone: ids in no group}. configs: id -> flat config.
 */
export function groupRuns(ids, spec, configs = new Map()) {
  const groups = new Map(), alone = [];
  for (const id of [...ids].sort()) {
    const key = groupKey(id, spec, configs.get(id));
    if (key == null) { alone.push(id); continue; }
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(id);
  }
  return { groups: new Map([...groups].sort(([a], [b]) => byKey(a, b))), alone };
}

const finite = (v) => v === v && v !== Infinity && v !== -Infinity;

/** The finite x values of a sorted array, sorted and without repeats. */
function distinct(xs) {
  const out = new Float64Array(xs.length);
  let n = 0;
  for (let i = 0; i < xs.length; i++) {
    const x = xs[i];
    if (finite(x) && (n === 0 || x !== out[n - 1])) out[n++] = x;
  }
  return out.subarray(0, n);
}

function merge(a, b) {
  const out = new Float64Array(a.length + b.length);
  let i = 0, j = 0, n = 0;
  while (i < a.length || j < b.length) {
    const x = j >= b.length || (i < a.length && a[i] <= b[j]) ? a[i++] : b[j++];
    if (n === 0 || x !== out[n - 1]) out[n++] = x;
  }
  return out.subarray(0, n);
}

const same = (a, b) => {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** The sorted union of sorted arrays, each value once (members logging at the same steps: one pass). */
export function unionXs(arrays) {
  if (!arrays.length) return new Float64Array(0);
  if (arrays.every((a) => same(a, arrays[0]))) return distinct(arrays[0]);
  let parts = arrays.map(distinct);
  while (parts.length > 1) { // pairwise: log(k) passes over the points, not k
    const next = [];
    for (let i = 0; i < parts.length; i += 2) next.push(i + 1 < parts.length ? merge(parts[i], parts[i + 1]) : parts[i]);
    parts = next;
  }
  return parts[0];
}

function sortSmall(a, n) {
  if (n > 32) { a.subarray(0, n).sort(); return; }
  for (let i = 1; i < n; i++) {
    const v = a[i];
    let j = i - 1;
    while (j >= 0 && a[j] > v) { a[j + 1] = a[j]; j--; }
    a[j + 1] = v;
  }
}

/** Where the points of a member made `prev` end, if the member only grew since (its points then
 *  are the same): the x of its last point then; else undefined. */
function grownFrom(prev, k, m) {
  const n = prev.lens[k];
  if (n === 0) return -Infinity;
  return m.xs.length >= n && m.xs[0] === prev.firsts[k] && m.xs[n - 1] === prev.lasts[k] && Object.is(m.values[n - 1], prev.ends[k])
    ? prev.lasts[k] : undefined;
}

/** Arrays for n points of a group: its x, line, count, and band when it has one. */
function columns(n, band) {
  const out = { xs: new Float64Array(n), values: new Float64Array(n), count: new Uint32Array(n) };
  if (band) { out.lo = new Float64Array(n); out.hi = new Float64Array(n); }
  return out;
}

/** The x from which `prev` must be made again for `ms` (Infinity: not at all), or null: from scratch. */
function resumeAt(prev, ms, agg, band) {
  if (!prev || prev.agg !== agg || prev.band !== band || prev.ids.length !== ms.length) return null;
  let cut = Infinity;
  for (let k = 0; k < ms.length; k++) {
    if (prev.ids[k] !== ms[k].id) return null;
    const last = grownFrom(prev, k, ms[k]);
    if (last === undefined) return null;
    if (last < cut) cut = last;
  }
  return cut === -Infinity ? null : cut;
}

/** The first index of sorted xs whose value is above x. */
function above(xs, x) {
  let lo = 0, hi = xs.length;
  while (lo < hi) { const mid = (lo + hi) >>> 1; if (xs[mid] <= x) lo = mid + 1; else hi = mid; }
  return lo;
}

/**
 * The group line of `members` ([{id, xs, values}], each sorted by x) at every x of theirs:
 * {xs, values, lo, hi, count} (lo and hi null with band "none"; count: the members at that x).
 * agg: "mean" or "median"; band: "minmax" or "std" (the line ± the standard deviation). `prev`:
 * the result for the same members before they grew, if there is one: a live group costs what its
 * new points cost. Points at or before the earliest x where a member's data ended then are what
 * they were (a member's value there only depends on its points up to there); only those after are
 * made again.
 */
export function aggregate(members, { agg = "mean", band = "minmax" } = {}, prev = null) {
  const ms = members;
  const cut = resumeAt(prev, ms, agg, band);
  const keep = cut == null ? 0 : above(prev.xs, cut);
  const tail = unionXs(ms.map((m) => (cut == null ? m.xs : m.xs.subarray(above(m.xs, cut)))));
  const n = keep + tail.length, k = ms.length;
  // the arrays of the result it resumes, written on from `keep` (that result is replaced by this
  // one), or new ones with room to grow
  const bufs = cut != null && prev.bufs.xs.length >= n ? prev.bufs : columns(n * (cut == null ? 1 : 2), band !== "none");
  if (keep && bufs !== prev.bufs) for (const key of Object.keys(bufs)) bufs[key].set(prev.bufs[key].subarray(0, keep));
  const view = (a) => (a ? a.subarray(0, n) : null);
  const xs = view(bufs.xs), values = view(bufs.values), count = view(bufs.count), lo = view(bufs.lo), hi = view(bufs.hi);
  xs.set(tail, keep);
  // per member: its first point at or after the current x (from where the kept part ends)
  const at = Uint32Array.from(ms, (m) => (keep ? Math.max(0, above(m.xs, xs[keep - 1]) - 1) : 0));
  const buf = new Float64Array(k);
  for (let u = keep; u < n; u++) {
    const x = xs[u];
    let c = 0;
    for (let m = 0; m < k; m++) {
      const mx = ms[m].xs, my = ms[m].values;
      let j = at[m];
      while (j < mx.length && !(mx[j] >= x)) j++; // past a point without an x (NaN) too
      at[m] = j;
      if (j >= mx.length || (j === 0 && mx[0] !== x)) continue; // outside its range
      const v = mx[j] === x ? my[j] : my[j - 1] + (my[j] - my[j - 1]) * (x - mx[j - 1]) / (mx[j] - mx[j - 1]);
      if (finite(v)) buf[c++] = v;
    }
    count[u] = c;
    if (c === 0) {
      values[u] = NaN;
      if (lo) { lo[u] = NaN; hi[u] = NaN; }
      continue;
    }
    let sum = 0, min = Infinity, max = -Infinity;
    for (let i = 0; i < c; i++) { const v = buf[i]; sum += v; if (v < min) min = v; if (v > max) max = v; }
    const mean = sum / c;
    let line = mean;
    if (agg === "median") {
      sortSmall(buf, c);
      line = c % 2 ? buf[(c - 1) >> 1] : (buf[c / 2 - 1] + buf[c / 2]) / 2;
    }
    values[u] = line;
    if (band === "minmax") { lo[u] = min; hi[u] = max; } else if (band === "std") {
      let ss = 0;
      for (let i = 0; i < c; i++) ss += (buf[i] - mean) * (buf[i] - mean);
      const sd = c > 1 ? Math.sqrt(ss / (c - 1)) : 0;
      lo[u] = line - sd; hi[u] = line + sd;
    }
  }
  const ends = (f) => ms.map((m) => (m.xs.length ? f(m) : NaN));
  return { xs, values, lo, hi, count, bufs, agg, band, ids: ms.map((m) => m.id), lens: ms.map((m) => m.xs.length),
    firsts: ends((m) => m.xs[0]), lasts: ends((m) => m.xs[m.xs.length - 1]), ends: ends((m) => m.values[m.values.length - 1]),
    resumed: cut != null };
}

/** Aggregates kept between draws, by the version of what they were made of; the least recently
 *  used go first past `max`. */
export class AggregateCache {
  constructor(max = 256) {
    this.max = max;
    this.entries = new Map(); // key -> {version, result}
    this.made = 0; // aggregates computed (for tests and benchmarks)
  }

  /** The result for `key` at `version`: the one kept, or make(previous result or null). */
  get(key, version, make) {
    const hit = this.entries.get(key);
    if (hit) this.entries.delete(key);
    const entry = hit && hit.version === version ? hit : { version, result: (this.made++, make(hit ? hit.result : null)) };
    this.entries.set(key, entry);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value);
    return entry.result;
  }
}

/**
 * A group as a chart series, aggregated when first read (a chart out of view never reads it).
 * members: its runs' series; xsOf(series): a member's x values in the chart's units; key: the
 * cache key (metric and group); version: changes with any member's data, the axis or the options.
 */
export class GroupSeries {
  constructor({ id, group, label, color, members, xsOf, version, key, cache, opts, stepAxis }) {
    Object.assign(this, { id, group, label, color, size: members.length, version, bandKind: opts.band, stepAxis });
    const make = (prev) => aggregate(members.map((m) => ({ id: m.id, xs: xsOf(m), values: m.values })), opts, prev);
    this._get = () => (this._r ||= cache.get(key, version, make));
  }
  get xs() { return this._get().xs; }
  get values() { return this._get().values; }
  get count() { return this._get().count; }
  get band() { const r = this._get(); return r.lo ? { lo: r.lo, hi: r.hi } : null; }
  /** On a step axis the group's x are steps; elsewhere it has no step of its own, nor times. */
  get steps() { return this.stepAxis ? this.xs : null; }
  get times() { return null; }
}
