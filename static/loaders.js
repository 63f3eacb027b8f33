// Every request the dashboard makes, and how its answer enters the state.
// One loader: a response slot (timelines, losses, units) keyed by layer,
// run or unit; a newer request for a key wins over an older one.

import * as api from "./api.js";
import { decodeMatrix } from "./matrix.js";
import { selectedPairs, changedLayers, runsPatch } from "./selection.js";
import { layerKey, setIn, splitLayerKey, thresholdKey, unitKey } from "./state.js";

async function timelineWithCells(run, tag, params) {
  const data = await api.fetchTimeline(run, tag, params);
  try {
    return { ...data, cells: decodeMatrix(data) };
  } catch (err) {
    const where = `(in the response of ./timeline for ${tag})`;
    throw Object.assign(new Error(`${err.message} ${where}`), { url: "./timeline" });
  }
}

export function createLoaders(store) {
  /**
   * Loads `state[slot][key]` with `request()` unless an answer for the same
   * `params` is there or on its way (`force`: reload anyway). While loading
   * and after a failure the entry keeps the last data for the same params.
   */
  function load(slot, key, params, request, force = false) {
    const old = store.get()[slot][key];
    const same = old && old.params === params;
    if (!force && same && old.status !== "error") return old.promise;
    const keep = same ? old.data : null;
    const entry = {
      status: "loading",
      params,
      data: keep,
      error: null,
      started: performance.now(),
    };
    entry.promise = request().then(
      (data) => finish(slot, key, entry, { status: "ok", data, error: null }),
      (error) => finish(slot, key, entry, { status: "error", data: keep, error }),
    );
    store.update(setIn(slot, key, entry));
    return entry.promise;
  }

  function finish(slot, key, entry, result) {
    if (store.get()[slot][key] !== entry) return; // a newer request owns this key
    store.update(setIn(slot, key, { ...entry, ...result }));
  }

  function timeline(run, tag, force) {
    const s = store.get();
    const params = { tau: s.tau, definition: s.definition };
    const request = () => timelineWithCells(run, tag, params);
    return load("timelines", layerKey(run, tag), thresholdKey(s), request, force);
  }

  function loss(run, force) {
    return load("losses", run, "", () => api.fetchLoss(run), force);
  }

  function unit(run, tag, index) {
    const s = store.get();
    const params = { tau: s.tau, definition: s.definition };
    const key = unitKey(run, tag, index, thresholdKey(s));
    return load("units", key, "", () => api.fetchUnit(run, tag, index, params));
  }

  /** Requests what the selection shows and is not loaded yet. */
  function ensure() {
    const s = store.get();
    for (const { run, layer } of selectedPairs(s)) timeline(run, layer.tag);
    for (const run of s.selectedRuns) loss(run);
    for (const [key, index] of Object.entries(s.selectedUnits)) {
      const { run, tag } = splitLayerKey(key);
      if (s.selectedLayers.includes(key)) unit(run, tag, index);
    }
  }

  let polling = false;
  /** ./runs; reloads the shown layers that changed (all with `force`) and their losses. */
  async function poll(force = false) {
    if (polling) return;
    polling = true;
    try {
      const before = store.get();
      store.update(runsPatch(before, await api.fetchRuns(), new Date()));
      const changed = new Set(changedLayers(before.runs, store.get().runs));
      const reload = selectedPairs(store.get()).filter((p) => force || changed.has(p.key));
      for (const { run, layer } of reload) timeline(run, layer.tag, true);
      for (const run of new Set(reload.map((p) => p.run))) loss(run, true);
      ensure();
    } catch (err) {
      store.update({ runsError: err });
    } finally {
      polling = false;
    }
  }

  return { ensure, poll, unit };
}
