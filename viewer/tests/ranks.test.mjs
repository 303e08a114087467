import { test } from "node:test";
import assert from "node:assert/strict";
import { splitRank, baseName, rankName, RankIndex, rankShade, ranksKey, ranksText, rankList, valueAt, bandEnds } from "../ranks.js";
import { paceRows, slowestRow, shownRows, ageText, rankStreams } from "../straggler.js";
import { SeriesComposer } from "../compose.js";

const f64 = (a) => Float64Array.from(a);

test("a rank's series name folds into its metric's", () => {
  assert.deepEqual(splitRank("loss@rank3"), { base: "loss", rank: 3 });
  assert.deepEqual(splitRank("train/loss"), { base: "train/loss", rank: 0 });
  assert.deepEqual(splitRank("@rank2"), { base: "@rank2", rank: 0 }); // no metric before it
  assert.deepEqual(splitRank("a@rank1x"), { base: "a@rank1x", rank: 0 });
  assert.equal(baseName("eval/acc@rank12"), "eval/acc");
  assert.equal(rankName("loss", 0), "loss");
  assert.equal(rankName("loss", 5), "loss@rank5");
});

test("a run's ranks per metric, made again when new series come or others replace them", () => {
  const idx = new RankIndex();
  const series = new Map(["loss@rank2", "loss", "lr", "loss@rank10", "loss@rank1"].map((n) => [n, {}]));
  const got = idx.of("r", series);
  assert.deepEqual(got.get("loss"), [[0, "loss"], [1, "loss@rank1"], [2, "loss@rank2"], [10, "loss@rank10"]]);
  assert.deepEqual(got.get("lr"), [[0, "lr"]]);
  assert.equal(idx.of("r", series), got); // nothing new: the same index
  series.set("acc@rank1", {});
  assert.deepEqual(idx.of("r", series).get("acc"), [[1, "acc@rank1"]]);
  // a snapshot: the same Map, as many series, others
  series.clear();
  for (const n of ["a", "b", "c", "d", "e", "f"]) series.set(n, {});
  assert.deepEqual([...idx.of("r", series).keys()], ["a", "b", "c", "d", "e", "f"]);
});

test("each rank a shade of its run's colour, darkest first", () => {
  const shades = [0, 1, 2, 3].map((k) => rankShade("hsl(215 70% 42%)", k, 4));
  assert.deepEqual(shades, ["hsl(215 70% 24%)", "hsl(215 70% 36%)", "hsl(215 70% 48%)", "hsl(215 70% 60%)"]);
  assert.equal(new Set(shades).size, 4);
  assert.equal(rankShade("hsl(25 70% 80%)", 3, 4), "hsl(25 70% 82%)"); // kept readable
  assert.equal(rankShade("#123456", 1, 4), "#123456");
  assert.equal(rankShade("hsl(215 70% 42%)", 0, 1), "hsl(215 70% 42%)");
});

test("the ranks of a run object: its streams that state a rank or are named after one", () => {
  const info = { streams: [{ name: "rank1.jsonl", rank: 1 }, { name: "rank0.jsonl", rank: 0 }, { name: "events.csv", rank: null },
    { name: "rank2.jsonl", rank: null }] };
  assert.deepEqual(rankStreams(info).map((s) => s.rank), [0, 1, 2]);
  assert.deepEqual(rankStreams({ streams: [{ name: "rank0.jsonl", rank: 0 }] }), []);
  assert.deepEqual(rankStreams(undefined), []);
});

const streams = (specs) => ({ streams: specs.map(([rank, last_step, rate]) => ({ name: `rank${rank}.jsonl`, rank, last_step, rate })) });
const times = (specs) => new Map(specs.filter((s) => s[3] != null).map(([rank, , , t]) => [rank, t]));
const pace = (specs, now) => paceRows(streams(specs), now, times(specs));

test("the straggler: furthest behind, then slowest, then longest silent", () => {
  const { rows, slowest } = pace([[0, 200, 10, 99], [1, 198, 10, 99.5], [2, 120, 6, 98], [3, 200, 10.2, 99.9]], 100);
  assert.deepEqual(rows.map((r) => r.lag), [0, 2, 80, 0]);
  rows.forEach((r, i) => assert.ok(Math.abs(r.age - [1, 0.5, 2, 0.1][i]) < 1e-9, `age of rank ${i}: ${r.age}`));
  assert.equal(rows[slowest].rank, 2);
  // in lockstep, the clearly slower rate
  assert.equal(slowestRow([{ lag: 0, rate: 10, age: 1 }, { lag: 0, rate: 5, age: 1 }, { lag: 0, rate: 10, age: 1 }]), 1);
  // in lockstep at the same pace (within the window's noise): nobody
  assert.equal(slowestRow([{ lag: 0, rate: 10, age: 1 }, { lag: 0, rate: 9.5, age: 3 }]), -1);
  // a step or a second of steps behind, at the same rate: read a moment apart, in step
  assert.equal(slowestRow([{ lag: 0, rate: 10, age: 0 }, { lag: 1, rate: 10, age: 0 }]), -1);
  assert.equal(slowestRow([{ lag: 0, rate: 10, age: 0 }, { lag: 10, rate: 10, age: 0 }]), -1);
  assert.equal(slowestRow([{ lag: 0, rate: 10, age: 0 }, { lag: 11, rate: 10, age: 0 }]), 1);
  assert.equal(slowestRow([{ lag: 0, rate: null, age: 0 }, { lag: 2, rate: null, age: 0 }]), 1);
  // a rank that logged nothing yet is the furthest behind
  assert.equal(pace([[0, 5, 1, 99], [1, null, null, null]], 100).slowest, 1);
  // equal lag: the slower rate; equal rate too: the longer silence
  assert.equal(slowestRow([{ lag: 4, rate: 3, age: 1 }, { lag: 4, rate: 2, age: 0 }, { lag: 0, rate: 3, age: 0 }]), 1);
  assert.equal(slowestRow([{ lag: 4, rate: 3, age: 1 }, { lag: 4, rate: 3, age: 7 }, { lag: 0, rate: 3, age: 0 }]), 1);
  // one rank: no rows, nobody
  assert.deepEqual(pace([[0, 5, 1, 99]], 100), { rows: [], slowest: -1 });
  // a clock ahead of the page's: no negative age
  assert.equal(pace([[0, 5, 1, 101], [1, 5, 1, 100]], 100).rows[0].age, 0);
});

test("a card of many ranks shows those furthest behind and the leading one, in rank order", () => {
  // 64 ranks: rank k is k % 7 steps behind, rank 40 furthest (50), rank 9 leads at a higher rate
  const rows = Array.from({ length: 64 }, (_, k) => ({ rank: k, lag: k === 40 ? 50 : k === 9 ? 0 : 1 + (k % 7), rate: k === 9 ? 11 : 10, age: 0 }));
  const shown = shownRows(rows, 8);
  assert.equal(shown.length, 8);
  assert.deepEqual(shown, [...shown].sort((a, b) => a - b));
  assert.ok(shown.includes(40) && shown.includes(9));
  // the other six are among those 7 steps behind (k % 7 == 6)
  assert.ok(shown.filter((k) => k !== 40 && k !== 9).every((k) => k % 7 === 6), String(shown));
  assert.deepEqual(shownRows(rows.slice(0, 5), 8), [0, 1, 2, 3, 4]);
});

test("ages as the card says them", () => {
  assert.deepEqual([null, 0.2, 12.7, 150, 7300, 200000].map(ageText), ["–", "now", "12 s ago", "2 min ago", "2 h ago", "2 d ago"]);
});

test("a run's ranks are drawn as their mean and min–max band aligned by step, or one line per rank", () => {
  const run = "ddp";
  // rank k: value k + step at steps 0, 2, 4 ...; rank 3 logs every 4 steps and stops at 8
  const data = new Map([0, 1, 2, 3].map((k) => {
    const steps = k === 3 ? [0, 4, 8] : [0, 2, 4, 6, 8, 10];
    return [k === 0 ? "loss" : `loss@rank${k}`, { steps: f64(steps), values: f64(steps.map((s) => k + s)), times: f64(steps),
      id: run, color: "hsl(215 70% 42%)", label: "ddp", version: "v1" }];
  }));
  const runOf = (r, name) => (r === run ? data.get(name) ?? null : null);
  let idx = new RankIndex();
  const ranks = { ranksOf: (r, metric) => idx.of(r, data).get(metric) ?? null };
  const c = new SeriesComposer();
  c.regroup([run], "", new Map(), 0);
  const opts = { agg: "mean", band: "minmax", members: false, open: new Set(), dark: false, ranks };
  const [band] = c.seriesOf("loss", "step", runOf, opts);
  assert.equal(band.group, ranksKey(run));
  assert.equal(band.color, "hsl(215 70% 42%)");
  assert.deepEqual([...band.xs], [0, 2, 4, 6, 8, 10]);
  // step 6: ranks 0-2 at 6, 7, 8 and rank 3 between its steps 4 and 8 (3 + 6 = 9)
  const at = [...band.xs].indexOf(6);
  assert.equal(band.values[at], (6 + 7 + 8 + 9) / 4);
  assert.deepEqual([band.band.lo[at], band.band.hi[at], band.count[at]], [6, 9, 4]);
  // step 10: rank 3 stopped at 8
  assert.deepEqual([band.band.lo[5], band.band.hi[5], band.count[5]], [10, 12, 3]);
  // it knows its ranks: the ranks at its ends at each point (rank 3 between its steps at step 6)
  assert.deepEqual(band.ranks, [0, 1, 2, 3]);
  assert.deepEqual(band.endsAt(at), { lo: [0], hi: [3] });
  assert.deepEqual(band.endsAt(5), { lo: [0], hi: [2] });
  // on a time axis too (times: the steps, so x = seconds since the first point)
  const [timed] = c.seriesOf("loss", "relative", runOf, opts);
  assert.deepEqual(timed.ranks, [0, 1, 2, 3]);
  assert.deepEqual(timed.endsAt([...timed.xs].indexOf(10)), { lo: [0], hi: [2] });

  const lines = c.seriesOf("loss", "step", runOf, { ...opts, open: new Set([ranksKey(run)]) });
  assert.deepEqual(lines.map((s) => s.label), ["rank 0", "rank 1", "rank 2", "rank 3"]);
  assert.deepEqual(lines.map((s) => s.id), ["ddp//rank0", "ddp//rank1", "ddp//rank2", "ddp//rank3"]); // readable, never a run's
  assert.equal(new Set(lines.map((s) => s.color)).size, 4);
  assert.ok(lines.every((s) => s.member === ranksKey(run) && s.memberOf === "ddp"));
  assert.deepEqual([...lines[3].values], [3, 7, 11]);

  // a metric only one rank logs: that rank's line, as a run's
  data.set("gpu@rank2", { ...data.get("loss@rank2") });
  idx = new RankIndex();
  const [only] = c.seriesOf("gpu", "step", runOf, opts);
  assert.equal(only.group, undefined);
  assert.deepEqual([...only.values], [...data.get("loss@rank2").values]);
  // in a group of runs, a run of ranks counts with its first rank that logs the metric
  c.regroup([run], "re:d+", new Map(), 1);
  const [group] = c.seriesOf("gpu", "step", runOf, opts);
  assert.equal(group.group, "dd");
  assert.deepEqual([...group.values], [...data.get("loss@rank2").values]);
  c.regroup([run], "", new Map(), 2);
  // without ranks (a page of runs without ranks): as before
  assert.equal(c.seriesOf("loss", "step", runOf, { ...opts, ranks: null })[0], data.get("loss"));
});

test("the ranks at a band's ends: by the band's own reading of each rank at x", () => {
  const xs = f64([0, 2, 4]), values = f64([1, 3, 2]);
  assert.deepEqual([0, 1, 2, 3, 4].map((x) => valueAt(xs, values, x)), [1, 2, 3, 2.5, 2]);
  assert.ok(Number.isNaN(valueAt(xs, values, -1)) && Number.isNaN(valueAt(xs, values, 4.5)));
  assert.ok(Number.isNaN(valueAt(f64([]), f64([]), 0)));
  const ranks = [
    { rank: 0, xs, values },
    { rank: 1, xs: f64([0, 4]), values: f64([3, 3]) },
    { rank: 2, xs: f64([1, 3]), values: f64([0, NaN]) }, // no value at 3, and none outside 1..3
  ];
  assert.deepEqual(bandEnds(ranks, 0), { lo: [0], hi: [1] });
  assert.deepEqual(bandEnds(ranks, 1), { lo: [2], hi: [1] });
  // rank 2's line runs to a NaN: no value between, as the band does not count it; ranks 0 and 1 tie
  assert.deepEqual(bandEnds(ranks, 2), { lo: [0, 1], hi: [0, 1] });
  assert.deepEqual(bandEnds(ranks, 3), { lo: [0], hi: [1] });
  assert.equal(bandEnds(ranks, 9), null);
  assert.equal(bandEnds([], 0), null);
});

test("ranks as the readout counts and names them", () => {
  assert.deepEqual([1, 4].map(ranksText), ["1 rank", "4 ranks"]);
  assert.deepEqual([[3], [0, 2], [0, 1, 5], [0, 1, 2, 3]].map(rankList), ["rank 3", "ranks 0, 2", "ranks 0, 1, 5", "4 ranks"]);
});
