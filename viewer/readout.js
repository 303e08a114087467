// What a chart card says in words: its legend (each run's colour and label, the full name on hover),
// the data table at the pointer (floating over the chart) and the one pinned by a click (under the
// chart, until closed). A row per run: label, smoothed and raw value, the step of the run's point
// nearest to the position (a real step, never a fractional x), its time since the run started and
// its wall time. A group of runs (groups.js) has a row of its own: its line's value, its band
// (min – max, or ± the standard deviation) and how many of its runs have a value there (n); it has
// no step or time of its own off a step axis. Its legend entry says how many runs it holds and,
// clicked, shows its runs instead (and back). A run's ranks drawn as their band (ranks.js) read as
// a group does, counted in ranks, with the ranks at the band's low and high ends named. Rows come
// from the chart's readout; DOM is rebuilt only when what it says changes.

import { h, label, visible } from "./dom.js";
import { formatValue, formatElapsed, formatWall } from "./scale.js";
import { axisMetric } from "./xaxis.js";
import { rankList, ranksText } from "./ranks.js";

const COLUMNS = [
  ["smoothed", "smoothed"], ["value", "value"], ["band", "band"], ["n", "n"], ["step", "step"], ["relative", "relative"],
  ["wall", "wall time"],
];
const OPTIONAL = new Set(["band", "n", "step", "relative", "wall"]);

/** The heading of a table at x: "step 120", the time it stands for, or "epoch 3.5" on a metric axis. */
export function positionText(x, mode) {
  if (mode === "relative") return formatElapsed(x);
  if (mode === "wall") return formatWall(x);
  const metric = axisMetric(mode);
  return metric ? `${visible(metric)} ${formatValue(x)}` : `step ${x}`;
}

/** A group's band at point i as text: "lo – hi", or "± sd" around its line; a run's ranks' band
 *  names the ranks at its ends: "1.2 (rank 0) – 4.2 (rank 3)". */
function bandText(s, i) {
  const b = s.band;
  if (!b) return "";
  if (s.bandKind === "std") return `± ${formatValue((b.hi[i] - b.lo[i]) / 2)}`;
  const ends = s.endsAt ? s.endsAt(i) : null;
  const who = (side) => (ends ? ` (${rankList(ends[side])})` : "");
  return `${formatValue(b.lo[i])}${who("lo")} – ${formatValue(b.hi[i])}${who("hi")}`;
}

/**
 * The cells of a readout row ({s, i, smoothed}) as text. s: a chart series ({steps, values, times,
 * t0}, a group's with band, count and size); relative time counts from the run's start (t0), else
 * from its first point.
 */
export function rowCells({ s, i, smoothed }) {
  const t = s.times ? s.times[i] : NaN;
  const t0 = Number.isFinite(s.t0) ? s.t0 : s.times?.[0];
  const group = s.group != null;
  return { smoothed: formatValue(smoothed), value: formatValue(s.values[i]), band: group ? bandText(s, i) : "",
    n: group ? `${s.count[i]}/${s.size}` : "", step: s.steps ? String(s.steps[i]) : "–",
    relative: formatElapsed(t - t0), wall: formatWall(t) };
}

/** "8 runs", "1 run". */
export const runsText = (n) => `${n} run${n === 1 ? "" : "s"}`;

/** What a band holds, counted: "4 ranks" for a run's ranks (ranks.js), else "8 runs". */
export const sizeText = (s) => (s.ranks ? ranksText(s.size) : runsText(s.size));

/** Highest smoothed value first (the line on top is the row on top); NaN last. */
const rank = (v) => (Number.isNaN(v) ? -Infinity : v);
const byValue = (a, b) => rank(b.smoothed) - rank(a.smoothed) || (a.s.id < b.s.id ? -1 : 1);

/** A run's name cell: its label, then its full id when that says more (a group's: how many runs,
 *  or ranks). */
function runCell(s) {
  const group = s.group != null;
  return h("td", { class: "run", title: group ? visible(s.group) : visible(s.id) },
    h("i", { class: "sw", style: { background: s.color } }), label(s.label ?? s.id, "lbl"),
    group ? h("small", { class: "full" }, sizeText(s))
      : s.label != null && s.label !== s.id ? h("small", { class: "full" }, visible(s.id)) : null);
}

const rowData = (s) => (s.group != null ? { group: s.group } : { run: s.id });

/**
 * The table, and the date of its wall times when they all fall on one day (their cells then show
 * the time of day only, the date once above them: the table stays narrow enough to float).
 */
function table(rows, smoothing) {
  const cells = [...rows].sort(byValue).map((r) => [r, rowCells(r)]);
  // a column no row has anything in goes (a group's step off a step axis, times a log lacks)
  const said = (key) => cells.some(([, c]) => c[key] !== "" && c[key] !== "–");
  const cols = COLUMNS.filter(([key]) => (smoothing || key !== "smoothed") && (said(key) || !OPTIONAL.has(key)));
  const days = new Set(cells.map(([, c]) => c.wall.slice(0, 10)));
  const day = days.size === 1 ? [...days][0] : "";
  if (day) for (const [, c] of cells) c.wall = c.wall.slice(11);
  return [day, h("table", { class: "readout" },
    h("thead", null, h("tr", null, h("th", null, "run"), cols.map(([key, name]) => h("th", { class: key }, name)))),
    h("tbody", null, cells.map(([r, c]) => h("tr", { class: "tt-row", dataset: rowData(r.s) }, runCell(r.s),
      cols.map(([key]) => h("td", { class: key }, c[key]))))))];
}

/** What a readout shows, as a string: equal strings, equal tables. Made of the values read, not of
 *  the data's version: a table pinned at a step of a live run is not rebuilt as the run grows. */
const signature = (x, rows, chart) => `${x}|${chart.view.xaxis}|${chart.view.smoothing > 0}|` +
  rows.map(({ s, i, smoothed }) => [s.id, s.label, s.color, s.steps?.[i], s.values[i], smoothed, s.times?.[i], s.t0,
    s.band?.lo[i], s.band?.hi[i], s.count?.[i]].join("\u0000")).join("\u0001");

/** A legend entry: a run, a group (with how many runs or ranks, a click shows them), or the head of
 *  a group shown as its runs (a click shows the group again). */
function legendItem(s) {
  const sw = h("i", { class: "sw", style: { background: s.color } });
  if (s.group != null) {
    const title = s.ranks ? `${visible(s.label)}: show each rank's line` : `${visible(s.group)}: show its runs`;
    return h("span", { class: "lg-item lg-group", dataset: { run: s.id, group: s.group }, title },
      "▸ ", sw, label(s.label), h("small", null, ` ${sizeText(s)}`));
  }
  return h("span", { class: "lg-item", dataset: { run: s.id }, title: visible(s.id) }, sw, label(s.label ?? s.id));
}

function legendItems(series) {
  const out = [];
  let head = null;
  for (const s of series) {
    if (s.member != null && s.member !== head) {
      const title = s.rank != null ? `${visible(s.memberOf)}: show its ranks' band` : `${visible(s.member)}: show the group`;
      out.push(h("span", { class: "lg-item lg-group open", dataset: { group: s.member }, title },
        "▾ ", h("i", { class: "sw", style: { background: s.color } }), label(s.memberOf), h("small", null, ":")));
    }
    head = s.member ?? null;
    out.push(legendItem(s));
  }
  return out;
}

export class Readout {
  /** onUnpin(): the pinned table's close button; onHighlight(id|null): the pointer on a legend
   *  entry; onGroup(key): a group's legend entry was clicked. */
  constructor({ onUnpin = () => {}, onHighlight = () => {}, onGroup = () => {} } = {}) {
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
    this.legend.addEventListener("click", (e) => {
      const item = e.target.closest(".lg-group");
      if (item) onGroup(item.dataset.group);
    });
  }

  /** One entry per series ({id, label, color}; a group's: group, size; a group's run's: member,
   *  memberOf), in their order. */
  setLegend(series) {
    const sig = series.map((s) => [s.id, s.label, s.color, s.group, s.size, !!s.ranks, s.member, s.memberOf].join("\u0000")).join("\u0001");
    if (sig === this.sig.legend) return;
    this.sig.legend = sig;
    this.legend.replaceChildren(...legendItems(series));
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
