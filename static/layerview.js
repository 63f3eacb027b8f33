// One selected layer: header, hints, heat map, unit detail, dead-unit table.
// Every part redraws only when its inputs changed (memo.js).

import { DEFINITION_WORDS } from "./deadunits.js";
import { button, h, replace } from "./dom.js";
import { HeatMap, LEGEND } from "./heatmap.js";
import { memo } from "./memo.js";
import { columnTicks } from "./scale.js";
import { splitLayerKey, thresholdKey, unitKey } from "./state.js";
import { DeadTable } from "./table.js";
import { unitDetail } from "./unitview.js";
import { entryStatus, errorBox, note, warningsBox } from "./widgets.js";
import { zoomAround } from "./zoom.js";

function swatch(background, text, extra = "") {
  return h(
    "span",
    { className: "key" },
    h("i", { className: `swatch ${extra}`, style: { background } }),
    text,
  );
}

function legend(withGrad) {
  const ramp = `linear-gradient(90deg, ${LEGEND.activeRamp.join(", ")})`;
  return [
    swatch(ramp, "active share 0 → 100%", "ramp"),
    swatch(`linear-gradient(90deg, ${LEGEND.dormantRamp.join(", ")})`, "dormant", "ramp"),
    swatch(LEGEND.dead, "dead"),
    withGrad ? swatch(LEGEND.gradDormant, "gradient-negligible") : null,
  ];
}

function hintList(hints) {
  if (!Array.isArray(hints) || !hints.length) return null;
  const item = (hint) =>
    h(
      "li",
      {},
      h("strong", {}, hint.pattern || "pattern"),
      hint.remedy ? h("div", {}, `Try: ${hint.remedy}`) : null,
      hint.evidence ? h("div", { className: "muted small" }, `Evidence: ${hint.evidence}`) : null,
    );
  return h("ul", { className: "hints", dataset: { testid: "hints" } }, hints.map(item));
}

function metaLine(data) {
  const t = data.thresholds || {};
  const dying = Array.isArray(data.dying) ? data.dying.filter(Boolean).length : 0;
  const grad = Array.isArray(data.grad_dormant_now)
    ? `, ${data.grad_dormant_now.length} gradient-negligible`
    : "";
  // Dead units are dormant too (dead ⊆ dormant at any τ).
  const dormantNow = new Set([...data.dormant_now, ...data.dead_now]).size;
  const dormant = `${dormantNow} dormant${grad}`;
  const counts = `${data.dead_now.length} dead, ${dormant} (τ = ${t.tau ?? "?"}) now`;
  const by =
    t.definition && t.definition !== "dead"
      ? ` · died-at by ${DEFINITION_WORDS[t.definition]}`
      : "";
  const size = `${data.units} units · ${data.steps.length} snapshots`;
  return `${size} · ${counts}${dying ? ` · ${dying} dying` : ""}${by}`;
}

const CLICK = "click a row for its statistics";

/** Step labels under the heat map's columns (about one per 90 px), and revival marks. */
function stepAxis(data, matrix, width) {
  const steps = data.steps;
  const columns = matrix.steps;
  const marks = (data.revivals || []).map((r) => {
    const i = steps.findIndex((s) => s >= r.step);
    const left = steps.length ? ((i < 0 ? steps.length - 1 : i) + 0.5) / steps.length : 0;
    const title = `step ${r.step}: ${r.units.length} units re-initialised`;
    return h("span", { className: "revival-mark", style: { left: `${left * 100}%` }, title });
  });
  const labels = columnTicks(columns, Math.max(2, width / 90)).map((c) => {
    const step = steps[matrix.stepBounds[c + 1] - 1];
    const left = ((c + 0.5) / columns) * 100;
    const style = { left: `${left}%` };
    return h(
      "span",
      { className: "step-label", style, dataset: { testid: "step-label" } },
      String(step),
    );
  });
  return [
    h("div", { className: "step-labels" }, labels, marks),
    h("div", { className: "muted small" }, `steps of the snapshots →  (rows: units; ${CLICK})`),
  ];
}

/** The status of a timeline entry; a layer without gradients under grad_dormant is a note. */
function timelineStatus(entry, definition) {
  const noGrad =
    entry &&
    entry.status === "error" &&
    entry.error.status === 400 &&
    definition === "grad_dormant";
  if (!noGrad) return entryStatus(entry, "timeline");
  const why = `${entry.error.detail} (the writer logs it with gradients=True)`;
  return h(
    "div",
    { className: "note", dataset: { testid: "no-gradients" } },
    `Not classified: ${why}`,
  );
}

export class LayerView {
  /** `on`: {hover(view, cell, event), pick(key, unit), zoom(key, range or null)}. */
  constructor(key, on) {
    Object.assign(this, { key, ...splitLayerKey(key) });
    this.meta = h("span", { className: "muted small" });
    this.status = h("div", {});
    this.hints = h("div", {});
    this.legend = h("div", { className: "heatmap-legend" });
    this.heatmap = new HeatMap({
      onHover: (cell, e) => on.hover(this, cell, e),
      onPick: (u) => on.pick(key, u),
      onZoom: (cell) => on.zoom(key, zoomAround(cell.unit, cell.unitStop, this.units)),
    });
    this.zoomBar = h("div", { className: "zoom-bar muted small", dataset: { testid: "zoom-bar" } });
    this.axis = h("div", { className: "heatmap-axis" });
    this.unitBox = h("div", {});
    this.table = new DeadTable((unit) => on.pick(key, unit));
    const parts = [
      this.hints,
      this.legend,
      this.zoomBar,
      this.heatmap.root,
      this.axis,
      this.unitBox,
      this.table.root,
    ];
    this.body = h("div", { className: "layer-body" }, ...parts);
    const title = h("h3", {}, h("span", { className: "layer-title" }, this.tag));
    this.root = h(
      "section",
      { className: "layer-view", dataset: { testid: "layer-view", run: this.run, tag: this.tag } },
      h("div", { className: "layer-head" }, title, this.meta),
      this.status,
      this.body,
    );
    this.makeRenderers(key, on);
  }

  /** The view's parts, each redrawn only when its inputs changed (memo.js). */
  makeRenderers(key, on) {
    this.showStatus = memo((entry, definition) =>
      replace(this.status, timelineStatus(entry, definition)),
    );
    this.showData = memo((data) => {
      replace(this.meta, metaLine(data));
      replace(this.hints, hintList(data.hints), warningsBox(data.warnings));
      replace(this.legend, legend(Array.isArray(data.grad_dormant_count)));
    });
    this.showAxis = memo((data, matrix, width) =>
      replace(this.axis, stepAxis(data, matrix, width)),
    );
    this.showZoom = memo((matrix, units, zoomed) =>
      replace(
        this.zoomBar,
        zoomBar(matrix, units, zoomed, () => on.zoom(key, null)),
      ),
    );
    this.showUnit = memo((unit, entry, width, theme) =>
      replace(this.unitBox, unitBox(unit, entry, width, on, key)),
    );
  }

  /** Draws the layer from `state` at `width` CSS pixels; true when the heat map was redrawn. */
  update(state, width, theme) {
    const entry = state.timelines[this.key];
    const data = entry && entry.data;
    this.showStatus(entry, state.definition);
    this.body.hidden = !data;
    if (!data) return false;
    this.showData(data);
    const selected = this.key in state.selectedUnits ? state.selectedUnits[this.key] : null;
    const t0 = performance.now();
    this.units = data.units;
    this.showZoom(data.cells, data.units, Boolean(state.zooms && state.zooms[this.key]));
    this.heatmap.setData(data, data.cells, state.order);
    this.showAxis(data, data.cells, width);
    this.heatmap.setSelectedUnit(selected);
    const drawn = this.heatmap.draw(width);
    if (drawn) measure(`deadneurons heatmap ${this.key}`, t0);
    // Request to drawn, once per response (read by benchmarks/render.py).
    if (width > 0 && entry.status === "ok" && this.measured !== entry) {
      this.measured = entry;
      measure(`deadneurons timeline ${this.run}/${this.tag}`, entry.started);
    }
    const unitEntry =
      selected === null
        ? null
        : state.units[unitKey(this.run, this.tag, selected, thresholdKey(state))];
    this.showUnit(selected, unitEntry, width, theme);
    this.table.update(this.run, this.tag, data);
    return drawn;
  }
}

/** What part of a wide layer the heat map shows, and the way back to all units. */
function zoomBar(matrix, units, zoomed, showAll) {
  if (matrix.wholeLayer && !zoomed) return null;
  const first = matrix.unitBounds[0];
  const last = matrix.unitBounds[matrix.units] - 1;
  const perRow = (last - first + 1) / matrix.units;
  const how = "a row with a dead unit shows dead (hover: how many); click a row to zoom in";
  const rows = perRow > 1 ? `one row per ~${Math.round(perRow)} units; ${how}` : "one row per unit";
  const all = button("show all units", "zoom-out", showAll);
  return [`units ${first}–${last} of ${units} · ${rows} `, zoomed ? all : null];
}

function measure(name, start) {
  performance.measure(name, { start, end: performance.now() });
}

function unitBox(unit, entry, width, on, key) {
  if (unit === null) return null;
  if (!entry || entry.status === "loading") return note(`loading unit ${unit}…`);
  if (entry.status === "error")
    return errorBox(`Request ${entry.error.url || "unit"}`, entry.error);
  return unitDetail(entry.data, width, () => on.pick(key, null));
}
