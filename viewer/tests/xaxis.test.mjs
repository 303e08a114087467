import { test } from "node:test";
import assert from "node:assert/strict";
import { pairByStep, axisMetric, validAxis, xValues } from "../xaxis.js";

const f64 = (a) => Float64Array.from(a);

test("axes: step and times, or a metric", () => {
  assert.equal(axisMetric("m:epoch"), "epoch");
  assert.equal(axisMetric("m:a:b"), "a:b");
  assert.equal(axisMetric("step"), null);
  assert.equal(axisMetric("m:"), null);
  for (const a of ["step", "relative", "wall", "m:tokens"]) assert.ok(validAxis(a), a);
  for (const a of ["", "m:", "epoch", null]) assert.ok(!validAxis(a), a);
  const s = { steps: f64([0, 1]), times: f64([10, 12]), t0: 9 };
  assert.deepEqual([...xValues(s, "relative")], [1, 3]);
  assert.deepEqual([...xValues({ ...s, xs: f64([5, 6]) }, "relative")], [5, 6]);
});

test("a metric as x pairs points by step, interpolating between the x metric's steps", () => {
  const loss = { steps: f64([0, 5, 10, 15, 20, 25]), values: f64([6, 5, 4, 3, 2, 1]), times: f64([0, 1, 2, 3, 4, 5]) };
  const tokens = { steps: f64([5, 10, 20]), values: f64([500, 1000, 3000]) };
  const p = pairByStep(loss, tokens);
  // step 0 comes before the first tokens point and step 25 after the last: no x, left out
  assert.deepEqual([...p.steps], [5, 10, 15, 20]);
  assert.deepEqual([...p.xs], [500, 1000, 2000, 3000]);
  assert.deepEqual([...p.values], [5, 4, 3, 2]);
  assert.deepEqual([...p.times], [1, 2, 3, 4]);
});

test("points whose x is not finite are left out; an x that falls is sorted by", () => {
  const y = { steps: f64([0, 1, 2, 3]), values: f64([10, 11, 12, 13]), times: f64([]) };
  const x = { steps: f64([0, 1, 2, 3]), values: f64([3, NaN, 1, 2]) };
  const p = pairByStep(y, x);
  assert.deepEqual([...p.xs], [1, 2, 3]);
  assert.deepEqual([...p.steps], [2, 3, 0]);
  assert.deepEqual([...p.values], [12, 13, 10]);
  assert.ok(p.times.every(Number.isNaN)); // times not held: not made up
  assert.equal(pairByStep(y, { steps: f64([]), values: f64([]) }).xs.length, 0);
});
