// The left column: run picker, thresholds and ordering controls, layer list.

import { h, replace } from "./dom.js";
import { formatPercent } from "./format.js";
import { memo } from "./memo.js";
import { TAU_PRESETS, layerKey } from "./state.js";

const DEFINITIONS = [
  ["dead", "dead (never active)"],
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
        h("label", {}, "Heat map rows", this.order),
      ),
      h("section", {}, h("h2", {}, "Layers"), this.filter, this.layerList),
    );
    this.renderDefinitions = memo((withGrad) => {
      const shown = DEFINITIONS.filter(([value]) => withGrad || value !== "grad_dormant");
      replace(
        this.definition,
        shown.map(([value, text]) => option(value, text)),
      );
    });
    this.renderRuns = memo((names, selected, loaded) => this.showRuns(names, selected, loaded));
    this.renderLayers = memo((runs, selectedRuns, selectedLayers, filter, timelines) =>
      this.showLayers(runs, selectedRuns, selectedLayers, filter, timelines),
    );
  }

  makeControls(actions) {
    this.definition = select("definition", [], actions.setDefinition);
    const taus = [...TAU_PRESETS.map((t) => option(t, `τ = ${t}`)), option("custom", "custom…")];
    this.tau = select("tau", taus, (v) => this.pickTau(v));
    this.tauCustom = h("input", {
      ...{ className: "control", type: "number", min: "0", step: "0.005", placeholder: "τ" },
      ...{ hidden: true, dataset: { testid: "tau-custom" } },
    });
    this.tauCustom.addEventListener("change", () => {
      const v = Number(this.tauCustom.value);
      if (this.tauCustom.value !== "" && Number.isFinite(v) && v >= 0) actions.setTau(v);
    });
    const orders = [option("died", "by died-at step"), option("index", "by unit index")];
    this.order = select("order", orders, actions.setOrder);
    this.filter = h("input", {
      ...{ className: "control", type: "search", placeholder: "filter layers" },
      ...{ dataset: { testid: "layer-filter" } },
    });
    this.filter.addEventListener("input", () => actions.setFilter(this.filter.value));
  }

  pickTau(value) {
    this.tauCustom.hidden = value !== "custom";
    if (value === "custom") this.tauCustom.focus();
    else this.actions.setTau(Number(value));
  }

  render(state) {
    this.renderDefinitions(state.definition === "grad_dormant" || gradientsLogged(state.timelines));
    this.definition.value = state.definition;
    if (this.tau.value !== "custom" || TAU_PRESETS.includes(state.tau)) {
      this.tau.value = TAU_PRESETS.includes(state.tau) ? String(state.tau) : "custom";
      this.tauCustom.hidden = this.tau.value !== "custom";
    }
    this.order.value = state.order;
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

  showLayers(runs, selectedRuns, selectedLayers, filter, timelines) {
    const query = filter.trim().toLowerCase();
    const entries = [];
    for (const r of runs || []) {
      if (!selectedRuns.includes(r.run)) continue;
      for (const layer of r.layers) {
        if (query && !`${r.run} ${layer.tag}`.toLowerCase().includes(query)) continue;
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
        h("span", { className: "layer-name" }, l.tag),
        multiRun ? h("span", { className: "layer-run" }, e.run) : null,
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
  const dormant = data ? data.dormant_now.length : null;
  const grad = data && Array.isArray(data.grad_dormant_now) ? data.grad_dormant_now.length : null;
  const share = layer.units ? dead / layer.units : 0;
  return { run, layer, key, dead, dormant, grad, units: layer.units, share };
}

function layerCounts(e) {
  const dormant = e.dormant === null ? "" : ` · ${e.dormant} dormant`;
  const grad = e.grad === null ? "" : ` · ${e.grad} gradient-negligible`;
  return `${e.dead} / ${e.units} dead (${formatPercent(e.share)})${dormant}${grad}`;
}
