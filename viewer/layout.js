// The scalar charts' page layout: pinned charts first, then one collapsible section per tag prefix
// ("train/loss" -> "train"), each a grid of cards, one per metric: a head (title, x axis, pin,
// enlarge, toolbar) over the chart, its legend and its pinned data table. Cards keep their place (by
// name, pinned ones in the order pinned) however the metrics shown come and go; collapsed sections
// are not drawn. What is pinned, enlarged or collapsed, a chart's own x axis and the groups shown as
// their runs are the caller's view (kept in the URL): cards ask for a change through onLayout and
// show what the next sync says. The crosshair is shared by the charts on the same x axis.

import { Chart } from "./chart.js";
import { Readout } from "./readout.js";
import { groupByPrefix } from "./state.js";
import { axisChoices } from "./xaxis.js";
import { h, label, visible } from "./dom.js";

const PINNED = Symbol("pinned");

/**
 * The sections to show, in order, as [key, metrics]: PINNED (the pinned metrics shown, in pin
 * order) when there are any, then the tag groups of the others (groupByPrefix's order).
 */
export function arrange(names, pins = []) {
  const pinned = pins.filter((m) => names.has(m));
  const rest = [...names].filter((m) => !pinned.includes(m));
  const out = pinned.length ? [[PINNED, pinned]] : [];
  return out.concat([...groupByPrefix(rest)]);
}

/** Put `children` in `parent` in this order (moving only those out of place). */
function order(parent, children) {
  children.forEach((el, k) => {
    if (parent.children[k] !== el) parent.insertBefore(el, parent.children[k] || null);
  });
}

export class ChartGrid {
  /**
   * host: the element the sections go in. chartOptions: passed to every Chart (onZoom, onHover).
   * toolbar(metric, chart): the element put in a card's head. onOpen(): a section was expanded.
   * onLayout(change): a card asks {pin: metric}, {big: metric} (each a toggle), a section
   * {fold: group, open}, an x axis of its own {x: metric, axis} ("" for the page's) or a group of
   * runs shown as its runs or as one line (a toggle) {group: key}. metrics(): every metric name
   * (a chart's x axis may be any of them).
   */
  constructor(host, { chartOptions = {}, toolbar = () => null, onOpen = () => {}, onLayout = () => {}, metrics = () => [] } = {}) {
    this.host = host;
    this.chartOptions = chartOptions;
    this.toolbar = toolbar;
    this.onOpen = onOpen;
    this.onLayout = onLayout;
    this.metrics = metrics;
    this.charts = new Map(); // metric -> Chart
    this.cards = new Map(); // metric -> {el, readout, pin, big}
    this.sections = new Map(); // group (or PINNED) -> section element
  }

  /**
   * Show exactly the metrics in `names`: cards of the others go, new ones are made. Every chart
   * takes viewOf(metric) (see Chart.setView); those in open sections are given seriesOf(metric)
   * (series with their label). layout: {pins: [metric], big: metric or "", fold: [group], axes: Map
   * metric -> the x axis chosen for that chart} (the view's).
   */
  sync(names, viewOf, seriesOf, { pins = [], big = "", fold = [], axes = new Map() } = {}) {
    for (const metric of [...this.charts.keys()]) if (!names.has(metric)) this._remove(metric);
    const arranged = arrange(names, pins);
    const wanted = new Set(arranged.map(([key]) => key));
    for (const [key, sec] of [...this.sections]) if (!wanted.has(key)) { sec.remove(); this.sections.delete(key); }
    const folded = new Set(fold);
    for (const [key, metrics] of arranged) {
      const sec = this._section(key);
      const open = key === PINNED || !folded.has(key);
      if (key !== PINNED && sec.open !== open) sec.open = open;
      const cards = metrics.map((metric) => {
        if (!this.charts.has(metric)) this._add(metric);
        const chart = this.charts.get(metric), card = this.cards.get(metric);
        chart.setView(viewOf(metric));
        this._mark(card, key === PINNED, metric === big);
        this._axis(card, axes.get(metric) || "");
        if (open) {
          const series = seriesOf(metric);
          chart.setSeries(series);
          card.readout.setLegend(series);
        }
        return card.el;
      });
      order(sec.querySelector(".grid"), cards);
    }
    order(this.host, arranged.map(([key]) => this.sections.get(key)));
  }

  /** Every chart draws again (the window was resized). */
  invalidateAll() {
    for (const c of this.charts.values()) c.invalidate();
  }

  /** Show the crosshair at x on every other chart on the same x axis as the one the pointer is on. */
  hover(x, source) {
    for (const c of this.charts.values()) {
      if (c === source) continue;
      const at = c.view.xaxis === source.view.xaxis ? x : null;
      if (c.hoverX !== at) { c.hoverX = at; c.invalidate(); }
    }
  }

  _section(key) {
    let sec = this.sections.get(key);
    if (sec) return sec;
    const grid = h("div", { class: "grid" });
    if (key === PINNED) {
      sec = h("section", { class: "section pinned", id: "section-pinned" }, h("div", { class: "section-head" }, "pinned"), grid);
    } else {
      sec = h("details", { class: "section", id: `section-${key || "_"}`, open: true },
        h("summary", null, key ? label(key) : "metrics"), grid);
      sec.addEventListener("toggle", () => {
        if (sec.open) this.onOpen();
        this.onLayout({ fold: key, open: sec.open });
      });
    }
    this.sections.set(key, sec);
    return sec;
  }

  /** A card's pinned and enlarged state, written to the DOM only when it changes. */
  _mark(card, pinned, big) {
    if (card.pinned !== pinned) {
      card.pinned = pinned;
      card.pin.classList.toggle("on", pinned);
      card.pin.title = pinned ? "Unpin" : "Pin to the top";
      card.pin.setAttribute("aria-pressed", String(pinned));
    }
    if (card.big !== big) {
      card.big = big;
      card.el.classList.toggle("big", big);
      card.bigButton.classList.toggle("on", big);
      card.bigButton.title = big ? "Back to the grid (Escape)" : "Enlarge";
      card.bigButton.setAttribute("aria-pressed", String(big));
    }
  }

  /** A card's own x axis in its select ("": the page's), written only when it changes. */
  _axis(card, axis) {
    if (card.axis === axis) return;
    card.axis = axis;
    if (axis && ![...card.xsel.options].some((o) => o.value === axis)) this._fillAxes(card.xsel, axis);
    card.xsel.value = axis;
    card.xsel.classList.toggle("on", axis !== "");
  }

  /** The choices of a card's x axis select: made when it is about to open (a hundred cards do not
   *  each hold a hundred metric names they may never show). */
  _fillAxes(sel, current = sel.value) {
    const names = [...new Set([...this.metrics(), ...(current.startsWith("m:") ? [current.slice(2)] : [])])].sort();
    sel.replaceChildren(h("option", { value: "" }, "x: page's"),
      ...axisChoices(names).map(([value, text]) => h("option", { value }, `x: ${visible(text)}`)));
    sel.value = current;
  }

  _add(metric) {
    let chart = null;
    const readout = new Readout({ onUnpin: () => chart.setPin(null), onHighlight: (id) => chart.setHighlight(id),
      onGroup: (key) => this.onLayout({ group: key }) });
    chart = new Chart({ ...this.chartOptions, onReadout: (c, data) => readout.show(c, data) });
    chart.el.appendChild(readout.tooltip);
    const pin = h("button", { class: "pin", onclick: () => this.onLayout({ pin: metric }) }, "⇡");
    const bigButton = h("button", { class: "big", onclick: () => this.onLayout({ big: metric }) }, "⤢");
    const xsel = h("select", { class: "xsel", title: "This chart's x axis",
      onchange: () => this.onLayout({ x: metric, axis: xsel.value }) }, h("option", { value: "" }, "x: page's"));
    for (const ev of ["focus", "mousedown"]) xsel.addEventListener(ev, () => this._fillAxes(xsel));
    const el = h("div", { class: "chart", dataset: { metric } },
      h("div", { class: "chart-head" }, label(metric, "chart-title"),
        h("span", { class: "chart-actions" }, xsel, pin, bigButton, this.toolbar(metric, chart))),
      chart.el, readout.legend, readout.pinned);
    this.charts.set(metric, chart);
    this.cards.set(metric, { el, readout, pin, bigButton, xsel, axis: "", pinned: null, big: null });
    return chart;
  }

  _remove(metric) {
    this.charts.get(metric).destroy();
    this.cards.get(metric).el.remove();
    this.charts.delete(metric);
    this.cards.delete(metric);
  }
}
