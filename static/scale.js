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

/**
 * About `count` ticks in [lo, hi] that are whole numbers (training steps):
 * a step of 1, 2 or 5 x 10^k (2.5 only from 25 on), never below 1.
 */
export function stepTicks(lo, hi, count) {
  if (!(hi > lo)) return [Math.round(lo)];
  const raw = Math.max((hi - lo) / Math.max(count, 1), 1);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const factors = mag >= 10 ? [1, 2, 2.5, 5, 10] : [1, 2, 5, 10];
  const step = factors.map((f) => f * mag).find((v) => v >= raw * (1 - 1e-9));
  const ticks = [];
  for (let k = Math.ceil(lo / step - 1e-9); k * step <= hi + 1e-9; k++) ticks.push(k * step + 0);
  return ticks;
}

/**
 * The top of a share axis (0..1) that holds `max`: 100% when a share passes
 * half, else the next tenth above it (at least 5%). One value for every card
 * that shows the same quantity, so equal heights mean equal shares.
 */
export function shareTop(max) {
  if (!(max > 0)) return 0.05;
  return max > 0.5 ? 1 : Math.max(0.05, Math.ceil(max * 11) / 10);
}

/**
 * About `count` evenly spread column indices of a heat map with `columns`
 * columns, always the first and the last: where its step labels go.
 */
export function columnTicks(columns, count) {
  if (columns <= 0) return [];
  const n = Math.max(2, Math.min(columns, Math.floor(count)));
  if (columns === 1) return [0];
  const ticks = new Set();
  for (let i = 0; i < n; i++) ticks.add(Math.round((i * (columns - 1)) / (n - 1)));
  return [...ticks];
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
