// A chart's grid rules and tick labels: x as steps, relative time, wall time or a metric's values,
// y linear or log.
// Drawn on the chart's canvas by chart.js; kept apart so that the chart module holds the data paths.

import { formatNumber, formatDuration, formatClock, timeTicks } from "./scale.js";

/** A tick label for x value v under an x axis mode, over an x range [lo, hi]. */
export function xTickLabel(v, mode, lo, hi) {
  if (mode === "wall") return formatClock(v, hi - lo);
  if (mode === "relative") return formatDuration(v);
  return formatNumber(v);
}

/**
 * Rules and labels for scales sx, sy on a canvas of CSS size (w, h) with plot box `margin`.
 * theme: {grid, axis} colours.
 */
export function drawAxes(ctx, { sx, sy, w, h, margin, mode, theme }) {
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = theme.grid;
  ctx.fillStyle = theme.axis;
  const count = Math.max(2, Math.floor(w / 90));
  const xt = mode === "relative" || mode === "wall" ? timeTicks(sx.lo, sx.hi, count) : sx.ticks(count);
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.beginPath();
  for (const t of xt) {
    const x = Math.round(sx.px(t)) + 0.5;
    ctx.moveTo(x, margin.top);
    ctx.lineTo(x, h - margin.bottom);
    ctx.fillText(xTickLabel(t, mode, sx.lo, sx.hi), x, h - margin.bottom + 5);
  }
  const yt = sy.ticks(Math.max(2, Math.floor(h / 40)));
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const t of yt) {
    const y = Math.round(sy.px(t)) + 0.5;
    ctx.moveTo(margin.left, y);
    ctx.lineTo(w - margin.right, y);
    ctx.fillText(formatNumber(t), margin.left - 5, y);
  }
  ctx.stroke();
}
