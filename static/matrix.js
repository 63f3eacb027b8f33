// Decoding the timeline's units x snapshots matrix (docs/routes.md): one
// byte per cell, bits 7-6 the state (0 active, 1 dormant, 2 dead, 3 no data),
// bit 5 gradient-negligible (never set without the gradient row), bits 4-0
// round(active_fraction * 31), at least 1 when nonzero. A wide layer's
// matrix may be aggregated (zoom.js): rows/columns are then blocks of units
// and snapshots between `unitBounds` / `stepBounds`. Pure.

import { decodeDeadCounts } from "./zoom.js";

export const ACTIVE = 0;
export const DORMANT = 1;
export const DEAD = 2;
export const NO_DATA = 3;
export const STATE_NAMES = ["active", "dormant", "dead", "no data"];
const GRAD_BIT = 32;
const SHARE_MAX = 31;

export function cellState(byte) {
  return byte >> 6;
}

/** Whether the cell's gradient is negligible (analysis' grad_dormant). */
export function cellGradDormant(byte) {
  return (byte & GRAD_BIT) !== 0;
}

export function cellShare(byte) {
  return (byte & SHARE_MAX) / SHARE_MAX;
}

function base64ToBytes(text) {
  if (typeof Uint8Array.fromBase64 === "function") return Uint8Array.fromBase64(text);
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/**
 * The matrix of a timeline response as {units, steps, bytes} (unit-major).
 * Throws an Error naming what does not match the contract.
 */
export function decodeMatrix(timeline) {
  const m = timeline.matrix;
  const show = JSON.stringify;
  if (!m || typeof m !== "object") throw new Error("timeline has no matrix");
  if (m.encoding !== "base64") throw new Error(`unknown matrix encoding ${show(m.encoding)}`);
  if (m.order && m.order !== "unit-major") throw new Error(`unknown matrix order ${show(m.order)}`);
  const [units, steps] = m.shape || [];
  const whole = `${timeline.units} units x ${timeline.steps.length} steps`;
  if (m.unit_bounds || m.step_bounds) {
    checkBounds(m, whole);
  } else if (units !== timeline.units || steps !== timeline.steps.length) {
    throw new Error(`matrix shape ${show(m.shape)} does not match ${whole}`);
  }
  const bytes = base64ToBytes(m.data || "");
  if (bytes.length !== units * steps) {
    throw new Error(`matrix has ${bytes.length} bytes, expected ${units * steps}`);
  }
  const range = (n) => Array.from({ length: n + 1 }, (_, i) => i);
  const unitBounds = m.unit_bounds || range(units);
  const stepBounds = m.step_bounds || range(steps);
  const dead = decodeDeadCounts(m.dead, units * steps, base64ToBytes);
  // Rows are the whole layer, one unit each: only then can rows be reordered.
  const wholeLayer = units === timeline.units && unitBounds[units] === units;
  return { units, steps, bytes, unitBounds, stepBounds, dead, wholeLayer };
}

/** An aggregated or zoomed matrix: rows/columns are blocks between cut points. */
function checkBounds(m, whole) {
  const [rows, cols] = m.shape || [];
  const ub = m.unit_bounds || [];
  const sb = m.step_bounds || [];
  const ascending = (b) => b.every((x, i) => i === 0 || x > b[i - 1]);
  const fits = ub.length === rows + 1 && sb.length === cols + 1 && ascending(ub) && ascending(sb);
  const inside = fits && ub[0] >= 0 && sb[0] === 0;
  if (!inside) {
    const show = JSON.stringify;
    throw new Error(`matrix shape ${show(m.shape)} does not match its bounds (${whole})`);
  }
}

/**
 * Row order of the heat map: by died-at step (units that died first on top,
 * units that never died after them, ties by index) or by index. Rows of an
 * aggregated or zoomed `matrix` stay in unit order.
 */
export function unitOrder(timeline, order, matrix = null) {
  const n = matrix ? matrix.units : timeline.units;
  const rows = new Uint32Array(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  if (order !== "died" || (matrix && !matrix.wholeLayer)) return rows;
  const diedAt = timeline.died_at || [];
  const key = (u) => diedAt[u] ?? Infinity;
  return rows.sort((a, b) => key(a) - key(b) || a - b);
}
