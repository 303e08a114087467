// The straggler view: for each selected run of several ranks, a card over the charts with a row per
// rank (its latest step, how far it is behind the leading rank, its steps per second over its last
// logged steps, how long ago its last record was written) and the slowest rank marked. Steps and
// rates are the sidecar's, per stream of the run (docs/protocol.md: a run object's `streams`), sent
// again as the ranks move; the ages are counted here, from the time of each rank's latest point the
// page holds, against the clock: they grow while a rank is silent.

import { h, label, visible } from "./dom.js";
import { formatNumber } from "./scale.js";

/** A rank is no straggler for a rate this close to the fastest one's (the noise of a short window). */
const RATE_SLACK = 0.9;
/** Rows of a card at most: past it, those furthest behind and the leading rank (a job of 256 ranks
 *  is not a 256-row table over the charts). */
export const MAX_ROWS = 12;

const finite = (v) => typeof v === "number" && Number.isFinite(v);

/** The streams of a run object that are ranks ({rank, name, ...}), by rank; [] when fewer than two. */
export function rankStreams(info) {
  const out = [];
  for (const s of info?.streams || []) {
    const rank = Number.isInteger(s.rank) ? s.rank : /^rank(\d+)\./.test(s.name) ? Number(/^rank(\d+)\./.exec(s.name)[1]) : null;
    if (rank != null) out.push({ ...s, rank });
  }
  return out.length > 1 ? out.sort((a, b) => a.rank - b.rank) : [];
}

/**
 * The ranks of a run object as rows ({rank, name, step, lag, rate, age}: lag = the leading rank's
 * latest step minus this one's, age = now − its last record's time (latest: Map rank -> that time),
 * in seconds; null where unknown), by rank, and `slowest`: the index of the slowest row, or -1 when
 * the ranks keep pace. The slowest is the one furthest behind; among those as far behind, the
 * slowest rate, then the longest silent. Rows of a run with fewer than two ranks: none.
 */
export function paceRows(info, now, latest = new Map()) {
  const ranks = rankStreams(info);
  const lead = Math.max(-Infinity, ...ranks.filter((s) => finite(s.last_step)).map((s) => s.last_step));
  const rows = ranks.map((s) => ({
    rank: s.rank, name: s.name,
    step: finite(s.last_step) ? s.last_step : null,
    lag: finite(s.last_step) ? lead - s.last_step : null,
    rate: finite(s.rate) ? s.rate : null,
    age: finite(latest.get(s.rank)) ? Math.max(0, now - latest.get(s.rank)) : null,
  }));
  return { rows, slowest: slowestRow(rows) };
}

/** The index of the slowest of `rows` (see paceRows), or -1 when none lags: none behind by more
 *  than a step and than a second of the fastest rank's steps (the ranks are not read at the very
 *  same moment), none of a rate clearly below the fastest's. */
export function slowestRow(rows) {
  if (rows.length < 2) return -1;
  const fastest = Math.max(0, ...rows.map((r) => r.rate ?? 0));
  let best = 0;
  for (let i = 1; i < rows.length; i++) if (slower(rows[i], rows[best]) > 0) best = i;
  const r = rows[best];
  const behind = r.lag == null || r.lag > Math.max(1, fastest);
  const lagging = r.rate != null && fastest > 0 && r.rate < RATE_SLACK * fastest;
  return behind || lagging ? best : -1;
}

// behind first (a rank without a step is the furthest behind), then slower, then quieter
const slowness = (r) => [r.lag ?? Infinity, -(r.rate ?? -1), r.age ?? 0];

/** > 0 when row a is slower than row b, < 0 when faster, 0 when they keep the same pace. */
function slower(a, b) {
  const ka = slowness(a), kb = slowness(b);
  const k = ka.findIndex((v, j) => v !== kb[j]);
  return k < 0 ? 0 : ka[k] > kb[k] ? 1 : -1;
}

/** The indices of the rows a card shows, in rank order: all of them up to `max`, else the `max` − 1
 *  slowest and the fastest. */
export function shownRows(rows, max = MAX_ROWS) {
  const all = rows.map((_, i) => i);
  if (rows.length <= max) return all;
  const bySlowness = all.sort((i, j) => slower(rows[j], rows[i]) || i - j);
  return [...bySlowness.slice(0, max - 1), bySlowness[bySlowness.length - 1]].sort((i, j) => i - j);
}

/** Seconds as an age: "now", "12 s", "4 min", "2 h", "3 d". */
export function ageText(s) {
  if (s == null) return "–";
  if (s < 1) return "now";
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

const rateText = (r) => (r == null ? "–" : formatNumber(r));

/** The cards over the charts: one per selected run of several ranks. */
export class StragglerView {
  /**
   * host: the element the cards go in (hidden when there are none). onRanks(run): the card's
   * "ranks" box was clicked (show the run's ranks as lines, or as their band again).
   */
  constructor(host, { onRanks = () => {} } = {}) {
    this.host = host;
    this.onRanks = onRanks;
    this.sig = null;
    this.last = null;
    host.addEventListener("change", (e) => {
      const card = e.target.closest(".rank-card");
      if (card && e.target.matches("input.rank-lines")) this.onRanks(card.dataset.run);
    });
    // the ages grow while nothing comes: counted again every second while the cards are shown
    setInterval(() => { if (!host.hidden && host.offsetParent) this.tick(); }, 1000);
  }

  /**
   * The cards for `runs` (selected ids, in order), from infos (id -> run object), with each run's
   * label (labels: id -> label), colour (colorOf(id)) and ranks' latest times (latest: id -> Map
   * rank -> time), and whether it is shown as its ranks' lines (lines: Set of runs). now: Unix
   * seconds. The DOM is rebuilt only when what it says changes (an age counts whole seconds).
   */
  update({ runs, infos, labels = new Map(), colorOf = () => null, latest = new Map(), lines = new Set() }, now = Date.now() / 1000) {
    this.last = { runs, infos, labels, colorOf, latest, lines };
    const cards = [];
    for (const run of runs) {
      const { rows, slowest } = paceRows(infos.get(run), now, latest.get(run));
      if (rows.length) cards.push({ run, rows, slowest, label: labels.get(run) ?? run, color: colorOf(run), lines: lines.has(run) });
    }
    const sig = JSON.stringify(cards.map((c) => [c.run, c.label, c.color, c.lines, c.slowest,
      c.rows.map((r) => [r.rank, r.step, r.lag, rateText(r.rate), ageText(r.age)])]));
    if (sig === this.sig) return;
    this.sig = sig;
    this.host.replaceChildren(...cards.map(card));
    this.host.hidden = cards.length === 0;
  }

  /** The same cards, their ages counted again (called every second). */
  tick(now = Date.now() / 1000) {
    if (this.last) this.update(this.last, now);
  }
}

function card({ run, rows, slowest, label: text, color, lines }) {
  const shown = shownRows(rows);
  const slow = slowest >= 0 ? rows[slowest] : null;
  const said = slow ? `slowest: rank ${slow.rank}` : "ranks in step";
  const head = h("div", { class: "rank-head" },
    h("i", { class: "sw", style: color ? { background: color } : null }), label(text, "rank-run"),
    h("span", { class: "rank-count" }, `${rows.length} ranks`),
    h("span", { class: slow ? "rank-slowest" : "rank-even" }, said),
    h("label", { class: "rank-toggle", title: "Draw each rank's line (else: their mean, and min – max as a band)" },
      h("input", { type: "checkbox", class: "rank-lines", checked: lines }), " ranks"));
  const cells = (r) => [String(r.rank), r.step == null ? "–" : String(r.step), r.lag == null ? "–" : String(r.lag),
    rateText(r.rate), ageText(r.age)];
  const table = h("table", { class: "rank-table" },
    h("thead", null, h("tr", null, ["rank", "step", "behind", "steps/s", "last record"].map((t) => h("th", null, t)))),
    h("tbody", null, shown.map((i) => h("tr", { class: i === slowest ? "slowest" : null, dataset: { rank: String(rows[i].rank) },
      title: visible(rows[i].name) }, cells(rows[i]).map((t) => h("td", null, t))))));
  const more = rows.length - shown.length;
  return h("div", { class: "rank-card", dataset: { run } }, head, table,
    more ? h("div", { class: "rank-more" }, `${more} more ranks, between the leading one and these`) : null);
}
