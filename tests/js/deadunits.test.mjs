import assert from "node:assert/strict";
import { test } from "node:test";

import { CSV_COLUMNS, deadRows, fileStem, toCsv, toJson } from "../../static/deadunits.js";

const TIMELINE = {
  units: 6,
  thresholds: { definition: "dead", tau: 0.1 },
  dead_now: [4, 1, 5],
  dormant_now: [1, 2, 4, 5],
  grad_dormant_now: [2, 4],
  died_at: [null, 30, null, null, 10, 30],
  revived: [false, true, false, false, false, false],
  dormant_score_now: [1.1, 0, 0.05, 0.9, 0, 0],
};

test("deadRows lists the units dead now by died-at step, then index", () => {
  const rows = deadRows(TIMELINE);
  assert.deepEqual(
    rows.map((r) => r.unit),
    [4, 1, 5],
  );
  assert.deepEqual(rows[1], {
    unit: 1,
    died_at: 30,
    revived: true,
    dormant_score_now: 0,
    grad_dormant_now: false,
  });
  assert.equal(rows[0].grad_dormant_now, true);
});

test("deadRows follows the definition the timeline was classified with", () => {
  const dormant = { ...TIMELINE, thresholds: { definition: "dormant", tau: 0.1 } };
  assert.deepEqual(
    deadRows(dormant).map((r) => r.unit),
    [4, 1, 5, 2],
  );
  const grad = { ...TIMELINE, thresholds: { definition: "grad_dormant", tau: 0.1 } };
  assert.deepEqual(
    deadRows(grad).map((r) => r.unit),
    [4, 2],
  );
});

test("without the gradient row the grad-dormant column is null, not false", () => {
  const rows = deadRows({ ...TIMELINE, grad_dormant_now: null });
  assert.ok(rows.every((r) => r.grad_dormant_now === null));
});

test("toCsv writes a header, one line per row and quotes what needs quoting", () => {
  const rows = deadRows(TIMELINE);
  const lines = toCsv('run,"1"', "tag\nx", TIMELINE, rows).split("\n");
  assert.equal(lines[0], `run,tag,${CSV_COLUMNS.join(",")},definition,tau`);
  assert.equal(CSV_COLUMNS.at(-1), "grad_dormant_now");
  assert.equal(lines[1], '"run,""1""","tag');
  assert.equal(lines[2], 'x",4,10,false,0,true,dead,0.1');
  assert.equal(lines.at(-1), "");
  const plain = toCsv("r", "t", TIMELINE, rows).split("\n");
  assert.equal(plain.length, 1 + rows.length + 1);
  assert.equal(plain[3], "r,t,5,30,false,0,false,dead,0.1");
  const none = toCsv("r", "t", TIMELINE, deadRows({ ...TIMELINE, grad_dormant_now: null }));
  assert.equal(none.split("\n")[1], "r,t,4,10,false,0,,dead,0.1");
});

test("toJson holds run, tag, thresholds and the rows", () => {
  const body = JSON.parse(toJson("r", "t", TIMELINE, deadRows(TIMELINE)));
  assert.equal(body.units, 6);
  assert.deepEqual(body.thresholds, TIMELINE.thresholds);
  assert.deepEqual(
    body.dead_units.map((r) => r.unit),
    [4, 1, 5],
  );
});

test("fileStem keeps only safe characters", () => {
  assert.equal(fileStem("a/b c", "x<y>"), "deadneurons-a_b_c-x_y_");
  assert.equal(fileStem("r".repeat(300), "t").length, 120);
});
