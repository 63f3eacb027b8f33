// The units x snapshots heat map of one layer, drawn on a canvas.
// Cells are written into an ImageData at one pixel per cell through a
// 256-entry palette (one lookup per cell), then scaled onto the visible
// canvas without smoothing: 4096 x 500 cells take a few milliseconds.

import { h, formatNumber, formatPercent } from "./dom.js";
import { ACTIVE, DEAD, DORMANT, NO_DATA, STATE_NAMES, cellShare, cellState, unitOrder } from "./matrix.js";

function lerp(a, b, t) {
  return a + (b - a) * t;
}

function ramp(stops, t) {
  const x = Math.min(Math.max(t, 0), 1) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const f = x - i;
  return stops[i].map((c, k) => Math.round(lerp(c, stops[i + 1][k], f)));
}

// Active cells: dark navy (never active) to pale mint (always active);
// dormant cells: brown to amber; dead cells: one saturated red that no ramp
// reaches; no data: translucent grey.
const ACTIVE_RAMP = [
  [22, 34, 66],
  [31, 84, 140],
  [33, 145, 160],
  [110, 200, 170],
  [215, 245, 215],
];
const DORMANT_RAMP = [
  [92, 58, 10],
  [255, 184, 28],
];
export const DEAD_RGB = [235, 28, 52];

function rgba([r, g, b], a = 255) {
  // ImageData bytes are RGBA; on little-endian machines that is ABGR as uint32.
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

export const PALETTE = (() => {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    const state = cellState(byte);
    const share = cellShare(byte);
    if (state === ACTIVE) table[byte] = rgba(ramp(ACTIVE_RAMP, share));
    else if (state === DORMANT) table[byte] = rgba(ramp(DORMANT_RAMP, share));
    else if (state === DEAD) table[byte] = rgba(DEAD_RGB);
    else table[byte] = rgba([128, 128, 128], 70);
  }
  return table;
})();

export function cssColor(rgb) {
  return `rgb(${rgb.join(",")})`;
}
export const LEGEND = {
  activeLow: cssColor(ACTIVE_RAMP[0]),
  activeHigh: cssColor(ACTIVE_RAMP[ACTIVE_RAMP.length - 1]),
  activeRamp: ACTIVE_RAMP.map(cssColor),
  dormant: cssColor(DORMANT_RAMP[1]),
  dead: cssColor(DEAD_RGB),
};

/**
 * Paints the matrix into `target` (a canvas or OffscreenCanvas) at one
 * pixel per cell: width = snapshots, height = units, rows in `order`.
 */
export function paintCells(target, matrix, order) {
  const { units, steps, bytes } = matrix;
  target.width = steps;
  target.height = units;
  const image = new ImageData(steps, units);
  const pixels = new Uint32Array(image.data.buffer);
  for (let row = 0; row < units; row++) {
    const src = order[row] * steps;
    const dst = row * steps;
    for (let t = 0; t < steps; t++) pixels[dst + t] = PALETTE[bytes[src + t]];
  }
  target.getContext("2d").putImageData(image, 0, 0);
}

/** Height in CSS pixels of one unit's row. */
export function rowHeight(units) {
  if (units <= 48) return 8;
  if (units <= 128) return 4;
  if (units <= 320) return 2;
  return 1;
}

/**
 * One layer's heat map view. `onHover(info|null, event)` and
 * `onPick(unit)` report what the pointer is over.
 */
export class HeatMap {
  constructor({ onHover, onPick }) {
    this.cells = document.createElement("canvas");
    this.canvas = h("canvas", { className: "heatmap-canvas", dataset: { testid: "heatmap" } });
    this.scroller = h("div", { className: "heatmap-scroll" }, this.canvas);
    this.root = this.scroller;
    this.timeline = null;
    this.matrix = null;
    this.order = null;
    this.orderName = null;
    this.selectedUnit = null;
    this.lastDraw = null;
    this.canvas.addEventListener("mousemove", (e) => onHover(this.cellAt(e), e));
    this.canvas.addEventListener("mouseleave", (e) => onHover(null, e));
    this.canvas.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (cell) onPick(cell.unit);
    });
  }

  /** Sets the data; repaints the cell image only when it changed. */
  setData(timeline, matrix, orderName) {
    if (timeline === this.timeline && orderName === this.orderName) return false;
    this.timeline = timeline;
    this.matrix = matrix;
    this.orderName = orderName;
    this.order = unitOrder(timeline, orderName);
    this.rowOf = new Uint32Array(matrix.units);
    for (let r = 0; r < this.order.length; r++) this.rowOf[this.order[r]] = r;
    paintCells(this.cells, matrix, this.order);
    this.lastDraw = null;
    return true;
  }

  setSelectedUnit(unit) {
    if (unit === this.selectedUnit) return;
    this.selectedUnit = unit;
    this.lastDraw = null;
  }

  /** Scales the cell image onto the visible canvas at the current width. */
  draw(width) {
    if (!this.matrix || width <= 0) return false;
    const dpr = window.devicePixelRatio || 1;
    const rowH = rowHeight(this.matrix.units);
    const cssHeight = this.matrix.units * rowH;
    const key = `${width}|${dpr}`;
    if (this.lastDraw === key) return false;
    this.lastDraw = key;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(cssHeight * dpr);
    const ctx = this.canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.cells, 0, 0, this.canvas.width, this.canvas.height);
    if (this.selectedUnit !== null && this.selectedUnit < this.matrix.units) {
      const y = this.rowOf[this.selectedUnit] * rowH * dpr;
      ctx.lineWidth = Math.max(1, dpr);
      ctx.strokeStyle = "#ffffff";
      ctx.strokeRect(0.5, y + 0.5, this.canvas.width - 1, Math.max(rowH * dpr - 1, 1));
      ctx.strokeStyle = "#000000";
      ctx.setLineDash([3 * dpr, 3 * dpr]);
      ctx.strokeRect(0.5, y + 0.5, this.canvas.width - 1, Math.max(rowH * dpr - 1, 1));
    }
    return true;
  }

  /** The cell under a pointer event: unit, snapshot index, step, state, share. */
  cellAt(event) {
    if (!this.matrix) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    if (x < 0 || y < 0 || x >= rect.width || y >= rect.height) return null;
    const { units, steps, bytes } = this.matrix;
    const t = Math.min(steps - 1, Math.floor((x / rect.width) * steps));
    const row = Math.min(units - 1, Math.floor((y / rect.height) * units));
    const unit = this.order[row];
    const byte = bytes[unit * steps + t];
    return {
      unit,
      index: t,
      step: this.timeline.steps[t],
      state: STATE_NAMES[cellState(byte)],
      share: cellState(byte) === NO_DATA ? null : cellShare(byte),
    };
  }
}

/** Tooltip lines for a hovered cell (statistics from ./unit when known). */
export function tooltipLines(run, tag, cell, timeline, unitData) {
  const lines = [
    `unit ${cell.unit} · step ${cell.step}`,
    `${run} · ${tag}`,
    `state: ${cell.state}${cell.share === null ? "" : ` · active share ≈ ${formatPercent(cell.share)}`}`,
  ];
  const diedAt = timeline.died_at ? timeline.died_at[cell.unit] : null;
  const revived = timeline.revived ? timeline.revived[cell.unit] : false;
  const dying = timeline.dying ? timeline.dying[cell.unit] : false;
  lines.push(
    `died at: ${diedAt === null || diedAt === undefined ? "never" : diedAt}` +
      `${revived ? " · revived" : ""}${dying ? " · dying (active share falling)" : ""}`,
  );
  if (unitData) {
    const i = unitData.steps.indexOf(cell.step);
    if (i >= 0) {
      const st = unitData.stats || {};
      const parts = [];
      for (const [name, label] of [
        ["active_fraction", "active"],
        ["mean_abs", "mean|a|"],
        ["std", "std"],
        ["max_abs", "max|a|"],
        ["grad_mean_abs", "mean|grad|"],
      ]) {
        if (Array.isArray(st[name])) parts.push(`${label} ${formatNumber(st[name][i])}`);
      }
      if (Array.isArray(unitData.dormant_score)) parts.push(`score ${formatNumber(unitData.dormant_score[i])}`);
      lines.push(parts.join(" · "));
    }
  } else {
    lines.push("statistics: loading…");
  }
  return lines;
}

