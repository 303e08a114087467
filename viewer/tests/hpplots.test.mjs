import { test } from "node:test";
import assert from "node:assert/strict";
import { axisScale } from "../hpplots.js";

test("numbers sit on a linear axis, on a log one when they span two decades; the rest are categories", () => {
  const lin = axisScale([1, 3, 2, null]);
  assert.equal(lin.kind, "num");
  assert.deepEqual([lin.pos(1), lin.pos(2), lin.pos(3)], [0, 0.5, 1]);
  assert.ok(Number.isNaN(lin.pos(null)));
  const log = axisScale([0.001, 0.01, 0.1]);
  assert.ok(log.log);
  assert.ok(Math.abs(log.pos(0.01) - 0.5) < 1e-12);
  const cat = axisScale(["sgd", "adam", "sgd", "lion"]);
  assert.equal(cat.kind, "cat");
  assert.deepEqual(cat.ticks.map(([, t]) => t), ["adam", "lion", "sgd"]);
  assert.deepEqual(["adam", "lion", "sgd"].map(cat.pos), [0, 0.5, 1]);
  const one = axisScale([5, 5]);
  assert.equal(one.pos(5), 0.5); // a single value in the middle
});
