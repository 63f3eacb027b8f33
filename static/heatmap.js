// The units x snapshots heat map of one layer, drawn on a canvas.
// Cells are written into an ImageData at one pixel per cell through a
// 256-entry palette (one lookup per cell), then scaled onto the visible
// canvas without smoothing: 4096 x 500 cells take a few milliseconds.
// Rows follow an order of units (matrix.js unitOrder); `paint` is the one
// place that maps rows to units.

import { h } from "./dom.js";
import { deadRule, revivalOf, revivalText } from "./deadunits.js";
import { formatNumber, formatPercent } from "./format.js";
import {
  ACTIVE,
  DEAD,
  DORMANT,
  NO_DATA,
  STATE_NAMES,
  cellGradDormant,
  cellShare,
  cellState,
  unitOrder,
} from "./matrix.js";
import { memo } from "./memo.js";
import { statSeries } from "./stats.js";
import { rowOfUnit } from "./zoom.js";

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
// reaches; no data: translucent grey. A gradient-negligible cell that is not
// dead is drawn half way to violet, so both states stay readable.
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
const NO_DATA_RGBA = [128, 128, 128, 70];
const GRAD_RGB = [190, 70, 255];

function rgba([r, g, b, a = 255]) {
  // ImageData bytes are RGBA; on little-endian machines that is ABGR as uint32.
  return ((a << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

function stateColor(byte) {
  const state = cellState(byte);
  if (state === ACTIVE) return ramp(ACTIVE_RAMP, cellShare(byte));
  if (state === DORMANT) return ramp(DORMANT_RAMP, cellShare(byte));
  if (state === DEAD) return DEAD_RGB;
  return NO_DATA_RGBA;
}

function cellColor(byte) {
  const rgb = stateColor(byte);
  const mixed = cellGradDormant(byte) && cellState(byte) !== DEAD && cellState(byte) !== NO_DATA;
  return mixed ? ramp([rgb, GRAD_RGB], 0.6) : rgb;
}

/** uint32 RGBA of each cell byte. */
export const PALETTE = Uint32Array.from({ length: 256 }, (_, byte) => rgba(cellColor(byte)));

export function cssColor(rgb) {
  return `rgb(${rgb.join(",")})`;
}

export const LEGEND = {
  activeRamp: ACTIVE_RAMP.map(cssColor),
  // Dormant cells are shaded by active share like active ones: the swatch
  // is the ramp they are drawn from, not one of its ends.
  dormantRamp: DORMANT_RAMP.map(cssColor),
  dead: cssColor(DEAD_RGB),
  gradDormant: cssColor(ramp([ACTIVE_RAMP[3], GRAD_RGB], 0.6)),
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

function outlineRow(ctx, y, width, height, dpr) {
  ctx.lineWidth = Math.max(1, dpr);
  ctx.strokeStyle = "#ffffff";
  ctx.strokeRect(0.5, y + 0.5, width - 1, Math.max(height - 1, 1));
  ctx.strokeStyle = "#000000";
  ctx.setLineDash([3 * dpr, 3 * dpr]);
  ctx.strokeRect(0.5, y + 0.5, width - 1, Math.max(height - 1, 1));
}

/**
 * One layer's heat map view. `onHover(cell|null, event)` and `onPick(unit)`
 * report what the pointer is over (cell: see `cellAt`); a click on a row of
 * several units (an aggregated wide layer) calls `onZoom(cell)` instead.
 */
export class HeatMap {
  constructor({ onHover, onPick, onZoom }) {
    this.cells = document.createElement("canvas");
    this.canvas = h("canvas", { className: "heatmap-canvas", dataset: { testid: "heatmap" } });
    this.root = h("div", { className: "heatmap-scroll" }, this.canvas);
    this.timeline = null;
    this.matrix = null;
    this.order = null;
    this.selectedUnit = null;
    this.paint = memo((timeline, matrix, orderName) => {
      const order = unitOrder(timeline, orderName, matrix);
      this.order = order;
      this.rowOf = new Uint32Array(matrix.units);
      for (let r = 0; r < order.length; r++) this.rowOf[order[r]] = r;
      paintCells(this.cells, matrix, order);
    });
    this.blit = memo((width, dpr, order, unit) => this.scaleOnto(width, dpr, unit));
    this.canvas.addEventListener("mousemove", (e) => onHover(this.cellAt(e), e));
    this.canvas.addEventListener("mouseleave", (e) => onHover(null, e));
    this.canvas.addEventListener("click", (e) => {
      const cell = this.cellAt(e);
      if (cell && cell.unitStop - cell.unit > 1) onZoom(cell);
      else if (cell) onPick(cell.unit);
    });
  }

  /** Sets the data: a ./timeline response, its decoded matrix and the row order's name. */
  setData(timeline, matrix, orderName) {
    this.timeline = timeline;
    this.matrix = matrix;
    return this.paint(timeline, matrix, orderName);
  }

  setSelectedUnit(unit) {
    this.selectedUnit = unit;
  }

  /** Scales the cell image onto the visible canvas at `width` CSS pixels; false when unchanged. */
  draw(width) {
    if (!this.matrix || width <= 0) return false;
    return this.blit(width, window.devicePixelRatio || 1, this.order, this.selectedUnit);
  }

  scaleOnto(width, dpr, unit) {
    const rowH = rowHeight(this.matrix.units);
    const cssHeight = this.matrix.units * rowH;
    this.canvas.style.width = `${width}px`;
    this.canvas.style.height = `${cssHeight}px`;
    this.canvas.width = Math.round(width * dpr);
    this.canvas.height = Math.round(cssHeight * dpr);
    const ctx = this.canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(this.cells, 0, 0, this.canvas.width, this.canvas.height);
    const row = unit === null ? -1 : this.rowFor(unit);
    if (row >= 0) outlineRow(ctx, row * rowH * dpr, this.canvas.width, rowH * dpr, dpr);
  }

  /** The heat-map row showing `unit`; -1 when it is outside the matrix. */
  rowFor(unit) {
    const m = this.matrix;
    if (m.wholeLayer) return unit < m.units ? this.rowOf[unit] : -1;
    return rowOfUnit(m.unitBounds, unit);
  }

  /**
   * The cell under a pointer event, or null: {unit, unitStop (units
   * [unit, unitStop) share the row), deadUnits (of the row, at most at once;
   * null for one-unit rows), index, step (the block's last), state, share,
   * gradDormant}.
   */
  cellAt(event) {
    if (!this.matrix) return null;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    if (x < 0 || y < 0 || x >= rect.width || y >= rect.height) return null;
    const { units, steps, bytes, unitBounds, stepBounds, dead, wholeLayer } = this.matrix;
    const t = Math.min(steps - 1, Math.floor((x / rect.width) * steps));
    const row = Math.min(units - 1, Math.floor((y / rect.height) * units));
    const source = this.order[row];
    const unit = wholeLayer ? source : unitBounds[source];
    const byte = bytes[source * steps + t];
    const state = cellState(byte);
    return {
      unit,
      unitStop: wholeLayer ? unit + 1 : unitBounds[source + 1],
      deadUnits: dead ? dead[source * steps + t] : null,
      index: stepBounds[t + 1] - 1,
      step: this.timeline.steps[stepBounds[t + 1] - 1],
      state: STATE_NAMES[state],
      share: state === NO_DATA ? null : cellShare(byte),
      gradDormant: cellGradDormant(byte),
    };
  }
}

/** The per-snapshot verdicts of a ./unit response under its definition. */
function unitFlags(unitData) {
  const definition = (unitData.thresholds && unitData.thresholds.definition) || "dead";
  if (definition === "dormant") return unitData.dead.map((d, i) => d || unitData.dormant[i]);
  if (definition === "grad_dormant" && unitData.grad_dormant) return unitData.grad_dormant;
  return unitData.dead;
}

/** "state: dead (never active)"; the active share once: exact when ./unit answered. */
function stateLine(cell, exactShare) {
  const rule = cell.state === "dead" ? ` (${deadRule(cell.share)})` : "";
  let share = "";
  if (exactShare !== undefined) share = ` · active share ${formatNumber(exactShare)}`;
  else if (cell.share !== null) share = ` · active share ≈ ${formatPercent(cell.share)}`;
  const grad = cell.gradDormant ? " · gradient-negligible" : "";
  return `state: ${cell.state}${rule}${share}${grad}`;
}

/** Tooltip lines for a hovered cell (statistics from a ./unit response when known). */
export function tooltipLines(run, tag, cell, timeline, unitData) {
  if (cell.unitStop - cell.unit > 1) return blockLines(run, tag, cell);
  const diedAt = timeline.died_at ? timeline.died_at[cell.unit] : null;
  const dying =
    timeline.dying && timeline.dying[cell.unit] ? " · dying (active share falling)" : "";
  const i = unitData ? unitData.steps.indexOf(cell.step) : -1;
  const exact =
    i >= 0 && unitData.stats.active_fraction ? unitData.stats.active_fraction[i] : undefined;
  let revived = timeline.revived && timeline.revived[cell.unit] ? " · revived" : "";
  if (revived && unitData)
    revived = ` · ${revivalText(revivalOf(unitData.steps, unitFlags(unitData)))}`;
  const lines = [
    `unit ${cell.unit} · step ${cell.step}`,
    `${run} · ${tag}`,
    stateLine(cell, exact),
    `died at: ${diedAt ?? "never"}${revived}${dying}`,
  ];
  if (!unitData) return [...lines, "statistics: loading…"];
  if (i < 0) return lines;
  const series = statSeries(unitData.stats, unitData.dormant_score).filter(
    ([label]) => label !== "active share", // shown once, above
  );
  return [
    ...lines,
    series.map(([label, values]) => `${label} ${formatNumber(values[i])}`).join(" · "),
  ];
}

/** Tooltip lines for a row of several units (an aggregated wide layer). */
function blockLines(run, tag, cell) {
  const n = cell.unitStop - cell.unit;
  const dead = cell.deadUnits ? `${cell.deadUnits} of ${n} units dead` : `none of ${n} units dead`;
  return [
    `units ${cell.unit}–${cell.unitStop - 1} · step ${cell.step}`,
    `${run} · ${tag}`,
    `${dead} · most telling: ${cell.state}`,
    "click to zoom into these units",
  ];
}
