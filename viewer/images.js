// The Images panel: one card per image name, the selected runs side by side, a step slider over
// the steps any of them logged; each run shows its latest image at or before that step.
//
// While the panel is shown it follows the runs: once a second it compares each run's record count in
// the run list (kept current by the page's connection) with the one its image list was asked at, and
// asks again only for runs that changed; a slider at the latest step moves on with new images. A name
// that a run starts logging meanwhile gets its card (or its figure in the name's card) at that look.
//
// The PNG bytes come through api.js like every other request (the token is a header, so an <img>
// cannot fetch them itself): as a Blob, shown through an object URL. Each figure keeps the object URL
// it shows and revokes it when its image is replaced; all of them are revoked when the panel is built
// again or its tab is hidden. Small images are scaled up with pixelated rendering (a 28x28 sample
// stays crisp).

import { getBlob, getJSON } from "./api.js";
import { h, label, visible } from "./dom.js";

/** Milliseconds between two looks at the run list for new records while the panel is shown. */
const FOLLOW_MS = 1000;
/** Smallest width an image is shown at; a smaller one is scaled up, pixelated. */
const MIN_SHOWN = 160;
/** Widest an image is shown at (a larger one is scaled down to fit). */
const MAX_SHOWN = 480;

let current = null; // the panel shown now: a rebuild disposes of it (and of its object URLs)

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
    this.gone = false; // disposed of: nothing is shown (nor an object URL made) any more
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
    let blob;
    try {
      blob = await getBlob("/api/image", { run: this.run, path });
    } catch (e) {
      if (this.path === path && !this.gone) this.clear(`could not load: ${visible(e.message || e)}`);
      return;
    }
    if (this.path !== path || this.gone) return; // the slider moved on meanwhile, or the panel closed
    const url = URL.createObjectURL(blob);
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

  dispose() {
    this.gone = true;
    this.clear("");
  }
}

/** A card: one image name, a figure per run that logged it, one slider over all their steps. */
class Card {
  constructor(tag) {
    this.tag = tag;
    this.figures = [];
    this.slider = h("input", { type: "range", class: "scrub", min: 0, "aria-label": `step of ${visible(tag)}` });
    this.steps = [];
    this.stepOut = h("output", { class: "img-step" });
    this.slider.addEventListener("input", () => this.show());
    this.row = h("div", { class: "img-row" });
    this.el = h("div", { class: "panel img-card", dataset: { tag } },
      h("div", { class: "panel-head" }, h("b", null, label(tag)), this.stepOut), this.row, this.slider);
  }

  has(run) {
    return this.figures.some((f) => f.run === run);
  }

  /** Figures for more runs (lists: run -> image list), side by side in the order of `runs`; a
   *  slider at the latest step (or a new card's) stays there. */
  add(lists, runs) {
    const latest = !this.figures.length || +this.slider.value === this.steps.length - 1;
    for (const [run, list] of lists) this.figures.push(new Figure(run, list));
    this.figures.sort((a, b) => runs.indexOf(a.run) - runs.indexOf(b.run));
    this.row.replaceChildren(...this.figures.map((f) => f.el));
    this.restep(latest);
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
    for (const f of this.figures) f.dispose();
  }
}

/** Each image name of `runs` (infos: id -> run object) and the runs that logged it, by name. */
function namesOf(runs, infos) {
  const tags = new Map(); // name -> [run, ...]
  for (const run of runs) for (const tag of infos.get(run)?.images || []) {
    if (!tags.has(tag)) tags.set(tag, []);
    tags.get(tag).push(run);
  }
  return new Map([...tags].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The cards of one build of the panel in `el`, and its follower. */
class Panel {
  constructor(el, runs, infos) {
    Object.assign(this, { el, runs, infos });
    this.cards = new Map(); // name -> Card, in the order shown
    this.timer = null;
    this.gone = false;
  }

  /** Cards for the names no card shows yet, figures for the runs a card lacks, each run's list asked
   *  once; resolves to the cards made or grown (none once the panel is gone). */
  async grow() {
    const grown = [];
    for (const [tag, runs] of namesOf(this.runs, this.infos)) {
      const card = this.cards.get(tag);
      const missing = card ? runs.filter((r) => !card.has(r)) : runs;
      if (!missing.length) continue;
      const lists = new Map();
      for (const run of missing) lists.set(run, byStep(await getJSON("/api/images", { run, tag })));
      if (this.gone) return [];
      if (card) card.add(lists, this.runs);
      else this.place(tag).add(lists, this.runs);
      grown.push(this.cards.get(tag));
    }
    return grown;
  }

  /** A new card for `tag`, put among the others in name order. */
  place(tag) {
    const card = new Card(tag);
    const after = [...this.cards.keys()].find((t) => t > tag);
    if (!this.cards.size) this.el.replaceChildren();
    this.el.insertBefore(card.el, after === undefined ? null : this.cards.get(after).el);
    this.cards.set(tag, card);
    return card;
  }

  dispose() {
    this.gone = true;
    clearInterval(this.timer);
    for (const card of this.cards.values()) card.dispose();
  }
}

/** Fill `el` with a card per image name of the selected `runs` (infos: id -> run object). */
export async function showImages(el, runs, infos) {
  current?.dispose();
  const panel = current = new Panel(el, runs, infos);
  el.replaceChildren();
  const seen = new Map(runs.map((r) => [r, infos.get(r)?.records ?? null])); // as the lists are asked
  await panel.grow();
  if (panel.gone) return;
  if (!panel.cards.size) el.replaceChildren(h("p", { class: "empty" }, "No images in the selected runs."));
  follow(panel, seen);
  await Promise.all([...panel.cards.values()].map((c) => c.show()));
}

/** While the panel is shown and no newer one was built, its cards follow their runs (see the top);
 *  once its tab is hidden it is disposed of (a tab shown again is built afresh). */
function follow(panel, seen) {
  let busy = false;
  panel.timer = setInterval(async () => {
    if (panel.gone) return;
    if (!panel.el.isConnected || panel.el.closest("section")?.hidden) { panel.dispose(); return; }
    if (busy) return;
    busy = true;
    try {
      const now = new Map([...seen.keys()].map((r) => [r, panel.infos.get(r)?.records ?? null]));
      await Promise.all([...panel.cards.values()].map((c) => c.follow(panel.infos, seen)));
      const grown = await panel.grow();
      for (const [r, n] of now) seen.set(r, n);
      await Promise.all(grown.map((c) => c.show()));
    } catch {
      // a failed look is tried again at the next tick
    } finally {
      busy = false;
    }
  }, FOLLOW_MS);
}
