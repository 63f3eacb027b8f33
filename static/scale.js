// Axis ticks, their labels, linear scales and SVG line paths. Pure.

import { formatNumber } from "./format.js";

/**
 * About `count` ticks in [lo, hi] at a step of 1, 2, 2.5 or 5 x 10^k;
 * `[lo]` when the range is empty.
 */
export function niceTicks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(count, 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((v) => v >= raw * (1 - 1e-9));
  const ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + step * 1e-9; k++) {
    ticks.push(Number((k * step).toPrecision(12)));
  }
  return ticks;
}

/** Powers of ten in [lo, hi] (both > 0), for a log axis. */
export function logTicks(lo, hi) {
  const ticks = [];
  for (let p = Math.ceil(Math.log10(lo)); p <= Math.floor(Math.log10(hi)); p++) ticks.push(10 ** p);
  return ticks;
}

/**
 * Labels for `ticks` with `format(value, digits)`, starting at `digits`
 * significant digits and adding more until no two labels are the same.
 */
export function tickLabels(ticks, format = formatNumber, digits = 2) {
  let labels = ticks.map((t) => format(t, digits));
  for (let d = digits + 1; d <= 15 && new Set(labels).size < labels.length; d++) {
    labels = ticks.map((t) => format(t, d));
  }
  return labels;
}

/** The linear map of [d0, d1] onto [r0, r1] (an empty domain maps to r0). */
export function linear(d0, d1, r0, r1) {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (x) => r0 + (x - d0) * k;
}

/**
 * SVG path data through (sx(xs[i]), sy(ys[i])); a null or non-finite y (or
 * a null sy) lifts the pen, so gaps in the data stay gaps.
 */
export function linePath(xs, ys, sx, sy) {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i++) {
    const y = ys[i] === null || ys[i] === undefined ? null : sy(ys[i]);
    if (y === null || !Number.isFinite(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${sx(xs[i]).toFixed(1)},${y.toFixed(1)}`;
    pen = true;
  }
  return d;
}
