import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { decodeValues, decodeSeries, parseMessage, subscribeMessage, CursorBook, KNOWN_TYPES } from "../protocol.js";

test("non-finite spellings decode to the floats they stand for", () => {
  const v = decodeValues([1.5, "NaN", "Infinity", "-Infinity", 0]);
  assert.equal(v[0], 1.5);
  assert.ok(Number.isNaN(v[1]));
  assert.equal(v[2], Infinity);
  assert.equal(v[3], -Infinity);
  assert.equal(v[4], 0);
});

test("unknown or malformed messages are dropped, never thrown", () => {
  assert.equal(parseMessage("{not json"), null);
  assert.equal(parseMessage('{"type":"bogus"}'), null);
  assert.equal(parseMessage("[1,2]"), null);
  assert.equal(parseMessage('{"type":"pong"}').type, "pong");
});

test("every message type the sidecar sends is one the page reads", () => {
  // the sidecar's messages are built in sidecar/protocol.py, each as {"type": "<name>", ...}
  const server = readFileSync(join(dirname(fileURLToPath(import.meta.url)), "../../sidecar/protocol.py"), "utf8");
  const sent = [...server.matchAll(/"type": "(\w+)"/g)].map((m) => m[1]);
  assert.ok(sent.length >= 7, `${sent.length} message types found in sidecar/protocol.py`);
  for (const type of sent) {
    assert.ok(KNOWN_TYPES.has(type), `the page drops "${type}" messages`);
    assert.equal(parseMessage(JSON.stringify({ type })).type, type);
  }
});

test("subscribe carries only the cursors of the runs asked for", () => {
  const m = subscribeMessage(["a", "b"], { cursors: { a: "c1", z: "c9" }, points: 500 });
  assert.deepEqual(m, { op: "subscribe", runs: ["a", "b"], metrics: null, points: 500, cursors: { a: "c1" } });
});

test("the cursor book keeps the latest cursor and forgets it on reset", () => {
  const book = new CursorBook();
  book.advance("r", "c1");
  book.advance("r", "c2");
  book.advance("r", null);
  assert.equal(book.get("r"), "c2");
  assert.deepEqual(book.forRuns(["r", "x"]), { r: "c2" });
  book.reset("r");
  assert.equal(book.get("r"), undefined);
});

const here = dirname(fileURLToPath(import.meta.url));
const fixtures = join(here, "..", "..", "tests", "fixtures", "protocol");

test("the shared protocol fixtures parse and decode", { skip: !existsSync(fixtures) && "no shared fixtures yet" }, () => {
  const files = readdirSync(fixtures).filter((f) => f.endsWith(".json"));
  assert.ok(files.length > 0);
  for (const f of files) {
    const raw = JSON.parse(readFileSync(join(fixtures, f), "utf8"));
    const msgs = Array.isArray(raw) ? raw : [raw];
    for (const m of msgs) {
      if (!m || typeof m !== "object" || !("type" in m)) continue; // client messages or other shapes
      const msg = parseMessage(JSON.stringify(m));
      assert.ok(msg, `${f}: ${JSON.stringify(m).slice(0, 80)}`);
      for (const part of Object.values(msg.series || {})) {
        const s = decodeSeries(part);
        assert.equal(s.steps.length, s.values.length, f);
      }
    }
  }
});
