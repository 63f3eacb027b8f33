import assert from "node:assert/strict";
import { test } from "node:test";

import { formatNumber } from "../../static/format.js";
import { linePath, linear, logTicks, niceTicks, tickLabels } from "../../static/scale.js";

test("niceTicks steps by 1, 2, 2.5 or 5 times a power of ten inside the range", () => {
  assert.deepEqual(niceTicks(0, 1, 4), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(niceTicks(0, 100, 5), [0, 20, 40, 60, 80, 100]);
  assert.deepEqual(niceTicks(3, 97, 4), [25, 50, 75]);
  assert.deepEqual(niceTicks(-1, 1, 2), [-1, 0, 1]);
});

test("niceTicks of an empty range is its one value", () => {
  assert.deepEqual(niceTicks(2, 2, 4), [2]);
  assert.deepEqual(niceTicks(5, 1, 4), [5]);
});

test("niceTicks has no float noise", () => {
  for (const t of niceTicks(0.1, 0.7, 6)) assert.equal(t, Number(t.toPrecision(6)));
});

test("tick labels of a narrow loss range never repeat", () => {
  // The loss axis once printed "1.5, 1.5" and "1.4, 1.4, 1.4".
  for (const [lo, hi] of [
    [1.38, 1.52],
    [1.4, 1.45],
    [1.401, 1.4032],
    [0.00012, 0.00019],
    [123456, 123470],
  ]) {
    const ticks = niceTicks(lo, hi, 4);
    const labels = tickLabels(ticks);
    assert.ok(ticks.length >= 2, `${lo}..${hi}`);
    assert.equal(new Set(labels).size, labels.length, labels.join(", "));
  }
  assert.deepEqual(tickLabels([1.4, 1.45, 1.5]), ["1.4", "1.45", "1.5"]);
  assert.deepEqual(tickLabels([1, 2, 3]), ["1", "2", "3"]);
});

test("tickLabels uses the formatter it is given", () => {
  assert.deepEqual(
    tickLabels([10, 20], (v, d) => `${v}/${d}`),
    ["10/2", "20/2"],
  );
  assert.equal(formatNumber(1.45, 2), "1.4");
});

test("logTicks are the powers of ten inside the range", () => {
  assert.deepEqual(logTicks(0.05, 200), [0.1, 1, 10, 100]);
});

test("linear maps the domain onto the range and an empty domain onto its start", () => {
  const f = linear(0, 10, 100, 0);
  assert.equal(f(0), 100);
  assert.equal(f(5), 50);
  assert.equal(f(10), 0);
  assert.equal(linear(3, 3, 7, 9)(3), 7);
});

test("linePath lifts the pen at null and non-finite values", () => {
  const id = (x) => x;
  assert.equal(linePath([0, 1, 2], [1, 2, 3], id, id), "M0.0,1.0L1.0,2.0L2.0,3.0");
  assert.equal(linePath([0, 1, 2, 3], [1, null, 3, 4], id, id), "M0.0,1.0M2.0,3.0L3.0,4.0");
  assert.equal(linePath([0, 1], [NaN, Infinity], id, id), "");
  assert.equal(
    linePath([0, 1], [-1, 2], id, (y) => (y > 0 ? y : null)),
    "M1.0,2.0",
  );
});
