import { test } from "node:test";
import assert from "node:assert/strict";
import { rowCells, positionText, sizeText } from "../readout.js";
import { RanksBand } from "../ranks.js";
import { AggregateCache } from "../groups.js";
import { formatValue, formatElapsed, formatWall } from "../scale.js";

test("values keep six significant digits", () => {
  assert.equal(formatValue(0.123456789), "0.123457");
  assert.equal(formatValue(1234567), "1234570");
  assert.equal(formatValue(2.5e-7), "2.5e-7");
  assert.equal(formatValue(-3.14159265e20), "-3.14159e20");
  assert.equal(formatValue(0), "0");
  assert.equal(formatValue(NaN), "NaN");
  assert.equal(formatValue(-Infinity), "-Infinity");
});

test("durations read as a person says them", () => {
  assert.equal(formatElapsed(0.0042), "4 ms");
  assert.equal(formatElapsed(0.9996), "1.00 s");
  assert.equal(formatElapsed(4.254), "4.25 s");
  assert.equal(formatElapsed(12.46), "12.5 s");
  assert.equal(formatElapsed(185), "3 min 05 s");
  assert.equal(formatElapsed(7620), "2 h 07 min");
  assert.equal(formatElapsed(3 * 86400 + 4 * 3600), "3 d 04 h");
  assert.equal(formatElapsed(NaN), "");
});

test("a row reads the point's own step, its raw and smoothed value and its times", () => {
  const s = { steps: Float64Array.of(0, 10, 20), values: Float64Array.of(3, 2, 1), times: Float64Array.of(100, 160, 400), t0: 90 };
  const cells = rowCells({ s, i: 1, smoothed: 2.5 });
  assert.deepEqual({ ...cells, wall: undefined }, { smoothed: "2.5", value: "2", band: "", n: "", step: "10", relative: "1 min 10 s", wall: undefined });
  assert.equal(cells.wall, formatWall(160));
  assert.match(cells.wall, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  // no start known: from the run's first point
  assert.equal(rowCells({ s: { ...s, t0: undefined }, i: 2, smoothed: 1 }).relative, "5 min 00 s");
  // no wall time (a log without times): empty cells, not "NaN"
  const untimed = { ...s, times: Float64Array.of(NaN, NaN, NaN) };
  assert.deepEqual([rowCells({ s: untimed, i: 0, smoothed: 3 }).relative, rowCells({ s: untimed, i: 0, smoothed: 3 }).wall], ["", ""]);
  assert.equal(positionText(120, "step"), "step 120");
  assert.equal(positionText(65, "relative"), "1 min 05 s");
  assert.equal(positionText(2.5, "m:epoch"), "epoch 2.5");
  assert.equal(positionText(1, "m:a\u202eb"), "a⟨U+202E⟩b 1"); // a metric name is log content
});

test("a group's row reads its line, its band and how many runs it holds there", () => {
  const g = { group: "lr=0.1", size: 8, steps: Float64Array.of(0, 10), values: Float64Array.of(2, 1), times: null,
    band: { lo: Float64Array.of(1.5, 0.5), hi: Float64Array.of(2.5, 1.25) }, count: Uint32Array.of(8, 7), bandKind: "minmax" };
  assert.deepEqual(rowCells({ s: g, i: 1, smoothed: 1.1 }),
    { smoothed: "1.1", value: "1", band: "0.5 – 1.25", n: "7/8", step: "10", relative: "", wall: "" });
  const sd = rowCells({ s: { ...g, steps: null, bandKind: "std" }, i: 0, smoothed: 2 });
  assert.deepEqual([sd.band, sd.step], ["± 0.5", "–"]); // off a step axis a group has no step of its own
});

test("a run's ranks' band reads in ranks, naming the ranks at its ends; a group of runs in runs", () => {
  const f64 = (a) => Float64Array.from(a);
  // rank k at steps 0, 1: k + step, but rank 2 is the lowest at step 1
  const members = [[0, [0, 1]], [1, [1, 2]], [2, [2, -1]]].map(([rank, v]) =>
    ({ id: `ddp//rank${rank}`, rank, steps: f64([0, 1]), values: f64(v) }));
  const band = new RanksBand({ id: "b", group: "ranks of ddp", label: "ddp", color: "red", members, xsOf: (m) => m.steps,
    version: "1", key: "loss", cache: new AggregateCache(), opts: { agg: "mean", band: "minmax" }, stepAxis: true });
  assert.equal(sizeText(band), "3 ranks");
  assert.deepEqual(rowCells({ s: band, i: 0, smoothed: 1 }), { smoothed: "1", value: "1", band: "0 (rank 0) – 2 (rank 2)", n: "3/3",
    step: "0", relative: "", wall: "" });
  assert.equal(rowCells({ s: band, i: 1, smoothed: 1 }).band, "-1 (rank 2) – 2 (rank 1)");
  const group = { group: "lr=0.1", size: 4, steps: f64([0]), values: f64([1]), times: null, count: Uint32Array.of(4), bandKind: "minmax",
    band: { lo: f64([0.5]), hi: f64([2]) } };
  assert.equal(sizeText(group), "4 runs");
  assert.equal(sizeText({ ...group, size: 1 }), "1 run");
  assert.equal(rowCells({ s: group, i: 0, smoothed: 1 }).band, "0.5 – 2");
});
