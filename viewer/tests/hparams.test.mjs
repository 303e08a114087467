import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultDirection, directionOf, setDirection, nextDirection, Summaries, configColumns, tableColumns, columnOf,
  cellValue, cellText, sortRows, rowFilter } from "../hparams.js";
import { SeriesBuffer } from "../state.js";

test("a metric's best is the lowest for loss-like names, the highest for accuracy-like ones, none for the rest", () => {
  for (const m of ["loss", "train/loss", "val_loss", "eval/error_rate", "perplexity", "val/ppl", "mse", "test/wer", "fid"]) {
    assert.equal(defaultDirection(m), "min", m);
  }
  for (const m of ["acc", "val/accuracy", "eval/f1", "top1", "top-5", "val/mAP", "auc", "bleu", "episode_reward", "iou", "r2", "hit@10"]) {
    assert.equal(defaultDirection(m), "max", m);
  }
  for (const m of ["epoch", "lr", "train/lr", "grad_norm", "step", "tokens_seen", "throughput", "heatmap_mean", "terror"]) {
    assert.equal(defaultDirection(m), "none", m);
  }
});

test("a direction set per metric wins, and is kept only when it differs from the name's", () => {
  let chosen = setDirection([], "epoch", "max");
  assert.deepEqual(chosen, ["max:epoch"]);
  assert.equal(directionOf("epoch", chosen), "max");
  chosen = setDirection(chosen, "a:b", "min");
  assert.equal(directionOf("a:b", chosen), "min"); // a colon in the name
  assert.deepEqual(setDirection(chosen, "epoch", "none"), ["min:a:b"]);
  assert.deepEqual(["min", "max", "none"].map(nextDirection), ["max", "none", "min"]);
});

const series = (values) => {
  const b = new SeriesBuffer();
  b.replace({ steps: values.map((_, i) => i), values, times: [] });
  return b;
};

test("summaries hold the last, lowest and highest value, made again per version, kept after the data goes", () => {
  const s = new Summaries();
  const rd = { series: new Map([["loss", series([3, 1, "NaN", 2])], ["empty", series([])]]) };
  s.update("a", rd);
  assert.deepEqual({ ...s.get("a", "loss"), version: 0 }, { version: 0, last: 2, min: 1, max: 3 });
  assert.ok(Number.isNaN(s.get("a", "empty").min));
  rd.series.get("loss").append({ steps: [4], values: [0.5], times: [] });
  s.update("a", rd);
  assert.equal(s.get("a", "loss").min, 0.5);
  s.update("a", null); // deselected: nothing held, the summary stays
  assert.equal(s.get("a", "loss").last, 0.5);
  s.keep(new Set());
  assert.equal(s.get("a", "loss"), null);
});

test("config keys that differ come first, shared ones are folded", () => {
  const configs = new Map([["a", { opt: "adam", lr: 0.1, seed: 0 }], ["b", { opt: "adam", lr: 1, seed: 1, wd: 0 }]]);
  assert.deepEqual(configColumns(["a", "b"], configs), { varying: ["lr", "seed", "wd"], constant: [["opt", "adam"]] });
  const cols = tableColumns(["lr"], ["epoch", "val/loss"], ["max:epoch"]);
  assert.deepEqual(cols.map((c) => c.key), ["run", "c:lr", "l:epoch", "b:epoch", "l:val/loss", "b:val/loss", "status", "files"]);
  assert.deepEqual(tableColumns([], ["epoch"]).map((c) => c.key), ["run", "l:epoch", "status", "files"]); // no best epoch
  assert.deepEqual(columnOf("b:a:b", ["max:a:b"]), { key: "b:a:b", kind: "best", name: "a:b", metric: "a:b", dir: "max" });
  assert.equal(columnOf("x:y"), null);
});

test("rows sort by a column, numbers as numbers, missing values last either way", () => {
  const s = new Summaries();
  const rows = ["a", "b", "c", "d"].map((id, i) => ({ id, config: [{ lr: 0.1 }, { lr: 10 }, { lr: 2 }, {}][i] }));
  const lr = columnOf("c:lr");
  assert.deepEqual(sortRows(rows, lr, s).map((r) => r.id), ["a", "c", "b", "d"]);
  assert.deepEqual(sortRows(rows, lr, s, true).map((r) => r.id), ["b", "c", "a", "d"]);
  s.update("a", { series: new Map([["loss", series([5, 1])]]) });
  s.update("b", { series: new Map([["loss", series([0.5, 2])]]) });
  const best = columnOf("b:loss");
  assert.deepEqual(sortRows(rows, best, s).map((r) => r.id), ["b", "a", "c", "d"]);
  assert.equal(cellValue(rows[0], columnOf("l:loss"), s), 1);
  assert.equal(cellValue(rows[3], lr, s), null);
  assert.equal(cellText(0.1234567), "0.123457");
  assert.equal(cellText(null), "");
});

test("the row filter: comparisons on config keys and metrics, anything else a regex over name and config", () => {
  const s = new Summaries();
  s.update("a", { series: new Map([["val/loss", series([0.3, 0.2])], ["epoch", series([1, 2])]]) });
  s.update("b", { series: new Map([["val/loss", series([0.9])]]) });
  const rows = [{ id: "sweep/a", config: { lr: 0.1, opt: "adam" } }, { id: "sweep/b", config: { lr: 1, opt: "sgd" } }];
  rows[0].id = "a"; rows[1].id = "b";
  const ids = (text) => rows.filter(rowFilter(text, s)).map((r) => r.id);
  assert.deepEqual(ids(""), ["a", "b"]);
  assert.deepEqual(ids("lr>0.5"), ["b"]);
  assert.deepEqual(ids("lr<=0.1 opt=adam"), ["a"]);
  assert.deepEqual(ids("opt!=adam"), ["b"]);
  assert.deepEqual(ids("val/loss<0.25"), ["a"]); // its best (min), not its last
  assert.deepEqual(ids("epoch>=2"), ["a"]); // no direction: its last
  assert.deepEqual(ids("sgd"), ["b"]);
  assert.deepEqual(ids("^A$"), ["a"]); // case-insensitive, over the name
  assert.deepEqual(ids("(adam"), []); // not a regex: its text
});
