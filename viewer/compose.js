// What a chart draws of a metric: the selected runs' series, each alone or folded into its group's
// line and band (groups.js), on the chart's x axis (xaxis.js: the step, a time, or another metric
// paired by step). A group's runs are drawn in the group's colour when it is shown as its runs.
// A run of several ranks (ranks.js) is drawn as its ranks' mean and min–max band, the same series
// as a group's, or as one line per rank in shades of its colour.
// Work is left to the draw: a paired or aggregated series is made when a chart reads it (charts out
// of view never do), and kept until its data changes.

import { GroupSeries, AggregateCache, groupRuns, parseGroupSpec } from "./groups.js";
import { pairByStep, axisMetric, xValues } from "./xaxis.js";
import { Palette } from "./colors.js";
import { pathLabels, runLabels } from "./names.js";
import { RanksBand, rankId, rankName, ranksKey, rankShade } from "./ranks.js";

/** A run's series on a metric axis, paired when first read. */
class PairedSeries {
  constructor(s, x, cache, extra) {
    // the version names the x metric: a chart's caches of this series must not outlive an axis change
    Object.assign(this, { id: s.id, label: s.label, color: s.color, t0: s.t0, version: `${s.version}~${x.metric}~${x.version}` }, extra);
    const key = `${s.id}\u0000${s.metric}\u0000${x.metric}`;
    this._get = () => (this._p ||= cache.get(key, this.version, () => pairByStep(s, x)));
  }
  get steps() { return this._get().steps; }
  get values() { return this._get().values; }
  get times() { return this._get().times; }
  get xs() { return this._get().xs; }
}

/** A group's series id: never a run's (run ids are paths, which hold no NUL). */
export const groupId = (key) => `\u0000group\u0000${key}`;

export class SeriesComposer {
  constructor() {
    this.aggregates = new AggregateCache(512);
    this.pairs = new AggregateCache(2048);
    this.palette = new Palette(); // the groups' colours
    this.grouping = { key: null, spec: null, groups: new Map(), alone: [] };
    this.versions = new Map(); // metric and group -> {n, what it was made of}
  }

  /** Put the selected runs in groups, again only when the runs, the rule, the label mode or a
   *  config changed. configs: id -> flat config; configVersion: changes with any of them. */
  regroup(runs, rule, configs, configVersion, labelMode = "auto") {
    const key = `${rule}\u0001${labelMode}\u0001${configVersion}\u0001${runs.join("\u0000")}`;
    if (key === this.grouping.key) return this.grouping;
    const spec = parseGroupSpec(rule);
    const { groups, alone } = spec ? groupRuns(runs, spec, configs) : { groups: new Map(), alone: [...runs] };
    this.palette.select([...groups.keys()]);
    // folders and regex matches labelled by what differs between them ("lr_0.1" for "sweep/lr_0.1")
    const labels = spec?.kind === "cfg" ? null : pathLabels([...groups.keys()]);
    // a group's runs, shown in it, labelled by what differs between them ("seed=1", not "lr=1 seed=1")
    const members = new Map();
    for (const ids of groups.values()) for (const [id, l] of runLabels(ids, configs, labelMode)) members.set(id, l);
    this.grouping = { key, spec, groups, alone, labels, members };
    return this.grouping;
  }

  /**
   * A short version of a group's series: bumped when any member's series or the options changed
   * (a version made of every member's would be a long string made for every group at every sync,
   * then a key of each of the chart's caches).
   */
  _version(key, members, options) {
    let v = this.versions.get(key);
    const same = v && v.options === options && v.members.length === members.length &&
      members.every((m, i) => v.members[i] === m.id && v.parts[i] === m.version && v.t0s[i] === m.t0);
    if (!same) {
      v = { n: (v?.n ?? 0) + 1, options, members: members.map((m) => m.id), parts: members.map((m) => m.version), t0s: members.map((m) => m.t0) };
      this.versions.set(key, v);
    }
    return `g${v.n}|${options}`;
  }

  /** The colour of group `key`. */
  color(key, dark) {
    return this.palette.color(key, dark);
  }

  /**
   * The series a chart of `metric` draws on `axis`. runOf(run, metric): a run's series of a metric
   * as drawn (cut at the time-travel step, zoom detail...) or null. opts: {agg, band, members
   * (every group as its runs), open (Set of groups shown as their runs, and of runs' ranks keys
   * shown as one line per rank), dark, ranks (ranks.js's RankedRuns: ranksOf(run, metric) gives
   * [[rank, series name]] by rank, or null)}.
   */
  seriesOf(metric, axis, runOf, { agg, band, members, open, dark, ranks = null }) {
    const xm = axisMetric(axis);
    // name: the series of the metric to draw (a rank's); xName: the x metric it is paired with
    const one = (run, extra, name = metric, xName = xm) => {
      const s = runOf(run, name);
      if (!s) return null;
      if (!xm) return extra ? { ...s, ...extra } : s;
      const x = runOf(run, xName) || runOf(run, xm);
      // no x metric: nothing to place
      return x ? new PairedSeries({ ...s, metric: name }, { ...x, metric: xName }, this.pairs, extra) : null;
    };
    const xsOf = (s) => xValues(s, axis);
    // a run of several ranks in a group counts with its first rank that logs the metric
    const first = (id) => (ranks && ranks.ranksOf(id, metric)?.[0][1]) || metric;
    const out = [];
    for (const [key, ids] of this.grouping.groups) {
      const color = this.palette.color(key, dark);
      if (members || open.has(key)) {
        const memberOf = this.grouping.labels?.get(key) ?? key;
        for (const id of ids) {
          const s = one(id, { color, member: key, memberOf, label: this.grouping.members.get(id) }, first(id));
          if (s) out.push(s);
        }
        continue;
      }
      const ms = ids.map((id) => one(id, null, first(id))).filter(Boolean);
      if (!ms.length) continue;
      const cacheKey = `${metric}\u0000${key}`;
      const version = this._version(cacheKey, ms, `${axis}|${agg}|${band}`);
      out.push(new GroupSeries({ id: groupId(key), group: key, label: this.grouping.labels?.get(key) ?? key, color, members: ms, xsOf, version,
        key: cacheKey, cache: this.aggregates, opts: { agg, band }, stepAxis: axis === "step" }));
    }
    for (const id of this.grouping.alone) {
      const of = ranks ? ranks.ranksOf(id, metric) : null;
      if (of && of.length > 1) { this._ranks(out, id, metric, axis, of, one, open.has(ranksKey(id))); continue; }
      const s = one(id, null, first(id)); // a metric one rank logs: that rank's
      if (s) out.push(s);
    }
    return out;
  }

  /** A run's ranks of a metric: their mean and min–max band as one series, or each rank's line. */
  _ranks(out, run, metric, axis, ranks, one, lines) {
    const key = ranksKey(run);
    const xm = axisMetric(axis);
    const ms = [];
    for (const [rank, name] of ranks) {
      const s = one(run, { id: rankId(run, rank), rank }, name, xm && rankName(xm, rank));
      if (s) ms.push(s);
    }
    if (!ms.length) return;
    const { color, label } = ms[0];
    if (lines) {
      ms.forEach((s, k) => { s.color = rankShade(color, k, ms.length); s.member = key; s.memberOf = label ?? run; s.label = `rank ${s.rank}`; });
      out.push(...ms);
      return;
    }
    const cacheKey = `${metric}\u0000${key}`;
    const opts = { agg: "mean", band: "minmax" };
    out.push(new RanksBand({ id: groupId(key), group: key, label: label ?? run, color, members: ms, xsOf: (s) => xValues(s, axis),
      version: this._version(cacheKey, ms, `${axis}|ranks`), key: cacheKey, cache: this.aggregates, opts, stepAxis: axis === "step" }));
  }
}
