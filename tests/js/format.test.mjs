import assert from "node:assert/strict";
import { test } from "node:test";

import { floorIndex, formatNumber, formatPercent, nearestIndex } from "../../static/format.js";
import { lossNote } from "../../static/runpanel.js";
import { gradientsLogged } from "../../static/sidebar.js";
import { statSeries } from "../../static/stats.js";

test("formatNumber keeps the asked significant digits and marks missing values", () => {
  assert.equal(formatNumber(1.23456), "1.23");
  assert.equal(formatNumber(1.23456, 5), "1.2346");
  assert.equal(formatNumber(0), "0");
  assert.equal(formatNumber(null), "—");
  assert.equal(formatNumber(0.00012345), "1.23e-4");
  assert.equal(formatNumber(0.00012345, 4), "1.234e-4");
  assert.equal(formatNumber(Infinity), "Infinity");
});

test("formatPercent shows one decimal below 10%", () => {
  assert.equal(formatPercent(0.05), "5.0%");
  assert.equal(formatPercent(0.25), "25%");
  assert.equal(formatPercent(0), "0%");
  assert.equal(formatPercent(undefined), "—");
});

test("nearestIndex and floorIndex search sorted steps", () => {
  const xs = [0, 10, 20];
  assert.equal(nearestIndex(xs, 4), 0);
  assert.equal(nearestIndex(xs, 5), 0, "ties go to the earlier step");
  assert.equal(nearestIndex(xs, 6), 1);
  assert.equal(nearestIndex(xs, 99), 2);
  assert.equal(nearestIndex(xs, -5), 0);
  assert.equal(nearestIndex([], 1), -1);
  assert.equal(floorIndex(xs, 15), 1);
  assert.equal(floorIndex(xs, 20), 2);
  assert.equal(floorIndex(xs, -1), -1);
});

test("statSeries lists the logged statistics in one order, then the dormant score", () => {
  const stats = { std: [1], mean_abs: [2], count: [3], grad_mean_abs: [4] };
  assert.deepEqual(
    statSeries(stats, [0.5]).map(([label]) => label),
    ["mean |a|", "std", "mean |dL/da|", "dormant score"],
  );
  assert.deepEqual(statSeries({}, null), []);
});

test("the loss note says why no loss is drawn", () => {
  assert.equal(lossNote(undefined), "loading loss…");
  const err = { status: "error", error: { url: "./loss?run=a", detail: "boom" } };
  assert.equal(lossNote(err), "Request ./loss?run=a failed: boom");
  const none = { status: "ok", data: { tag: null, steps: [], message: "nothing" } };
  assert.match(lossNote(none), /^No loss logged for this run: nothing\./);
  const epoch = { status: "ok", data: { tag: "epoch_loss", steps: [0, 1], step_unit: "epoch" } };
  assert.match(lossNote(epoch), /per epoch/);
  const ok = { status: "ok", data: { tag: "l", steps: [0], values: [1], step_unit: "batch" } };
  assert.equal(lossNote(ok), "");
});

test("gradient-negligible is offered only when a timeline has the gradient row", () => {
  assert.equal(gradientsLogged({}), false);
  assert.equal(gradientsLogged({ a: { data: { grad_dormant_count: null } }, b: {} }), false);
  assert.equal(gradientsLogged({ a: { data: { grad_dormant_count: [0, 1] } } }), true);
});
