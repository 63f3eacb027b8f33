// Decoding the timeline's units x snapshots matrix (docs/routes.md): one
// byte per cell, bits 7-6 the state (0 active, 1 dormant, 2 dead, 3 no data),
// bit 5 gradient-negligible (never set without the gradient row), bits 4-0
// round(active_fraction * 31), at least 1 when nonzero. Pure.

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
  if (units !== timeline.units || steps !== timeline.steps.length) {
    const want = `${timeline.units} units x ${timeline.steps.length} steps`;
    throw new Error(`matrix shape ${show(m.shape)} does not match ${want}`);
  }
  const bytes = base64ToBytes(m.data || "");
  if (bytes.length !== units * steps) {
    throw new Error(`matrix has ${bytes.length} bytes, expected ${units * steps}`);
  }
  return { units, steps, bytes };
}

/**
 * Row order of the heat map: by died-at step (units that died first on top,
 * units that never died after them, ties by index) or by index.
 */
export function unitOrder(timeline, order) {
  const n = timeline.units;
  const rows = new Uint32Array(n);
  for (let i = 0; i < n; i++) rows[i] = i;
  if (order !== "died") return rows;
  const diedAt = timeline.died_at || [];
  const key = (u) => diedAt[u] ?? Infinity;
  return rows.sort((a, b) => key(a) - key(b) || a - b);
}
