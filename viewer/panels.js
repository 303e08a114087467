// Panels besides the scalar charts: histograms over time (heatmap), vectors (bars with a step
// scrubber) and text. (The runs table is hptable.js's.)

import { decodeValues } from "./protocol.js";
import { runColor } from "./state.js";
import { formatNumber, Scale, linearTicks } from "./scale.js";
import { getJSON } from "./api.js";
import { h, label, visible } from "./dom.js";
import { Heatmap } from "./heatmap.js";
import { render as markdown, renderable } from "./markdown.js";

const empty = (el, text) => el.replaceChildren(h("p", { class: "empty" }, text));

function sizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * dpr);
  canvas.height = Math.round(canvas.clientHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
}

/** An option shows the name with its hidden characters made visible; its value is the raw name. */
const option = (name) => h("option", { value: name }, visible(name));

function pickers(el, runs, infos, key, onPick) {
  const runSel = h("select", null, runs.map(option));
  const nameSel = h("select");
  const fill = () => nameSel.replaceChildren(...((infos.get(runSel.value) || {})[key] || []).map(option));
  fill();
  runSel.onchange = () => { fill(); onPick(runSel.value, nameSel.value); };
  nameSel.onchange = () => onPick(runSel.value, nameSel.value);
  el.appendChild(h("div", { class: "panel-head" }, runSel, nameSel));
  return { run: () => runSel.value, name: () => nameSel.value };
}

/** Histograms over time: steps as columns, bins as cells at their true bounds (heatmap.js). */
export async function showHistograms(el, runs, infos) {
  el.replaceChildren();
  const runsWith = runs.filter((r) => (infos.get(r)?.histograms || []).length);
  if (!runsWith.length) { empty(el, "No histograms in the selected runs."); return; }
  const panel = h("div", { class: "panel" });
  const heatmap = new Heatmap();
  const draw = async (run, name) => {
    if (!run || !name) return;
    const hist = await getJSON("/api/histograms", { run, name });
    heatmap.draw(hist, { dark: document.documentElement.dataset.theme === "dark",
      muted: getComputedStyle(el).getPropertyValue("--muted") });
  };
  const pick = pickers(panel, runsWith, infos, "histograms", draw);
  panel.appendChild(heatmap.el);
  el.appendChild(panel);
  await draw(pick.run(), pick.name());
}

/** Vectors (e.g. per-layer gradient norms) as bars, with a scrubber over the logged steps. */
export async function showVectors(el, runs, infos) {
  el.replaceChildren();
  const runsWith = runs.filter((r) => (infos.get(r)?.vectors || []).length);
  if (!runsWith.length) { empty(el, "No vectors in the selected runs."); return; }
  const panel = h("div", { class: "panel" });
  const canvas = h("canvas");
  const scrub = h("input", { type: "range", class: "scrub" });
  const stepLabel = h("div");
  let data = null, color = "";
  const paint = () => {
    if (!data || !data.steps.length) return;
    const k = Math.min(data.steps.length - 1, +scrub.value);
    const vals = decodeValues(data.values[k]);
    stepLabel.textContent = `step ${data.steps[k]} · ${vals.length} values`;
    const { ctx, w, h } = sizeCanvas(canvas);
    ctx.clearRect(0, 0, w, h);
    let max = 0;
    for (const v of vals) if (Number.isFinite(v)) max = Math.max(max, Math.abs(v));
    const L = 50, bw = (w - L - 8) / Math.max(1, vals.length), sy = new Scale(0, max || 1, h - 20, 8);
    ctx.fillStyle = color;
    vals.forEach((v, i) => { if (Number.isFinite(v)) { const y = sy.px(Math.abs(v)); ctx.fillRect(L + i * bw + 1, y, Math.max(1, bw - 2), h - 20 - y); } });
    ctx.fillStyle = getComputedStyle(el).getPropertyValue("--muted");
    ctx.font = "11px system-ui";
    ctx.textAlign = "right";
    for (const t of linearTicks(0, max || 1, 5)) ctx.fillText(formatNumber(t), L - 4, sy.px(t) + 4);
  };
  const load = async (run, name) => {
    if (!run || !name) return;
    data = await getJSON("/api/vectors", { run, name });
    color = runColor(run, document.documentElement.dataset.theme === "dark");
    scrub.min = 0;
    scrub.max = Math.max(0, data.steps.length - 1);
    scrub.value = scrub.max;
    paint();
  };
  scrub.oninput = paint;
  const pick = pickers(panel, runsWith, infos, "vectors", load);
  panel.append(canvas, scrub, stepLabel);
  el.appendChild(panel);
  await load(pick.run(), pick.name());
}

let textsAsMarkdown = true; // as TensorBoard shows text summaries; the box shows them raw

export async function showTexts(el, runs, infos) {
  el.replaceChildren();
  const entries = [];
  const body = (text) => (textsAsMarkdown && renderable(text)
    ? h("div", { class: "md" }, markdown(text))
    : h("pre", null, visible(text, { multiline: true })));
  for (const run of runs.filter((r) => (infos.get(r)?.texts || []).length)) {
    const t = await getJSON("/api/texts", { run });
    for (let i = t.steps.length - 1; i >= 0 && entries.length < 500; i--) {
      entries.push(h("div", { class: "entry" },
        h("b", null, label(run)), " · ", label(t.names[i]), ` · step ${t.steps[i]}`, body(t.texts[i])));
    }
  }
  const toggle = h("label", { class: "texts-mode" },
    h("input", { type: "checkbox", checked: textsAsMarkdown,
      onchange: (e) => { textsAsMarkdown = e.target.checked; showTexts(el, runs, infos); } }), " Markdown");
  if (entries.length) el.replaceChildren(toggle, h("div", { class: "texts" }, entries));
  else empty(el, "No text in the selected runs.");
}
