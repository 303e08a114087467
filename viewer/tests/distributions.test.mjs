import { test } from "node:test";
import assert from "node:assert/strict";
import { ridgeIndices, outline, densestBin } from "../ridges.js";
import { namesOf, sharedRange, atOrBefore } from "../distributions.js";

test("names of a kind, over every selected run, sorted once", () => {
  const infos = new Map([["a", { histograms: ["w", "b"] }], ["b", { histograms: ["w", "a"] }], ["c", {}]]);
  assert.deepEqual(namesOf(["a", "b", "c"], infos, "histograms"), ["a", "b", "w"]);
  assert.deepEqual(namesOf(["c"], infos, "histograms"), []);
});

test("one value range over all runs; a single value gets room around it", () => {
  const d = (lo, hi, n = 1) => ({ lo, hi, records: [{ counts: new Array(n).fill(1) }] });
  assert.deepEqual(sharedRange([d(0, 1), d(9, 10)]), { lo: 0, hi: 10 });
  assert.deepEqual(sharedRange([d(2, 2)]), { lo: 1.5, hi: 2.5 });
  assert.deepEqual(sharedRange([d(-5, 5, 0)]), { lo: 0, hi: 1 }); // only empty histograms
  assert.deepEqual(sharedRange([]), { lo: 0, hi: 1 });
});

test("the record at or before a step, else the first", () => {
  const steps = [0, 10, 20];
  assert.deepEqual([-1, 0, 5, 10, 19, 20, 99].map((s) => atOrBefore(steps, s)), [0, 0, 0, 1, 1, 2, 2]);
});

test("ridges: every step up to the bound, then evenly thinned with the first and newest kept", () => {
  assert.deepEqual(ridgeIndices(3, 48), [0, 1, 2]);
  const many = ridgeIndices(1000, 48);
  assert.equal(many.length, 48);
  assert.equal(many[0], 0);
  assert.equal(many[47], 999);
  assert.ok(many.every((v, i) => i === 0 || v > many[i - 1]));
});

test("a ridge's outline is each bin's density against the densest bin shown", () => {
  const rec = { counts: [2, 8, 0], bounds: [0, 1, 2, 4] };
  const densest = densestBin([rec, { counts: [4], bounds: [0, 0.5] }]); // 8 per unit
  assert.equal(densest, 8);
  assert.deepEqual(outline(rec, densest), [[0, 0.25], [1, 0.25], [1, 1], [2, 1], [2, 0], [4, 0]]);
  assert.equal(densestBin([{ counts: [0], bounds: [0, 1] }]), 1);
});
