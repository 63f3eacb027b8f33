// The left column: run picker, thresholds and ordering controls, layer list.

import { formatPercent, h, replace } from "./dom.js";
import { TAU_PRESETS, layerKey } from "./state.js";

export class Sidebar {
  /** actions: toggleRun, toggleLayer, setFilter, setDefinition, setTau, setOrder */
  constructor(actions) {
    this.actions = actions;
    this.runList = h("div", { className: "run-list", dataset: { testid: "runs" } });
    this.definition = h(
      "select",
      { className: "control", dataset: { testid: "definition" } },
      h("option", { value: "dead" }, "dead (never active)"),
      h("option", { value: "dormant" }, "τ-dormant (ReDo score ≤ τ)"),
    );
    this.definition.addEventListener("change", () => actions.setDefinition(this.definition.value));
    this.tau = h(
      "select",
      { className: "control", dataset: { testid: "tau" } },
      TAU_PRESETS.map((t) => h("option", { value: String(t) }, `τ = ${t}`)),
      h("option", { value: "custom" }, "custom…"),
    );
    this.tauCustom = h("input", {
      className: "control",
      type: "number",
      min: "0",
      step: "0.005",
      placeholder: "τ",
      hidden: true,
      dataset: { testid: "tau-custom" },
    });
    this.tau.addEventListener("change", () => {
      if (this.tau.value === "custom") {
        this.tauCustom.hidden = false;
        this.tauCustom.focus();
      } else {
        this.tauCustom.hidden = true;
        actions.setTau(Number(this.tau.value));
      }
    });
    this.tauCustom.addEventListener("change", () => {
      const v = Number(this.tauCustom.value);
      if (this.tauCustom.value !== "" && Number.isFinite(v) && v >= 0) actions.setTau(v);
    });
    this.order = h(
      "select",
      { className: "control", dataset: { testid: "order" } },
      h("option", { value: "died" }, "by died-at step"),
      h("option", { value: "index" }, "by unit index"),
    );
    this.order.addEventListener("change", () => actions.setOrder(this.order.value));
    this.filter = h("input", {
      className: "control",
      type: "search",
      placeholder: "filter layers",
      dataset: { testid: "layer-filter" },
    });
    this.filter.addEventListener("input", () => actions.setFilter(this.filter.value));
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
  }

  render(state) {
    this.definition.value = state.definition;
    if (this.tau.value !== "custom" || TAU_PRESETS.includes(state.tau)) {
      this.tau.value = TAU_PRESETS.includes(state.tau) ? String(state.tau) : "custom";
      this.tauCustom.hidden = this.tau.value !== "custom";
    }
    this.order.value = state.order;
    this.renderRuns(state);
    this.renderLayers(state);
  }

  renderRuns(state) {
    const runs = state.runs || [];
    const sig = JSON.stringify([runs.map((r) => r.run), state.selectedRuns]);
    if (sig === this.runSig) return;
    this.runSig = sig;
    replace(
      this.runList,
      runs.length
        ? runs.map((r) => {
            const box = h("input", { type: "checkbox", checked: state.selectedRuns.includes(r.run) });
            box.addEventListener("change", () => this.actions.toggleRun(r.run, box.checked));
            return h("label", { className: "run-item", dataset: { run: r.run }, title: r.run }, box, h("span", { className: "run-name" }, r.run));
          })
        : h("div", { className: "muted small" }, state.runs ? "no runs with snapshots" : "loading…"),
    );
  }

  renderLayers(state) {
    const query = state.filter.trim().toLowerCase();
    const entries = [];
    for (const r of state.runs || []) {
      if (!state.selectedRuns.includes(r.run)) continue;
      for (const layer of r.layers) {
        const key = layerKey(r.run, layer.tag);
        if (query && !`${r.run} ${layer.tag}`.toLowerCase().includes(query)) continue;
        const tl = state.timelines.get(key);
        const data = tl && tl.data;
        const dead = data ? data.dead_now.length : layer.dead_now;
        const dormant = data ? data.dormant_now.length : null;
        const units = layer.units;
        entries.push({ run: r.run, layer, key, dead, dormant, units, share: units ? dead / units : 0 });
      }
    }
    entries.sort((a, b) => b.share - a.share || a.run.localeCompare(b.run) || a.layer.tag.localeCompare(b.layer.tag));
    const multiRun = state.selectedRuns.length > 1;
    replace(
      this.layerList,
      entries.length
        ? entries.map((e) => {
            const box = h("input", { type: "checkbox", checked: state.selectedLayers.includes(e.key) });
            box.addEventListener("change", () => this.actions.toggleLayer(e.key, box.checked));
            const counts =
              `${e.dead} / ${e.units} dead (${formatPercent(e.share)})` + (e.dormant === null ? "" : ` · ${e.dormant} dormant`);
            return h(
              "label",
              {
                className: "layer-item",
                dataset: { testid: "layer-item", run: e.run, tag: e.layer.tag, dead: String(e.dead) },
                title: `${e.run} / ${e.layer.tag}: ${e.layer.layer_class || "layer"} ${e.layer.activation || ""}, ${e.layer.snapshots} snapshots, steps ${e.layer.first_step}–${e.layer.last_step}`,
              },
              box,
              h(
                "span",
                { className: "layer-text" },
                h("span", { className: "layer-name" }, e.layer.tag),
                multiRun ? h("span", { className: "layer-run" }, e.run) : null,
                h("span", { className: "layer-counts", dataset: { testid: "layer-counts" } }, counts),
                h("span", { className: "bar" }, h("span", { className: "bar-fill", style: { width: `${Math.min(100, e.share * 100)}%` } })),
              ),
            );
          })
        : h("div", { className: "muted small" }, query ? "no layer matches the filter" : "select a run"),
    );
  }
}
