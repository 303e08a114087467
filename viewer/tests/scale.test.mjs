import { test } from "node:test";
import assert from "node:assert/strict";
import { niceStep, linearTicks, logTicks, Scale, extent, robustExtent, formatNumber, timeTicks, pad } from "../scale.js";

test("nice steps are 1, 2 or 5 times a power of ten", () => {
  assert.equal(niceStep(10, 5), 2);
  assert.equal(niceStep(1, 4), 0.2);
  assert.equal(niceStep(1000, 3), 500);
  assert.equal(niceStep(0.037, 5), 0.01);
});

test("linear ticks lie inside the range on a nice grid", () => {
  assert.deepEqual(linearTicks(0, 10, 5), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(linearTicks(-0.3, 0.3, 3), [-0.2, 0, 0.2]);
  const t = linearTicks(0.1234, 0.9876, 5);
  assert.ok(t.every((v) => v >= 0.1234 && v <= 0.9876));
  assert.ok(t.length >= 3 && t.length <= 10);
  assert.deepEqual(linearTicks(5, 5), [5]);
  assert.deepEqual(linearTicks(NaN, 1), []);
});

test("log ticks are powers of ten (and 2x, 5x over few decades)", () => {
  assert.deepEqual(logTicks(1, 1000), [1, 10, 100, 1000]);
  assert.deepEqual(logTicks(0.1, 1), [0.1, 0.2, 0.5, 1]);
  assert.deepEqual(logTicks(-1, 10), []);
});

test("a scale maps values to pixels and back, linear and log", () => {
  const s = new Scale(0, 100, 0, 200);
  assert.equal(s.px(50), 100);
  assert.equal(s.value(150), 75);
  const l = new Scale(1, 1000, 300, 0, true);
  assert.equal(l.px(1), 300);
  assert.ok(Math.abs(l.px(10) - 200) < 1e-9);
  assert.ok(Number.isNaN(l.px(-1)));
  assert.ok(Math.abs(l.value(200) - 10) < 1e-9);
  const flat = new Scale(3, 3, 0, 100);
  assert.equal(flat.px(3), 50);
});

test("extent skips non-finite values and non-positive ones on a log scale", () => {
  assert.deepEqual(extent([1, NaN, -2, Infinity, 5]), [-2, 5]);
  assert.deepEqual(extent([0, -1, 2, 8], { log: true }), [2, 8]);
  assert.equal(extent([NaN]), null);
});

test("the robust extent ignores a single huge spike", () => {
  const v = Array.from({ length: 1000 }, (_, i) => Math.sin(i / 10));
  v[500] = 1e9;
  const [lo, hi] = robustExtent(v, 0.01);
  assert.ok(hi < 2, `hi=${hi}`);
  assert.ok(lo > -1.01);
  assert.deepEqual(extent(v)[1], 1e9);
});

test("padding widens a range, also a flat one", () => {
  assert.deepEqual(pad([0, 10], 0.1), [-1, 11]);
  const [a, b] = pad([2, 2]);
  assert.ok(a < 2 && b > 2);
});

test("numbers and times get short labels", () => {
  assert.equal(formatNumber(12345), "12.3k");
  assert.equal(formatNumber(0.5), "0.5");
  assert.equal(formatNumber(2500000), "2.5M");
  assert.equal(formatNumber(1e-7), "1.0e-7");
  assert.deepEqual(timeTicks(0, 600, 5), [0, 120, 240, 360, 480, 600]);
});
