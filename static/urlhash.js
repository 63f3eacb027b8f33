// The user's choices in the URL hash, as TensorBoard's dashboards keep
// theirs: which runs and layers, the filter, the definition, τ, the step
// axis, the loss tag and the compared layer. Pure.

import { parseTau } from "./input.js";

const DEFINITIONS = ["dead", "dormant", "grad_dormant"];

/** The hash (without "#") that records the choices of `state`. */
export function encodeHash(state) {
  const q = new URLSearchParams();
  for (const run of state.selectedRuns) q.append("run", run);
  for (const key of state.selectedLayers) q.append("layer", key);
  if (state.filter) q.set("filter", state.filter);
  q.set("definition", state.definition);
  q.set("tau", String(state.tau));
  if (state.sharedSteps) q.set("shared", "1");
  if (state.lossTag) q.set("loss", state.lossTag);
  if (state.compareTag) q.set("compare", state.compareTag);
  return q.toString();
}

/**
 * The state patch a hash asks for; values that are not valid are left out
 * (the defaults stay). `chosen` is true when the hash names runs.
 */
export function decodeHash(hash) {
  const q = new URLSearchParams(String(hash || "").replace(/^#/, ""));
  const patch = {};
  const runs = q.getAll("run");
  if (runs.length) {
    patch.selectedRuns = runs;
    patch.selectedLayers = q.getAll("layer").filter((k) => k.includes("\u0000"));
  }
  if (q.has("filter")) patch.filter = q.get("filter");
  if (DEFINITIONS.includes(q.get("definition"))) patch.definition = q.get("definition");
  if (q.has("tau")) {
    const { tau } = parseTau(q.get("tau"));
    if (tau !== undefined) patch.tau = tau;
  }
  if (q.get("shared") === "1") patch.sharedSteps = true;
  if (q.get("loss")) patch.lossTag = q.get("loss");
  if (q.get("compare")) patch.compareTag = q.get("compare");
  return patch;
}
