import { test } from "node:test";
import assert from "node:assert/strict";
import { describeFound, formatCounts, globFor, READERS } from "../found.js";

const files = (formats, unrecognised = 0, examples = []) => ({ formats, unrecognised, examples });

test("with runs, or before the first runs message, the page says what it always said", () => {
  assert.equal(describeFound({ done: true, files: files({}, 3, ["a.dat"]) }, 2).title, "Select runs on the left to compare them.");
  assert.equal(describeFound(null, 0).title, "Waiting for runs…");
});

test("while the first read is under way, it is looking (and says what it found so far)", () => {
  const d = describeFound({ done: false, bytes: 10, total_bytes: 100, files: files({ jsonl: 2, tfevents: 1 }) }, 0);
  assert.match(d.title, /^Looking for runs/);
  assert.deepEqual(d.notes, ["Found so far: 3 log files (2 jsonl, 1 tfevents)."]);
  assert.deepEqual(describeFound({ done: false }, 0).notes, []);
});

test("files not recognised: how many, up to 8 of them, the formats read and the --include hint", () => {
  const names = Array.from({ length: 8 }, (_, i) => `junk/f${i}.dat`);
  const d = describeFound({ done: true, files: files({}, 11, names) }, 0);
  assert.equal(d.title, "No runs: 11 files found that are not recognised as a log.");
  assert.deepEqual(d.examples, names);
  assert.equal(d.more, 3);
  assert.match(d.notes[0], /JSON lines.*TensorBoard event files.*CSV.*trainer_state\.json.*text logs/);
  assert.equal(d.hint.command, "tailboard serve LOGDIR --include '*.dat=READER'");
  assert.equal(d.hint.after, " with READER one of jsonl, tfevents, csv, jsondoc or text.");
  assert.equal(d.notes[0], "tailboard reads JSON lines, TensorBoard event files, CSV, JSON documents such as trainer_state.json and text logs.");
  assert.deepEqual(READERS.map(([r]) => r), ["jsonl", "tfevents", "csv", "jsondoc", "text"]);
  const one = describeFound({ done: true, files: files({ csv: 1 }, 1, ["x.bin2"]) }, 0);
  assert.equal(one.title, "No runs: 1 file found that is not recognised as a log, and 1 log file (1 csv) with no records in them yet.");
  assert.equal(one.more, 0);
});

test("nothing under the folder, or log files with no records yet, are said so", () => {
  assert.equal(describeFound({ done: true, files: files({}) }, 0).title, "No runs: nothing under the log folder looks like a log yet.");
  assert.equal(describeFound({ done: true }, 0).title, "No runs: nothing under the log folder looks like a log yet.");
  assert.equal(describeFound({ done: true, files: files({ csv: 2 }) }, 0).title, "No runs yet: 2 log files (2 csv) with no records in them yet.");
});

test("the same loading state says the same thing (the page rebuilds only on change)", () => {
  const l = { done: true, files: files({}, 2, ["a.x", "b.y"]) };
  assert.equal(JSON.stringify(describeFound(l, 0)), JSON.stringify(describeFound(structuredClone(l), 0)));
});

test("the glob in the hint comes from a plain suffix only (it is for pasting into a shell)", () => {
  assert.equal(globFor("junk/a.dat"), "*.dat");
  assert.equal(globFor("run/stdout.out_1"), "*.out_1");
  for (const hostile of ["a.$(rm -rf ~)", "a.d'at", "noext", "dir.d/file", ".hidden", "a.<b>", ""]) {
    assert.equal(globFor(hostile), "*.EXT", hostile);
  }
});

test("format counts are sorted by reader and skip zeros", () => {
  assert.equal(formatCounts({ tfevents: 1, csv: 0, jsonl: 2 }), "2 jsonl, 1 tfevents");
  assert.equal(formatCounts(undefined), "");
});
