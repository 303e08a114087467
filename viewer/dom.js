// DOM by construction: every piece of the page that holds data is built with createElement and text
// nodes, so text from the logs is never parsed as markup (no HTML strings anywhere in the viewer).
// And one display function for every label that comes from the logs: names can carry bidi controls
// and invisible characters that make one run look like another, so those are shown, not applied.

// Attributes that take a URL or run script: never set from here (a data-derived script URL or
// handler would undo what building by construction buys).
const FORBIDDEN_ATTRS = new Set(["href", "src", "srcdoc", "action", "formaction", "xlink:href", "style"]);

/**
 * An element: h("div", { class: "row", title: name, dataset: { run: id }, onclick: fn }, "text", node).
 * String and number children become text nodes; arrays are flattened; null, undefined and false are
 * skipped. Attributes: `class`, `dataset` (object), `style` (object, set through CSSOM, which the
 * page's CSP allows), `on<event>` (function), booleans and `value` as properties, the rest as
 * attributes (URL-bearing ones refused).
 */
export function h(tag, attrs = null, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on")) {
      if (typeof v !== "function") throw new TypeError(`h(): ${k} must be a function, not ${typeof v}`);
      el.addEventListener(k.slice(2), v);
    } else if (FORBIDDEN_ATTRS.has(k.toLowerCase())) {
      throw new TypeError(`h(): refusing to set "${k}"; set URL attributes on the element itself, from values the page made`);
    } else if (v === true || k === "value") el[k] = v;
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Bidi controls (U+200E, U+200F, U+061C, U+202A-U+202E, U+2066-U+2069) are all format characters
// (Cf); with the other controls, line/paragraph separators and every default-ignorable code point
// (zero-width spaces and joiners, fillers, variation selectors, tag characters...) they are what can
// make two different names look alike or one name look reversed.
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/gu;
const HIDDEN_BUT_LINES = /(?![\n\t])[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/gu;

const codePoint = (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`;

/**
 * How a label from the logs is shown: controls and invisible characters as ⟨U+XXXX⟩. The raw value
 * stays what requests and the URL use. `multiline` keeps newlines and tabs (text records).
 */
export function visible(text, { multiline = false } = {}) {
  return String(text ?? "").replace(multiline ? HIDDEN_BUT_LINES : HIDDEN, codePoint);
}

/** A label from the logs as an isolated run of text (<bdi>): its direction cannot leak into its
 *  neighbours, and its hidden characters are shown. */
export function label(text, cls = null) {
  return h("bdi", cls ? { class: cls } : null, visible(text));
}

/** A canvas sized to its CSS box in device pixels, its context scaled to CSS pixels and cleared:
 *  {ctx, w, h} in CSS pixels. What every panel drawing does first. */
export function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(canvas.clientWidth * dpr);
  canvas.height = Math.round(canvas.clientHeight * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  const w = canvas.clientWidth, hgt = canvas.clientHeight;
  ctx.clearRect(0, 0, w, hgt);
  return { ctx, w, h: hgt };
}
