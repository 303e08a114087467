import { test } from "node:test";
import assert from "node:assert/strict";
import { binBounds, heatmapRecords } from "../heatmap.js";

test("a record's edges are its bins' bounds", () => {
  assert.deepEqual(Array.from(binBounds([10, 5, 8], 0, 10, [0, 1, 2, 10])), [0, 1, 2, 10]);
  // a bin of width zero (a constant tensor) is a bin
  assert.deepEqual(Array.from(binBounds([4], 3, 3, [3, 3])), [3, 3]);
});

test("without edges, bins are of equal width from lo to hi, ending exactly at hi", () => {
  assert.deepEqual(Array.from(binBounds([1, 1, 1, 1], -1, 1, null)), [-1, -0.5, 0, 0.5, 1]);
  const b = binBounds([1, 1, 1], 0.1, 0.7, undefined);
  assert.equal(b[3], 0.7);
  assert.deepEqual(Array.from(binBounds([], 2, 5, null)), [2]);
});

test("edges that cannot be bounds fall back to lo and hi; nothing finite to place is null", () => {
  const equal = [0, 5, 10];
  assert.deepEqual(Array.from(binBounds([1, 1], 0, 10, [0, 1])), equal); // too few
  assert.deepEqual(Array.from(binBounds([1, 1], 0, 10, [0, 3, 2])), equal); // going back
  assert.deepEqual(Array.from(binBounds([1, 1], 0, 10, [0, "Infinity", 2])), equal);
  assert.deepEqual(Array.from(binBounds([1, 1], 0, 10, "0,1,2")), equal);
  assert.equal(binBounds([1, 1], "NaN", 10, null), null);
  assert.equal(binBounds([1, 1], 10, 0, null), null);
});

test("the records' value range spans every bin of every record; unplaceable records are left out", () => {
  const hist = {
    steps: [0, 1, 2],
    lo: [0, -2, "NaN"], hi: [10, 4, "NaN"],
    counts: [[10, 5, 8], [1, 2], [3]],
    edges: [[0.5, 1, 2, 12], null, null],
  };
  const { records, lo, hi } = heatmapRecords(hist);
  assert.deepEqual(records.map((r) => r.step), [0, 1]);
  assert.equal(lo, -2);
  assert.equal(hi, 12); // the edges, not the record's lo and hi
  assert.deepEqual(Array.from(records[1].bounds), [-2, 1, 4]);
  // an answer from a sidecar that sends no edges at all is drawn as before
  const old = heatmapRecords({ steps: [5], lo: [0], hi: [3], counts: [[1, 1, 1]] });
  assert.deepEqual(Array.from(old.records[0].bounds), [0, 1, 2, 3]);
  // an empty histogram takes its column and no part of the range
  const some = heatmapRecords({ steps: [1, 2], lo: [-50, 0], hi: [50, 1], counts: [[], [2]], edges: [[], null] });
  assert.deepEqual([some.records.length, some.lo, some.hi], [2, 0, 1]);
  const none = heatmapRecords({ steps: [1], lo: [0], hi: [0], counts: [[]], edges: [[]] });
  assert.deepEqual([none.records.length, none.lo, none.hi], [1, 0, 1]);
});
