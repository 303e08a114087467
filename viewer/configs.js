// The configs of the runs, as their run objects carry them (flat dotted keys, capped by the sidecar:
// see docs/protocol.md, `config` and `config_truncated`), for run labels (names.js), groups by a
// config key (groups.js) and the runs table (hparams.js). Nothing is asked per run: every runs
// message brings the configs of the runs it lists.

export class RunConfigs {
  constructor() {
    this.configs = new Map(); // id -> flat config
    this.truncated = new Set(); // ids whose config the sidecar cut
    this.version = 0; // bumped whenever a config changes: labels and groups are made again
    this.texts = new Map(); // id -> the config as JSON, to tell a change from the same config sent again
  }

  /** Take the configs of run objects (a runs message's); `full`: they are all the runs there are. */
  update(runs, removed = [], full = false) {
    const before = this.version;
    if (full) {
      const now = new Set(runs.map((r) => r.id));
      for (const id of [...this.configs.keys()]) if (!now.has(id)) this._drop(id);
    }
    for (const id of removed) this._drop(id);
    for (const r of runs) {
      const config = r.config && typeof r.config === "object" && !Array.isArray(r.config) ? r.config : {};
      const text = JSON.stringify(config);
      if (r.config_truncated === true) this.truncated.add(r.id); else this.truncated.delete(r.id);
      if (this.texts.get(r.id) === text) continue;
      this.texts.set(r.id, text);
      this.configs.set(r.id, config);
      this.version++;
    }
    return this.version !== before;
  }

  _drop(id) {
    if (!this.configs.delete(id)) return;
    this.texts.delete(id);
    this.truncated.delete(id);
    this.version++;
  }
}
