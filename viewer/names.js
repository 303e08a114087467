// Run labels that say what differs between the runs shown: the config keys whose values differ
// (`lr=0.1`), else the parts of their paths that differ (`lr_0.1` for `sweep/lr_0.1/seed0` beside
// `sweep/lr_0.01/seed0`). A label is only a short name: the full id stays what is requested, kept
// in the URL and shown on hover. Pure functions, for the chart legends, data tables and runs table.

/** How runs are labelled: "auto" (config keys that differ, else path parts), "path", "config", "full". */
export const LABEL_MODES = Object.freeze(["auto", "path", "config", "full"]);

/** Config keys shown in a label at most (all of them are in the title). */
const MAX_KEYS = 3;
/** A config value longer than this is cut in a label. */
const MAX_VALUE = 24;

/** A nested config flattened to dotted keys: {opt: {lr: 1}} -> {"opt.lr": 1}. Arrays are values. */
export function flatConfig(obj, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(obj || {})) {
    if (v && typeof v === "object" && !Array.isArray(v)) flatConfig(v, `${prefix}${k}.`, out);
    else out[prefix + k] = v;
  }
  return out;
}

/** A config value as a label writes it: numbers and strings as they are, the rest as JSON. */
export function configValue(v) {
  const s = typeof v === "string" ? v : v === undefined ? "–" : JSON.stringify(v);
  return s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE - 1)}…` : s;
}

/** The parts of the ids' paths that tell them apart: positions where all agree are dropped (ids of
 *  one depth), else the common leading and trailing parts. A run whose parts are all common keeps
 *  its last part. */
export function pathLabels(ids) {
  const parts = ids.map((id) => id.split("/"));
  const out = new Map();
  if (ids.length < 2) {
    for (const id of ids) out.set(id, id);
    return out;
  }
  const depth = parts[0].length;
  if (parts.every((p) => p.length === depth)) {
    const keep = [...Array(depth).keys()].filter((i) => parts.some((p) => p[i] !== parts[0][i]));
    ids.forEach((id, k) => out.set(id, keep.map((i) => parts[k][i]).join("/") || parts[k][depth - 1]));
    return out;
  }
  const shortest = Math.min(...parts.map((p) => p.length));
  let head = 0, tail = 0;
  while (head < shortest && parts.every((p) => p[head] === parts[0][head])) head++;
  while (tail < shortest - head && parts.every((p) => p[p.length - 1 - tail] === parts[0][parts[0].length - 1 - tail])) tail++;
  ids.forEach((id, k) => {
    const p = parts[k];
    out.set(id, p.slice(head, p.length - tail).join("/") || p[p.length - 1]);
  });
  return out;
}

/** The flat config keys whose values are not the same for all `ids` (a key some lack differs). */
export function differingKeys(ids, configs) {
  const keys = new Set();
  for (const id of ids) for (const k of Object.keys(configs.get(id) || {})) keys.add(k);
  const same = (k) => {
    const first = JSON.stringify(configs.get(ids[0])?.[k]);
    return ids.every((id) => JSON.stringify(configs.get(id)?.[k]) === first);
  };
  return [...keys].filter((k) => !same(k)).sort();
}

/** A key as a label writes it: its last dotted part when that is unambiguous among `keys`. */
function shortKey(key, keys) {
  const last = key.slice(key.lastIndexOf(".") + 1);
  return keys.filter((k) => k.slice(k.lastIndexOf(".") + 1) === last).length > 1 ? key : last;
}

/** True when every run's value of `key` is a string that holds its id or is held in it (a run name
 *  or an output folder in the config): such a key only says the name again. */
function restatesName(key, ids, configs) {
  return ids.every((id) => {
    const v = configs.get(id)[key];
    return typeof v === "string" && v !== "" && (v.includes(id) || id.includes(v));
  });
}

/** `lr=0.1 batch=64` per run from the config keys that differ (but those that only restate the run's
 *  name); null when none is left. */
export function configLabels(ids, configs) {
  if (ids.length < 2 || !ids.every((id) => configs.has(id))) return null;
  const keys = differingKeys(ids, configs).filter((k) => !restatesName(k, ids, configs));
  if (!keys.length) return null;
  const shown = keys.slice(0, MAX_KEYS);
  const out = new Map();
  for (const id of ids) {
    const c = configs.get(id);
    out.set(id, shown.map((k) => `${shortKey(k, shown)}=${configValue(c[k])}`).join(" "));
  }
  return out;
}

/** True when no two ids have the same label. */
const distinct = (labels) => new Set(labels.values()).size === labels.size;

/**
 * id -> label for the runs shown together. configs: id -> flat config (runs without one yet are
 * labelled by path). "auto" takes the config labels when they tell every run apart, else path
 * labels; labels that still collide get the path label after them.
 */
export function runLabels(ids, configs = new Map(), mode = "auto") {
  const sorted = [...ids].sort();
  if (mode === "full") return new Map(sorted.map((id) => [id, id]));
  const byPath = pathLabels(sorted);
  const byConfig = mode === "path" ? null : configLabels(sorted, configs);
  let labels = byConfig && (mode === "config" || distinct(byConfig)) ? byConfig : byPath;
  if (!distinct(labels) && labels !== byPath) {
    const seen = new Map();
    for (const l of labels.values()) seen.set(l, (seen.get(l) || 0) + 1);
    labels = new Map([...labels].map(([id, l]) => [id, seen.get(l) > 1 ? `${l} · ${byPath.get(id)}` : l]));
  }
  return labels;
}
