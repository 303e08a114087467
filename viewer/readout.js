// What a chart card says in words: its legend (each run's colour and label, the full name on hover),
// the data table at the pointer (floating over the chart) and the one pinned by a click (under the
// chart, until closed). A row per run: label, smoothed and raw value, the step of the run's point
// nearest to the position (a real step, never a fractional x), its time since the run started and
// its wall time. Rows come from the chart's readout; DOM is rebuilt only when what it says changes.

import { h, label, visible } from "./dom.js";
import { formatValue, formatElapsed, formatWall } from "./scale.js";

const COLUMNS = [
  ["smoothed", "smoothed"], ["value", "value"], ["step", "step"], ["relative", "relative"], ["wall", "wall time"],
];

/** The heading of a table at x: "step 120", or the time it stands for. */
export function positionText(x, mode) {
  if (mode === "relative") return formatElapsed(x);
  if (mode === "wall") return formatWall(x);
  return `step ${x}`;
}

/**
 * The cells of a readout row ({s, i, smoothed}) as text. s: a chart series ({steps, values, times,
 * t0}); relative time counts from the run's start (t0), else from its first point.
 */
export function rowCells({ s, i, smoothed }) {
  const t = s.times[i];
  const t0 = Number.isFinite(s.t0) ? s.t0 : s.times[0];
  return { smoothed: formatValue(smoothed), value: formatValue(s.values[i]), step: String(s.steps[i]),
    relative: formatElapsed(t - t0), wall: formatWall(t) };
}

/** Highest smoothed value first (the line on top is the row on top); NaN last. */
const rank = (v) => (Number.isNaN(v) ? -Infinity : v);
const byValue = (a, b) => rank(b.smoothed) - rank(a.smoothed) || (a.s.id < b.s.id ? -1 : 1);

/** A run's name cell: its label, then its full id when that says more. */
function runCell(s) {
  return h("td", { class: "run", title: visible(s.id) },
    h("i", { class: "sw", style: { background: s.color } }), label(s.label ?? s.id, "lbl"),
    s.label != null && s.label !== s.id ? h("small", { class: "full" }, visible(s.id)) : null);
}

/**
 * The table, and the date of its wall times when they all fall on one day (their cells then show
 * the time of day only, the date once above them: the table stays narrow enough to float).
 */
function table(rows, smoothing) {
  const cols = smoothing ? COLUMNS : COLUMNS.slice(1);
  const cells = [...rows].sort(byValue).map((r) => [r, rowCells(r)]);
  const days = new Set(cells.map(([, c]) => c.wall.slice(0, 10)));
  const day = days.size === 1 ? [...days][0] : "";
  if (day) for (const [, c] of cells) c.wall = c.wall.slice(11);
  return [day, h("table", { class: "readout" },
    h("thead", null, h("tr", null, h("th", null, "run"), cols.map(([key, name]) => h("th", { class: key }, name)))),
    h("tbody", null, cells.map(([r, c]) => h("tr", { class: "tt-row", dataset: { run: r.s.id } }, runCell(r.s),
      cols.map(([key]) => h("td", { class: key }, c[key]))))))];
}

/** What a readout shows, as a string: equal strings, equal tables. Made of the values read, not of
 *  the data's version: a table pinned at a step of a live run is not rebuilt as the run grows. */
const signature = (x, rows, chart) => `${x}|${chart.view.xaxis}|${chart.view.smoothing > 0}|` +
  rows.map(({ s, i, smoothed }) => [s.id, s.label, s.color, s.steps[i], s.values[i], smoothed, s.times[i], s.t0].join("\u0000"))
    .join("\u0001");

export class Readout {
  /** onUnpin(): the pinned table's close button; onHighlight(id|null): the pointer on a legend entry. */
  constructor({ onUnpin = () => {}, onHighlight = () => {} } = {}) {
    this.tooltip = h("div", { class: "tooltip", hidden: true }); // for the caller to put over the chart
    this.legend = h("div", { class: "legend" });
    this.pinned = h("div", { class: "pinned-table", hidden: true });
    this.sig = { legend: "", hover: "", pin: "", side: "" };
    this.onUnpin = onUnpin;
    this.legend.addEventListener("mouseover", (e) => {
      const item = e.target.closest(".lg-item");
      onHighlight(item ? item.dataset.run : null);
    });
    this.legend.addEventListener("mouseleave", () => onHighlight(null));
  }

  /** One entry per series ({id, label, color}), in their order. */
  setLegend(series) {
    const sig = series.map((s) => `${s.id}\u0000${s.label}\u0000${s.color}`).join("\u0001");
    if (sig === this.sig.legend) return;
    this.sig.legend = sig;
    this.legend.replaceChildren(...series.map((s) => h("span", { class: "lg-item", dataset: { run: s.id }, title: visible(s.id) },
      h("i", { class: "sw", style: { background: s.color } }), label(s.label ?? s.id))));
  }

  /** The chart's readout ({hover, pin}, see Chart): the floating table and the pinned one. */
  show(chart, { hover, pin }) {
    this._fill(this.tooltip, "hover", hover, chart, null);
    this._fill(this.pinned, "pin", pin, chart, () => this.onUnpin());
    if (hover) {
      // on the side away from the pointer, so that it never hides the values read
      const side = chart.sx.px(hover.x) > chart.size.w / 2 ? "left" : "right";
      if (side !== this.sig.side) {
        this.sig.side = side;
        this.tooltip.classList.toggle("at-left", side === "left");
      }
    }
  }

  _fill(el, key, data, chart, close) {
    if (!data || !data.rows.length) {
      this.sig[key] = "";
      if (!el.hidden) el.hidden = true;
      return;
    }
    const sig = signature(data.x, data.rows, chart);
    if (sig !== this.sig[key]) {
      this.sig[key] = sig;
      const [day, rows] = table(data.rows, chart.view.smoothing > 0);
      const mode = chart.view.xaxis;
      el.replaceChildren(
        h("div", { class: "tt-head" }, h("span", { class: "tt-x" }, positionText(data.x, mode)),
          h("span", { class: "tt-day" }, mode === "wall" ? "" : day), // a wall-time heading has its day
          close ? h("button", { class: "unpin", title: "Unpin this table", onclick: close }, "×") : null),
        rows);
    }
    if (el.hidden) el.hidden = false;
  }
}
