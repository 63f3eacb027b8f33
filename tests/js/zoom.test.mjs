import assert from "node:assert/strict";
import { test } from "node:test";

import { DEAD, decodeMatrix, unitOrder } from "../../static/matrix.js";
import {
  MAX_COLS,
  MAX_ROWS,
  decodeDeadCounts,
  layerView,
  rowOfUnit,
  timelineView,
  zoomAround,
} from "../../static/zoom.js";

const b64 = (bytes) => Buffer.from(bytes).toString("base64");
const fromB64 = (text) => new Uint8Array(Buffer.from(text, "base64"));

function aggregated(units, steps, unitBounds, stepBounds, cells, dead = null) {
  const matrix = {
    encoding: "base64",
    shape: [unitBounds.length - 1, stepBounds.length - 1],
    order: "unit-major",
    data: b64(cells),
    unit_bounds: unitBounds,
    step_bounds: stepBounds,
    dead,
  };
  // Unit 1 died: a "died" order of units would put row 1 first.
  const diedAt = Array.from({ length: units }, (_, u) => (u === 1 ? 10 : null));
  return { units, steps, matrix, died_at: diedAt };
}

test("a layer that fits asks for nothing; a wide or long one for rows and cols", () => {
  assert.deepEqual(timelineView(64, 300, null), {});
  assert.deepEqual(timelineView(MAX_ROWS, MAX_COLS, null), {});
  assert.deepEqual(timelineView(11008, 500, null), { rows: MAX_ROWS });
  assert.deepEqual(timelineView(100, 5000, null), { cols: MAX_COLS });
});

test("a zoom asks for its unit range, aggregated only when wider than the heat map", () => {
  assert.deepEqual(timelineView(11008, 500, [5000, 5512]), { unit_start: 5000, unit_stop: 5512 });
  assert.deepEqual(timelineView(11008, 500, [0, 2000]), {
    unit_start: 0,
    unit_stop: 2000,
    rows: MAX_ROWS,
  });
});

test("layerView reads the layer's size from ./runs and its zoom from the state", () => {
  const state = {
    runs: [{ run: "r", layers: [{ tag: "ffn", units: 11008, snapshots: 500 }] }],
    zooms: { k: [10, 522] },
  };
  assert.deepEqual(layerView(state, "r", "ffn", "other"), { rows: MAX_ROWS });
  assert.deepEqual(layerView(state, "r", "ffn", "k"), { unit_start: 10, unit_stop: 522 });
  assert.deepEqual(layerView({ runs: null, zooms: {} }, "r", "x", "k"), {});
});

test("zoomAround centres a heat-map-wide window on a row and keeps it in the layer", () => {
  assert.deepEqual(zoomAround(5000, 5028, 11008), [4758, 5270]);
  assert.deepEqual(zoomAround(0, 28, 11008), [0, MAX_ROWS]);
  assert.deepEqual(zoomAround(10990, 11008, 11008), [11008 - MAX_ROWS, 11008]);
  assert.deepEqual(zoomAround(3, 4, 100), [0, 100]);
});

test("rowOfUnit finds the block holding a unit, -1 outside", () => {
  const bounds = [100, 128, 155, 183];
  assert.equal(rowOfUnit(bounds, 100), 0);
  assert.equal(rowOfUnit(bounds, 127), 0);
  assert.equal(rowOfUnit(bounds, 128), 1);
  assert.equal(rowOfUnit(bounds, 182), 2);
  assert.equal(rowOfUnit(bounds, 183), -1);
  assert.equal(rowOfUnit(bounds, 99), -1);
});

test("dead counts decode from little-endian uint8/uint16/uint32", () => {
  const u16 = {
    encoding: "base64",
    dtype: "uint16",
    byte_order: "little",
    data: b64([1, 0, 0, 1]),
  };
  assert.deepEqual([...decodeDeadCounts(u16, 2, fromB64)], [1, 256]);
  const u32 = { ...u16, dtype: "uint32", data: b64([0, 0, 1, 0]) };
  assert.deepEqual([...decodeDeadCounts(u32, 1, fromB64)], [65536]);
  assert.equal(decodeDeadCounts(null, 4, fromB64), null);
  assert.throws(() => decodeDeadCounts({ ...u16, dtype: "int8" }, 2, fromB64), /int8/);
  assert.throws(() => decodeDeadCounts(u16, 3, fromB64), /4 bytes, expected 3 uint16/);
});

test("decodeMatrix reads an aggregated matrix with its bounds and dead counts", () => {
  const dead = { encoding: "base64", dtype: "uint8", byte_order: "little", data: b64([0, 3]) };
  const t = aggregated(10, [0, 10], [0, 5, 10], [0, 2], [0, DEAD << 6], dead);
  const m = decodeMatrix(t);
  assert.equal(m.units, 2);
  assert.equal(m.steps, 1);
  assert.equal(m.wholeLayer, false);
  assert.deepEqual(m.unitBounds, [0, 5, 10]);
  assert.deepEqual([...m.dead], [0, 3]);
  // Block rows keep unit order whatever the requested order.
  assert.deepEqual([...unitOrder(t, "died", m)], [0, 1]);
});

test("decodeMatrix refuses bounds that do not fit the shape", () => {
  const t = aggregated(10, [0, 10], [0, 5, 10], [0, 2], [0, 0]);
  assert.throws(
    () => decodeMatrix({ ...t, matrix: { ...t.matrix, unit_bounds: [0, 10] } }),
    /bounds/,
  );
  assert.throws(
    () => decodeMatrix({ ...t, matrix: { ...t.matrix, step_bounds: [1, 2] } }),
    /bounds/,
  );
  assert.throws(
    () => decodeMatrix({ ...t, matrix: { ...t.matrix, unit_bounds: [0, 7, 5] } }),
    /bounds/,
  );
});

test("a full matrix without bounds is the whole layer, one unit per row", () => {
  const t = {
    units: 2,
    steps: [0],
    matrix: { encoding: "base64", shape: [2, 1], data: b64([1, 2]) },
  };
  const m = decodeMatrix(t);
  assert.equal(m.wholeLayer, true);
  assert.deepEqual(m.unitBounds, [0, 1, 2]);
  assert.equal(m.dead, null);
});
