// The ranks of a distributed run, drawn as one run. Each rank writes its own stream, and the sidecar
// names a rank's series after the run's metric with its rank (`loss@rank3`; rank 0's is `loss`):
// here those names fold into one chart per metric, where a run's ranks are drawn as their mean with
// a min–max band, aligned by x as groups of runs are (groups.js draws it), or, for the runs the user
// asks it for, as one line per rank in shades of the run's colour. The band's readout counts ranks
// and names the ranks at its ends (RanksBand).
//
// Non-features: a rank is not a member of a group of runs (a run in a group counts with its first
// rank that logs the metric).

import { StragglerView } from "./straggler.js";
import { GroupSeries } from "./groups.js";
import { lowerBound } from "./decimate.js";

/** A rank's metric name: the run's metric and its rank ("loss@rank3"); rank 0's is the metric's. */
const RANK = /@rank(\d+)$/;

/** {base, rank} of a series name: "loss@rank3" -> {base: "loss", rank: 3}; "loss" -> rank 0. */
export function splitRank(name) {
  const m = RANK.exec(name);
  return m && m.index > 0 ? { base: name.slice(0, m.index), rank: Number(m[1]) } : { base: name, rank: 0 };
}

/** The chart a series name belongs to: its metric without the rank. */
export const baseName = (name) => splitRank(name).base;

/** The series name of `base` logged by `rank`. */
export const rankName = (base, rank) => (rank === 0 ? base : `${base}@rank${rank}`);

/** A rank's series id in a chart, shown as its full name ("ddp//rank1"): never a run's (a run id is
 *  a path, which has no empty part). */
export const rankId = (run, rank) => `${run}//rank${rank}`;

/** The legend key of a run's ranks: a click on it shows them as lines, or as the band again (the
 *  page keeps it with the groups shown as their runs, view.gopen). */
export const ranksKey = (run) => `ranks of ${run}`;

/**
 * The ranks of each metric of a run, from its series names: Map base -> [[rank, name]] by rank.
 * Made again only when the run has new series (a delta only adds some) or others (a snapshot makes
 * every series anew, so its first one is another object).
 */
export class RankIndex {
  constructor() {
    this.runs = new Map(); // run -> {size, first, byBase}
  }

  /** The run's index, from its series (Map name -> series buffer). */
  of(run, series) {
    const size = series.size, first = series.values().next().value;
    const hit = this.runs.get(run);
    if (hit && hit.size === size && hit.first === first) return hit.byBase;
    const byBase = new Map();
    for (const name of series.keys()) {
      const { base, rank } = splitRank(name);
      if (!byBase.has(base)) byBase.set(base, []);
      byBase.get(base).push([rank, name]);
    }
    for (const list of byBase.values()) list.sort((a, b) => a[0] - b[0]);
    this.runs.set(run, { size, first, byBase });
    return byBase;
  }
}

/**
 * The page's runs of several ranks: which runs are (their run object lists several streams), the
 * ranks of a run's metric (for the composer, compose.js), the chart a series is drawn in, and the
 * straggler view over the charts (straggler.js). host: that view's element; infos: id -> run
 * object; runs: id -> RunData (state.js); onRanks(key): a card's "ranks" box asks for the run's
 * ranks as lines or as their band (its legend key, ranksKey).
 */
export class RankedRuns {
  constructor(host, { infos, runs, onRanks = () => {} }) {
    Object.assign(this, { infos, runs });
    this.index = new RankIndex();
    this.view = new StragglerView(host, { onRanks: (run) => onRanks(ranksKey(run)) });
  }

  ranked(run) {
    return (this.infos.get(run)?.streams?.length ?? 0) > 1;
  }

  /** [[rank, series name]] of a run's metric, by rank, or null (a run of one stream, no such metric). */
  ranksOf(run, metric) {
    return this.ranked(run) ? this.index.of(run, this.runs.get(run)?.series || new Map()).get(metric) ?? null : null;
  }

  /** The chart a run's series is drawn in: its metric's, for a rank's series. */
  chartName(run, name) {
    return this.ranked(run) ? baseName(name) : name;
  }

  /** The straggler cards of the selected `runs` (labels: id -> label; open: the legend keys shown
   *  as their runs or ranks; colorOf(id): a run's colour). */
  show(runs, labels, open, colorOf) {
    const latest = new Map(runs.filter((r) => this.ranked(r)).map((r) => [r, this.latest(r)]));
    this.view.update({ runs, infos: this.infos, labels, colorOf, latest, lines: new Set(runs.filter((r) => open.has(ranksKey(r)))) });
  }

  /** Map rank -> the time of the rank's latest point the page holds (of any of its metrics). */
  latest(run) {
    const series = this.runs.get(run)?.series || new Map();
    const out = new Map();
    for (const list of this.index.of(run, series).values()) {
      for (const [rank, name] of list) {
        const buf = series.get(name);
        const t = buf && buf.length ? buf.times[buf.length - 1] : NaN;
        if (t === t && !(out.get(rank) >= t)) out.set(rank, t);
      }
    }
    return out;
  }
}

/**
 * Shade k of n of a colour ("hsl(215 70% 42%)", as colors.js makes them): the same hue, lightness
 * spread over ±18 points around it, darkest first. Another colour is returned as it is.
 */
export function rankShade(color, k, n) {
  const m = /^hsl\((\S+) (\S+)% (\S+)%\)$/.exec(color);
  if (!m || n < 2) return color;
  const light = Math.min(82, Math.max(18, Number(m[3]) - 18 + (36 * k) / (n - 1)));
  return `hsl(${m[1]} ${m[2]}% ${Math.round(light * 10) / 10}%)`;
}

/** "4 ranks", "1 rank". */
export const ranksText = (n) => `${n} rank${n === 1 ? "" : "s"}`;

/** Ranks as a readout names them: "rank 3", "ranks 0, 2", past three "5 ranks". */
export function rankList(ranks) {
  if (ranks.length === 1) return `rank ${ranks[0]}`;
  return ranks.length <= 3 ? `ranks ${ranks.join(", ")}` : ranksText(ranks.length);
}

const finite = (v) => v === v && v !== Infinity && v !== -Infinity;

/** The value of a series ({xs, values}, sorted by x) at x, as a group's band counts it (groups.js):
 *  its point there, else the straight line between its neighbouring points; NaN outside its range. */
export function valueAt(xs, values, x) {
  const lo = lowerBound(xs, x);
  if (lo >= xs.length || (lo === 0 && xs[0] !== x)) return NaN;
  if (xs[lo] === x) return values[lo];
  return values[lo - 1] + (values[lo] - values[lo - 1]) * (x - xs[lo - 1]) / (xs[lo] - xs[lo - 1]);
}

/**
 * The ranks at the ends of a band at x: {lo: [ranks of the lowest value], hi: [ranks of the
 * highest]}, by rank, or null when no rank has a value there. ranks: [{rank, xs, values}].
 */
export function bandEnds(ranks, x) {
  let min = Infinity, max = -Infinity;
  const at = ranks.map((r) => valueAt(r.xs, r.values, x));
  for (const v of at) if (finite(v)) { if (v < min) min = v; if (v > max) max = v; }
  if (min === Infinity) return null;
  const pick = (w) => ranks.filter((_, k) => at[k] === w).map((r) => r.rank).sort((a, b) => a - b);
  return { lo: pick(min), hi: pick(max) };
}

/**
 * A run's ranks drawn as their mean and min–max band: a group's series (groups.js) that knows its
 * ranks, so that its readout counts ranks, not runs, and names the ranks at the band's ends.
 * Takes GroupSeries's arguments; members: the ranks' series, each with its `rank`.
 */
export class RanksBand extends GroupSeries {
  constructor(args) {
    super(args);
    const { members, xsOf } = args;
    this.ranks = members.map((m) => m.rank);
    // the ranks' x values, made when the readout first asks (on a time axis they are computed)
    this._ranked = () => (this._rs ||= members.map((m) => ({ rank: m.rank, xs: xsOf(m), values: m.values })));
  }

  /** The ranks at the band's ends at point i (see bandEnds). */
  endsAt(i) {
    return bandEnds(this._ranked(), this.xs[i]);
  }
}
