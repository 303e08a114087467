import { test } from "node:test";
import assert from "node:assert/strict";
import { parse, inline, sameOrigin, renderable, MAX_MARKDOWN } from "../markdown.js";

test("blocks: headings, paragraphs, rules, fenced and indented code", () => {
  const blocks = parse("# Title\n\nfirst line\nsecond line\n\n---\n```py\nx = <b>1</b>\n```\n\n    indented\n    code\n");
  assert.deepEqual(blocks.map((b) => b.t), ["h", "p", "rule", "code", "code"]);
  assert.equal(blocks[0].level, 1);
  assert.deepEqual(blocks[0].inl, ["Title"]);
  assert.deepEqual(blocks[1].inl, ["first line\nsecond line"]);
  assert.deepEqual([blocks[3].lang, blocks[3].text], ["py", "x = <b>1</b>"]);
  assert.equal(blocks[4].text, "indented\ncode");
});

test("an unclosed fence runs to the end; a heading needs a space", () => {
  assert.deepEqual(parse("```\na\nb").map((b) => [b.t, b.text]), [["code", "a\nb"]]);
  assert.deepEqual(parse("#notaheading")[0], { t: "p", inl: ["#notaheading"] });
});

test("lists nest by indentation, ordered lists keep their start, items hold blocks", () => {
  const [l] = parse("- a\n- b\n  - b1\n  - b2\n- c\n");
  assert.equal(l.t, "list");
  assert.equal(l.items.length, 3);
  assert.deepEqual(l.items[1].map((b) => b.t), ["p", "list"]);
  assert.equal(l.items[1][1].items.length, 2);
  const [o] = parse("3. three\n4. four\n");
  assert.deepEqual([o.ordered, o.start, o.items.length], [true, 3, 2]);
  // a different marker kind ends the list
  assert.deepEqual(parse("- a\n1. b\n").map((b) => [b.t, b.ordered]), [["list", false], ["list", true]]);
});

test("quotes hold blocks; depth is bounded", () => {
  const [q] = parse("> quoted **bold**\n> - item\n");
  assert.equal(q.t, "quote");
  assert.deepEqual(q.blocks.map((b) => b.t), ["p", "list"]);
  const deep = parse(">".repeat(200) + " x");
  let depth = 0;
  for (let b = deep[0]; b && b.t === "quote"; b = b.blocks[0]) depth++;
  assert.ok(depth <= 9, `${depth} levels`);
});

test("tables: header, alignment, rows, escaped pipes", () => {
  const [t] = parse("| metric | value |\n|:--|--:|\n| loss | 0.5 |\n| a\\|b | `x|y` |\n");
  assert.equal(t.t, "table");
  assert.deepEqual(t.head, [["metric"], ["value"]]);
  assert.deepEqual(t.align, ["left", "right"]);
  assert.equal(t.rows.length, 2);
  assert.deepEqual(t.rows[1][0], ["a|b"]);
});

test("inlines: code, emphasis, strong, strike-through, escapes, hard breaks", () => {
  assert.deepEqual(inline("a `<i>x</i>` b"), ["a ", { t: "code", text: "<i>x</i>" }, " b"]);
  assert.deepEqual(inline("*em* and **strong** and ~~gone~~"), [
    { t: "em", inl: ["em"] }, " and ", { t: "strong", inl: ["strong"] }, " and ", { t: "del", inl: ["gone"] }]);
  assert.deepEqual(inline("snake_case_name stays"), ["snake_case_name stays"]);
  assert.deepEqual(inline("2 * 3 * 4"), ["2 * 3 * 4"]);
  assert.deepEqual(inline("\\*not em\\*"), ["*not em*"]);
  assert.deepEqual(inline("line  \nnext"), ["line", { t: "br" }, "next"]);
  assert.deepEqual(inline("<b>raw html</b>"), ["<b>raw html</b>"]);
});

test("links and images are parsed; their URLs are checked only when drawn", () => {
  assert.deepEqual(inline('see [the *run*](/?runs=a "a run") now'), [
    "see ", { t: "link", href: "/?runs=a", title: "a run", inl: ["the ", { t: "em", inl: ["run"] }] }, " now"]);
  assert.deepEqual(inline("![a cat](http://x/cat.png)"), [{ t: "img", alt: "a cat", href: "http://x/cat.png" }]);
  assert.deepEqual(inline("<https://example.org/a>"), [{ t: "link", href: "https://example.org/a", inl: ["https://example.org/a"] }]);
  assert.deepEqual(inline("[not a link] (x)"), ["[not a link] (x)"]);
});

test("only same-origin http(s) URLs are live", () => {
  const ctx = { origin: "http://127.0.0.1:6007", base: "http://127.0.0.1:6007/tb/?runs=a" };
  assert.equal(sameOrigin("?runs=b", ctx), "http://127.0.0.1:6007/tb/?runs=b");
  assert.equal(sameOrigin("/api/runs", ctx), "http://127.0.0.1:6007/api/runs");
  for (const bad of ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "java\tscript:alert(1)", "data:text/html,<script>x</script>",
    "https://evil.example/", "//evil.example/x", "http://127.0.0.1:6008/", "vbscript:x", "file:///etc/passwd", "http://[bad"]) {
    assert.equal(sameOrigin(bad, ctx), null, bad);
  }
});

test("any text parses without throwing, in bounded time", () => {
  const nasty = ["*".repeat(5000), "[".repeat(3000) + "](x)", "`".repeat(4000), "| a |\n|-|\n" + "|x".repeat(3000),
    "- ".repeat(2000) + "x", "_a".repeat(4000), "\\".repeat(5000), "> ".repeat(3000)];
  for (const s of nasty) {
    const t0 = performance.now();
    parse(s);
    assert.ok(performance.now() - t0 < 2000, `${s.slice(0, 10)}… took ${performance.now() - t0} ms`);
  }
  assert.ok(renderable("x".repeat(MAX_MARKDOWN)));
  assert.ok(!renderable("x".repeat(MAX_MARKDOWN + 1)));
});
