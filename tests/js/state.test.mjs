import assert from "node:assert/strict";
import { test } from "node:test";

import { memo } from "../../static/memo.js";
import * as sel from "../../static/selection.js";
import { createStore, initialState, layerKey, setIn, splitLayerKey } from "../../static/state.js";

const layer = (tag, dead, extra = {}) => ({
  tag,
  units: 10,
  snapshots: 5,
  first_step: 0,
  last_step: 40,
  dead_count_now: dead,
  dead_fraction_now: dead / 10,
  ...extra,
});
const RUNS = [
  { run: "a", layers: [layer("l1", 1), layer("l2", 5), layer("l3", 0), layer("l4", 3)] },
  { run: "b", layers: [layer("x", 0)] },
];

test("the store merges patches into a new object and notifies", () => {
  const store = createStore({ a: 1, m: { k: 1 } });
  const seen = [];
  store.subscribe((s) => seen.push(s));
  const before = store.get();
  store.update({ b: 2 });
  store.update((s) => ({ a: s.a + 1 }));
  assert.deepEqual(store.get(), { a: 2, b: 2, m: { k: 1 } });
  assert.equal(before.a, 1, "an old state is never changed");
  assert.equal(seen.length, 2);
});

test("setIn replaces the slot object instead of changing it", () => {
  const store = createStore(initialState());
  const slot = store.get().timelines;
  store.update(setIn("timelines", "k", { status: "ok" }));
  assert.deepEqual(slot, {});
  assert.deepEqual(store.get().timelines, { k: { status: "ok" } });
  store.update(setIn("timelines", "k", undefined));
  assert.deepEqual(store.get().timelines, {});
});

test("layer keys round-trip any run and tag", () => {
  const key = layerKey("run/with\u0001odd", "tag/x");
  assert.deepEqual(splitLayerKey(key), { run: "run/with\u0001odd", tag: "tag/x" });
});

test("the first ./runs answer selects small sets of runs and the worst layers", () => {
  const patch = sel.runsPatch(initialState(), { runs: RUNS, warnings: ["w"] }, 7);
  assert.deepEqual(patch.selectedRuns, ["a", "b"]);
  assert.deepEqual(patch.selectedLayers, [
    layerKey("a", "l2"),
    layerKey("a", "l4"),
    layerKey("b", "x"),
  ]);
  assert.deepEqual(patch.runsWarnings, ["w"]);
  const later = sel.runsPatch({ ...initialState(), selectedRuns: ["b"] }, { runs: RUNS }, 8);
  assert.equal(later.selectedRuns, undefined, "a later answer keeps the selection");
});

test("toggling a run on selects its default layers once; pickUnit toggles", () => {
  const state = { ...initialState(), runs: RUNS };
  const on = sel.toggleRun(state, "b", true);
  assert.deepEqual(on, { selectedRuns: ["b"], selectedLayers: [layerKey("b", "x")] });
  const off = sel.toggleRun({ ...state, ...on }, "b", false);
  assert.deepEqual(off.selectedRuns, []);
  const key = layerKey("b", "x");
  const picked = sel.pickUnit(state, key, 3);
  assert.deepEqual(picked.selectedUnits, { [key]: 3 });
  assert.deepEqual(sel.pickUnit({ ...state, ...picked }, key, 3).selectedUnits, {});
  assert.deepEqual(state.selectedUnits, {}, "the old state is untouched");
});

test("changedLayers names the layers with new snapshots only", () => {
  const grown = [
    { run: "a", layers: [layer("l1", 1, { snapshots: 6, last_step: 50 }), layer("new", 0)] },
  ];
  assert.deepEqual(sel.changedLayers(RUNS, grown), [layerKey("a", "l1")]);
  assert.deepEqual(sel.changedLayers(null, RUNS), []);
});

test("stepDomain spans the selected layers and a per-step loss, not a per-epoch one", () => {
  const state = {
    ...initialState(),
    selectedLayers: [layerKey("a", "l1")],
    losses: { a: { data: { steps: [5, 90], step_unit: "batch" } } },
  };
  assert.deepEqual(sel.stepDomain(state, [RUNS[0]]), [0, 90]);
  const epochs = { ...state, losses: { a: { data: { steps: [0, 900], step_unit: "epoch" } } } };
  assert.deepEqual(sel.stepDomain(epochs, [RUNS[0]]), [0, 40]);
  assert.deepEqual(sel.stepDomain({ ...initialState() }, [RUNS[0]]), [0, 1]);
});

test("memo reruns only when an argument changed by identity", () => {
  const calls = [];
  const f = memo((a, b) => calls.push([a, b]));
  const obj = {};
  assert.equal(f(obj, 1), true);
  assert.equal(f(obj, 1), false);
  assert.equal(f({}, 1), true);
  assert.equal(f({}, 1), true);
  assert.equal(calls.length, 3);
});
