// The runs table's model: which config columns differ between the runs (they come first; those
// every run shares are folded away), each metric's last and best value with the direction that
// makes a value better (min for loss-like names, max for accuracy-like ones, none for the rest:
// the "best" epoch or learning rate means nothing; settable per metric), sorting, and a row filter.
// Pure functions and a cache of per-series summaries; the DOM is hptable.js's, the plots hpplots.js's.

export const DIRECTIONS = Object.freeze(["min", "max", "none"]);

// Names whose smaller values are better, and those whose larger ones are (checked in this order):
// words found anywhere, and abbreviations only at the start of a part of the name ("val_mse", not
// "terror").
const START = "(?:^|[^a-z])";
const LOWER = new RegExp(`loss|perplexity|regret|latency|distortion|${START}(?:err(?:or)?s?|wer|cer|fid|nll|r?mse|mae|ppl)(?![a-z])`, "i");
const HIGHER = new RegExp(`acc(?:uracy)?|precision|recall|score|bleu|rouge|reward|return|ndcg|dice|${START}(?:auc|f1|iou|mrr|map|top-?\\d|r2|hits?)(?![a-z])`, "i");

/** The direction a metric's best value has by its name: "min", "max" or "none". */
export function defaultDirection(metric) {
  const name = metric.slice(metric.lastIndexOf("/") + 1) || metric;
  if (LOWER.test(name)) return "min";
  if (HIGHER.test(name)) return "max";
  return "none";
}

/** The direction of a metric: the one set in `chosen` (the view's ["min:loss", ...]), else its name's. */
export function directionOf(metric, chosen = []) {
  for (const d of chosen) {
    const i = d.indexOf(":");
    if (d.slice(i + 1) === metric) return d.slice(0, i);
  }
  return defaultDirection(metric);
}

/** `chosen` with metric's direction set to `dir` (left out when it is the name's own). */
export function setDirection(chosen, metric, dir) {
  const rest = chosen.filter((d) => d.slice(d.indexOf(":") + 1) !== metric);
  return dir === defaultDirection(metric) ? rest : [...rest, `${dir}:${metric}`];
}

/** The next direction in the cycle a header's button steps through. */
export const nextDirection = (dir) => DIRECTIONS[(DIRECTIONS.indexOf(dir) + 1) % DIRECTIONS.length];

/**
 * Last, lowest and highest value of each series held, per run and metric, made again only when a
 * series' version changes, and kept when the run's data goes (a run deselected keeps its row's
 * values): {last, min, max} with min and max over finite values (NaN when there are none). The
 * page holds M4-thinned copies of long series, which keep every bucket's extremes: the best value
 * is exact.
 */
export class Summaries {
  constructor() {
    this.byRun = new Map(); // id -> Map metric -> {version, last, min, max}
    this.version = 0; // bumped when any summary changes
  }

  /** Take the series of a run ({series: Map metric -> SeriesBuffer}). */
  update(id, runData) {
    if (!runData) return;
    let mine = this.byRun.get(id);
    if (!mine) { mine = new Map(); this.byRun.set(id, mine); }
    for (const [metric, buf] of runData.series) {
      const hit = mine.get(metric);
      if (hit && hit.version === buf.version) continue;
      const v = buf.values;
      let min = Infinity, max = -Infinity;
      for (let i = 0; i < buf.length; i++) {
        const x = v[i];
        if (x < min) min = x; // NaN compares false: left out
        if (x > max) max = x;
      }
      mine.set(metric, { version: buf.version, last: buf.length ? v[buf.length - 1] : NaN,
        min: min <= max ? min : NaN, max: min <= max ? max : NaN });
      this.version++;
    }
  }

  get(id, metric) {
    return this.byRun.get(id)?.get(metric) ?? null;
  }

  /** Forget runs that are gone from the log folder. */
  keep(ids) {
    for (const id of [...this.byRun.keys()]) if (!ids.has(id)) this.byRun.delete(id);
  }
}

/** The value a summary gives in direction `dir`: the best, or NaN without a direction. */
export const bestOf = (s, dir) => (!s ? NaN : dir === "min" ? s.min : dir === "max" ? s.max : NaN);

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The config keys of `ids` split: {varying: keys whose values differ (a key some lack differs),
 * constant: [key, value] shared by all}. configs: id -> flat config. Varying keys in the order of
 * their first run's config (the order the writer gave them), then the others by name.
 */
export function configColumns(ids, configs) {
  const keys = [];
  const seen = new Set();
  for (const id of ids) for (const k of Object.keys(configs.get(id) || {})) if (!seen.has(k)) { seen.add(k); keys.push(k); }
  const varying = [], constant = [];
  for (const k of keys) {
    const first = configs.get(ids[0])?.[k];
    if (ids.every((id) => Object.hasOwn(configs.get(id) || {}, k) && same(configs.get(id)[k], first))) constant.push([k, first]);
    else varying.push(k);
  }
  return { varying, constant };
}

/**
 * The table's columns: run, the varying config keys, per metric its last value and, when it has a
 * direction, its best, then status and files (their formats). Each: {key, kind: "run" |
 * "status" | "files" | "config" | "last" | "best", name, metric?, dir?}. Keys are what the view
 * keeps (sort column, scatter axes).
 */
export function tableColumns(varying, metrics, chosen = []) {
  const cols = [{ key: "run", kind: "run", name: "run" }];
  for (const k of varying) cols.push({ key: `c:${k}`, kind: "config", name: k });
  for (const m of metrics) {
    const dir = directionOf(m, chosen);
    cols.push({ key: `l:${m}`, kind: "last", name: m, metric: m, dir });
    if (dir !== "none") cols.push({ key: `b:${m}`, kind: "best", name: m, metric: m, dir });
  }
  return [...cols, ...["status", "files"].map((k) => ({ key: k, kind: k, name: k }))];
}

/** A column from its key (a config key or metric need not be among the columns shown). */
export function columnOf(key, chosen = []) {
  if (key === "run" || key === "status" || key === "files") return { key, kind: key, name: key };
  const kind = { c: "config", l: "last", b: "best" }[key.slice(0, 1)];
  if (!kind || key[1] !== ":" || key.length < 3) return null;
  const name = key.slice(2);
  return kind === "config" ? { key, kind, name } : { key, kind, name, metric: name, dir: directionOf(name, chosen) };
}

/** A row's value in a column: a number, a string, or null when it has none. row: {id, label,
 *  status, files, config} with summaries (a Summaries). */
export function cellValue(row, col, summaries) {
  switch (col.kind) {
    case "run": return row.label ?? row.id;
    case "status": return row.status ?? null;
    case "files": return row.files || null;
    case "config": {
      const v = row.config?.[col.name];
      return v === undefined ? null : typeof v === "number" ? v : v === null ? "null" : typeof v === "string" ? v : JSON.stringify(v);
    }
    case "last": {
      const s = summaries.get(row.id, col.metric);
      return s ? s.last : null;
    }
    default: {
      const s = summaries.get(row.id, col.metric);
      return s ? bestOf(s, col.dir) : null;
    }
  }
}

/** A cell's value as text (whole: a long one is cut by the table's width, not here). */
export function cellText(v) {
  if (v == null) return "";
  if (typeof v === "number") return Number.isFinite(v) ? String(+v.toPrecision(6)) : String(v);
  return String(v);
}

/** Rows in a column's order (numbers before strings, numerically; strings by code point; no value
 *  last either way; NaN after numbers), then by id. */
export function sortRows(rows, col, summaries, desc = false) {
  const val = new Map(rows.map((r) => [r.id, cellValue(r, col, summaries)]));
  const rank = (v) => (v == null ? 3 : typeof v === "number" ? (Number.isNaN(v) ? 1 : 0) : 2);
  return [...rows].sort((a, b) => {
    const x = val.get(a.id), y = val.get(b.id);
    const rx = rank(x), ry = rank(y);
    let c = 0;
    if (rx !== ry) return rx - ry; // missing values stay last, ascending or not
    if (rx === 0) c = x - y;
    else if (rx === 2) c = x < y ? -1 : x > y ? 1 : 0;
    if (desc) c = -c;
    return c || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  });
}

const COMPARE = /^([^<>=!\s]+?)(<=|>=|!=|=|<|>)(\S*)$/;

/**
 * A predicate over rows from the filter's text: terms separated by spaces, all of which must hold.
 * `key<op>value` (op: = != < <= > >=) compares a config key's value, or a metric's best (its last
 * without a direction); numbers as numbers, the rest as text. Any other term is a regular
 * expression (case-insensitive; its text if it does not compile) matched against the run's name,
 * its label and its config as key=value.
 */
export function rowFilter(text, summaries, chosen = []) {
  const terms = (text || "").trim().split(/\s+/).filter(Boolean);
  const tests = terms.map((term) => {
    const m = COMPARE.exec(term);
    if (m) {
      const [, key, op, raw] = m;
      const num = raw !== "" && Number.isFinite(Number(raw)) ? Number(raw) : null;
      return (row) => {
        let v = row.config && Object.hasOwn(row.config, key) ? row.config[key] : undefined;
        if (v === undefined) {
          const s = summaries.get(row.id, key);
          if (!s) return op === "!=";
          const dir = directionOf(key, chosen);
          v = dir === "none" ? s.last : bestOf(s, dir);
        }
        const a = num != null && typeof v === "number" ? v : String(v);
        const b = num != null && typeof v === "number" ? num : raw;
        switch (op) {
          case "=": return a === b;
          case "!=": return a !== b;
          case "<": return a < b;
          case "<=": return a <= b;
          case ">": return a > b;
          default: return a >= b;
        }
      };
    }
    let re;
    try {
      re = new RegExp(term, "i");
    } catch {
      re = new RegExp(term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
    }
    return (row) => re.test(row.id) || (row.label != null && re.test(row.label)) ||
      Object.entries(row.config || {}).some(([k, v]) => re.test(`${k}=${typeof v === "string" ? v : JSON.stringify(v)}`));
  });
  return (row) => tests.every((t) => t(row));
}
