// Every request the dashboard makes, and how its answer enters the state:
// one `load` for all of them.

import * as api from "./api.js";
import { decodeMatrix } from "./matrix.js";
import { selectedPairs, changedLayers, runsPatch } from "./selection.js";
import { layerKey, setIn, splitLayerKey, thresholdKey, unitKey } from "./state.js";
import { layerView } from "./zoom.js";

async function timelineWithCells(run, tag, params) {
  const data = await api.fetchTimeline(run, tag, params);
  try {
    return { ...data, cells: decodeMatrix(data) };
  } catch (err) {
    const where = `(in the response of ./timeline for ${tag})`;
    throw Object.assign(new Error(`${err.message} ${where}`), { url: "./timeline" });
  }
}

/**
 * The dashboard's requests. Each answer lands in a response slot of the state
 * (timelines, losses, units) under its key; a newer request for a key wins.
 */
export class Loaders {
  constructor(store) {
    this.store = store;
    this.polling = false;
  }

  /**
   * Loads `state[slot][key]` with `request()` unless an answer for the same
   * `params` is there or on its way (`force`: reload anyway). While loading
   * and after a failure the entry keeps the last data for the same params.
   */
  load(slot, key, params, request, force = false) {
    const old = this.store.get()[slot][key];
    const same = old && old.params === params;
    if (!force && same && old.status !== "error") return old.promise;
    const keep = same ? old.data : null;
    const started = performance.now();
    const entry = { status: "loading", params, data: keep, error: null, started };
    const finish = (result) => {
      if (this.store.get()[slot][key] !== entry) return; // a newer request owns this key
      this.store.update(setIn(slot, key, { ...entry, ...result }));
    };
    entry.promise = request().then(
      (data) => finish({ status: "ok", data, error: null }),
      (error) => finish({ status: "error", data: keep, error }),
    );
    this.store.update(setIn(slot, key, entry));
    return entry.promise;
  }

  timeline(run, tag, force) {
    const s = this.store.get();
    const key = layerKey(run, tag);
    const view = layerView(s, run, tag, key); // wide layers: rows, zoom (zoom.js)
    const loss = s.lossTag ? { loss_tag: s.lossTag } : {};
    const params = { tau: s.tau, definition: s.definition, ...view, ...loss };
    const request = () => timelineWithCells(run, tag, params);
    const same = `${thresholdKey(s)}|${JSON.stringify(view)}|${s.lossTag}`;
    return this.load("timelines", key, same, request, force);
  }

  loss(run, force) {
    const tag = this.store.get().lossTag;
    return this.load("losses", run, tag, () => api.fetchLoss(run, tag), force);
  }

  /** Every run's layers under the thresholds (the compare view, the runs table). */
  compare(force) {
    const s = this.store.get();
    const params = { tau: s.tau, definition: s.definition };
    return this.load("compare", "all", thresholdKey(s), () => api.fetchCompare(params), force);
  }

  /** TensorBoard's run list, once: the run colours. */
  tbRuns() {
    return this.load("tbRuns", "all", "", () => api.fetchTbRuns());
  }

  /**
   * The selected runs' scalar tags for the loss picker, asked once per run
   * when the picker is first opened (an error entry, e.g. 404 from a
   * backend without the route, is not asked again).
   */
  scalarTags() {
    const s = this.store.get();
    for (const run of s.selectedRuns) {
      if (!s.scalarTags[run]) this.load("scalarTags", run, "", () => api.fetchScalarTags(run));
    }
  }

  /** A unit's statistics under the current thresholds. */
  unit(run, tag, index) {
    const s = this.store.get();
    const params = { tau: s.tau, definition: s.definition };
    const key = unitKey(run, tag, index, thresholdKey(s));
    return this.load("units", key, "", () => api.fetchUnit(run, tag, index, params));
  }

  /** Requests what the selection shows and is not loaded yet. */
  ensure() {
    const s = this.store.get();
    for (const { run, layer } of selectedPairs(s)) this.timeline(run, layer.tag);
    for (const run of s.selectedRuns) this.loss(run);
    if (s.selectedRuns.length > 1) this.compare();
    this.tbRuns();
    for (const [key, index] of Object.entries(s.selectedUnits)) {
      const { run, tag } = splitLayerKey(key);
      if (s.selectedLayers.includes(key)) this.unit(run, tag, index);
    }
  }

  /** ./runs; reloads the shown layers that changed (all with `force`) and their losses. */
  async poll(force = false) {
    if (this.polling) return;
    this.polling = true;
    try {
      const before = this.store.get();
      this.store.update(runsPatch(before, await api.fetchRuns(), new Date()));
      const after = this.store.get();
      const changed = new Set(changedLayers(before.runs, after.runs));
      const reload = selectedPairs(after).filter((p) => force || changed.has(p.key));
      for (const { run, layer } of reload) this.timeline(run, layer.tag, true);
      for (const run of new Set(reload.map((p) => p.run))) this.loss(run, true);
      if (reload.length && after.selectedRuns.length > 1) this.compare(true);
      this.ensure();
    } catch (err) {
      this.store.update({ runsError: err });
    } finally {
      this.polling = false;
    }
  }
}
