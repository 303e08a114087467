// Histograms and vectors of several runs at once. Histograms: one name, the runs that logged it as
// small multiples over one shared value range (a value sits at the same height in every card), as
// heatmaps (heatmap.js) with their colour scale, or as TensorBoard's offset ridges (ridges.js).
// Vectors: one name, the runs' bars side by side per index in the runs' colours, one step scrubber
// for all of them (each run shows its record at or before the step), values on hover.

import { decodeValues } from "./protocol.js";
import { runColor } from "./state.js";
import { formatNumber, Scale, linearTicks } from "./scale.js";
import { getJSON } from "./api.js";
import { fitCanvas, h, label, visible } from "./dom.js";
import { Heatmap, heatmapRecords } from "./heatmap.js";
import { Ridges } from "./ridges.js";

export const MAX_MULTIPLES = 12; // cards drawn at once; the header says how many more runs have the name

const empty = (el, text) => el.replaceChildren(h("p", { class: "empty" }, text));
const dark = () => document.documentElement.dataset.theme === "dark";
const cssVar = (el, name) => getComputedStyle(el).getPropertyValue(name).trim();

/** Every name of `key` (histograms, vectors) logged by any of the runs, sorted. */
export function namesOf(runs, infos, key) {
  const names = new Set();
  for (const r of runs) for (const n of infos.get(r)?.[key] || []) names.add(n);
  return [...names].sort();
}

/** The value range spanning all the records (heatmapRecords() outputs); 0..1 when there are none. */
export function sharedRange(all) {
  let lo = Infinity, hi = -Infinity;
  for (const d of all) if (d.records.some((r) => r.counts.length)) { lo = Math.min(lo, d.lo); hi = Math.max(hi, d.hi); }
  if (!(lo <= hi)) return { lo: 0, hi: 1 };
  return lo === hi ? { lo: lo - 0.5, hi: hi + 0.5 } : { lo, hi };
}

/** For each run's steps (sorted), the index of its record at or before `step` (its first when none). */
export function atOrBefore(steps, step) {
  let lo = 0, hi = steps.length - 1, k = 0;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) { k = mid; lo = mid + 1; } else hi = mid - 1;
  }
  return k;
}

const option = (value, text = value) => h("option", { value }, visible(text));

function select(values, current, onchange, cls) {
  const el = h("select", { class: cls, onchange: () => onchange(el.value) }, values.map((v) => (Array.isArray(v) ? option(...v) : option(v))));
  if (current != null) el.value = current;
  return el;
}

function swatch(run) {
  return h("span", { class: "sw", style: { background: runColor(run, dark()) } });
}

function more(n) {
  return n > MAX_MULTIPLES ? h("span", { class: "dist-more" }, `first ${MAX_MULTIPLES} of ${n} runs`) : null;
}

let histMode = "heatmap"; // or "offset"; kept while the page is open

/** Histograms of the selected runs: a name, then one card per run that logged it. */
export async function showHistograms(el, runs, infos) {
  el.replaceChildren();
  const names = namesOf(runs, infos, "histograms");
  if (!names.length) { empty(el, "No histograms in the selected runs."); return; }
  let name = names[0];
  const body = h("div", { class: "multiples" });
  const head = h("div", { class: "panel-head" });
  const draw = async () => {
    const withName = runs.filter((r) => (infos.get(r)?.histograms || []).includes(name));
    const shown = withName.slice(0, MAX_MULTIPLES);
    const answers = await Promise.all(shown.map((run) => getJSON("/api/histograms", { run, name })));
    const data = answers.map(heatmapRecords);
    const range = sharedRange(data);
    const scale = histMode === "heatmap"
      ? h("span", { class: "density-scale", title: "a cell's shade: how densely its bin is filled, against the densest bin of its step" },
        "sparse", h("span", { class: "density-ramp" }), "dense")
      : h("span", { class: "density-scale" }, "height: values per unit, against the densest bin shown");
    head.replaceChildren(
      select(names, name, (v) => { name = v; draw(); }, "dist-name"),
      select([["heatmap", "heatmap"], ["offset", "offset (ridges)"]], histMode, (v) => { histMode = v; draw(); }, "dist-mode"),
      scale, more(withName.length));
    const cards = shown.map((run) => {
      const view = histMode === "heatmap" ? new Heatmap() : new Ridges();
      const card = h("div", { class: "dist-card", dataset: { run } }, h("div", { class: "dist-title" }, swatch(run), label(run)), view.el);
      return { run, view, card };
    });
    body.replaceChildren(...cards.map((c) => c.card));
    const muted = cssVar(el, "--muted") || "#6b7280";
    cards.forEach(({ run, view }, k) => {
      if (histMode === "heatmap") view.draw(answers[k], { dark: dark(), muted, range });
      else view.draw(data[k], { ...range, color: runColor(run, dark()), background: cssVar(el, "--bg") || "#fff", muted });
    });
  };
  el.append(h("div", { class: "panel" }, head, body));
  await draw();
}

/** Vectors of the selected runs: a name, one step for all, the runs' bars side by side per index. */
export async function showVectors(el, runs, infos) {
  el.replaceChildren();
  const names = namesOf(runs, infos, "vectors");
  if (!names.length) { empty(el, "No vectors in the selected runs."); return; }
  let name = names[0], series = []; // [{run, steps, values: [Float64Array]}]
  const canvas = h("canvas");
  const tooltip = h("div", { class: "tooltip dist-vtip", hidden: true });
  const scrub = h("input", { type: "range", class: "scrub" });
  const legend = h("div", { class: "dist-legend" });
  const head = h("div", { class: "panel-head" });
  let allSteps = [], geometry = null;
  const current = () => allSteps[Math.min(allSteps.length - 1, +scrub.value)] ?? 0;
  const paint = () => {
    const step = current();
    const shown = series.map((s) => ({ ...s, k: atOrBefore(s.steps, step) }));
    legend.replaceChildren(...shown.map((s) => h("span", { class: "dist-key" }, swatch(s.run), label(s.run),
      ` · step ${formatNumber(s.steps[s.k])}`)));
    const { ctx, w, h: H } = fitCanvas(canvas);
    const vals = shown.map((s) => s.values[s.k]);
    let lo = 0, hi = 0, n = 0;
    for (const v of vals) {
      n = Math.max(n, v.length);
      for (const x of v) if (Number.isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); }
    }
    if (lo === hi) hi = lo + 1;
    const L = 50, R = 8, sy = new Scale(lo, hi, H - 20, 8), slot = (w - L - R) / Math.max(1, n), bw = slot / Math.max(1, vals.length);
    geometry = { L, slot, n, step, shown, vals };
    vals.forEach((v, r) => {
      ctx.fillStyle = runColor(shown[r].run, dark());
      v.forEach((x, i) => {
        if (!Number.isFinite(x)) return;
        const y0 = sy.px(Math.max(0, x)), y1 = sy.px(Math.min(0, x));
        ctx.fillRect(L + i * slot + r * bw + (bw > 3 ? 0.5 : 0), y0, Math.max(1, bw - (bw > 3 ? 1 : 0)), Math.max(1, y1 - y0));
      });
    });
    ctx.fillStyle = cssVar(el, "--muted") || "#6b7280";
    ctx.font = "11px system-ui";
    ctx.textAlign = "right";
    for (const t of linearTicks(lo, hi, 5)) ctx.fillText(formatNumber(t), L - 4, sy.px(t) + 4);
    ctx.textAlign = "center";
    for (const i of new Set([0, Math.floor((n - 1) / 2), n - 1])) if (i >= 0) ctx.fillText(String(i), L + (i + 0.5) * slot, H - 5);
  };
  const hover = (x) => {
    const g = geometry;
    const i = g ? Math.floor((x - g.L) / g.slot) : -1;
    if (!g || i < 0 || i >= g.n) { tooltip.hidden = true; return; }
    tooltip.replaceChildren(h("div", { class: "tt-x" }, `index ${i}`),
      ...g.shown.map((s, r) => h("div", null, swatch(s.run), label(s.run), " ",
        h("b", null, i < g.vals[r].length ? formatNumber(g.vals[r][i]) : "–"), ` (step ${formatNumber(s.steps[s.k])})`)));
    tooltip.hidden = false;
  };
  canvas.addEventListener("mousemove", (e) => hover(e.offsetX));
  canvas.addEventListener("mouseleave", () => { tooltip.hidden = true; });
  const load = async () => {
    const withName = runs.filter((r) => (infos.get(r)?.vectors || []).includes(name)).slice(0, MAX_MULTIPLES);
    const answers = await Promise.all(withName.map((run) => getJSON("/api/vectors", { run, name })));
    series = answers.map((a, k) => ({ run: withName[k], steps: a.steps, values: a.values.map((v) => decodeValues(v)) }))
      .filter((s) => s.steps.length);
    allSteps = [...new Set(series.flatMap((s) => s.steps))].sort((a, b) => a - b);
    scrub.min = 0;
    scrub.max = Math.max(0, allSteps.length - 1);
    scrub.value = scrub.max;
    head.replaceChildren(select(names, name, (v) => { name = v; load(); }, "dist-name"), more(runs.filter((r) => (infos.get(r)?.vectors || []).includes(name)).length));
    paint();
  };
  scrub.oninput = paint;
  el.append(h("div", { class: "panel" }, head, h("div", { class: "chart-body" }, canvas, tooltip), scrub, legend));
  await load();
}
