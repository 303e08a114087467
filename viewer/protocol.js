// Wire shapes of the sidecar protocol (docs/protocol.md), defined once for the browser.

export const PROTOCOL_VERSION = 1;

const NONFINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

/** A JSON value array (numbers, or "NaN"/"Infinity"/"-Infinity" spellings) as a Float64Array. */
export function decodeValues(arr) {
  const n = arr ? arr.length : 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const v = arr[i];
    out[i] = typeof v === "number" ? v : (v in NONFINITE ? NONFINITE[v] : NaN);
  }
  return out;
}

/** A columnar series message part ({steps, values, times}) as typed arrays. */
export function decodeSeries(s) {
  return {
    steps: decodeValues(s.steps),
    values: decodeValues(s.values),
    times: decodeValues(s.times || []),
    downsampled: !!s.downsampled,
    total: s.total ?? (s.steps ? s.steps.length : 0),
  };
}

export function subscribeMessage(runs, { metrics = null, points = 2000, cursors = {} } = {}) {
  const c = {};
  for (const r of runs) if (cursors[r]) c[r] = cursors[r];
  return { op: "subscribe", runs, metrics, points, cursors: c };
}

export function unsubscribeMessage(runs) {
  return { op: "unsubscribe", runs };
}

export const KNOWN_TYPES = new Set(["hello", "runs", "snapshot", "delta", "reset", "alert", "pong", "error"]);

/** Parse one server message; returns null (and never throws) for anything that is not a known shape. */
export function parseMessage(text) {
  let msg;
  try {
    msg = typeof text === "string" ? JSON.parse(text) : text;
  } catch {
    return null;
  }
  if (!msg || typeof msg !== "object" || !KNOWN_TYPES.has(msg.type)) return null;
  return msg;
}

/**
 * The latest cursor per run. A delta is applied only once: the book remembers the cursor after each
 * applied message, and the client resumes from it after a reconnect.
 */
export class CursorBook {
  constructor(initial = {}) {
    this.cursors = new Map(Object.entries(initial));
  }
  get(run) {
    return this.cursors.get(run);
  }
  /** Record the cursor that came with a snapshot or delta. */
  advance(run, cursor) {
    if (cursor != null) this.cursors.set(run, cursor);
  }
  /** A reset invalidates what we hold for the run: forget its cursor so the next subscribe snapshots. */
  reset(run) {
    this.cursors.delete(run);
  }
  forRuns(runs) {
    const out = {};
    for (const r of runs) {
      const c = this.cursors.get(r);
      if (c != null) out[r] = c;
    }
    return out;
  }
  toJSON() {
    return Object.fromEntries(this.cursors);
  }
}
