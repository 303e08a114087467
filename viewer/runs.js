// The run list: experiment folders as a tree with live status, selection and a regex filter.
// Rendered at most once per animation frame, and virtual: rows have one height and only those in
// (or near) the visible part of the list are in the DOM, so ten thousand runs cost what fifty do.
// When the rows shown are the same as before, only those whose content changed are replaced.

import { buildTree, runColor } from "./state.js";

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
    this.rows = []; // [key, html] of every row of the tree as filtered
    this.shown = []; // [key, html] of the rows in the DOM
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
    const tree = buildTree(ids);
    const rows = [];
    const dark = this.dark();
    const walk = (node, depth) => {
      for (const child of node.children.values()) {
        if (rows.length >= MAX_ROWS) return;
        const pad = `padding-left:${4 + depth * 14}px`;
        if (child.run && child.children.size === 0) {
          rows.push(["r" + child.run, this._runRow(child.run, child.name, pad, dark)]);
        } else {
          const open = !this.collapsed.has(child.path);
          rows.push(["f" + child.path, `<div class="run-row folder" data-folder="${esc(child.path)}" style="${pad}">${open ? "▾" : "▸"} ${esc(child.name)}</div>`]);
          if (child.run) rows.push(["r" + child.run, this._runRow(child.run, "(this folder)", `padding-left:${4 + (depth + 1) * 14}px`, dark)]);
          if (open) walk(child, depth + 1);
        }
      }
    };
    walk(tree, 0);
    if (rows.length >= MAX_ROWS) rows.push(["more", `<div class="run-row meta">… more runs: narrow the filter</div>`]);
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

  /** Put `rows` ([key, html]) in the DOM, replacing only what changed when the keys are the same. */
  _patch(rows) {
    this.renders++;
    const old = this.shown;
    const kids = this.list.children;
    if (old.length === rows.length && kids.length === rows.length && rows.every((r, i) => r[0] === old[i][0])) {
      for (let i = 0; i < rows.length; i++) {
        if (rows[i][1] !== old[i][1]) kids[i].outerHTML = rows[i][1];
      }
    } else {
      this.list.innerHTML = rows.map((r) => r[1]).join("");
    }
    this.shown = rows;
  }

  _runRow(id, label, pad, dark) {
    const info = this.infos.get(id) || {};
    const sel = this.selected.has(id);
    const skipped = info.skipped && info.skipped.total ? `<span class="skipped" title="bad lines skipped">⚠ ${info.skipped.total}</span>` : "";
    const status = info.status || "running";
    const step = info.last_step != null ? `step ${info.last_step}` : "";
    return `<div class="run-row${sel ? " selected" : ""}" data-run="${esc(id)}" style="${pad}" title="${esc(id)}${info.reason ? ": " + esc(info.reason) : ""}">` +
      `<input type="checkbox" tabindex="-1" ${sel ? "checked" : ""}><span class="sw" style="background:${runColor(id, dark)}"></span>` +
      `<span class="name">${esc(label)}</span><span class="badge ${esc(status)}">${esc(status)}</span>${skipped}` +
      `<span class="meta">${esc(step)} · ${esc(timeAgo(info.updated))}</span></div>`;
  }
}

export function esc(t) {
  return String(t ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
