// What the page shows of GPUs from the run objects (gpu.js): the lines of the selected runs, the
// overview's rows (unattributed GPUs, idle flags), what the page selects by itself, the time axis.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  GPU_FIELDS, autoSelection, describeUse, formatField, gpuAxis, gpuChart, gpuField, gpuLines, gpuName,
  gpuOverview, hasIdleGpu, idleRuns, isSystemRun, runSpan,
} from "../gpu.js";

const SYS = "_system/node7";
const device = (key, index, extra = {}) => ({ system: SYS, host: "node7", key, uuid: `GPU-${key}-0000`, name: "NVIDIA H100", index, ...extra });
const infos = new Map([
  ["exp/a", { id: "exp/a", status: "running", started: 1764000000.5, updated: 1764000100.2,
    gpus: [device("5f2c1c7e", 0, { by: "uuid", pids: [], idle: false }), device("9a1b2c3d", 1, { by: "pid", pids: [42], idle: true })] }],
  ["exp/b", { id: "exp/b", status: "finished", started: 1763990000, updated: 1763990500.4 }],
  [SYS, { id: SYS, status: "running", last_step: 1764000101, gpus: [
    device("9a1b2c3d", 1, { runs: ["exp/a"], idle: true }), device("5f2c1c7e", 0, { runs: ["exp/a"], idle: false }),
    device("0b0b0b0b", 2, { runs: [], idle: false })] }],
  ["_system/aaa", { id: "_system/aaa", status: "stalled", gpus: [{ system: "_system/aaa", host: "aaa", key: "mig-1", runs: [] }] }],
]);

test("a system run is _system/<node>, at the root or in a folder", () => {
  for (const id of ["_system/node7", "team/_system/n"]) assert.ok(isSystemRun(id), id);
  for (const id of ["_system", "_system/", "exp/_systemx/n", "sys/node7", "_system/a/b"]) assert.ok(!isSystemRun(id), id);
});

test("each selected run gives a line per GPU it uses, over its time span", () => {
  const lines = gpuLines(["exp/a", "exp/b", SYS, "missing"], infos);
  assert.deepEqual(lines.map((l) => [l.run, l.system, l.key, l.name, l.idle]), [
    ["exp/a", SYS, "5f2c1c7e", "GPU 0 (5f2c1c7e)", false],
    ["exp/a", SYS, "9a1b2c3d", "GPU 1 (9a1b2c3d)", true],
  ]);
  assert.deepEqual(lines[0].span, [1764000000, null]); // running: open to now
  assert.equal(lines[0].t0, 1764000000.5); // lines up with the run's own charts on relative time
  assert.equal(new Set(lines.map((l) => l.id)).size, 2);
  assert.deepEqual(runSpan(infos.get("exp/b")), [1763990000, 1763990502]); // ended: to its last record
  assert.deepEqual(runSpan({ status: "running" }), [null, null]);
});

test("malformed gpus entries (log content through the server) give no line", () => {
  const odd = new Map([["r", { gpus: [null, { key: 5 }, { system: SYS }, "x"] }], ["s", { gpus: "no" }]]);
  assert.deepEqual(gpuLines(["r", "s"], odd), []);
});

test("the overview lists every GPU seen, by host and index, and says which no run uses", () => {
  const rows = gpuOverview(infos);
  assert.deepEqual(rows.map((r) => [r.node, r.key, r.runs, r.unattributed, r.idle]), [
    ["aaa", "mig-1", [], true, false],
    ["node7", "5f2c1c7e", ["exp/a"], false, false],
    ["node7", "9a1b2c3d", ["exp/a"], false, true],
    ["node7", "0b0b0b0b", [], true, false],
  ]);
  assert.equal(rows[1].uuid, "GPU-5f2c1c7e-0000");
  assert.equal(rows[1].host, "node7");
  assert.equal(rows[1].last, 1764000101);
  assert.equal(rows[0].last, null);
});

test("the idle flag is the server's: runs with an idle GPU, never a system run", () => {
  assert.deepEqual([...idleRuns(infos)], ["exp/a"]);
  assert.deepEqual([...idleRuns(new Map([["r", { gpus: [{ idle: "yes" }] }]]))], []);
  assert.ok(hasIdleGpu(infos.get("exp/a")));
  assert.ok(!hasIdleGpu(infos.get("exp/b")) && !hasIdleGpu(infos.get(SYS)) && !hasIdleGpu(undefined));
});

test("the page never selects system runs by itself", () => {
  assert.deepEqual(autoSelection([SYS, "b", "a", "_system/x", "c"], 2), ["a", "b"]);
});

test("GPU charts are on a time axis: the page's when it is one, else relative time", () => {
  assert.equal(gpuAxis("wall"), "wall");
  assert.equal(gpuAxis("relative"), "relative");
  assert.equal(gpuAxis("step"), "relative");
  assert.equal(gpuAxis("m:epoch"), "relative");
  for (const [field] of GPU_FIELDS) assert.equal(gpuField(gpuChart(field)), field);
  assert.equal(gpuField("train/loss"), null);
});

test("how a GPU was matched, and its figures, in words", () => {
  assert.equal(describeUse({ by: "uuid" }), "by UUID");
  assert.equal(describeUse({ by: "pid", pids: [4242, 7] }), "by PID 4242, 7");
  assert.equal(gpuName({ key: "mig-1" }), "GPU mig-1");
  assert.equal(formatField("util", 97.4), "97%");
  assert.equal(formatField("mem_used", 3 * 2 ** 30), "3.0 GiB");
  assert.equal(formatField("power", 412.3), "412 W");
  assert.equal(formatField("temp", NaN), "–");
});
