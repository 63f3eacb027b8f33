// The one place the dashboard's state lives. State is never mutated: every
// change is a new object passed through `update`, so views compare their
// inputs by identity (memo.js). Keys and pure state transitions live here.

export function createStore(initial) {
  let state = initial;
  const listeners = new Set();
  return {
    get: () => state,
    /** Shallow-merges `patch` (or the result of `patch(state)`) and notifies. */
    update(patch) {
      const next = typeof patch === "function" ? patch(state) : patch;
      state = { ...state, ...next };
      for (const listener of listeners) listener(state);
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}

export const TAU_PRESETS = [0, 0.025, 0.1];

export function initialState() {
  return {
    runs: null, // [{run, layers: [...]}] from ./runs
    runsError: null, // RequestError of the last ./runs
    runsWarnings: [],
    updatedAt: null,
    selectedRuns: [], // run names
    selectedLayers: [], // layer keys (see layerKey)
    filter: "",
    definition: "dead",
    tau: 0.1,
    order: "died", // heat map rows: "died" (by died-at step) or "index"
    sharedSteps: false, // one step axis for every card (else each its own)
    lossTag: "", // the loss scalar chosen in the picker ("": the reader's choice)
    compareTag: "", // the layer the compare view shows ("": the most shared)
    compareSort: { column: "", descending: true }, // runs table ("": worst layer first)
    tauError: "", // why the typed τ was refused ("" when it was not)
    live: true,
    showMeanAbs: false, // the layers' mean |a| on the timeline chart
    theme: "light",
    // Responses, each {status: "loading"|"ok"|"error", params, data, error}:
    timelines: {}, // layer key -> ./timeline (data.cells: the decoded matrix)
    losses: {}, // run -> ./loss
    compare: {}, // "all" -> ./compare (every run's layers under the thresholds)
    tbRuns: {}, // "all" -> TensorBoard's data/runs (its order gives the run colours)
    scalarTags: {}, // run -> ./scalar_tags (the loss picker's choices)
    units: {}, // unit key -> ./unit
    selectedUnits: {}, // layer key -> unit index
    zooms: {}, // layer key -> [unit_start, unit_stop) the heat map zooms into
  };
}

export function layerKey(run, tag) {
  return `${run}\u0000${tag}`;
}

export function splitLayerKey(key) {
  const i = key.indexOf("\u0000");
  return { run: key.slice(0, i), tag: key.slice(i + 1) };
}

export function unitKey(run, tag, unit, params) {
  return `${run}\u0000${tag}\u0000${unit}\u0000${params}`;
}

/** The query parameters that decide a timeline's content. */
export function thresholdKey(state) {
  return `${state.definition}|${state.tau}`;
}

/** A patch that sets `state[slot][key]` to `value` (undefined: removes it). */
export function setIn(slot, key, value) {
  return (state) => {
    const next = { ...state[slot] };
    if (value === undefined) delete next[key];
    else next[key] = value;
    return { [slot]: next };
  };
}
