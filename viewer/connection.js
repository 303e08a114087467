// The live connection: a WebSocket that reconnects and resumes from per-run cursors, with an automatic
// switch to the long-poll fallback when WebSockets cannot get through.

import { parseMessage, subscribeMessage, unsubscribeMessage, CursorBook } from "./protocol.js";
import { getJSON, openSocket, Unauthorized } from "./api.js";

const WS_FAILURES_BEFORE_POLL = 3;

export class Connection {
  /**
   * onMessage(msg) receives every parsed server message; onStatus(state, detail) receives
   * "connecting" | "live" | "polling" | "offline".
   */
  constructor({ onMessage, onStatus, points = 2000, base = location }) {
    this.onMessage = onMessage;
    this.onStatus = onStatus || (() => {});
    this.points = points;
    this.base = base;
    this.cursors = new CursorBook();
    this.runs = new Set();
    this.ws = null;
    this.mode = "ws";
    this.failures = 0;
    this.retry = 0;
    this.closed = false;
    this.pollAbort = null;
    this.lastMessage = 0;
    this.generation = 0; // bumped by start() and stop(): loops of an earlier start end
  }

  /** Connect (again, after stop(): cursors and subscriptions are kept, so it resumes). */
  start() {
    this.generation++;
    this.closed = false;
    this.mode = "ws";
    this.failures = 0;
    this.retry = 0;
    clearInterval(this.watchdog);
    if (this.ws) { const old = this.ws; this.ws = null; old.close(); }
    if (this.pollAbort) this.pollAbort.abort();
    this._connect();
    // A dead peer that never closes the socket: no message (not even a pong) for a long while.
    this.watchdog = setInterval(() => {
      if (this.mode !== "ws" || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      if (Date.now() - this.lastMessage > 45000) this.ws.close();
      else this._send({ op: "ping" });
    }, 15000);
  }

  stop() {
    this.generation++;
    this.closed = true;
    clearInterval(this.watchdog);
    if (this.ws) { this.ws.close(); this.ws = null; }
    if (this.pollAbort) this.pollAbort.abort();
    if (this.wakePoll) this.wakePoll();
  }

  subscribe(runs) {
    const fresh = runs.filter((r) => !this.runs.has(r));
    fresh.forEach((r) => this.runs.add(r));
    if (fresh.length) this._sendSubscribe(fresh);
  }

  unsubscribe(runs) {
    const gone = runs.filter((r) => this.runs.has(r));
    gone.forEach((r) => { this.runs.delete(r); this.cursors.reset(r); });
    if (gone.length && this.mode === "ws") this._send(unsubscribeMessage(gone));
  }

  _sendSubscribe(runs) {
    if (this.mode === "ws") this._send(subscribeMessage(runs, { points: this.points, cursors: this.cursors.forRuns(runs) }));
    else {
      if (this.pollAbort) this.pollAbort.abort(); // restart the long poll with the new run set
      if (this.wakePoll) this.wakePoll();
    }
  }

  _send(obj) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  _connect() {
    if (this.closed) return;
    this.onStatus("connecting");
    let opened = false;
    const ws = openSocket("/ws", this.base);
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return; // stopped meanwhile
      opened = true;
      this.failures = 0;
      this.retry = 0;
      this.lastMessage = Date.now();
      this.onStatus("live");
      if (this.runs.size) this._sendSubscribe([...this.runs]);
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this.lastMessage = Date.now();
      const msg = parseMessage(ev.data);
      if (msg) this._dispatch(msg);
    };
    ws.onclose = () => {
      if (this.ws !== ws || this.closed) return;
      this.ws = null;
      if (!opened && ++this.failures >= WS_FAILURES_BEFORE_POLL) {
        this.mode = "poll";
        this._poll();
        return;
      }
      this.onStatus("offline");
      const delay = Math.min(5000, 250 * 2 ** this.retry++);
      const gen = this.generation;
      setTimeout(() => { if (gen === this.generation) this._connect(); }, delay);
    };
  }

  _dispatch(msg) {
    if ((msg.type === "snapshot" || msg.type === "delta") && msg.run) {
      if (!this.runs.has(msg.run)) return; // unsubscribed meanwhile
      this.cursors.advance(msg.run, msg.cursor);
    } else if (msg.type === "reset" && msg.run) {
      this.cursors.reset(msg.run);
    }
    this.onMessage(msg);
  }

  /** Long-poll loop: same messages, same cursors, one HTTP request at a time. */
  async _poll() {
    this.onStatus("polling");
    let backoff = 0;
    const gen = this.generation;
    while (!this.closed && this.mode === "poll" && gen === this.generation) {
      if (!this.runs.size && this.pollIdle) {
        // nothing followed: refresh the run list now and then, or as soon as something is subscribed
        await new Promise((r) => { this.wakePoll = r; setTimeout(r, 2000); });
        if (gen !== this.generation) return;
      }
      const params = new URLSearchParams();
      for (const r of this.runs) {
        params.append("run", r);
        const c = this.cursors.get(r);
        if (c) params.set(`cursor.${r}`, c);
      }
      params.set("timeout", "25");
      params.set("points", String(this.points));
      this.pollAbort = new AbortController();
      try {
        const body = await getJSON("/api/poll", params, { signal: this.pollAbort.signal });
        if (gen !== this.generation) return;
        this.pollIdle = !this.runs.size;
        for (const m of body.messages || []) {
          const msg = parseMessage(m);
          if (msg) this._dispatch(msg);
        }
        backoff = 0;
        this.onStatus("polling");
      } catch (e) {
        if (e.name === "AbortError") continue;
        if (e instanceof Unauthorized) return; // the page asks for a token, then starts again
        this.onStatus("offline");
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** backoff++)));
      }
    }
  }
}
