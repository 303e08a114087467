// The GPUs tab: every GPU the system runs sample (gpu.js: gpuOverview), one row each, with its
// latest figures, the runs on it ("unattributed" when none) and an idle flag (a GPU under a running
// run whose utilisation stayed low: the server's rule, docs/gpu.md). Made again from the run objects
// and the latest samples (one /api/latest request per host) every POLL_MS while the tab is shown;
// stopped when it is hidden.

import { getJSON } from "./api.js";
import { decodeValues } from "./protocol.js";
import { formatField, gpuMetric, gpuOverview } from "./gpu.js";
import { POLL_MS } from "./gpucharts.js";
import { h, label, visible } from "./dom.js";

/** The figures each row shows, in its columns' order. */
const LATEST = ["util", "mem_used", "mem_total", "temp", "power"];
/** How far back (seconds) the latest sample is looked for. */
const RECENT = 30;

class GpuOverview {
  constructor() {
    this.el = null;
    this.infos = new Map();
    this.latest = new Map(); // system + key -> field -> value
    this.timer = null;
    this.asking = false;
  }

  show(el, infos) {
    this.el = el;
    this.infos = infos;
    this.render();
    this.refresh();
    if (!this.timer) this.timer = setInterval(() => this.tick(), POLL_MS);
  }

  tick() {
    if (!this.el || this.el.hidden) { clearInterval(this.timer); this.timer = null; return; }
    this.render();
    this.refresh();
  }

  /** Ask for the latest figures of every GPU listed: one request per system run (a host), whatever
   *  its number of GPUs. A figure older than RECENT s before the host's latest sample is not shown. */
  async refresh() {
    if (this.asking) return;
    this.asking = true;
    try {
      const rows = gpuOverview(this.infos).filter((r) => r.last != null);
      const hosts = new Set(rows.map((r) => r.system));
      const answers = new Map(await Promise.all([...hosts].map(async (system) => {
        const got = await getJSON("/api/latest", { run: system, prefix: "gpu/" }).catch(() => null);
        const byName = new Map();
        if (got) {
          const steps = decodeValues(got.steps), values = decodeValues(got.values);
          got.metrics.forEach((name, i) => byName.set(name, [steps[i], values[i]]));
        }
        return [system, byName];
      })));
      for (const r of rows) {
        const got = answers.get(r.system);
        const figures = new Map();
        for (const field of LATEST) {
          const [step, value] = got.get(gpuMetric(r.key, field)) || [-Infinity, NaN];
          figures.set(field, step >= r.last - RECENT ? value : NaN);
        }
        this.latest.set(`${r.system}\u0000${r.key}`, figures);
      }
    } finally {
      this.asking = false;
    }
    this.render();
  }

  render() {
    if (!this.el || this.el.hidden) return;
    const rows = gpuOverview(this.infos);
    if (!rows.length) {
      this.el.replaceChildren(h("div", { class: "empty" },
        h("p", { class: "found-title" }, "No GPU seen."),
        h("p", null, "GPU figures come from a host's system run (", h("code", null, "_system/<host>"), "): ",
          h("code", null, "tailboard serve --gpu auto"), " samples the sidecar's host, ",
          h("code", null, "tailboard gpu LOGDIR"), " any other.")));
      return;
    }
    const head = h("tr", null, ["host", "GPU", "name", "key", "util", "memory", "temp", "power", "runs"].map((t) => h("th", null, t)));
    const body = rows.map((r) => this._row(r));
    this.el.replaceChildren(h("div", { class: "table-wrap" },
      h("table", { class: "hp gpus" }, h("thead", null, head), h("tbody", null, body))));
  }

  _row(r) {
    const got = this.latest.get(`${r.system}\u0000${r.key}`) || new Map();
    const v = (field) => got.get(field);
    const memory = `${formatField("mem_used", v("mem_used"))} / ${formatField("mem_total", v("mem_total"))}`;
    const runs = r.unattributed
      ? h("span", { class: "unattributed" }, "unattributed")
      : r.runs.map((id, i) => [i ? ", " : null, label(id, "gpu-run")]);
    const title = [r.uuid && `UUID ${visible(r.uuid)}`, `system run ${visible(r.system)}`].filter(Boolean).join("\n");
    return h("tr", { class: r.idle ? "gpu-row idle" : "gpu-row", dataset: { system: r.system, key: r.key } },
      h("td", { class: "text", title: r.host ? `host name ${visible(r.host)}` : null }, label(r.node)),
      h("td", null, r.index ?? "–"),
      h("td", { class: "text" }, label(r.name || "–")),
      h("td", { class: "key", title }, visible(r.key)),
      h("td", { class: "util" }, formatField("util", v("util"))),
      h("td", null, memory),
      h("td", null, formatField("temp", v("temp"))),
      h("td", null, formatField("power", v("power"))),
      h("td", { class: "runs" }, runs, r.idle ? h("span", { class: "badge gpu-idle", title: "under a running run, its utilisation stayed low (the sidecar's idle rule)" }, "idle") : null));
  }
}

const overview = new GpuOverview();

/** Show the GPUs tab in `el` from `infos` (id -> run object, read again at each refresh). */
export function showGpus(el, infos) {
  overview.show(el, infos);
}
