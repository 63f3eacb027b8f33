// Wires state, requests and views together. Requests go through api.js;
// every view draws from the store's state; this module alone updates it.

import * as api from "./api.js";
import { h, replace } from "./dom.js";
import { HeatMap, LEGEND, tooltipLines } from "./heatmap.js";
import { decodeMatrix } from "./matrix.js";
import { Sidebar } from "./sidebar.js";
import { createStore, initialState, layerKey, splitLayerKey, thresholdKey, unitKey } from "./state.js";
import { DeadTable } from "./table.js";
import { TimelineChart } from "./timeline.js";
import { unitDetail } from "./unitview.js";

const POLL_MS = 10000;
const LAYER_COLORS = ["#4c8df6", "#f59e0b", "#10b981", "#a855f7", "#06b6d4", "#ec4899", "#84cc16", "#64748b"];
const SNIPPET = [
  'cb = tb_deadneurons.DeadNeuronCallback("logs", probe_data=x_val[:256])',
  "model.fit(..., callbacks=[cb])",
];

function errorBox(what, error) {
  return h(
    "div",
    { className: "error", dataset: { testid: "error" }, attrs: { role: "alert" } },
    h("strong", {}, `${what} failed`),
    h("div", { className: "error-detail" }, error && error.message ? error.message : String(error)),
  );
}

function emptyState() {
  return h(
    "div",
    { className: "empty", dataset: { testid: "empty" } },
    h("h2", {}, "No dead-neuron snapshots yet"),
    h("p", {}, "Log per-unit activation statistics while Keras trains, then point TensorBoard at the same directory:"),
    h("pre", {}, h("code", {}, SNIPPET.join("\n"))),
    h("p", { className: "muted" }, "tensorboard --logdir logs — this page checks for new data every few seconds."),
  );
}

/** One selected layer: header, hints, heat map, unit detail, dead-unit table. */
class LayerView {
  constructor(app, key) {
    this.app = app;
    this.key = key;
    const { run, tag } = splitLayerKey(key);
    this.run = run;
    this.tag = tag;
    this.title = h("h3", {}, h("span", { className: "layer-title" }, tag));
    this.meta = h("span", { className: "muted small" });
    this.status = h("div", {});
    this.hints = h("div", {});
    this.heatmap = new HeatMap({
      onHover: (cell, event) => app.hoverCell(this, cell, event),
      onPick: (unit) => app.pickUnit(key, unit),
    });
    this.axis = h("div", { className: "heatmap-axis" });
    this.legend = h(
      "div",
      { className: "heatmap-legend" },
      h("span", { className: "key" }, h("i", { className: "swatch ramp", style: { background: `linear-gradient(90deg, ${LEGEND.activeRamp.join(", ")})` } }), "active share 0 → 100%"),
      h("span", { className: "key" }, h("i", { className: "swatch", style: { background: LEGEND.dormant } }), "dormant"),
      h("span", { className: "key" }, h("i", { className: "swatch", style: { background: LEGEND.dead } }), "dead"),
    );
    this.unitBox = h("div", {});
    this.table = new DeadTable((unit) => app.pickUnit(key, unit));
    this.body = h("div", { className: "layer-body" }, this.hints, this.legend, this.heatmap.root, this.axis, this.unitBox, this.table.root);
    this.root = h(
      "section",
      { className: "layer-view", dataset: { testid: "layer-view", run, tag } },
      h("div", { className: "layer-head" }, this.title, this.meta),
      this.status,
      this.body,
    );
  }

  update(state, width) {
    const entry = state.timelines.get(this.key);
    const data = entry && entry.data;
    if (!entry || (entry.status === "loading" && !data)) replace(this.status, h("div", { className: "muted small" }, "loading timeline…"));
    else if (entry.status === "error") replace(this.status, errorBox(`Request ${entry.error.url || "timeline"}`, entry.error));
    else replace(this.status, entry.status === "loading" ? h("div", { className: "muted small" }, "updating…") : null);
    this.body.hidden = !data;
    if (!data) return;
    const nowWord = data.thresholds && data.thresholds.definition === "dormant" ? "dormant" : "dead";
    const dying = Array.isArray(data.dying) ? data.dying.filter(Boolean).length : 0;
    replace(
      this.meta,
      `${data.units} units · ${data.steps.length} snapshots · ${data.dead_now.length} dead, ${data.dormant_now.length} dormant (τ = ${data.thresholds ? data.thresholds.tau : "?"}) now` +
        (dying ? ` · ${dying} dying` : "") +
        (nowWord === "dormant" ? " · died-at by τ-dormancy" : ""),
    );
    if (this.hintsData !== data.hints) {
      this.hintsData = data.hints;
      replace(
        this.hints,
        Array.isArray(data.hints) && data.hints.length
          ? h(
              "ul",
              { className: "hints", dataset: { testid: "hints" } },
              data.hints.map((hint) =>
                h(
                  "li",
                  {},
                  h("strong", {}, hint.pattern || "pattern"),
                  hint.remedy ? h("div", {}, `Try: ${hint.remedy}`) : null,
                  hint.evidence ? h("div", { className: "muted small" }, `Evidence: ${hint.evidence}`) : null,
                ),
              ),
            )
          : null,
        Array.isArray(data.warnings) && data.warnings.length
          ? h("details", { className: "warnings" }, h("summary", {}, `${data.warnings.length} warning(s)`), h("ul", {}, data.warnings.map((w) => h("li", {}, String(w)))))
          : null,
      );
    }
    const t0 = performance.now();
    this.heatmap.setData(data, entry.matrix, state.order);
    const selected = state.selectedUnits.has(this.key) ? state.selectedUnits.get(this.key) : null;
    this.heatmap.setSelectedUnit(selected);
    if (this.heatmap.draw(width)) {
      performance.measure(`deadneurons heatmap ${this.key}`, { start: t0, end: performance.now() });
    }
    if (this.axisData !== data) {
      this.axisData = data;
      const steps = data.steps;
      const marks = (data.revivals || []).map((r) => {
        const i = steps.findIndex((s) => s >= r.step);
        const left = steps.length ? ((i < 0 ? steps.length - 1 : i) + 0.5) / steps.length : 0;
        return h("span", { className: "revival-mark", style: { left: `${left * 100}%` }, title: `step ${r.step}: ${r.units.length} units re-initialised` });
      });
      replace(
        this.axis,
        h("span", {}, `step ${steps[0] ?? "—"}`),
        h("span", { className: "muted" }, "snapshots →  (rows: units; click a row for its statistics)"),
        h("span", {}, `step ${steps[steps.length - 1] ?? "—"}`),
        marks,
      );
    }
    this.updateUnit(state, selected, width);
    this.table.update(this.run, this.tag, data);
  }

  updateUnit(state, unit, width) {
    if (unit === null) {
      this.unitSig = null;
      replace(this.unitBox);
      return;
    }
    const entry = state.units.get(unitKey(this.run, this.tag, unit, thresholdKey(state)));
    const sig = [entry, width];
    if (this.unitSig && this.unitSig[0] === sig[0] && this.unitSig[1] === sig[1]) return;
    this.unitSig = sig;
    const close = () => this.app.pickUnit(this.key, null);
    if (!entry || entry.status === "loading") replace(this.unitBox, h("div", { className: "muted small" }, `loading unit ${unit}…`));
    else if (entry.status === "error") replace(this.unitBox, errorBox(`Request ${entry.error.url || "unit"}`, entry.error));
    else replace(this.unitBox, unitDetail(entry.data, width, close));
  }
}

/** One selected run: its timeline chart and its selected layers. */
class RunPanel {
  constructor(run) {
    this.run = run;
    this.chart = new TimelineChart();
    this.layers = new Map();
    this.layerBox = h("div", { className: "layer-views" });
    this.root = h(
      "article",
      { className: "run-panel", dataset: { testid: "run-panel", run } },
      h("h2", { className: "run-title" }, run),
      this.chart.root,
      this.layerBox,
    );
  }
}

export function start(root) {
  const store = createStore(initialState());
  const tooltip = h("div", { className: "tooltip", hidden: true, dataset: { testid: "tooltip" } });
  const statusText = h("span", { className: "status muted small", dataset: { testid: "status" } });
  const liveBox = h("input", { type: "checkbox", checked: true });
  const refreshButton = h("button", { type: "button", textContent: "Refresh", dataset: { testid: "refresh" } });
  const banner = h("div", { className: "banner" });
  const main = h("main", { className: "main" });
  const panels = new Map();
  let renderQueued = false;
  let pollInFlight = false;
  let hoverTimer = 0;
  let lastPoll = 0;

  const app = {
    hoverCell(view, cell, event) {
      clearTimeout(hoverTimer);
      if (!cell) {
        tooltip.hidden = true;
        return;
      }
      const state = store.get();
      const showTip = () => {
        const s = store.get();
        const entry = s.units.get(unitKey(view.run, view.tag, cell.unit, thresholdKey(s)));
        const lines = tooltipLines(view.run, view.tag, cell, view.heatmap.timeline, entry && entry.status === "ok" ? entry.data : null);
        if (entry && entry.status === "error") lines[lines.length - 1] = "statistics: request failed";
        replace(tooltip, lines.map((line, i) => h("div", { className: i === 0 ? "tip-title" : "" }, line)));
        tooltip.hidden = false;
        // clientWidth/Height exclude the scrollbars, unlike innerWidth/Height.
        const { clientWidth, clientHeight } = document.documentElement;
        const x = Math.min(event.clientX + 14, clientWidth - tooltip.offsetWidth - 4);
        const y = event.clientY + 16 + tooltip.offsetHeight > clientHeight ? event.clientY - tooltip.offsetHeight - 8 : event.clientY + 16;
        tooltip.style.left = `${Math.max(4, x)}px`;
        tooltip.style.top = `${Math.max(4, y)}px`;
      };
      this.tipRefresh = showTip;
      showTip();
      if (!state.units.has(unitKey(view.run, view.tag, cell.unit, thresholdKey(state)))) {
        hoverTimer = setTimeout(() => loadUnit(view.run, view.tag, cell.unit).then(() => this.tipRefresh === showTip && !tooltip.hidden && showTip()), 120);
      }
    },
    pickUnit(key, unit) {
      const s = store.get();
      const selectedUnits = new Map(s.selectedUnits);
      if (unit === null || selectedUnits.get(key) === unit) selectedUnits.delete(key);
      else selectedUnits.set(key, unit);
      store.update({ selectedUnits });
      if (unit !== null) {
        const { run, tag } = splitLayerKey(key);
        loadUnit(run, tag, unit);
      }
    },
  };

  const actions = {
    toggleRun(run, on) {
      const s = store.get();
      const selectedRuns = on ? [...new Set([...s.selectedRuns, run])] : s.selectedRuns.filter((r) => r !== run);
      let selectedLayers = s.selectedLayers;
      if (on && !selectedLayers.some((k) => splitLayerKey(k).run === run)) {
        const info = (s.runs || []).find((r) => r.run === run);
        selectedLayers = [...selectedLayers, ...defaultLayers(info)];
      }
      store.update({ selectedRuns, selectedLayers });
      ensureData();
    },
    toggleLayer(key, on) {
      const s = store.get();
      const selectedLayers = on ? [...new Set([...s.selectedLayers, key])] : s.selectedLayers.filter((k) => k !== key);
      store.update({ selectedLayers });
      ensureData();
    },
    setFilter(filter) {
      store.update({ filter });
    },
    setDefinition(definition) {
      store.update({ definition });
      ensureData();
    },
    setTau(tau) {
      store.update({ tau });
      ensureData();
    },
    setOrder(order) {
      store.update({ order });
    },
  };

  const sidebar = new Sidebar(actions);
  liveBox.addEventListener("change", () => store.update({ live: liveBox.checked }));
  refreshButton.addEventListener("click", () => poll(true));
  const header = h(
    "header",
    { className: "topbar" },
    h("h1", {}, "Dead neurons"),
    statusText,
    h("span", { className: "spacer" }),
    h("label", { className: "live" }, liveBox, "live"),
    refreshButton,
  );
  replace(root, h("div", { className: "dn-app" }, header, banner, h("div", { className: "layout" }, sidebar.root, main)), tooltip);

  function defaultLayers(info) {
    if (!info) return [];
    const worst = [...info.layers].sort((a, b) => b.dead_fraction_now - a.dead_fraction_now);
    return (info.layers.length <= 3 ? info.layers : worst.slice(0, 2)).map((l) => layerKey(info.run, l.tag));
  }

  function selectedPairs(s) {
    const pairs = [];
    for (const r of s.runs || []) {
      if (!s.selectedRuns.includes(r.run)) continue;
      for (const layer of r.layers) {
        const key = layerKey(r.run, layer.tag);
        if (s.selectedLayers.includes(key)) pairs.push({ run: r.run, layer, key });
      }
    }
    return pairs;
  }

  async function loadTimeline(run, tag, force = false) {
    const key = layerKey(run, tag);
    const s = store.get();
    const params = thresholdKey(s);
    const old = s.timelines.get(key);
    if (!force && old && old.params === params && (old.status === "ok" || old.status === "loading")) return;
    const token = {};
    const keep = old && old.params === params ? old : null;
    s.timelines.set(key, { status: "loading", params, token, data: keep && keep.data, matrix: keep && keep.matrix, error: null });
    store.update({});
    const started = performance.now();
    let next;
    try {
      const data = await api.fetchTimeline(run, tag, { tau: s.tau, definition: s.definition });
      let matrix;
      try {
        matrix = decodeMatrix(data);
      } catch (err) {
        throw Object.assign(new Error(`${err.message} (in the response of ./timeline for ${tag})`), { url: "./timeline" });
      }
      next = { status: "ok", params, data, matrix, error: null, started };
    } catch (err) {
      next = { status: "error", params, data: keep && keep.data, matrix: keep && keep.matrix, error: err };
    }
    const current = store.get().timelines.get(key);
    if (!current || current.token !== token) return; // a newer request owns this layer
    store.get().timelines.set(key, next);
    store.update({});
  }

  async function loadLoss(run, force = false) {
    const s = store.get();
    const old = s.losses.get(run);
    if (!force && old && old.status !== "error") return;
    const token = {};
    s.losses.set(run, { status: "loading", token, data: old && old.data, error: null });
    store.update({});
    let next;
    try {
      next = { status: "ok", data: await api.fetchLoss(run), error: null };
    } catch (err) {
      next = { status: "error", data: old && old.data, error: err };
    }
    if (store.get().losses.get(run).token !== token) return;
    store.get().losses.set(run, next);
    store.update({});
  }

  async function loadUnit(run, tag, unit) {
    const s = store.get();
    const key = unitKey(run, tag, unit, thresholdKey(s));
    const old = s.units.get(key);
    if (old && old.status !== "error") return old.promise;
    const promise = api
      .fetchUnit(run, tag, unit, { tau: s.tau, definition: s.definition })
      .then((data) => ({ status: "ok", data, error: null }))
      .catch((error) => ({ status: "error", data: null, error }))
      .then((entry) => {
        store.get().units.set(key, entry);
        store.update({});
      });
    s.units.set(key, { status: "loading", promise });
    store.update({});
    return promise;
  }

  function ensureData() {
    const s = store.get();
    for (const { run, layer } of selectedPairs(s)) loadTimeline(run, layer.tag);
    for (const run of s.selectedRuns) loadLoss(run);
    for (const [key, unit] of s.selectedUnits) {
      if (s.selectedLayers.includes(key)) {
        const { run, tag } = splitLayerKey(key);
        loadUnit(run, tag, unit);
      }
    }
  }

  function visible() {
    return document.visibilityState === "visible" && window.innerWidth > 0 && window.innerHeight > 0;
  }

  async function poll(force = false) {
    if (pollInFlight) return;
    pollInFlight = true;
    lastPoll = Date.now();
    try {
      const body = await api.fetchRuns();
      const s = store.get();
      const runs = Array.isArray(body.runs) ? body.runs : [];
      const before = new Map();
      for (const r of s.runs || []) for (const l of r.layers) before.set(layerKey(r.run, l.tag), `${l.snapshots}|${l.last_step}`);
      const patch = { runs, runsError: null, runsWarnings: body.warnings || [], updatedAt: new Date() };
      if (!s.selectedRuns.length && runs.length) {
        patch.selectedRuns = runs.length <= 3 ? runs.map((r) => r.run) : [runs[0].run];
        patch.selectedLayers = runs.filter((r) => patch.selectedRuns.includes(r.run)).flatMap(defaultLayers);
      }
      store.update(patch);
      const changedRuns = new Set();
      for (const { run, layer, key } of selectedPairs(store.get())) {
        const was = before.get(key);
        if (force || (was !== undefined && was !== `${layer.snapshots}|${layer.last_step}`)) {
          changedRuns.add(run);
          loadTimeline(run, layer.tag, true);
        }
      }
      for (const run of changedRuns) loadLoss(run, true);
      ensureData();
    } catch (err) {
      store.update({ runsError: err });
    } finally {
      pollInFlight = false;
    }
  }

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render(store.get());
    });
  }

  function render(state) {
    applyTheme();
    sidebar.render(state);
    const when = state.updatedAt ? state.updatedAt.toLocaleTimeString() : "—";
    statusText.textContent = `updated ${when}${state.live ? ` · checking every ${POLL_MS / 1000} s` : " · live updates off"}`;
    replace(
      banner,
      state.runsError ? errorBox("Request ./runs", state.runsError) : null,
      state.runsWarnings.length
        ? h("details", { className: "warnings" }, h("summary", {}, `${state.runsWarnings.length} warning(s) while reading the logs`), h("ul", {}, state.runsWarnings.map((w) => h("li", {}, String(w)))))
        : null,
    );
    if (state.runs === null) {
      if (!main.firstChild) replace(main, h("div", { className: "muted" }, state.runsError ? "" : "Loading runs…"));
      return;
    }
    const hasData = state.runs.some((r) => r.layers && r.layers.length);
    if (!hasData) {
      panels.clear();
      if (!main.querySelector(".empty")) replace(main, emptyState());
      return;
    }
    const selected = state.runs.filter((r) => state.selectedRuns.includes(r.run));
    if (!selected.length) {
      panels.clear();
      replace(main, h("div", { className: "muted hint-box" }, "Pick one or more runs on the left; several runs are shown side by side."));
      return;
    }
    if (main.querySelector(".empty, .hint-box") || !main.querySelector(".run-grid")) {
      replace(main, h("div", { className: "run-grid" }));
    }
    const grid = main.querySelector(".run-grid");
    grid.classList.toggle("compare", selected.length > 1);
    for (const run of [...panels.keys()]) {
      if (!selected.some((r) => r.run === run)) {
        panels.get(run).root.remove();
        panels.delete(run);
      }
    }
    const domain = stepDomain(state, selected);
    let previous = null;
    for (const info of selected) {
      let panel = panels.get(info.run);
      if (!panel) {
        panel = new RunPanel(info.run);
        panels.set(info.run, panel);
      }
      const wanted = previous ? previous.root.nextSibling : grid.firstChild;
      if (wanted !== panel.root) grid.insertBefore(panel.root, wanted);
      previous = panel;
      updatePanel(state, panel, info, domain);
    }
    measureDrawn(state);
  }

  // Request-to-drawn time of each timeline response, as a performance
  // measure "deadneurons timeline <run>/<tag>" (read by benchmarks/render.py).
  function measureDrawn(state) {
    const end = performance.now();
    for (const [key, entry] of state.timelines) {
      if (entry.status !== "ok" || entry.measured || entry.started === undefined) continue;
      const { run, tag } = splitLayerKey(key);
      const panel = panels.get(run);
      if (!panel || !panel.layers.has(key) || panel.root.clientWidth <= 0) continue;
      entry.measured = true;
      performance.measure(`deadneurons timeline ${run}/${tag}`, { start: entry.started, end });
    }
  }

  function stepDomain(state, selected) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const info of selected) {
      for (const l of info.layers) {
        if (!state.selectedLayers.includes(layerKey(info.run, l.tag))) continue;
        lo = Math.min(lo, l.first_step);
        hi = Math.max(hi, l.last_step);
      }
      const loss = state.losses.get(info.run);
      const data = loss && loss.data;
      if (data && data.steps && data.steps.length && data.step_unit !== "epoch") {
        lo = Math.min(lo, data.steps[0]);
        hi = Math.max(hi, data.steps[data.steps.length - 1]);
      }
    }
    return Number.isFinite(lo) ? [lo, hi] : [0, 1];
  }

  function updatePanel(state, panel, info, domain) {
    const width = Math.floor(panel.root.clientWidth - 2);
    const keys = info.layers.map((l) => layerKey(info.run, l.tag)).filter((k) => state.selectedLayers.includes(k));
    for (const key of [...panel.layers.keys()]) {
      if (!keys.includes(key)) {
        panel.layers.get(key).root.remove();
        panel.layers.delete(key);
      }
    }
    let previous = null;
    for (const key of keys) {
      let view = panel.layers.get(key);
      if (!view) {
        view = new LayerView(app, key);
        panel.layers.set(key, view);
      }
      const wanted = previous ? previous.root.nextSibling : panel.layerBox.firstChild;
      if (wanted !== view.root) panel.layerBox.insertBefore(view.root, wanted);
      previous = view;
      if (width > 0) view.update(state, width - 24);
    }
    if (!keys.length) {
      if (!panel.layerBox.querySelector(".muted")) panel.layerBox.append(h("div", { className: "muted small" }, "Select layers of this run on the left."));
    } else {
      panel.layerBox.querySelectorAll(":scope > .muted").forEach((n) => n.remove());
    }

    const lossEntry = state.losses.get(info.run);
    const loss = lossEntry && lossEntry.data;
    let lossNote = "";
    if (!lossEntry || (lossEntry.status === "loading" && !loss)) lossNote = "loading loss…";
    else if (lossEntry.status === "error") lossNote = `Request ${lossEntry.error.url || "./loss"} failed: ${lossEntry.error.detail || lossEntry.error.message}`;
    else if (!loss.tag || !loss.steps || !loss.steps.length) lossNote = `No loss logged for this run${loss.message ? `: ${loss.message}` : ""}. Deaths are shown without it.`;
    const chartLoss = loss && loss.step_unit === "epoch" ? null : loss;
    if (loss && loss.step_unit === "epoch" && loss.steps.length) {
      lossNote = `The loss (${loss.tag}) is logged per epoch, not per training step, so it is not drawn on the step axis.`;
    }
    const layers = [];
    const revivals = [];
    keys.forEach((key) => {
      const entry = state.timelines.get(key);
      const data = entry && entry.data;
      if (!data) return;
      const index = info.layers.findIndex((l) => layerKey(info.run, l.tag) === key);
      layers.push({
        tag: data.tag,
        color: LAYER_COLORS[index % LAYER_COLORS.length],
        units: data.units,
        steps: data.steps,
        dead: data.dead_count,
        dormant: data.dormant_count,
      });
      for (const r of data.revivals || []) revivals.push({ ...r, tag: data.tag });
    });
    const sig = [width, domain[0], domain[1], lossNote, chartLoss, ...keys.map((k) => state.timelines.get(k) && state.timelines.get(k).data)];
    const same = panel.chartSig && panel.chartSig.length === sig.length && panel.chartSig.every((v, i) => v === sig[i]);
    if (!same && width > 0) {
      panel.chartSig = sig;
      panel.chart.draw({ width, domain, loss: chartLoss, lossNote, layers, revivals });
    }
  }

  function applyTheme() {
    let dark = null;
    try {
      const body = window.parent && window.parent !== window ? window.parent.document.body : null;
      if (body) dark = body.classList.contains("dark-mode");
    } catch {
      dark = null; // not same-origin: follow prefers-color-scheme
    }
    if (dark === null) dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
    const theme = dark ? "dark" : "light";
    if (document.documentElement.dataset.theme !== theme) {
      document.documentElement.dataset.theme = theme;
      for (const panel of panels.values()) panel.chartSig = null;
    }
  }

  store.subscribe(scheduleRender);
  try {
    // Follow TensorBoard's dark-mode toggle (a class on the parent's body).
    const body = window.parent !== window ? window.parent.document.body : null;
    if (body) new MutationObserver(scheduleRender).observe(body, { attributes: true, attributeFilter: ["class"] });
  } catch {
    // Not same-origin: prefers-color-scheme decides.
  }
  new ResizeObserver(() => {
    for (const panel of panels.values()) panel.chartSig = null;
    scheduleRender();
    if (visible() && store.get().live && Date.now() - lastPoll > POLL_MS) poll();
  }).observe(main);
  setInterval(() => {
    if (store.get().live && visible()) poll();
  }, POLL_MS);
  poll();
  return { store, poll };
}
