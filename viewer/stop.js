// The stop control (docs/alerts.md#stop-control): shown only when the sidecar runs with
// --allow-control, one line per selected run that can be stopped or was asked to: a Stop button, an
// in-page confirmation, then the request's state as the run list says it (requested ->
// acknowledged -> finished). The sidecar never kills anything: it writes a request the trainer reads.
// An error (a read-only tree, a refusal) is one line under the run.

import { h, label, visible } from "./dom.js";
import * as api from "./api.js";

/** The statuses of a run that can be asked to stop (the sidecar's control.STOPPABLE). */
export const STOPPABLE = Object.freeze(["running", "stalled"]);
/** Lines shown at most (the selection may hold hundreds of runs). */
const MAX_LINES = 20;

const SAY = {
  requested: "Stop requested: waiting for the trainer",
  acknowledged: "Stop acknowledged: the trainer is stopping",
  finished: "Stopped: the run finished",
};

/** The path a stop request is posted to: each part of the run id escaped, the slashes kept. */
export function stopPath(run) {
  return `/api/runs/${run.split("/").map(encodeURIComponent).join("/")}/stop`;
}

/**
 * What the line of a run shows, from its run object and what this page did (`local`: {confirming,
 * busy, error, stop}): {state: "requested" | "acknowledged" | "finished" | null, text, button:
 * "stop" | "confirm" | null, error}; null when the run needs no line.
 */
export function stopView(info, local = {}) {
  const stop = info?.stop && typeof info.stop === "object" ? info.stop : local.stop || null;
  const state = stop && SAY[stop.state] ? stop.state : null;
  const stoppable = STOPPABLE.includes(info?.status);
  const error = local.error || null;
  if (state) {
    const text = state === "finished" && info?.status === "failed" ? "Stopped: the run ended as failed" : SAY[state];
    return { state, text, button: null, error };
  }
  if (!stoppable && !error) return null;
  if (local.busy) return { state: null, text: "Asking the sidecar…", button: null, error: null };
  return { state: null, text: "", button: !stoppable ? null : local.confirming ? "confirm" : "stop", error };
}

export class StopPanel {
  /** `post(path, body)` resolves to {status, ok, body}: api.js's postJSON (while api.js has none,
   *  the page shows no stop button). */
  constructor(el, { post = api.postJSON } = {}) {
    this.el = el;
    this.post = post;
    this.enabled = false;
    this.runs = [];
    this.infos = new Map();
    this.local = new Map(); // run -> {confirming, busy, error, stop}
    this.said = "";
    el.addEventListener("click", (e) => this._click(e));
  }

  /** A server message: `hello` and `runs` carry the server's features (is control on?); a `runs`
   *  message may change a run's status or stop state. `runs`: the selected ids, `infos`: id -> run. */
  handle(msg, runs, infos) {
    if (msg.features) this.enabled = msg.features.control === true && typeof this.post === "function";
    if (msg.type === "runs" || msg.features) this.update(runs, infos);
  }

  /** The selected runs and the run objects (id -> run). */
  update(runs, infos) {
    this.runs = runs;
    this.infos = infos;
    for (const [id, local] of this.local) { // once the run list says it, it is the truth (a restart clears it)
      if (local.stop && infos.get(id)?.stop) this.local.set(id, { ...local, stop: null });
    }
    this.render();
  }

  render() {
    const lines = [];
    if (this.enabled) {
      for (const id of this.runs) {
        const v = stopView(this.infos.get(id), this.local.get(id));
        if (v) lines.push([id, v]);
      }
    }
    const said = JSON.stringify(lines);
    if (said === this.said) return; // the runs list comes often: the DOM changes only with what it says
    this.said = said;
    this.el.hidden = !lines.length;
    this.el.replaceChildren(...lines.slice(0, MAX_LINES).map(([id, v]) => line(id, v)),
      lines.length > MAX_LINES ? h("div", { class: "stop-more" }, `… ${lines.length - MAX_LINES} more runs`) : null);
  }

  _set(id, patch) {
    this.local.set(id, { ...(this.local.get(id) || {}), ...patch });
    this.render();
  }

  _click(e) {
    const b = e.target.closest("button[data-act]");
    if (!b) return;
    const id = b.closest(".stop-row").dataset.run;
    if (b.dataset.act === "stop") this._set(id, { confirming: true, error: null });
    else if (b.dataset.act === "cancel") this._set(id, { confirming: false });
    else if (b.dataset.act === "confirm") this._send(id);
  }

  async _send(id) {
    this._set(id, { confirming: false, busy: true, error: null });
    let patch;
    try {
      const res = await this.post(stopPath(id), {});
      patch = res.ok ? { stop: res.body?.stop || { state: "requested" } }
        : { error: `Could not stop: ${res.body?.error || `the sidecar answered ${res.status}`}` };
    } catch (err) {
      patch = { error: `Could not stop: ${err?.message || err}` };
    }
    this._set(id, { busy: false, ...patch });
  }
}

function line(id, v) {
  const act = (name, text, title) => h("button", { dataset: { act: name }, title }, text);
  return h("div", { class: "stop-row", dataset: { run: id, state: v.state || (v.button === "confirm" ? "confirm" : "none") } },
    label(id, "stop-run"),
    v.text ? h("span", { class: `stop-state ${v.state || ""}` }, v.text) : null,
    v.button === "stop" ? act("stop", "Stop", "Ask this run's trainer to stop (it reads the request, saves and ends)") : null,
    v.button === "confirm" ? h("span", { class: "stop-confirm" }, "Stop this run?",
      act("confirm", "Stop run", "The trainer is asked to stop: it cannot be taken back"), act("cancel", "Cancel")) : null,
    v.error ? h("div", { class: "stop-error", title: visible(v.error) }, visible(v.error)) : null);
}
