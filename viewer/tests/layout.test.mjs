import { test } from "node:test";
import assert from "node:assert/strict";
import { arrange } from "../layout.js";

const keys = (sections) => sections.map(([k, metrics]) => [typeof k === "symbol" ? "pinned" : k, metrics]);

test("charts are placed by name whatever order they came in, pinned ones first in pin order", () => {
  const names = new Set(["train/loss", "eval/acc", "lr", "train/acc"]);
  assert.deepEqual(keys(arrange(names)), [["", ["lr"]], ["eval", ["eval/acc"]], ["train", ["train/acc", "train/loss"]]]);
  // the same set in another order (a filter cleared): the same places
  assert.deepEqual(arrange(new Set([...names].reverse())), arrange(names));
  assert.deepEqual(keys(arrange(names, ["train/loss", "gone", "lr"])),
    [["pinned", ["train/loss", "lr"]], ["eval", ["eval/acc"]], ["train", ["train/acc"]]]);
  // a pin whose chart is not shown (filtered out) makes no pinned section
  assert.deepEqual(keys(arrange(new Set(["eval/acc"]), ["lr"])), [["eval", ["eval/acc"]]]);
});
