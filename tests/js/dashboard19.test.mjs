import assert from "node:assert/strict";
import { test } from "node:test";

import { RUN_PALETTE, runColor, smoothed } from "../../static/colors.js";
import { csvField, deadRule, revivalOf, revivalText, toCsv } from "../../static/deadunits.js";
import { layerMatcher, parseTau } from "../../static/input.js";
import { columnTicks, shareTop, stepTicks } from "../../static/scale.js";
import {
  compareLines,
  diedAtSummary,
  sharedTags,
  sortRows,
  sweepTable,
} from "../../static/sweep.js";
import { decodeHash, encodeHash } from "../../static/urlhash.js";

test("step ticks of a 2-step run are whole steps, never 0.2", () => {
  assert.deepEqual(stepTicks(0, 2, 10), [0, 1, 2]);
  assert.deepEqual(stepTicks(0, 1, 8), [0, 1]);
  assert.deepEqual(stepTicks(0, 500, 5), [0, 100, 200, 300, 400, 500]);
  for (const [lo, hi, n] of [
    [0, 3, 7],
    [5, 37, 9],
    [0, 125, 5],
    [10, 11, 3],
  ]) {
    for (const t of stepTicks(lo, hi, n)) assert.ok(Number.isInteger(t), `${t} of ${lo}..${hi}`);
  }
  assert.deepEqual(stepTicks(4, 4, 5), [4]);
});

test("one share top holds the largest share of every card", () => {
  assert.equal(shareTop(0.4), 0.5);
  assert.equal(shareTop(0.9), 1);
  assert.equal(shareTop(0), 0.05);
  // The healthier card shares the other's scale: 0.04 of 0.5 is drawn low.
  const top = shareTop(Math.max(0.04, 0.4));
  assert.ok(0.04 / top < 0.1);
});

test("heat map column ticks spread over the columns, first and last included", () => {
  assert.deepEqual(columnTicks(40, 5), [0, 10, 20, 29, 39]);
  assert.deepEqual(columnTicks(2, 5), [0, 1]);
  assert.deepEqual(columnTicks(1, 5), [0]);
  assert.deepEqual(columnTicks(0, 5), []);
});

test("τ outside [0, 1] or not a number is refused with a reason", () => {
  assert.deepEqual(parseTau("0.05"), { tau: 0.05 });
  assert.deepEqual(parseTau("1"), { tau: 1 });
  assert.deepEqual(parseTau(" 0 "), { tau: 0 });
  for (const bad of ["-1", "5", "", "abc", "0x1", "NaN", "Infinity", "1e3"]) {
    const r = parseTau(bad);
    assert.equal(r.tau, undefined, bad);
    assert.match(r.error, /τ must be a number from 0 to 1/);
  }
});

test("the layer filter is a case-insensitive regular expression; a bad one matches as text", () => {
  const m = layerMatcher("^dense_[ab]$");
  assert.ok(m.test("planted", "dense_a") && m.test("planted", "Dense_B"));
  assert.ok(!m.test("planted", "dense_c"));
  assert.equal(layerMatcher("").test("x", "y"), true);
  const bad = layerMatcher("dense[");
  assert.match(bad.error, /not a regular expression/);
  assert.ok(bad.test("r", "my dense[ layer") && !bad.test("r", "dense"));
});

test("CSV cells that start like a formula are neutralised; others are unchanged", () => {
  for (const hostile of ['=HYPERLINK("x")', "@SUM(A1)", "+1+2", "-cmd", "\tx", "\rx"]) {
    const cell = csvField(hostile);
    assert.ok(!/^"?[=+\-@\t\r]/.test(cell), JSON.stringify(cell));
  }
  assert.equal(csvField("planted"), "planted");
  assert.equal(csvField(12), "12");
  assert.equal(csvField("a,b"), '"a,b"');
  const timeline = { thresholds: { definition: "dead", tau: 0.1 } };
  const rows = [
    { unit: 1, died_at: 0, revived: false, dormant_score_now: 0, grad_dormant_now: null },
  ];
  const csv = toCsv("=run", "+SUM(1,2)", timeline, rows);
  for (const cell of csv
    .trim()
    .split("\n")[1]
    .match(/("([^"]|"")*"|[^,]*)/g)) {
    assert.ok(!/^"?[=+\-@\t\r]/.test(cell), cell);
  }
});

test("a dead cell names its rule: never active or constant output", () => {
  assert.equal(deadRule(0), "never active");
  assert.match(deadRule(1 / 31), /constant output/);
});

test("a revived unit that died again says when it revived and since when it is dead", () => {
  const steps = [0, 10, 20, 30, 40];
  assert.deepEqual(revivalOf(steps, [true, true, false, true, true]), {
    revivedAt: 20,
    deadSince: 30,
  });
  assert.equal(
    revivalText(revivalOf(steps, [true, false, false, true, true])),
    "revived at 10, dead again since 30",
  );
  assert.equal(revivalText(revivalOf(steps, [true, false, false, false, false])), "revived at 10");
  assert.equal(revivalText(revivalOf(steps, [false, false, true, true, true])), "no");
});

test("the URL hash round-trips the user's choices and drops bad values", () => {
  const state = {
    selectedRuns: ["lr_0.1/train", "a&b=c"],
    selectedLayers: ["lr_0.1/train\u0000dense"],
    filter: "^dense",
    definition: "dormant",
    tau: 0.025,
    sharedSteps: true,
    lossTag: "epoch_loss",
    compareTag: "dense",
  };
  const back = decodeHash(`#${encodeHash(state)}`);
  assert.deepEqual(back, state);
  assert.deepEqual(decodeHash("#definition=nope&tau=5&run="), {
    selectedRuns: [""],
    selectedLayers: [],
  });
  assert.deepEqual(decodeHash(""), {});
});

test("runs take TensorBoard's palette by their place in its run list", () => {
  const tb = ["a", "b", "c"];
  assert.deepEqual(
    tb.map((r) => runColor(r, tb)),
    RUN_PALETTE.slice(0, 3),
  );
  assert.equal(runColor("z", [], ["y", "z"]), RUN_PALETTE[1]);
});

test("the loss is smoothed as the Scalars dashboard does (debiased EMA, 0.6)", () => {
  const s = smoothed([1, 2, 3]);
  assert.equal(s[0], 1); // debiased: the first value is kept
  assert.ok(Math.abs(s[1] - (0.4 * 0.6 + 0.8) / (1 - 0.36)) < 1e-12);
  assert.deepEqual(smoothed([2, 2, 2]), [2, 2, 2]);
  assert.ok(Number.isNaN(smoothed([1, NaN, 3])[1]));
});

const COMPARE = {
  runs: [
    {
      run: "a",
      hparams: { lr: 0.1 },
      layers: [
        {
          tag: "d",
          units: 10,
          steps: [0, 10],
          count: [1, 5],
          count_now: 5,
          share_now: 0.5,
          died_at_counts: [1, 4],
        },
        {
          tag: "e",
          units: 4,
          steps: [0, 10],
          count: [0, 0],
          count_now: 0,
          share_now: 0,
          died_at_counts: [0, 0],
        },
      ],
    },
    {
      run: "b",
      hparams: { lr: 0.01 },
      layers: [
        {
          tag: "d",
          units: 10,
          steps: [0, 10],
          count: [0, 1],
          count_now: 1,
          share_now: 0.1,
          died_at_counts: [0, 1],
        },
      ],
    },
    {
      run: "c",
      hparams: {},
      layers: [
        {
          tag: "d",
          units: 10,
          steps: [0],
          count: [9],
          count_now: 9,
          share_now: 0.9,
          died_at_counts: [9],
        },
      ],
    },
  ],
};

test("the compare view offers tags two runs share and draws one line per run", () => {
  assert.deepEqual(sharedTags(COMPARE, ["a", "b"]), ["d"]);
  assert.deepEqual(sharedTags(COMPARE, ["a"]), []);
  const lines = compareLines(COMPARE, "d", ["a", "b"]);
  assert.deepEqual(
    lines.map((l) => [l.run, l.shares]),
    [
      ["a", [0.1, 0.5]],
      ["b", [0, 0.1]],
    ],
  );
});

test("the runs table sorts by a layer's dead share, by a hyperparameter, by run", () => {
  const { rows, tags, hparams } = sweepTable(COMPARE, ["a", "b", "c"]);
  assert.deepEqual(tags, ["d", "e"]);
  assert.deepEqual(hparams, ["lr"]);
  const order = (sort) => sortRows(rows, sort).map((r) => r.run);
  assert.deepEqual(order({ column: "layer:d", descending: true }), ["c", "a", "b"]);
  assert.deepEqual(order({ column: "layer:d", descending: false }), ["b", "a", "c"]);
  assert.deepEqual(order({ column: "layer:e", descending: true }), ["a", "b", "c"]);
  assert.deepEqual(order({ column: "hp:lr", descending: false }), ["b", "a", "c"]);
  assert.deepEqual(order({ column: "run", descending: true }), ["c", "b", "a"]);
});

test("the died-at distribution gives its quartiles", () => {
  assert.deepEqual(diedAtSummary([0, 10, 20], [1, 2, 1]), { n: 4, q1: 0, median: 10, q3: 10 });
  assert.deepEqual(diedAtSummary([0, 10], [0, 0]), { n: 0, q1: null, median: null, q3: null });
});
