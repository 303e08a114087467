import { test } from "node:test";
import assert from "node:assert/strict";
import { streamFormats } from "../runs.js";

test("a run's formats are its streams' readers, counted, as text", () => {
  const info = { streams: [{ name: "a", format: "tfevents" }, { name: "b", format: "csv" }, { name: "c", format: "tfevents" }] };
  assert.equal(streamFormats(info), "tfevents ×2, csv");
  assert.equal(streamFormats({ streams: [{ name: "rank0.jsonl", format: "jsonl" }] }), "jsonl");
  // an older sidecar sends no format; a run object without streams has none
  assert.equal(streamFormats({ streams: [{ name: "x" }] }), "unknown");
  assert.equal(streamFormats({}), "");
  assert.equal(streamFormats(undefined), "");
  assert.equal(streamFormats({ streams: [{ format: "a\u202eb" }] }), "a⟨U+202E⟩b");
});
