// The alerts the page knows of (docs/alerts.md), merged from two sources: the `alert` messages the
// WebSocket pushes when one fires or clears, and `GET /api/alerts` answers, asked for once at the
// start and again when a `runs` message says a run's alert counts changed (a long-poll client hears
// alert messages only while a request of its waits, and a reconnection may have missed some). No DOM here: alertview.js shows the log.
//
// An alert is one firing: its key is (seq, id, started), the same in its `fired` and `cleared`
// forms, and different after a restart of the sidecar (whose seq counts from 1 again). Its clearing
// is final: an older answer that still lists it as active does not bring it back.

import { visible } from "./dom.js";

/** Least to most urgent (the sidecar's alerts.config.LEVELS). */
export const LEVELS = Object.freeze(["info", "warning", "error"]);
/** Ended alerts kept at most (the sidecar keeps its latest 500). */
const KEEP_ENDED = 1000;
/** How long a notification's body may be. */
const NOTE_TEXT = 300;

const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v) => (typeof v === "string" ? v : "");

/** An alert object from the wire as the page holds it, or null when it is not one (never throws). */
export function normalize(a) {
  if (!a || typeof a !== "object" || num(a.seq) == null || typeof a.id !== "string") return null;
  const ended = num(a.ended);
  return {
    key: `${a.seq}|${a.id}|${a.started}`,
    id: a.id, seq: a.seq, rule: str(a.rule), title: str(a.title), text: str(a.text),
    level: LEVELS.includes(a.level) ? a.level : "warning",
    run: typeof a.run === "string" ? a.run : null,
    step: num(a.step), started: num(a.started), ended,
    active: a.active !== false && ended == null,
    count: num(a.count) ?? 1,
    backlog: a.backlog === true,
  };
}

/** Newest first: the later start, then the later seq. */
const newer = (a, b) => (b.started ?? 0) - (a.started ?? 0) || b.seq - a.seq;

export class AlertLog {
  constructor() {
    this.byKey = new Map();
    this.version = 0; // bumped by every change: the view draws again only then
    this.reports = 0; // answers of /api/alerts applied
    this.ignored = 0; // what came as an alert and was not one (said in the list's summary)
  }

  /** Merge one alert; true when the log changed. `fresh` (an array) gets it when it was unknown. */
  put(raw, fresh = null) {
    const a = normalize(raw);
    if (!a) { this.ignored++; return false; }
    const old = this.byKey.get(a.key);
    if (old && !old.active && a.active) return false; // cleared stays cleared
    if (old && old.active === a.active && old.ended === a.ended && old.count === a.count &&
        old.text === a.text && old.level === a.level) return false;
    if (a.active) {
      for (const o of this.byKey.values()) { // one active alert per id: an older one ended unseen
        if (o.active && o.id === a.id && o.key !== a.key) {
          if (newer(o, a) < 0) { a.active = false; break; }
          o.active = false;
        }
      }
    }
    this.byKey.set(a.key, a);
    if (!old && fresh) fresh.push(a);
    this.version++;
    this._trim();
    return true;
  }

  /** A WebSocket `alert` message; returns the alerts to notify of (a live firing, newly seen). */
  applyMessage(msg) {
    const fresh = [];
    this.put(msg?.alert, msg?.event === "fired" ? fresh : null);
    return fresh.filter((a) => !a.backlog);
  }

  /** The keys of the active alerts: taken before /api/alerts is asked, handed to applyReport. */
  activeKeys() {
    return new Set([...this.byKey.values()].filter((a) => a.active).map((a) => a.key));
  }

  /**
   * An answer of /api/alerts. The alerts active when it was asked (`before`) that it no longer lists
   * as active have ended meanwhile (their clearing may have been missed). Returns the alerts to
   * notify of: those newly seen, not from the backlog, unless this is the first answer (what was
   * there when the page opened is not news).
   */
  applyReport(report, before = new Set()) {
    const fresh = [];
    const first = this.reports++ === 0;
    const listed = new Set();
    for (const raw of [...(Array.isArray(report?.active) ? report.active : []),
      ...(Array.isArray(report?.recent) ? report.recent : [])]) {
      this.put(raw, fresh);
      const a = normalize(raw);
      if (a && a.active) listed.add(a.key);
    }
    for (const key of before) {
      const a = this.byKey.get(key);
      if (a && a.active && !listed.has(key)) { a.active = false; this.version++; }
    }
    return first ? [] : fresh.filter((a) => !a.backlog);
  }

  /** Every alert held (of one run when given), newest first. */
  list(run = null) {
    return [...this.byKey.values()].filter((a) => run == null || a.run === run).sort(newer);
  }

  /** Active alerts per level (of one run when given). */
  counts(run = null) {
    const out = Object.fromEntries(LEVELS.map((l) => [l, 0]));
    for (const a of this.byKey.values()) if (a.active && (run == null || a.run === run)) out[a.level]++;
    return out;
  }

  _trim() {
    const ended = [...this.byKey.values()].filter((a) => !a.active);
    if (ended.length <= KEEP_ENDED) return;
    ended.sort(newer);
    for (const a of ended.slice(KEEP_ENDED)) this.byKey.delete(a.key);
  }
}

/** A run's badge from its `alerts` counts ({error: 1, warning: 2}): how many, the most urgent
 *  level, and a title; null when none is active. */
export function badgeOf(counts) {
  if (!counts || typeof counts !== "object") return null;
  let n = 0, level = null;
  const said = [];
  for (const l of LEVELS) {
    const k = Number.isInteger(counts[l]) && counts[l] > 0 ? counts[l] : 0;
    if (!k) continue;
    n += k;
    level = l;
    said.unshift(`${k} ${l}${k > 1 ? "s" : ""}`);
  }
  return n ? { n, level, title: `active alerts: ${said.join(", ")}` } : null;
}

/** What a browser notification of an alert says: plain text, hidden characters shown. */
export function notificationOf(a) {
  const body = [a.run != null ? `run ${visible(a.run)}` : "", visible(a.text, { multiline: true })].filter(Boolean).join("\n");
  return {
    title: `tailboard ${a.level}: ${visible(a.title)}`,
    body: body.length > NOTE_TEXT ? `${body.slice(0, NOTE_TEXT - 1)}…` : body,
    tag: `tailboard:${a.id}`,
  };
}

/**
 * Keeps a log up to date: `start()` asks /api/alerts, `message(msg)` takes an `alert` message, and
 * `runs(runs, removed)` asks again when a run's alert counts changed. `get(path, params)` is api.js's
 * getJSON; `onChange()` is told when the log changed, `onFired(alerts)` of alerts to notify of.
 * At most one request is in flight, and they start at least `gap` ms apart.
 */
export class AlertFeed {
  constructor(log, { get, onChange = () => {}, onFired = () => {}, gap = 500, clock = () => Date.now() }) {
    Object.assign(this, { log, get, onChange, onFired, gap, clock });
    this.counts = new Map(); // run -> its `alerts` counts as last seen (JSON)
    this.inflight = false;
    this.again = false;
    this.timer = 0;
    this.last = -Infinity;
    this.failed = null; // why the last request failed
    this.enabled = false;
  }

  start() {
    this.enabled = true;
    this.ask();
  }

  message(msg) {
    const version = this.log.version;
    const fired = this.log.applyMessage(msg);
    if (this.log.version !== version) this.onChange();
    if (fired.length) this.onFired(fired);
  }

  runs(runs = [], removed = []) {
    let changed = false;
    for (const r of runs) {
      const said = JSON.stringify(r?.alerts ?? null);
      if ((this.counts.get(r?.id) ?? "null") !== said) changed = true;
      this.counts.set(r?.id, said);
    }
    for (const id of removed) {
      if ((this.counts.get(id) ?? "null") !== "null") changed = true;
      this.counts.delete(id);
    }
    if (changed && this.enabled) this.ask();
  }

  /** Ask /api/alerts soon (once, however many times this is called meanwhile). */
  ask() {
    if (this.inflight) { this.again = true; return; }
    if (this.timer) return;
    const wait = Math.max(0, this.last + this.gap - this.clock());
    this.timer = setTimeout(() => { this.timer = 0; this._fetch(); }, wait);
  }

  async _fetch() {
    this.inflight = true;
    this.last = this.clock();
    const before = this.log.activeKeys();
    const version = this.log.version;
    try {
      const report = await this.get("/api/alerts", { recent: this.log.reports ? 100 : 500 });
      const fired = this.log.applyReport(report, before);
      this.failed = null;
      if (this.log.version !== version || this.log.reports === 1) this.onChange();
      if (fired.length) this.onFired(fired);
    } catch (e) {
      this.failed = e?.message || String(e);
      this.onChange();
    } finally {
      this.inflight = false;
      if (this.again) { this.again = false; this.ask(); }
    }
  }
}
