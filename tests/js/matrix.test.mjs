import assert from "node:assert/strict";
import { test } from "node:test";

import { PALETTE } from "../../static/heatmap.js";
import {
  ACTIVE,
  DEAD,
  DORMANT,
  NO_DATA,
  cellGradDormant,
  cellShare,
  cellState,
  decodeMatrix,
  unitOrder,
} from "../../static/matrix.js";

const cell = (state, grad, level) => (state << 6) | (grad ? 32 : 0) | level;

function timeline(units, steps, bytes, extra = {}) {
  const data = Buffer.from(bytes).toString("base64");
  const matrix = { encoding: "base64", shape: [units, steps.length], order: "unit-major", data };
  return { units, steps, matrix, ...extra };
}

test("a cell byte holds the state, the grad-dormant flag and a 5-bit active share", () => {
  const byte = cell(DORMANT, true, 31);
  assert.equal(cellState(byte), DORMANT);
  assert.equal(cellGradDormant(byte), true);
  assert.equal(cellShare(byte), 1);
  assert.equal(cellShare(cell(ACTIVE, false, 0)), 0);
  assert.equal(cellShare(cell(ACTIVE, true, 15)), 15 / 31);
  assert.equal(cellGradDormant(cell(ACTIVE, false, 31)), false);
  assert.equal(cellState(cell(NO_DATA, false, 0)), NO_DATA);
});

test("decodeMatrix returns the unit-major bytes of a matching response", () => {
  const bytes = [1, 2, 3, 4, 5, 6];
  const m = decodeMatrix(timeline(2, [0, 10, 20], bytes));
  assert.equal(m.units, 2);
  assert.equal(m.steps, 3);
  assert.deepEqual([...m.bytes], bytes);
});

test("decodeMatrix names what breaks the contract", () => {
  const good = timeline(2, [0, 10], [1, 2, 3, 4]);
  assert.throws(() => decodeMatrix({ ...good, matrix: null }), /no matrix/);
  const enc = { ...good, matrix: { ...good.matrix, encoding: "hex" } };
  assert.throws(() => decodeMatrix(enc), /unknown matrix encoding "hex"/);
  const order = { ...good, matrix: { ...good.matrix, order: "step-major" } };
  assert.throws(() => decodeMatrix(order), /unknown matrix order/);
  assert.throws(() => decodeMatrix({ ...good, units: 3 }), /does not match 3 units x 2 steps/);
  const short = timeline(2, [0, 10], [1, 2, 3]);
  assert.throws(() => decodeMatrix(short), /has 3 bytes, expected 4/);
});

test("unitOrder puts units that died first on top, never-dead after, ties by index", () => {
  const t = { units: 5, died_at: [null, 30, 10, null, 10] };
  assert.deepEqual([...unitOrder(t, "died")], [2, 4, 1, 0, 3]);
  assert.deepEqual([...unitOrder(t, "index")], [0, 1, 2, 3, 4]);
  assert.deepEqual([...unitOrder({ units: 3 }, "died")], [0, 1, 2]);
});

test("the palette shows dead in one red, grad-dormant active cells apart from plain ones", () => {
  const rgb = (c) => [c & 255, (c >> 8) & 255, (c >> 16) & 255];
  assert.deepEqual(rgb(PALETTE[cell(DEAD, false, 0)]), [235, 28, 52]);
  assert.deepEqual(PALETTE[cell(DEAD, true, 0)], PALETTE[cell(DEAD, false, 0)]);
  assert.notEqual(PALETTE[cell(ACTIVE, true, 20)], PALETTE[cell(ACTIVE, false, 20)]);
  assert.notEqual(PALETTE[cell(ACTIVE, false, 0)], PALETTE[cell(ACTIVE, false, 31)]);
  assert.equal(PALETTE[cell(NO_DATA, false, 0)] >>> 24, 70); // translucent
});
