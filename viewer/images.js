// The Images panel: one card per image name, the selected runs side by side, a step slider over
// the steps any of them logged; each run shows its latest image at or before that step.
//
// While the panel is shown it follows the runs: once a second it compares each run's record count in
// the run list (kept current by the page's connection) with the one its image list was asked at, and
// asks again only for runs that changed; a slider at the latest step moves on with new images.
//
// The PNG bytes come through api.js like every other request (the token is a header, so an <img>
// cannot fetch them itself): as base64 in JSON, made a Blob and an object URL. Each card keeps the
// object URLs it shows and revokes one when its image is replaced, and all of them when the panel
// is built again. Small images are scaled up with pixelated rendering (a 28x28 sample stays crisp).

import { getJSON } from "./api.js";
import { h, label, visible } from "./dom.js";

/** Milliseconds between two looks at the run list for new records while the panel is shown. */
const FOLLOW_MS = 1000;
/** Smallest width an image is shown at; a smaller one is scaled up, pixelated. */
const MIN_SHOWN = 160;
/** Widest an image is shown at (a larger one is scaled down to fit). */
const MAX_SHOWN = 480;

let live = []; // the cards of the panel shown now (their object URLs are revoked on rebuild)
let timer = null; // the panel's follower (one at a time)
let generation = 0; // a rebuild started later wins over one still loading

/** Index of the last of `steps` (ascending) at or before `step`, or -1. Pure, for tests. */
export function atOrBefore(steps, step) {
  let lo = 0, hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) lo = mid + 1; else hi = mid;
  }
  return lo - 1;
}

/** A run's image list in step order (a stable sort: of equal steps, the one logged last wins). */
function byStep(list) {
  const order = list.steps.map((_, i) => i).sort((a, b) => list.steps[a] - list.steps[b] || a - b);
  const pick = (key) => order.map((i) => list[key][i]);
  return { steps: pick("steps"), paths: pick("paths"), widths: pick("widths"), heights: pick("heights") };
}

function bytesOf(b64) {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** One run's figure in a card: its name, the image and what it is. */
class Figure {
  constructor(run, list) {
    this.run = run;
    this.list = list;
    this.img = h("img", { alt: "", draggable: "false" });
    this.caption = h("figcaption", { class: "img-meta" });
    this.el = h("figure", { class: "img-figure", dataset: { run } }, h("div", { class: "img-run" }, label(run)),
      h("div", { class: "img-frame" }, this.img), this.caption);
    this.url = null;
    this.path = null;
  }

  /** Show the latest image at or before `step`; resolves when it is in the <img> (or failed). */
  async show(step) {
    const k = atOrBefore(this.list.steps, step);
    if (k < 0) {
      this.clear(`no image at or before step ${step}`);
      return;
    }
    const path = this.list.paths[k], w = this.list.widths[k], hh = this.list.heights[k];
    if (path === this.path) return;
    this.path = path;
    this.caption.textContent = `step ${this.list.steps[k]} · ${w}×${hh}`;
    let body;
    try {
      body = await getJSON("/api/image", { run: this.run, path, encoding: "base64" });
    } catch (e) {
      if (this.path === path) this.clear(`could not load: ${visible(e.message || e)}`);
      return;
    }
    if (this.path !== path) return; // the slider moved on meanwhile
    const url = URL.createObjectURL(new Blob([bytesOf(body.base64)], { type: body.type || "image/png" }));
    const shown = Math.min(MAX_SHOWN, Math.max(w, MIN_SHOWN));
    this.img.classList.toggle("pixelated", shown > w);
    Object.assign(this.img.style, { width: `${shown}px`, aspectRatio: `${w} / ${hh}` });
    this.img.dataset.step = String(this.list.steps[k]);
    this.img.dataset.path = path;
    const loaded = new Promise((resolve) => { this.img.onload = this.img.onerror = resolve; });
    this.img.src = url;
    this.img.hidden = false;
    this.revoke();
    this.url = url;
    await loaded;
  }

  clear(text) {
    this.path = null;
    this.revoke();
    this.img.removeAttribute("src");
    this.img.hidden = true;
    this.caption.textContent = text;
  }

  revoke() {
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
  }
}

/** A card: one image name, a figure per run that logged it, one slider over all their steps. */
class Card {
  constructor(tag, lists) {
    this.tag = tag;
    this.figures = [...lists].map(([run, list]) => new Figure(run, list));
    this.slider = h("input", { type: "range", class: "scrub", min: 0, "aria-label": `step of ${visible(tag)}` });
    this.steps = [];
    this.restep(true);
    this.stepOut = h("output", { class: "img-step" });
    this.slider.addEventListener("input", () => this.show());
    this.el = h("div", { class: "panel img-card", dataset: { tag } },
      h("div", { class: "panel-head" }, h("b", null, label(tag)), this.stepOut),
      h("div", { class: "img-row" }, this.figures.map((f) => f.el)), this.slider);
  }

  /** The slider over the union of the figures' steps; `latest`: put it at the last one. */
  restep(latest) {
    const at = this.steps[+this.slider.value];
    this.steps = [...new Set(this.figures.flatMap((f) => f.list.steps))].sort((a, b) => a - b);
    this.slider.max = String(Math.max(0, this.steps.length - 1));
    this.slider.value = String(latest ? this.steps.length - 1 : Math.max(0, atOrBefore(this.steps, at)));
  }

  /** Ask again for the lists of the runs whose record count moved; follow the latest step if shown. */
  async follow(infos, seen) {
    const changed = this.figures.filter((f) => (infos.get(f.run)?.records ?? null) !== seen.get(f.run));
    if (!changed.length) return;
    const latest = +this.slider.value === this.steps.length - 1;
    for (const f of changed) f.list = byStep(await getJSON("/api/images", { run: f.run, tag: this.tag }));
    this.restep(latest);
    await this.show();
  }

  show() {
    const step = this.steps[+this.slider.value] ?? 0;
    this.stepOut.textContent = `step ${step}`;
    this.el.dataset.step = String(step);
    return Promise.all(this.figures.map((f) => f.show(step)));
  }

  dispose() {
    for (const f of this.figures) f.revoke();
  }
}

/** Fill `el` with a card per image name of the selected `runs` (infos: id -> run object). */
export async function showImages(el, runs, infos) {
  const mine = ++generation;
  for (const card of live) card.dispose();
  live = [];
  clearInterval(timer);
  el.replaceChildren();
  const tags = new Map(); // name -> [run, ...]
  for (const run of runs) for (const tag of infos.get(run)?.images || []) {
    if (!tags.has(tag)) tags.set(tag, []);
    tags.get(tag).push(run);
  }
  if (!tags.size) {
    el.replaceChildren(h("p", { class: "empty" }, "No images in the selected runs."));
    return;
  }
  const cards = [];
  const seen = new Map(runs.map((r) => [r, infos.get(r)?.records ?? null])); // as the lists are asked
  for (const tag of [...tags.keys()].sort()) {
    const lists = new Map();
    for (const run of tags.get(tag)) lists.set(run, byStep(await getJSON("/api/images", { run, tag })));
    if (mine !== generation) { for (const c of cards) c.dispose(); return; }
    const card = new Card(tag, lists);
    cards.push(card);
    el.appendChild(card.el);
  }
  live = cards;
  follow(el, cards, infos, seen, mine);
  await Promise.all(cards.map((c) => c.show()));
}

/** While `el` is shown and no newer panel was built, the cards follow their runs (see the top). */
function follow(el, cards, infos, seen, mine) {
  let busy = false;
  const id = setInterval(async () => {
    if (mine !== generation || !el.isConnected) { clearInterval(id); return; }
    if (busy || el.closest("section")?.hidden) return;
    busy = true;
    try {
      const now = new Map([...seen.keys()].map((r) => [r, infos.get(r)?.records ?? null]));
      await Promise.all(cards.map((c) => c.follow(infos, seen)));
      for (const [r, n] of now) seen.set(r, n);
    } catch {
      // a failed look is tried again at the next tick
    } finally {
      busy = false;
    }
  }, FOLLOW_MS);
  timer = id;
}
