import { test } from "node:test";
import assert from "node:assert/strict";
import { emaDebiased } from "../smooth.js";

test("weight 0 leaves the data unchanged", () => {
  assert.deepEqual([...emaDebiased([1, 5, 3], 0)], [1, 5, 3]);
});

test("the debiased EMA starts at the first value instead of at zero", () => {
  const out = emaDebiased([10, 10, 10], 0.9);
  for (const v of out) assert.ok(Math.abs(v - 10) < 1e-9);
});

test("it matches the closed form of TensorBoard's smoothing", () => {
  const w = 0.6, xs = [1, 2, 3, 4];
  let last = 0;
  const expected = xs.map((x, i) => { last = last * w + (1 - w) * x; return last / (1 - Math.pow(w, i + 1)); });
  const got = emaDebiased(xs, w);
  expected.forEach((e, i) => assert.ok(Math.abs(got[i] - e) < 1e-12));
});

test("non-finite values stay visible and do not poison the average", () => {
  const out = emaDebiased([1, NaN, 1, Infinity, 1], 0.5);
  assert.ok(Number.isNaN(out[1]));
  assert.equal(out[3], Infinity);
  assert.ok(Math.abs(out[4] - 1) < 1e-12);
});

test("it writes into a given array when that has room", () => {
  const room = new Float64Array(8);
  const out = emaDebiased([1, 3], 0.5, room);
  assert.equal(out.buffer, room.buffer);
  assert.equal(out.length, 2);
  assert.notEqual(emaDebiased([1, 2, 3], 0.5, new Float64Array(2)).length, 2); // too small: a new one
});
