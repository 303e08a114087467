// The run list: experiment folders as a tree with live status, selection and a regex filter. A
// folder holding one thing only is shown with it as one row ("lr_0.1/seed0", not "seed0" under
// "lr_0.1"): in a sweep of one run per folder, rows would all have the same name.
// Rendered at most once per animation frame, and virtual: rows have one height and only those in
// (or near) the visible part of the list are in the DOM, so ten thousand runs cost what fifty do.
// When the rows shown are the same as before, only those whose content changed are replaced.

import { buildTree, compactTree, runColor } from "./state.js";
import { h, label, visible } from "./dom.js";
import { badgeOf } from "./alerts.js";
import { hasIdleGpu } from "./gpu.js";

const MAX_ROWS = 200000;
/** Height of every row in CSS pixels (style.css gives .run-row this height). */
export const ROW_HEIGHT = 22;
/** Rows kept in the DOM above and below the visible ones. */
const OVERSCAN = 20;

export function timeAgo(t, now = Date.now() / 1000) {
  if (!Number.isFinite(t)) return "";
  const s = Math.max(0, now - t);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** The formats of a run's files, from its `streams`: "jsonl" or "tfevents ×2, csv" (text). */
export function streamFormats(info) {
  const n = new Map();
  for (const s of Array.isArray(info?.streams) ? info.streams : []) {
    const f = visible(s?.format || "unknown");
    n.set(f, (n.get(f) || 0) + 1);
  }
  return [...n].map(([f, k]) => (k > 1 ? `${f} ×${k}` : f)).join(", ");
}

export class RunList {
  /** onSelect(Set of selected ids) is called when the selection changes. */
  constructor(el, { onSelect, dark = () => false }) {
    this.el = el;
    this.onSelect = onSelect;
    this.dark = dark;
    this.infos = new Map();
    this.selected = new Set();
    this.collapsed = new Set();
    this.filter = null;
    this.frame = 0;
    this.rows = []; // every row of the tree as filtered ({key, sig, make})
    this.shown = []; // the rows in the DOM
    this.renders = 0;
    this.sizer = document.createElement("div");
    this.sizer.className = "runs-sizer";
    this.list = document.createElement("div");
    this.list.className = "runs-list";
    this.sizer.appendChild(this.list);
    el.replaceChildren(this.sizer);
    this.scrollFrame = 0;
    el.addEventListener("scroll", () => {
      if (!this.scrollFrame) this.scrollFrame = requestAnimationFrame(() => { this.scrollFrame = 0; this._paint(); });
    });
    el.addEventListener("click", (e) => {
      const row = e.target.closest(".run-row");
      if (!row) return;
      if (row.dataset.folder) {
        const p = row.dataset.folder;
        if (this.collapsed.has(p)) this.collapsed.delete(p); else this.collapsed.add(p);
        this.render();
        return;
      }
      const id = row.dataset.run;
      if (this.selected.has(id)) this.selected.delete(id); else this.selected.add(id);
      this.render();
      this.onSelect(new Set(this.selected));
    });
  }

  update(runs, removed = [], full = false) {
    if (full) this.infos.clear();
    for (const r of runs) this.infos.set(r.id, r);
    for (const id of removed) this.infos.delete(id);
    this.render();
  }

  setFilter(text) {
    try {
      this.filter = text ? new RegExp(text, "i") : null;
    } catch {
      this.filter = null; // an unfinished regex while typing: show everything
    }
    this.render();
  }

  visibleIds() {
    return [...this.infos.keys()].filter((id) => !this.filter || this.filter.test(id)).sort();
  }

  setSelected(ids) {
    this.selected = new Set(ids);
    this.render();
  }

  render() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this._render(); });
  }

  _render() {
    const ids = this.visibleIds();
    const tree = compactTree(buildTree(ids));
    const rows = [];
    const dark = this.dark();
    const walk = (node, depth) => {
      for (const child of node.children.values()) {
        if (rows.length >= MAX_ROWS) return;
        if (child.run && child.children.size === 0) {
          rows.push(this._runRow(child.run, child.name, depth, dark));
        } else {
          rows.push(this._folderRow(child, depth));
          if (child.run) rows.push(this._runRow(child.run, "(this folder)", depth + 1, dark, false));
          if (!this.collapsed.has(child.path)) walk(child, depth + 1);
        }
      }
    };
    walk(tree, 0);
    if (rows.length >= MAX_ROWS) {
      rows.push({ key: "more", sig: "", make: () => h("div", { class: "run-row meta" }, "… more runs: narrow the filter") });
    }
    this.rows = rows;
    this._paint();
    const count = document.getElementById("run-count");
    if (count) count.textContent = `${this.selected.size} / ${this.infos.size} runs`;
  }

  /** Put the rows in (or near) the visible part of the list in the DOM. */
  _paint() {
    const rows = this.rows;
    const view = this.el.clientHeight || 800;
    const first = Math.max(0, Math.floor(this.el.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(rows.length, Math.ceil((this.el.scrollTop + view) / ROW_HEIGHT) + OVERSCAN);
    this.sizer.style.height = `${rows.length * ROW_HEIGHT}px`;
    this.list.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
    this._patch(rows.slice(first, last));
  }

  /** Put `rows` in the DOM, rebuilding only those whose content changed when the keys are the same. */
  _patch(rows) {
    this.renders++;
    const old = this.shown;
    const kids = this.list.children;
    if (old.length === rows.length && kids.length === rows.length && rows.every((r, i) => r.key === old[i].key)) {
      for (let i = 0; i < rows.length; i++) {
        if (rows[i].sig !== old[i].sig) kids[i].replaceWith(rows[i].make());
      }
    } else {
      this.list.replaceChildren(...rows.map((r) => r.make()));
    }
    this.shown = rows;
  }

  /**
   * A row: `key` says which row it is, `sig` what it shows (rows whose sig is unchanged are kept in
   * the DOM), `make()` builds its element (only for the rows in view).
   */
  _folderRow(node, depth) {
    const open = !this.collapsed.has(node.path);
    return {
      key: "f" + node.path,
      sig: `${open}`,
      make: () => h("div", { class: "run-row folder", dataset: { folder: node.path }, style: indent(depth) },
        open ? "▾ " : "▸ ", label(node.name, "name")),
    };
  }

  _runRow(id, name, depth, dark, fromLogs = true) {
    const info = this.infos.get(id) || {};
    const sel = this.selected.has(id);
    const skipped = info.skipped && info.skipped.total ? info.skipped.total : 0;
    const status = STATUSES.has(info.status) ? info.status : "running";
    const meta = `${info.last_step != null ? `step ${info.last_step}` : ""} · ${timeAgo(info.updated)}`;
    const formats = streamFormats(info);
    const title = [visible(id), info.reason != null && `: ${visible(info.reason)}`, info.host && ` (${visible(info.host)})`,
      formats && `\nfiles: ${formats}`].filter(Boolean).join("");
    const color = runColor(id, dark);
    // the files that stopped growing while the run goes on without them: a node hung or lost
    const stalled = (Array.isArray(info.streams) ? info.streams : []).filter((s) => s && s.stalled).map((s) => visible(s.name));
    const stalledTitle = stalled.length ? `no new records from ${stalled.join(", ")} while the run goes on` : "";
    const alerts = badgeOf(info.alerts); // the run's active alerts: how many, the most urgent level's colour
    const idle = hasIdleGpu({ ...info, id }); // a GPU of this running run has done nothing for a while
    return {
      key: "r" + id,
      sig: JSON.stringify([name, depth, sel, status, skipped, meta, title, color, stalledTitle, alerts, idle]),
      make: () => h("div", { class: sel ? "run-row selected" : "run-row", dataset: { run: id }, style: indent(depth), title },
        h("input", { type: "checkbox", tabindex: "-1", checked: sel }),
        h("span", { class: "sw", style: { background: color } }),
        fromLogs ? label(name, "name") : h("span", { class: "name" }, name),
        h("span", { class: `badge ${status}` }, status),
        stalledTitle ? h("span", { class: "badge stalled node-stalled", title: stalledTitle }, `⏸ ${stalled.length}`) : null,
        skipped ? h("span", { class: "skipped", title: "bad lines skipped" }, `⚠ ${skipped}`) : null,
        alerts ? h("span", { class: `alert-badge ${alerts.level}`, title: alerts.title }, `▲ ${alerts.n}`) : null,
        idle ? h("span", { class: "badge gpu-idle", title: "a GPU this run uses has been idle (see the GPUs tab)" }, "GPU idle") : null,
        h("span", { class: "meta" }, meta)),
    };
  }
}

const STATUSES = new Set(["running", "finished", "failed", "stalled", "gone"]);

const indent = (depth) => ({ paddingLeft: `${4 + depth * 14}px` });
