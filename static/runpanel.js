// One selected run: its timeline chart and its selected layers' views.

import { h } from "./dom.js";
import { LayerView } from "./layerview.js";
import { memo } from "./memo.js";
import { selectedPairs } from "./selection.js";
import { layerKey } from "./state.js";
import { TimelineChart } from "./timeline.js";
import { note } from "./widgets.js";

const LAYER_COLORS = [
  "#4c8df6",
  "#f59e0b",
  "#10b981",
  "#a855f7",
  "#06b6d4",
  "#ec4899",
  "#84cc16",
  "#64748b",
];

/** Why the loss is not drawn ("" when it is). */
export function lossNote(entry) {
  const loss = entry && entry.data;
  if (!entry || (entry.status === "loading" && !loss)) return "loading loss…";
  if (entry.status === "error") {
    const { url, detail, message } = entry.error;
    return `Request ${url || "./loss"} failed: ${detail || message}`;
  }
  if (!loss.tag || !loss.steps || !loss.steps.length) {
    const why = loss.message ? `: ${loss.message}` : "";
    return `No loss logged for this run${why}. Deaths are shown without it.`;
  }
  if (loss.step_unit === "epoch") {
    const why = "is logged per epoch, not per training step, so it is not drawn on the step axis";
    return `The loss (${loss.tag}) ${why}.`;
  }
  return "";
}

/** The chart's layers and revivals from the loaded timelines of `keys`. */
export function chartLayers(info, keys, timelines) {
  const layers = [];
  const revivals = [];
  for (const key of keys) {
    const data = timelines[key] && timelines[key].data;
    if (!data) continue;
    const index = info.layers.findIndex((l) => layerKey(info.run, l.tag) === key);
    layers.push({
      tag: data.tag,
      color: LAYER_COLORS[index % LAYER_COLORS.length],
      units: data.units,
      steps: data.steps,
      dead: data.dead_count,
      // Dead units are dormant too (older servers send only dormant_count).
      dormant: data.dormant_or_dead_count || data.dormant_count,
      meanAbs: Array.isArray(data.mean_abs) ? data.mean_abs : null,
    });
    for (const r of data.revivals || []) revivals.push({ ...r, tag: data.tag });
  }
  return { layers, revivals };
}

/** Keeps `container`'s children in the order of `keys`, making views with `make(key)`. */
export function syncChildren(container, views, keys, make) {
  for (const key of [...views.keys()]) {
    if (keys.includes(key)) continue;
    views.get(key).root.remove();
    views.delete(key);
  }
  let previous = null;
  for (const key of keys) {
    if (!views.has(key)) views.set(key, make(key));
    const view = views.get(key);
    const wanted = previous ? previous.root.nextSibling : container.firstChild;
    if (wanted !== view.root) container.insertBefore(view.root, wanted);
    previous = view;
  }
  return keys.map((k) => views.get(k));
}

export class RunPanel {
  /** `on`: the layer views' handlers (layerview.js). */
  constructor(run, on) {
    this.run = run;
    this.on = on;
    this.chart = new TimelineChart();
    this.layers = new Map();
    this.layerBox = h("div", { className: "layer-views" });
    this.hint = note("Select layers of this run on the left.");
    this.root = h(
      "article",
      { className: "run-panel", dataset: { testid: "run-panel", run } },
      h("h2", { className: "run-title", title: run }, run),
      this.chart.root,
      this.hint,
      this.layerBox,
    );
    this.drawChart = memo(
      (width, domain0, domain1, top, lossEntry, showMeanAbs, theme, ...datas) => {
        const loss = lossEntry && lossEntry.data;
        const chartLoss = loss && loss.step_unit !== "epoch" ? loss : null;
        const { layers, revivals } = chartLayers(this.info, this.keys, this.timelines);
        const model = {
          width,
          domain: [domain0, domain1],
          top,
          loss: chartLoss,
          lossNote: lossNote(lossEntry),
        };
        this.chart.draw({ ...model, showMeanAbs, layers, revivals });
      },
    );
  }

  /** Draws the run on `domain` (its steps) with the share axis up to `top`. */
  update(state, info, domain, top, theme) {
    const width = Math.floor(this.root.clientWidth - 2);
    const keys = selectedPairs(state)
      .filter((p) => p.run === info.run)
      .map((p) => p.key);
    const views = syncChildren(
      this.layerBox,
      this.layers,
      keys,
      (key) => new LayerView(key, this.on),
    );
    this.hint.hidden = keys.length > 0;
    if (width <= 0) return;
    for (const view of views) view.update(state, width - 24, theme);
    Object.assign(this, { info, keys, timelines: state.timelines });
    const datas = keys.map((k) => state.timelines[k] && state.timelines[k].data);
    const loss = state.losses[info.run];
    const [d0, d1] = domain;
    this.drawChart(width, d0, d1, top, loss, state.showMeanAbs, theme, ...datas);
  }
}
