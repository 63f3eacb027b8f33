// Small pieces several views show: an error box, a warnings list, notes and
// the page shown before any snapshot is logged.

import { h } from "./dom.js";

const SNIPPET = [
  'cb = tb_deadneurons.DeadNeuronCallback("logs", probe_data=x_val[:256])',
  "model.fit(..., callbacks=[cb])",
];

/** A failed request, e.g. errorBox("Request ./runs", err). */
export function errorBox(what, error) {
  return h(
    "div",
    { className: "error", dataset: { testid: "error" }, attrs: { role: "alert" } },
    h("strong", {}, `${what} failed`),
    h("div", { className: "error-detail" }, error && error.message ? error.message : String(error)),
  );
}

/** A collapsed list of warnings (null when there are none). */
export function warningsBox(warnings, what = "") {
  if (!Array.isArray(warnings) || !warnings.length) return null;
  return h(
    "details",
    { className: "warnings" },
    h("summary", {}, `${warnings.length} warning(s)${what}`),
    h(
      "ul",
      {},
      warnings.map((w) => h("li", {}, String(w))),
    ),
  );
}

export function note(text) {
  return h("div", { className: "muted small" }, text);
}

/** The status of a response entry: a loading note, an error box, or null. */
export function entryStatus(entry, what) {
  if (!entry || (entry.status === "loading" && !entry.data)) return note(`loading ${what}…`);
  if (entry.status === "error") return errorBox(`Request ${entry.error.url || what}`, entry.error);
  return entry.status === "loading" ? note("updating…") : null;
}

export function emptyState() {
  const how =
    "Log per-unit activation statistics while Keras trains, " +
    "then point TensorBoard at the same directory:";
  return h(
    "div",
    { className: "empty", dataset: { testid: "empty" } },
    h("h2", {}, "No dead-neuron snapshots yet"),
    h("p", {}, how),
    h("pre", {}, h("code", {}, SNIPPET.join("\n"))),
    h(
      "p",
      { className: "muted" },
      "tensorboard --logdir logs — this page checks for new data every few seconds.",
    ),
  );
}
