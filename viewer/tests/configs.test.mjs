import { test } from "node:test";
import assert from "node:assert/strict";
import { RunConfigs } from "../configs.js";

test("configs come with the run objects; a change bumps the version, the same config sent again does not", () => {
  const c = new RunConfigs();
  assert.ok(c.update([{ id: "a", config: { lr: 0.1 } }, { id: "b", config: { lr: 1 }, config_truncated: true }], [], true));
  assert.deepEqual(c.configs.get("a"), { lr: 0.1 });
  assert.ok(c.truncated.has("b"));
  const v = c.version;
  assert.ok(!c.update([{ id: "a", config: { lr: 0.1 } }]));
  assert.equal(c.version, v);
  assert.ok(c.update([{ id: "a", config: { lr: 0.2 } }]));
  assert.ok(c.update([], ["b"]));
  assert.ok(!c.configs.has("b") && !c.truncated.has("b"));
  // a run object without one (an older sidecar) has an empty config; a full list drops the others
  c.update([{ id: "z" }], [], true);
  assert.deepEqual([...c.configs], [["z", {}]]);
});
