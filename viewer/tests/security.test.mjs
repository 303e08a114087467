// The viewer's sources keep log content out of the HTML parser and inside the page's CSP.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

const dir = fileURLToPath(new URL("..", import.meta.url));
const sources = readdirSync(dir).filter((f) => f.endsWith(".js")).map((f) => [f, readFileSync(join(dir, f), "utf8")]);

// Sinks that parse a string as markup or code, and what a strict CSP (no 'unsafe-inline',
// no 'unsafe-eval') would block: the page builds its DOM with createElement and text nodes.
const FORBIDDEN_JS = [
  ["innerHTML", /innerHTML/],
  ["outerHTML", /outerHTML/],
  ["insertAdjacentHTML", /insertAdjacentHTML/],
  ["document.write", /document\s*\.\s*write/],
  ["createContextualFragment", /createContextualFragment/],
  ["DOMParser", /DOMParser/],
  ["eval", /\beval\s*\(/],
  ["new Function", /new\s+Function\b/],
  ["string timer", /set(?:Timeout|Interval)\s*\(\s*["'`]/],
  ["javascript: URL", /javascript:/i],
  ["inline style attribute", /style\s*=\s*\\?["']|setAttribute\s*\(\s*["']style["']|\.cssText\b/],
  ["<style> or <script> element", /createElement\s*\(\s*["'](?:style|script)["']|<(?:style|script)\b/i],
];

test("there are viewer sources to check", () => {
  const names = sources.map(([f]) => f);
  for (const f of ["app.js", "chart.js", "panels.js", "runs.js", "dom.js", "api.js"]) assert.ok(names.includes(f), f);
});

for (const [name, pattern] of FORBIDDEN_JS) {
  test(`no ${name} in the viewer's scripts`, () => {
    const hits = [];
    for (const [file, text] of sources) {
      text.split("\n").forEach((line, i) => { if (pattern.test(line)) hits.push(`${file}:${i + 1}: ${line.trim()}`); });
    }
    assert.deepEqual(hits, []);
  });
}

test("index.html has no inline script, inline style or inline handler", () => {
  const html = readFileSync(join(dir, "index.html"), "utf8");
  assert.doesNotMatch(html, /<style\b/i);
  assert.doesNotMatch(html, /\sstyle\s*=/i);
  assert.doesNotMatch(html, /\son[a-z]+\s*=/i);
  assert.doesNotMatch(html, /javascript:/i);
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assert.ok(scripts.length >= 1);
  for (const [, attrs, body] of scripts) {
    assert.match(attrs, /\ssrc="[\w./-]+"/);
    assert.equal(body.trim(), "");
  }
});

test("the pattern check itself catches each sink", () => {
  const samples = ["el.innerHTML = x", "a.outerHTML = b", "el.insertAdjacentHTML('beforeend', s)", "document.write(s)",
    "eval(s)", "new Function('x')", "setTimeout('go()', 1)", "a.href = 'javascript:void 0'",
    '`<i style="color:red">`', "el.setAttribute('style', s)", "el.style.cssText = s", "document.createElement('script')"];
  for (const s of samples) assert.ok(FORBIDDEN_JS.some(([, p]) => p.test(s)), s);
  for (const ok of ["el.style.width = '3px'", "el.replaceChildren(h('p', null, text))", "el.textContent = s"]) {
    assert.ok(!FORBIDDEN_JS.some(([, p]) => p.test(ok)), ok);
  }
});
