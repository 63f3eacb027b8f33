// The left column: run picker, thresholds and ordering controls, layer list.

import { h, replace } from "./dom.js";
import { formatPercent } from "./format.js";
import { layerMatcher, parseTau } from "./input.js";
import { memo } from "./memo.js";
import { TAU_PRESETS, layerKey } from "./state.js";

const DEFINITIONS = [
  ["dead", "dead: never active or constant output"],
  ["dormant", "τ-dormant (ReDo score ≤ τ)"],
  ["grad_dormant", "gradient-negligible (mean |dL/da| score ≤ τ)"],
];

function select(testid, options, onChange) {
  const node = h("select", { className: "control", dataset: { testid } }, options);
  node.addEventListener("change", () => onChange(node.value));
  return node;
}

function option(value, text) {
  return h("option", { value: String(value) }, text);
}

/** Whether any loaded timeline has the gradient row (grad_dormant_count not null). */
export function gradientsLogged(timelines) {
  return Object.values(timelines).some((e) => e.data && Array.isArray(e.data.grad_dormant_count));
}

export class Sidebar {
  /** actions: toggleRun, toggleLayer, setFilter, setDefinition, setTau, setOrder */
  constructor(actions) {
    this.actions = actions;
    this.makeControls(actions);
    this.runList = h("div", { className: "run-list", dataset: { testid: "runs" } });
    this.layerList = h("div", { className: "layer-list", dataset: { testid: "layers" } });
    this.root = h(
      "aside",
      { className: "sidebar" },
      h("section", {}, h("h2", {}, "Runs"), this.runList),
      h(
        "section",
        { className: "controls" },
        h("h2", {}, "Thresholds"),
        h("label", {}, "Definition", this.definition),
        h("label", {}, "Dormant threshold", this.tau, this.tauCustom),
        this.tauError,
        this.tauShown,
        h("label", {}, "Heat map rows", this.order),
        h("label", { title: "The scalar drawn as each run's loss" }, "Loss", this.lossPicker),
      ),
      h("section", {}, h("h2", {}, "Layers"), this.filter, this.filterError, this.layerList),
    );
    this.renderDefinitions = memo((withGrad) => {
      const shown = DEFINITIONS.filter(([value]) => withGrad || value !== "grad_dormant");
      replace(
        this.definition,
        shown.map(([value, text]) => option(value, text)),
      );
    });
    this.renderLossTags = memo((runs, scalarTags, losses, chosen) =>
      this.showLossTags(runs, scalarTags, losses, chosen),
    );
    this.renderRuns = memo((names, selected, loaded) => this.showRuns(names, selected, loaded));
    this.renderLayers = memo((runs, selectedRuns, selectedLayers, filter, timelines) =>
      this.showLayers(runs, selectedRuns, selectedLayers, filter, timelines),
    );
  }

  makeControls(actions) {
    this.definition = select("definition", [], actions.setDefinition);
    const taus = [...TAU_PRESETS.map((t) => option(t, `τ = ${t}`)), option("custom", "custom…")];
    this.tau = select("tau", taus, (v) => this.pickTau(v));
    // type=text: a number box reports "" for text it cannot parse, so a
    // refusal could not name what was typed.
    this.tauCustom = h("input", {
      ...{ className: "control", type: "text", inputMode: "decimal", placeholder: "τ in [0, 1]" },
      ...{ hidden: true, dataset: { testid: "tau-custom" } },
    });
    this.tauCustom.addEventListener("change", () => {
      const { tau, error } = parseTau(this.tauCustom.value);
      if (error) actions.refuseTau(error);
      else actions.setTau(tau);
    });
    this.tauError = h("div", {
      className: "field-error",
      hidden: true,
      dataset: { testid: "tau-error" },
      attrs: { role: "alert" },
    });
    this.tauShown = h("div", { className: "muted small", dataset: { testid: "tau-shown" } });
    this.lossPicker = select("loss-tag", [option("", "default")], actions.setLossTag);
    this.lossPicker.addEventListener("focus", () => actions.wantLossTags());
    this.lossPicker.addEventListener("pointerdown", () => actions.wantLossTags());
    this.filterError = h("div", { className: "field-error", hidden: true });
    const orders = [option("died", "by died-at step"), option("index", "by unit index")];
    this.order = select("order", orders, actions.setOrder);
    this.filter = h("input", {
      ...{ className: "control", type: "search", placeholder: "filter layers (regex)" },
      ...{ dataset: { testid: "layer-filter" } },
    });
    this.filter.addEventListener("input", () => actions.setFilter(this.filter.value));
  }

  /** A preset, or "custom": the box stays open until a preset is picked again. */
  pickTau(value) {
    this.customOpen = value === "custom";
    this.tauCustom.hidden = !this.customOpen;
    if (this.customOpen) this.tauCustom.focus();
    else this.actions.setTau(Number(value));
  }

  render(state) {
    this.renderDefinitions(state.definition === "grad_dormant" || gradientsLogged(state.timelines));
    this.definition.value = state.definition;
    const custom = this.customOpen || !TAU_PRESETS.includes(state.tau);
    this.tau.value = custom ? "custom" : String(state.tau);
    this.tauCustom.hidden = !custom;
    if (custom && !this.tauCustom.value && !state.tauError)
      this.tauCustom.value = String(state.tau);
    this.order.value = state.order;
    this.tauError.hidden = !state.tauError;
    this.tauError.textContent = state.tauError;
    this.tauCustom.classList.toggle("invalid", Boolean(state.tauError));
    this.tauShown.textContent = `showing τ = ${state.tau}`;
    const { error } = layerMatcher(state.filter);
    this.filterError.hidden = !error;
    this.filterError.textContent = error || "";
    if (this.filter.value !== state.filter) this.filter.value = state.filter;
    this.renderLossTags(state.selectedRuns, state.scalarTags, state.losses, state.lossTag);
    const names = (state.runs || []).map((r) => r.run);
    this.renderRuns(names.join("\u0000"), state.selectedRuns, state.runs !== null);
    const { runs, selectedRuns, selectedLayers, filter, timelines } = state;
    this.renderLayers(runs, selectedRuns, selectedLayers, filter, timelines);
  }

  showRuns(joined, selected, loaded) {
    const names = joined ? joined.split("\u0000") : [];
    const item = (run) => {
      const box = h("input", { type: "checkbox", checked: selected.includes(run) });
      box.addEventListener("change", () => this.actions.toggleRun(run, box.checked));
      const name = h("span", { className: "run-name" }, run);
      return h("label", { className: "run-item", dataset: { run }, title: run }, box, name);
    };
    const none = h(
      "div",
      { className: "muted small" },
      loaded ? "no runs with snapshots" : "loading…",
    );
    replace(this.runList, names.length ? names.map(item) : none);
  }

  /** The loss picker: "default" (the reader's choice, named) and the runs' scalar tags. */
  showLossTags(runs, scalarTags, losses, chosen) {
    const tags = new Set();
    for (const run of runs) {
      const entry = scalarTags[run];
      const list = entry && entry.data && Array.isArray(entry.data.tags) ? entry.data.tags : [];
      for (const t of list) tags.add(typeof t === "string" ? t : t && t.tag);
    }
    tags.delete(undefined);
    if (chosen) tags.add(chosen);
    const defaults = new Set(
      runs.map((r) => losses[r] && losses[r].data && !chosen && losses[r].data.tag).filter(Boolean),
    );
    const label = defaults.size ? `default (${[...defaults].join(", ")})` : "default";
    const options = [option("", label), ...[...tags].sort().map((t) => option(t, t))];
    replace(this.lossPicker, options);
    this.lossPicker.value = chosen;
  }

  showLayers(runs, selectedRuns, selectedLayers, filter, timelines) {
    const matcher = layerMatcher(filter);
    const query = filter.trim();
    const entries = [];
    for (const r of runs || []) {
      if (!selectedRuns.includes(r.run)) continue;
      for (const layer of r.layers) {
        if (!matcher.test(r.run, layer.tag)) continue;
        const key = layerKey(r.run, layer.tag);
        entries.push(layerEntry(r.run, layer, key, timelines[key] && timelines[key].data));
      }
    }
    entries.sort(
      (a, b) =>
        b.share - a.share || a.run.localeCompare(b.run) || a.layer.tag.localeCompare(b.layer.tag),
    );
    const multiRun = selectedRuns.length > 1;
    const none = h(
      "div",
      { className: "muted small" },
      query ? "no layer matches the filter" : "select a run",
    );
    replace(
      this.layerList,
      entries.length ? entries.map((e) => this.layerItem(e, selectedLayers, multiRun)) : none,
    );
  }

  layerItem(e, selectedLayers, multiRun) {
    const box = h("input", { type: "checkbox", checked: selectedLayers.includes(e.key) });
    box.addEventListener("change", () => this.actions.toggleLayer(e.key, box.checked));
    const l = e.layer;
    const about = `${l.layer_class || "layer"} ${l.activation || ""}, ${l.snapshots} snapshots`;
    const fill = h("span", {
      className: "bar-fill",
      style: { width: `${Math.min(100, e.share * 100)}%` },
    });
    return h(
      "label",
      {
        className: "layer-item",
        dataset: { testid: "layer-item", run: e.run, tag: l.tag, dead: String(e.dead) },
        title: `${e.run} / ${l.tag}: ${about}, steps ${l.first_step}–${l.last_step}`,
      },
      box,
      h(
        "span",
        { className: "layer-text" },
        h("span", { className: "layer-name", title: l.tag }, l.tag),
        multiRun ? h("span", { className: "layer-run", title: e.run }, e.run) : null,
        h(
          "span",
          { className: "layer-counts", dataset: { testid: "layer-counts" } },
          layerCounts(e),
        ),
        h("span", { className: "bar" }, fill),
      ),
    );
  }
}

/** A layer of the list: counts from its timeline when loaded, else from ./runs. */
function layerEntry(run, layer, key, data) {
  const dead = data ? data.dead_now.length : layer.dead_count_now;
  // Dead units are dormant too: the count is of the union (dead ⊆ dormant).
  const dormant = data ? new Set([...data.dormant_now, ...data.dead_now]).size : null;
  const grad = data && Array.isArray(data.grad_dormant_now) ? data.grad_dormant_now.length : null;
  const share = layer.units ? dead / layer.units : 0;
  return { run, layer, key, dead, dormant, grad, units: layer.units, share };
}

function layerCounts(e) {
  const dormant = e.dormant === null ? "" : ` · ${e.dormant} dormant`;
  const grad = e.grad === null ? "" : ` · ${e.grad} gradient-negligible`;
  return `${e.dead} / ${e.units} dead (${formatPercent(e.share)})${dormant}${grad}`;
}
