// The scalar charts' page layout: one collapsible section per tag prefix ("train/loss" -> "train"),
// in it a grid of cards, one per metric: a head (title, toolbar) over the chart. Sections and cards
// come and go with the metrics shown; collapsed sections are not drawn.

import { Chart } from "./chart.js";
import { groupByPrefix } from "./state.js";
import { h, label } from "./dom.js";

export class ChartGrid {
  /**
   * host: the element the sections go in. chartOptions: passed to every Chart (onZoom, onHover).
   * toolbar(metric, chart): the element put in a card's head. onOpen(): a section was expanded.
   */
  constructor(host, { chartOptions = {}, toolbar = () => null, onOpen = () => {} } = {}) {
    this.host = host;
    this.chartOptions = chartOptions;
    this.toolbar = toolbar;
    this.onOpen = onOpen;
    this.charts = new Map(); // metric -> Chart
    this.cards = new Map(); // metric -> card element
  }

  /**
   * Show exactly the metrics in `names`: cards of the others go, new ones are made. Every chart
   * takes `chartView`; those in open sections are given seriesOf(metric).
   */
  sync(names, chartView, seriesOf) {
    for (const metric of [...this.charts.keys()]) if (!names.has(metric)) this._remove(metric);
    for (const [group, metrics] of groupByPrefix(names)) {
      const sec = this._section(group);
      const grid = sec.querySelector(".grid");
      for (const metric of metrics) {
        const chart = this.charts.get(metric) || this._add(grid, metric);
        chart.setView(chartView);
        if (!sec.open) continue; // collapsed sections are not drawn
        chart.setSeries(seriesOf(metric));
      }
    }
    for (const sec of [...this.host.children]) if (!sec.querySelector(".chart")) sec.remove();
  }

  /** Every chart draws again (the window was resized). */
  invalidateAll() {
    for (const c of this.charts.values()) c.invalidate();
  }

  /** Show the crosshair at x on every chart but the one the pointer is on. */
  hover(x, source) {
    for (const c of this.charts.values()) if (c !== source) { c.hoverX = x; c.invalidate(); }
  }

  _section(group) {
    const gid = `section-${group || "_"}`;
    let sec = document.getElementById(gid);
    if (sec) return sec;
    sec = h("details", { class: "section", id: gid, open: true },
      h("summary", null, group ? label(group) : "metrics"), h("div", { class: "grid" }));
    sec.addEventListener("toggle", () => { if (sec.open) this.onOpen(); });
    const after = [...this.host.children].find((c) => c.id > gid);
    this.host.insertBefore(sec, after || null);
    return sec;
  }

  _add(grid, metric) {
    const chart = new Chart(this.chartOptions);
    const card = h("div", { class: "chart", dataset: { metric } },
      h("div", { class: "chart-head" }, label(metric, "chart-title"), this.toolbar(metric, chart)),
      chart.el);
    grid.appendChild(card);
    this.charts.set(metric, chart);
    this.cards.set(metric, card);
    return chart;
  }

  _remove(metric) {
    this.charts.get(metric).destroy();
    this.cards.get(metric).remove();
    this.charts.delete(metric);
    this.cards.delete(metric);
  }
}
