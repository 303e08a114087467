// Zoom detail: the page holds a thinned copy of long series; when the x range is zoomed, the series
// that are thinned are asked from the sidecar for that range at full detail (about 4 points per
// pixel column), and drawn instead of the thinned copy while the zoom lasts.

import { decodeSeries } from "./protocol.js";
import { getJSON } from "./api.js";

const key = (run, metric) => run + "\u0000" + metric;

export class ZoomDetail {
  /** onData(): a detail series arrived (the charts should draw again). */
  constructor({ onData }) {
    this.onData = onData;
    this.series = new Map(); // `${run}\u0000${metric}` -> decoded series of the zoomed range
    this.seq = 0; // bumped by each request: answers to an earlier zoom are dropped
  }

  /** The finer series of a run's metric for the current zoom, if it was fetched. */
  get(run, metric) {
    return this.series.get(key(run, metric));
  }

  clear() {
    this.series.clear();
  }

  /** Forget the detail of one run (its data was replaced). */
  clearRun(run) {
    for (const k of [...this.series.keys()]) if (k.startsWith(run + "\u0000")) this.series.delete(k);
  }

  /** Ask for each of `wanted` ({run, metric, width} with width in CSS pixels) over range [x0, x1]. */
  async request(range, wanted) {
    const seq = ++this.seq;
    await Promise.all(wanted.map(({ run, metric, width }) => {
      const q = { run, metric, start: String(Math.floor(range[0])), end: String(Math.ceil(range[1])), points: String(width * 4) };
      return getJSON("/api/series", q).then((body) => {
        if (seq !== this.seq) return;
        const d = decodeSeries(body);
        d.version = seq;
        this.series.set(key(run, metric), d);
        this.onData();
      }).catch(() => {});
    }));
  }
}
