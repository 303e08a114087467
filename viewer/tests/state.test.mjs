import { test } from "node:test";
import assert from "node:assert/strict";
import { SeriesBuffer, RunData, runColor, assignHues, setColorSelection, viewToQuery, queryToView, groupByPrefix, buildTree, compactTree, toCSV, csvName, DEFAULT_VIEW, MAX_POINTS } from "../state.js";

test("a series buffer replaces, appends and bumps its version", () => {
  const b = new SeriesBuffer(2);
  b.replace({ steps: [0, 1], values: [1, "NaN"], times: [10, 11] });
  const v0 = b.version;
  b.append({ steps: [2, 3, 4], values: [3, 4, "Infinity"], times: [12, 13, 14] });
  assert.ok(b.version > v0);
  const v = b.view();
  assert.deepEqual([...v.steps], [0, 1, 2, 3, 4]);
  assert.ok(Number.isNaN(v.values[1]));
  assert.equal(v.values[4], Infinity);
  assert.deepEqual(b.last(), { step: 4, value: Infinity, time: 14 });
});

test("compaction bounds memory but keeps extremes and the latest point", () => {
  const b = new SeriesBuffer();
  const n = 50000;
  b.append({ steps: Array.from({ length: n }, (_, i) => i), values: Array.from({ length: n }, (_, i) => (i === 1234 ? 99 : 0)), times: [] });
  assert.ok(b.compact(4000));
  assert.ok(b.length <= 4000 + 4);
  const v = b.view();
  assert.ok([...v.values].includes(99));
  assert.equal(v.steps[b.length - 1], n - 1);
});

test("run data applies snapshots and deltas", () => {
  const r = new RunData("a/b");
  r.applySnapshot({ series: { "train/loss": { steps: [0], values: [2], times: [1] } } });
  r.applyDelta({ series: { "train/loss": { steps: [1], values: [1.5], times: [2] }, "eval/acc": { steps: [1], values: [0.5], times: [2] } } });
  assert.equal(r.series.get("train/loss").length, 2);
  assert.equal(r.series.get("eval/acc").length, 1);
  r.applySnapshot({ series: {} });
  assert.equal(r.series.size, 0);
});

test("run colours are stable and differ between runs", () => {
  assert.equal(runColor("lr_0.1/seed0"), runColor("lr_0.1/seed0"));
  assert.notEqual(runColor("lr_0.1/seed0"), runColor("lr_0.01/seed0"));
});

test("the view round-trips through the URL", () => {
  const view = { ...DEFAULT_VIEW, runs: ["a/b", "c"], smoothing: 0.9, xaxis: "wall", logy: true, zoom: [10, 200], filter: "lr_.*" };
  const back = queryToView(viewToQuery(view));
  assert.deepEqual(back, view);
  assert.deepEqual(queryToView("smooth=7&x=bogus&zoom=5,1"), { ...DEFAULT_VIEW, runs: [] });
});

test("metrics group by tag prefix and runs build a folder tree", () => {
  const g = groupByPrefix(["train/loss", "eval/acc", "train/acc", "lr"]);
  assert.deepEqual([...g.keys()], ["", "eval", "train"]);
  assert.deepEqual(g.get("train"), ["train/acc", "train/loss"]);
  const t = buildTree(["lr_0.1/seed0", "lr_0.1/seed1", "base"]);
  assert.deepEqual([...t.children.keys()], ["base", "lr_0.1"]);
  assert.equal(t.children.get("lr_0.1").children.get("seed1").run, "lr_0.1/seed1");
});

test("CSV export writes one row per point", () => {
  const b = new SeriesBuffer();
  b.append({ steps: [0, 1], values: [1, 2], times: [5, 6] });
  const csv = toCSV("loss", [["r", b]]);
  assert.equal(csv, 'run,metric,step,value,wall_time\n"r","loss",0,1,5\n"r","loss",1,2,6\n');
});

test("a CSV of a run of several ranks holds every rank's points, a block per rank labelled with it", () => {
  const ddp = new RunData("ddp");
  // the sidecar's names: rank 0's series is the metric's, rank N's `loss@rankN` (they come in any order)
  ddp.applySnapshot({ series: {
    "loss@rank2": { steps: [0, 1], values: [3, 3.5], times: [10, 11] },
    loss: { steps: [0, 1, 2], values: [1, 1.5, 1.25], times: [10, 11, 12] },
    "loss@rank1": { steps: [0], values: [2], times: [null] },
    "loss@rank10": { steps: [4], values: [-0.5], times: [14] },
    "lossy@rank1": { steps: [0], values: [9], times: [10] }, // another metric's
    "loss@rank0": { steps: [0], values: [8], times: [10] }, // no rank of this run's: a metric of its own
    acc: { steps: [0], values: [0.5], times: [10] },
  } });
  const solo = new SeriesBuffer();
  solo.append({ steps: [7], values: [4], times: [20] });
  assert.deepEqual(ddp.ranksOf("loss").map(([rank]) => rank), [0, 1, 2, 10]);
  assert.equal(ddp.ranksOf("acc"), null);
  const csv = toCSV("loss", [["ddp", ddp.series.get("loss")], ["solo", solo]]);
  assert.equal(csv, [
    "run,rank,metric,step,value,wall_time",
    '"ddp",0,"loss",0,1,10', '"ddp",0,"loss",1,1.5,11', '"ddp",0,"loss",2,1.25,12',
    '"ddp",1,"loss",0,2,',
    '"ddp",2,"loss",0,3,10', '"ddp",2,"loss",1,3.5,11',
    '"ddp",10,"loss",4,-0.5,14',
    '"solo",,"loss",7,4,20',
  ].join("\n") + "\n");
  // a metric no other rank logs: the CSV of a run without ranks, as before
  assert.equal(toCSV("acc", [["ddp", ddp.series.get("acc")]]), 'run,metric,step,value,wall_time\n"ddp","acc",0,0.5,10\n');
});

test("names in a CSV are quoted and never read as a formula", () => {
  assert.equal(csvName("sweep/lr_0.1"), '"sweep/lr_0.1"');
  assert.equal(csvName('say "hi", then,\nleave'), '"say ""hi"", then,\nleave"');
  for (const lead of ["=", "+", "-", "@", "\t", "\r"]) assert.equal(csvName(`${lead}1+1`), `"'${lead}1+1"`);
  assert.equal(csvName('=HYPERLINK("x")'), `"'=HYPERLINK(""x"")"`);
  const b = new SeriesBuffer();
  b.append({ steps: [3], values: [-2], times: [5] });
  // a value is a number, written as one, even when it starts with a minus
  assert.equal(toCSV("@loss", [["=cmd|x", b]]), 'run,metric,step,value,wall_time\n"\'=cmd|x","\'@loss",3,-2,5\n');
});

test("a long live stream stays within MAX_POINTS per series, arrays included", () => {
  const r = new RunData("r");
  let step = 0;
  for (let chunk = 0; chunk < 60; chunk++) {
    const n = 5000;
    const steps = [], values = [], times = [];
    for (let i = 0; i < n; i++, step++) { steps.push(step); values.push(Math.sin(step / 100) + (step === 123457 ? 50 : 0)); times.push(step); }
    r.applyDelta({ series: { loss: { steps, values, times } } });
  }
  const b = r.series.get("loss");
  assert.ok(b.length <= MAX_POINTS, `${b.length} points held`);
  assert.ok(b.steps.length <= 2 * MAX_POINTS + 16, `capacity ${b.steps.length}`);
  assert.equal(b.steps[b.length - 1], step - 1); // the latest point is kept
  assert.equal(Math.max(...b.values.subarray(0, b.length)), 50 + Math.sin(123457 / 100)); // and the spike
  assert.equal(b.total, step);
});

test("runs drawn together get hues far apart (40 degrees up to 5 runs, 30 up to 7), the same for the same set", () => {
  const hueOf = (c) => Number(/hsl\((\d+)/.exec(c)[1]);
  const gap = (a, b) => { const d = Math.abs(a - b) % 360; return Math.min(d, 360 - d); };
  for (let trial = 0; trial < 200; trial++) {
    const n = 2 + (trial % 6);
    const ids = Array.from({ length: n }, (_, i) => `sweep/lr_${trial}_${i}/seed${i}`);
    const hues = assignHues(ids);
    const shuffled = assignHues([...ids].reverse());
    assert.deepEqual([...hues.entries()].sort(), [...shuffled.entries()].sort()); // order-independent
    setColorSelection(ids);
    const hs = ids.map((id) => hueOf(runColor(id)));
    const min = n <= 5 ? 40 : 30;
    for (let i = 0; i < hs.length; i++) for (let j = i + 1; j < hs.length; j++) assert.ok(gap(hs[i], hs[j]) >= min, `${hs}`);
    assert.equal(runColor(ids[0]), runColor(ids[0])); // stable
  }
  setColorSelection([]);
});

test("a run keeps its colour when another is deselected, and gets it back when reselected", () => {
  const ids = ["opt/adam", "opt/lion", "opt/sgd"];
  // from nothing, the colours are those of the set alone
  setColorSelection([]);
  setColorSelection(ids);
  const before = Object.fromEntries(ids.map((id) => [id, runColor(id)]));
  assert.deepEqual(assignHues(ids), assignHues([...ids].reverse()));
  setColorSelection(["opt/lion", "opt/sgd"]);
  assert.equal(runColor("opt/lion"), before["opt/lion"]);
  assert.equal(runColor("opt/sgd"), before["opt/sgd"]);
  // the set alone would have moved them: what is kept is what the user saw
  assert.notDeepEqual([...assignHues(["opt/lion", "opt/sgd"]).values()], [...assignHues(ids).values()].slice(1));
  setColorSelection(ids);
  assert.deepEqual(Object.fromEntries(ids.map((id) => [id, runColor(id)])), before);
  setColorSelection([]);
});

test("pins, the enlarged chart, folded groups, columns and labels round-trip through the URL", () => {
  const view = { ...DEFAULT_VIEW, runs: ["a"], pins: ["train/loss", "x,y"], big: "eval/acc", fold: ["", "train"], cols: 3, labels: "path" };
  const q = viewToQuery(view);
  assert.deepEqual(queryToView(q), view);
  assert.deepEqual(new URLSearchParams(q).getAll("pin"), ["train/loss", "x,y"]); // a comma in a name is kept
  const bad = queryToView("cols=9&labels=bogus&pin=&pin=a&pin=a");
  assert.equal(bad.cols, 0);
  assert.equal(bad.labels, "auto");
  assert.deepEqual(bad.pins, ["a"]);
  assert.equal(viewToQuery({ ...DEFAULT_VIEW, runs: [] }), "");
});

test("a folder holding one thing only is one node with it", () => {
  const t = compactTree(buildTree(["sweep/lr_0.1/seed0", "sweep/lr_0.01/seed0", "deep/a/b/c/run", "deep/a/b/c/run2", "solo"]));
  assert.deepEqual([...t.children.values()].map((n) => n.name), ["deep/a/b/c", "solo", "sweep"]);
  const sweep = t.children.get("sweep");
  assert.deepEqual([...sweep.children.values()].map((n) => [n.name, n.run]),
    [["lr_0.01/seed0", "sweep/lr_0.01/seed0"], ["lr_0.1/seed0", "sweep/lr_0.1/seed0"]]);
  assert.deepEqual([...t.children.get("deep").children.keys()], ["run", "run2"]);
});

test("groups, per chart x axes and the runs table's state round-trip through the URL", () => {
  const view = { ...DEFAULT_VIEW, runs: ["a"], xaxis: "m:tokens seen", group: "re:lr_([\\d.]+),x", agg: "median", band: "std",
    members: true, gopen: ["lr=0.1", "a,b"], cx: [["train/loss", "m:epoch"], ["a,b", "relative"]],
    hsort: "b:val/loss", hdesc: true, hdir: ["max:loss", "min:a:b"], hfilter: "lr>0.01 adam", hx: "c:lr", hy: "b:val/loss" };
  assert.deepEqual(queryToView(viewToQuery(view)), view);
  assert.equal(viewToQuery(DEFAULT_VIEW), "");
  // what is not a rule, an axis or a direction is left out
  const bad = queryToView("x=m:&group=path:0&agg=max&band=x&cx=nope&cx=[\"m\",\"bogus\"]&cx=[\"m\",\"step\"]&hdir=best:x");
  assert.deepEqual([bad.xaxis, bad.group, bad.agg, bad.band, bad.cx, bad.hdir], ["step", "", "mean", "minmax", [["m", "step"]], []]);
});
