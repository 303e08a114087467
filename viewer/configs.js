// The configs of the runs shown, for their labels (names.js): asked from /api/run when a run is
// shown, and again when its records grew and the copy held is older than REFRESH_MS (config
// records can come late: add_hparams writes its config at the end). At most CONCURRENT requests at
// a time, and none beyond MAX_RUNS runs shown (their labels are then their paths): a page showing
// a thousand runs does not ask a thousand questions every minute.

import { getJSON } from "./api.js";
import { flatConfig } from "./names.js";

const REFRESH_MS = 60000;
const CONCURRENT = 4;
export const MAX_RUNS = 200;

export class RunConfigs {
  /** onChange(): a config arrived or changed (labels may change). */
  constructor({ onChange }) {
    this.onChange = onChange;
    this.configs = new Map(); // id -> flat config
    this.asked = new Map(); // id -> {at: ms, records}: when it was last asked, at which record count
    this.queue = [];
    this.active = 0;
  }

  /** Ask for the configs of `ids` the page does not hold or holds an old copy of. infos: id -> run. */
  want(ids, infos) {
    if (ids.length > MAX_RUNS) return;
    const now = Date.now();
    for (const id of ids) {
      const asked = this.asked.get(id);
      const records = infos.get(id)?.records;
      if (asked && (asked.records === records || now - asked.at < REFRESH_MS)) continue;
      this.asked.set(id, { at: now, records });
      this.queue.push(id);
    }
    this._next();
  }

  /** Forget runs no longer shown (their configs are asked again when they come back). */
  keep(ids) {
    const shown = new Set(ids);
    for (const id of [...this.asked.keys()]) if (!shown.has(id)) { this.asked.delete(id); this.configs.delete(id); }
    this.queue = this.queue.filter((id) => shown.has(id));
  }

  _next() {
    while (this.active < CONCURRENT && this.queue.length) {
      const id = this.queue.shift();
      this.active++;
      getJSON("/api/run", { run: id }).then((body) => {
        if (!this.asked.has(id)) return; // no longer shown
        const flat = flatConfig(body.config);
        if (JSON.stringify(flat) === JSON.stringify(this.configs.get(id))) return;
        this.configs.set(id, flat);
        this.onChange();
      }).catch(() => {
        // a run gone meanwhile, the sidecar away: asked again when its records grow (as above)
      }).finally(() => {
        this.active--;
        this._next();
      });
    }
  }
}
