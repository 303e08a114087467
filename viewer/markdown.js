// Markdown of text records (what TensorBoard's text panel renders too), made safe by construction:
// parse() turns the text into a plain tree of blocks and inlines, render() builds DOM nodes from it
// with h() and text nodes. No HTML is ever parsed: a tag written in a log (a bold or a script tag)
// is shown as its characters. Links are live only when they stay on the page's own origin (a run's notes linking to
// another view); any other URL is shown as inert text with the address on hover, so a log can't send
// a click anywhere. Images are never loaded: their alt text is shown.
//
// The subset is CommonMark's everyday part plus GitHub tables: headings, paragraphs, emphasis,
// strong, strike-through, code spans, fenced and indented code, block quotes, lists (nested by
// indentation), rules, tables, links, hard breaks and backslash escapes. Input and depth are bounded;
// beyond the bound the text is shown raw.

import { h, visible } from "./dom.js";

export const MAX_MARKDOWN = 64 * 1024; // characters rendered as Markdown; longer texts are shown raw
const MAX_DEPTH = 8; // nested quotes and lists
const MAX_SPAN = 4096; // characters a code span, an emphasis or a link's address may span: keeps parsing linear

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?(?:\s+#+)?\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:\s+(.*))?$/;
const INDENTED = /^(?: {4}|\t)(.*)$/;
const TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*$/;

/** Whether `text` is Markdown worth rendering (bounded); otherwise it is shown raw. */
export function renderable(text) {
  return typeof text === "string" && text.length <= MAX_MARKDOWN;
}

/** The block tree of `text`: [{t: "p"|"h"|"code"|"quote"|"list"|"rule"|"table", ...}]. */
export function parse(text, depth = 0) {
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  const interrupts = (line) => FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line)
    || (ITEM.test(line) && ITEM.exec(line)[3] !== undefined);
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) { i++; continue; }
    if ((m = FENCE.exec(line))) {
      const fence = m[1], body = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence); i++) body.push(lines[i]);
      i++;
      blocks.push({ t: "code", lang: m[2] || "", text: body.join("\n") });
    } else if ((m = HEADING.exec(line))) {
      blocks.push({ t: "h", level: m[1].length, inl: inline(m[2] || "") });
      i++;
    } else if (RULE.test(line)) {
      blocks.push({ t: "rule" });
      i++;
    } else if (QUOTE.test(line) && depth < MAX_DEPTH) {
      const body = [];
      for (; i < lines.length && lines[i].trim(); i++) body.push((QUOTE.exec(lines[i]) || [null, lines[i]])[1]);
      blocks.push({ t: "quote", blocks: parse(body.join("\n"), depth + 1) });
    } else if ((m = ITEM.exec(line)) && m[3] !== undefined && depth < MAX_DEPTH) {
      i = list(lines, i, depth, blocks);
    } else if (INDENTED.test(line)) {
      const body = [];
      for (; i < lines.length && (INDENTED.test(lines[i]) || !lines[i].trim()); i++) body.push(lines[i].replace(/^(?: {4}|\t)/, ""));
      while (body.length && !body[body.length - 1].trim()) body.pop();
      blocks.push({ t: "code", lang: "", text: body.join("\n") });
    } else if (line.includes("|") && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1]) && lines[i + 1].includes("-")) {
      const head = cells(line), align = cells(lines[i + 1]).map(alignment), rows = [];
      for (i += 2; i < lines.length && lines[i].trim() && lines[i].includes("|"); i++) rows.push(cells(lines[i]).map(inline));
      blocks.push({ t: "table", head: head.map(inline), align, rows });
    } else {
      const body = [line];
      for (i++; i < lines.length && lines[i].trim() && !interrupts(lines[i]); i++) body.push(lines[i]);
      blocks.push({ t: "p", inl: inline(body.join("\n")) });
    }
  }
  return blocks;
}

/** A list starting at lines[i]: its items, each the lines indented under its marker; the next index. */
function list(lines, i, depth, blocks) {
  const first = ITEM.exec(lines[i]);
  const ordered = /\d/.test(first[2]), indent = first[1].length;
  const items = [];
  while (i < lines.length) {
    const m = ITEM.exec(lines[i]);
    if (!m || m[3] === undefined || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
    const inner = m[1].length + m[2].length + 1, body = [m[3]];
    for (i++; i < lines.length; i++) {
      const l = lines[i];
      if (!l.trim()) {
        // a blank line continues the item only when an indented line follows it
        if (i + 1 < lines.length && lines[i + 1].search(/\S/) >= inner) { body.push(""); continue; }
        break;
      }
      const lead = l.search(/\S/);
      if (lead >= inner) body.push(l.slice(inner));
      else if (lead > indent && ITEM.test(l)) body.push(l.slice(Math.min(lead, inner)));
      else if (!ITEM.test(l) && !FENCE.test(l) && !HEADING.test(l) && !QUOTE.test(l)) body.push(l.trim()); // lazy continuation
      else break;
    }
    items.push(parse(body.join("\n"), depth + 1));
  }
  blocks.push({ t: "list", ordered, start: ordered ? parseInt(first[2], 10) : 1, items });
  return i;
}

function cells(line) {
  let s = line.trim();
  if (s.startsWith("|")) s = s.slice(1);
  if (s.endsWith("|") && !s.endsWith("\\|")) s = s.slice(0, -1);
  return s.split(/(?<!\\)\|/).map((c) => c.trim().replace(/\\\|/g, "|"));
}

function alignment(cell) {
  const l = cell.startsWith(":"), r = cell.endsWith(":");
  return l && r ? "center" : r ? "right" : l ? "left" : "";
}

const ESCAPABLE = "\\`*_{}[]()#+-.!|~<>\"'";

/** The inline tree of `text`: strings and {t: "code"|"em"|"strong"|"del"|"link"|"img"|"br", ...}. */
export function inline(text, depth = 0) {
  const out = [];
  let buf = "", i = 0, close = null;
  const found = new Map(), places = (d) => found.get(d) ?? found.set(d, closers(text, d)).get(d);
  const flush = () => { if (buf) out.push(buf); buf = ""; };
  while (i < text.length) {
    const c = text[i], rest = text.slice(i, i + MAX_SPAN + 8);
    let m;
    if (c === "\\" && i + 1 < text.length && ESCAPABLE.includes(text[i + 1])) { buf += text[i + 1]; i += 2; continue; }
    if (c === "\\" && text[i + 1] === "\n") { flush(); out.push({ t: "br" }); i += 2; continue; }
    if (c === "\n") {
      if (buf.endsWith("  ")) { buf = buf.replace(/ +$/, ""); flush(); out.push({ t: "br" }); } else buf += "\n";
      i++;
      continue;
    }
    if (c === "`" && (m = /^(`+)([^]*?[^`])\1(?!`)/.exec(rest))) {
      flush();
      out.push({ t: "code", text: m[2].replace(/\n/g, " ").replace(/^ (.+) $/, "$1") });
      i += m[0].length;
      continue;
    }
    if (depth < MAX_DEPTH && (c === "[" || (c === "!" && text[i + 1] === "[")) && (m = link(text, i, (close ??= brackets(text))))) {
      flush();
      const img = c === "!";
      out.push(img ? { t: "img", alt: m.label, href: m.href } : { t: "link", href: m.href, title: m.title, inl: inline(m.label, depth + 1) });
      i += m.length;
      continue;
    }
    if (c === "<" && (m = /^<((?:https?|mailto):[^\s<>]+)>/i.exec(rest))) {
      flush();
      out.push({ t: "link", href: m[1], inl: [m[1]] });
      i += m[0].length;
      continue;
    }
    if (depth < MAX_DEPTH && (m = emphasis(text, i, buf, places))) {
      flush();
      out.push({ t: m.t, inl: inline(m.inner, depth + 1) });
      i += m.length;
      continue;
    }
    buf += c;
    i++;
  }
  flush();
  return out;
}

/** For each `[` of text, the index of its matching `]` (escapes skipped): one pass, so links parse
 * in linear time however many brackets a line has. */
function brackets(text) {
  const close = new Map(), open = [];
  for (let j = 0; j < text.length; j++) {
    if (text[j] === "\\") j++;
    else if (text[j] === "[") open.push(j);
    else if (text[j] === "]" && open.length) close.set(open.pop(), j);
  }
  return close;
}

/** `[label](href "title")` (or `![...]`) starting at text[i]: {label, href, title, length}, or null. */
function link(text, i, close) {
  const at = text[i] === "!" ? i + 1 : i, j = close.get(at);
  if (j === undefined || text[j + 1] !== "(") return null;
  const m = /^\(\s*(<[^<>\n]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+("[^"]*"|'[^']*'))?\s*\)/.exec(text.slice(j + 1, j + 1 + MAX_SPAN));
  if (!m) return null;
  const href = m[1].startsWith("<") ? m[1].slice(1, -1) : m[1];
  return { label: text.slice(at + 1, j), href, title: m[2] ? m[2].slice(1, -1) : "", length: j + 1 + m[0].length - i };
}

const WORD = /[\p{L}\p{N}]/u;

/** Where delimiter d can close an emphasis in text: after a non-space, not escaped, not followed by
 * more of a single delimiter, and for `_` not inside a word. Whether a place closes does not depend on
 * the opener, so the places are listed once per text and each opener looks its closer up. */
function closers(text, d) {
  const out = [];
  for (let k = text.indexOf(d, 1); k >= 0; k = text.indexOf(d, k + 1)) {
    const prev = text[k - 1], next = text[k + d.length] || "";
    if (prev === "\\" || /\s/.test(prev) || (d.length === 1 && next === d)) continue;
    if (d[0] === "_" && WORD.test(next)) continue;
    out.push(k);
  }
  return out;
}

/** Emphasis opening at text[i] (not inside a word for `_`): {t, inner, length}, or null.
 * `places(d)` gives closers(text, d), computed once. */
function emphasis(text, i, before, places) {
  const m = /^(\*\*|__|~~|\*|_)/.exec(text.slice(i, i + 2));
  if (!m) return null;
  const d = m[1];
  if (d[0] === "_" && WORD.test(before.slice(-1))) return null; // snake_case_names stay as they are
  if (!text[i + d.length] || /\s/.test(text[i + d.length])) return null; // an opener is followed by text
  const list = places(d), first = i + d.length + 1;
  let lo = 0, hi = list.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (list[mid] < first) lo = mid + 1; else hi = mid; }
  const k = list[lo];
  if (k === undefined || k - i > MAX_SPAN) return null;
  return { t: d === "~~" ? "del" : d.length === 2 ? "strong" : "em", inner: text.slice(i + d.length, k), length: k + d.length - i };
}

// ---- DOM --------------------------------------------------------------------------------------

/**
 * The nodes of `text` rendered: a document fragment of blocks. `origin` is the page's origin (links
 * to it stay live); `base` resolves relative links.
 */
export function render(text, { origin = location.origin, base = location.href } = {}) {
  const frag = document.createDocumentFragment();
  for (const b of parse(text)) frag.append(block(b, { origin, base }));
  return frag;
}

function block(b, ctx) {
  switch (b.t) {
    case "h": return h(`h${Math.min(6, b.level + 2)}`, { class: "md-h" }, inlines(b.inl, ctx)); // below the panel's own headings
    case "code": return h("pre", { class: "md-code", dataset: b.lang ? { lang: visible(b.lang) } : null }, h("code", null, visible(b.text, { multiline: true })));
    case "quote": return h("blockquote", null, b.blocks.map((x) => block(x, ctx)));
    case "rule": return h("hr");
    case "list": {
      const el = h(b.ordered ? "ol" : "ul", null, b.items.map((item) => h("li", null, item.map((x) => block(x, ctx)))));
      if (b.ordered && b.start !== 1) el.start = b.start;
      return el;
    }
    case "table": {
      const cell = (tag, inl, k) => h(tag, { class: b.align[k] ? `md-${b.align[k]}` : null }, inlines(inl, ctx));
      return h("table", { class: "md-table" },
        h("thead", null, h("tr", null, b.head.map((c, k) => cell("th", c, k)))),
        h("tbody", null, b.rows.map((r) => h("tr", null, b.head.map((_, k) => cell("td", r[k] || [], k))))));
    }
    default: return h("p", null, inlines(b.inl, ctx));
  }
}

function inlines(list, ctx) {
  return list.map((x) => {
    if (typeof x === "string") return visible(x, { multiline: true });
    switch (x.t) {
      case "br": return h("br");
      case "code": return h("code", null, visible(x.text));
      case "em": return h("em", null, inlines(x.inl, ctx));
      case "strong": return h("strong", null, inlines(x.inl, ctx));
      case "del": return h("del", null, inlines(x.inl, ctx));
      case "img": return h("span", { class: "md-img", title: visible(x.href) }, `[image: ${visible(x.alt)}]`);
      default: return anchor(x, ctx);
    }
  });
}

/** A link: live when it resolves to an http(s) URL of the page's own origin, inert text otherwise. */
export function sameOrigin(href, { origin, base }) {
  try {
    const url = new URL(href, base);
    return (url.protocol === "http:" || url.protocol === "https:") && url.origin === origin ? url.href : null;
  } catch {
    return null;
  }
}

function anchor(x, ctx) {
  const href = sameOrigin(x.href, ctx);
  if (!href) return h("span", { class: "md-link-inert", title: `not opened (another site): ${visible(x.href)}` }, inlines(x.inl, ctx));
  const a = h("a", { rel: "noopener noreferrer", title: x.title ? visible(x.title) : null }, inlines(x.inl, ctx));
  a.href = href; // a URL of this page's own origin, checked above
  return a;
}
