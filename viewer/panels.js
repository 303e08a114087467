// Panels besides the scalar charts: histograms over time (heatmap), vectors (bars with a step
// scrubber), text, and the runs table of hyper-parameters with last and best metric values.

import { decodeValues } from "./protocol.js";
import { runColor } from "./state.js";
import { formatNumber, Scale, linearTicks } from "./scale.js";
import { esc } from "./runs.js";

async function getJSON(url) {
  const res = await fetch(url, { credentials: "same-origin" });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

function sizeCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * dpr);
  canvas.height = Math.round(canvas.clientHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { ctx, w: canvas.clientWidth, h: canvas.clientHeight };
}

function pickers(el, runs, infos, key, onPick) {
  const head = document.createElement("div");
  head.className = "panel-head";
  const runSel = document.createElement("select");
  const nameSel = document.createElement("select");
  const fill = () => {
    const info = infos.get(runSel.value) || {};
    nameSel.innerHTML = (info[key] || []).map((n) => `<option>${esc(n)}</option>`).join("");
  };
  runSel.innerHTML = runs.map((r) => `<option>${esc(r)}</option>`).join("");
  fill();
  runSel.onchange = () => { fill(); onPick(runSel.value, nameSel.value); };
  nameSel.onchange = () => onPick(runSel.value, nameSel.value);
  head.append(runSel, nameSel);
  el.appendChild(head);
  return { run: () => runSel.value, name: () => nameSel.value };
}

/** Histograms over time: steps as columns, bins as rows, colour by count (normalised per step). */
export async function showHistograms(el, runs, infos) {
  el.innerHTML = "";
  const runsWith = runs.filter((r) => (infos.get(r)?.histograms || []).length);
  if (!runsWith.length) { el.innerHTML = `<p class="empty">No histograms in the selected runs.</p>`; return; }
  const panel = document.createElement("div");
  panel.className = "panel";
  const canvas = document.createElement("canvas");
  const draw = async (run, name) => {
    if (!run || !name) return;
    const h = await getJSON(`/api/histograms?run=${encodeURIComponent(run)}&name=${encodeURIComponent(name)}`);
    const { ctx, w, h: H } = sizeCanvas(canvas);
    ctx.clearRect(0, 0, w, H);
    const n = h.steps.length;
    if (!n) return;
    const lo = Math.min(...decodeValues(h.lo).filter(Number.isFinite));
    const hi = Math.max(...decodeValues(h.hi).filter(Number.isFinite));
    const L = 50, B = 20, pw = w - L - 8, ph = H - B - 8;
    const sy = new Scale(lo, hi, 8 + ph, 8);
    const colW = pw / n;
    const dark = document.documentElement.dataset.theme === "dark";
    for (let j = 0; j < n; j++) {
      const counts = decodeValues(h.counts[j]);
      const a = decodeValues([h.lo[j]])[0], b = decodeValues([h.hi[j]])[0];
      let max = 0;
      for (const c of counts) if (c > max) max = c;
      const bw = (b - a) / (counts.length || 1);
      for (let i = 0; i < counts.length; i++) {
        if (!counts[i]) continue;
        const t = counts[i] / max;
        ctx.fillStyle = dark ? `rgba(96,165,250,${0.08 + 0.92 * t})` : `rgba(37,99,235,${0.08 + 0.92 * t})`;
        const y0 = sy.px(a + i * bw), y1 = sy.px(a + (i + 1) * bw);
        ctx.fillRect(L + j * colW, Math.min(y0, y1), Math.max(1, colW + 0.5), Math.max(1, Math.abs(y1 - y0)));
      }
    }
    ctx.fillStyle = getComputedStyle(el).getPropertyValue("--muted");
    ctx.font = "11px system-ui";
    ctx.textAlign = "right";
    for (const t of linearTicks(lo, hi, 5)) ctx.fillText(formatNumber(t), L - 4, sy.px(t) + 4);
    ctx.textAlign = "center";
    for (const k of [0, Math.floor(n / 2), n - 1]) ctx.fillText(`step ${formatNumber(h.steps[k])}`, L + (k + 0.5) * colW, H - 5);
  };
  const pick = pickers(panel, runsWith, infos, "histograms", draw);
  panel.appendChild(canvas);
  el.appendChild(panel);
  await draw(pick.run(), pick.name());
}

/** Vectors (e.g. per-layer gradient norms) as bars, with a scrubber over the logged steps. */
export async function showVectors(el, runs, infos) {
  el.innerHTML = "";
  const runsWith = runs.filter((r) => (infos.get(r)?.vectors || []).length);
  if (!runsWith.length) { el.innerHTML = `<p class="empty">No vectors in the selected runs.</p>`; return; }
  const panel = document.createElement("div");
  panel.className = "panel";
  const canvas = document.createElement("canvas");
  const scrub = document.createElement("input");
  scrub.type = "range";
  scrub.style.width = "100%";
  const label = document.createElement("div");
  let data = null, color = "";
  const paint = () => {
    if (!data || !data.steps.length) return;
    const k = Math.min(data.steps.length - 1, +scrub.value);
    const vals = decodeValues(data.values[k]);
    label.textContent = `step ${data.steps[k]} · ${vals.length} values`;
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
    data = await getJSON(`/api/vectors?run=${encodeURIComponent(run)}&name=${encodeURIComponent(name)}`);
    color = runColor(run, document.documentElement.dataset.theme === "dark");
    scrub.min = 0;
    scrub.max = Math.max(0, data.steps.length - 1);
    scrub.value = scrub.max;
    paint();
  };
  scrub.oninput = paint;
  const pick = pickers(panel, runsWith, infos, "vectors", load);
  panel.append(canvas, scrub, label);
  el.appendChild(panel);
  await load(pick.run(), pick.name());
}

export async function showTexts(el, runs, infos) {
  el.innerHTML = "";
  const parts = [];
  for (const run of runs.filter((r) => (infos.get(r)?.texts || []).length)) {
    const t = await getJSON(`/api/texts?run=${encodeURIComponent(run)}`);
    for (let i = t.steps.length - 1; i >= 0 && parts.length < 500; i--) {
      parts.push(`<div class="entry"><b>${esc(run)}</b> · ${esc(t.names[i])} · step ${esc(t.steps[i])}<pre>${esc(t.texts[i])}</pre></div>`);
    }
  }
  el.innerHTML = parts.length ? `<div class="texts">${parts.join("")}</div>` : `<p class="empty">No text in the selected runs.</p>`;
}

const higherIsBetter = (name) => /acc|auc|f1|precision|recall|score|iou|bleu|reward/i.test(name);

/** One row per run: its config values, then the last and best value of each metric. */
export async function showConfig(el, runs, runData) {
  el.innerHTML = "";
  if (!runs.length) { el.innerHTML = `<p class="empty">Select runs to compare.</p>`; return; }
  const details = await Promise.all(runs.map((r) => getJSON(`/api/run?run=${encodeURIComponent(r)}`).catch(() => ({}))));
  const flat = (obj, prefix = "", out = {}) => {
    for (const [k, v] of Object.entries(obj || {})) {
      if (v && typeof v === "object" && !Array.isArray(v)) flat(v, `${prefix}${k}.`, out); else out[prefix + k] = v;
    }
    return out;
  };
  const configs = details.map((d) => flat(d.config));
  const keys = [...new Set(configs.flatMap((c) => Object.keys(c)))].sort();
  const metrics = [...new Set(runs.flatMap((r) => [...(runData.get(r)?.series.keys() || [])]))].sort();
  const head = `<tr><th>run</th><th>status</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}` +
    metrics.map((m) => `<th>${esc(m)} last</th><th>${esc(m)} best</th>`).join("") + "</tr>";
  const rows = runs.map((r, i) => {
    const cells = keys.map((k) => `<td>${esc(typeof configs[i][k] === "number" ? formatNumber(configs[i][k]) : configs[i][k] ?? "")}</td>`);
    const mcells = metrics.map((m) => {
      const buf = runData.get(r)?.series.get(m);
      if (!buf || !buf.length) return "<td></td><td></td>";
      const v = buf.view().values;
      let best = NaN;
      for (const x of v) if (Number.isFinite(x) && (Number.isNaN(best) || (higherIsBetter(m) ? x > best : x < best))) best = x;
      return `<td>${esc(formatNumber(v[v.length - 1]))}</td><td>${esc(formatNumber(best))}</td>`;
    });
    return `<tr><td><span class="sw" style="display:inline-block;width:9px;height:9px;background:${runColor(r)}"></span> ${esc(r)}</td>` +
      `<td>${esc(details[i].status || "")}</td>${cells.join("")}${mcells.join("")}</tr>`;
  });
  el.innerHTML = `<div style="overflow:auto"><table class="hp"><thead>${head}</thead><tbody>${rows.join("")}</tbody></table></div>`;
}
