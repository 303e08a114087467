// What the page shows of GPUs, from the run objects alone (no request, no DOM: node tests it).
//
// The server attributes GPUs to runs (docs/gpu.md): a run's object carries `gpus`, the GPUs it uses
// ({system, host, key, uuid, name, index, by, pids, idle}); a host's system run (`_system/<node>`)
// carries every GPU it samples with the runs on it ({..., runs, idle}; no run: unattributed).
// A GPU's figures are the system run's metrics `gpu/<key>/<field>`, whose step is the sample's Unix
// second: a run's GPU figures are that series between the run's start and its end.

/** The charts of the "GPU" section, one per field: [field, chart name, unit]. */
export const GPU_FIELDS = Object.freeze([
  ["util", "GPU/utilisation %", "%"],
  ["mem_used", "GPU/memory used", "bytes"],
  ["power", "GPU/power W", "W"],
  ["temp", "GPU/temperature °C", "C"],
]);

/** The chart name of a field, and the field of a chart name (null: not a GPU chart). */
const CHART_OF = new Map(GPU_FIELDS.map(([f, name]) => [f, name]));
const FIELD_OF = new Map(GPU_FIELDS.map(([f, name]) => [name, f]));
export const gpuChart = (field) => CHART_OF.get(field) ?? null;
export const gpuField = (chart) => FIELD_OF.get(chart) ?? null;

/** The x axes GPU charts can be drawn on: time only (their steps are Unix seconds, not a run's). */
export const GPU_AXES = Object.freeze(["relative", "wall"]);

/** A GPU chart's x axis: the page's when it is a time, else time since each run started. */
export const gpuAxis = (axis) => (GPU_AXES.includes(axis) ? axis : "relative");

const SYSTEM_DIR = "_system";

/** True for a host's system run id (`_system/<node>`, at the root or in a folder). */
export function isSystemRun(id) {
  const parts = String(id).split("/");
  return parts.length >= 2 && parts[parts.length - 2] === SYSTEM_DIR && parts[parts.length - 1] !== "";
}

/** The metric of a GPU's field in its system run. */
export const gpuMetric = (key, field) => `gpu/${key}/${field}`;

const list = (v) => (Array.isArray(v) ? v : []);
const text = (v) => (typeof v === "string" ? v : "");

/** A GPU's short name: "GPU 0 (5f2c1c7e)", or its key alone when NVML's index is unknown. */
export function gpuName(g) {
  return Number.isInteger(g?.index) ? `GPU ${g.index} (${text(g.key)})` : `GPU ${text(g?.key)}`;
}

/** How a run was matched to a GPU, in words. */
export function describeUse(g) {
  if (g?.by === "pid") {
    const pids = list(g.pids).filter(Number.isInteger);
    return pids.length ? `by PID ${pids.join(", ")}` : "by PID";
  }
  return g?.by === "uuid" ? "by UUID" : "";
}

/**
 * The GPU lines of the selected runs: one per (run, GPU it uses), with what to ask for (`system`,
 * `key`), its time span ([start, end] in Unix seconds; end null while the run runs) and its label.
 * System runs selected by hand have no GPUs of their own and give none.
 */
export function gpuLines(runIds, infos) {
  const out = [];
  for (const run of runIds) {
    const info = infos.get(run);
    if (!info || isSystemRun(run)) continue;
    for (const g of list(info.gpus)) {
      if (!g || typeof g.system !== "string" || typeof g.key !== "string") continue;
      out.push({ id: `${run}\u0000gpu\u0000${g.system}\u0000${g.key}`, run, system: g.system, key: g.key,
        name: gpuName(g), host: text(g.host), idle: g.idle === true, span: runSpan(info),
        t0: Number.isFinite(info.started) ? info.started : null });
    }
  }
  return out;
}

/** A run's time span in Unix seconds: [start, end], end null while it runs (open, to now). */
export function runSpan(info) {
  const start = Number.isFinite(info?.started) ? Math.floor(info.started) : null;
  const done = info?.status && info.status !== "running";
  const end = done && Number.isFinite(info.updated) ? Math.ceil(info.updated) + 1 : null;
  return [start, end];
}

/**
 * Every GPU the system runs say they sample, as the overview lists it: {system, node (the name of
 * the host in the tree, `_system/<node>`), host (its host name), key, uuid, name, index, runs,
 * unattributed, idle, last}, by node then NVML index. `last`: the system run's latest sample
 * (Unix second), for the figures to ask for.
 */
export function gpuOverview(infos) {
  const rows = [];
  for (const [id, info] of infos) {
    if (!isSystemRun(id)) continue;
    for (const g of list(info.gpus)) {
      if (!g || typeof g.key !== "string") continue;
      const runs = list(g.runs).filter((r) => typeof r === "string");
      rows.push({ system: id, node: id.split("/").pop(), host: text(g.host), key: g.key, uuid: text(g.uuid),
        name: text(g.name), index: Number.isInteger(g.index) ? g.index : null, runs,
        unattributed: runs.length === 0, idle: g.idle === true, status: info.status,
        last: Number.isFinite(info.last_step) ? info.last_step : null });
    }
  }
  const idx = (r) => (r.index == null ? Infinity : r.index);
  return rows.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : idx(a) - idx(b) || (a.key < b.key ? -1 : 1)));
}

/** True when a run (not a system run) has an idle GPU: one under it while it runs, whose
 *  utilisation stayed low (the server's rule). What a run's row shows. */
export const hasIdleGpu = (info) => !isSystemRun(info?.id ?? "") && list(info?.gpus).some((g) => g?.idle === true);

/** The runs with an idle GPU. */
export function idleRuns(infos) {
  const out = new Set();
  for (const [id, info] of infos) if (hasIdleGpu({ ...info, id })) out.add(id);
  return out;
}

/** The runs the page selects by itself: never system runs (a host's GPU figures are not a run's
 *  metrics, and `_system` sorts before most names), the first `n` of the others by id. */
export function autoSelection(ids, n) {
  return [...ids].filter((id) => !isSystemRun(id)).sort().slice(0, n);
}

const GiB = 2 ** 30;

/** A field's latest value as the overview shows it. */
export function formatField(field, v) {
  if (!Number.isFinite(v)) return "–";
  if (field === "util" || field === "mem_util") return `${Math.round(v)}%`;
  if (field === "temp") return `${Math.round(v)} °C`;
  if (field === "power") return `${Math.round(v)} W`;
  if (field === "mem_used" || field === "mem_total") return `${(v / GiB).toFixed(1)} GiB`;
  return String(v);
}
