import { test } from "node:test";
import assert from "node:assert/strict";
import { parseGroupSpec, groupKey, groupRuns, unionXs, aggregate, AggregateCache, GroupSeries } from "../groups.js";

const f64 = (a) => Float64Array.from(a);
const close = (a, b, msg) => {
  assert.equal(a.length, b.length, msg);
  for (let i = 0; i < a.length; i++) {
    if (Number.isNaN(b[i])) assert.ok(Number.isNaN(a[i]), `${msg} [${i}]: ${a[i]} is not NaN`);
    else assert.ok(Math.abs(a[i] - b[i]) < 1e-9, `${msg} [${i}]: ${a[i]} != ${b[i]}`);
  }
};

test("group rules: a path level, a regex's first group or whole match, a config key", () => {
  const up = parseGroupSpec("path:-1"), top = parseGroupSpec("path:1");
  assert.equal(groupKey("sweep/lr_0.1/seed0", up), "sweep/lr_0.1");
  assert.equal(groupKey("sweep/lr_0.1/seed0", parseGroupSpec("path:2")), "sweep/lr_0.1");
  assert.equal(groupKey("sweep/lr_0.1/seed0", top), "sweep");
  assert.equal(groupKey("alone", up), null); // no folder: drawn alone
  assert.equal(groupKey("a/b", parseGroupSpec("path:3")), null);
  assert.equal(groupKey("sweep/lr_0.1/seed0", parseGroupSpec("re:lr_([\\d.]+)")), "0.1");
  assert.equal(groupKey("sweep/lr_0.1/seed0", parseGroupSpec("re:seed\\d")), "seed0");
  assert.equal(groupKey("other", parseGroupSpec("re:seed\\d")), null);
  assert.equal(groupKey("lr_/a", parseGroupSpec("re:lr_(\\d*)")), null); // an empty capture names no group
  assert.equal(groupKey("x/y", parseGroupSpec("cfg:opt.lr"), { "opt.lr": 0.1 }), "opt.lr=0.1");
  assert.equal(groupKey("x/y", parseGroupSpec("cfg:opt.lr"), { lr: 1 }), null);
  assert.equal(groupKey("x/y", parseGroupSpec("cfg:name"), { name: "a".repeat(40) }), `name=${"a".repeat(40)}`);
  assert.ok(parseGroupSpec("re:(unclosed").error);
  assert.equal(groupKey("x", parseGroupSpec("re:(unclosed")), null);
  for (const bad of ["", "path:0", "path:x", "nope:1", "cfg:", null]) assert.equal(parseGroupSpec(bad), null, bad);
});

test("runs fall into groups in natural key order; those no rule names stay alone", () => {
  const configs = new Map([["a", { lr: 2 }], ["b", { lr: 10 }], ["c", { lr: 2 }], ["d", {}]]);
  const { groups, alone } = groupRuns(["d", "c", "b", "a"], parseGroupSpec("cfg:lr"), configs);
  assert.deepEqual([...groups], [["lr=2", ["a", "c"]], ["lr=10", ["b"]]]);
  assert.deepEqual(alone, ["d"]);
});

test("the union of x values merges and drops repeats and non-finite values", () => {
  assert.deepEqual([...unionXs([f64([0, 2, 4]), f64([0, 2, 4])])], [0, 2, 4]);
  assert.deepEqual([...unionXs([f64([0, 3, 6, 9]), f64([0, 2, 4, 6, 8]), f64([1, 1, NaN])])], [0, 1, 2, 3, 4, 6, 8, 9]);
  assert.deepEqual([...unionXs([])], []);
});

test("members logging at different steps are interpolated onto every step either logs", () => {
  // a: y = x at steps 0, 10, 20; b: y = 100 + x at 0, 5, 10, 15 (stops early)
  const a = { xs: f64([0, 10, 20]), values: f64([0, 10, 20]) };
  const b = { xs: f64([0, 5, 10, 15]), values: f64([100, 105, 110, 115]) };
  const r = aggregate([a, b]);
  assert.deepEqual([...r.xs], [0, 5, 10, 15, 20]);
  close(r.values, [50, 55, 60, 65, 20], "mean"); // at 20 only a counts: b is never extrapolated
  assert.deepEqual([...r.count], [2, 2, 2, 2, 1]);
  close(r.lo, [0, 5, 10, 15, 20], "min");
  close(r.hi, [100, 105, 110, 115, 20], "max");
});

test("median and standard deviation bands", () => {
  const m = (v) => ({ xs: f64([0, 1]), values: f64(v) });
  const r = aggregate([m([1, 1]), m([2, 5]), m([9, 6])], { agg: "median", band: "std" });
  close(r.values, [2, 5], "median");
  const sd0 = Math.sqrt(((1 - 4) ** 2 + (2 - 4) ** 2 + (9 - 4) ** 2) / 2);
  close(r.lo, [2 - sd0, 5 - Math.sqrt(((1 - 4) ** 2 + (5 - 4) ** 2 + (6 - 4) ** 2) / 2)], "median - sd");
  close(r.hi, [2 + sd0, 5 + Math.sqrt(7)], "median + sd");
  const even = aggregate([m([1, 0]), m([3, 0])], { agg: "median", band: "none" });
  close(even.values, [2, 0], "median of two");
  assert.equal(even.lo, null);
  assert.ok(aggregate([m([1, 2])], { band: "std" }).lo.every((v, i) => v === [1, 2][i])); // one member: no spread
});

test("non-finite values leave their member out at that x, and a gap where no member has one", () => {
  const a = { xs: f64([0, 1, 2, 3]), values: f64([1, NaN, 3, NaN]) };
  const b = { xs: f64([0, 1, 2]), values: f64([3, 4, NaN]) };
  const r = aggregate([a, b]);
  close(r.values, [2, 4, 3, NaN], "mean");
  assert.deepEqual([...r.count], [2, 1, 1, 0]);
  // a member whose x is not finite somewhere (a time axis without times) keeps its other points
  const c = aggregate([{ xs: f64([0, NaN, 2]), values: f64([1, 5, 3]) }]);
  assert.deepEqual([...c.xs], [0, 2]);
  close(c.values, [1, 3], "placeable points");
});

test("aggregates are made once per version, read lazily through the series", () => {
  const cache = new AggregateCache(2);
  const member = { steps: f64([0, 1]), values: f64([1, 3]) };
  const make = (version) => new GroupSeries({ id: "g", group: "g", label: "g", color: "red", version, key: "m|g",
    members: [member, member], xsOf: (m) => m.steps, cache, opts: { agg: "mean", band: "minmax" }, stepAxis: true });
  const s = make(1);
  assert.equal(cache.made, 0); // nothing computed until a chart reads it
  close(s.values, [1, 3], "values");
  assert.deepEqual([...s.steps], [0, 1]);
  assert.equal(s.times, null);
  assert.equal(s.size, 2);
  make(1).values;
  assert.equal(cache.made, 1);
  make(2).values;
  assert.equal(cache.made, 2);
  cache.get("x", 1, () => 1); cache.get("y", 1, () => 2);
  assert.equal(cache.entries.size, 2); // bounded
});

test("a group whose runs grew is made again from where they ended, to the same result", () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
  for (const opts of [{ agg: "mean", band: "minmax" }, { agg: "median", band: "std" }, { agg: "mean", band: "none" }]) {
    // three runs logging every 1, 2 and 3 steps, with a gap, appended to in uneven chunks
    const full = [1, 2, 3].map((every, k) => {
      const xs = [], values = [];
      for (let s = k; s < 600; s += every) { xs.push(s); values.push(s % 97 === 0 ? NaN : rnd() * 10); }
      return { id: `r${k}`, xs: f64(xs), values: f64(values) };
    });
    const ends = full.map(() => 0);
    let prev = null, resumed = 0;
    while (ends.some((e, k) => e < full[k].xs.length)) {
      full.forEach((m, k) => { ends[k] = Math.min(m.xs.length, ends[k] + Math.floor(rnd() * 40)); });
      const now = full.map((m, k) => ({ id: m.id, xs: m.xs.subarray(0, ends[k]), values: m.values.subarray(0, ends[k]) }));
      const step = aggregate(now, opts, prev);
      const scratch = aggregate(now, opts);
      for (const key of ["xs", "values", "lo", "hi", "count"]) {
        if (scratch[key] === null) assert.equal(step[key], null);
        else close(step[key], scratch[key], `${opts.agg}/${opts.band} ${key}`);
      }
      if (step.resumed) resumed++;
      prev = step;
    }
    assert.ok(resumed > 5, `resumed ${resumed} times`);
  }
  // other runs, or other options: made from scratch
  const a = { id: "a", xs: f64([0, 1]), values: f64([1, 2]) };
  const r = aggregate([a], { agg: "mean", band: "minmax" });
  assert.ok(!aggregate([{ ...a, id: "b" }], { agg: "mean", band: "minmax" }, r).resumed);
  assert.ok(!aggregate([a], { agg: "median", band: "minmax" }, r).resumed);
  assert.ok(!aggregate([{ ...a, values: f64([1, 5]) }], { agg: "mean", band: "minmax" }, r).resumed); // changed, not grown
});
