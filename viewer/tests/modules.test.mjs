// The viewer's modules keep to their jobs: requests go through api.js, the chart only draws, and
// every module but the page's entry point loads on its own.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const dir = fileURLToPath(new URL("..", import.meta.url));
const sources = new Map(readdirSync(dir).filter((f) => f.endsWith(".js")).map((f) => [f, readFileSync(join(dir, f), "utf8")]));

/** Lines of `text` matching `pattern`, as "file:line: text", comments left out. */
function hits(file, pattern) {
  const out = [];
  sources.get(file).split("\n").forEach((line, i) => {
    const code = line.replace(/\/\/.*$/, "");
    if (pattern.test(code)) out.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  return out;
}

// What opens a connection to a server from a page.
const REQUEST = /(?<![.\w])fetch\s*\(|new\s+WebSocket\b|XMLHttpRequest|EventSource|sendBeacon/;

test("every request to the sidecar is made in api.js", () => {
  assert.ok(hits("api.js", REQUEST).length >= 2, "api.js makes the requests");
  const outside = [...sources.keys()].filter((f) => f !== "api.js").flatMap((f) => hits(f, REQUEST));
  assert.deepEqual(outside, []);
});

test("the request pattern catches each way of making one", () => {
  for (const s of ["await fetch(url)", "fetch (u)", "new WebSocket(u)", "new XMLHttpRequest()", "new EventSource(u)", "navigator.sendBeacon(u)"]) {
    assert.match(s, REQUEST, s);
  }
  for (const s of ["detail.fetch(range)", "prefetch(x)", "// fetch(u)"]) assert.ok(!REQUEST.test(s.replace(/\/\/.*$/, "")), s);
});

test("the chart only draws: no toolbar, no export, no request, no page layout, no table", () => {
  assert.deepEqual(hits("chart.js", /button|download|toCSV|Blob|createObjectURL|chart-head|chart-title|getElementById|api\.js|tooltip|"table"|"tr"|"td"/), []);
  const imports = [...sources.get("chart.js").matchAll(/from\s+"\.\/([\w.]+)"/g)].map((m) => m[1]).sort();
  assert.deepEqual(imports, ["axes.js", "decimate.js", "dom.js", "frames.js", "paths.js", "scale.js", "smooth.js", "xaxis.js"]);
});

test("each module is small enough to read in one sitting", () => {
  for (const [file, text] of sources) assert.ok(text.split("\n").length <= 400, `${file}: ${text.split("\n").length} lines`);
});

// app.js is the page's entry point: it starts the page when loaded, so it is left to the browser tests.
for (const file of [...sources.keys()].filter((f) => f !== "app.js").sort()) {
  test(`${file} loads, and what it imports exists`, async () => {
    await import(new URL(`../${file}`, import.meta.url));
  });
}
