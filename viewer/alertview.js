// The Alerts tab: every alert the page knows of (alerts.js), newest first, live; a click on a run
// shows that run's alerts only. The tab's button carries the count of active ones. And the browser
// notifications, asked for only when a user clicks "Notify me", for alerts that fire while the page
// is open. Titles and texts are log content: DOM text only, hidden characters shown (dom.js).

import { h, label, visible } from "./dom.js";
import { timeAgo } from "./runs.js";
import { AlertFeed, AlertLog, notificationOf } from "./alerts.js";

/** Rows drawn at most (the newest). */
const SHOWN = 500;

function when(t) {
  if (t == null) return "";
  const d = new Date(t * 1000);
  const day = Date.now() / 1000 - t > 86400 ? d.toLocaleDateString() + " " : "";
  return `${day}${d.toLocaleTimeString()} (${timeAgo(t)})`;
}

/** Browser notifications: off until a user asks, and only where the browser has them. */
export class Notifier {
  constructor() {
    this.on = false;
    this.sent = 0;
    this.failed = 0;
    this.button = h("button", { class: "alert-notify", onclick: () => this.toggle() });
    this.show();
  }

  get supported() {
    return typeof Notification === "function";
  }

  async toggle() {
    if (this.on) { this.on = false; this.show(); return; }
    if (!this.supported) { this.show(); return; }
    let permission = Notification.permission;
    if (permission !== "denied") { // asked only here, on a user's click (granted already: no prompt)
      try {
        permission = await Notification.requestPermission();
      } catch {
        permission = Notification.permission;
      }
    }
    this.on = permission === "granted";
    this.show(permission);
  }

  show(permission = this.supported ? Notification.permission : "unsupported") {
    const b = this.button;
    b.classList.toggle("on", this.on);
    b.disabled = permission === "unsupported";
    b.textContent = this.on ? "Notifying" : permission === "denied" ? "Notifications blocked" : "Notify me";
    b.title = this.on ? "A browser notification for each alert that fires while this page is open (click to stop)"
      : permission === "denied" ? "This browser blocks notifications from this page (its site settings can allow them)"
        : permission === "unsupported" ? "This browser has no notifications here" : "Ask for a browser notification when an alert fires";
  }

  notify(alerts) {
    if (!this.on || !this.supported || Notification.permission !== "granted") return;
    for (const a of alerts.slice(0, 5)) { // a burst says enough in five
      const n = notificationOf(a);
      try {
        new Notification(n.title, { body: n.body, tag: n.tag });
        this.sent++;
      } catch {
        this.failed++; // a browser that only notifies from a service worker
      }
    }
  }
}

export class AlertsView {
  /** `el`: the tab's section; `count`: the element of the tab's button that shows the active count;
   *  `get`: api.js's getJSON. The page hands it `alert` messages (message) and runs messages (runs). */
  constructor(el, count, { get }) {
    Object.assign(this, { el, count });
    this.log = new AlertLog();
    this.feed = new AlertFeed(this.log, { get, onChange: () => this.render(), onFired: (a) => this.notifier.notify(a) });
    this.run = null; // the run whose alerts alone are shown
    this.visible = false;
    this.drawn = -1;
    this.frame = 0;
    this.notifier = new Notifier();
    this.filterEl = h("span", { class: "alert-filter" });
    this.summary = h("span", { class: "alert-summary" });
    this.list = h("div", { class: "alert-list" });
    el.replaceChildren(h("div", { class: "panel-head alert-head" }, this.summary, this.filterEl, h("span", { class: "spacer" }),
      this.notifier.button), this.list);
    this.list.addEventListener("click", (e) => {
      const b = e.target.closest("button.alert-run");
      if (b) this.filter(b.dataset.run);
    });
  }

  /** Start asking the server (its alert rules are on); again is nothing. */
  start() {
    if (!this.feed.enabled) this.feed.start();
  }

  /** A server message: `hello` and `runs` carry the server's features (are its alert rules on?),
   *  `runs` the runs' alert counts, `alert` one alert that fired or cleared. */
  handle(msg) {
    if (msg.type === "runs") this.feed.runs(msg.runs || [], msg.removed || []);
    else if (msg.type === "alert") this.feed.message(msg);
    if (msg.features && msg.features.alerts !== false) this.start();
  }

  filter(run) {
    this.run = run ?? null;
    this.drawn = -1;
    this.render();
  }

  show(visible) {
    this.visible = visible;
    this.render();
  }

  /** Draw in the next frame (the tab's count always, the list when the tab is shown). */
  render() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => { this.frame = 0; this._render(); });
  }

  _render() {
    const all = this.log.counts();
    const active = all.info + all.warning + all.error;
    this.count.textContent = active ? String(active) : "";
    this.count.className = `alert-count ${all.error ? "error" : all.warning ? "warning" : "info"}`;
    if (!this.visible || this.drawn === this.log.version) return;
    this.drawn = this.log.version;
    const rows = this.log.list(this.run);
    const counts = this.log.counts(this.run);
    this.summary.textContent = `${rows.length} alert${rows.length === 1 ? "" : "s"}: ${counts.error} error, ` +
      `${counts.warning} warning, ${counts.info} info active${this.log.ignored ? ` · ${this.log.ignored} malformed ignored` : ""}` +
      `${this.feed.failed ? ` · could not ask the server: ${visible(this.feed.failed)}` : ""}`;
    this.filterEl.replaceChildren(...(this.run == null ? [] : [
      "run ", label(this.run, "alert-filter-run"), " ",
      h("button", { class: "alert-unfilter", title: "Show the alerts of every run", onclick: () => this.filter(null) }, "✕ all runs")]));
    if (!rows.length) {
      this.list.replaceChildren(h("p", { class: "empty" }, this.run == null ? "No alerts." : "No alerts for this run."));
      return;
    }
    this.list.replaceChildren(...rows.slice(0, SHOWN).map(row),
      rows.length > SHOWN ? h("p", { class: "empty" }, `… and ${rows.length - SHOWN} older`) : null);
  }
}

function row(a) {
  return h("div", { class: `alert-row ${a.level}${a.active ? " active" : " cleared"}`, dataset: { seq: String(a.seq) } },
    h("div", { class: "alert-line" },
      h("span", { class: `alert-level ${a.level}` }, a.level),
      h("span", { class: "alert-state" }, a.active ? "active" : "cleared"),
      label(a.title, "alert-title"),
      a.count > 1 ? h("span", { class: "alert-times", title: "raised again while active" }, `×${a.count}`) : null,
      a.run != null ? h("button", { class: "alert-run", dataset: { run: a.run }, title: "Show this run's alerts only" }, label(a.run)) : null),
    a.text ? h("bdi", { class: "alert-text" }, visible(a.text, { multiline: true })) : null,
    h("div", { class: "alert-when" },
      a.started != null ? `since ${when(a.started)}` : "",
      a.ended != null ? ` · until ${when(a.ended)}` : !a.active ? " · ended" : "",
      a.step != null ? ` · step ${a.step}` : "",
      a.backlog ? " · found in the backlog" : ""));
}
