// A chart card's export buttons: the drawing as PNG, the data held as CSV. The chart is only asked
// for its picture (chart.pngURL()); the rows come from whoever holds the data.

import { h } from "./dom.js";

/** A file name from a metric name: anything but word characters, dots and dashes becomes "_". */
export function fileName(metric, ext) {
  return `${metric.replace(/[^\w.-]+/g, "_")}.${ext}`;
}

/** Save `href` as `name` through a temporary link (the page made the URL: a data: or blob: URL). */
function download(name, href) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
}

export function exportPNG(metric, chart) {
  download(fileName(metric, "png"), chart.pngURL());
}

export function exportCSV(metric, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  download(fileName(metric, "csv"), url);
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** The CSV and PNG buttons of a card; csvText() is asked for the rows when the button is pressed. */
export function exportButtons(metric, chart, csvText) {
  return h("span", { class: "chart-actions" },
    h("button", { class: "csv", title: "Export data as CSV", onclick: () => exportCSV(metric, csvText()) }, "CSV"),
    h("button", { class: "png", title: "Export as PNG", onclick: () => exportPNG(metric, chart) }, "PNG"));
}
