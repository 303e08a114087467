// The configs of the runs shown, for their labels (names.js): asked once per run from /api/run
// when the run is shown, and again when its records grew and the copy held is older than
// REFRESH_MS (config records can come late: add_hparams writes its config at the end).

import { getJSON } from "./api.js";
import { flatConfig } from "./names.js";

const REFRESH_MS = 15000;

export class RunConfigs {
  /** onChange(): a config arrived or changed (labels may change). */
  constructor({ onChange }) {
    this.onChange = onChange;
    this.configs = new Map(); // id -> flat config
    this.asked = new Map(); // id -> {at: ms, records}: when it was last asked, at which record count
  }

  /** Ask for the configs of `ids` the page does not hold or holds an old copy of. infos: id -> run. */
  want(ids, infos) {
    const now = Date.now();
    for (const id of ids) {
      const asked = this.asked.get(id);
      const records = infos.get(id)?.records;
      if (asked && (asked.records === records || now - asked.at < REFRESH_MS)) continue;
      this.asked.set(id, { at: now, records });
      getJSON("/api/run", { run: id }).then((body) => {
        const flat = flatConfig(body.config);
        if (JSON.stringify(flat) === JSON.stringify(this.configs.get(id))) return;
        this.configs.set(id, flat);
        this.onChange();
      }).catch(() => {
        // a run gone meanwhile, the sidecar away: asked again when its records grow (as above)
      });
    }
  }

  /** Forget runs no longer shown (their configs are asked again when they come back). */
  keep(ids) {
    const shown = new Set(ids);
    for (const id of [...this.asked.keys()]) if (!shown.has(id)) { this.asked.delete(id); this.configs.delete(id); }
  }
}
