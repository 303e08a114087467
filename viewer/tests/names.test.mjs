import { test } from "node:test";
import assert from "node:assert/strict";
import { pathLabels, configLabels, differingKeys, runLabels, flatConfig, configValue } from "../names.js";

const obj = (m) => Object.fromEntries(m);

test("path labels keep the parts of the names that differ", () => {
  // the demo's runs: the same depth, the first and last parts shared
  assert.deepEqual(obj(pathLabels(["lr_0.1/seed0", "lr_0.01/seed0", "lr_0.3/seed0"])),
    { "lr_0.1/seed0": "lr_0.1", "lr_0.01/seed0": "lr_0.01", "lr_0.3/seed0": "lr_0.3" });
  // two parts differ: both kept, in order
  assert.deepEqual(obj(pathLabels(["sweep/lr_1/seed0", "sweep/lr_2/seed1"])),
    { "sweep/lr_1/seed0": "lr_1/seed0", "sweep/lr_2/seed1": "lr_2/seed1" });
  // depths differ: the common head and tail go; a name that is all common keeps its last part
  assert.deepEqual(obj(pathLabels(["exp/a/run", "exp/b/c/run", "exp/run"])),
    { "exp/a/run": "a", "exp/b/c/run": "b/c", "exp/run": "run" });
  assert.deepEqual(obj(pathLabels(["only/one"])), { "only/one": "only/one" });
});

test("config labels name the keys whose values differ, short keys when unambiguous", () => {
  const configs = new Map([
    ["a", flatConfig({ lr: 0.1, batch: 64, opt: { name: "adam", beta: 0.9 } })],
    ["b", flatConfig({ lr: 0.01, batch: 64, opt: { name: "sgd", beta: 0.9 } })],
  ]);
  assert.deepEqual(differingKeys(["a", "b"], configs), ["lr", "opt.name"]);
  assert.deepEqual(obj(configLabels(["a", "b"], configs)), { a: "lr=0.1 name=adam", b: "lr=0.01 name=sgd" });
  // nothing differs, or a run's config is not known yet: no config labels
  assert.equal(configLabels(["a", "a2"], new Map([["a", { x: 1 }], ["a2", { x: 1 }]])), null);
  assert.equal(configLabels(["a", "c"], configs), null);
  // a key one run lacks differs; long and structured values are cut
  const more = new Map([["a", { lr: 1 }], ["b", { lr: 1, tags: ["x", "y"], note: "a".repeat(40) }]]);
  assert.deepEqual(obj(configLabels(["a", "b"], more)), { a: "note=– tags=–", b: `note=${"a".repeat(23)}… tags=["x","y"]` });
  assert.equal(configValue("a\u202eb"), "a\u202eb"); // shown through dom.js label(), which makes it visible
});

test("a config key that only restates the run's name is not a label (the demo's run_name)", () => {
  const ids = ["lr_0.3/seed0", "lr_0.1/seed0"];
  const configs = new Map(ids.map((id) => [id, { lr: Number(id.slice(3, 6)), run_name: id, out: `/logs/${id}`, epochs: 30 }]));
  assert.deepEqual(obj(configLabels(ids, configs)), { "lr_0.3/seed0": "lr=0.3", "lr_0.1/seed0": "lr=0.1" });
  // nothing else differs: no config labels, the path says it
  const named = new Map(ids.map((id) => [id, { run_name: id }]));
  assert.equal(configLabels(ids, named), null);
  assert.deepEqual([...runLabels(ids, named).values()], ["lr_0.1", "lr_0.3"]);
});

test("run labels: config when it tells the runs apart, else path, collisions completed, or full names", () => {
  const ids = ["sweep/lr_0.5/seed0", "sweep/lr_0.5/seed1", "sweep/lr_2/seed0"];
  const configs = new Map(ids.map((id) => [id, { lr: Number(id.split("/")[1].slice(3)), seed: Number(id.slice(-1)) }]));
  assert.deepEqual(obj(runLabels(ids, configs)),
    { "sweep/lr_0.5/seed0": "lr=0.5 seed=0", "sweep/lr_0.5/seed1": "lr=0.5 seed=1", "sweep/lr_2/seed0": "lr=2 seed=0" });
  assert.deepEqual([...runLabels(ids, configs, "path").values()], ["lr_0.5/seed0", "lr_0.5/seed1", "lr_2/seed0"]);
  assert.deepEqual([...runLabels(ids, configs, "full").values()], ids);
  // only lr is in the config: two runs share "lr=0.5", auto falls back to the path, config mode completes them
  const lrOnly = new Map(ids.map((id) => [id, { lr: configs.get(id).lr }]));
  assert.deepEqual([...runLabels(ids, lrOnly).values()], ["lr_0.5/seed0", "lr_0.5/seed1", "lr_2/seed0"]);
  assert.deepEqual([...runLabels(ids, lrOnly, "config").values()],
    ["lr=0.5 · lr_0.5/seed0", "lr=0.5 · lr_0.5/seed1", "lr=2"]);
  // no configs yet: by path
  assert.deepEqual([...runLabels(ids).values()], ["lr_0.5/seed0", "lr_0.5/seed1", "lr_2/seed0"]);
});
