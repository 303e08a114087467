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
    if (!m) return null;
    return m.length > 1 ? (m[1] ?? null) : m[0];
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

/** A member's points with a finite x (the only ones that can be placed). */
function placeable(m) {
  let ok = true;
  for (let i = 0; i < m.xs.length && ok; i++) ok = finite(m.xs[i]);
  if (ok) return m;
  const keep = [];
  for (let i = 0; i < m.xs.length; i++) if (finite(m.xs[i])) keep.push(i);
  return { xs: Float64Array.from(keep, (i) => m.xs[i]), values: Float64Array.from(keep, (i) => m.values[i]) };
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

/**
 * The group line of `members` ([{xs, values}], each sorted by x) at every x of theirs:
 * {xs, values, lo, hi, count} (lo and hi null with band "none"; count: the members at that x).
 * agg: "mean" or "median"; band: "minmax" or "std" (the line ± the standard deviation).
 */
export function aggregate(members, { agg = "mean", band = "minmax" } = {}) {
  const ms = members.map(placeable);
  const xs = unionXs(ms.map((m) => m.xs));
  const n = xs.length, k = ms.length;
  const values = new Float64Array(n), count = new Uint32Array(n);
  const lo = band === "none" ? null : new Float64Array(n), hi = lo && new Float64Array(n);
  const at = new Uint32Array(k); // per member: its first point at or after the current x
  const buf = new Float64Array(k);
  for (let u = 0; u < n; u++) {
    const x = xs[u];
    let c = 0;
    for (let m = 0; m < k; m++) {
      const mx = ms[m].xs, my = ms[m].values;
      let j = at[m];
      while (j < mx.length && mx[j] < x) j++;
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
  return { xs, values, lo, hi, count };
}

/** Aggregates kept between draws, by the version of what they were made of; the least recently
 *  used go first past `max`. */
export class AggregateCache {
  constructor(max = 256) {
    this.max = max;
    this.entries = new Map(); // key -> {version, result}
    this.made = 0; // aggregates computed (for tests and benchmarks)
  }

  get(key, version, make) {
    const hit = this.entries.get(key);
    if (hit) this.entries.delete(key);
    const entry = hit && hit.version === version ? hit : { version, result: (this.made++, make()) };
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
    const make = () => aggregate(members.map((m) => ({ xs: xsOf(m), values: m.values })), opts);
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
