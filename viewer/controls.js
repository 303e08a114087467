// The scalar view's controls (smoothing, x axis, log y, outliers, metric and run filters, run labels,
// groups, columns, reset zoom, selection buttons, theme) bound to the view object, and the view kept
// in the URL (what is shared when the URL is copied). Controls change the view; what follows from a
// change is the caller's.

import { viewToQuery } from "./state.js";
import { parseGroupSpec } from "./groups.js";
import { h, visible } from "./dom.js";

const $ = (id) => document.getElementById(id);
const URL_DELAY_MS = 150; // a slider drag writes the URL once, not per input event

let urlTimer = 0;
/** Write the view into the address bar's query, soon (history.replaceState: no new entry). */
export function saveView(view) {
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const q = viewToQuery(view);
    history.replaceState(null, "", `${location.pathname}${q ? "?" + q : ""}`);
  }, URL_DELAY_MS);
}

export const isDark = () => document.documentElement.dataset.theme === "dark";

/** The view's theme, or the system's preference when none was chosen, on the page. */
export function applyTheme(view) {
  document.documentElement.dataset.theme = view.theme || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light");
}

/**
 * Show the view in the controls and bind them to it. Each change updates `view`, saves it in the URL,
 * then calls on.change(what) with what changed: "smoothing", "xaxis" (the zoom is reset with it),
 * "logy", "outliers", "metrics", "labels", "cols", "group" (the rule, the line, the band or
 * runs shown), "theme" (the button), "system-theme" (the system's preference changed).
 * on.resetZoom(): the reset button. on.runFilter(text), on.selectShown(), on.selectNone(): the run
 * list's controls. on.configKeys(): the config keys a group may be made by, most useful first.
 */
export function bindControls(view, on) {
  const changed = (what) => { saveView(view); on.change(what); };
  const sm = $("smoothing");
  sm.value = String(view.smoothing);
  $("smoothing-out").textContent = view.smoothing.toFixed(2);
  sm.addEventListener("input", () => {
    view.smoothing = +sm.value;
    $("smoothing-out").textContent = view.smoothing.toFixed(2);
    changed("smoothing");
  });
  const xa = $("xaxis");
  xa.value = view.xaxis;
  xa.addEventListener("change", () => { view.xaxis = xa.value; view.zoom = null; changed("xaxis"); });
  for (const id of ["logy", "outliers"]) {
    const el = $(id);
    el.checked = view[id];
    el.addEventListener("change", () => { view[id] = el.checked; changed(id); });
  }
  for (const [id, key, parse] of [["labels", "labels", String], ["cols", "cols", Number]]) {
    const el = $(id);
    el.value = String(view[key]);
    el.addEventListener("change", () => { view[key] = parse(el.value); changed(key); });
  }
  bindGroups(view, changed, on.configKeys);
  $("reset-zoom").addEventListener("click", () => on.resetZoom());
  const mf = $("metric-filter");
  mf.value = view.metrics;
  mf.addEventListener("input", () => { view.metrics = mf.value; changed("metrics"); });
  const rf = $("run-filter");
  rf.value = view.filter;
  on.runFilter(view.filter);
  rf.addEventListener("input", () => { view.filter = rf.value; on.runFilter(rf.value); saveView(view); });
  $("sel-all").addEventListener("click", () => on.selectShown());
  $("sel-none").addEventListener("click", () => on.selectNone());
  $("theme").addEventListener("click", () => {
    view.theme = isDark() ? "light" : "dark";
    applyTheme(view);
    changed("theme");
  });
  // with no theme chosen, the page follows the system's preference as it changes
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => { applyTheme(view); on.change("system-theme"); });
}

/** The metric filter as a regex (case-insensitive); null when empty or not a valid regex yet. */
export function metricFilter(view) {
  try {
    return view.metrics ? new RegExp(view.metrics, "i") : null;
  } catch {
    return null;
  }
}

/** The reset-zoom button shows while the view is zoomed. */
export function showZoom(view) {
  const b = $("reset-zoom");
  if (b.hidden !== !view.zoom) b.hidden = !view.zoom;
}

/** The group controls: a rule's kind and its argument make view.group ("path:-1"); the line, the
 *  band and "runs" apply to every group. */
function bindGroups(view, changed, configKeys) {
  const kind = $("group-kind"), arg = $("group-arg");
  const spec = parseGroupSpec(view.group);
  kind.value = spec ? spec.kind : "";
  arg.value = spec ? spec.arg : "";
  arg.hidden = !spec;
  const placeholder = { path: "level: 1, 2… or -1", re: "regex, e.g. lr_([\\d.]+)", cfg: "config key" };
  arg.placeholder = placeholder[kind.value] || "";
  const apply = () => {
    const text = kind.value && arg.value ? `${kind.value}:${arg.value}` : "";
    const parsed = parseGroupSpec(text);
    arg.classList.toggle("invalid", !!(text && (!parsed || parsed.error)));
    arg.title = parsed?.error ? visible(parsed.error) : "";
    const next = parsed ? text : "";
    if (next === view.group) return;
    view.group = next;
    changed("group");
  };
  kind.addEventListener("change", () => {
    arg.hidden = !kind.value;
    arg.placeholder = placeholder[kind.value] || "";
    // a first argument that works: the run's folder, the key that differs first
    arg.value = kind.value === "path" ? "-1" : kind.value === "cfg" ? configKeys()[0] || "" : "";
    apply();
    if (kind.value) arg.focus();
  });
  arg.addEventListener("input", apply);
  arg.addEventListener("focus", () => {
    if (kind.value !== "cfg") return;
    $("group-keys").replaceChildren(...configKeys().map((k) => h("option", { value: k })));
  });
  for (const [id, key] of [["group-agg", "agg"], ["group-band", "band"]]) {
    const el = $(id);
    el.value = view[key];
    el.addEventListener("change", () => { view[key] = el.value; changed("group"); });
  }
  const members = $("group-members");
  members.checked = view.members;
  members.addEventListener("change", () => { view.members = members.checked; view.gopen = []; changed("group"); });
}

/** The group controls show what the rule made ({groups, alone}, compose.js): how many groups and
 *  runs alone; the line, band and runs controls only while there are groups. */
export function showGroups(view, { groups, alone }) {
  const opts = $("group-opts");
  const text = groups.size ? `${groups.size} group${groups.size === 1 ? "" : "s"}${alone.length ? `, ${alone.length} alone` : ""}` : "";
  if (opts.hidden !== !groups.size) opts.hidden = !groups.size;
  const out = $("group-count");
  if (out.textContent !== text) out.textContent = text;
  const members = $("group-members");
  if (members.checked !== view.members) members.checked = view.members;
}

let axesShown = "";
/** The x axis select offers the metrics of the selected runs (and keeps the one chosen). */
export function showAxes(view, metrics) {
  const m = view.xaxis.startsWith("m:") ? view.xaxis.slice(2) : null;
  const names = [...new Set([...metrics, ...(m != null ? [m] : [])])].sort();
  const sig = names.join("\u0000");
  if (sig === axesShown) return;
  axesShown = sig;
  $("xaxis-metrics").replaceChildren(...names.map((n) => h("option", { value: `m:${n}` }, visible(n))));
  $("xaxis").value = view.xaxis;
}
