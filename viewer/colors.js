// Colours of the things drawn together: runs, and groups of runs (groups.js). Each is given one of
// twelve hues by the hash of its id, kept apart from the others drawn beside it, and kept while it
// stays drawn (another leaving never moves it); one palette per kind, so that a group's colour
// depends on the groups shown, not on their members.

// Twelve hues spaced around the wheel, in an order that puts neighbours far apart.
const HUES = [215, 25, 140, 330, 50, 265, 175, 0, 95, 295, 195, 70];
// Hues closer than this (degrees) are told apart badly in thin lines.
const MIN_HUE_GAP = 40;
const MAX_PAST_HUES = 10000;

export function idHash(id) {
  let h = 2166136261;
  for (let i = 0; i < id.length; i++) { h ^= id.charCodeAt(i); h = Math.imul(h, 16777619); }
  // avalanche, so ids that differ in one character land on unrelated hues
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return h >>> 0;
}

const hueGap = (a, b) => { const d = Math.abs(a - b) % 360; return Math.min(d, 360 - d); };

/**
 * Hue index per id for a set of ids drawn together. Ids in `kept` (id -> hue index) keep theirs:
 * one keeps its colour when another leaves the set. Each other id, in order, takes the hue it had
 * before (`previous`) or else the one it hashes to, unless an id already placed has a hue closer
 * than MIN_HUE_GAP; then it takes the free hue farthest from those taken. Deterministic for a
 * given set and history (with none, for the set alone); beyond twelve ids, hues repeat.
 */
export function assignHues(ids, kept = new Map(), previous = new Map()) {
  const out = new Map();
  const taken = [];
  for (const id of ids) if (kept.has(id)) { out.set(id, kept.get(id)); taken.push(kept.get(id)); }
  for (const id of [...ids].sort()) {
    if (out.has(id)) continue;
    const want = previous.get(id) ?? idHash(id) % HUES.length;
    let pick = want;
    const nearest = (k) => Math.min(360, ...taken.map((t) => (t === k ? -1 : hueGap(HUES[t], HUES[k]))));
    if (nearest(want) < MIN_HUE_GAP) {
      // the free hue farthest from those taken (the first such in HUES order after the wanted one)
      let best = -2;
      for (let i = 0; i < HUES.length; i++) {
        const k = (want + i) % HUES.length;
        const d = nearest(k);
        if (d > best) { best = d; pick = k; }
      }
    }
    taken.push(pick);
    out.set(id, pick);
  }
  return out;
}

/** The colours of one kind of thing (runs, groups). */
export class Palette {
  constructor() {
    this.hues = new Map(); // id -> hue index, of those drawn now
    this.past = new Map(); // id -> the hue it had when last drawn in this page
  }

  /** The ids drawn together now: their colours are kept apart, and those still drawn keep theirs. */
  select(ids) {
    const kept = new Map(ids.filter((id) => this.hues.has(id)).map((id) => [id, this.hues.get(id)]));
    this.hues = assignHues(ids, kept, this.past);
    if (this.past.size > MAX_PAST_HUES) this.past.clear();
    for (const [id, k] of this.hues) this.past.set(id, k);
  }

  /** The colour of `id`, readable on light and dark: its hue, in one of two shades its hash picks. */
  color(id, dark = false) {
    const h = idHash(id);
    const hue = HUES[this.hues.get(id) ?? h % HUES.length];
    const light = (dark ? 62 : 42) + ((h >>> 8) % 2) * (dark ? -10 : 12);
    return `hsl(${hue} 70% ${light}%)`;
  }
}
