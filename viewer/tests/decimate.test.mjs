import { test } from "node:test";
import assert from "node:assert/strict";
import { m4Indices, lowerBound, nearestIndex } from "../decimate.js";

test("binary search finds the insertion point and the nearest point", () => {
  const xs = Float64Array.from([0, 10, 20, 30]);
  assert.equal(lowerBound(xs, 15), 2);
  assert.equal(lowerBound(xs, -1), 0);
  assert.equal(lowerBound(xs, 99), 4);
  assert.equal(nearestIndex(xs, 14), 1);
  assert.equal(nearestIndex(xs, 16), 2);
  assert.equal(nearestIndex(xs, 99), 3);
  assert.equal(nearestIndex(new Float64Array(0), 1), -1);
});

test("few points per column are all kept", () => {
  const xs = Float64Array.from({ length: 100 }, (_, i) => i);
  const idx = m4Indices(xs, xs, 0, 100, 0, 99, 50);
  assert.equal(idx.length, 100);
});

test("M4 keeps first, min, max and last of every column, so spikes survive", () => {
  const n = 100000;
  const xs = Float64Array.from({ length: n }, (_, i) => i);
  const ys = Float64Array.from({ length: n }, (_, i) => Math.sin(i / 500));
  ys[31337] = 50; ys[77777] = -50;
  const idx = m4Indices(xs, ys, 0, n, 0, n - 1, 200);
  assert.ok(idx.length <= 200 * 4 + 2, `kept ${idx.length}`);
  const kept = new Set(idx);
  assert.ok(kept.has(31337) && kept.has(77777));
  assert.ok(kept.has(0) && kept.has(n - 1));
  for (let i = 1; i < idx.length; i++) assert.ok(idx[i] > idx[i - 1]);
  // every column's min and max are kept
  const width = 200, scale = width / (n - 1);
  const colMax = new Map();
  for (let i = 0; i < n; i++) {
    const c = Math.min(width - 1, Math.floor(i * scale));
    if (!colMax.has(c) || ys[i] > ys[colMax.get(c)]) colMax.set(c, i);
  }
  for (const i of colMax.values()) assert.ok(kept.has(i));
});

test("NaN points are never dropped", () => {
  const n = 10000;
  const xs = Float64Array.from({ length: n }, (_, i) => i);
  const ys = Float64Array.from({ length: n }, () => 1);
  ys[4321] = NaN;
  const idx = m4Indices(xs, ys, 0, n, 0, n - 1, 10);
  assert.ok(idx.includes(4321));
});
